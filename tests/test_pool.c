/* test_pool.c: the pool: work and after callbacks, cancellation, sizes, the
 * slow lane, shared pools, and that blocked workers never block the loop. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <soon.h>
#include <stdatomic.h>
#include <stdlib.h>

/* A gate that blocks workers until the loop thread opens it. */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int open;
  int waiting; /* workers at the gate */
} gate;

static gate the_gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0,
                        0};

static void gate_wait(gate *g) {
  pthread_mutex_lock(&g->mu);
  g->waiting++;
  pthread_cond_broadcast(&g->cond);
  while (!g->open)
    pthread_cond_wait(&g->cond, &g->mu);
  pthread_mutex_unlock(&g->mu);
}

static void gate_set(gate *g, int open) {
  pthread_mutex_lock(&g->mu);
  g->open = open;
  pthread_cond_broadcast(&g->cond);
  pthread_mutex_unlock(&g->mu);
}

/* Until n workers wait at the gate: what is queued next waits behind them,
 * in whatever order the pool takes jobs (chaos mode hands them out at
 * random). */
static void gate_until_waiting(gate *g, int n) {
  pthread_mutex_lock(&g->mu);
  while (g->waiting < n)
    pthread_cond_wait(&g->cond, &g->mu);
  pthread_mutex_unlock(&g->mu);
}

static pthread_t loop_thread;
static atomic_int ran;
static int after_ok, after_cancelled;

static void count_work(soon_work_req *req) {
  (void)req;
  atomic_fetch_add(&ran, 1);
}

static void blocked_work(soon_work_req *req) {
  (void)req;
  gate_wait(&the_gate);
  atomic_fetch_add(&ran, 1);
}

static void count_after(soon_work_req *req, int status) {
  (void)req;
  assert_true(pthread_equal(pthread_self(), loop_thread));
  if (status == 0)
    after_ok++;
  else if (status == -ECANCELED)
    after_cancelled++;
  else
    fail_msg("unexpected status %d", status);
}

static int setup(void **state) {
  (void)state;
  loop_thread = pthread_self();
  atomic_store(&ran, 0);
  after_ok = after_cancelled = 0;
  gate_set(&the_gate, 0);
  the_gate.waiting = 0;
  unsetenv("SOON_THREADPOOL_SIZE");
  return 0;
}

static void on_worker(soon_work_req *req) {
  *(pthread_t *)req->data = pthread_self();
}

static void test_work_runs_off_loop_thread(void **state) {
  (void)state;
  soon_loop loop;
  soon_work_req req;
  pthread_t worker_thread = pthread_self();
  assert_int_equal(soon_loop_init(&loop), 0);
  req.data = &worker_thread;
  assert_int_equal(soon_work(&loop, &req, on_worker, count_after), 0);
  assert_int_equal(after_ok, 0); /* never called from the submitting call */
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(after_ok, 1);
  assert_false(pthread_equal(worker_thread, pthread_self()));
  assert_int_equal(soon_loop_close(&loop), 0);
}

