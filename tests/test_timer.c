/* test_timer.c: timers: deadline order, ties in start order, restart, repeat,
 * soon_timer_again, due times, callbacks that stop or close, the 64-byte
 * layout (repeat's 40 bits, deadlines in groups), a heap stress. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <soon.h>

#include "helpers.h"

typedef struct {
  soon_timer t; /* first, so a soon_timer * is an idt * */
  int id;
  uint64_t due;
} idt;

static int order[128], norder;
static int closes;

static int reset(void **state) {
  (void)state;
  norder = 0;
  closes = 0;
  return 0;
}

static void count_close(soon_handle *h) {
  (void)h;
  closes++;
}

static void order_cb(soon_timer *t) {
  idt *x = (idt *)t;
  assert_true(norder < 128);
  order[norder++] = x->id;
  /* Never before its deadline. */
  assert_true(soon_now(t->loop) >= x->due);
}

static void start_idt(soon_loop *loop, idt *x, int id, uint64_t timeout) {
  x->id = id;
  assert_int_equal(soon_timer_init(loop, &x->t), 0);
  assert_int_equal(soon_timer_start(&x->t, order_cb, timeout, 0), 0);
  x->due = soon_timer_get_due(&x->t);
  assert_true(x->due == soon_now(loop) + timeout);
}

static void close_idts(soon_loop *loop, idt *xs, int n) {
  for (int i = 0; i < n; i++)
    assert_int_equal(soon_close((soon_handle *)&xs[i].t, NULL), 0);
  assert_int_equal(soon_run(loop, SOON_RUN_DEFAULT), 0);
}

/* ------------------------------------------------------------ order */

static void test_deadline_order(void **state) {
  (void)state;
  soon_loop loop;
  idt xs[4];
  loop_init_checked(&loop);
  start_idt(&loop, &xs[0], 0, 12);
  start_idt(&loop, &xs[1], 1, 3);
  start_idt(&loop, &xs[2], 2, 8);
  start_idt(&loop, &xs[3], 3, 1);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(norder, 4);
  assert_int_equal(order[0], 3);
  assert_int_equal(order[1], 1);
  assert_int_equal(order[2], 2);
  assert_int_equal(order[3], 0);
  close_idts(&loop, xs, 4);
  loop_close_checked(&loop);
}

static void test_equal_deadlines_start_order(void **state) {
  (void)state;
  soon_loop loop;
  idt xs[100];
  loop_init_checked(&loop);
  for (int i = 0; i < 100; i++)
    start_idt(&loop, &xs[i], i, 2);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(norder, 100);
  for (int i = 0; i < 100; i++)
    assert_int_equal(order[i], i);
  close_idts(&loop, xs, 100);
  loop_close_checked(&loop);
}

/* Restarting an equal-deadline timer also moves it behind the others. */
static void test_restart_makes_later(void **state) {
  (void)state;
  soon_loop loop;
  idt xs[3];
  loop_init_checked(&loop);
  start_idt(&loop, &xs[0], 0, 1);
  start_idt(&loop, &xs[1], 1, 3);
  start_idt(&loop, &xs[2], 2, 3);
  assert_int_equal(soon_timer_start(&xs[0].t, order_cb, 6, 0), 0);
  xs[0].due = soon_timer_get_due(&xs[0].t);
  assert_int_equal(soon_timer_start(&xs[1].t, order_cb, 3, 0), 0);
  xs[1].due = soon_timer_get_due(&xs[1].t);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(norder, 3);
  assert_int_equal(order[0], 2);
  assert_int_equal(order[1], 1);
  assert_int_equal(order[2], 0);
  close_idts(&loop, xs, 3);
  loop_close_checked(&loop);
}

/* A timer that is due in this iteration, restarted by another's callback
 * before its turn, fires at its new deadline only. */
static idt *restart_victim;
static void restart_other_cb(soon_timer *t) {
  order_cb(t);
  assert_int_equal(soon_timer_start(&restart_victim->t, order_cb, 5, 0), 0);
  restart_victim->due = soon_timer_get_due(&restart_victim->t);
}

