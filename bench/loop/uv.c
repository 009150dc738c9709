/* loop/uv.c: empty iterations driven by a uv_idle_t, one never-ready fd
 * watched (uv_poll_t) so every iteration polls; iterations/s. */
#include "common.h"
#include <uv.h>

static uint64_t iters, target;
static uv_idle_t idle;
static uv_poll_t poll_h;

static void poll_cb(uv_poll_t *w, int status, int events) {
  (void)w, (void)status, (void)events;
  bench_fail("the idle pipe became readable");
}

static void idle_cb(uv_idle_t *h) {
  if (++iters < target)
    return;
  BENCH_OK(uv_idle_stop(h));
  BENCH_OK(uv_poll_stop(&poll_h));
}

int main(int argc, char **argv) {
  uv_loop_t loop;
  int p[2];
  target = (uint64_t)bench_arg(argc, argv, "iterations", 1000000);
  BENCH_OK(uv_loop_init(&loop));
  BENCH_OK(pipe(p));
  BENCH_OK(uv_poll_init(&loop, &poll_h, p[0]));
  BENCH_OK(uv_poll_start(&poll_h, UV_READABLE, poll_cb));
  BENCH_OK(uv_idle_init(&loop, &idle));
  BENCH_OK(uv_idle_start(&idle, idle_cb));

  uint64_t t0 = bench_ns();
  BENCH_OK(uv_run(&loop, UV_RUN_DEFAULT));
  uint64_t t1 = bench_ns();
  BENCH_CHECK(iters == target);
  uv_close((uv_handle_t *)&idle, NULL);
  uv_close((uv_handle_t *)&poll_h, NULL);
  BENCH_OK(uv_run(&loop, UV_RUN_DEFAULT));
  BENCH_OK(uv_loop_close(&loop));
  close(p[0]);
  close(p[1]);
  bench_result("loop", "libuv", (double)iters / ((double)(t1 - t0) / 1e9),
               "iter/s");
  return 0;
}
