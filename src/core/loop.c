/* loop.c: loop set-up and teardown, backend choice, and soon_run's iteration.
 * The phase order is the one in DESIGN.md section 4 and
 * docs/guide/event-loop.md. */
#include "core.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* In order of preference: with no name given, the first that initialises
 * wins, so a kernel that refuses io_uring gets epoll. uring leads because
 * bench/ measures it level with epoll on sockets (it is epoll there) and
 * well ahead on files (docs/uring.md). */
static const soon__backend_ops *const backends[] = {
#ifdef SOON_HAVE_URING
    &soon__backend_uring,
#endif
    &soon__backend_epoll,
    &soon__backend_poll,
    &soon__backend_select,
};
enum { NBACKENDS = sizeof backends / sizeof *backends };

/* -EINVAL for a name nobody knows; -ENOSYS for one this build lacks. */
static int backend_by_name(const char *name, const soon__backend_ops **ops) {
  for (size_t i = 0; i < NBACKENDS; i++) {
    if (strcmp(name, backends[i]->name) == 0) {
      *ops = backends[i];
      return 0;
    }
  }
  return strcmp(name, "uring") == 0 ? -ENOSYS : -EINVAL;
}

int soon_loop_init(soon_loop *loop) { return soon_loop_init_ex(loop, NULL); }

int soon_loop_init_ex(soon_loop *loop, const soon_loop_options *opts) {
  if (!loop)
    return -EINVAL;
  /* Cleared first, so that whatever fails below leaves a loop every call
   * refuses (backend NULL), not one half set. */
  void *data = loop->data; /* the caller's, set by nobody else */
  memset(loop, 0, sizeof *loop);
  loop->data = data;
  if (opts && (opts->flags & ~(SOON_LOOP_MANUAL_CLOCK | SOON_LOOP_METRICS)))
    return -EINVAL;
  const char *name =
      opts && opts->backend ? opts->backend : getenv("SOON_BACKEND");
  const soon__backend_ops *ops = NULL;
  if (name && *name) {
    int err = backend_by_name(name, &ops);
    if (err)
      return err;
  }

  unsigned pool_size;
  if (!(opts && opts->pool) && soon__env_pool_size(4, &pool_size) != 0)
    return -EINVAL; /* a bad $SOON_THREADPOOL_SIZE is an error, not ignored */

  loop->flags = opts ? opts->flags : 0;
  soon__queue_init(&loop->idle_handles);
  soon__queue_init(&loop->prepare_handles);
  soon__queue_init(&loop->check_handles);
  soon__queue_init(&loop->pending_queue);
  soon__queue_init(&loop->feed_queue);
  soon__queue_init(&loop->ready_io);
  soon__queue_init(&loop->async_handles);
  loop->wake_io.fd = -1; /* no eventfd until an async handle needs one */
  loop->time = (loop->flags & SOON_LOOP_MANUAL_CLOCK) ? 0 : soon__clock_ms();
  loop->pool = opts ? opts->pool : NULL;
  int err = soon__chaos_init(loop, opts ? opts->chaos_seed : 0);
  if (err)
    return err;
  err = soon__observe_init(loop);
  if (err)
    return err;
  err = -ENOSYS;
  if (ops) /* asked for by name: its failure is the caller's answer */
    err = ops->init(loop, &loop->backend_state);
  for (size_t i = 0; !ops && i < NBACKENDS; i++)
    if ((err = backends[i]->init(loop, &loop->backend_state)) == 0)
      ops = backends[i];
  if (err) { /* unusable: every call on it answers -EINVAL */
    soon__observe_free(loop);
    loop->backend_state = NULL;
    return err;
  }
  loop->backend = ops;
  return 0;
}

int soon_loop_close(soon_loop *loop) {
  if (!soon__loop_usable(loop))
    return -EINVAL;
  if (loop->live_handles || loop->closing_head || loop->active_reqs)
    return -EBUSY;
  /* No handle left, so nothing may be counted or queued for a callback. */
  SOON_ASSERT(loop->active_handles == 0 &&
              soon__queue_empty(&loop->pending_queue) &&
              soon__queue_empty(&loop->feed_queue) &&
              soon__queue_empty(&loop->ready_io));
  if (loop->pool_fini)
    loop->pool_fini(loop); /* joins the loop's own pool, if it made one */
  soon__wake_close(loop);
  loop->backend->close(loop->backend_state);
  soon__io_free_table(loop);
  soon__op_free(loop);
  soon__heap_free(loop);
  soon__observe_free(loop);
  loop->backend = NULL;
  loop->backend_state = NULL;
  return 0;
}

