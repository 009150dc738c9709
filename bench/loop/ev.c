/* loop/ev.c: empty iterations driven by an ev_idle, one never-ready fd
 * watched (ev_io) so every iteration polls; iterations/s. */
#include "common.h"
#include <ev.h>

static uint64_t iters, target;
static ev_idle idle;
static ev_io io;

static void io_cb(struct ev_loop *l, ev_io *w, int revents) {
  (void)l, (void)w, (void)revents;
  bench_fail("the idle pipe became readable");
}

static void idle_cb(struct ev_loop *l, ev_idle *w, int revents) {
  (void)revents;
  if (++iters < target)
    return;
  ev_idle_stop(l, w);
  ev_io_stop(l, &io);
}

int main(int argc, char **argv) {
  int p[2];
  target = (uint64_t)bench_arg(argc, argv, "iterations", 1000000);
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  BENCH_CHECK(loop);
  BENCH_OK(pipe(p));
  ev_io_init(&io, io_cb, p[0], EV_READ);
  ev_io_start(loop, &io);
  ev_idle_init(&idle, idle_cb);
  ev_idle_start(loop, &idle);

  uint64_t t0 = bench_ns();
  ev_run(loop, 0);
  uint64_t t1 = bench_ns();
  BENCH_CHECK(iters == target);
  ev_loop_destroy(loop);
  close(p[0]);
  close(p[1]);
  bench_result("loop", "libev", (double)iters / ((double)(t1 - t0) / 1e9),
               "iter/s");
  return 0;
}
