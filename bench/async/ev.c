/* async/ev.c: threads= workers, each with its own ev_loop, ping-pong
 * with the main loop through a pair of ev_async watchers; round trips/s. */
#include "common.h"
#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>

typedef struct pair {
  ev_async to_worker;
  ev_async to_main;
  struct ev_loop *wloop;
  pthread_t tid;
  atomic_int stop;
  uint64_t pings, pongs;
  uint64_t handled;
} pair;

static struct ev_loop *mloop;
static pair *pairs;
static int nthreads, ndone;
static uint64_t deadline;
static pthread_barrier_t ready;

static void worker_cb(struct ev_loop *l, ev_async *a, int revents) {
  (void)revents;
  pair *p = a->data;
  if (atomic_load(&p->stop)) {
    ev_async_stop(l, a);
    return;
  }
  p->handled++;
  ev_async_send(mloop, &p->to_main);
}

static void *worker(void *arg) {
  pair *p = arg;
  pthread_barrier_wait(&ready);
  ev_run(p->wloop, 0);
  return NULL;
}

static void main_cb(struct ev_loop *l, ev_async *a, int revents) {
  (void)revents;
  pair *p = a->data;
  p->pongs++;
  if (bench_ns() < deadline) {
    p->pings++;
    ev_async_send(p->wloop, &p->to_worker);
    return;
  }
  atomic_store(&p->stop, 1);
  ev_async_send(p->wloop, &p->to_worker);
  ev_async_stop(l, a);
  ndone++;
}

int main(int argc, char **argv) {
  char name[64];
  nthreads = (int)bench_arg(argc, argv, "threads", 1);
  double duration = bench_arg(argc, argv, "duration", 0.5);
  snprintf(name, sizeof name, "async-%d", nthreads);
  mloop = ev_loop_new(EVFLAG_AUTO);
  pairs = calloc((size_t)nthreads, sizeof *pairs);
  BENCH_CHECK(mloop && pairs);
  pthread_barrier_init(&ready, NULL, (unsigned)nthreads + 1);
  for (int i = 0; i < nthreads; i++) {
    pair *p = &pairs[i];
    p->wloop = ev_loop_new(EVFLAG_AUTO);
    BENCH_CHECK(p->wloop);
    ev_async_init(&p->to_main, main_cb);
    p->to_main.data = p;
    ev_async_start(mloop, &p->to_main);
    ev_async_init(&p->to_worker, worker_cb);
    p->to_worker.data = p;
    ev_async_start(p->wloop, &p->to_worker);
    BENCH_CHECK(pthread_create(&p->tid, NULL, worker, p) == 0);
  }
  pthread_barrier_wait(&ready);

  uint64_t t0 = bench_ns();
  deadline = t0 + (uint64_t)(duration * 1e9);
  for (int i = 0; i < nthreads; i++) {
    pairs[i].pings = 1;
    ev_async_send(pairs[i].wloop, &pairs[i].to_worker);
  }
  ev_run(mloop, 0);
  uint64_t t1 = bench_ns();
  uint64_t total = 0;
  for (int i = 0; i < nthreads; i++) {
    BENCH_CHECK(pthread_join(pairs[i].tid, NULL) == 0);
    BENCH_CHECK(pairs[i].pings == pairs[i].pongs &&
                pairs[i].handled == pairs[i].pings);
    total += pairs[i].pongs;
    ev_loop_destroy(pairs[i].wloop);
  }
  BENCH_CHECK(ndone == nthreads && total > 0);
  ev_loop_destroy(mloop);
  bench_result(name, "libev", (double)total / ((double)(t1 - t0) / 1e9),
               "rt/s");
  free(pairs);
  return 0;
}
