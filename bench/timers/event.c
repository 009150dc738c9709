/* timers/event.c: n= timers with deadlines spread over n/1000 ms, run,
 * deleted; CPU ns per timer and peak RSS. */
#include "common.h"
#include <event2/event.h>
#include <event2/event_struct.h>

static size_t n, fired;
static unsigned char *seen;
static struct event *timers;

static void on_timer(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  size_t i = (size_t)((struct event *)arg - timers);
  if (seen[i]++)
    bench_fail("timer %zu fired twice", i);
  fired++;
}

int main(int argc, char **argv) {
  n = (size_t)bench_arg(argc, argv, "n", 1000000);
  bench_fresh_child(); /* so that ru_maxrss is this workload's alone */
  struct event_base *base = event_base_new();
  timers = malloc(n * sizeof *timers);
  seen = calloc(n, 1);
  BENCH_CHECK(base && timers && seen);

  double cpu0 = bench_cpu_s();
  uint64_t t0 = bench_ns();
  long timeout = 0;
  for (size_t i = 0; i < n; i++) {
    if (i % 1000 == 0)
      timeout++;
    struct timeval tv = {timeout / 1000, (timeout % 1000) * 1000};
    BENCH_OK(evtimer_assign(&timers[i], base, on_timer, &timers[i]));
    BENCH_OK(evtimer_add(&timers[i], &tv));
  }
  BENCH_OK(event_base_dispatch(base));
  BENCH_CHECK(fired == n);
  for (size_t i = 0; i < n; i++) /* libevent's "close": nothing to free */
    BENCH_OK(event_del(&timers[i]));
  double cpu = bench_cpu_s() - cpu0;
  uint64_t wall = bench_ns() - t0;
  event_base_free(base);

  bench_result("timers", "libevent", cpu * 1e9 / (double)n, "ns/timer");
  bench_result("timers-rss", "libevent", bench_maxrss_mib(), "MiB");
  fprintf(stderr, "libevent: %zu timers, %.3f s CPU, %.3f s wall\n", n, cpu,
          wall / 1e9);
  free(timers);
  free(seen);
  return 0;
}