static void test_many_items(void **state) {
  (void)state;
  enum { N = 10000 };
  soon_loop loop;
  soon_work_req *reqs = calloc(N, sizeof *reqs);
  assert_int_equal(soon_loop_init(&loop), 0);
  for (int i = 0; i < N; i++)
    assert_int_equal(soon_work(&loop, &reqs[i], count_work, count_after), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(atomic_load(&ran), N);
  assert_int_equal(after_ok, N);
  assert_int_equal(soon_loop_close(&loop), 0);
  free(reqs);
}

static void test_invalid(void **state) {
  (void)state;
  soon_loop loop;
  soon_work_req req;
  soon_pool *pool;
  assert_int_equal(soon_loop_init(&loop), 0);
  assert_int_equal(soon_work(NULL, &req, count_work, count_after), -EINVAL);
  assert_int_equal(soon_work(&loop, NULL, count_work, count_after), -EINVAL);
  assert_int_equal(soon_work(&loop, &req, NULL, count_after), -EINVAL);
  assert_int_equal(soon_work(&loop, &req, count_work, NULL), -EINVAL);
  assert_int_equal(soon_cancel(NULL), -EINVAL);
  assert_int_equal(soon_pool_new(NULL, NULL), -EINVAL);
  soon_pool_options big = {.size = 1025};
  assert_int_equal(soon_pool_new(&pool, &big), -EINVAL);
  assert_int_equal(soon_pool_free(NULL), -EINVAL);
  assert_int_equal(soon_pool_size(NULL), 0);
  assert_int_equal(soon_loop_close(&loop), 0);
}

static void test_env_size(void **state) {
  (void)state;
  const char *bad[] = {"0", "1025", "-1", "abc", "4x", "99999999999999999999"};
  soon_loop loop;
  soon_pool *pool;
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    setenv("SOON_THREADPOOL_SIZE", bad[i], 1);
    assert_int_equal(soon_loop_init(&loop), -EINVAL);
    assert_int_equal(soon_pool_new(&pool, NULL), -EINVAL);
  }
  setenv("SOON_THREADPOOL_SIZE", "3", 1);
  assert_int_equal(soon_pool_new(&pool, NULL), 0);
  assert_int_equal(soon_pool_size(pool), 3);
  assert_int_equal(soon_pool_free(pool), 0);
  unsetenv("SOON_THREADPOOL_SIZE");
  assert_int_equal(soon_pool_new(&pool, NULL), 0);
  assert_int_equal(soon_pool_size(pool), 4);
  assert_int_equal(soon_pool_free(pool), 0);
}

/* With the only worker held at the gate, every queued job is cancellable;
 * the running one is not. */
static void test_cancel_queued(void **state) {
  (void)state;
  enum { N = 100 };
  soon_pool *pool;
  soon_pool_options po = {.size = 1};
  soon_loop loop;
  soon_work_req blocker, reqs[N];
  assert_int_equal(soon_pool_new(&pool, &po), 0);
  soon_loop_options lo = {.pool = pool};
  assert_int_equal(soon_loop_init_ex(&loop, &lo), 0);
  assert_int_equal(soon_work(&loop, &blocker, blocked_work, count_after), 0);
  gate_until_waiting(&the_gate, 1);
  for (int i = 0; i < N; i++)
    assert_int_equal(soon_work(&loop, &reqs[i], count_work, count_after), 0);
  assert_int_equal(soon_pool_free(pool), -EBUSY);
  for (int i = 0; i < N; i++)
    assert_int_equal(soon_cancel((soon_req *)&reqs[i]), 0);
  for (int i = 0; i < N; i++) /* a second cancel finds it done */
    assert_int_equal(soon_cancel((soon_req *)&reqs[i]), -EBUSY);
  assert_int_equal(after_cancelled, 0); /* not from inside soon_cancel */
  /* The blocker runs: too late to cancel; it completes once. */
  assert_int_equal(soon_cancel((soon_req *)&blocker), -EBUSY);
  gate_set(&the_gate, 1);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(after_cancelled, N);
  assert_int_equal(after_ok, 1);
  assert_int_equal(atomic_load(&ran), 1);
  assert_int_equal(soon_cancel((soon_req *)&blocker), -EBUSY);
  assert_int_equal(soon_loop_close(&loop), 0);
  assert_int_equal(soon_pool_free(pool), 0);
}

/* Cancels racing with running workers: every job calls back exactly once,
 * cancelled exactly when soon_cancel said 0, and never ran if so. */
typedef struct {
  soon_work_req req;
  int calls;
  int cancel_result;
  atomic_int did_run;
} race_job;

static void race_work(soon_work_req *req) {
  race_job *j = (race_job *)req;
  atomic_store(&j->did_run, 1);
}

