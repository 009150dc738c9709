/* pingpong/ev.c: conns= clients and server on ev_io with read/write by
 * hand, one 5-byte ping in flight each; round trips per second. */
#include "common.h"
#include <ev.h>

#define PING "PING\n"
#define PING_LEN 5

typedef struct conn {
  ev_io io;
  uint64_t sent, recvd;
} conn;

static struct ev_loop *loop;
static ev_io listen_io;
static ev_timer stop_timer;
static conn *clients;
static int nconns, naccepted, nclosed, nsrvclosed, stopping;
static uint64_t quota = UINT64_MAX;
static uint64_t pings, pongs, pongs_at_stop, echoed;
static uint64_t t_start, t_stop;

/* A 5-byte write into an empty socket buffer is never short; if it were,
 * the run would fail loudly rather than lose bytes. */
static void write_all(int fd, const char *p, size_t n) {
  ssize_t w = write(fd, p, n);
  if (w != (ssize_t)n)
    bench_fail("short write (%zd of %zu): %s", w, n, strerror(errno));
}

static void echo_cb(struct ev_loop *l, ev_io *w, int revents) {
  (void)revents;
  char buf[1024];
  for (;;) {
    ssize_t n = read(w->fd, buf, sizeof buf);
    if (n > 0) {
      echoed += (uint64_t)n;
      write_all(w->fd, buf, (size_t)n);
      if ((size_t)n < sizeof buf)
        return;
    } else if (n == 0) {
      ev_io_stop(l, w);
      close(w->fd);
      free(w);
      nsrvclosed++;
      return;
    } else if (errno == EAGAIN) {
      return;
    } else {
      bench_fail("server read: %s", strerror(errno));
    }
  }
}

static void accept_cb(struct ev_loop *l, ev_io *w, int revents) {
  (void)revents;
  for (;;) {
    int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN)
        return;
      bench_fail("accept: %s", strerror(errno));
    }
    naccepted++;
    bench_nodelay(fd);
    ev_io *io = malloc(sizeof *io);
    BENCH_CHECK(io);
    ev_io_init(io, echo_cb, fd, EV_READ);
    ev_io_start(l, io);
  }
}

static void send_ping(conn *c) {
  pings++;
  c->sent += PING_LEN;
  write_all(c->io.fd, PING, PING_LEN);
}

static void client_cb(struct ev_loop *l, ev_io *w, int revents) {
  (void)revents;
  conn *c = (conn *)w;
  char buf[1024];
  ssize_t n = read(w->fd, buf, sizeof buf);
  if (n < 0 && errno == EAGAIN)
    return;
  if (n <= 0)
    bench_fail("client read: %s", n == 0 ? "EOF" : strerror(errno));
  for (ssize_t i = 0; i < n; i++)
    if (buf[i] != PING[(c->recvd + (uint64_t)i) % PING_LEN])
      bench_fail("pong corrupted");
  c->recvd += (uint64_t)n;
  if (c->recvd > c->sent)
    bench_fail("more pong than ping");
  if (c->recvd < c->sent)
    return;
  pongs++;
  if (!stopping && pings < quota) {
    send_ping(c);
    return;
  }
  ev_io_stop(l, w);
  close(w->fd);
  if (++nclosed == nconns) {
    ev_io_stop(l, &listen_io);
    close(listen_io.fd);
  }
}

static void on_stop(struct ev_loop *l, ev_timer *t, int revents) {
  (void)l, (void)t, (void)revents;
  stopping = 1;
  t_stop = bench_ns();
  pongs_at_stop = pongs;
}

int main(int argc, char **argv) {
  char name[64];
  nconns = (int)bench_arg(argc, argv, "conns", 1);
  double duration = bench_arg(argc, argv, "duration", 0.5);
  double rt = bench_arg(argc, argv, "rt", 0);
  if (rt > 0)
    quota = (uint64_t)rt;
  snprintf(name, sizeof name, "pingpong-%d", nconns);
  bench_nofile(2 * (unsigned long)nconns + 64);
  loop = ev_loop_new(EVFLAG_AUTO);
  BENCH_CHECK(loop);
  clients = calloc((size_t)nconns, sizeof *clients);
  BENCH_CHECK(clients);

  struct sockaddr_in addr;
  int lfd = bench_listen(&addr);
  ev_io_init(&listen_io, accept_cb, lfd, EV_READ);
  ev_io_start(loop, &listen_io);
  /* No connect API in libev: connect before the loop runs (not measured). */
  for (int i = 0; i < nconns; i++) {
    int fd = bench_connect(&addr);
    bench_nodelay(fd);
    ev_io_init(&clients[i].io, client_cb, fd, EV_READ);
    ev_io_start(loop, &clients[i].io);
  }
  t_start = bench_ns();
  if (quota == UINT64_MAX) {
    /* The loop's cached time is from before the set-up above. */
    ev_now_update(loop);
    ev_timer_init(&stop_timer, on_stop, duration, 0);
    ev_timer_start(loop, &stop_timer);
  }
  for (int i = 0; i < nconns; i++)
    if (pings < quota)
      send_ping(&clients[i]);
  ev_run(loop, 0);
  uint64_t t_end = bench_ns();

  BENCH_CHECK(nclosed == nconns && naccepted == nconns && nsrvclosed == nconns);
  BENCH_CHECK(pongs == pings && pings > 0);
  uint64_t sent = 0;
  for (int i = 0; i < nconns; i++) {
    BENCH_CHECK(clients[i].recvd == clients[i].sent);
    sent += clients[i].sent;
  }
  BENCH_CHECK(echoed == sent);
  ev_loop_destroy(loop);
  double rate = quota == UINT64_MAX
                    ? (double)pongs_at_stop / ((double)(t_stop - t_start) / 1e9)
                    : (double)pongs / ((double)(t_end - t_start) / 1e9);
  bench_result(name, "libev", rate, "rt/s");
  free(clients);
  return 0;
}