static void test_restart_due_timer(void **state) {
  (void)state;
  soon_loop loop;
  idt xs[2];
  loop_init_manual(&loop);
  xs[0].id = 0;
  assert_int_equal(soon_timer_init(&loop, &xs[0].t), 0);
  assert_int_equal(soon_timer_start(&xs[0].t, restart_other_cb, 10, 0), 0);
  xs[0].due = 10;
  start_idt(&loop, &xs[1], 1, 10);
  restart_victim = &xs[1];
  assert_int_equal(soon_loop_advance(&loop, 10), 0);
  assert_int_equal(norder, 1);
  assert_int_equal(order[0], 0);
  assert_true(soon_timer_get_due(&xs[1].t) == 15);
  assert_int_equal(soon_loop_advance(&loop, 4), 0);
  assert_int_equal(norder, 1);
  assert_int_equal(soon_loop_advance(&loop, 1), 0);
  assert_int_equal(norder, 2);
  assert_int_equal(order[1], 1);
  close_idts(&loop, xs, 2);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ repeat */

static int fires;
static void repeat_five(soon_timer *t) {
  if (++fires == 5)
    assert_int_equal(soon_timer_stop(t), 0);
  else
    assert_true(soon_is_active((soon_handle *)t)); /* already rescheduled */
}

static void test_repeat_then_stop(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t, guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  fires = 0;
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, repeat_five, 1, 1), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(fires, 5);
  assert_false(soon_is_active((soon_handle *)&t));
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

static void test_repeat_manual(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_manual(&loop);
  fires = 0;
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, repeat_five, 3, 7), 0);
  assert_int_equal(soon_loop_advance(&loop, 30), 0); /* 3 10 17 24 */
  assert_int_equal(fires, 4);
  assert_int_equal(soon_loop_advance(&loop, 100), 0); /* 31, then stopped */
  assert_int_equal(fires, 5);
  assert_false(soon_is_active((soon_handle *)&t));
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

static void nop_cb(soon_timer *t) {
  (void)t;
  fires++;
}

static void test_again(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_manual(&loop);
  fires = 0;
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_again(&t), -EINVAL); /* never started */
  assert_int_equal(soon_timer_again(NULL), -EINVAL);

  /* A repeating timer restarts with its repeat as the timeout. */
  assert_int_equal(soon_timer_start(&t, nop_cb, 100, 50), 0);
  assert_int_equal(soon_loop_advance(&loop, 30), 0);
  assert_int_equal(soon_timer_again(&t), 0);
  assert_true(soon_timer_get_due(&t) == 80);
  assert_true(soon_is_active((soon_handle *)&t));
  /* ... also once stopped. */
  assert_int_equal(soon_timer_stop(&t), 0);
  assert_int_equal(soon_timer_again(&t), 0);
  assert_true(soon_is_active((soon_handle *)&t));
  assert_true(soon_timer_get_due(&t) == 80);
  assert_int_equal(soon_loop_advance(&loop, 50), 0);
  assert_int_equal(fires, 1);

  /* A non-repeating one: no-op, whether active or stopped. */
  assert_int_equal(soon_timer_start(&t, nop_cb, 100, 0), 0);
  assert_true(soon_timer_get_due(&t) == 180);
  assert_int_equal(soon_loop_advance(&loop, 10), 0);
  assert_int_equal(soon_timer_again(&t), 0);
  assert_true(soon_is_active((soon_handle *)&t));
  assert_true(soon_timer_get_due(&t) == 180);
  assert_int_equal(soon_timer_stop(&t), 0);
  assert_int_equal(soon_timer_again(&t), 0);
  assert_false(soon_is_active((soon_handle *)&t));
  assert_int_equal(soon_loop_advance(&loop, 1000), 0);
  assert_int_equal(fires, 1);

  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

