/* timer.c: one-shot and repeating timers on the loop's min-heap of deadlines.
 * Ties break on start order, so equal deadlines fire in the order they were
 * started. */
#include "core.h"

#include <limits.h>

/* A timer is in one of three states: stopped (not active), waiting (active,
 * in the heap) or due (not active, on the run phase's local ready queue,
 * marked by SOON__TIMER_DUE until its callback is about to run). */

static void timer_close(soon_handle *h) { soon_timer_stop((soon_timer *)h); }
static const soon__handle_ops timer_ops = {.close = timer_close};

int soon_timer_init(soon_loop *loop, soon_timer *timer) {
  if (!soon__loop_usable(loop) || !timer)
    return -EINVAL;
  soon__handle_init(loop, (soon_handle *)timer, SOON_TIMER, &timer_ops);
  timer->cb = NULL;
  timer->due = 0;
  timer->repeat = 0;
  timer->start_id = 0;
  return 0;
}

int soon_timer_stop(soon_timer *timer) {
  if (!timer)
    return -EINVAL;
  if (timer->flags & SOON__TIMER_DUE) {
    soon__queue_remove(&timer->node.ready);
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
  timer->due = due < loop->time ? UINT64_MAX : due; /* saturate, never wrap */
  timer->cb = cb;
  timer->repeat = repeat;
  timer->start_id = loop->timer_seq++;
  int err = soon__heap_insert(loop, timer);
  if (err)
    return err;
  soon__handle_start((soon_handle *)timer);
  return 0;
}

int soon_timer_again(soon_timer *timer) {
  if (!timer || !timer->cb)
    return -EINVAL;
  if (timer->repeat)
    return soon_timer_start(timer, timer->cb, timer->repeat, timer->repeat);
  return 0;
}

void soon_timer_set_repeat(soon_timer *timer, uint64_t repeat) {
  if (timer)
    timer->repeat = repeat;
}

uint64_t soon_timer_get_repeat(const soon_timer *timer) {
  return timer ? timer->repeat : 0;
}

uint64_t soon_timer_get_due(const soon_timer *timer) {
  return timer ? timer->due : 0;
}

uint64_t soon_timer_get_due_in(const soon_timer *timer) {
  if (!timer || !soon_is_active((const soon_handle *)timer) ||
      timer->due <= timer->loop->time)
    return 0;
  return timer->due - timer->loop->time;
}

/* soon__run_timers' callback with trace or metrics on, out of line so that
 * without them the loop's code is what it was. */
__attribute__((noinline, cold)) static void timer_tell(soon_timer *t) {
  soon_loop *loop = t->loop;
  uint64_t due = t->due; /* before the repeat moves it */
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
  for (soon_timer *t; (t = soon__heap_min(loop)) && t->due <= loop->time;) {
    soon_timer_stop(t);
    soon__queue_insert_tail(&ready, &t->node.ready);
    t->flags |= SOON__TIMER_DUE;
  }
  while (!soon__queue_empty(&ready)) {
    soon_timer *t = soon__container_of(ready.next, soon_timer, node.ready);
    soon__queue_remove(&t->node.ready);
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
  const soon_timer *t = soon__heap_min(loop);
  if (!t)
    return -1;
  if (t->due <= loop->time)
    return 0;
  if (loop->flags & SOON_LOOP_MANUAL_CLOCK)
    return -1;
  uint64_t diff = t->due - loop->time;
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
  for (soon_timer *t; (t = soon__heap_min(loop)) && t->due <= target;) {
    if (t->due > loop->time)
      loop->time = t->due;
    soon__run_timers(loop);
  }
  loop->time = target;
  loop->running = 0;
  return 0;
}
