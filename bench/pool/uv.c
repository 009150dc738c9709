/* pool/uv.c: n= no-op uv_queue_work requests submitted at once, each
 * counted in its after-callback; items per second. */
#include "common.h"
#include <uv.h>

static size_t n, done;
static uv_work_t *reqs;
static unsigned char *ran;

static void work(uv_work_t *req) { ran[(size_t)(req - reqs)] = 1; }

static void after(uv_work_t *req, int status) {
  if (status != 0)
    bench_fail("work status %s", uv_strerror(status));
  if (!ran[(size_t)(req - reqs)])
    bench_fail("after-callback before the work ran");
  done++;
}

int main(int argc, char **argv) {
  uv_loop_t loop;
  n = (size_t)bench_arg(argc, argv, "n", 1000000);
  BENCH_OK(uv_loop_init(&loop));
  reqs = calloc(n, sizeof *reqs);
  ran = calloc(n, 1);
  BENCH_CHECK(reqs && ran);

  uint64_t t0 = bench_ns();
  for (size_t i = 0; i < n; i++)
    BENCH_OK(uv_queue_work(&loop, &reqs[i], work, after));
  BENCH_OK(uv_run(&loop, UV_RUN_DEFAULT));
  uint64_t t1 = bench_ns();
  BENCH_CHECK(done == n);
  BENCH_OK(uv_loop_close(&loop));
  bench_result("pool", "libuv", (double)n / ((double)(t1 - t0) / 1e9),
               "items/s");
  free(reqs);
  free(ran);
  return 0;
}
