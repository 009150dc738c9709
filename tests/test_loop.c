/* test_loop.c: loop set-up and teardown, backend choice, the phase order of one
 * iteration, run modes, soon_stop, the cached clock and the manual clock. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <soon.h>
#include <stdatomic.h>

#include "helpers.h"

/* ------------------------------------------------------------ recording */

static char seq[128];
static size_t nseq;

static void rec(char c) {
  assert_true(nseq + 1 < sizeof seq);
  seq[nseq++] = c;
  seq[nseq] = '\0';
}

static int reset(void **state) {
  (void)state;
  nseq = 0;
  seq[0] = '\0';
  return 0;
}

static int fired;
static void count_close(soon_handle *h) {
  (void)h;
  fired++;
}

/* ------------------------------------------------------------ init, close */

static void test_init_close(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_checked(&loop);
  assert_int_equal(soon_loop_alive(&loop), 0);
  loop_close_checked(&loop);
}

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

static void async_close_self(soon_async *a) {
  assert_int_equal(soon_close((soon_handle *)a, NULL), 0);
}

/* Whatever the loop opened (the backend's fd, the eventfd behind async
 * handles) is closed by soon_loop_close. */
static void test_close_releases_fds(void **state) {
  (void)state;
  int before = count_fds();
  if (before < 0)
    skip();
  for (int i = 0; i < 3; i++) {
    soon_loop loop;
    soon_async a;
    loop_init_checked(&loop);
    assert_int_equal(soon_async_init(&loop, &a, async_close_self), 0);
    assert_int_equal(soon_async_send(&a), 0);
    assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
    loop_close_checked(&loop);
    assert_int_equal(count_fds(), before);
  }
}

static void test_init_keeps_data(void **state) {
  (void)state;
  soon_loop loop;
  int x;
  memset(&loop, 0, sizeof loop);
  loop.data = &x;
  assert_int_equal(soon_loop_init(&loop), 0);
  assert_ptr_equal(loop.data, &x);
  loop_close_checked(&loop);
}

static void test_close_busy(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_checked(&loop);
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  /* Open, not even started: still busy. */
  assert_int_equal(soon_loop_close(&loop), -EBUSY);
  /* Closing but the close callback not yet run: still busy. */
  fired = 0;
  assert_int_equal(soon_close((soon_handle *)&t, count_close), 0);
  assert_int_equal(soon_loop_close(&loop), -EBUSY);
  /* The loop was left usable. */
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(fired, 1);
  loop_close_checked(&loop);
}

