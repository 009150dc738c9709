/* async/uv.c: threads= workers, each with its own libuv loop, ping-pong
 * with the main loop through a pair of uv_async_t; round trips/s. */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

typedef struct pair {
  uv_async_t to_worker;
  uv_async_t to_main;
  uv_loop_t wloop;
  pthread_t tid;
  atomic_int stop;
  uint64_t pings, pongs;
  uint64_t handled;
} pair;

static uv_loop_t mloop;
static pair *pairs;
static int nthreads, ndone;
static uint64_t deadline;
static pthread_barrier_t ready;

static void worker_cb(uv_async_t *a) {
  pair *p = a->data;
  if (atomic_load(&p->stop)) {
    uv_close((uv_handle_t *)a, NULL);
    return;
  }
  p->handled++;
  BENCH_OK(uv_async_send(&p->to_main));
}

static void *worker(void *arg) {
  pair *p = arg;
  BENCH_OK(uv_loop_init(&p->wloop));
  BENCH_OK(uv_async_init(&p->wloop, &p->to_worker, worker_cb));
  p->to_worker.data = p;
  pthread_barrier_wait(&ready);
  BENCH_OK(uv_run(&p->wloop, UV_RUN_DEFAULT));
  BENCH_OK(uv_loop_close(&p->wloop));
  return NULL;
}

static void main_cb(uv_async_t *a) {
  pair *p = a->data;
  p->pongs++;
  if (bench_ns() < deadline) {
    p->pings++;
    BENCH_OK(uv_async_send(&p->to_worker));
    return;
  }
  atomic_store(&p->stop, 1);
  BENCH_OK(uv_async_send(&p->to_worker));
  uv_close((uv_handle_t *)a, NULL);
  ndone++;
}

int main(int argc, char **argv) {
  char name[64];
  nthreads = (int)bench_arg(argc, argv, "threads", 1);
  double duration = bench_arg(argc, argv, "duration", 0.5);
  snprintf(name, sizeof name, "async-%d", nthreads);
  BENCH_OK(uv_loop_init(&mloop));
  pairs = calloc((size_t)nthreads, sizeof *pairs);
  BENCH_CHECK(pairs);
  pthread_barrier_init(&ready, NULL, (unsigned)nthreads + 1);
  for (int i = 0; i < nthreads; i++) {
    BENCH_OK(uv_async_init(&mloop, &pairs[i].to_main, main_cb));
    pairs[i].to_main.data = &pairs[i];
    BENCH_CHECK(pthread_create(&pairs[i].tid, NULL, worker, &pairs[i]) == 0);
  }
  pthread_barrier_wait(&ready);

  uint64_t t0 = bench_ns();
  deadline = t0 + (uint64_t)(duration * 1e9);
  for (int i = 0; i < nthreads; i++) {
    pairs[i].pings = 1;
    BENCH_OK(uv_async_send(&pairs[i].to_worker));
  }
  BENCH_OK(uv_run(&mloop, UV_RUN_DEFAULT));
  uint64_t t1 = bench_ns();
  uint64_t total = 0;
  for (int i = 0; i < nthreads; i++) {
    BENCH_CHECK(pthread_join(pairs[i].tid, NULL) == 0);
    BENCH_CHECK(pairs[i].pings == pairs[i].pongs &&
                pairs[i].handled == pairs[i].pings);
    total += pairs[i].pongs;
  }
  BENCH_CHECK(ndone == nthreads && total > 0);
  BENCH_OK(uv_loop_close(&mloop));
  bench_result(name, "libuv", (double)total / ((double)(t1 - t0) / 1e9),
               "rt/s");
  free(pairs);
  return 0;
}
