/* chain/event.c: libevent's own test/bench.c: n= watched socketpair
 * ends, active= written, each read passes a byte on; us per iteration. */
#include "common.h"
#include <event2/event.h>
#include <event2/event_struct.h>

static int npipes, nactive, nwrites, *pipes;
static struct event *events;
static int count, writes, fired, failures;

static void read_cb(evutil_socket_t fd, short which, void *arg) {
  (void)which;
  int idx = (int)(intptr_t)arg, widx = idx + 1;
  unsigned char ch;
  ssize_t n = recv(fd, &ch, 1, 0);
  if (n >= 0)
    count += (int)n;
  else
    failures++;
  if (writes) {
    if (widx >= npipes)
      widx -= npipes;
    if (send(pipes[widx ^ 1], "e", 1, 0) != 1)
      failures++;
    writes--;
    fired++;
  }
}

static double run_once(struct event_base *base, int first) {
  for (int i = 0; i < npipes; i++) {
    if (!first)
      BENCH_OK(event_del(&events[i]));
    BENCH_OK(event_assign(&events[i], base, pipes[i], EV_READ | EV_PERSIST,
                          read_cb, (void *)(intptr_t)i));
    BENCH_OK(event_add(&events[i], NULL));
  }
  event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);

  fired = 0;
  int space = npipes / nactive;
  for (int i = 0; i < nactive; i++, fired++)
    if (send(pipes[(i * space) ^ 1], "e", 1, 0) != 1)
      failures++;
  count = 0;
  writes = nwrites;
  uint64_t t0 = bench_ns();
  do
    BENCH_OK(event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK));
  while (count != fired);
  uint64_t t1 = bench_ns();
  if (failures)
    bench_fail("%d send/recv failures", failures);
  return (double)(t1 - t0) / 1e3;
}

int main(int argc, char **argv) {
  char name[64];
  npipes = (int)bench_arg(argc, argv, "n", 100);
  nactive = (int)bench_arg(argc, argv, "active", 100);
  nwrites = (int)bench_arg(argc, argv, "writes", 1000);
  int iters = (int)bench_arg(argc, argv, "iters", 25);
  if (nactive > npipes)
    nactive = npipes;
  BENCH_CHECK(npipes >= 2 && npipes % 2 == 0);
  snprintf(name, sizeof name, "chain-%d", npipes);
  bench_nofile((unsigned long)npipes + 64);
  struct event_base *base = event_base_new();
  pipes = malloc((size_t)npipes * sizeof *pipes);
  events = calloc((size_t)npipes, sizeof *events);
  BENCH_CHECK(base && pipes && events);
  for (int i = 0; i < npipes; i += 2)
    BENCH_OK(evutil_socketpair(AF_UNIX, SOCK_STREAM, 0, &pipes[i]));

  double total = 0;
  run_once(base, 1);
  for (int k = 0; k < iters; k++)
    total += run_once(base, 0);

  for (int i = 0; i < npipes; i++) {
    unsigned char ch;
    BENCH_CHECK(recv(pipes[i], &ch, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN);
    BENCH_OK(event_del(&events[i]));
  }
  event_base_free(base);
  for (int i = 0; i < npipes; i++)
    close(pipes[i]);
  bench_result(name, "libevent", total / iters, "us/iter");
  return 0;
}