static void test_init_ex_errors(void **state) {
  (void)state;
  soon_loop loop = {0}, good;
  soon_loop_options opts = {0};
  loop_init_checked(&good); /* failed inits do not disturb another loop */
  opts.backend = "nonsense";
  assert_int_equal(soon_loop_init_ex(&loop, &opts), -EINVAL);
  /* Known, but maybe not in this build or kernel. */
  opts.backend = "uring";
  int rc = soon_loop_init_ex(&loop, &opts);
  if (rc == 0) {
    assert_string_equal(soon_backend_name(&loop), "uring");
    loop_close_checked(&loop);
  } else {
    assert_int_equal(rc, -ENOSYS);
  }
  opts.backend = NULL;
  opts.flags = 1u << 7;
  assert_int_equal(soon_loop_init_ex(&loop, &opts), -EINVAL);
  opts.flags = SOON_LOOP_MANUAL_CLOCK | (1u << 1);
  assert_int_equal(soon_loop_init_ex(&loop, &opts), -EINVAL);
  opts.flags = 0;
  assert_int_equal(soon_loop_init_ex(NULL, &opts), -EINVAL);
  assert_int_equal(soon_loop_init_ex(NULL, NULL), -EINVAL);
  assert_int_equal(soon_loop_init(NULL), -EINVAL);
  assert_int_equal(soon_run(&good, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&good);
}

/* A bad $SOON_BACKEND is an error, not silently replaced by the default. */
static void test_init_bad_env(void **state) {
  (void)state;
  const char *env = getenv("SOON_BACKEND");
  char saved[32] = "";
  if (env) {
    assert_true(strlen(env) < sizeof saved);
    strcpy(saved, env);
  }
  soon_loop loop = {0};
  assert_int_equal(setenv("SOON_BACKEND", "nonsense", 1), 0);
  int rc = soon_loop_init(&loop);
  /* A kernel that refuses io_uring (simulated): asked for by name, that is
   * the answer; unnamed, the loop falls back to the next best. */
  assert_int_equal(setenv("SOON_URING_FAIL", "1", 1), 0);
  assert_int_equal(setenv("SOON_BACKEND", "uring", 1), 0);
  int rc2 = soon_loop_init(&loop);
  assert_int_equal(unsetenv("SOON_BACKEND"), 0);
  int rc3 = soon_loop_init(&loop);
  char name[16] = "";
  if (rc3 == 0) {
    strncpy(name, soon_backend_name(&loop), sizeof name - 1);
    assert_int_equal(soon_loop_close(&loop), 0);
  }
  assert_int_equal(unsetenv("SOON_URING_FAIL"), 0);
  if (env)
    assert_int_equal(setenv("SOON_BACKEND", saved, 1), 0);
  assert_int_equal(rc, -EINVAL);
  assert_int_equal(rc2, -ENOSYS);
  assert_int_equal(rc3, 0);
  assert_string_equal(name, "epoll");
}

static void test_backend_name_env(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_checked(&loop);
  const char *env = getenv("SOON_BACKEND");
  assert_non_null(soon_backend_name(&loop));
  if (env && *env)
    assert_string_equal(soon_backend_name(&loop), env);
  else /* the best available */
    assert_true(strcmp(soon_backend_name(&loop), "uring") == 0 ||
                strcmp(soon_backend_name(&loop), "epoll") == 0);
  loop_close_checked(&loop);
}

static void test_init_ex_explicit(void **state) {
  (void)state;
  static const char *const names[] = {"select", "poll", "epoll"};
  for (size_t i = 0; i < 3; i++) {
    soon_loop loop = {0};
    soon_loop_options opts = {.backend = names[i]};
    assert_int_equal(soon_loop_init_ex(&loop, &opts), 0);
    /* The option wins over $SOON_BACKEND. */
    assert_string_equal(soon_backend_name(&loop), names[i]);
    assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
    loop_close_checked(&loop);
  }
  /* NULL options: $SOON_BACKEND, else the default. */
  soon_loop loop = {0};
  assert_int_equal(soon_loop_init_ex(&loop, NULL), 0);
  const char *env = getenv("SOON_BACKEND");
  if (env && *env)
    assert_string_equal(soon_backend_name(&loop), env);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ phase order */

static struct {
  soon_timer timer;
  soon_idle idle;
  soon_prepare prepare;
  soon_check check;
  soon_io io;
  soon_idle spare;
  int fds[2];
} P;

static void phase_close(soon_handle *h) {
  (void)h;
  rec('c');
}
static void phase_spare_close(soon_handle *h) {
  (void)h;
  rec('C');
}
static void phase_timer(soon_timer *t) {
  (void)t;
  rec('T');
}
static void phase_idle(soon_idle *h) {
  (void)h;
  rec('I');
}
static void phase_prepare(soon_prepare *h) {
  (void)h;
  rec('P');
}
static void phase_io(soon_io *io, int status, int events) {
  assert_int_equal(status, 0);
  assert_int_equal(events, SOON_READABLE);
  char b;
  assert_int_equal(read(io->fd, &b, 1), 1);
  rec('O');
}
static void phase_check(soon_check *h) {
  (void)h;
  rec('K');
  assert_int_equal(soon_close((soon_handle *)&P.timer, phase_close), 0);
  assert_int_equal(soon_close((soon_handle *)&P.idle, phase_close), 0);
  assert_int_equal(soon_close((soon_handle *)&P.prepare, phase_close), 0);
  assert_int_equal(soon_close((soon_handle *)&P.check, phase_close), 0);
  assert_int_equal(soon_close((soon_handle *)&P.io, phase_close), 0);
}

/* DESIGN.md section 4: timers, (pending), idle, prepare, wait + io, check,
 * close callbacks, all within the first iteration. */
static void test_phase_order(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  make_pipe(P.fds);
  write_byte(P.fds[1]);
  assert_int_equal(soon_timer_init(&loop, &P.timer), 0);
  assert_int_equal(soon_idle_init(&loop, &P.idle), 0);
  assert_int_equal(soon_prepare_init(&loop, &P.prepare), 0);
  assert_int_equal(soon_check_init(&loop, &P.check), 0);
  assert_int_equal(soon_io_init(&loop, &P.io, P.fds[0]), 0);
  assert_int_equal(soon_idle_init(&loop, &P.spare), 0);
  /* Started in reverse phase order, so the order seen is the loop's. */
  assert_int_equal(soon_io_start(&P.io, SOON_READABLE, phase_io), 0);
  assert_int_equal(soon_check_start(&P.check, phase_check), 0);
  assert_int_equal(soon_prepare_start(&P.prepare, phase_prepare), 0);
  assert_int_equal(soon_idle_start(&P.idle, phase_idle), 0);
  assert_int_equal(soon_timer_start(&P.timer, phase_timer, 0, 0), 0);
  assert_int_equal(soon_close((soon_handle *)&P.spare, phase_spare_close), 0);

  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_string_equal(seq, "TIPOKCccccc");
  guard_close(&loop, &guard);
  close_fd(P.fds[0]);
  close_fd(P.fds[1]);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ run modes */

static int ticks;
static void tick(soon_timer *t) {
  (void)t;
  ticks++;
}

static void test_run_default_empty(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_checked(&loop);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_ONCE), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_NOWAIT), 0);
  loop_close_checked(&loop);
}

