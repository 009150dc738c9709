/* test_metrics.c: loop metrics: the counters that are deterministic, timer lag
 * on a manual clock, pool queue wait, and idle time read from another thread.
 */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <soon.h>

#include "helpers.h"

#include <pthread.h>
#include <stdatomic.h>

static void loop_init_flags(soon_loop *loop, unsigned flags) {
  soon_loop_options opts = {.flags = flags};
  memset(loop, 0, sizeof *loop);
  assert_int_equal(soon_loop_init_ex(loop, &opts), 0);
}

static int fired;
static void timer_cb(soon_timer *t) {
  (void)t;
  fired++;
}

static void async_cb(soon_async *a) {
  fired++;
  soon_close((soon_handle *)a, NULL);
}

/* Manual clock: soon_loop_advance runs each timer at its deadline, so the
 * lag is exactly 0; iterations and events are counted one by one. */
static void test_counters_manual(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_flags(&loop, SOON_LOOP_MANUAL_CLOCK | SOON_LOOP_METRICS);
  soon_timer t[3];
  fired = 0;
  for (int i = 0; i < 3; i++) {
    assert_int_equal(soon_timer_init(&loop, &t[i]), 0);
    assert_int_equal(soon_timer_start(&t[i], timer_cb, 10u * (i + 1), 0), 0);
  }
  assert_int_equal(soon_loop_advance(&loop, 30), 0);
  assert_int_equal(fired, 3);
  for (int i = 0; i < 3; i++)
    assert_int_equal(soon_close((soon_handle *)&t[i], NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0); /* the closes */
  soon_metrics m;
  assert_int_equal(soon_metrics_get(&loop, &m), 0);
  assert_int_equal(m.iterations, 1);
  assert_int_equal(m.events, 0);
  assert_int_equal(m.timers, 3);
  assert_int_equal(m.lag_p50_ns, 0);
  assert_int_equal(m.lag_p99_ns, 0);
  assert_int_equal(m.lag_max_ns, 0);
  assert_int_equal(m.callbacks, 3);
  assert_true(m.longest_callback_ns <= m.callback_ns);
  assert_int_equal(m.longest_handle_type, SOON_TIMER);
  assert_int_equal(m.pool_jobs, 0);

  /* One async send: one ready fd (the loop's eventfd), one callback. */
  soon_async a;
  assert_int_equal(soon_async_init(&loop, &a, async_cb), 0);
  assert_int_equal(soon_async_send(&a), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_ONCE), 0);
  assert_int_equal(fired, 4);
  assert_int_equal(soon_metrics_get(&loop, &m), 0);
  assert_int_equal(m.iterations, 2);
  assert_int_equal(m.events, 1);
  assert_int_equal(m.callbacks, 4); /* its close has no callback */
  loop_close_checked(&loop);
  assert_int_equal(soon_metrics_get(&loop, &m), -EINVAL);
  assert_int_equal(soon_metrics_get(NULL, &m), -EINVAL);
}

/* Without SOON_LOOP_METRICS only the counters move. */
static void test_off(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_flags(&loop, SOON_LOOP_MANUAL_CLOCK);
  soon_timer t;
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, timer_cb, 0, 0), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  soon_metrics m;
  assert_int_equal(soon_metrics_get(&loop, &m), 0);
  assert_int_equal(m.iterations, 2);
  assert_int_equal(m.callbacks, 0);
  assert_int_equal(m.timers, 0);
  assert_int_equal(m.idle_ns, 0);
  assert_int_equal(soon_metrics_idle_time(&loop), 0);
  loop_close_checked(&loop);
}

static int after;
static void work_cb(soon_work_req *w) { (void)w; }
static void after_cb(soon_work_req *w, int status) {
  (void)w;
  assert_int_equal(status, 0);
  after++;
}

/* Every job started by a worker has its queue wait recorded. */
static void test_pool_wait(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_flags(&loop, SOON_LOOP_METRICS);
  soon_work_req w[8];
  after = 0;
  for (int i = 0; i < 8; i++)
    assert_int_equal(soon_work(&loop, &w[i], work_cb, after_cb), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(after, 8);
  soon_metrics m;
  assert_int_equal(soon_metrics_get(&loop, &m), 0);
  assert_int_equal(m.pool_jobs, 8);
  assert_true(m.pool_wait_p50_ns <= m.pool_wait_p99_ns);
  assert_int_equal(m.callbacks, 8);
  assert_int_equal(m.longest_req_type, SOON_WORK);
  assert_int_equal(m.longest_handle_type, SOON_UNKNOWN_HANDLE);
  loop_close_checked(&loop);
}

static _Atomic int reading_done;
static _Atomic uint64_t reads;

/* Reads the idle time while the loop runs: it never goes back. */
static void *idle_reader(void *arg) {
  const soon_loop *loop = arg;
  uint64_t last = 0;
  while (!atomic_load(&reading_done)) {
    uint64_t now = soon_metrics_idle_time(loop);
    assert_true(now >= last);
    last = now;
    atomic_fetch_add(&reads, 1);
    sched_yield();
  }
  return NULL;
}

static int ticks;
static void tick_cb(soon_timer *t) {
  if (++ticks == 5)
    soon_timer_stop(t);
}

/* A repeating timer on the real clock makes the loop wait in its backend:
 * idle time grows, lag is recorded for each tick, all from another thread's
 * view too. */
static void test_idle_from_thread(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_flags(&loop, SOON_LOOP_METRICS);
  atomic_store(&reading_done, 0);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, idle_reader, &loop), 0);
  soon_timer t;
  ticks = 0;
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, tick_cb, 1, 1), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  atomic_store(&reading_done, 1);
  assert_int_equal(pthread_join(th, NULL), 0);
  soon_metrics m;
  assert_int_equal(soon_metrics_get(&loop, &m), 0);
  assert_int_equal(ticks, 5);
  assert_int_equal(m.timers, 5);
  assert_true(m.idle_ns > 0); /* it slept for the timer, however briefly */
  assert_int_equal(m.idle_ns, soon_metrics_idle_time(&loop));
  assert_true(m.lag_p50_ns <= m.lag_p99_ns && m.lag_p99_ns <= m.lag_max_ns);
  assert_true(m.iterations >= 5);
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
  assert_int_equal(soon_metrics_idle_time(NULL), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_counters_manual),
      cmocka_unit_test(test_off),
      cmocka_unit_test(test_pool_wait),
      cmocka_unit_test(test_idle_from_thread),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
