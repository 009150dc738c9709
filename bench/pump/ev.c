/* pump/ev.c: conns= clients write 64 KiB buffers until EAGAIN on ev_io,
 * servers count and spot-check every byte; Gbit/s. */
#include "common.h"
#include <ev.h>

#define BUFSZ 65536
#define READS_PER_EVENT 32

typedef struct conn {
  ev_io io;
  uint64_t bytes; /* sent (client) or received (server) */
} conn;

static struct ev_loop *loop;
static ev_io listen_io;
static ev_timer stop_timer;
static conn *clients, *servers;
static int nconns, naccepted, neof, stopping;
static uint64_t received, received_at_stop, t_start, t_stop;
static double duration;
static char wbuf[BUFSZ], rbuf[BUFSZ];

static void finish_client(conn *c) {
  ev_io_stop(loop, &c->io);
  BENCH_OK(shutdown(c->io.fd, SHUT_WR));
  close(c->io.fd); /* nothing unread on this side: the data still arrives */
}

static void client_cb(struct ev_loop *l, ev_io *w, int revents) {
  (void)l, (void)revents;
  conn *c = (conn *)w;
  for (;;) {
    size_t off = c->bytes % BUFSZ;
    ssize_t n = write(w->fd, wbuf + off, BUFSZ - off);
    if (n < 0) {
      if (errno == EAGAIN)
        return;
      bench_fail("write: %s", strerror(errno));
    }
    c->bytes += (uint64_t)n;
  }
}

static void server_cb(struct ev_loop *l, ev_io *w, int revents) {
  (void)revents;
  conn *c = (conn *)w;
  for (int i = 0; i < READS_PER_EVENT; i++) {
    ssize_t n = read(w->fd, rbuf, sizeof rbuf);
    if (n > 0) {
      if ((unsigned char)rbuf[0] != (unsigned char)wbuf[c->bytes % BUFSZ] ||
          (unsigned char)rbuf[n - 1] !=
              (unsigned char)wbuf[(c->bytes + (uint64_t)n - 1) % BUFSZ])
        bench_fail("stream corrupted at %llu", (unsigned long long)c->bytes);
      c->bytes += (uint64_t)n;
      received += (uint64_t)n;
      if (n < (ssize_t)sizeof rbuf)
        return;
    } else if (n == 0) {
      ev_io_stop(l, w);
      close(w->fd);
      if (++neof == nconns) {
        ev_io_stop(l, &listen_io);
        close(listen_io.fd);
      }
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
    BENCH_CHECK(naccepted < nconns);
    conn *c = &servers[naccepted++];
    ev_io_init(&c->io, server_cb, fd, EV_READ);
    ev_io_start(l, &c->io);
  }
}

static void on_stop(struct ev_loop *l, ev_timer *t, int revents) {
  (void)revents;
  /* On a loaded machine the stop can come before the first byte is read:
   * nothing would be measured, so the run goes on for one more period. */
  if (!received) {
    ev_timer_set(t, duration, 0);
    ev_timer_start(l, t);
    return;
  }
  stopping = 1;
  t_stop = bench_ns();
  received_at_stop = received;
  for (int i = 0; i < nconns; i++)
    finish_client(&clients[i]);
}

int main(int argc, char **argv) {
  char name[64];
  nconns = (int)bench_arg(argc, argv, "conns", 1);
  duration = bench_arg(argc, argv, "duration", 0.5);
  snprintf(name, sizeof name, "pump-%d", nconns);
  for (int i = 0; i < BUFSZ; i++)
    wbuf[i] = (char)bench_pattern((uint64_t)i);
  bench_nofile(2 * (unsigned long)nconns + 64);
  loop = ev_loop_new(EVFLAG_AUTO);
  clients = calloc((size_t)nconns, sizeof *clients);
  servers = calloc((size_t)nconns, sizeof *servers);
  BENCH_CHECK(loop && clients && servers);

  struct sockaddr_in addr;
  int lfd = bench_listen(&addr);
  ev_io_init(&listen_io, accept_cb, lfd, EV_READ);
  ev_io_start(loop, &listen_io);
  for (int i = 0; i < nconns; i++) {
    int fd = bench_connect(&addr);
    ev_io_init(&clients[i].io, client_cb, fd, EV_WRITE);
    ev_io_start(loop, &clients[i].io);
  }
  t_start = bench_ns();
  /* The loop's cached time is from before the set-up above. */
  ev_now_update(loop);
  ev_timer_init(&stop_timer, on_stop, duration, 0);
  ev_timer_start(loop, &stop_timer);
  ev_run(loop, 0);

  BENCH_CHECK(neof == nconns && naccepted == nconns);
  uint64_t sent = 0;
  for (int i = 0; i < nconns; i++)
    sent += clients[i].bytes;
  bench_pump_check(sent, received, received_at_stop);
  ev_loop_destroy(loop);
  bench_result(name, "libev",
               (double)received_at_stop * 8 /
                   ((double)(t_stop - t_start) / 1e9) / 1e9,
               "Gbit/s");
  free(clients);
  free(servers);
  return 0;
}
