/* pound/event.c: conns= clients (raw events) connect to an evconnlistener
 * that accepts and closes; clients see EOF and reconnect; accepts/s. */
#include "common.h"
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/listener.h>

typedef struct slot {
  struct event ev;
  int fd;
} slot;

static struct event_base *base;
static struct evconnlistener *listener;
static struct event stop_timer;
static slot *slots;
static struct sockaddr_in addr;
static int nconns, nfinished, stopping;
static uint64_t accepted, accepted_at_stop, connected, eofs, t_start, t_stop;

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int len, void *arg) {
  (void)l, (void)sa, (void)len, (void)arg;
  accepted++;
  close(fd);
}

static void slot_start(slot *s);

static void on_readable(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  slot *s = arg;
  char buf[64];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n < 0 && errno == EAGAIN) {
    BENCH_OK(event_add(&s->ev, NULL));
    return;
  }
  if (n != 0)
    bench_fail("client read: %zd (%s)", n,
               n < 0 ? strerror(errno) : "unexpected bytes");
  eofs++;
  close(fd);
  if (!stopping)
    slot_start(s);
  else if (++nfinished == nconns)
    evconnlistener_free(listener);
}

static void on_connected(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  slot *s = arg;
  int err = 0;
  socklen_t len = sizeof err;
  BENCH_OK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len));
  if (err)
    bench_fail("connect: %s", strerror(err));
  connected++;
  BENCH_OK(event_assign(&s->ev, base, fd, EV_READ, on_readable, s));
  BENCH_OK(event_add(&s->ev, NULL));
}

static void slot_start(slot *s) {
  s->fd = bench_connect_start(&addr);
  bench_linger0(s->fd);
  BENCH_OK(event_assign(&s->ev, base, s->fd, EV_WRITE, on_connected, s));
  BENCH_OK(event_add(&s->ev, NULL));
}

static void on_stop(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what, (void)arg;
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
  base = event_base_new();
  slots = calloc((size_t)nconns, sizeof *slots);
  BENCH_CHECK(base && slots);

  addr = bench_loopback(0);
  listener = evconnlistener_new_bind(
      base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
      (struct sockaddr *)&addr, sizeof addr);
  BENCH_CHECK(listener);
  socklen_t len = sizeof addr;
  BENCH_OK(getsockname(evconnlistener_get_fd(listener),
                       (struct sockaddr *)&addr, &len));
  t_start = bench_ns();
  struct timeval tv = {(time_t)duration,
                       (suseconds_t)((duration - (time_t)duration) * 1e6)};
  BENCH_OK(evtimer_assign(&stop_timer, base, on_stop, NULL));
  BENCH_OK(evtimer_add(&stop_timer, &tv));
  for (int i = 0; i < nconns; i++)
    slot_start(&slots[i]);
  BENCH_OK(event_base_dispatch(base));

  BENCH_CHECK(nfinished == nconns);
  BENCH_CHECK(accepted == connected && connected == eofs && accepted > 0);
  event_base_free(base);
  bench_result(name, "libevent",
               (double)accepted_at_stop / ((double)(t_stop - t_start) / 1e9),
               "accepts/s");
  free(slots);
  return 0;
}
