/* async.c: cross-thread wakeups. Any thread (or signal handler) marks an async
 * handle sent and, if it was not already, writes the loop's eventfd; the
 * loop runs the callbacks. */
#include "core.h"

#include <sched.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void wake_cb(soon_io *io, int status, int events);
static void async_close(soon_handle *h) { soon__async_close((soon_async *)h); }
static const soon__handle_ops async_ops = {.close = async_close};

int soon__wake_init(soon_loop *loop) {
  if (loop->wake_io.fd >= 0)
    return 0;
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0)
    return -errno;
  soon__io_init_internal(loop, &loop->wake_io, fd);
  int err = soon_io_start(&loop->wake_io, SOON_READABLE, wake_cb);
  if (err) {
    close(fd);
    loop->wake_io.fd = -1;
  }
  return err;
}

void soon__wake_close(soon_loop *loop) {
  if (loop->wake_io.fd < 0)
    return;
  soon_io_stop(&loop->wake_io);
  close(loop->wake_io.fd);
  loop->wake_io.fd = -1;
}

/* Async-signal-safe: one write(2), errno preserved for the interrupted code. */
void soon__loop_wake(soon_loop *loop) {
  int saved = errno;
  uint64_t one = 1;
  ssize_t r;
  do
    r = write(loop->wake_io.fd, &one, sizeof one);
  while (r < 0 && errno == EINTR);
  /* EAGAIN means the counter is saturated: the loop is already woken. */
  errno = saved;
}

/* Drain the eventfd before clearing the flags: a send that lands after a
 * flag is cleared writes the eventfd again, so it is never lost. */
static void wake_cb(soon_io *io, int status, int events) {
  (void)status;
  (void)events;
  soon_loop *loop = io->loop;
  uint64_t n;
  while (read(loop->wake_io.fd, &n, sizeof n) < 0 && errno == EINTR)
    ;
  soon_queue todo;
  soon__queue_move(&loop->async_handles, &todo);
  while (!soon__queue_empty(&todo)) {
    soon_async *a = soon__container_of(todo.next, soon_async, async_queue);
    soon__queue_remove(&a->async_queue);
    soon__queue_insert_tail(&loop->async_handles, &a->async_queue);
    if (atomic_exchange(&a->sent, 0))
      SOON__TELL(loop, SOON_PHASE_POLL,
                 (a->flags & SOON__INTERNAL) ? SOON__KIND_NONE : SOON_ASYNC, a,
                 SOON__NO_STATUS, a->cb(a));
  }
}

/* The caller has initialised the handle part, listed or internal. */
static void async_start(soon_async *a, soon_async_cb cb) {
  a->cb = cb;
  atomic_init(&a->sent, 0);
  atomic_init(&a->senders, 0);
  soon__queue_insert_tail(&a->loop->async_handles, &a->async_queue);
  soon__handle_start((soon_handle *)a);
}

int soon_async_init(soon_loop *loop, soon_async *a, soon_async_cb cb) {
  if (!soon__loop_usable(loop) || !a || !cb)
    return -EINVAL;
  int err = soon__wake_init(loop);
  if (err)
    return err;
  soon__handle_init(loop, (soon_handle *)a, SOON_ASYNC, &async_ops);
  async_start(a, cb);
  return 0;
}

int soon__async_init_internal(soon_loop *loop, soon_async *a,
                              soon_async_cb cb) {
  int err = soon__wake_init(loop);
  if (err)
    return err;
  soon__handle_init_internal(loop, (soon_handle *)a, SOON_ASYNC, &async_ops);
  async_start(a, cb);
  return 0;
}

int soon_async_send(soon_async *a) {
  if (!a)
    return -EINVAL;
  /* No relaxed "already sent?" shortcut: only the exchange (a release)
   * makes the sender's earlier writes visible to the callback. */
  atomic_fetch_add(&a->senders, 1);
  if (atomic_exchange(&a->sent, 1) == 0)
    soon__loop_wake(a->loop);
  atomic_fetch_sub(&a->senders, 1);
  return 0;
}

/* A sender may be between setting the flag and writing the eventfd; wait
 * for it so the caller can free the handle after the close callback. */
void soon__async_close(soon_async *a) {
  soon__queue_remove(&a->async_queue);
  while (atomic_load(&a->senders))
    sched_yield();
  soon__handle_stop((soon_handle *)a);
}