static void test_run_default_until_done(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_checked(&loop);
  ticks = 0;
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, tick, 2, 0), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(ticks, 1);
  assert_false(soon_is_active((soon_handle *)&t));
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

static void test_run_nowait(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_checked(&loop);
  ticks = 0;
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, tick, 3600 * 1000, 0), 0);
  /* A wait would last an hour: the watchdog ends it sooner. Three runs, in
   * case a spurious EINTR cut the first wait short. */
  watchdog_arm();
  for (int i = 0; i < 3; i++)
    assert_int_not_equal(soon_run(&loop, SOON_RUN_NOWAIT), 0);
  watchdog_disarm();
  assert_int_equal(ticks, 0);
  assert_true(soon_is_active((soon_handle *)&t));
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(ticks, 0);
  loop_close_checked(&loop);
}

static void test_run_once_waits_then_fires(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_checked(&loop);
  ticks = 0;
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, tick, 1, 0), 0);
  uint64_t due = soon_timer_get_due(&t);
  int rc = soon_run(&loop, SOON_RUN_ONCE);
  assert_int_equal(ticks, 1);
  assert_int_equal(rc, 0); /* nothing left after it */
  assert_true(soon_now(&loop) >= due);
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

/* A signal interrupts the backend's wait: ONCE still waits for the timer
 * and fires it (libuv retries an interrupted wait with the time left). */
static pthread_t once_thread;
static pid_t once_tid;
static atomic_int once_prepared;

static void on_usr2(int sig) { (void)sig; }

static void once_prepare_cb(soon_prepare *p) {
  (void)p;
  atomic_store(&once_prepared, 1);
}

static void *interrupter(void *arg) {
  (void)arg;
  while (!atomic_load(&once_prepared))
    sched_yield();
  wait_until_sleeping(once_tid);
  pthread_kill(once_thread, SIGUSR2);
  return NULL;
}

static void test_run_once_interrupted_wait(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  soon_prepare p;
  pthread_t th;
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr2; /* no SA_RESTART, as any user's handler may be */
  sigemptyset(&sa.sa_mask);
  assert_int_equal(sigaction(SIGUSR2, &sa, &old), 0);
  loop_init_checked(&loop);
  ticks = 0;
  atomic_store(&once_prepared, 0);
  once_thread = pthread_self();
  once_tid = current_tid();
  assert_int_equal(soon_prepare_init(&loop, &p), 0);
  assert_int_equal(soon_prepare_start(&p, once_prepare_cb), 0);
  soon_unref((soon_handle *)&p);
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, tick, 200, 0), 0);
  uint64_t due = soon_timer_get_due(&t);
  assert_int_equal(pthread_create(&th, NULL, interrupter, NULL), 0);
  int rc = soon_run(&loop, SOON_RUN_ONCE);
  int fired = ticks;
  uint64_t now = soon_now(&loop);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_int_equal(sigaction(SIGUSR2, &old, NULL), 0);
  /* Clean up first, so a failure below leaks nothing. */
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&p, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
  assert_int_equal(fired, 1);
  assert_int_equal(rc, 0);
  assert_true(now >= due);
}

/* A ONCE with something left to do returns nonzero. */
static void test_run_once_alive(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_checked(&loop);
  ticks = 0;
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, tick, 1, 1), 0);
  assert_int_not_equal(soon_run(&loop, SOON_RUN_ONCE), 0);
  assert_true(ticks >= 1);
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

