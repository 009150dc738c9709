/* cat.c: stdin to stdout through the loop: pipes, sockets and terminals as
 * streams; regular files (and /dev/null) with soon_fs_read/soon_fs_write. */
#include <soon.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (64u << 10)
/* Reading pauses while this much is read but not yet written: a fast input
 * and a slow output must not pile the whole input up in memory. */
#define HIGH_WATER (1u << 20)
#define LOW_WATER (256u << 10)

typedef union any_stream {
  soon_stream stream;
  soon_pipe pipe;
  soon_tty tty;
} any_stream;

/* A piece of input on its way out. */
typedef struct chunk {
  soon_write_req req; /* for a stream output */
  struct chunk *next; /* for a file output: the queue of pieces to write */
  char *base;
  size_t len, off; /* off: bytes already written (file output) */
} chunk;

typedef struct cat {
  soon_loop loop;
  /* The input: a stream, or a file read with soon_fs_read. */
  bool in_stream, in_open, in_eof, in_paused, in_reading_file;
  any_stream in;
  soon_fs_req in_req;
  char *in_buf;
  /* The output: a stream, or a file written with soon_fs_write, one request
   * at a time so the pieces land in order. */
  bool out_stream, out_open, out_busy;
  any_stream out;
  soon_fs_req out_req;
  chunk *head, *tail;
  size_t pending;     /* bytes read and not yet written */
  int saved_flags[2]; /* stdin's and stdout's, put back at the end */
  int err;
} cat;

static void source_next(cat *c);
static void finish(cat *c, int err);

/* ------------------------------------------------------------ output */

static void sink_done(cat *c, chunk *k) {
  c->pending -= k->len;
  free(k->base);
  free(k);
  if (c->in_paused && c->pending <= LOW_WATER && !c->err) {
    c->in_paused = false;
    source_next(c);
  }
  if (c->in_eof && c->pending == 0)
    finish(c, 0);
}

static void on_stream_written(soon_write_req *req, int status) {
  chunk *k = (chunk *)req;
  cat *c = req->data;
  if (status < 0) { /* -EPIPE: the reader went away; -ECANCELED: closing */
    free(k->base);
    free(k);
    finish(c, status);
    return;
  }
  sink_done(c, k);
}

static void file_write_next(cat *c);

static void on_file_written(soon_fs_req *req) {
  cat *c = req->data;
  chunk *k = c->head;
  int64_t r = req->result;
  soon_fs_req_cleanup(req);
  c->out_busy = false;
  if (r < 0) {
    finish(c, (int)r);
    return;
  }
  k->off += (size_t)r;
  if (k->off == k->len) { /* else a short write: the rest goes next */
    c->head = k->next;
    if (!c->head)
      c->tail = NULL;
    sink_done(c, k);
  }
  file_write_next(c);
}

static void file_write_next(cat *c) {
  if (c->out_busy || !c->head || c->err)
    return;
  chunk *k = c->head;
  soon_buf b = {k->base + k->off, k->len - k->off};
  c->out_req.data = c;
  /* Offset -1: at the file's position, so `cat >> log` appends. */
  int err = soon_fs_write(&c->loop, &c->out_req, STDOUT_FILENO, &b, 1, -1,
                          on_file_written);
  if (err)
    finish(c, err);
  else
    c->out_busy = true;
}

/* Takes ownership of base. */
static void sink_put(cat *c, char *base, size_t len) {
  chunk *k = calloc(1, sizeof *k);
  if (!k) {
    free(base);
    finish(c, -ENOMEM);
    return;
  }
  k->base = base;
  k->len = len;
  c->pending += len;
  if (c->out_stream) {
    soon_buf b = {base, len};
    k->req.data = c;
    int err = soon_write(&k->req, &c->out.stream, &b, 1, on_stream_written);
    if (err) {
      c->pending -= len;
      free(base);
      free(k);
      finish(c, err);
    }
    return;
  }
  if (c->tail)
    c->tail->next = k;
  else
    c->head = k;
  c->tail = k;
  file_write_next(c);
}

/* ------------------------------------------------------------ input */

static void on_alloc(soon_handle *handle, size_t suggested, soon_buf *buf) {
  (void)handle;
  buf->base = malloc(suggested);
  buf->len = buf->base ? suggested : 0;
}

static void on_stream_read(soon_stream *stream, ssize_t nread,
                           const soon_buf *buf) {
  cat *c = stream->data;
  if (nread > 0) {
    sink_put(c, buf->base, (size_t)nread);
    if (c->pending > HIGH_WATER && !c->err) {
      c->in_paused = true;
      soon_read_stop(stream);
    }
    return;
  }
  free(buf->base);
  if (nread == SOON_EOF) {
    c->in_eof = true;
    if (c->pending == 0)
      finish(c, 0);
  } else if (nread < 0) {
    finish(c, (int)nread);
  }
}

