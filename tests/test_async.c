/* test_async.c: async handles: coalescing, sends from other threads (never
 * lost), waking a blocked loop, sends from a signal handler, close, errors. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <soon.h>
#include <stdatomic.h>
#include <time.h>

#include "helpers.h"

static int calls, closes;
static pthread_t loop_thread;

static int reset(void **state) {
  (void)state;
  calls = closes = 0;
  loop_thread = pthread_self();
  return 0;
}

static void count_close(soon_handle *h) {
  (void)h;
  closes++;
}

static void on_loop_thread(void) {
  assert_true(pthread_equal(pthread_self(), loop_thread));
}

/* ------------------------------------------------------------ basics */

static void count_and_close(soon_async *a) {
  on_loop_thread();
  calls++;
  assert_int_equal(soon_close((soon_handle *)a, count_close), 0);
}

static void test_send_before_run(void **state) {
  (void)state;
  soon_loop loop;
  soon_async a;
  soon_timer guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  assert_int_equal(soon_async_init(&loop, &a, count_and_close), 0);
  /* Active from init until closed. */
  assert_true(soon_is_active((soon_handle *)&a));
  assert_int_not_equal(soon_loop_alive(&loop), 0);
  assert_int_equal(soon_async_send(&a), 0);
  assert_int_equal(calls, 0); /* never from inside the send */
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(calls, 1);
  assert_int_equal(closes, 1);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

static void count_only(soon_async *a) {
  (void)a;
  on_loop_thread();
  calls++;
}

static void test_sends_coalesce(void **state) {
  (void)state;
  soon_loop loop;
  soon_async a;
  soon_timer guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  assert_int_equal(soon_async_init(&loop, &a, count_only), 0);
  for (int i = 0; i < 1000; i++)
    assert_int_equal(soon_async_send(&a), 0);
  assert_int_not_equal(soon_run(&loop, SOON_RUN_ONCE), 0);
  assert_int_equal(calls, 1);
  for (int i = 0; i < 5; i++)
    assert_int_not_equal(soon_run(&loop, SOON_RUN_NOWAIT), 0);
  assert_int_equal(calls, 1);
  /* A later send is a new callback. */
  assert_int_equal(soon_async_send(&a), 0);
  assert_int_not_equal(soon_run(&loop, SOON_RUN_ONCE), 0);
  assert_int_equal(calls, 2);
  assert_int_equal(soon_close((soon_handle *)&a, NULL), 0);
  guard_close(&loop, &guard);
  assert_int_equal(calls, 2);
  loop_close_checked(&loop);
}

/* A send while the callback runs causes another callback. */
static void send_again_once(soon_async *a) {
  calls++;
  if (calls == 1)
    assert_int_equal(soon_async_send(a), 0);
  else
    assert_int_equal(soon_close((soon_handle *)a, NULL), 0);
}

static void test_send_from_callback(void **state) {
  (void)state;
  soon_loop loop;
  soon_async a;
  soon_timer guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  assert_int_equal(soon_async_init(&loop, &a, send_again_once), 0);
  assert_int_equal(soon_async_send(&a), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(calls, 2);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

/* Two handles on one loop: each send calls its own handle only. */
static int calls_b;
static void count_b(soon_async *a) {
  (void)a;
  calls_b++;
}

static void test_two_handles(void **state) {
  (void)state;
  soon_loop loop;
  soon_async a, b;
  soon_timer guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  calls_b = 0;
  assert_int_equal(soon_async_init(&loop, &a, count_only), 0);
  assert_int_equal(soon_async_init(&loop, &b, count_b), 0);
  assert_int_equal(soon_async_send(&b), 0);
  assert_int_not_equal(soon_run(&loop, SOON_RUN_ONCE), 0);
  assert_int_equal(calls, 0);
  assert_int_equal(calls_b, 1);
  assert_int_equal(soon_async_send(&a), 0);
  assert_int_equal(soon_async_send(&b), 0);
  assert_int_not_equal(soon_run(&loop, SOON_RUN_ONCE), 0);
  assert_int_equal(calls, 1);
  assert_int_equal(calls_b, 2);
  assert_int_equal(soon_close((soon_handle *)&a, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&b, NULL), 0);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

/* Closed with a send pending: the callback is not called, the close
 * callback is, once. */
static void test_close_pending(void **state) {
  (void)state;
  soon_loop loop;
  soon_async a;
  soon_timer guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  assert_int_equal(soon_async_init(&loop, &a, count_only), 0);
  assert_int_equal(soon_async_send(&a), 0);
  assert_int_equal(soon_close((soon_handle *)&a, count_close), 0);
  assert_false(soon_is_active((soon_handle *)&a));
  assert_true(soon_is_closing((soon_handle *)&a));
  assert_int_equal(soon_close((soon_handle *)&a, count_close), -EINVAL);
  assert_int_equal(soon_loop_close(&loop), -EBUSY);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(calls, 0);
  assert_int_equal(closes, 1);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

static void test_unref(void **state) {
  (void)state;
  soon_loop loop;
  soon_async a;
  loop_init_checked(&loop);
  assert_int_equal(soon_async_init(&loop, &a, count_only), 0);
  soon_unref((soon_handle *)&a);
  /* An unreferenced async handle does not keep the loop running. */
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(calls, 0);
  assert_int_equal(soon_close((soon_handle *)&a, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

static void test_null_args(void **state) {
  (void)state;
  soon_loop loop;
  soon_async a;
  loop_init_checked(&loop);
  assert_int_equal(soon_async_init(NULL, &a, count_only), -EINVAL);
  assert_int_equal(soon_async_init(&loop, NULL, count_only), -EINVAL);
  assert_int_equal(soon_async_init(&loop, &a, NULL), -EINVAL);
  assert_int_equal(soon_async_send(NULL), -EINVAL);
  assert_int_equal(soon_loop_alive(&loop), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ threads */

#define NTHREADS 8
#define NSENDS 10000

static soon_async mt_async, mt_done;
static soon_timer mt_guard;
static atomic_uint mt_sent, mt_per_thread[NTHREADS];
static atomic_int mt_errors;
static pthread_t mt_threads[NTHREADS], mt_joiner;
static unsigned mt_last_seen, mt_calls;
static int mt_joined, mt_closed;

static void *mt_sender(void *arg) {
  unsigned i = (unsigned)(uintptr_t)arg;
  for (int n = 0; n < NSENDS; n++) {
    atomic_fetch_add(&mt_sent, 1);
    atomic_fetch_add(&mt_per_thread[i], 1);
    if (soon_async_send(&mt_async) != 0)
      atomic_fetch_add(&mt_errors, 1);
  }
  return NULL;
}

/* Joins the senders, then says so: after that no send is in flight. */
static void *mt_join_all(void *arg) {
  (void)arg;
  for (int i = 0; i < NTHREADS; i++)
    if (pthread_join(mt_threads[i], NULL) != 0)
      atomic_fetch_add(&mt_errors, 1);
  if (soon_async_send(&mt_done) != 0)
    atomic_fetch_add(&mt_errors, 1);
  return NULL;
}

static void mt_finish(void) {
  if (mt_closed || !mt_joined || mt_last_seen != NTHREADS * NSENDS)
    return;
  mt_closed = 1;
  assert_int_equal(soon_close((soon_handle *)&mt_async, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&mt_done, NULL), 0);
}

static void mt_cb(soon_async *a) {
  (void)a;
  on_loop_thread();
  mt_calls++;
  unsigned seen = atomic_load(&mt_sent);
  assert_true(seen >= mt_last_seen);
  mt_last_seen = seen;
  mt_finish();
}

static void mt_done_cb(soon_async *a) {
  (void)a;
  on_loop_thread();
  mt_joined = 1;
  /* Every send has returned: if the last callback did not see them all, a
   * callback is still owed, and mt_cb finishes then. */
  mt_finish();
}

static void test_threads_never_lost(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_checked(&loop);
  atomic_store(&mt_sent, 0);
  atomic_store(&mt_errors, 0);
  for (int i = 0; i < NTHREADS; i++)
    atomic_store(&mt_per_thread[i], 0);
  mt_last_seen = mt_calls = 0;
  mt_joined = mt_closed = 0;
  assert_int_equal(soon_async_init(&loop, &mt_async, mt_cb), 0);
  assert_int_equal(soon_async_init(&loop, &mt_done, mt_done_cb), 0);
  guard_start(&loop, &mt_guard);
  for (int i = 0; i < NTHREADS; i++)
    assert_int_equal(
        pthread_create(&mt_threads[i], NULL, mt_sender, (void *)(uintptr_t)i),
        0);
  assert_int_equal(pthread_create(&mt_joiner, NULL, mt_join_all, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(pthread_join(mt_joiner, NULL), 0);
  assert_int_equal(atomic_load(&mt_errors), 0);
  for (int i = 0; i < NTHREADS; i++)
    assert_int_equal(atomic_load(&mt_per_thread[i]), NSENDS);
  assert_int_equal(mt_last_seen, NTHREADS * NSENDS);
  assert_true(mt_calls >= 1);
  assert_true(mt_calls <= NTHREADS * NSENDS);
  print_message("%u callbacks for %d sends\n", mt_calls, NTHREADS * NSENDS);
  guard_close(&loop, &mt_guard);
  loop_close_checked(&loop);
}

/* ------------------------------------------------- wake a blocked loop */

/* The loop has no timer at all, so its backend waits forever; a thread sends
 * once it sees the loop thread asleep. A lost wake-up would hang, so the
 * helper thread, after a generous wait for the callback, rescues the loop
 * through a pipe, and the test fails. */
static soon_async wk_async;
static soon_prepare wk_prep;
static soon_io wk_rescue;
static int wk_pipe[2];
static atomic_int wk_prepared;
static pid_t wk_loop_tid;
static pthread_mutex_t wk_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wk_cond;
static int wk_acked, wk_rescued, wk_send_failed;

static void *wk_thread(void *arg) {
  (void)arg;
  while (!atomic_load(&wk_prepared))
    sched_yield();
  /* Its state in /proc is 'S' while it sleeps in the backend (it does
   * nothing else after its prepare callback). */
  wait_until_sleeping(wk_loop_tid);
  if (soon_async_send(&wk_async) != 0)
    wk_send_failed = 1;

  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += GUARD_MS / 1000;
  pthread_mutex_lock(&wk_mu);
  int rc = 0;
  while (!wk_acked && rc == 0)
    rc = pthread_cond_timedwait(&wk_cond, &wk_mu, &deadline);
  int acked = wk_acked;
  pthread_mutex_unlock(&wk_mu);
  if (!acked) {
    ssize_t w = write(wk_pipe[1], "r", 1);
    (void)w;
  }
  return NULL;
}

static void wk_close_all(void) {
  assert_int_equal(soon_close((soon_handle *)&wk_async, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&wk_prep, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&wk_rescue, NULL), 0);
}

static void wk_prepare_cb(soon_prepare *p) {
  (void)p;
  atomic_store(&wk_prepared, 1);
}

static void wk_async_cb(soon_async *a) {
  (void)a;
  on_loop_thread();
  calls++;
  pthread_mutex_lock(&wk_mu);
  wk_acked = 1;
  pthread_cond_signal(&wk_cond);
  pthread_mutex_unlock(&wk_mu);
  wk_close_all();
}

static void wk_rescue_cb(soon_io *io, int status, int events) {
  (void)io;
  (void)status;
  (void)events;
  wk_rescued = 1;
  wk_close_all();
}

static void test_send_wakes_blocked_loop(void **state) {
  (void)state;
  soon_loop loop;
  pthread_t th;
  pthread_condattr_t ca;
  assert_int_equal(pthread_condattr_init(&ca), 0);
  assert_int_equal(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC), 0);
  assert_int_equal(pthread_cond_init(&wk_cond, &ca), 0);
  assert_int_equal(pthread_condattr_destroy(&ca), 0);
  atomic_store(&wk_prepared, 0);
  wk_acked = wk_rescued = wk_send_failed = 0;
  wk_loop_tid = current_tid();
  loop_init_checked(&loop);
  make_pipe(wk_pipe);
  assert_int_equal(soon_async_init(&loop, &wk_async, wk_async_cb), 0);
  assert_int_equal(soon_prepare_init(&loop, &wk_prep), 0);
  assert_int_equal(soon_prepare_start(&wk_prep, wk_prepare_cb), 0);
  assert_int_equal(soon_io_init(&loop, &wk_rescue, wk_pipe[0]), 0);
  assert_int_equal(soon_io_start(&wk_rescue, SOON_READABLE, wk_rescue_cb), 0);
  assert_int_equal(pthread_create(&th, NULL, wk_thread, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_int_equal(wk_send_failed, 0);
  assert_int_equal(wk_rescued, 0);
  assert_int_equal(calls, 1);
  assert_int_equal(pthread_cond_destroy(&wk_cond), 0);
  close_fd(wk_pipe[0]);
  close_fd(wk_pipe[1]);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ signals */

static soon_async *sig_async;
static volatile sig_atomic_t sig_handled, sig_send_rc;

static void on_usr1(int sig) {
  (void)sig;
  sig_send_rc = (sig_atomic_t)soon_async_send(sig_async);
  sig_handled = 1;
}

static void raise_usr1(soon_timer *t) {
  (void)t;
  assert_int_equal(raise(SIGUSR1), 0);
  assert_int_equal(sig_handled, 1);
  assert_int_equal(calls, 0); /* the callback comes from the loop, later */
}

static soon_timer *sig_timer;
static void sig_async_cb(soon_async *a) {
  on_loop_thread();
  calls++;
  assert_int_equal(sig_handled, 1);
  assert_int_equal(soon_close((soon_handle *)a, count_close), 0);
  assert_int_equal(soon_close((soon_handle *)sig_timer, NULL), 0);
}

static void test_send_from_signal_handler(void **state) {
  (void)state;
  soon_loop loop;
  soon_async a;
  soon_timer t, guard;
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigemptyset(&sa.sa_mask);
  assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
  sig_handled = 0;
  sig_send_rc = -1;
  sig_async = &a;
  sig_timer = &t;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  assert_int_equal(soon_async_init(&loop, &a, sig_async_cb), 0);
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, raise_usr1, 0, 0), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
  assert_int_equal(sig_send_rc, 0);
  assert_int_equal(calls, 1);
  assert_int_equal(closes, 1);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

/* A send may race with soon_close from another thread, so a closing or
 * closed handle cannot refuse it: it says 0, and its callback never runs
 * (nor another handle's). The wake-up it causes keeps no loop alive. */
static void test_send_after_close(void **state) {
  (void)state;
  soon_loop loop;
  soon_async a, b;
  soon_timer guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  assert_int_equal(soon_async_init(&loop, &a, count_only), 0);
  assert_int_equal(soon_async_init(&loop, &b, count_only), 0);
  assert_int_equal(soon_close((soon_handle *)&a, count_close), 0);
  assert_int_equal(soon_async_send(&a), 0);
  /* The close phase runs; b keeps the loop alive. */
  assert_int_equal(soon_run(&loop, SOON_RUN_NOWAIT), 1);
  assert_int_equal(closes, 1);
  assert_int_equal(soon_async_send(&a), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_NOWAIT), 1);
  assert_int_equal(calls, 0);
  assert_int_equal(soon_close((soon_handle *)&b, count_close), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(soon_async_send(&a), 0); /* nothing left to wake */
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(calls, 0);
  assert_int_equal(closes, 2);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_send_before_run, reset),
      cmocka_unit_test_setup(test_sends_coalesce, reset),
      cmocka_unit_test_setup(test_send_from_callback, reset),
      cmocka_unit_test_setup(test_two_handles, reset),
      cmocka_unit_test_setup(test_close_pending, reset),
      cmocka_unit_test_setup(test_unref, reset),
      cmocka_unit_test_setup(test_null_args, reset),
      cmocka_unit_test_setup(test_threads_never_lost, reset),
      cmocka_unit_test_setup(test_send_wakes_blocked_loop, reset),
      cmocka_unit_test_setup(test_send_from_signal_handler, reset),
      cmocka_unit_test_setup(test_send_after_close, reset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
