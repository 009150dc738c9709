/* pound/ev.c: conns= clients connect to an ev_io listener that accepts
 * and closes; clients see EOF and reconnect; accepts/s. */
#include "common.h"
#include <ev.h>

typedef struct slot {
  ev_io io;
} slot;

static struct ev_loop *loop;
static ev_io listen_io;
static ev_timer stop_timer;
static slot *slots;
static struct sockaddr_in addr;
static int nconns, nfinished, stopping;
static uint64_t accepted, accepted_at_stop, connected, eofs, t_start, t_stop;

static void accept_cb(struct ev_loop *l, ev_io *w, int revents) {
  (void)l, (void)revents;
  for (;;) {
    int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN)
        return;
      bench_fail("accept: %s", strerror(errno));
    }
    accepted++;
    close(fd);
  }
}

static void slot_start(slot *s);

static void on_readable(struct ev_loop *l, ev_io *w, int revents) {
  (void)revents;
  slot *s = (slot *)w;
  char buf[64];
  ssize_t n = read(w->fd, buf, sizeof buf);
  if (n < 0 && errno == EAGAIN)
    return;
  if (n != 0)
    bench_fail("client read: %zd (%s)", n,
               n < 0 ? strerror(errno) : "unexpected bytes");
  eofs++;
  ev_io_stop(l, w);
  close(w->fd);
  if (!stopping) {
    slot_start(s);
  } else if (++nfinished == nconns) {
    ev_io_stop(l, &listen_io);
    close(listen_io.fd);
  }
}

static void on_connected(struct ev_loop *l, ev_io *w, int revents) {
  (void)revents;
  int err = 0, fd = w->fd;
  socklen_t len = sizeof err;
  BENCH_OK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len));
  if (err)
    bench_fail("connect: %s", strerror(err));
  connected++;
  ev_io_stop(l, w);
  ev_io_init(w, on_readable, fd, EV_READ);
  ev_io_start(l, w);
}

static void slot_start(slot *s) {
  int fd = bench_connect_start(&addr);
  bench_linger0(fd);
  ev_io_init(&s->io, on_connected, fd, EV_WRITE);
  ev_io_start(loop, &s->io);
}

static void on_stop(struct ev_loop *l, ev_timer *t, int revents) {
  (void)l, (void)t, (void)revents;
  stopping = 1;
  t_stop = bench_ns();
  accepted_at_stop = accepted;
}

int main(int argc, char **argv) {
  char name[64];
  nconns = (int)bench_arg(argc, argv, "conns", 100);
  double duration = bench_arg(argc, argv, "duration", 0.5);
  snprintf(name, sizeof name, "pound-%d", nconns);
  bench_nofile(2 * (unsigned long)nconns + 64);
  loop = ev_loop_new(EVFLAG_AUTO);
  slots = calloc((size_t)nconns, sizeof *slots);
  BENCH_CHECK(loop && slots);

  int lfd = bench_listen(&addr);
  ev_io_init(&listen_io, accept_cb, lfd, EV_READ);
  ev_io_start(loop, &listen_io);
  t_start = bench_ns();
  /* The loop's cached time is from before the set-up above. */
  ev_now_update(loop);
  ev_timer_init(&stop_timer, on_stop, duration, 0);
  ev_timer_start(loop, &stop_timer);
  for (int i = 0; i < nconns; i++)
    slot_start(&slots[i]);
  ev_run(loop, 0);

  BENCH_CHECK(nfinished == nconns);
  BENCH_CHECK(accepted == connected && connected == eofs && accepted > 0);
  ev_loop_destroy(loop);
  bench_result(name, "libev",
               (double)accepted_at_stop / ((double)(t_stop - t_start) / 1e9),
               "accepts/s");
  free(slots);
  return 0;
}
