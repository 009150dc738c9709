/* test_handle.c: the lifecycle every handle shares: close and its callback,
 * double close, ref/unref, and the active/closing/has_ref state queries. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <soon.h>

#include "helpers.h"

static char seq[64];
static size_t nseq;
static int closes, fires;

static void rec(char c) {
  assert_true(nseq + 1 < sizeof seq);
  seq[nseq++] = c;
  seq[nseq] = '\0';
}

static int reset(void **state) {
  (void)state;
  nseq = 0;
  seq[0] = '\0';
  closes = fires = 0;
  return 0;
}

static void count_close(soon_handle *h) {
  (void)h;
  closes++;
}

/* ------------------------------------------------ close from own callback */

/* A check handle marks the end of the iteration's check phase ('K'); the
 * handle closes itself in its callback ('X') and its close callback ('C')
 * must come right after that check, in the same iteration's close phase. */
static soon_check H_check;

static void h_check_cb(soon_check *c) {
  (void)c;
  rec('K');
}

static void self_close_done(soon_handle *h) {
  rec('C');
  closes++;
  assert_true(soon_is_closing(h));
  assert_false(soon_is_active(h));
  assert_int_equal(soon_close((soon_handle *)&H_check, NULL), 0);
}

static void close_self(soon_handle *h) {
  rec('X');
  assert_int_equal(soon_close(h, self_close_done), 0);
  assert_true(soon_is_closing(h));
  assert_false(soon_is_active(h));
  assert_int_equal(closes, 0); /* never from inside soon_close */
  /* Closing again, from the same callback, is refused. */
  assert_int_equal(soon_close(h, self_close_done), -EINVAL);
}

static void start_check(soon_loop *loop) {
  assert_int_equal(soon_check_init(loop, &H_check), 0);
  assert_int_equal(soon_check_start(&H_check, h_check_cb), 0);
}

static void finish(soon_loop *loop, soon_timer *guard) {
  assert_int_equal(soon_run(loop, SOON_RUN_DEFAULT), 0);
  assert_string_equal(seq, "XKC");
  assert_int_equal(closes, 1);
  guard_close(loop, guard);
  assert_int_equal(closes, 1); /* exactly once */
  loop_close_checked(loop);
}

static void timer_close_self(soon_timer *t) { close_self((soon_handle *)t); }

static void test_close_own_cb_timer(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t, guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  start_check(&loop);
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, timer_close_self, 0, 1), 0);
  finish(&loop, &guard);
}

static void idle_close_self(soon_idle *h) { close_self((soon_handle *)h); }

static void test_close_own_cb_idle(void **state) {
  (void)state;
  soon_loop loop;
  soon_idle h;
  soon_timer guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  start_check(&loop);
  assert_int_equal(soon_idle_init(&loop, &h), 0);
  assert_int_equal(soon_idle_start(&h, idle_close_self), 0);
  finish(&loop, &guard);
}

static void io_close_self(soon_io *io, int status, int events) {
  assert_int_equal(status, 0);
  assert_int_equal(events, SOON_READABLE);
  close_self((soon_handle *)io);
}

static void test_close_own_cb_io(void **state) {
  (void)state;
  soon_loop loop;
  soon_io io;
  soon_timer guard;
  int fds[2];
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  make_socketpair(fds);
  write_byte(fds[1]); /* stays unread: the watcher would fire again */
  start_check(&loop);
  assert_int_equal(soon_io_init(&loop, &io, fds[0]), 0);
  assert_int_equal(soon_io_start(&io, SOON_READABLE, io_close_self), 0);
  finish(&loop, &guard);
  close_fd(fds[0]);
  close_fd(fds[1]);
}

static void async_close_self(soon_async *a) { close_self((soon_handle *)a); }

static void test_close_own_cb_async(void **state) {
  (void)state;
  soon_loop loop;
  soon_async a;
  soon_timer guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  start_check(&loop);
  assert_int_equal(soon_async_init(&loop, &a, async_close_self), 0);
  assert_int_equal(soon_async_send(&a), 0);
  finish(&loop, &guard);
}

/* ------------------------------------------------------------ close errors */

static void test_double_close(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_checked(&loop);
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_close((soon_handle *)&t, count_close), 0);
  assert_int_equal(soon_close((soon_handle *)&t, count_close), -EINVAL);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(closes, 1);
  /* Closed for good. */
  assert_int_equal(soon_close((soon_handle *)&t, count_close), -EINVAL);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(closes, 1);
  loop_close_checked(&loop);
}

