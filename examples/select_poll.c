/* select_poll.c: one readiness program run on select, poll, epoll and io_uring
 * in turn. A timer writes into a pipe; an fd watcher is told the read end
 * became readable. */
#include <soon.h>
#include <stdio.h>
#include <unistd.h>

typedef struct {
  int fds[2];
  soon_io reader;
  soon_timer writer;
  char got[32];
  uint64_t start;
} demo;

static void on_readable(soon_io *io, int status, int events) {
  demo *d = io->data;
  if (status < 0) {
    fprintf(stderr, "watcher: %s\n", soon_strerror(status));
  } else if (events & SOON_READABLE) {
    ssize_t n = read(io->fd, d->got, sizeof d->got - 1);
    d->got[n > 0 ? n : 0] = '\0';
    printf("  [%llu ms] readable: read \"%s\"\n",
           (unsigned long long)(soon_now(io->loop) - d->start), d->got);
  }
  soon_close((soon_handle *)io, NULL);
}

static void on_write_time(soon_timer *t) {
  demo *d = t->data;
  printf("  [%llu ms] timer: writing into the pipe\n",
         (unsigned long long)(soon_now(t->loop) - d->start));
  if (write(d->fds[1], "hello", 5) != 5)
    perror("write");
  soon_close((soon_handle *)t, NULL);
}

static int run_on(const char *backend) {
  soon_loop loop;
  soon_loop_options opts = {.backend = backend};
  demo d = {.got = ""};
  int err = soon_loop_init_ex(&loop, &opts);
  if (err) {
    printf("%s: not available (%s)\n", backend, soon_strerror(err));
    return 0;
  }
  printf("%s:\n", soon_backend_name(&loop));
  d.start = soon_now(&loop);
  if (pipe(d.fds) != 0)
    return -1;
  soon_io_init(&loop, &d.reader, d.fds[0]);
  d.reader.data = &d;
  soon_io_start(&d.reader, SOON_READABLE, on_readable);
  soon_timer_init(&loop, &d.writer);
  d.writer.data = &d;
  soon_timer_start(&d.writer, on_write_time, 10, 0);
  soon_run(&loop, SOON_RUN_DEFAULT);
  close(d.fds[0]);
  close(d.fds[1]);
  return soon_loop_close(&loop) == 0 && d.got[0] == 'h' ? 0 : -1;
}

int main(void) {
  const char *backends[] = {"select", "poll", "epoll", "uring"};
  for (int i = 0; i < 4; i++)
    if (run_on(backends[i]) != 0)
      return 1;
  return 0;
}
