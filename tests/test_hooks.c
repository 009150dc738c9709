/* test_hooks.c: idle, prepare and check handles: when they run in an iteration,
 * starting and stopping them from callbacks, and their argument checks. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <soon.h>

#include "helpers.h"

static char seq[128];
static size_t nseq;
static soon_handle *all[8];
static int nall, marks, mark_limit;

static void rec(char c) {
  assert_true(nseq + 1 < sizeof seq);
  seq[nseq++] = c;
  seq[nseq] = '\0';
}

static int reset(void **state) {
  (void)state;
  nseq = 0;
  seq[0] = '\0';
  nall = marks = 0;
  mark_limit = 3;
  return 0;
}

static void track(soon_handle *h) {
  assert_true(nall < 8);
  all[nall++] = h;
}

static void close_all(void) {
  for (int i = 0; i < nall; i++)
    assert_int_equal(soon_close(all[i], NULL), 0);
  nall = 0;
}

static void idle_nop(soon_idle *h) { (void)h; }
static void prepare_nop(soon_prepare *h) { (void)h; }
static void check_nop(soon_check *h) { (void)h; }

/* ------------------------------------------------------------ idle */

static int idle_count, prepare_count, io_count;

static void io_never(soon_io *io, int status, int events) {
  (void)io;
  (void)status;
  (void)events;
  io_count++;
}

static void count_prepare(soon_prepare *h) {
  (void)h;
  prepare_count++;
}

static void idle_to_100(soon_idle *h) {
  (void)h;
  assert_int_equal(idle_count, prepare_count); /* idle before prepare */
  if (++idle_count == 100)
    close_all();
}

/* With an idle handle, the backend does not block on a silent pipe: without
 * it this loop would sleep until the guard fails it. */