static void stop_at_3_or_6(soon_timer *t) {
  ticks++;
  if (ticks == 3)
    soon_stop(t->loop);
  if (ticks == 6)
    assert_int_equal(soon_timer_stop(t), 0);
}

static void test_stop(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t, guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  ticks = 0;
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, stop_at_3_or_6, 1, 1), 0);
  assert_int_not_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(ticks, 3);
  assert_true(soon_is_active((soon_handle *)&t));
  assert_true(soon_loop_alive(&loop));
  /* The next run goes on where the last one stopped. */
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(ticks, 6);
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

/* As in libuv: a stop before the run makes that run return at once, and the
 * flag does not outlive it. */
static void test_stop_before_run(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_checked(&loop);
  ticks = 0;
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, tick, 0, 0), 0);
  soon_stop(&loop);
  assert_int_not_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(ticks, 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(ticks, 1);
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

static void test_run_bad_args(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_checked(&loop);
  assert_int_equal(soon_run(NULL, SOON_RUN_DEFAULT), -EINVAL);
  assert_int_equal(soon_run(&loop, (soon_run_mode)3), -EINVAL);
  assert_int_equal(soon_run(&loop, (soon_run_mode)-1), -EINVAL);
  soon_stop(NULL); /* harmless */
  loop_close_checked(&loop);
  /* A closed loop is not runnable. */
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), -EINVAL);
}

static void test_loop_alive(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_checked(&loop);
  assert_int_equal(soon_loop_alive(&loop), 0);
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_loop_alive(&loop), 0); /* inactive */
  assert_int_equal(soon_timer_start(&t, tick, 1000, 0), 0);
  assert_int_not_equal(soon_loop_alive(&loop), 0);
  soon_unref((soon_handle *)&t);
  assert_int_equal(soon_loop_alive(&loop), 0);
  soon_ref((soon_handle *)&t);
  assert_int_not_equal(soon_loop_alive(&loop), 0);
  assert_int_equal(soon_timer_stop(&t), 0);
  assert_int_equal(soon_loop_alive(&loop), 0);
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_not_equal(soon_loop_alive(&loop), 0); /* closing */
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(soon_loop_alive(&loop), 0);
  assert_int_equal(soon_loop_alive(NULL), 0);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ time */

static uint64_t now_a, now_b, now_c;
static void cached_now_cb(soon_timer *t) {
  now_a = soon_now(t->loop);
  spin_ms(3);
  now_b = soon_now(t->loop);
  soon_update_time(t->loop);
  now_c = soon_now(t->loop);
}

static void test_now_cached(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_checked(&loop);
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, cached_now_cb, 0, 0), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_true(now_b == now_a);     /* cached within the callback */
  assert_true(now_c >= now_a + 3); /* refreshed by soon_update_time */
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

static uint64_t nows[8];
static int nnows;
static void monotonic_cb(soon_timer *t) {
  /* A repeating timer is rescheduled, from the loop's time, before its
   * callback runs. */
  assert_true(soon_timer_get_due(t) == soon_now(t->loop) + 1);
  nows[nnows++] = soon_now(t->loop);
  if (nnows == 8)
    assert_int_equal(soon_timer_stop(t), 0);
}

static uint64_t oneshot_due, oneshot_now;
static void oneshot_cb(soon_timer *t) {
  oneshot_due = soon_timer_get_due(t);
  oneshot_now = soon_now(t->loop);
}

static void test_now_monotonic(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t, one, guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  nnows = 0;
  uint64_t before = soon_now(&loop);
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_init(&loop, &one), 0);
  assert_int_equal(soon_timer_start(&t, monotonic_cb, 1, 1), 0);
  assert_int_equal(soon_timer_start(&one, oneshot_cb, 5, 0), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(nnows, 8);
  assert_true(nows[0] >= before + 1);
  for (int i = 1; i < 8; i++)
    assert_true(nows[i] >= nows[i - 1] + 1); /* every 1 ms at least */
  assert_true(oneshot_due == before + 5);
  assert_true(oneshot_now >= oneshot_due);
  assert_true(soon_now(&loop) >= oneshot_now);
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&one, NULL), 0);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

