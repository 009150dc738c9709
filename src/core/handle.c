/* handle.c: the lifecycle every handle shares: init, active/ref accounting,
 * close. soon_run(DEFAULT) lives while loop->active_handles (active and
 * referenced) > 0. */
#include "core.h"

static void handle_init(soon_loop *loop, soon_handle *h, soon_handle_type type,
                        const soon__handle_ops *ops, unsigned flags) {
  h->loop = loop;
  h->type = type;
  h->ops = ops;
  h->flags = flags;
  h->state = 0;
  h->close_cb = NULL;
  h->next_closing = NULL;
}

void soon__handle_init(soon_loop *loop, soon_handle *h, soon_handle_type type,
                       const soon__handle_ops *ops) {
  handle_init(loop, h, type, ops, SOON__REF);
  loop->live_handles++;
}

void soon__handle_uninit(soon_handle *h) {
  SOON_ASSERT(!(h->flags & (SOON__ACTIVE | SOON__CLOSING | SOON__INTERNAL)));
  SOON_ASSERT(h->loop->live_handles > 0);
  h->loop->live_handles--;
  h->flags |= SOON__CLOSED;
}

/* The loop's own: not counted (soon_loop_close does not wait for it), never
 * keeping the loop alive. */
void soon__handle_init_internal(soon_loop *loop, soon_handle *h,
                                soon_handle_type type,
                                const soon__handle_ops *ops) {
  handle_init(loop, h, type, ops, SOON__INTERNAL);
}

static void count(soon_handle *h, int delta) {
  SOON_ASSERT(delta > 0 || h->loop->active_handles > 0);
  h->loop->active_handles += delta;
  if (h->type == SOON_TIMER)
    h->loop->active_timers += delta;
}

void soon__handle_start(soon_handle *h) {
  /* A closing handle starting again would keep the loop alive forever. */
  SOON_ASSERT(!(h->flags & (SOON__CLOSING | SOON__CLOSED)));
  if (h->flags & SOON__ACTIVE)
    return;
  h->flags |= SOON__ACTIVE;
  if (h->flags & SOON__REF)
    count(h, 1);
}

void soon__handle_stop(soon_handle *h) {
  if (!(h->flags & SOON__ACTIVE))
    return;
  h->flags &= ~SOON__ACTIVE;
  if (h->flags & SOON__REF)
    count(h, -1);
}

void soon_ref(soon_handle *h) {
  if (!h || (h->flags & (SOON__REF | SOON__INTERNAL)))
    return;
  h->flags |= SOON__REF;
  if (h->flags & SOON__ACTIVE)
    count(h, 1);
}

void soon_unref(soon_handle *h) {
  if (!h || !(h->flags & SOON__REF))
    return;
  h->flags &= ~SOON__REF;
  if (h->flags & SOON__ACTIVE)
    count(h, -1);
}

int soon_has_ref(const soon_handle *h) {
  return h && (h->flags & SOON__REF) != 0;
}

int soon_is_active(const soon_handle *h) {
  return h && (h->flags & SOON__ACTIVE) != 0;
}

int soon_is_closing(const soon_handle *h) { return h && soon__closing(h); }

static void push_closing(soon_handle *h) {
  /* FIFO, so close callbacks run in the order the handles were closed. */
  h->next_closing = NULL;
  if (h->loop->closing_tail)
    h->loop->closing_tail->next_closing = h;
  else
    h->loop->closing_head = h;
  h->loop->closing_tail = h;
}

int soon_close(soon_handle *h, soon_close_cb close_cb) {
  if (!h || !h->ops ||
      (h->flags & (SOON__CLOSING | SOON__CLOSED | SOON__INTERNAL)))
    return -EINVAL;
  h->ops->close(h);
  h->flags |= SOON__CLOSING;
  h->close_cb = close_cb;
  if (!(h->flags & SOON__HELD))
    push_closing(h);
  return 0;
}

void soon__handle_hold(soon_handle *h) {
  if (h->flags & SOON__HELD)
    return;
  h->flags |= SOON__HELD;
  h->loop->active_reqs++;
}

void soon__handle_release(soon_handle *h) {
  if (!(h->flags & SOON__HELD))
    return;
  h->flags &= ~SOON__HELD;
  SOON_ASSERT(h->loop->active_reqs > 0);
  h->loop->active_reqs--;
  push_closing(h);
}

/* Handles closed by these callbacks wait for the next close phase, so a
 * callback that closes a handle from inside its own close path cannot loop. */
void soon__run_closing(soon_loop *loop) {
  soon_handle *h = loop->closing_head;
  loop->closing_head = loop->closing_tail = NULL;
  while (h) {
    soon_handle *next = h->next_closing;
    /* Still active or held, it would keep the loop alive (and be touched)
     * after its close callback gave its memory back. */
    SOON_ASSERT(!(h->flags & (SOON__ACTIVE | SOON__HELD)));
    h->flags = (h->flags & ~SOON__CLOSING) | SOON__CLOSED;
    if (!(h->flags & SOON__INTERNAL)) {
      SOON_ASSERT(loop->live_handles > 0);
      loop->live_handles--;
    }
    if (h->ops->finish)
      h->ops->finish(h);
    if (h->close_cb)
      SOON__TELL(loop, SOON_PHASE_CLOSING, h->type, h, SOON__NO_STATUS,
                 h->close_cb(h));
    h = next;
  }
}
