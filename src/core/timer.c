/* timer.c: one-shot and repeating timers on the loop's min-heap of deadlines.
 * Ties break on start order, so equal deadlines fire in the order they were
 * started. */
#include "core.h"

#include <limits.h>

/* A timer is in one of three states: stopped (not active), waiting (active,
 * in the heap) or due (not active, on the run phase's local ready queue,
 * marked by SOON__TIMER_DUE until its callback is about to run).
 *
 * 64 bytes, as libev's 48 plus its heap's 16 (issue 18): the ring of a
 * group and the ready queue use the handle's open_node, which soon_close
 * needs only once the timer is stopped for good; the deadline shares t->at
 * with the heap index (src/core/heap.c); and repeat takes 40 bits, its low
 * 32 in repeat_lo and the high 8 in the handle's state byte. 2^40 - 1 ms is
 * 34.8 years: a repeat that long or longer is kept as "never" (UINT64_MAX,
 * a restart at the saturated deadline), as a deadline past UINT64_MAX is. */
#define REPEAT_NEVER ((UINT64_C(1) << 40) - 1)

static void set_repeat(soon_timer *t, uint64_t repeat) {
  if (repeat > REPEAT_NEVER)
    repeat = REPEAT_NEVER;
  t->repeat_lo = (uint32_t)repeat;
  t->state = (uint8_t)(repeat >> 32);
}

static uint64_t get_repeat(const soon_timer *t) {
  uint64_t repeat = (uint64_t)t->state << 32 | t->repeat_lo;
  return repeat == REPEAT_NEVER ? UINT64_MAX : repeat;
}

static void timer_close(soon_handle *h) { soon_timer_stop((soon_timer *)h); }
static const soon__handle_ops timer_ops = {.close = timer_close};

int soon_timer_init(soon_loop *loop, soon_timer *timer) {
  if (!soon__loop_usable(loop) || !timer)
    return -EINVAL;
  soon__handle_init(loop, (soon_handle *)timer, SOON_TIMER, &timer_ops);
  timer->cb = NULL;
  timer->at.due = 0;
  set_repeat(timer, 0);
  return 0;
}

int soon_timer_stop(soon_timer *timer) {
  if (!timer)
    return -EINVAL;
  if (timer->flags & SOON__TIMER_DUE) {
    soon__queue_remove(&timer->open_node);
    timer->flags &= ~SOON__TIMER_DUE;
  } else if (soon__handle_active((soon_handle *)timer)) {
    soon__heap_remove(timer->loop, timer);
  }
  soon__handle_stop((soon_handle *)timer);
  return 0;
}

int soon_timer_start(soon_timer *timer, soon_timer_cb cb, uint64_t timeout,
                     uint64_t repeat) {
  if (!timer || !cb || soon__closing((soon_handle *)timer))
    return -EINVAL;
  soon_timer_stop(timer);
  soon_loop *loop = timer->loop;
  uint64_t due = loop->time + timeout;
  if (due < loop->time)
    due = UINT64_MAX; /* saturate, never wrap */
  timer->cb = cb;
  set_repeat(timer, repeat);
  int err = soon__heap_insert(loop, timer, due);
  if (err)
    return err;
  soon__handle_start((soon_handle *)timer);
  return 0;
}

int soon_timer_again(soon_timer *timer) {
  if (!timer || !timer->cb)
    return -EINVAL;
  uint64_t repeat = get_repeat(timer);
  if (repeat)
    return soon_timer_start(timer, timer->cb, repeat, repeat);
  return 0;
}

void soon_timer_set_repeat(soon_timer *timer, uint64_t repeat) {
  if (timer)
    set_repeat(timer, repeat);
}

uint64_t soon_timer_get_repeat(const soon_timer *timer) {
  return timer ? get_repeat(timer) : 0;
}

uint64_t soon_timer_get_due(const soon_timer *timer) {
  if (!timer)
    return 0;
  /* Stopped or due, it holds its deadline; waiting, it may be in a slot. */
  return soon__handle_active((const soon_handle *)timer)
             ? soon__heap_due(timer->loop, timer)
             : timer->at.due;
}

uint64_t soon_timer_get_due_in(const soon_timer *timer) {
  if (!timer || !soon_is_active((const soon_handle *)timer))
    return 0;
  uint64_t due = soon__heap_due(timer->loop, timer);
  return due <= timer->loop->time ? 0 : due - timer->loop->time;
}

/* soon__run_timers' callback with trace or metrics on, out of line so that
 * without them the loop's code is what it was. */
__attribute__((noinline, cold)) static void timer_tell(soon_timer *t) {
  soon_loop *loop = t->loop;
  uint64_t due = t->at.due; /* stopped: its deadline; the repeat moves it */
  soon_timer_again(t);
  if (loop->observe & SOON__OBSERVE_METRICS)
    soon__metrics_lag(loop, due);
  soon__observe_begin(loop, SOON_PHASE_TIMERS, SOON_TIMER, t, SOON__NO_STATUS);
  t->cb(t);
  soon__observe_end();
}

/* Collect every due timer first, then run them: a timer (re)started with a
 * zero timeout from a callback waits for the next iteration instead of
 * starving the loop. A repeating timer is rescheduled before its callback,
 * so the callback may stop or restart it, as in libuv. */
void soon__run_timers(soon_loop *loop) {
  soon_queue ready;
  soon__queue_init(&ready);
  uint64_t due;
  for (soon_timer *t; (t = soon__heap_min(loop, &due)) && due <= loop->time;) {
    soon_timer_stop(t);
    soon__queue_insert_tail(&ready, &t->open_node);
    t->flags |= SOON__TIMER_DUE;
  }
  while (!soon__queue_empty(&ready)) {
    soon_timer *t = soon__container_of(ready.next, soon_timer, open_node);
    soon__queue_remove(&t->open_node);
    t->flags &= ~SOON__TIMER_DUE;
    if (__builtin_expect(t->loop->observe != 0, 0)) {
      timer_tell(t);
      continue;
    }
    soon_timer_again(t);
    t->cb(t);
  }
}

int soon__next_timeout(const soon_loop *loop) {
  uint64_t due;
  if (!soon__heap_min(loop, &due))
    return -1;
  if (due <= loop->time)
    return 0;
  if (loop->flags & SOON_LOOP_MANUAL_CLOCK)
    return -1;
  uint64_t diff = due - loop->time;
  return diff > INT_MAX ? INT_MAX : (int)diff;
}

int soon_loop_advance(soon_loop *loop, uint64_t ms) {
  if (!soon__loop_usable(loop) || !(loop->flags & SOON_LOOP_MANUAL_CLOCK))
    return -EINVAL;
  int err = soon__loop_enter(loop); /* it runs callbacks, as soon_run does */
  if (err)
    return err;
  uint64_t target = loop->time + ms;
  if (target < loop->time)
    target = UINT64_MAX;
  /* Step the clock through each deadline so every callback sees its own
   * deadline as soon_now(), and repeats fire once per period. */
  for (uint64_t due; soon__heap_min(loop, &due) && due <= target;) {
    if (due > loop->time)
      loop->time = due;
    soon__run_timers(loop);
  }
  loop->time = target;
  loop->running = 0;
  return 0;
}
