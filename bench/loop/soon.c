/* loop/soon.c: empty iterations driven by an idle handle, one never-ready
 * fd watched so every iteration asks the backend; iterations/s. */
#include "../soon_util.h"

static uint64_t iters, target;
static soon_idle idle;
static soon_io io;

static void io_cb(soon_io *w, int status, int events) {
  (void)w, (void)status, (void)events;
  bench_fail("the idle pipe became readable");
}

static void idle_cb(soon_idle *h) {
  if (++iters < target)
    return;
  BENCH_OK(soon_idle_stop(h));
  BENCH_OK(soon_io_stop(&io));
}

int main(int argc, char **argv) {
  char impl[64];
  soon_loop loop;
  int p[2];
  target = (uint64_t)bench_arg(argc, argv, "iterations", 1000000);
  soon_bench_loop(&loop, impl, sizeof impl);
  BENCH_OK(pipe(p));
  BENCH_OK(soon_io_init(&loop, &io, p[0]));
  BENCH_OK(soon_io_start(&io, SOON_READABLE, io_cb));
  BENCH_OK(soon_idle_init(&loop, &idle));
  BENCH_OK(soon_idle_start(&idle, idle_cb));

  uint64_t t0 = bench_ns();
  BENCH_OK(soon_run(&loop, SOON_RUN_DEFAULT));
  uint64_t t1 = bench_ns();
  BENCH_CHECK(iters == target); /* one idle callback per iteration, no more */
  soon_close((soon_handle *)&idle, NULL);
  soon_close((soon_handle *)&io, NULL);
  BENCH_OK(soon_run(&loop, SOON_RUN_DEFAULT));
  BENCH_OK(soon_loop_close(&loop));
  close(p[0]);
  close(p[1]);
  bench_result("loop", impl, (double)iters / ((double)(t1 - t0) / 1e9),
               "iter/s");
  return 0;
}
