/* async/event.c: threads= workers with their own event_base; the async
 * handle is an fd-less event activated from the other thread; rt/s. */
#include "common.h"
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdatomic.h>

typedef struct pair {
  struct event to_worker; /* on the worker's base */
  struct event to_main;   /* on the main base */
  struct event_base *wbase;
  pthread_t tid;
  atomic_int stop;
  uint64_t pings, pongs;
  uint64_t handled;
} pair;

static struct event_base *mbase;
static pair *pairs;
static int nthreads, ndone;
static uint64_t deadline;
static pthread_barrier_t ready;

static void worker_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  pair *p = arg;
  if (atomic_load(&p->stop)) {
    event_base_loopbreak(p->wbase);
    return;
  }
  p->handled++;
  event_active(&p->to_main, EV_READ, 1); /* thread-safe: locks the main base */
}

static void *worker(void *arg) {
  pair *p = arg;
  pthread_barrier_wait(&ready);
  /* Nothing is added: keep looping on activations alone. */
  BENCH_OK(event_base_loop(p->wbase, EVLOOP_NO_EXIT_ON_EMPTY));
  return NULL;
}

static void main_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what;
  pair *p = arg;
  p->pongs++;
  if (bench_ns() < deadline) {
    p->pings++;
    event_active(&p->to_worker, EV_READ, 1);
    return;
  }
  atomic_store(&p->stop, 1);
  event_active(&p->to_worker, EV_READ, 1);
  if (++ndone == nthreads)
    event_base_loopbreak(mbase);
}

int main(int argc, char **argv) {
  char name[64];
  nthreads = (int)bench_arg(argc, argv, "threads", 1);
  double duration = bench_arg(argc, argv, "duration", 0.5);
  snprintf(name, sizeof name, "async-%d", nthreads);
  BENCH_OK(evthread_use_pthreads());
  mbase = event_base_new();
  pairs = calloc((size_t)nthreads, sizeof *pairs);
  BENCH_CHECK(mbase && pairs);
  pthread_barrier_init(&ready, NULL, (unsigned)nthreads + 1);
  for (int i = 0; i < nthreads; i++) {
    pair *p = &pairs[i];
    p->wbase = event_base_new();
    BENCH_CHECK(p->wbase);
    BENCH_OK(event_assign(&p->to_main, mbase, -1, 0, main_cb, p));
    BENCH_OK(event_assign(&p->to_worker, p->wbase, -1, 0, worker_cb, p));
    BENCH_CHECK(pthread_create(&p->tid, NULL, worker, p) == 0);
  }
  pthread_barrier_wait(&ready);

  uint64_t t0 = bench_ns();
  deadline = t0 + (uint64_t)(duration * 1e9);
  for (int i = 0; i < nthreads; i++) {
    pairs[i].pings = 1;
    event_active(&pairs[i].to_worker, EV_READ, 1);
  }
  BENCH_OK(event_base_loop(mbase, EVLOOP_NO_EXIT_ON_EMPTY));
  uint64_t t1 = bench_ns();
  uint64_t total = 0;
  for (int i = 0; i < nthreads; i++) {
    BENCH_CHECK(pthread_join(pairs[i].tid, NULL) == 0);
    BENCH_CHECK(pairs[i].pings == pairs[i].pongs &&
                pairs[i].handled == pairs[i].pings);
    total += pairs[i].pongs;
    event_base_free(pairs[i].wbase);
  }
  BENCH_CHECK(ndone == nthreads && total > 0);
  event_base_free(mbase);
  bench_result(name, "libevent", (double)total / ((double)(t1 - t0) / 1e9),
               "rt/s");
  free(pairs);
  return 0;
}