static void test_set_get_repeat(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_manual(&loop);
  fires = 0;
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_true(soon_timer_get_repeat(&t) == 0);
  soon_timer_set_repeat(&t, 7);
  assert_true(soon_timer_get_repeat(&t) == 7);
  /* start sets the repeat. */
  assert_int_equal(soon_timer_start(&t, nop_cb, 10, 0), 0);
  assert_true(soon_timer_get_repeat(&t) == 0);
  /* Set on a started one-shot timer, it applies when the timer is next
   * rescheduled, i.e. after its first firing. */
  soon_timer_set_repeat(&t, 5);
  assert_true(soon_timer_get_due(&t) == 10);
  assert_int_equal(soon_loop_advance(&loop, 20), 0); /* 10 15 20 */
  assert_int_equal(fires, 3);
  soon_timer_set_repeat(&t, 0);
  assert_int_equal(soon_loop_advance(&loop, 100), 0); /* 25, then done */
  assert_int_equal(fires, 4);
  assert_false(soon_is_active((soon_handle *)&t));
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

static void test_due(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_manual(&loop);
  fires = 0;
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_true(soon_timer_get_due_in(&t) == 0); /* inactive */
  assert_int_equal(soon_loop_advance(&loop, 5), 0);
  assert_int_equal(soon_timer_start(&t, nop_cb, 100, 0), 0);
  assert_true(soon_timer_get_due(&t) == 105);
  assert_true(soon_timer_get_due_in(&t) == 100);
  assert_int_equal(soon_loop_advance(&loop, 30), 0);
  assert_true(soon_timer_get_due(&t) == 105);
  assert_true(soon_timer_get_due_in(&t) == 70);
  assert_int_equal(soon_loop_advance(&loop, 70), 0);
  assert_int_equal(fires, 1);
  assert_true(soon_timer_get_due_in(&t) == 0);
  assert_int_equal(soon_timer_start(&t, nop_cb, 0, 0), 0);
  assert_true(soon_timer_get_due(&t) == 105);
  assert_true(soon_timer_get_due_in(&t) == 0); /* due */
  assert_int_equal(soon_timer_start(&t, nop_cb, 40, 0), 0);
  assert_int_equal(soon_timer_stop(&t), 0);
  assert_true(soon_timer_get_due_in(&t) == 0); /* stopped */
  /* Saturates instead of wrapping. */
  assert_int_equal(soon_timer_start(&t, nop_cb, UINT64_MAX, 0), 0);
  assert_true(soon_timer_get_due(&t) == UINT64_MAX);
  assert_true(soon_timer_get_due_in(&t) == UINT64_MAX - 105);
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(fires, 1);
  loop_close_checked(&loop);
}

static void test_due_real_clock(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_checked(&loop);
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, nop_cb, 1000, 0), 0);
  assert_true(soon_timer_get_due(&t) == soon_now(&loop) + 1000);
  assert_true(soon_timer_get_due_in(&t) == 1000); /* the cached clock */
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ callbacks */

static int zfires, zchecks;
static soon_timer *ztimer;

static void zero_cb(soon_timer *t) {
  zfires++;
  if (zfires < 1000) /* bound, should the loop starve */
    assert_int_equal(soon_timer_start(t, zero_cb, 0, 0), 0);
}

static void zero_check(soon_check *c) {
  zchecks++;
  assert_int_equal(zfires, zchecks); /* once per iteration */
  if (zchecks == 10) {
    assert_int_equal(soon_timer_stop(ztimer), 0);
    assert_int_equal(soon_check_stop(c), 0);
  }
}

static void test_zero_restart_once_per_iteration(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t, guard;
  soon_check c;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  zfires = zchecks = 0;
  ztimer = &t;
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_check_init(&loop, &c), 0);
  assert_int_equal(soon_check_start(&c, zero_check), 0);
  assert_int_equal(soon_timer_start(&t, zero_cb, 0, 0), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(zchecks, 10);
  assert_int_equal(zfires, 10);
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&c, NULL), 0);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

static idt *stop_victim;
static void stop_other_cb(soon_timer *t) {
  order_cb(t);
  assert_int_equal(soon_timer_stop(&stop_victim->t), 0);
}

/* Both are due in the same iteration; the first stops the second. */
static void test_stop_other_due(void **state) {
  (void)state;
  soon_loop loop;
  idt xs[3];
  loop_init_checked(&loop);
  xs[0].id = 0;
  assert_int_equal(soon_timer_init(&loop, &xs[0].t), 0);
  assert_int_equal(soon_timer_start(&xs[0].t, stop_other_cb, 0, 0), 0);
  xs[0].due = soon_timer_get_due(&xs[0].t);
  start_idt(&loop, &xs[1], 1, 0);
  start_idt(&loop, &xs[2], 2, 0);
  stop_victim = &xs[1];
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(norder, 2);
  assert_int_equal(order[0], 0);
  assert_int_equal(order[1], 2);
  assert_false(soon_is_active((soon_handle *)&xs[1].t));
  close_idts(&loop, xs, 3);
  loop_close_checked(&loop);
}

