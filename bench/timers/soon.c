/* timers/soon.c: n= timers with deadlines spread over n/1000 ms (libuv's
 * million-timers), run, close; CPU ns per timer and peak RSS. */
#include "../soon_util.h"

static size_t n, fired;
static unsigned char *seen;
static soon_timer *timers;

static void on_timer(soon_timer *t) {
  size_t i = (size_t)(t - timers);
  if (seen[i]++)
    bench_fail("timer %zu fired twice", i);
  fired++;
}

int main(int argc, char **argv) {
  char impl[64];
  soon_loop loop;
  n = (size_t)bench_arg(argc, argv, "n", 1000000);
  bench_fresh_child(); /* so that ru_maxrss is this workload's alone */
  soon_bench_loop(&loop, impl, sizeof impl);
  timers = malloc(n * sizeof *timers);
  seen = calloc(n, 1);
  BENCH_CHECK(timers && seen);

  double cpu0 = bench_cpu_s();
  uint64_t t0 = bench_ns();
  uint64_t timeout = 0;
  for (size_t i = 0; i < n; i++) {
    if (i % 1000 == 0)
      timeout++;
    BENCH_OK(soon_timer_init(&loop, &timers[i]));
    BENCH_OK(soon_timer_start(&timers[i], on_timer, timeout, 0));
  }
  BENCH_OK(soon_run(&loop, SOON_RUN_DEFAULT));
  BENCH_CHECK(fired == n); /* every timer fired (and none twice) */
  for (size_t i = 0; i < n; i++)
    BENCH_OK(soon_close((soon_handle *)&timers[i], NULL));
  BENCH_OK(soon_run(&loop, SOON_RUN_DEFAULT));
  double cpu = bench_cpu_s() - cpu0;
  uint64_t wall = bench_ns() - t0;
  BENCH_OK(soon_loop_close(&loop));

  bench_result("timers", impl, cpu * 1e9 / (double)n, "ns/timer");
  bench_result("timers-rss", impl, bench_maxrss_mib(), "MiB");
  fprintf(stderr, "%s: %zu timers, %.3f s CPU, %.3f s wall\n", impl, n, cpu,
          wall / 1e9);
  free(timers);
  free(seen);
  return 0;
}
