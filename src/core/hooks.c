/* hooks.c: idle, prepare and check handles, the loop's per-iteration callbacks.
 * The three share one implementation; only the queue they sit on differs. */
#include "core.h"

/* The three structs share their layout up to and including cb and
 * hook_queue (soon/private.h); idle stands for all of them here. */
_Static_assert(offsetof(soon_idle, hook_queue) ==
                       offsetof(soon_prepare, hook_queue) &&
                   offsetof(soon_idle, hook_queue) ==
                       offsetof(soon_check, hook_queue),
               "hook handles must share their layout");

static soon_queue *hook_queue_of(soon_loop *loop, soon_handle_type type) {
  switch (type) {
  case SOON_IDLE:
    return &loop->idle_handles;
  case SOON_PREPARE:
    return &loop->prepare_handles;
  default:
    return &loop->check_handles;
  }
}

static void hook_close(soon_handle *h);
static const soon__handle_ops hook_ops = {.close = hook_close};

static int hook_init(soon_loop *loop, soon_handle *h, soon_handle_type type) {
  if (!soon__loop_usable(loop) || !h)
    return -EINVAL;
  soon__handle_init(loop, h, type, &hook_ops);
  soon__queue_init(&((soon_idle *)h)->hook_queue);
  return 0;
}

/* The caller stores its typed callback once this returns 0. */
static int hook_start(soon_handle *h, soon_handle_type type, bool has_cb) {
  if (!h || !has_cb || h->type != type || soon__closing(h))
    return -EINVAL;
  soon_idle *hook = (soon_idle *)h;
  if (soon__handle_active(h))
    return 0;
  soon__queue_insert_tail(hook_queue_of(h->loop, type), &hook->hook_queue);
  soon__handle_start(h);
  return 0;
}

static void hook_close(soon_handle *h) {
  if (!soon__handle_active(h))
    return;
  soon__queue_remove(&((soon_idle *)h)->hook_queue);
  soon__handle_stop(h);
}

static int hook_stop(soon_handle *h, soon_handle_type type) {
  if (!h || h->type != type)
    return -EINVAL;
  hook_close(h);
  return 0;
}

static inline void hook_call(soon_idle *hook, soon_handle_type type) {
  switch (type) {
  case SOON_IDLE:
    hook->cb(hook);
    break;
  case SOON_PREPARE:
    ((soon_prepare *)hook)->cb((soon_prepare *)hook);
    break;
  default:
    ((soon_check *)hook)->cb((soon_check *)hook);
    break;
  }
}

/* Out of line, so that hook_run's own code stays as lean as without it. */
__attribute__((noinline, cold)) static void hook_tell(soon_idle *hook) {
  soon_handle_type type = hook->type;
  static const unsigned char phase[] = {
      [SOON_IDLE] = SOON_PHASE_IDLE,
      [SOON_PREPARE] = SOON_PHASE_PREPARE,
      [SOON_CHECK] = SOON_PHASE_CHECK,
  };
  soon__observe_begin(hook->loop, phase[type], type, hook, SOON__NO_STATUS);
  hook_call(hook, type);
  soon__observe_end();
}

/* Handles started by these callbacks run from the next iteration on; a
 * handle stopped by one before its turn does not run. */
static void hook_run(soon_loop *loop, soon_handle_type type) {
  soon_queue *q = hook_queue_of(loop, type), todo;
  soon__queue_move(q, &todo);
  while (!soon__queue_empty(&todo)) {
    soon_idle *hook = soon__container_of(todo.next, soon_idle, hook_queue);
    soon__queue_remove(&hook->hook_queue);
    soon__queue_insert_tail(q, &hook->hook_queue);
    /* hook->loop, not loop: nothing more to keep across the loop's turns. */
    if (__builtin_expect(hook->loop->observe != 0, 0))
      hook_tell(hook);
    else
      hook_call(hook, type);
  }
}

void soon__run_idle(soon_loop *loop) { hook_run(loop, SOON_IDLE); }
void soon__run_prepare(soon_loop *loop) { hook_run(loop, SOON_PREPARE); }
void soon__run_check(soon_loop *loop) { hook_run(loop, SOON_CHECK); }

int soon_idle_init(soon_loop *loop, soon_idle *h) {
  return hook_init(loop, (soon_handle *)h, SOON_IDLE);
}
int soon_idle_start(soon_idle *h, soon_idle_cb cb) {
  int err = hook_start((soon_handle *)h, SOON_IDLE, cb != NULL);
  if (err == 0)
    h->cb = cb;
  return err;
}
int soon_idle_stop(soon_idle *h) {
  return hook_stop((soon_handle *)h, SOON_IDLE);
}

int soon_prepare_init(soon_loop *loop, soon_prepare *h) {
  return hook_init(loop, (soon_handle *)h, SOON_PREPARE);
}
int soon_prepare_start(soon_prepare *h, soon_prepare_cb cb) {
  int err = hook_start((soon_handle *)h, SOON_PREPARE, cb != NULL);
  if (err == 0)
    h->cb = cb;
  return err;
}
int soon_prepare_stop(soon_prepare *h) {
  return hook_stop((soon_handle *)h, SOON_PREPARE);
}

int soon_check_init(soon_loop *loop, soon_check *h) {
  return hook_init(loop, (soon_handle *)h, SOON_CHECK);
}
int soon_check_start(soon_check *h, soon_check_cb cb) {
  int err = hook_start((soon_handle *)h, SOON_CHECK, cb != NULL);
  if (err == 0)
    h->cb = cb;
  return err;
}
int soon_check_stop(soon_check *h) {
  return hook_stop((soon_handle *)h, SOON_CHECK);
}
