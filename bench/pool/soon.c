/* pool/soon.c: n= no-op soon_work requests submitted at once, each
 * counted in its after-callback; items per second. */
#include "../soon_util.h"

static size_t n, done;
static soon_work_req *reqs;
static unsigned char *ran;

static void work(soon_work_req *req) { ran[(size_t)(req - reqs)] = 1; }

static void after(soon_work_req *req, int status) {
  if (status != 0)
    bench_fail("work status %s", soon_strerror(status));
  if (!ran[(size_t)(req - reqs)])
    bench_fail("after-callback before the work ran");
  done++;
}

int main(int argc, char **argv) {
  char impl[64];
  soon_loop loop;
  n = (size_t)bench_arg(argc, argv, "n", 1000000);
  soon_bench_loop(&loop, impl, sizeof impl);
  reqs = calloc(n, sizeof *reqs);
  ran = calloc(n, 1);
  BENCH_CHECK(reqs && ran);

  uint64_t t0 = bench_ns();
  for (size_t i = 0; i < n; i++)
    BENCH_OK(soon_work(&loop, &reqs[i], work, after));
  BENCH_OK(soon_run(&loop, SOON_RUN_DEFAULT));
  uint64_t t1 = bench_ns();
  BENCH_CHECK(done == n); /* every item ran and came back, once */
  BENCH_OK(soon_loop_close(&loop));
  bench_result("pool", impl, (double)n / ((double)(t1 - t0) / 1e9), "items/s");
  free(reqs);
  free(ran);
  return 0;
}
