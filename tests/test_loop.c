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
#include <stdbool.h>

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
  opts.flags = SOON_LOOP_MANUAL_CLOCK | (1u << 6);
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

/* SIGUSR2 caught without SA_RESTART, as any user's handler may be: it cuts
 * a wait short with EINTR. */
static void catch_usr2(struct sigaction *old) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr2;
  sigemptyset(&sa.sa_mask);
  assert_int_equal(sigaction(SIGUSR2, &sa, old), 0);
}

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
  struct sigaction old;
  catch_usr2(&old);
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

/* A loop belongs to the first thread that runs it, on every backend: from
 * any other, soon_run is -EEXIST before it runs anything (a due timer stays
 * unfired), whether or not the loop has work. It still works in its own
 * thread. A loop set up in one thread may be run first by another. */
typedef struct {
  soon_loop *loop;
  int ran;
} other_thread;

static int tick_calls;
static void noop_tick(soon_timer *t) {
  (void)t;
  tick_calls++;
}

static void *run_elsewhere(void *arg) {
  other_thread *o = arg;
  o->ran = soon_run(o->loop, SOON_RUN_NOWAIT);
  return NULL;
}

static int run_in_thread(soon_loop *loop) {
  other_thread o = {loop, 1};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, run_elsewhere, &o), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  return o.ran;
}

static void test_run_in_second_thread(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_checked(&loop);
  tick_calls = 0;
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, noop_tick, 0, 0), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(tick_calls, 1);
  /* Nothing alive: still refused, not 0. */
  assert_int_equal(run_in_thread(&loop), -EEXIST);
  assert_int_equal(soon_timer_start(&t, noop_tick, 0, 0), 0);
  assert_int_equal(run_in_thread(&loop), -EEXIST);
  assert_int_equal(tick_calls, 1); /* the due timer did not run there */
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0); /* here: fine */
  assert_int_equal(tick_calls, 2);
  assert_false(soon_is_active((soon_handle *)&t));
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

/* The thread that runs the loop first owns it, whichever made it: there it
 * fires a timer, closes it and runs the close phase; here, soon_run is
 * -EEXIST, and so is a new thread's. Closing the loop needs no run. */
static void *run_close_elsewhere(void *arg) {
  other_thread *o = arg;
  soon_timer *t = o->loop->data;
  o->ran = soon_run(o->loop, SOON_RUN_DEFAULT);
  if (o->ran == 0 && soon_close((soon_handle *)t, NULL) == 0)
    o->ran = soon_run(o->loop, SOON_RUN_DEFAULT);
  return NULL;
}

static void test_first_run_in_other_thread(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_checked(&loop);
  loop.data = &t;
  tick_calls = 0;
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, noop_tick, 0, 0), 0);
  other_thread o = {&loop, 1};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, run_close_elsewhere, &o), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_int_equal(o.ran, 0);
  assert_int_equal(tick_calls, 1);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), -EEXIST);
  assert_int_equal(run_in_thread(&loop), -EEXIST); /* a new thread, too */
  loop_close_checked(&loop);
}

/* soon_run from inside a callback of the same loop is -EBUSY in every mode,
 * and runs nothing: a level-triggered fd's callback does not re-enter
 * itself, and a completion is told once. */
typedef struct {
  soon_loop *loop;
  soon_io io;
  int fds[2];
  soon_timer timer;
  soon_fs_req fs;
  int io_calls, timer_calls, fs_calls, nested[3];
} nest_state;

static void nest_try(nest_state *n) {
  n->nested[0] = soon_run(n->loop, SOON_RUN_DEFAULT);
  n->nested[1] = soon_run(n->loop, SOON_RUN_ONCE);
  n->nested[2] = soon_run(n->loop, SOON_RUN_NOWAIT);
  for (int i = 0; i < 3; i++)
    assert_int_equal(n->nested[i], -EBUSY);
}

