/* test_signal.c: one delivery per handle per arrival, in one loop and in loops
 * of two threads; oneshot, argument checks, the disposition put back. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <soon.h>

#include "helpers.h"

typedef struct counted {
  soon_signal sig;
  int calls;
  int last_signum;
  int close_self; /* close from the callback */
} counted;

static void on_signal(soon_signal *s, int signum) {
  counted *c = (counted *)s;
  c->calls++;
  c->last_signum = signum;
  if (c->close_self)
    soon_close((soon_handle *)s, NULL);
}

static void counted_start(soon_loop *loop, counted *c, int signum) {
  memset(c, 0, sizeof *c);
  assert_int_equal(soon_signal_init(loop, &c->sig), 0);
  assert_int_equal(soon_signal_start(&c->sig, on_signal, signum), 0);
}

/* raise() runs the handler before it returns (the signal is unblocked), so
 * the arrival is recorded by then; iterations run until it is dispatched,
 * the guard timer bounding them. */
static void run_until(soon_loop *loop, const int *calls, int want) {
  while (*calls < want)
    soon_run(loop, SOON_RUN_ONCE);
}

static void close_run(soon_loop *loop, soon_handle *h) {
  assert_int_equal(soon_close(h, NULL), 0);
  soon_run(loop, SOON_RUN_NOWAIT);
}

static void test_invalid(void **state) {
  (void)state;
  soon_loop loop;
  soon_signal s;
  loop_init_checked(&loop);
  assert_int_equal(soon_signal_init(NULL, &s), -EINVAL);
  assert_int_equal(soon_signal_init(&loop, NULL), -EINVAL);
  assert_int_equal(soon_signal_init(&loop, &s), 0);
  const int bad[] = {SIGKILL, SIGSTOP, 0, -1, NSIG, 65, 1000};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_int_equal(soon_signal_start(&s, on_signal, bad[i]), -EINVAL);
    assert_int_equal(soon_signal_start_oneshot(&s, on_signal, bad[i]), -EINVAL);
  }
  assert_int_equal(soon_signal_start(&s, NULL, SIGUSR1), -EINVAL);
  assert_int_equal(soon_signal_start(NULL, on_signal, SIGUSR1), -EINVAL);
  assert_int_equal(soon_signal_stop(NULL), -EINVAL);
  assert_false(soon_is_active((soon_handle *)&s));
  assert_int_equal(soon_signal_stop(&s), 0); /* stopping a stopped one */
  close_run(&loop, (soon_handle *)&s);
  assert_int_equal(soon_signal_start(&s, on_signal, SIGUSR1), -EINVAL);
  loop_close_checked(&loop);
}