static void race_after(soon_work_req *req, int status) {
  race_job *j = (race_job *)req;
  j->calls++;
  if (status == -ECANCELED)
    after_cancelled++;
  assert_int_equal(status == -ECANCELED, j->cancel_result == 0);
  assert_int_equal(atomic_load(&j->did_run), status == 0);
}

static void test_cancel_races_completion(void **state) {
  (void)state;
  enum { N = 2000 };
  soon_loop loop;
  race_job *jobs = calloc(N, sizeof *jobs);
  assert_int_equal(soon_loop_init(&loop), 0);
  int cancelled = 0;
  for (int i = 0; i < N; i++) {
    assert_int_equal(soon_work(&loop, &jobs[i].req, race_work, race_after), 0);
    if (i % 2) {
      jobs[i].cancel_result = soon_cancel((soon_req *)&jobs[i].req);
      assert_true(jobs[i].cancel_result == 0 ||
                  jobs[i].cancel_result == -EBUSY);
      cancelled += jobs[i].cancel_result == 0;
    } else {
      jobs[i].cancel_result = -EBUSY;
    }
  }
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  for (int i = 0; i < N; i++)
    assert_int_equal(jobs[i].calls, 1);
  assert_int_equal(after_cancelled, cancelled);
  assert_int_equal(soon_loop_close(&loop), 0);
  free(jobs);
}

static void run_on_pool_of(unsigned size) {
  enum { N = 500 };
  soon_pool *pool;
  soon_pool_options po = {.size = size};
  soon_loop loop;
  soon_work_req reqs[N];
  assert_int_equal(soon_pool_new(&pool, &po), 0);
  assert_int_equal(soon_pool_size(pool), size);
  soon_loop_options lo = {.pool = pool};
  assert_int_equal(soon_loop_init_ex(&loop, &lo), 0);
  for (int i = 0; i < N; i++)
    assert_int_equal(soon_work(&loop, &reqs[i], count_work, count_after), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(after_ok, N);
  assert_int_equal(soon_loop_close(&loop), 0);
  assert_int_equal(soon_pool_free(pool), 0);
}

static void test_pool_size_1(void **state) {
  (void)state;
  run_on_pool_of(1);
}

static void test_pool_size_64(void **state) {
  (void)state;
  run_on_pool_of(64);
}

/* A worker blocked indefinitely must not stop the loop: the timer fires and
 * is what releases the worker. A blocked loop would hang (ctest timeout). */
static int timer_fired;

static void release_gate(soon_timer *t) {
  timer_fired = 1;
  gate_set(&the_gate, 1);
  soon_close((soon_handle *)t, NULL);
}

static void test_blocked_work_does_not_block_timers(void **state) {
  (void)state;
  soon_loop loop;
  soon_work_req req;
  soon_timer t;
  timer_fired = 0;
  assert_int_equal(soon_loop_init(&loop), 0);
  assert_int_equal(soon_work(&loop, &req, blocked_work, count_after), 0);
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, release_gate, 5, 0), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_true(timer_fired);
  assert_int_equal(after_ok, 1);
  assert_int_equal(soon_loop_close(&loop), 0);
}

/* Slow jobs hold at most half the workers: with four slow jobs stuck at the
 * gate on a pool of 4, a fast job still runs, and its after callback is
 * what opens the gate. */
static atomic_int slow_now, slow_max_seen;

static void slow_work(soon_work_req *req) {
  (void)req;
  int now = atomic_fetch_add(&slow_now, 1) + 1;
  int seen = atomic_load(&slow_max_seen);
  while (now > seen &&
         !atomic_compare_exchange_weak(&slow_max_seen, &seen, now))
    ;
  gate_wait(&the_gate);
  atomic_fetch_sub(&slow_now, 1);
}

static void fast_after(soon_work_req *req, int status) {
  count_after(req, status);
  gate_set(&the_gate, 1);
}

