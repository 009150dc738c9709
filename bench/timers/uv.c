/* timers/uv.c: n= timers with deadlines spread over n/1000 ms (libuv's
 * million-timers), run, close; CPU ns per timer and peak RSS. */
#include "common.h"
#include <uv.h>

static size_t n, fired;
static unsigned char *seen;
static uv_timer_t *timers;

static void on_timer(uv_timer_t *t) {
  size_t i = (size_t)(t - timers);
  if (seen[i]++)
    bench_fail("timer %zu fired twice", i);
  fired++;
}

int main(int argc, char **argv) {
  uv_loop_t loop;
  n = (size_t)bench_arg(argc, argv, "n", 1000000);
  bench_fresh_child(); /* so that ru_maxrss is this workload's alone */
  BENCH_OK(uv_loop_init(&loop));
  timers = malloc(n * sizeof *timers);
  seen = calloc(n, 1);
  BENCH_CHECK(timers && seen);

  double cpu0 = bench_cpu_s();
  uint64_t t0 = bench_ns();
  uint64_t timeout = 0;
  for (size_t i = 0; i < n; i++) {
    if (i % 1000 == 0)
      timeout++;
    BENCH_OK(uv_timer_init(&loop, &timers[i]));
    BENCH_OK(uv_timer_start(&timers[i], on_timer, timeout, 0));
  }
  BENCH_OK(uv_run(&loop, UV_RUN_DEFAULT));
  BENCH_CHECK(fired == n);
  for (size_t i = 0; i < n; i++)
    uv_close((uv_handle_t *)&timers[i], NULL);
  BENCH_OK(uv_run(&loop, UV_RUN_DEFAULT));
  double cpu = bench_cpu_s() - cpu0;
  uint64_t wall = bench_ns() - t0;
  BENCH_OK(uv_loop_close(&loop));

  bench_result("timers", "libuv", cpu * 1e9 / (double)n, "ns/timer");
  bench_result("timers-rss", "libuv", bench_maxrss_mib(), "MiB");
  fprintf(stderr, "libuv: %zu timers, %.3f s CPU, %.3f s wall\n", n, cpu,
          wall / 1e9);
  free(timers);
  free(seen);
  return 0;
}