static void test_hrtime(void **state) {
  (void)state;
  uint64_t a = soon_hrtime(), b = a;
  for (long i = 0; i < 100000000L && b == a; i++)
    b = soon_hrtime();
  assert_true(b > a);
  uint64_t prev = soon_hrtime();
  for (int i = 0; i < 100000; i++) {
    uint64_t cur = soon_hrtime();
    assert_true(cur >= prev);
    prev = cur;
  }
  /* Not cached, unlike soon_now: it moves inside one callback. */
  soon_loop loop;
  loop_init_checked(&loop);
  uint64_t now = soon_now(&loop), h = soon_hrtime();
  spin_ms(2);
  assert_true(soon_hrtime() > h);
  assert_true(soon_now(&loop) == now);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ manual clock */

static void idle_three(soon_idle *h) {
  if (++ticks == 3)
    assert_int_equal(soon_idle_stop(h), 0);
}

static void test_manual_clock_stands_still(void **state) {
  (void)state;
  soon_loop loop;
  soon_idle idle;
  loop_init_manual(&loop);
  assert_true(soon_now(&loop) == 0);
  ticks = 0;
  assert_int_equal(soon_idle_init(&loop, &idle), 0);
  assert_int_equal(soon_idle_start(&idle, idle_three), 0);
  spin_ms(2);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(ticks, 3);
  assert_true(soon_now(&loop) == 0);
  soon_update_time(&loop);
  assert_true(soon_now(&loop) == 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_NOWAIT), 0);
  assert_true(soon_now(&loop) == 0);
  assert_int_equal(soon_loop_advance(&loop, 7), 0);
  assert_true(soon_now(&loop) == 7);
  assert_int_equal(soon_run(&loop, SOON_RUN_NOWAIT), 0);
  assert_true(soon_now(&loop) == 7);
  assert_int_equal(soon_close((soon_handle *)&idle, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

static void test_advance_real_clock(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_checked(&loop);
  assert_int_equal(soon_loop_advance(&loop, 10), -EINVAL);
  assert_int_equal(soon_loop_advance(NULL, 10), -EINVAL);
  loop_close_checked(&loop);
}

typedef struct {
  soon_timer t;
  int id;
} idt;

static int order[16], norder;
static uint64_t order_now[16];
static void order_cb(soon_timer *t) {
  idt *x = (idt *)t;
  assert_true(norder < 16);
  order_now[norder] = soon_now(t->loop);
  order[norder++] = x->id;
  /* Inside the callback, soon_now() is the timer's own deadline. */
  assert_true(soon_now(t->loop) == soon_timer_get_due(t));
}

static void test_advance_order(void **state) {
  (void)state;
  soon_loop loop;
  static const uint64_t timeouts[5] = {30, 10, 20, 10, 25};
  idt timers[5];
  loop_init_manual(&loop);
  norder = 0;
  for (int i = 0; i < 5; i++) {
    timers[i].id = i;
    assert_int_equal(soon_timer_init(&loop, &timers[i].t), 0);
    assert_int_equal(soon_timer_start(&timers[i].t, order_cb, timeouts[i], 0),
                     0);
  }
  assert_int_equal(soon_loop_advance(&loop, 22), 0);
  assert_int_equal(norder, 3);
  assert_int_equal(order[0], 1);
  assert_int_equal(order[1], 3); /* equal deadline: start order */
  assert_int_equal(order[2], 2);
  assert_true(order_now[0] == 10);
  assert_true(order_now[1] == 10);
  assert_true(order_now[2] == 20);
  assert_true(soon_now(&loop) == 22);
  assert_int_equal(soon_loop_advance(&loop, 100), 0);
  assert_int_equal(norder, 5);
  assert_int_equal(order[3], 4);
  assert_int_equal(order[4], 0);
  assert_true(order_now[3] == 25);
  assert_true(order_now[4] == 30);
  assert_true(soon_now(&loop) == 122);
  for (int i = 0; i < 5; i++)
    assert_int_equal(soon_close((soon_handle *)&timers[i].t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

static uint64_t rep_now[32];
static void repeat_cb(soon_timer *t) {
  assert_true(ticks < 32);
  rep_now[ticks++] = soon_now(t->loop);
}

static void test_advance_repeat(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_manual(&loop);
  ticks = 0;
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, repeat_cb, 10, 10), 0);
  assert_int_equal(soon_loop_advance(&loop, 100), 0);
  assert_int_equal(ticks, 10);
  for (int i = 0; i < 10; i++)
    assert_true(rep_now[i] == (uint64_t)(i + 1) * 10);
  assert_true(soon_now(&loop) == 100);
  assert_true(soon_timer_get_due(&t) == 110);
  assert_int_equal(soon_loop_advance(&loop, 9), 0);
  assert_int_equal(ticks, 10);
  assert_int_equal(soon_loop_advance(&loop, 1), 0);
  assert_int_equal(ticks, 11);
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

/* Only soon_loop_advance can make a manual clock's future timer due, so a
 * run does not wait for it (which would be forever). */
static void test_manual_run_future_timer(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_manual(&loop);
  ticks = 0;
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, tick, 50, 0), 0);
  watchdog_arm(); /* a wait here would be forever */
  int rc = soon_run(&loop, SOON_RUN_DEFAULT);
  assert_true(rc >= 0);
  assert_int_equal(ticks, 0);
  assert_true(soon_is_active((soon_handle *)&t));
  assert_int_not_equal(soon_loop_alive(&loop), 0);
  assert_true(soon_now(&loop) == 0);
  assert_true(soon_run(&loop, SOON_RUN_ONCE) >= 0);
  watchdog_disarm();
  assert_int_equal(ticks, 0);
  assert_int_equal(soon_loop_advance(&loop, 50), 0);
  assert_int_equal(ticks, 1);
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

/* A due timer (timeout 0) on a manual clock is fired by soon_run. */
static void test_manual_run_due_timer(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_manual(&loop);
  ticks = 0;
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, tick, 0, 0), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(ticks, 1);
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

/* A loop that has run in one thread, then run in another. On uring the
 * ring is bound to the first thread that entered it (docs/uring.md):
 * -EEXIST, said plainly, and the loop still works in its own thread. The
 * other backends have no such tie. */
typedef struct {
  soon_loop *loop;
  int ran;
} other_thread;

static void noop_tick(soon_timer *t) { (void)t; }

static void *run_elsewhere(void *arg) {
  other_thread *o = arg;
  o->ran = soon_run(o->loop, SOON_RUN_NOWAIT);
  return NULL;
}

static void test_run_in_second_thread(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_checked(&loop);
  int bound = strcmp(soon_backend_name(&loop), "uring") == 0;
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, noop_tick, 0, 0), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(soon_timer_start(&t, noop_tick, 0, 0), 0);
  other_thread o = {&loop, 1};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, run_elsewhere, &o), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_int_equal(o.ran, bound ? -EEXIST : 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0); /* here: fine */
  assert_false(soon_is_active((soon_handle *)&t));
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_init_close, reset),
      cmocka_unit_test_setup(test_init_keeps_data, reset),
      cmocka_unit_test_setup(test_close_releases_fds, reset),
      cmocka_unit_test_setup(test_close_busy, reset),
      cmocka_unit_test_setup(test_init_ex_errors, reset),
      cmocka_unit_test_setup(test_init_bad_env, reset),
      cmocka_unit_test_setup(test_backend_name_env, reset),
      cmocka_unit_test_setup(test_init_ex_explicit, reset),
      cmocka_unit_test_setup(test_phase_order, reset),
      cmocka_unit_test_setup(test_run_default_empty, reset),
      cmocka_unit_test_setup(test_run_default_until_done, reset),
      cmocka_unit_test_setup(test_run_nowait, reset),
      cmocka_unit_test_setup(test_run_once_waits_then_fires, reset),
      cmocka_unit_test_setup(test_run_once_interrupted_wait, reset),
      cmocka_unit_test_setup(test_run_once_alive, reset),
      cmocka_unit_test_setup(test_stop, reset),
      cmocka_unit_test_setup(test_stop_before_run, reset),
      cmocka_unit_test_setup(test_run_bad_args, reset),
      cmocka_unit_test_setup(test_loop_alive, reset),
      cmocka_unit_test_setup(test_now_cached, reset),
      cmocka_unit_test_setup(test_now_monotonic, reset),
      cmocka_unit_test_setup(test_hrtime, reset),
      cmocka_unit_test_setup(test_manual_clock_stands_still, reset),
      cmocka_unit_test_setup(test_advance_real_clock, reset),
      cmocka_unit_test_setup(test_advance_order, reset),
      cmocka_unit_test_setup(test_advance_repeat, reset),
      cmocka_unit_test_setup(test_manual_run_future_timer, reset),
      cmocka_unit_test_setup(test_manual_run_due_timer, reset),
      cmocka_unit_test_setup(test_run_in_second_thread, reset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
