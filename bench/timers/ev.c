/* timers/ev.c: n= timers with deadlines spread over n/1000 ms, run,
 * stopped; CPU ns per timer and peak RSS. */
#include "common.h"
#include <ev.h>

static size_t n, fired;
static unsigned char *seen;
static ev_timer *timers;

static void on_timer(struct ev_loop *l, ev_timer *t, int revents) {
  (void)l, (void)revents;
  size_t i = (size_t)(t - timers);
  if (seen[i]++)
    bench_fail("timer %zu fired twice", i);
  fired++;
}

int main(int argc, char **argv) {
  n = (size_t)bench_arg(argc, argv, "n", 1000000);
  bench_fresh_child(); /* so that ru_maxrss is this workload's alone */
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  timers = malloc(n * sizeof *timers);
  seen = calloc(n, 1);
  BENCH_CHECK(loop && timers && seen);

  double cpu0 = bench_cpu_s();
  uint64_t t0 = bench_ns();
  unsigned timeout = 0;
  for (size_t i = 0; i < n; i++) {
    if (i % 1000 == 0)
      timeout++;
    ev_timer_init(&timers[i], on_timer, timeout / 1000.0, 0);
    ev_timer_start(loop, &timers[i]);
  }
  ev_run(loop, 0);
  BENCH_CHECK(fired == n);
  for (size_t i = 0; i < n; i++) /* libev's "close": stop, nothing to free */
    ev_timer_stop(loop, &timers[i]);
  double cpu = bench_cpu_s() - cpu0;
  uint64_t wall = bench_ns() - t0;
  ev_loop_destroy(loop);

  bench_result("timers", "libev", cpu * 1e9 / (double)n, "ns/timer");
  bench_result("timers-rss", "libev", bench_maxrss_mib(), "MiB");
  fprintf(stderr, "libev: %zu timers, %.3f s CPU, %.3f s wall\n", n, cpu,
          wall / 1e9);
  free(timers);
  free(seen);
  return 0;
}