static void test_close_null(void **state) {
  (void)state;
  soon_loop loop;
  soon_idle h;
  loop_init_checked(&loop);
  assert_int_equal(soon_close(NULL, count_close), -EINVAL);
  assert_int_equal(soon_close(NULL, NULL), -EINVAL);
  assert_int_equal(soon_idle_init(&loop, &h), 0);
  assert_int_equal(soon_close((soon_handle *)&h, NULL), 0);
  assert_int_not_equal(soon_loop_alive(&loop), 0);
  assert_int_equal(soon_loop_close(&loop), -EBUSY);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

static int close_order[4], nclose_order;
static void ordered_close(soon_handle *h) {
  close_order[nclose_order++] = *(int *)h->data;
}

/* Close callbacks run in the order the handles were closed. */
static void test_close_order(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer a, b;
  soon_idle c;
  soon_prepare d;
  int ids[4] = {0, 1, 2, 3};
  loop_init_checked(&loop);
  nclose_order = 0;
  assert_int_equal(soon_timer_init(&loop, &a), 0);
  assert_int_equal(soon_timer_init(&loop, &b), 0);
  assert_int_equal(soon_idle_init(&loop, &c), 0);
  assert_int_equal(soon_prepare_init(&loop, &d), 0);
  a.data = &ids[2];
  b.data = &ids[0];
  c.data = &ids[3];
  d.data = &ids[1];
  assert_int_equal(soon_close((soon_handle *)&b, ordered_close), 0);
  assert_int_equal(soon_close((soon_handle *)&d, ordered_close), 0);
  assert_int_equal(soon_close((soon_handle *)&a, ordered_close), 0);
  assert_int_equal(soon_close((soon_handle *)&c, ordered_close), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(nclose_order, 4);
  for (int i = 0; i < 4; i++)
    assert_int_equal(close_order[i], i);
  loop_close_checked(&loop);
}

/* ------------------------------------------------ close from a close cb */

static int iter, a_closed_at, b_closed_at;
static soon_idle *chain_idle;
static soon_timer *chain_b;

static void chain_iter(soon_idle *h) {
  (void)h;
  iter++;
  assert_true(iter < 100); /* bound */
}

static void chain_b_done(soon_handle *h) {
  (void)h;
  b_closed_at = iter;
  assert_int_equal(soon_close((soon_handle *)chain_idle, NULL), 0);
}

static void chain_a_done(soon_handle *h) {
  (void)h;
  a_closed_at = iter;
  assert_int_equal(soon_close((soon_handle *)chain_b, chain_b_done), 0);
}

static void test_close_from_close_cb(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer a, b;
  soon_idle idle;
  loop_init_checked(&loop);
  iter = a_closed_at = b_closed_at = 0;
  chain_idle = &idle;
  chain_b = &b;
  assert_int_equal(soon_idle_init(&loop, &idle), 0);
  assert_int_equal(soon_idle_start(&idle, chain_iter), 0);
  assert_int_equal(soon_timer_init(&loop, &a), 0);
  assert_int_equal(soon_timer_init(&loop, &b), 0);
  assert_int_equal(soon_close((soon_handle *)&a, chain_a_done), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(a_closed_at, 1);
  assert_int_equal(b_closed_at, 2);
  assert_int_equal(iter, 2);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ ref */

static void fire_cb(soon_timer *t) {
  (void)t;
  fires++;
}

static void test_unref_timer(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_checked(&loop);
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_true(soon_has_ref((soon_handle *)&t)); /* handles start referenced */
  assert_int_equal(soon_timer_start(&t, fire_cb, 1, 0), 0);
  soon_unref((soon_handle *)&t);
  assert_false(soon_has_ref((soon_handle *)&t));
  assert_true(soon_is_active((soon_handle *)&t));
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(fires, 0);
  assert_true(soon_is_active((soon_handle *)&t));
  soon_ref((soon_handle *)&t);
  assert_true(soon_has_ref((soon_handle *)&t));
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(fires, 1);
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

/* An unreferenced timer still fires while the loop runs for other reasons. */
static void test_unref_timer_fires_while_running(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer weak, strong;
  loop_init_checked(&loop);
  assert_int_equal(soon_timer_init(&loop, &weak), 0);
  assert_int_equal(soon_timer_init(&loop, &strong), 0);
  assert_int_equal(soon_timer_start(&weak, fire_cb, 1, 0), 0);
  soon_unref((soon_handle *)&weak);
  assert_int_equal(soon_timer_start(&strong, fire_cb, 5, 0), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(fires, 2);
  assert_int_equal(soon_close((soon_handle *)&weak, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&strong, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

/* ref and unref are idempotent: the loop's count never goes wrong. */
static void test_ref_idempotent(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_checked(&loop);
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, fire_cb, 1000, 0), 0);
  soon_ref((soon_handle *)&t);
  soon_ref((soon_handle *)&t);
  assert_int_not_equal(soon_loop_alive(&loop), 0);
  soon_unref((soon_handle *)&t);
  assert_int_equal(soon_loop_alive(&loop), 0);
  soon_unref((soon_handle *)&t);
  assert_int_equal(soon_loop_alive(&loop), 0);
  soon_ref((soon_handle *)&t);
  assert_int_not_equal(soon_loop_alive(&loop), 0);
  assert_int_equal(soon_timer_stop(&t), 0);
  assert_int_equal(soon_loop_alive(&loop), 0);
  /* Unref while inactive, then start: not counted. */
  soon_unref((soon_handle *)&t);
  assert_int_equal(soon_timer_start(&t, fire_cb, 1000, 0), 0);
  assert_int_equal(soon_loop_alive(&loop), 0);
  soon_ref((soon_handle *)&t);
  assert_int_not_equal(soon_loop_alive(&loop), 0);
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(soon_loop_alive(&loop), 0);
  assert_int_equal(fires, 0);
  /* NULL is harmless. */
  soon_ref(NULL);
  soon_unref(NULL);
  assert_int_equal(soon_has_ref(NULL), 0);
  assert_int_equal(soon_is_active(NULL), 0);
  assert_int_equal(soon_is_closing(NULL), 0);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ states */

static void idle_fire(soon_idle *h) {
  (void)h;
  fires++;
}

static void test_state_transitions(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  soon_idle i;
  loop_init_checked(&loop);
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_idle_init(&loop, &i), 0);
  soon_handle *ht = (soon_handle *)&t, *hi = (soon_handle *)&i;
  assert_false(soon_is_active(ht));
  assert_false(soon_is_closing(ht));
  assert_true(soon_has_ref(ht));
  assert_int_equal(soon_timer_start(&t, fire_cb, 1000, 0), 0);
  assert_true(soon_is_active(ht));
  assert_int_equal(soon_timer_stop(&t), 0);
  assert_false(soon_is_active(ht));
  assert_int_equal(soon_timer_stop(&t), 0); /* stopping twice is fine */
  assert_int_equal(soon_timer_start(&t, fire_cb, 1000, 0), 0);
  assert_int_equal(soon_close(ht, count_close), 0);
  assert_false(soon_is_active(ht));
  assert_true(soon_is_closing(ht));

  assert_false(soon_is_active(hi));
  assert_int_equal(soon_idle_start(&i, idle_fire), 0);
  assert_true(soon_is_active(hi));
  assert_int_equal(soon_close(hi, count_close), 0);
  assert_false(soon_is_active(hi));
  assert_true(soon_is_closing(hi));

  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(closes, 2);
  assert_int_equal(fires, 0);
  /* Closed stays "closing", as uv_is_closing does. */
  assert_true(soon_is_closing(ht));
  assert_true(soon_is_closing(hi));
  assert_false(soon_is_active(ht));
  loop_close_checked(&loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_close_own_cb_timer, reset),
      cmocka_unit_test_setup(test_close_own_cb_idle, reset),
      cmocka_unit_test_setup(test_close_own_cb_io, reset),
      cmocka_unit_test_setup(test_close_own_cb_async, reset),
      cmocka_unit_test_setup(test_double_close, reset),
      cmocka_unit_test_setup(test_close_null, reset),
      cmocka_unit_test_setup(test_close_order, reset),
      cmocka_unit_test_setup(test_close_from_close_cb, reset),
      cmocka_unit_test_setup(test_unref_timer, reset),
      cmocka_unit_test_setup(test_unref_timer_fires_while_running, reset),
      cmocka_unit_test_setup(test_ref_idempotent, reset),
      cmocka_unit_test_setup(test_state_transitions, reset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