static void test_idle_keeps_wait_nonblocking(void **state) {
  (void)state;
  soon_loop loop;
  soon_idle idle;
  soon_prepare prep;
  soon_io io;
  soon_timer guard;
  int fds[2];
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  make_pipe(fds);
  idle_count = prepare_count = io_count = 0;
  assert_int_equal(soon_io_init(&loop, &io, fds[0]), 0);
  assert_int_equal(soon_io_start(&io, SOON_READABLE, io_never), 0);
  assert_int_equal(soon_idle_init(&loop, &idle), 0);
  assert_int_equal(soon_idle_start(&idle, idle_to_100), 0);
  assert_int_equal(soon_prepare_init(&loop, &prep), 0);
  assert_int_equal(soon_prepare_start(&prep, count_prepare), 0);
  track((soon_handle *)&io);
  track((soon_handle *)&idle);
  track((soon_handle *)&prep);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(idle_count, 100);
  /* Every iteration, but the 100th: its idle closed it before its turn. */
  assert_int_equal(prepare_count, 99);
  assert_int_equal(io_count, 0);
  guard_close(&loop, &guard);
  close_fd(fds[0]);
  close_fd(fds[1]);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ order */

static void prep_rec(soon_prepare *h) {
  (void)h;
  rec('P');
}

static void check_rec_5(soon_check *h) {
  (void)h;
  rec('K');
  if (++marks == 5)
    close_all();
}

static void test_prepare_before_check(void **state) {
  (void)state;
  soon_loop loop;
  soon_idle keep;
  soon_prepare p;
  soon_check c;
  soon_timer guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  /* Started check first: the phase decides the order, not the start order. */
  assert_int_equal(soon_check_init(&loop, &c), 0);
  assert_int_equal(soon_check_start(&c, check_rec_5), 0);
  assert_int_equal(soon_prepare_init(&loop, &p), 0);
  assert_int_equal(soon_prepare_start(&p, prep_rec), 0);
  assert_int_equal(soon_idle_init(&loop, &keep), 0);
  assert_int_equal(soon_idle_start(&keep, idle_nop), 0);
  track((soon_handle *)&c);
  track((soon_handle *)&p);
  track((soon_handle *)&keep);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_string_equal(seq, "PKPKPKPKPK");
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

/* ------------------------------------------- start from inside a callback */

static soon_idle idle_b;
static soon_prepare prep_b;
static soon_check check_b;

static void idle_b_cb(soon_idle *h) {
  (void)h;
  rec('b');
}
static void idle_a_cb(soon_idle *h) {
  (void)h;
  rec('a');
  assert_int_equal(soon_idle_start(&idle_b, idle_b_cb), 0);
}
static void prep_b_cb(soon_prepare *h) {
  (void)h;
  rec('b');
}
static void prep_a_cb(soon_prepare *h) {
  (void)h;
  rec('a');
  assert_int_equal(soon_prepare_start(&prep_b, prep_b_cb), 0);
}
static void check_b_cb(soon_check *h) {
  (void)h;
  rec('b');
}
static void check_a_cb(soon_check *h) {
  (void)h;
  rec('a');
  assert_int_equal(soon_check_start(&check_b, check_b_cb), 0);
}

static void mark_check(soon_check *h) {
  (void)h;
  rec('|');
  if (++marks == mark_limit)
    close_all();
}
static void mark_prepare(soon_prepare *h) {
  (void)h;
  rec('|');
  if (++marks == mark_limit)
    close_all();
}

static void test_start_idle_from_idle(void **state) {
  (void)state;
  soon_loop loop;
  soon_idle a;
  soon_check mark;
  soon_timer guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  assert_int_equal(soon_idle_init(&loop, &a), 0);
  assert_int_equal(soon_idle_init(&loop, &idle_b), 0);
  assert_int_equal(soon_check_init(&loop, &mark), 0);
  assert_int_equal(soon_idle_start(&a, idle_a_cb), 0);
  assert_int_equal(soon_check_start(&mark, mark_check), 0);
  track((soon_handle *)&a);
  track((soon_handle *)&idle_b);
  track((soon_handle *)&mark);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_string_equal(seq, "a|ab|ab|");
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

static void test_start_prepare_from_prepare(void **state) {
  (void)state;
  soon_loop loop;
  soon_prepare a;
  soon_check mark;
  soon_idle keep;
  soon_timer guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  assert_int_equal(soon_prepare_init(&loop, &a), 0);
  assert_int_equal(soon_prepare_init(&loop, &prep_b), 0);
  assert_int_equal(soon_check_init(&loop, &mark), 0);
  assert_int_equal(soon_idle_init(&loop, &keep), 0);
  assert_int_equal(soon_prepare_start(&a, prep_a_cb), 0);
  assert_int_equal(soon_check_start(&mark, mark_check), 0);
  assert_int_equal(soon_idle_start(&keep, idle_nop), 0);
  track((soon_handle *)&a);
  track((soon_handle *)&prep_b);
  track((soon_handle *)&mark);
  track((soon_handle *)&keep);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_string_equal(seq, "a|ab|ab|");
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

static void test_start_check_from_check(void **state) {
  (void)state;
  soon_loop loop;
  soon_check a;
  soon_prepare mark;
  soon_idle keep;
  soon_timer guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  assert_int_equal(soon_check_init(&loop, &a), 0);
  assert_int_equal(soon_check_init(&loop, &check_b), 0);
  assert_int_equal(soon_prepare_init(&loop, &mark), 0);
  assert_int_equal(soon_idle_init(&loop, &keep), 0);
  assert_int_equal(soon_check_start(&a, check_a_cb), 0);
  assert_int_equal(soon_prepare_start(&mark, mark_prepare), 0);
  assert_int_equal(soon_idle_start(&keep, idle_nop), 0);
  track((soon_handle *)&a);
  track((soon_handle *)&check_b);
  track((soon_handle *)&mark);
  track((soon_handle *)&keep);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  /* The third mark closes everything before the checks' turn. */
  assert_string_equal(seq, "|a|ab|");
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

/* ------------------------------------------------- stop inside callbacks */

static int na, nb, nc, np, nk;
static soon_idle *victim;

static void idle_stop_self_and_other(soon_idle *h) {
  na++;
  assert_int_equal(soon_idle_stop(h), 0);
  assert_false(soon_is_active((soon_handle *)h));
  assert_int_equal(soon_idle_stop(victim), 0); /* queued after us */
}
static void idle_victim(soon_idle *h) {
  (void)h;
  nb++;
}
static void idle_counter(soon_idle *h) {
  (void)h;
  if (++nc == 5)
    close_all();
}
static void prepare_stop_self(soon_prepare *h) {
  np++;
  assert_int_equal(soon_prepare_stop(h), 0);
}
static void check_stop_self(soon_check *h) {
  nk++;
  assert_int_equal(soon_check_stop(h), 0);
}

static void test_stop_inside_callback(void **state) {
  (void)state;
  soon_loop loop;
  soon_idle a, b, c;
  soon_prepare p;
  soon_check k;
  soon_timer guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  na = nb = nc = np = nk = 0;
  victim = &b;
  assert_int_equal(soon_idle_init(&loop, &a), 0);
  assert_int_equal(soon_idle_init(&loop, &b), 0);
  assert_int_equal(soon_idle_init(&loop, &c), 0);
  assert_int_equal(soon_prepare_init(&loop, &p), 0);
  assert_int_equal(soon_check_init(&loop, &k), 0);
  assert_int_equal(soon_idle_start(&a, idle_stop_self_and_other), 0);
  assert_int_equal(soon_idle_start(&b, idle_victim), 0);
  assert_int_equal(soon_idle_start(&c, idle_counter), 0);
  assert_int_equal(soon_prepare_start(&p, prepare_stop_self), 0);
  assert_int_equal(soon_check_start(&k, check_stop_self), 0);
  track((soon_handle *)&a);
  track((soon_handle *)&b);
  track((soon_handle *)&c);
  track((soon_handle *)&p);
  track((soon_handle *)&k);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(na, 1);
  assert_int_equal(nb, 0);
  assert_int_equal(nc, 5);
  assert_int_equal(np, 1);
  assert_int_equal(nk, 1);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

/* Starting an active hook again does not make it run twice. */
static void test_start_twice(void **state) {
  (void)state;
  soon_loop loop;
  soon_idle a;
  soon_check mark;
  soon_timer guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  assert_int_equal(soon_idle_init(&loop, &a), 0);
  assert_int_equal(soon_check_init(&loop, &mark), 0);
  assert_int_equal(soon_idle_start(&a, idle_b_cb), 0);
  assert_int_equal(soon_idle_start(&a, idle_b_cb), 0);
  assert_int_equal(soon_check_start(&mark, mark_check), 0);
  track((soon_handle *)&a);
  track((soon_handle *)&mark);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_string_equal(seq, "b|b|b|");
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ errors */

static void test_null_cb(void **state) {
  (void)state;
  soon_loop loop;
  soon_idle i;
  soon_prepare p;
  soon_check c;
  loop_init_checked(&loop);
  assert_int_equal(soon_idle_init(&loop, &i), 0);
  assert_int_equal(soon_prepare_init(&loop, &p), 0);
  assert_int_equal(soon_check_init(&loop, &c), 0);
  assert_int_equal(soon_idle_start(&i, NULL), -EINVAL);
  assert_int_equal(soon_prepare_start(&p, NULL), -EINVAL);
  assert_int_equal(soon_check_start(&c, NULL), -EINVAL);
  assert_false(soon_is_active((soon_handle *)&i));
  assert_false(soon_is_active((soon_handle *)&p));
  assert_false(soon_is_active((soon_handle *)&c));
  assert_int_equal(soon_loop_alive(&loop), 0);
  assert_int_equal(soon_idle_start(NULL, idle_nop), -EINVAL);
  assert_int_equal(soon_prepare_start(NULL, prepare_nop), -EINVAL);
  assert_int_equal(soon_check_start(NULL, check_nop), -EINVAL);
  assert_int_equal(soon_idle_stop(NULL), -EINVAL);
  assert_int_equal(soon_prepare_stop(NULL), -EINVAL);
  assert_int_equal(soon_check_stop(NULL), -EINVAL);
  assert_int_equal(soon_idle_init(NULL, &i), -EINVAL);
  assert_int_equal(soon_idle_init(&loop, NULL), -EINVAL);
  assert_int_equal(soon_prepare_init(NULL, &p), -EINVAL);
  assert_int_equal(soon_check_init(NULL, &c), -EINVAL);
  assert_int_equal(soon_close((soon_handle *)&i, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&p, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&c, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

static void test_wrong_type(void **state) {
  (void)state;
  soon_loop loop;
  soon_idle i;
  soon_prepare p;
  soon_check c;
  soon_timer t;
  loop_init_checked(&loop);
  assert_int_equal(soon_idle_init(&loop, &i), 0);
  assert_int_equal(soon_prepare_init(&loop, &p), 0);
  assert_int_equal(soon_check_init(&loop, &c), 0);
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_prepare_start(&p, prepare_nop), 0);
  /* A started prepare handle is not touched through the idle API. */
  assert_int_equal(soon_idle_stop((soon_idle *)&p), -EINVAL);
  assert_true(soon_is_active((soon_handle *)&p));
  assert_int_equal(soon_idle_start((soon_idle *)&p, idle_nop), -EINVAL);
  assert_int_equal(soon_check_start((soon_check *)&p, check_nop), -EINVAL);
  assert_int_equal(soon_check_stop((soon_check *)&p), -EINVAL);
  assert_true(soon_is_active((soon_handle *)&p));
  assert_int_equal(soon_prepare_start((soon_prepare *)&c, prepare_nop),
                   -EINVAL);
  assert_int_equal(soon_prepare_stop((soon_prepare *)&i), -EINVAL);
  assert_int_equal(soon_idle_start((soon_idle *)&t, idle_nop), -EINVAL);
  assert_false(soon_is_active((soon_handle *)&c));
  assert_false(soon_is_active((soon_handle *)&i));
  assert_false(soon_is_active((soon_handle *)&t));
  assert_int_equal(soon_close((soon_handle *)&i, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&p, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&c, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

static void test_start_closing(void **state) {
  (void)state;
  soon_loop loop;
  soon_idle i;
  soon_prepare p;
  soon_check c;
  loop_init_checked(&loop);
  assert_int_equal(soon_idle_init(&loop, &i), 0);
  assert_int_equal(soon_prepare_init(&loop, &p), 0);
  assert_int_equal(soon_check_init(&loop, &c), 0);
  assert_int_equal(soon_close((soon_handle *)&i, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&p, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&c, NULL), 0);
  assert_int_equal(soon_idle_start(&i, idle_nop), -EINVAL);
  assert_int_equal(soon_prepare_start(&p, prepare_nop), -EINVAL);
  assert_int_equal(soon_check_start(&c, check_nop), -EINVAL);
  assert_false(soon_is_active((soon_handle *)&i));
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_idle_keeps_wait_nonblocking, reset),
      cmocka_unit_test_setup(test_prepare_before_check, reset),
      cmocka_unit_test_setup(test_start_idle_from_idle, reset),
      cmocka_unit_test_setup(test_start_prepare_from_prepare, reset),
      cmocka_unit_test_setup(test_start_check_from_check, reset),
      cmocka_unit_test_setup(test_stop_inside_callback, reset),
      cmocka_unit_test_setup(test_start_twice, reset),
      cmocka_unit_test_setup(test_null_cb, reset),
      cmocka_unit_test_setup(test_wrong_type, reset),
      cmocka_unit_test_setup(test_start_closing, reset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