static void on_file_read(soon_fs_req *req) {
  cat *c = req->data;
  int64_t r = req->result;
  soon_fs_req_cleanup(req);
  c->in_reading_file = false;
  char *buf = c->in_buf;
  c->in_buf = NULL;
  if (r <= 0) {
    free(buf);
    if (r < 0) {
      finish(c, (int)r);
      return;
    }
    c->in_eof = true;
    if (c->pending == 0)
      finish(c, 0);
    return;
  }
  sink_put(c, buf, (size_t)r);
  if (c->pending > HIGH_WATER)
    c->in_paused = true; /* sink_done starts the next read */
  else
    source_next(c);
}

/* Ask for more input: for a stream, (re)start reading; for a file, one
 * read request at a time, at the file's position. */
static void source_next(cat *c) {
  if (c->err || c->in_eof)
    return;
  int err;
  if (c->in_stream) {
    err = soon_read_start(&c->in.stream, on_alloc, on_stream_read);
  } else {
    if (c->in_reading_file)
      return;
    if (!(c->in_buf = malloc(CHUNK))) {
      finish(c, -ENOMEM);
      return;
    }
    soon_buf b = {c->in_buf, CHUNK};
    c->in_req.data = c;
    err = soon_fs_read(&c->loop, &c->in_req, STDIN_FILENO, &b, 1, -1,
                       on_file_read);
    if (err) {
      free(c->in_buf);
      c->in_buf = NULL;
    } else {
      c->in_reading_file = true;
    }
  }
  if (err)
    finish(c, err);
}

/* ------------------------------------------------------------ set-up */

/* Close what is open. Requests still in flight finish by themselves: stream
 * writes are cancelled by the close, fs requests run to their callback. */
static void finish(cat *c, int err) {
  if (err && !c->err)
    c->err = err;
  if (c->in_open && !soon_is_closing((soon_handle *)&c->in))
    soon_close((soon_handle *)&c->in, NULL);
  if (c->out_open && (c->err || c->pending == 0) &&
      !soon_is_closing((soon_handle *)&c->out))
    soon_close((soon_handle *)&c->out, NULL);
}

/* Pipes, sockets and terminals can wait for readiness; anything else (a
 * regular file, /dev/null) is always "ready" and goes through fs requests. */
static bool is_stream(int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0)
    return false;
  return S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || isatty(fd);
}

/* A stream of its own on fd. A terminal is opened again by soon_tty_init;
 * a pipe or socket is dup'ed, since closing the handle closes its fd. */
static int open_stream(cat *c, any_stream *s, int fd) {
  if (isatty(fd))
    return soon_tty_init(&c->loop, &s->tty, fd);
  int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (dfd < 0)
    return -errno;
  soon_pipe_init(&c->loop, &s->pipe);
  int err = soon_pipe_open(&s->pipe, dfd);
  if (err) {
    close(dfd);
    soon_close((soon_handle *)s, NULL);
  }
  return err;
}

int main(void) {
  static cat c; /* zeroed */
  /* A dup shares the open file with the shell that gave it to us, and so
   * its O_NONBLOCK: put the flags back before leaving. */
  c.saved_flags[0] = fcntl(STDIN_FILENO, F_GETFL);
  c.saved_flags[1] = fcntl(STDOUT_FILENO, F_GETFL);
  int err = soon_loop_init(&c.loop);
  if (err) {
    fprintf(stderr, "cat: loop: %s\n", soon_strerror(err));
    return 1;
  }
  c.in_stream = is_stream(STDIN_FILENO);
  c.out_stream = is_stream(STDOUT_FILENO);
  if (c.in_stream && (err = open_stream(&c, &c.in, STDIN_FILENO)) == 0)
    c.in_open = true;
  if (!err && c.out_stream &&
      (err = open_stream(&c, &c.out, STDOUT_FILENO)) == 0)
    c.out_open = true;
  c.in.stream.data = &c;
  if (err)
    finish(&c, err);
  else
    source_next(&c);

  soon_run(&c.loop, SOON_RUN_DEFAULT);
  int close_err = soon_loop_close(&c.loop);
  while (c.head) { /* pieces an error left unwritten */
    chunk *k = c.head;
    c.head = k->next;
    free(k->base);
    free(k);
  }
  for (int fd = 0; fd < 2; fd++)
    if (c.saved_flags[fd] >= 0)
      fcntl(fd, F_SETFL, c.saved_flags[fd]);
  if (c.err && c.err != -EPIPE) /* a reader that left early is not news */
    fprintf(stderr, "cat: %s\n", soon_strerror(c.err));
  if (close_err)
    fprintf(stderr, "cat: loop close: %s\n", soon_strerror(close_err));
  return c.err || close_err ? 1 : 0;
}