int soon__env_pool_size(unsigned fallback, unsigned *size) {
  const char *v = getenv("SOON_THREADPOOL_SIZE");
  *size = fallback;
  if (!v || !*v)
    return 0;
  char *end;
  errno = 0;
  unsigned long n = strtoul(v, &end, 10);
  if (errno || *end || n < 1 || n > 1024 || v[0] == '-')
    return -EINVAL;
  *size = (unsigned)n;
  return 0;
}

int soon_loop_alive(const soon_loop *loop) {
  return loop &&
         (loop->active_handles || loop->active_reqs || loop->closing_head);
}

/* Whether soon_run has anything to go on with. A manual clock's timers only
 * count once due: nothing but soon_loop_advance could make the others fire.
 * Inline, and the common answers first: soon_run asks twice an iteration. */
static inline bool run_alive(const soon_loop *loop) {
  if (loop->active_reqs || loop->closing_head)
    return true;
  unsigned handles = loop->active_handles;
  if (handles && (loop->flags & SOON_LOOP_MANUAL_CLOCK) &&
      soon__next_timeout(loop) != 0)
    handles -= loop->active_timers;
  return handles != 0;
}

static int backend_timeout(const soon_loop *loop) {
  if (loop->stop_flag || !soon__queue_empty(&loop->idle_handles) ||
      !soon__queue_empty(&loop->pending_queue) ||
      !soon__queue_empty(&loop->feed_queue) || loop->closing_head ||
      !run_alive(loop))
    return 0;
  return soon__timers_waiting(loop) ? soon__next_timeout(loop) : -1;
}

/* Work pushed while this runs waits for the next iteration. Inlined at
 * its two places: the pending phase runs it at most iterations. */
SOON__INLINE void run_deferred(soon_queue *q) {
  soon_queue todo;
  soon__queue_move(q, &todo);
  while (!soon__queue_empty(&todo)) {
    soon__deferred *p = soon__container_of(todo.next, soon__deferred, queue);
    soon__queue_remove(&p->queue);
    p->cb(p);
  }
}

/* A wait cut short by a signal (EINTR, reported as 0 events) is resumed for
 * the time left, in every mode, as libuv does: an iteration with no I/O
 * would run check, idle and prepare callbacks for nothing, and a ONCE would
 * return without the progress it promises. The time left is counted from
 * loop->time, which timeout was computed from (a positive timeout means a
 * timer on the real clock), so the clock is read only after such a return,
 * never around an ordinary wait. */
static int backend_wait(soon_loop *loop, int timeout) {
  int left = timeout;
  for (;;) {
    int n;
    if (__builtin_expect(loop->observe & SOON__OBSERVE_METRICS, 0)) {
      /* One writer (this thread), readers anywhere: a relaxed add. */
      uint64_t t0 = soon_hrtime();
      n = loop->backend->wait(loop->backend_state, left);
      atomic_fetch_add_explicit(&loop->idle_ns, soon_hrtime() - t0,
                                memory_order_relaxed);
    } else {
      n = loop->backend->wait(loop->backend_state, left);
    }
    if (n != 0 || left == 0 || !soon__queue_empty(&loop->ready_io) ||
        loop->ndone)
      return n;
    if (timeout > 0) {
      uint64_t spent = soon__clock_ms() - loop->time;
      if (spent >= (uint64_t)timeout)
        return 0;
      left = timeout - (int)spent;
    }
  }
}

/* A number for the calling thread, never reused in this process: a
 * pthread_t (or a tid) is reused once its thread is joined, and a new
 * thread must not inherit a loop that way. */
static uint64_t thread_id(void) {
  static _Atomic uint64_t last;
  static _Thread_local uint64_t id;
  if (!id)
    id = atomic_fetch_add_explicit(&last, 1, memory_order_relaxed) + 1;
  return id;
}

/* A loop belongs to the first thread that runs it, on every backend: uring
 * binds its ring to that thread, and the others follow so that a program
 * behaves the same whichever backend it gets. */
