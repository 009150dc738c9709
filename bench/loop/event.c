/* loop/event.c: libevent has no idle event: event_base_loop(NONBLOCK)
 * called in a loop, one never-ready fd watched; iterations/s. */
#include "common.h"
#include <event2/event.h>

static void read_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what, (void)arg;
  bench_fail("the idle pipe became readable");
}

int main(int argc, char **argv) {
  int p[2];
  uint64_t target = (uint64_t)bench_arg(argc, argv, "iterations", 1000000),
           iters;
  struct event_base *base = event_base_new();
  BENCH_CHECK(base);
  BENCH_OK(pipe(p));
  struct event *ev = event_new(base, p[0], EV_READ | EV_PERSIST, read_cb, NULL);
  BENCH_CHECK(ev);
  BENCH_OK(event_add(ev, NULL));

  uint64_t t0 = bench_ns();
  for (iters = 0; iters < target; iters++)
    if (event_base_loop(base, EVLOOP_NONBLOCK) != 0) /* 1: nothing registered */
      bench_fail("event_base_loop did not run an iteration");
  uint64_t t1 = bench_ns();
  BENCH_CHECK(iters == target);
  event_free(ev);
  event_base_free(base);
  close(p[0]);
  close(p[1]);
  bench_result("loop", "libevent", (double)iters / ((double)(t1 - t0) / 1e9),
               "iter/s");
  return 0;
}