static void nest_io(soon_io *io, int status, int events) {
  nest_state *n = io->data;
  assert_int_equal(status, 0);
  assert_true(events & SOON_READABLE);
  n->io_calls++;
  nest_try(n); /* the byte is still unread: the fd stays ready */
  assert_int_equal(n->io_calls, 1);
  assert_int_equal(soon_io_stop(io), 0);
}

static void nest_fs(soon_fs_req *req) {
  nest_state *n = req->data;
  n->fs_calls++;
  assert_int_equal(req->result, 0);
  nest_try(n);
  assert_int_equal(n->fs_calls, 1);
  soon_fs_req_cleanup(req);
}

static void nest_timer(soon_timer *t) {
  nest_state *n = t->data;
  n->timer_calls++;
  nest_try(n);
  assert_int_equal(n->timer_calls, 1);
}

static void test_run_nested(void **state) {
  (void)state;
  soon_loop loop;
  nest_state n = {.loop = &loop};
  soon_timer guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  make_pipe(n.fds);
  write_byte(n.fds[1]);
  assert_int_equal(soon_io_init(&loop, &n.io, n.fds[0]), 0);
  n.io.data = &n;
  assert_int_equal(soon_io_start(&n.io, SOON_READABLE, nest_io), 0);
  assert_int_equal(soon_timer_init(&loop, &n.timer), 0);
  n.timer.data = &n;
  assert_int_equal(soon_timer_start(&n.timer, nest_timer, 0, 0), 0);
  n.fs.data = &n;
  assert_int_equal(soon_fs_stat(&loop, &n.fs, "/", nest_fs), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(n.io_calls, 1);
  assert_int_equal(n.timer_calls, 1);
  assert_int_equal(n.fs_calls, 1);
  /* Refused while running, the loop runs again once it returned. */
  assert_int_equal(soon_timer_start(&n.timer, noop_tick, 0, 0), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(soon_close((soon_handle *)&n.timer, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&n.io, NULL), 0);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
  close_fd(n.fds[0]);
  close_fd(n.fds[1]);
}

/* soon_loop_advance runs timer callbacks too: from inside one, both it and
 * soon_run are -EBUSY; from inside soon_run, soon_loop_advance is. */
static int adv_calls;
static void adv_nested(soon_timer *t) {
  adv_calls++;
  assert_int_equal(soon_run(t->loop, SOON_RUN_NOWAIT), -EBUSY);
  assert_int_equal(soon_loop_advance(t->loop, 1), -EBUSY);
}

static void test_advance_nested(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_manual(&loop);
  adv_calls = 0;
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, adv_nested, 10, 0), 0);
  assert_int_equal(soon_loop_advance(&loop, 10), 0);
  assert_int_equal(adv_calls, 1);
  assert_int_equal(soon_now(&loop), 10);
  assert_int_equal(soon_timer_start(&t, adv_nested, 0, 0), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(adv_calls, 2);
  assert_int_equal(soon_now(&loop), 10);
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

/* A signal that cuts the wait short (EINTR) does not make an iteration of
 * its own in DEFAULT mode either: the wait goes on, and the one iteration
 * runs prepare and check once, around the I/O that ended it. */
static int int_prepares, int_checks;
static int int_fds[2];

static void int_prepare_cb(soon_prepare *p) {
  (void)p;
  int_prepares++;
  atomic_store(&once_prepared, 1);
}

static void int_check_cb(soon_check *c) {
  (void)c;
  int_checks++;
}

static void int_io_cb(soon_io *io, int status, int events) {
  (void)status;
  (void)events;
  soon_io_stop(io);
}

static void *int_interrupter(void *arg) {
  (void)arg;
  while (!atomic_load(&once_prepared))
    sched_yield();
  wait_until_sleeping(once_tid);
  pthread_kill(once_thread, SIGUSR2);
  /* Without the resumed wait, the loop would run check, then prepare
   * again, before it sleeps once more. */
  wait_until_sleeping(once_tid);
  write_byte(int_fds[1]);
  return NULL;
}

static void test_run_default_interrupted_wait(void **state) {
  (void)state;
  soon_loop loop;
  soon_prepare p;
  soon_check c;
  soon_io io;
  pthread_t th;
  struct sigaction old;
  catch_usr2(&old);
  loop_init_checked(&loop);
  /* Chaos mode adds wake-ups with no event on purpose: each is one more
   * iteration, which this test would count as a wait cut short. */
  bool chaos = soon_loop_chaos_seed(&loop) != 0;
  make_pipe(int_fds);
  int_prepares = int_checks = 0;
  atomic_store(&once_prepared, 0);
  once_thread = pthread_self();
  once_tid = current_tid();
  assert_int_equal(soon_prepare_init(&loop, &p), 0);
  assert_int_equal(soon_prepare_start(&p, int_prepare_cb), 0);
  soon_unref((soon_handle *)&p);
  assert_int_equal(soon_check_init(&loop, &c), 0);
  assert_int_equal(soon_check_start(&c, int_check_cb), 0);
  soon_unref((soon_handle *)&c);
  assert_int_equal(soon_io_init(&loop, &io, int_fds[0]), 0);
  assert_int_equal(soon_io_start(&io, SOON_READABLE, int_io_cb), 0);
  assert_int_equal(pthread_create(&th, NULL, int_interrupter, NULL), 0);
  int rc = soon_run(&loop, SOON_RUN_DEFAULT);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_int_equal(sigaction(SIGUSR2, &old, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&io, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&p, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&c, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
  close_fd(int_fds[0]);
  close_fd(int_fds[1]);
  assert_int_equal(rc, 0);
  if (!chaos) {
    assert_int_equal(int_prepares, 1);
    assert_int_equal(int_checks, 1);
  }
}

/* ----------------------------------------------------------- unusable loops */

/* The callbacks given to calls on a loop that cannot take them: none may run,
 * since each of those calls must fail. */
static int refused_cbs;
static void refused_async(soon_async *a) {
  (void)a;
  refused_cbs++;
}
static void refused_work(soon_work_req *w) {
  (void)w;
  refused_cbs++;
}
static void refused_after(soon_work_req *w, int status) {
  (void)w;
  (void)status;
  refused_cbs++;
}
static void refused_fs(soon_fs_req *req) {
  (void)req;
  refused_cbs++;
}
static void refused_gai(soon_getaddrinfo_req *req, int status,
                        struct addrinfo *res) {
  (void)req;
  (void)status;
  soon_freeaddrinfo(res);
  refused_cbs++;
}
static void refused_gni(soon_getnameinfo_req *req, int status, const char *host,
                        const char *service) {
  (void)req;
  (void)status;
  (void)host;
  (void)service;
  refused_cbs++;
}
static void refused_exit(soon_process *p, int64_t status, int signum) {
  (void)p;
  (void)status;
  (void)signum;
  refused_cbs++;
}

static void dir_opened(soon_fs_req *req) { assert_true(req->result >= 0); }

/* What the refused calls are given. Filled with a pattern that they must
 * leave as it is: a refusal writes nothing, not even the caller's handle. */
static struct {
  soon_timer timer;
  soon_idle idle;
  soon_prepare prepare;
  soon_check check;
  soon_io io;
  soon_async async;
  soon_tcp tcp;
  soon_pipe pipe;
  soon_udp udp;
  soon_tty tty;
  soon_signal signal;
  soon_process process;
  soon_work_req work;
  soon_getaddrinfo_req gai;
  soon_getnameinfo_req gni;
  soon_fs_req fs[40];
} R;

/* Every entry point that takes a loop, once each, with arguments that would
 * be accepted on a working loop: each answers -EINVAL, runs no callback and
 * leaves the loop (and what it was given) as it was. */
static void assert_refuses_everything(soon_loop *loop) {
  /* Real things to point the calls at: a file, a pipe, a terminal, and a
   * directory stream opened on a loop that works. */
  char tmp[] = "/tmp/soon-refused-XXXXXX";
  int file = mkstemp(tmp);
  assert_true(file >= 0);
  assert_int_equal(unlink(tmp), 0);
  int fds[2];
  make_pipe(fds);
  /* Without a pty here (a container without /dev/pts), the tty call is
   * the one left out. */
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC), slave = -1;
  if (master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0)
    slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0)
    fprintf(stderr, "no pseudo-terminal here: soon_tty_init not tried\n");
  soon_loop live;
  soon_fs_req open_req = {0}, close_req = {0};
  soon_dirent ents[4];
  loop_init_checked(&live);
  assert_int_equal(soon_fs_opendir(&live, &open_req, "/tmp", dir_opened), 0);
  assert_int_equal(soon_run(&live, SOON_RUN_DEFAULT), 0);
  soon_dir *dir = open_req.ptr;
  dir->dirents = ents;
  dir->nentries = 4;
  char buf[8];
  soon_buf bufs[] = {{buf, sizeof buf}};
  struct sockaddr_in addr = {.sin_family = AF_INET,
                             .sin_port = htons(80),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  soon_process_options popts = {.exit_cb = refused_exit, .file = "true"};

  soon_loop before;
  if (loop)
    memcpy(&before, loop, sizeof before);
  memset(&R, 0x5a, sizeof R);
  refused_cbs = 0;

  assert_int_equal(soon_timer_init(loop, &R.timer), -EINVAL);
  assert_int_equal(soon_idle_init(loop, &R.idle), -EINVAL);
  assert_int_equal(soon_prepare_init(loop, &R.prepare), -EINVAL);
  assert_int_equal(soon_check_init(loop, &R.check), -EINVAL);
  assert_int_equal(soon_io_init(loop, &R.io, fds[0]), -EINVAL);
  assert_int_equal(soon_async_init(loop, &R.async, refused_async), -EINVAL);
  assert_int_equal(soon_tcp_init(loop, &R.tcp), -EINVAL);
  assert_int_equal(soon_pipe_init(loop, &R.pipe), -EINVAL);
  assert_int_equal(soon_udp_init(loop, &R.udp), -EINVAL);
  if (slave >= 0)
    assert_int_equal(soon_tty_init(loop, &R.tty, slave), -EINVAL);
  assert_int_equal(soon_signal_init(loop, &R.signal), -EINVAL);
  assert_int_equal(soon_spawn(loop, &R.process, &popts), -EINVAL);
  assert_int_equal(soon_work(loop, &R.work, refused_work, refused_after),
                   -EINVAL);
  assert_int_equal(soon_work_slow(loop, &R.work, refused_work, refused_after),
                   -EINVAL);
  assert_int_equal(
      soon_getaddrinfo(loop, &R.gai, refused_gai, "127.0.0.1", "80", NULL),
      -EINVAL);
  assert_int_equal(soon_getnameinfo(loop, &R.gni, refused_gni,
                                    (const struct sockaddr *)&addr, 0),
                   -EINVAL);
  assert_int_equal(soon_loop_advance(loop, 10), -EINVAL);

  soon_fs_req *fs = R.fs;
  const char *gone = "/tmp/soon-refused-never-made";
  assert_int_equal(soon_fs_open(loop, fs++, "/tmp", O_RDONLY, 0, refused_fs),
                   -EINVAL);
  assert_int_equal(soon_fs_close(loop, fs++, file, refused_fs), -EINVAL);
  assert_int_equal(soon_fs_read(loop, fs++, file, bufs, 1, 0, refused_fs),
                   -EINVAL);
  assert_int_equal(soon_fs_write(loop, fs++, file, bufs, 1, 0, refused_fs),
                   -EINVAL);
  assert_int_equal(soon_fs_sendfile(loop, fs++, fds[1], file, 0, 1, refused_fs),
                   -EINVAL);
  assert_int_equal(soon_fs_stat(loop, fs++, "/tmp", refused_fs), -EINVAL);
  assert_int_equal(soon_fs_lstat(loop, fs++, "/tmp", refused_fs), -EINVAL);
  assert_int_equal(soon_fs_fstat(loop, fs++, file, refused_fs), -EINVAL);
  assert_int_equal(soon_fs_statfs(loop, fs++, "/tmp", refused_fs), -EINVAL);
  assert_int_equal(soon_fs_fsync(loop, fs++, file, refused_fs), -EINVAL);
  assert_int_equal(soon_fs_fdatasync(loop, fs++, file, refused_fs), -EINVAL);
  assert_int_equal(soon_fs_ftruncate(loop, fs++, file, 0, refused_fs), -EINVAL);
  assert_int_equal(soon_fs_unlink(loop, fs++, gone, refused_fs), -EINVAL);
  assert_int_equal(soon_fs_mkdir(loop, fs++, gone, 0700, refused_fs), -EINVAL);
  assert_int_equal(
      soon_fs_mkdtemp(loop, fs++, "/tmp/soon-refused-XXXXXX", refused_fs),
      -EINVAL);
  assert_int_equal(soon_fs_rmdir(loop, fs++, gone, refused_fs), -EINVAL);
  assert_int_equal(soon_fs_rename(loop, fs++, gone, gone, refused_fs), -EINVAL);
  assert_int_equal(soon_fs_link(loop, fs++, gone, gone, refused_fs), -EINVAL);
  assert_int_equal(soon_fs_symlink(loop, fs++, gone, gone, refused_fs),
                   -EINVAL);
  assert_int_equal(soon_fs_readlink(loop, fs++, "/tmp", refused_fs), -EINVAL);
  assert_int_equal(soon_fs_realpath(loop, fs++, "/tmp", refused_fs), -EINVAL);
  assert_int_equal(soon_fs_chmod(loop, fs++, gone, 0700, refused_fs), -EINVAL);
  assert_int_equal(soon_fs_fchmod(loop, fs++, file, 0600, refused_fs), -EINVAL);
  assert_int_equal(soon_fs_chown(loop, fs++, gone, 0, 0, refused_fs), -EINVAL);
  assert_int_equal(soon_fs_fchown(loop, fs++, file, 0, 0, refused_fs), -EINVAL);
  assert_int_equal(soon_fs_utime(loop, fs++, gone, 1.0, 1.0, refused_fs),
                   -EINVAL);
  assert_int_equal(soon_fs_futime(loop, fs++, file, 1.0, 1.0, refused_fs),
                   -EINVAL);
  assert_int_equal(soon_fs_access(loop, fs++, "/tmp", F_OK, refused_fs),
                   -EINVAL);
  assert_int_equal(soon_fs_copyfile(loop, fs++, gone, gone, 0, refused_fs),
                   -EINVAL);
  assert_int_equal(soon_fs_scandir(loop, fs++, "/tmp", refused_fs), -EINVAL);
  assert_int_equal(soon_fs_opendir(loop, fs++, "/tmp", refused_fs), -EINVAL);
  assert_int_equal(soon_fs_readdir(loop, fs++, dir, refused_fs), -EINVAL);
  assert_int_equal(soon_fs_closedir(loop, fs++, dir, refused_fs), -EINVAL);
  assert_int_equal(soon_fs_read_file(loop, fs++, "/tmp", 64, refused_fs),
                   -EINVAL);
  assert_true(fs <= R.fs + sizeof R.fs / sizeof R.fs[0]);

  /* The loop's own calls: refused, or nothing done. */
  soon_update_time(loop);
  soon_stop(loop);
  assert_null(soon_backend_name(loop));
  assert_int_equal(soon_loop_alive(loop), 0);
  assert_int_equal(soon_run(loop, SOON_RUN_NOWAIT), -EINVAL);
  assert_int_equal(soon_loop_close(loop), -EINVAL);

  assert_int_equal(refused_cbs, 0);
  if (loop)
    assert_memory_equal(loop, &before, sizeof before);
  for (size_t i = 0; i < sizeof R; i++)
    if (((unsigned char *)&R)[i] != 0x5a)
      fail_msg("a refused call wrote byte %zu of what it was given", i);

  assert_int_equal(soon_fs_closedir(&live, &close_req, dir, dir_opened), 0);
  assert_int_equal(soon_run(&live, SOON_RUN_DEFAULT), 0);
  soon_fs_req_cleanup(&open_req);
  soon_fs_req_cleanup(&close_req);
  loop_close_checked(&live);
  assert_int_equal(refused_cbs, 0);
  if (slave >= 0)
    close_fd(slave);
  if (master >= 0)
    close_fd(master);
  close_fd(fds[0]);
  close_fd(fds[1]);
  close_fd(file);
}

static void work_nothing(soon_work_req *w) { (void)w; }
static void work_after(soon_work_req *w, int status) {
  (void)w;
  assert_int_equal(status, 0);
  rec('W');
}

/* A closed loop is not a crash waiting to happen: it answers -EINVAL. It
 * used the pool and an async handle first, so that close took those down
 * too; a manual clock, so that soon_loop_advance would take it. */
static void test_closed_loop_refuses(void **state) {
  (void)state;
  soon_loop loop;
  soon_work_req w;
  loop_init_manual(&loop);
  assert_int_equal(soon_work(&loop, &w, work_nothing, work_after), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_string_equal(seq, "W");
  loop_close_checked(&loop);
  assert_refuses_everything(&loop);
}

/* Whichever step of init fails, the loop is left refusing everything, not
 * half set: checked on memory that held garbage before. */
static void test_failed_init_refuses(void **state) {
  (void)state;
  static const struct {
    const char *backend;
    unsigned flags;
    const char *pool_size;  /* $SOON_THREADPOOL_SIZE */
    const char *uring_fail; /* $SOON_URING_FAIL */
    int err;
  } cases[] = {
      {"nonsense", 0, NULL, NULL, -EINVAL},
      {NULL, 1u << 7, NULL, NULL, -EINVAL},
      {NULL, 0, "0", NULL, -EINVAL},
      /* Past the backend's own init, which failed. */
      {"uring", 0, NULL, "1", -ENOSYS},
  };
  const char *env = getenv("SOON_THREADPOOL_SIZE");
  char saved[32] = "";
  if (env) {
    assert_true(strlen(env) < sizeof saved);
    strcpy(saved, env);
  }
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    soon_loop loop;
    soon_loop_options opts = {.backend = cases[i].backend,
                              .flags = cases[i].flags};
    memset(&loop, 0xa5, sizeof loop);
    if (cases[i].pool_size)
      assert_int_equal(setenv("SOON_THREADPOOL_SIZE", cases[i].pool_size, 1),
                       0);
    if (cases[i].uring_fail)
      assert_int_equal(setenv("SOON_URING_FAIL", cases[i].uring_fail, 1), 0);
    int rc = soon_loop_init_ex(&loop, &opts);
    assert_int_equal(unsetenv("SOON_THREADPOOL_SIZE"), 0);
    assert_int_equal(unsetenv("SOON_URING_FAIL"), 0);
    assert_int_equal(rc, cases[i].err);
    assert_refuses_everything(&loop);
  }
  if (env)
    assert_int_equal(setenv("SOON_THREADPOOL_SIZE", saved, 1), 0);
}

static void test_null_loop_refuses(void **state) {
  (void)state;
  assert_refuses_everything(NULL);
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
      cmocka_unit_test_setup(test_closed_loop_refuses, reset),
      cmocka_unit_test_setup(test_failed_init_refuses, reset),
      cmocka_unit_test_setup(test_null_loop_refuses, reset),
      cmocka_unit_test_setup(test_first_run_in_other_thread, reset),
      cmocka_unit_test_setup(test_run_nested, reset),
      cmocka_unit_test_setup(test_advance_nested, reset),
      cmocka_unit_test_setup(test_run_default_interrupted_wait, reset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