int soon__loop_bind(soon_loop *loop) {
  uint64_t self = thread_id();
  if (!loop->owner)
    loop->owner = self;
  return loop->owner == self ? 0 : -EEXIST;
}

/* Refused before anything runs: another thread's callbacks, or a nested
 * run (a callback's own fd still ready, a completion told twice). */
int soon__loop_enter(soon_loop *loop) {
  int err = soon__loop_bind(loop);
  if (err)
    return err;
  if (loop->running)
    return -EBUSY;
  loop->running = 1;
  return 0;
}

int soon_run(soon_loop *loop, soon_run_mode mode) {
  if (!soon__loop_usable(loop) || mode < SOON_RUN_DEFAULT ||
      mode > SOON_RUN_NOWAIT)
    return -EINVAL;
  int err = soon__loop_enter(loop);
  if (err)
    return err;
  bool alive = run_alive(loop);
  if (!alive)
    soon_update_time(loop);
  /* Each phase is entered only when it has something to run: the checks
   * are inline here, so an iteration that only waits and dispatches costs
   * no call into an empty phase (pingpong: two iterations a round trip). */
  bool real_clock = !(loop->flags & SOON_LOOP_MANUAL_CLOCK);
  while (alive && !loop->stop_flag) {
    loop->iterations++;
    if (real_clock)
      loop->time = soon__clock_ms(); /* soon_update_time, its checks done */
    if (soon__timers_waiting(loop))
      soon__run_timers(loop);
    /* Only read by the trace, for the callbacks net and fs tell, which run
     * in these three phases; the core's call sites know their own. */
    loop->phase = SOON_PHASE_PENDING;
    if (!soon__queue_empty(&loop->pending_queue)) {
      if (SOON__CHAOS(loop))
        soon__chaos_shuffle(loop, &loop->pending_queue);
      run_deferred(&loop->pending_queue);
    }
    if (!soon__queue_empty(&loop->idle_handles))
      soon__run_idle(loop);
    if (!soon__queue_empty(&loop->prepare_handles))
      soon__run_prepare(loop);
    loop->phase = SOON_PHASE_POLL;
    int timeout = mode == SOON_RUN_NOWAIT ? 0 : backend_timeout(loop);
    /* Chaos: now and then a wake-up with no event (not in a ONCE, which
     * promises progress). */
    if (SOON__CHAOS(loop) && timeout != 0 && mode == SOON_RUN_DEFAULT &&
        soon__chaos_below(loop, 8) == 0)
      timeout = 0;
    int n = backend_wait(loop, timeout);
    if (n < 0) {
      err = n;
      break;
    }
    loop->events += (unsigned)n; /* once here, not once per event */
    if (SOON__CHAOS(loop))
      soon__chaos_after_wait(loop);
    if (!soon__queue_empty(&loop->feed_queue))
      run_deferred(&loop->feed_queue);
    if (!soon__queue_empty(&loop->ready_io))
      soon__io_dispatch(loop);
    if (loop->ndone)
      soon__op_dispatch(loop);
    if (!soon__queue_empty(&loop->check_handles))
      soon__run_check(loop);
    loop->phase = SOON_PHASE_CLOSING;
    if (loop->closing_head)
      soon__run_closing(loop);
    if (mode == SOON_RUN_ONCE) {
      /* A ONCE that slept until a timer's deadline must fire that timer. */
      soon_update_time(loop);
      soon__run_timers(loop);
    }
    alive = run_alive(loop);
    if (mode != SOON_RUN_DEFAULT)
      break;
  }
  loop->stop_flag = 0;
  loop->running = 0;
  /* Not run_alive: on a manual clock, timers not yet due still count. */
  return err ? err : soon_loop_alive(loop);
}

/* This and soon_update_time leave a loop that is not usable as it is, like
 * every call that refuses it. */
void soon_stop(soon_loop *loop) {
  if (soon__loop_usable(loop))
    loop->stop_flag = 1;
}

uint64_t soon_now(const soon_loop *loop) { return loop ? loop->time : 0; }

void soon_update_time(soon_loop *loop) {
  if (soon__loop_usable(loop) && !(loop->flags & SOON_LOOP_MANUAL_CLOCK))
    loop->time = soon__clock_ms();
}

const char *soon_backend_name(const soon_loop *loop) {
  return loop && loop->backend ? loop->backend->name : NULL;
}
