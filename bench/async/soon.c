/* async/soon.c: threads= workers, each with its own soon loop, ping-pong
 * with the main loop through a pair of async handles; round trips/s. */
#include "../soon_util.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct pair {
  soon_async to_worker; /* on the worker's loop */
  soon_async to_main;   /* on the main loop */
  soon_loop wloop;
  pthread_t tid;
  atomic_int stop;
  uint64_t pings, pongs; /* main thread's */
  uint64_t handled;      /* worker thread's, read after join */
} pair;

static soon_loop mloop;
static pair *pairs;
static int nthreads, ndone;
static uint64_t deadline;
static pthread_barrier_t ready;

static void worker_cb(soon_async *a) {
  pair *p = a->data;
  if (atomic_load(&p->stop)) {
    soon_close((soon_handle *)a, NULL);
    return;
  }
  p->handled++;
  BENCH_OK(soon_async_send(&p->to_main));
}

static void *worker(void *arg) {
  pair *p = arg;
  soon_bench_loop(&p->wloop, NULL, 0);
  BENCH_OK(soon_async_init(&p->wloop, &p->to_worker, worker_cb));
  p->to_worker.data = p;
  pthread_barrier_wait(&ready);
  BENCH_OK(soon_run(&p->wloop, SOON_RUN_DEFAULT));
  BENCH_OK(soon_loop_close(&p->wloop));
  return NULL;
}

static void main_cb(soon_async *a) {
  pair *p = a->data;
  p->pongs++;
  if (bench_ns() < deadline) {
    p->pings++;
    BENCH_OK(soon_async_send(&p->to_worker));
    return;
  }
  atomic_store(&p->stop, 1);
  BENCH_OK(soon_async_send(&p->to_worker));
  soon_close((soon_handle *)a, NULL);
  ndone++;
}

int main(int argc, char **argv) {
  char impl[64], name[64];
  nthreads = (int)bench_arg(argc, argv, "threads", 1);
  double duration = bench_arg(argc, argv, "duration", 0.5);
  snprintf(name, sizeof name, "async-%d", nthreads);
  soon_bench_loop(&mloop, impl, sizeof impl);
  pairs = calloc((size_t)nthreads, sizeof *pairs);
  BENCH_CHECK(pairs);
  pthread_barrier_init(&ready, NULL, (unsigned)nthreads + 1);
  for (int i = 0; i < nthreads; i++) {
    BENCH_OK(soon_async_init(&mloop, &pairs[i].to_main, main_cb));
    pairs[i].to_main.data = &pairs[i];
    BENCH_CHECK(pthread_create(&pairs[i].tid, NULL, worker, &pairs[i]) == 0);
  }
  pthread_barrier_wait(&ready);

  uint64_t t0 = bench_ns();
  deadline = t0 + (uint64_t)(duration * 1e9);
  for (int i = 0; i < nthreads; i++) {
    pairs[i].pings = 1;
    BENCH_OK(soon_async_send(&pairs[i].to_worker));
  }
  BENCH_OK(soon_run(&mloop, SOON_RUN_DEFAULT));
  uint64_t t1 = bench_ns();
  uint64_t total = 0;
  for (int i = 0; i < nthreads; i++) {
    BENCH_CHECK(pthread_join(pairs[i].tid, NULL) == 0);
    /* Self-check: every ping was handled and answered, exactly once. */
    BENCH_CHECK(pairs[i].pings == pairs[i].pongs &&
                pairs[i].handled == pairs[i].pings);
    total += pairs[i].pongs;
  }
  BENCH_CHECK(ndone == nthreads && total > 0);
  BENCH_OK(soon_loop_close(&mloop));
  bench_result(name, impl, (double)total / ((double)(t1 - t0) / 1e9), "rt/s");
  free(pairs);
  return 0;
}
