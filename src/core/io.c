/* io.c: the fd readiness watcher (soon_io) and the fd -> watcher table backends
 * report into. Readiness is queued during the backend wait and dispatched after
 * it, so callbacks may stop, close or start any watcher without invalidating
 * the backend's own state. */
#include "core.h"

#include <stdlib.h>

#define SOON__IO_EVENTS (SOON_READABLE | SOON_WRITABLE | SOON_DISCONNECT)

static void io_close(soon_handle *h) { soon_io_stop((soon_io *)h); }
static const soon__handle_ops io_ops = {.close = io_close};

int soon_io_init(soon_loop *loop, soon_io *io, int fd) {
  if (!soon__loop_usable(loop) || !io || fd < 0)
    return -EINVAL;
  soon__handle_init(loop, (soon_handle *)io, SOON_IO, &io_ops);
  io->cb = NULL;
  io->fd = fd;
  io->events = 0;
  io->revents = 0;
  soon__queue_init(&io->ready_queue);
  return 0;
}

void soon__io_init_internal(soon_loop *loop, soon_io *io, int fd) {
  soon__handle_init_internal(loop, (soon_handle *)io, SOON_IO, &io_ops);
  io->cb = NULL;
  io->fd = fd;
  io->events = 0;
  io->revents = 0;
  soon__queue_init(&io->ready_queue);
}

/* Grow the table to hold fd; amortised, and only when a watcher starts or
 * claims an fd. */
static int io_table_reserve(soon_loop *loop, int fd) {
  soon_io **w = soon__grow(loop->watchers, &loop->nwatchers, (size_t)fd + 1,
                           sizeof *w, 64);
  if (!w)
    return -ENOMEM;
  loop->watchers = w;
  return 0;
}

int soon__io_reserve(soon_loop *loop, int fd) {
  int err = io_table_reserve(loop, fd);
  return err ? err : loop->watchers[fd] ? -EEXIST : 0;
}

int soon_io_start(soon_io *io, int events, soon_io_cb cb) {
  if (!io || !cb || io->type != SOON_IO || events == 0 ||
      (events & ~SOON__IO_EVENTS) || soon__closing((soon_handle *)io))
    return -EINVAL;
  soon_loop *loop = io->loop;
  int err = io_table_reserve(loop, io->fd);
  if (err)
    return err;
  if (loop->watchers[io->fd] && loop->watchers[io->fd] != io)
    return -EEXIST;
  if (events != io->events) {
    err = loop->backend->watch(loop->backend_state, io->fd, io->events, events);
    if (err)
      return err;
  }
  loop->watchers[io->fd] = io;
  io->events = events;
  io->cb = cb;
  /* Events that fired but are no longer wanted are not told. */
  io->revents &= events | SOON__IO_BADFD;
  if (!io->revents)
    soon__queue_remove(&io->ready_queue);
  soon__handle_start((soon_handle *)io);
  return 0;
}

int soon_io_stop(soon_io *io) {
  if (!io || io->type != SOON_IO)
    return -EINVAL;
  if (!io->events)
    return 0;
  soon_loop *loop = io->loop;
  loop->backend->unwatch(loop->backend_state, io->fd);
  if (!(io->flags & SOON__IO_CLAIMED))
    loop->watchers[io->fd] = NULL;
  io->events = 0;
  io->revents = 0;
  soon__queue_remove(&io->ready_queue);
  soon__handle_stop((soon_handle *)io);
  return 0;
}

/* Claim fd for io until soon__io_release, watched or not: soon_io_start on
 * it from any other watcher is -EEXIST. A stream claims its fd from the time
 * it gets it until it is closed, on every backend: two owners of one fd
 * would take each other's bytes and readiness, whether the stream reads at
 * the moment or not, and in the ring it reads without ever watching. Then
 * the conflict is told by the call that makes it, the same on every
 * backend, and never later by a read_start or a write that needs readiness.
 * -EEXIST if another watcher has fd, -ENOMEM. */
int soon__io_claim(soon_io *io, int fd) {
  soon_loop *loop = io->loop;
  int err = io_table_reserve(loop, fd);
  if (err)
    return err;
  if (loop->watchers[fd] && loop->watchers[fd] != io)
    return -EEXIST;
  loop->watchers[fd] = io;
  io->fd = fd;
  io->flags |= SOON__IO_CLAIMED;
  return 0;
}

/* Stop io and give its fd's slot back; the fd stays set. */
void soon__io_release(soon_io *io) {
  soon_io_stop(io);
  if (!(io->flags & SOON__IO_CLAIMED))
    return;
  io->loop->watchers[io->fd] = NULL;
  io->flags &= ~SOON__IO_CLAIMED;
}

void soon__io_ready(soon_loop *loop, int fd, int events) {
  /* One compare for both bounds: a negative fd is a huge size_t. */
  if ((size_t)(unsigned)fd >= loop->nwatchers)
    return;
  soon_io *io = loop->watchers[fd];
  if (!io)
    return;
  if (!io->events)
    return; /* claimed, not watching: nothing was asked for */
  events &= io->events | SOON__IO_BADFD;
  if (!events)
    return;
  if (!io->revents)
    soon__queue_insert_tail(&loop->ready_io, &io->ready_queue);
  io->revents |= events;
}

void soon__io_free_table(soon_loop *loop) {
  free(loop->watchers);
  loop->watchers = NULL;
  loop->nwatchers = 0;
}