static void test_slow_lane_leaves_fast_workers(void **state) {
  (void)state;
  soon_pool *pool;
  soon_pool_options po = {.size = 4};
  soon_loop loop;
  soon_work_req slow[4], fast;
  atomic_store(&slow_now, 0);
  atomic_store(&slow_max_seen, 0);
  assert_int_equal(soon_pool_new(&pool, &po), 0);
  soon_loop_options lo = {.pool = pool};
  assert_int_equal(soon_loop_init_ex(&loop, &lo), 0);
  for (int i = 0; i < 4; i++)
    assert_int_equal(soon_work_slow(&loop, &slow[i], slow_work, count_after),
                     0);
  assert_int_equal(soon_work(&loop, &fast, count_work, fast_after), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(after_ok, 5);
  assert_true(atomic_load(&slow_max_seen) <= 2);
  assert_int_equal(soon_loop_close(&loop), 0);
  assert_int_equal(soon_pool_free(pool), 0);
}

/* Two loops in two threads share one pool. */
typedef struct {
  soon_pool *pool;
  int done;
} share_arg;

static void share_after(soon_work_req *req, int status) {
  assert_int_equal(status, 0);
  ++*(int *)req->data;
}

static void *share_thread(void *p) {
  share_arg *a = p;
  soon_loop loop;
  soon_loop_options lo = {.pool = a->pool};
  soon_work_req reqs[200];
  if (soon_loop_init_ex(&loop, &lo) != 0)
    return NULL;
  for (int i = 0; i < 200; i++) {
    reqs[i].data = &a->done;
    if (soon_work(&loop, &reqs[i], count_work, share_after) != 0)
      return NULL;
  }
  soon_run(&loop, SOON_RUN_DEFAULT);
  if (soon_loop_close(&loop) != 0)
    a->done = -1;
  return NULL;
}

static void test_shared_pool(void **state) {
  (void)state;
  soon_pool *pool;
  soon_pool_options po = {.size = 2};
  assert_int_equal(soon_pool_new(&pool, &po), 0);
  share_arg args[2] = {{pool, 0}, {pool, 0}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&th[i], NULL, share_thread, &args[i]), 0);
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  assert_int_equal(args[0].done, 200);
  assert_int_equal(args[1].done, 200);
  assert_int_equal(atomic_load(&ran), 400);
  assert_int_equal(soon_pool_free(pool), 0);
}

/* A request in flight keeps the loop busy as an open handle does, from its
 * submission until its after callback has run, with no handle open. */
static void test_loop_close_busy_with_work(void **state) {
  (void)state;
  soon_loop loop;
  soon_work_req req;
  assert_int_equal(soon_loop_init(&loop), 0);
  assert_int_equal(soon_work(&loop, &req, blocked_work, count_after), 0);
  assert_int_equal(soon_loop_close(&loop), -EBUSY); /* queued or running */
  gate_set(&the_gate, 1);
  assert_int_equal(soon_loop_close(&loop), -EBUSY); /* its callback owed */
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0); /* still usable */
  assert_int_equal(after_ok, 1);
  assert_int_equal(soon_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_work_runs_off_loop_thread, setup),
      cmocka_unit_test_setup(test_many_items, setup),
      cmocka_unit_test_setup(test_invalid, setup),
      cmocka_unit_test_setup(test_env_size, setup),
      cmocka_unit_test_setup(test_cancel_queued, setup),
      cmocka_unit_test_setup(test_cancel_races_completion, setup),
      cmocka_unit_test_setup(test_pool_size_1, setup),
      cmocka_unit_test_setup(test_pool_size_64, setup),
      cmocka_unit_test_setup(test_blocked_work_does_not_block_timers, setup),
      cmocka_unit_test_setup(test_slow_lane_leaves_fast_workers, setup),
      cmocka_unit_test_setup(test_shared_pool, setup),
      cmocka_unit_test_setup(test_loop_close_busy_with_work, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