/* Same, with a repeating victim, on a manual clock. */
static void test_stop_other_due_repeating(void **state) {
  (void)state;
  soon_loop loop;
  idt xs[2];
  loop_init_manual(&loop);
  xs[0].id = 0;
  assert_int_equal(soon_timer_init(&loop, &xs[0].t), 0);
  assert_int_equal(soon_timer_start(&xs[0].t, stop_other_cb, 10, 0), 0);
  xs[0].due = 10;
  xs[1].id = 1;
  xs[1].due = 10;
  assert_int_equal(soon_timer_init(&loop, &xs[1].t), 0);
  assert_int_equal(soon_timer_start(&xs[1].t, order_cb, 10, 10), 0);
  stop_victim = &xs[1];
  assert_int_equal(soon_loop_advance(&loop, 100), 0);
  assert_int_equal(norder, 1);
  assert_int_equal(order[0], 0);
  assert_false(soon_is_active((soon_handle *)&xs[1].t));
  close_idts(&loop, xs, 2);
  loop_close_checked(&loop);
}

static void close_self_cb(soon_timer *t) {
  fires++;
  assert_int_equal(soon_close((soon_handle *)t, count_close), 0);
  assert_false(soon_is_active((soon_handle *)t));
  assert_int_equal(closes, 0); /* not from inside soon_close */
}