static void test_two_handles_one_loop(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  counted a, b;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  counted_start(&loop, &a, SIGUSR1);
  counted_start(&loop, &b, SIGUSR1);
  assert_true(soon_is_active((soon_handle *)&a.sig));
  assert_int_equal(raise(SIGUSR1), 0);
  assert_int_equal(a.calls, 0); /* only ever from inside soon_run */
  run_until(&loop, &b.calls, 1);
  assert_int_equal(a.calls, 1);
  assert_int_equal(a.last_signum, SIGUSR1);
  assert_int_equal(b.last_signum, SIGUSR1);
  soon_run(&loop, SOON_RUN_NOWAIT);
  assert_int_equal(a.calls, 1); /* once per handle per arrival */
  assert_int_equal(b.calls, 1);
  assert_int_equal(raise(SIGUSR1), 0);
  run_until(&loop, &b.calls, 2);
  assert_int_equal(a.calls, 2);
  close_run(&loop, (soon_handle *)&a.sig);
  close_run(&loop, (soon_handle *)&b.sig);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

/* Each thread runs its loop until its handle has had the signal once and
 * closed itself; the main thread raises once every loop watches. */
typedef struct thread_arg {
  pthread_barrier_t *ready;
  int calls;
} thread_arg;

static void *loop_thread(void *p) {
  thread_arg *arg = p;
  soon_loop loop;
  soon_timer guard;
  counted c;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  counted_start(&loop, &c, SIGUSR1);
  c.close_self = 1;
  pthread_barrier_wait(arg->ready);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  arg->calls = c.calls;
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
  return NULL;
}

static void test_two_loops_two_threads(void **state) {
  (void)state;
  enum { N = 2 };
  pthread_barrier_t ready;
  pthread_t t[N];
  thread_arg arg[N];
  assert_int_equal(pthread_barrier_init(&ready, NULL, N + 1), 0);
  for (int i = 0; i < N; i++) {
    arg[i].ready = &ready;
    arg[i].calls = 0;
    assert_int_equal(pthread_create(&t[i], NULL, loop_thread, &arg[i]), 0);
  }
  pthread_barrier_wait(&ready);
  assert_int_equal(raise(SIGUSR1), 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(arg[i].calls, 1);
  }
  pthread_barrier_destroy(&ready);
}

static void test_oneshot(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  counted once, every;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  memset(&once, 0, sizeof once);
  assert_int_equal(soon_signal_init(&loop, &once.sig), 0);
  assert_int_equal(soon_signal_start_oneshot(&once.sig, on_signal, SIGUSR2), 0);
  counted_start(&loop, &every, SIGUSR2);
  assert_int_equal(raise(SIGUSR2), 0);
  run_until(&loop, &every.calls, 1);
  assert_false(soon_is_active((soon_handle *)&once.sig));
  assert_int_equal(raise(SIGUSR2), 0);
  run_until(&loop, &every.calls, 2);
  assert_int_equal(once.calls, 1);
  assert_int_equal(every.calls, 2);
  /* A stopped oneshot can be started again. */
  assert_int_equal(soon_signal_start_oneshot(&once.sig, on_signal, SIGUSR2), 0);
  assert_int_equal(raise(SIGUSR2), 0);
  run_until(&loop, &every.calls, 3);
  assert_int_equal(once.calls, 2);
  close_run(&loop, (soon_handle *)&once.sig);
  close_run(&loop, (soon_handle *)&every.sig);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

static volatile sig_atomic_t custom_calls;
static void custom_handler(int signum, siginfo_t *info, void *ctx) {
  (void)signum;
  (void)info;
  (void)ctx;
  custom_calls++;
}

static void assert_custom(int signum) {
  struct sigaction now;
  assert_int_equal(sigaction(signum, NULL, &now), 0);
  assert_true(now.sa_flags & SA_SIGINFO);
  assert_ptr_equal(now.sa_sigaction, custom_handler);
}

/* The disposition comes back when the last handle for the signal stops,
 * whichever loop it is in, and whether by stop or by close. */
static void test_restores_disposition(void **state) {
  (void)state;
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = custom_handler;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  assert_int_equal(sigaction(SIGHUP, &sa, &old), 0);

  soon_loop l1, l2;
  counted a, b;
  loop_init_checked(&l1);
  loop_init_checked(&l2);
  counted_start(&l1, &a, SIGHUP);
  struct sigaction now;
  assert_int_equal(sigaction(SIGHUP, NULL, &now), 0);
  assert_ptr_not_equal(now.sa_sigaction, custom_handler);
  assert_int_equal(soon_signal_stop(&a.sig), 0);
  assert_custom(SIGHUP);

  assert_int_equal(soon_signal_start(&a.sig, on_signal, SIGHUP), 0);
  counted_start(&l2, &b, SIGHUP);
  assert_int_equal(soon_signal_stop(&a.sig), 0);
  assert_int_equal(sigaction(SIGHUP, NULL, &now), 0);
  assert_ptr_not_equal(now.sa_sigaction, custom_handler); /* l2 watches */
  assert_int_equal(raise(SIGHUP), 0);
  assert_int_equal(custom_calls, 0);
  close_run(&l2, (soon_handle *)&b.sig); /* close stops too */
  assert_custom(SIGHUP);
  assert_int_equal(b.calls, 0); /* closed before its loop ran */
  assert_int_equal(raise(SIGHUP), 0);
  assert_int_equal(custom_calls, 1);

  close_run(&l1, (soon_handle *)&a.sig);
  loop_close_checked(&l1);
  loop_close_checked(&l2);
  assert_int_equal(sigaction(SIGHUP, &old, NULL), 0);
}

/* SIGINT, SIGTERM and friends would end the test if soon's handler were not
 * installed: each arrives as a callback with its own number. */
static void test_common_signals(void **state) {
  (void)state;
  const int sigs[] = {SIGINT,  SIGTERM,  SIGHUP,  SIGUSR1,
                      SIGUSR2, SIGWINCH, SIGCHLD, SIGRTMIN};
  enum { N = sizeof sigs / sizeof *sigs };
  soon_loop loop;
  soon_timer guard;
  counted c[N];
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  for (int i = 0; i < N; i++)
    counted_start(&loop, &c[i], sigs[i]);
  for (int i = 0; i < N; i++) {
    assert_int_equal(raise(sigs[i]), 0);
    run_until(&loop, &c[i].calls, 1);
    for (int j = 0; j < N; j++)
      assert_int_equal(c[j].calls, j <= i);
    assert_int_equal(c[i].last_signum, sigs[i]);
  }
  for (int i = 0; i < N; i++)
    close_run(&loop, (soon_handle *)&c[i].sig);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

/* A callback may close a handle that would be called next for the same
 * arrival (it is not), and restart itself on another signal. */
static counted *victim;
static void close_victim(soon_signal *s, int signum) {
  on_signal(s, signum);
  soon_close((soon_handle *)&victim->sig, NULL);
  assert_int_equal(soon_signal_start(s, on_signal, SIGUSR2), 0);
}

static void test_mutation_in_callback(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  counted a, b;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  counted_start(&loop, &a, SIGUSR1);
  counted_start(&loop, &b, SIGUSR1);
  assert_int_equal(soon_signal_start(&a.sig, close_victim, SIGUSR1), 0);
  victim = &b;
  assert_int_equal(raise(SIGUSR1), 0);
  run_until(&loop, &a.calls, 1);
  soon_run(&loop, SOON_RUN_NOWAIT);
  assert_int_equal(b.calls, 0);
  assert_int_equal(raise(SIGUSR2), 0);
  run_until(&loop, &a.calls, 2);
  assert_int_equal(a.last_signum, SIGUSR2);
  close_run(&loop, (soon_handle *)&a.sig);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

/* An active signal handle keeps soon_run going; an unreferenced one not. */
static void test_ref(void **state) {
  (void)state;
  soon_loop loop;
  counted a;
  loop_init_checked(&loop);
  counted_start(&loop, &a, SIGUSR1);
  assert_int_equal(soon_run(&loop, SOON_RUN_NOWAIT), 1);
  soon_unref((soon_handle *)&a.sig);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  close_run(&loop, (soon_handle *)&a.sig);
  loop_close_checked(&loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_invalid),
      cmocka_unit_test(test_two_handles_one_loop),
      cmocka_unit_test(test_two_loops_two_threads),
      cmocka_unit_test(test_oneshot),
      cmocka_unit_test(test_restores_disposition),
      cmocka_unit_test(test_common_signals),
      cmocka_unit_test(test_mutation_in_callback),
      cmocka_unit_test(test_ref),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
