/* race.c: the order bug of docs/guide/races.md: a reader that assumes one
 * read brings one whole message. Plain it passes; chaos mode finds it. */
#include <soon.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char message[] = "hello, asynchronous world\n";

typedef struct program {
  soon_pipe in, out;
  soon_write_req write;
  char buf[64];
  size_t got;
  int fixed;  /* --fixed: gather bytes until the newline */
  int status; /* the exit status */
} program;

static void alloc_cb(soon_handle *h, size_t suggested, soon_buf *buf) {
  program *p = h->data;
  (void)suggested;
  buf->base = p->buf + p->got;
  buf->len = sizeof p->buf - p->got;
}

static void done(program *p, int status) {
  p->status = status;
  soon_read_stop((soon_stream *)&p->in);
  soon_close((soon_handle *)&p->in, NULL);
}

static void read_cb(soon_stream *s, ssize_t n, const soon_buf *buf) {
  program *p = s->data;
  (void)buf;
  if (n < 0) {
    fprintf(stderr, "race: read: %s\n", soon_strerror((int)n));
    done(p, 1);
    return;
  }
  if (n == 0) /* nothing this time: a real EAGAIN, or chaos's */
    return;
  if (!p->fixed) {
    /* The bug: one read is one message. On a pipe on this machine it is,
     * for a short message written at once; nothing promises it. */
    int whole = (size_t)n == sizeof message - 1 &&
                memcmp(p->buf, message, sizeof message - 1) == 0;
    printf("race: got %zd bytes: %s\n", n, whole ? "the message" : "a part");
    done(p, whole ? 0 : 1);
    return;
  }
  /* The fix: gather until the message's end. */
  p->got += (size_t)n;
  if (p->got > 0 && p->buf[p->got - 1] == '\n') {
    int whole = p->got == sizeof message - 1 &&
                memcmp(p->buf, message, sizeof message - 1) == 0;
    printf("race: got the message in pieces as they came\n");
    done(p, whole ? 0 : 1);
  } else if (p->got == sizeof p->buf) {
    done(p, 1);
  }
}

static void write_cb(soon_write_req *req, int status) {
  program *p = req->data;
  if (status < 0)
    p->status = 1;
  soon_close((soon_handle *)&p->out, NULL);
}

int main(int argc, char **argv) {
  program p = {.fixed = argc > 1 && strcmp(argv[1], "--fixed") == 0};
  soon_loop loop;
  int fds[2];
  if (pipe(fds) < 0 || soon_loop_init(&loop) != 0)
    return 2;
  /* A pipe(2) end: the readiness transport on every backend, where chaos
   * splits reads. */
  soon_pipe_init(&loop, &p.in);
  soon_pipe_init(&loop, &p.out);
  p.in.data = p.out.data = p.write.data = &p;
  if (soon_pipe_open(&p.in, fds[0]) != 0 || soon_pipe_open(&p.out, fds[1]))
    return 2;
  soon_buf b = {(char *)message, sizeof message - 1};
  if (soon_write(&p.write, (soon_stream *)&p.out, &b, 1, write_cb) != 0 ||
      soon_read_start((soon_stream *)&p.in, alloc_cb, read_cb) != 0)
    return 2;
  soon_run(&loop, SOON_RUN_DEFAULT);
  return soon_loop_close(&loop) == 0 ? p.status : 2;
}