static void test_close_from_own_cb(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer one, rep, guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  fires = 0;
  assert_int_equal(soon_timer_init(&loop, &one), 0);
  assert_int_equal(soon_timer_init(&loop, &rep), 0);
  assert_int_equal(soon_timer_start(&one, close_self_cb, 1, 0), 0);
  assert_int_equal(soon_timer_start(&rep, close_self_cb, 1, 1), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(fires, 2);
  assert_int_equal(closes, 2);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

static void test_start_errors(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_checked(&loop);
  assert_int_equal(soon_timer_init(NULL, &t), -EINVAL);
  assert_int_equal(soon_timer_init(&loop, NULL), -EINVAL);
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  assert_int_equal(soon_timer_start(&t, NULL, 1, 0), -EINVAL);
  assert_false(soon_is_active((soon_handle *)&t));
  assert_int_equal(soon_timer_start(NULL, nop_cb, 1, 0), -EINVAL);
  assert_int_equal(soon_timer_stop(NULL), -EINVAL);
  assert_int_equal(soon_timer_start(&t, nop_cb, 1, 0), 0);
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_timer_start(&t, nop_cb, 1, 0), -EINVAL); /* closing */
  assert_false(soon_is_active((soon_handle *)&t));
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(soon_timer_start(&t, nop_cb, 1, 0), -EINVAL); /* closed */
  loop_close_checked(&loop);
}

/* Out of memory for a new heap slot: -ENOMEM and the timer stopped, the
 * others untouched; a timer joining the newest's deadline needs no slot. */
static int enomem_order[70], enomem_n;

static void enomem_cb(soon_timer *t) {
  enomem_order[enomem_n++] = (int)(intptr_t)t->data;
}

static void test_start_enomem(void **state) {
  (void)state;
  soon_loop loop;
  static soon_timer t[66];
  loop_init_manual(&loop);
  enomem_n = 0;
  /* 64 distinct deadlines fill the heap's first array. */
  for (int i = 0; i < 64; i++) {
    assert_int_equal(soon_timer_init(&loop, &t[i]), 0);
    t[i].data = (void *)(intptr_t)i;
    assert_int_equal(soon_timer_start(&t[i], enomem_cb, 10 + (uint64_t)i, 0),
                     0);
  }
  assert_int_equal(soon_timer_init(&loop, &t[64]), 0);
  assert_int_equal(soon_timer_init(&loop, &t[65]), 0);
  t[64].data = (void *)(intptr_t)64;
  t[65].data = (void *)(intptr_t)65;
  soon_test_realloc_failures = 1;
  assert_int_equal(soon_timer_start(&t[64], enomem_cb, 5, 0), -ENOMEM);
  assert_false(soon_is_active((soon_handle *)&t[64]));
  assert_int_equal(soon_test_realloc_failures, 0);
  /* Same deadline as the newest (t[63], due 73): no new slot, no realloc. */
  soon_test_realloc_failures = 1;
  assert_int_equal(soon_timer_start(&t[65], enomem_cb, 73, 0), 0);
  assert_int_equal(soon_test_realloc_failures, 1); /* not asked */
  soon_test_realloc_failures = 0;
  assert_int_equal(soon_timer_start(&t[64], enomem_cb, 5, 0), 0);
  assert_int_equal(soon_loop_advance(&loop, 100), 0);
  assert_int_equal(enomem_n, 66);
  assert_int_equal(enomem_order[0], 64);
  for (int i = 0; i < 64; i++)
    assert_int_equal(enomem_order[1 + i], i);
  assert_int_equal(enomem_order[65], 65);
  for (int i = 0; i < 66; i++)
    assert_int_equal(soon_close((soon_handle *)&t[i], NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ memory */

/* The layout that issue 18 measured: 64 bytes on LP64, as libev's timer
 * and its heap entry together. */
static void test_size(void **state) {
  (void)state;
  if (sizeof(void *) == 8)
    assert_int_equal(sizeof(soon_timer), 64);
}

/* Repeat is kept in 40 bits: exact below 2^40 - 1 ms (34.8 years), "never"
 * (UINT64_MAX) from there up. */
static void test_repeat_bits(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer t;
  loop_init_manual(&loop);
  fires = 0;
  assert_int_equal(soon_timer_init(&loop, &t), 0);
  static const uint64_t exact[] = {1, UINT32_MAX, (uint64_t)UINT32_MAX + 1,
                                   ((uint64_t)1 << 33) + 7,
                                   ((uint64_t)1 << 40) - 2};
  for (size_t i = 0; i < sizeof exact / sizeof *exact; i++) {
    soon_timer_set_repeat(&t, exact[i]);
    assert_true(soon_timer_get_repeat(&t) == exact[i]);
  }
  static const uint64_t never[] = {((uint64_t)1 << 40) - 1, (uint64_t)1 << 40,
                                   UINT64_MAX};
  for (size_t i = 0; i < sizeof never / sizeof *never; i++) {
    soon_timer_set_repeat(&t, never[i]);
    assert_true(soon_timer_get_repeat(&t) == UINT64_MAX);
  }
  /* A repeat over 32 bits reschedules by all of it. */
  uint64_t big = ((uint64_t)1 << 33) + 7;
  assert_int_equal(soon_timer_start(&t, nop_cb, 10, big), 0);
  assert_true(soon_timer_get_repeat(&t) == big);
  assert_int_equal(soon_loop_advance(&loop, 10), 0);
  assert_int_equal(fires, 1);
  assert_true(soon_timer_get_due(&t) == 10 + big);
  assert_int_equal(soon_loop_advance(&loop, big - 1), 0);
  assert_int_equal(fires, 1);
  assert_int_equal(soon_loop_advance(&loop, 1), 0);
  assert_int_equal(fires, 2);
  assert_true(soon_timer_get_due(&t) == 10 + 2 * big);
  /* "Never": rescheduled at the saturated deadline, as a huge timeout. */
  assert_int_equal(soon_timer_start(&t, nop_cb, 5, UINT64_MAX), 0);
  assert_int_equal(soon_loop_advance(&loop, 5), 0);
  assert_int_equal(fires, 3);
  assert_true(soon_is_active((soon_handle *)&t));
  assert_true(soon_timer_get_due(&t) == UINT64_MAX);
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

/* Timers of one deadline share a heap slot, and its first timer keeps the
 * deadline there (heap.c): every one of them still reads its own, waiting,
 * stopped, or after the first left the group; and a timer closed in the
 * middle of a group (the group's links share memory with the close queue)
 * leaves the others in order. */
static void test_group_due_and_close(void **state) {
  (void)state;
  soon_loop loop;
  idt xs[6];
  loop_init_manual(&loop);
  for (int i = 0; i < 6; i++) {
    start_idt(&loop, &xs[i], i, 20);
    xs[i].due = 20;
  }
  for (int i = 0; i < 6; i++)
    assert_true(soon_timer_get_due(&xs[i].t) == 20);
  assert_int_equal(soon_timer_stop(&xs[0].t), 0); /* the first */
  assert_true(soon_timer_get_due(&xs[0].t) == 20);
  assert_true(soon_timer_get_due(&xs[1].t) == 20);
  assert_true(soon_timer_get_due_in(&xs[1].t) == 20);
  assert_int_equal(soon_timer_stop(&xs[3].t), 0); /* one in the middle */
  assert_true(soon_timer_get_due(&xs[3].t) == 20);
  assert_int_equal(soon_close((soon_handle *)&xs[2].t, count_close), 0);
  assert_int_equal(soon_close((soon_handle *)&xs[1].t, count_close), 0);
  assert_int_equal(soon_loop_advance(&loop, 19), 0);
  assert_int_equal(norder, 0);
  assert_true(soon_timer_get_due(&xs[4].t) == 20);
  assert_true(soon_timer_get_due_in(&xs[5].t) == 1);
  /* Started later with the same deadline: after them. */
  assert_int_equal(soon_timer_start(&xs[0].t, order_cb, 1, 0), 0);
  assert_int_equal(soon_loop_advance(&loop, 1), 0);
  assert_int_equal(norder, 3);
  assert_int_equal(order[0], 4);
  assert_int_equal(order[1], 5);
  assert_int_equal(order[2], 0);
  for (int i = 0; i < 6; i++)
    if (i != 1 && i != 2)
      assert_int_equal(soon_close((soon_handle *)&xs[i].t, count_close), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(closes, 6);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ heap stress */

#define NSTRESS 10000

typedef struct {
  soon_timer t;
  uint64_t due, seq;
  int stopped, fired;
} stress_t;

static stress_t *S;
static uint64_t rng_state, stress_seq, last_due, last_seq;
static int nfired, nstopped, nrestarted, have_last;
/* Timeouts are drawn below this: 1000 gives few equal deadlines, 8 gives
 * long runs of them (the heap's groups). */
static uint64_t stress_range;

static uint64_t rnd(void) { /* xorshift64: fixed seed, reproducible */
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static void stress_cb(soon_timer *t);

static void stress_start(stress_t *x, uint64_t timeout) {
  assert_int_equal(soon_timer_start(&x->t, stress_cb, timeout, 0), 0);
  x->due = soon_now(x->t.loop) + timeout;
  x->seq = stress_seq++;
}

static void stress_cb(soon_timer *t) {
  stress_t *x = (stress_t *)t;
  assert_false(x->stopped);
  assert_false(x->fired);
  x->fired = 1;
  nfired++;
  assert_true(soon_now(t->loop) == x->due);
  assert_true(soon_timer_get_due(t) == x->due); /* fired, stopped: kept */
  /* Nondecreasing deadlines; ties in start order. */
  if (have_last)
    assert_true(x->due > last_due || (x->due == last_due && x->seq > last_seq));
  have_last = 1;
  last_due = x->due;
  last_seq = x->seq;
  /* Now and then, stop or restart a random timer that has not fired yet
   * (often one due at this very deadline, so on the ready queue). */
  uint64_t r = rnd();
  stress_t *y = &S[r % NSTRESS];
  if (y == x || y->fired || y->stopped)
    return;
  /* A waiting timer's deadline, first of its group or not (heap.c keeps
   * the first's in its slot). */
  if (soon_is_active((soon_handle *)&y->t))
    assert_true(soon_timer_get_due(&y->t) == y->due);
  switch ((r >> 20) % 8) {
  case 0:
    assert_int_equal(soon_timer_stop(&y->t), 0);
    y->stopped = 1;
    nstopped++;
    break;
  case 1:
    stress_start(y, (r >> 24) % (stress_range < 300 ? stress_range : 300));
    nrestarted++;
    break;
  default:
    break;
  }
}

static void run_heap_stress(uint64_t range) {
  soon_loop loop;
  loop_init_manual(&loop);
  S = calloc(NSTRESS, sizeof *S);
  assert_non_null(S);
  rng_state = 0x9E3779B97F4A7C15u;
  stress_seq = last_due = last_seq = 0;
  nfired = nstopped = nrestarted = have_last = 0;
  stress_range = range;
  for (int i = 0; i < NSTRESS; i++) {
    assert_int_equal(soon_timer_init(&loop, &S[i].t), 0);
    /* Runs of equal timeouts, as a server's idle timeouts come. */
    stress_start(&S[i], rnd() % 4 ? (i ? S[i - 1].due : 0) : rnd() % range);
  }
  /* Stop a tenth before anything fires, the heap's arbitrary removals. */
  for (int i = 0; i < NSTRESS / 10; i++) {
    stress_t *y = &S[rnd() % NSTRESS];
    if (!y->stopped) {
      assert_int_equal(soon_timer_stop(&y->t), 0);
      y->stopped = 1;
      nstopped++;
    }
  }
  while (soon_now(&loop) < 1500)
    assert_int_equal(soon_loop_advance(&loop, rnd() % 37 + 1), 0);
  assert_int_equal(soon_loop_advance(&loop, 10000), 0);
  assert_int_equal(nfired, NSTRESS - nstopped);
  assert_true(nstopped > NSTRESS / 20);
  assert_true(nrestarted > 100);
  for (int i = 0; i < NSTRESS; i++) {
    assert_int_equal(S[i].fired, !S[i].stopped);
    assert_false(soon_is_active((soon_handle *)&S[i].t));
    assert_int_equal(soon_close((soon_handle *)&S[i].t, NULL), 0);
  }
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
  free(S);
}

static void test_heap_stress(void **state) {
  (void)state;
  run_heap_stress(1000);
}

static void test_heap_stress_ties(void **state) {
  (void)state;
  run_heap_stress(8);
}

/* On a manual clock, timers that are not due yet are alive but cannot make
 * progress: soon_run returns at once, in every mode, with a positive value
 * (what soon_loop_alive says), having fired nothing and moved no time. */
static void test_manual_run_returns_alive(void **state) {
  (void)state;
  soon_loop loop;
  idt x;
  loop_init_manual(&loop);
  start_idt(&loop, &x, 1, 10);
  watchdog_arm(); /* a wait here would be forever */
  static const soon_run_mode modes[] = {SOON_RUN_DEFAULT, SOON_RUN_ONCE,
                                        SOON_RUN_NOWAIT};
  for (int i = 0; i < 3; i++) {
    int rc = soon_run(&loop, modes[i]);
    assert_true(rc > 0);
    assert_int_equal(rc, soon_loop_alive(&loop));
  }
  watchdog_disarm();
  assert_int_equal(norder, 0);
  assert_true(soon_now(&loop) == 0);
  assert_int_equal(soon_loop_advance(&loop, 10), 0);
  assert_int_equal(norder, 1);
  /* Fired and stopped: nothing is alive any more. */
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  close_idts(&loop, &x, 1);
  loop_close_checked(&loop);
}

/* The timer and clock queries have no error to give: NULL reads as 0, and
 * setting the repeat of NULL does nothing. */
static void test_null_queries(void **state) {
  (void)state;
  assert_true(soon_now(NULL) == 0);
  soon_timer_set_repeat(NULL, 5);
  assert_true(soon_timer_get_repeat(NULL) == 0);
  assert_true(soon_timer_get_due(NULL) == 0);
  assert_true(soon_timer_get_due_in(NULL) == 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_deadline_order, reset),
      cmocka_unit_test_setup(test_equal_deadlines_start_order, reset),
      cmocka_unit_test_setup(test_restart_makes_later, reset),
      cmocka_unit_test_setup(test_restart_due_timer, reset),
      cmocka_unit_test_setup(test_repeat_then_stop, reset),
      cmocka_unit_test_setup(test_repeat_manual, reset),
      cmocka_unit_test_setup(test_again, reset),
      cmocka_unit_test_setup(test_set_get_repeat, reset),
      cmocka_unit_test_setup(test_due, reset),
      cmocka_unit_test_setup(test_due_real_clock, reset),
      cmocka_unit_test_setup(test_zero_restart_once_per_iteration, reset),
      cmocka_unit_test_setup(test_stop_other_due, reset),
      cmocka_unit_test_setup(test_stop_other_due_repeating, reset),
      cmocka_unit_test_setup(test_close_from_own_cb, reset),
      cmocka_unit_test_setup(test_start_errors, reset),
      cmocka_unit_test_setup(test_start_enomem, reset),
      cmocka_unit_test_setup(test_size, reset),
      cmocka_unit_test_setup(test_repeat_bits, reset),
      cmocka_unit_test_setup(test_group_due_and_close, reset),
      cmocka_unit_test_setup(test_heap_stress, reset),
      cmocka_unit_test_setup(test_heap_stress_ties, reset),
      cmocka_unit_test_setup(test_manual_run_returns_alive, reset),
      cmocka_unit_test_setup(test_null_queries, reset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
