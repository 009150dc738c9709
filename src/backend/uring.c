/* uring.c: the io_uring backend: file operations run in the ring, batched into
 * one submit per iteration; readiness is epoll's, with the ring's fd in the
 * epoll set. */
#include "backend.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdint.h>
#include <stdlib.h>

/* Sockets are faster on epoll than on a poll SQE per event (docs/uring.md
 * has the numbers), so readiness is epoll's, with the ring's own fd in the
 * epoll set: the ring only carries what it is better at, file operations,
 * and a loop that has no file operation in flight makes no io_uring call. */

enum { RING_ENTRIES = 1024 };

typedef struct uring_state {
  struct io_uring ring;
  struct io_uring_probe *probe; /* which ops this kernel runs natively */
  struct soon_loop *loop;
  void *epoll; /* the epoll backend's state: all readiness goes there */
} uring_state;

static int uring_setup(uring_state *s) {
  if (getenv("SOON_URING_FAIL")) /* test hook: behave as a refusing kernel */
    return -ENOSYS;
  /* No COOP_TASKRUN: the loop sleeps in epoll_wait, not in io_uring_enter,
   * so a completion must be able to interrupt it to be posted. Not
   * SINGLE_ISSUER/DEFER_TASKRUN: they bind the ring to the thread that made
   * it, and a loop may be made in one thread and run in another. Not SQPOLL:
   * a kernel thread spinning on the SQ costs a core to save a syscall. */
  return io_uring_queue_init(RING_ENTRIES, &s->ring, 0);
}

static int uring_init(struct soon_loop *loop, void **state) {
  uring_state *s = calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  int err = uring_setup(s);
  if (err) {
    free(s);
    return err;
  }
  err = soon__backend_epoll.init(loop, &s->epoll);
  if (!err)
    err = soon__backend_epoll.watch(s->epoll, s->ring.ring_fd, SOON__IO_READ);
  if (err) {
    if (s->epoll)
      soon__backend_epoll.close(s->epoll);
    io_uring_queue_exit(&s->ring);
    free(s);
    return err;
  }
  s->probe = io_uring_get_probe_ring(&s->ring);
  s->loop = loop;
  *state = s;
  return 0;
}

static void uring_close(void *state) {
  uring_state *s = state;
  soon__backend_epoll.close(s->epoll);
  io_uring_queue_exit(&s->ring);
  if (s->probe)
    io_uring_free_probe(s->probe);
  free(s);
}

static int uring_watch(void *state, int fd, int events) {
  uring_state *s = state;
  return soon__backend_epoll.watch(s->epoll, fd, events);
}

static void uring_unwatch(void *state, int fd) {
  uring_state *s = state;
  soon__backend_epoll.unwatch(s->epoll, fd);
}

/* Submit what this iteration prepared, wait in epoll (not at all if
 * completions are already posted), then hand every completion over. The
 * ring fd's own readiness report finds no watcher and is dropped. */
static int uring_wait(void *state, int timeout_ms) {
  uring_state *s = state;
  if (io_uring_sq_ready(&s->ring)) {
    int r = io_uring_submit(&s->ring);
    if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY)
      return r;
  }
  if (io_uring_cq_ready(&s->ring))
    timeout_ms = 0;
  int count = soon__backend_epoll.wait(s->epoll, timeout_ms);
  if (count < 0)
    return count;
  struct io_uring_cqe *cqe;
  unsigned head, seen = 0;
  io_uring_for_each_cqe(&s->ring, head, cqe) {
    seen++;
    soon__op *op = (soon__op *)(uintptr_t)io_uring_cqe_get_data64(cqe);
    op->res = cqe->res;
    soon__op_complete(s->loop, op);
    count++;
  }
  io_uring_cq_advance(&s->ring, seen);
  return count;
}

static int opcode_of(int code) {
  switch (code) {
  case SOON__OP_READ:
    return IORING_OP_READV;
  case SOON__OP_WRITE:
    return IORING_OP_WRITEV;
  case SOON__OP_OPENAT:
    return IORING_OP_OPENAT;
  case SOON__OP_CLOSE:
    return IORING_OP_CLOSE;
  case SOON__OP_STATX:
    return IORING_OP_STATX;
  case SOON__OP_FSYNC:
    return IORING_OP_FSYNC;
  case SOON__OP_RENAMEAT:
    return IORING_OP_RENAMEAT;
  case SOON__OP_UNLINKAT:
    return IORING_OP_UNLINKAT;
  case SOON__OP_MKDIRAT:
    return IORING_OP_MKDIRAT;
  case SOON__OP_LINKAT:
    return IORING_OP_LINKAT;
  case SOON__OP_SYMLINKAT:
    return IORING_OP_SYMLINKAT;
  default:
    return -1;
  }
}

/* Prepared now, submitted with the next wait: a burst of file requests
 * made in one iteration costs one io_uring_enter. */
static int uring_submit(void *state, soon__op *op) {
  uring_state *s = state;
  int opcode = opcode_of(op->code);
  if (opcode < 0 || !s->probe || !io_uring_opcode_supported(s->probe, opcode))
    return -ENOTSUP;
  struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
  if (!sqe) { /* full: hand the kernel what we have, then there is room */
    io_uring_submit(&s->ring);
    if (!(sqe = io_uring_get_sqe(&s->ring)))
      return -EBUSY;
  }
  const struct iovec *iov = op->iov;
  switch (op->code) {
  case SOON__OP_READ:
    io_uring_prep_readv(sqe, op->fd, iov, op->niov, (uint64_t)op->off);
    break;
  case SOON__OP_WRITE:
    io_uring_prep_writev(sqe, op->fd, iov, op->niov, (uint64_t)op->off);
    break;
  case SOON__OP_OPENAT:
    io_uring_prep_openat(sqe, AT_FDCWD, op->path, op->flags, op->mode);
    break;
  case SOON__OP_CLOSE:
    io_uring_prep_close(sqe, op->fd);
    break;
  case SOON__OP_STATX:
    if (op->path)
      io_uring_prep_statx(sqe, AT_FDCWD, op->path, op->flags, STATX_BASIC_STATS,
                          op->statx);
    else
      io_uring_prep_statx(sqe, op->fd, "", op->flags | AT_EMPTY_PATH,
                          STATX_BASIC_STATS, op->statx);
    break;
  case SOON__OP_FSYNC:
    io_uring_prep_fsync(sqe, op->fd, op->flags ? IORING_FSYNC_DATASYNC : 0);
    break;
  case SOON__OP_RENAMEAT:
    io_uring_prep_renameat(sqe, AT_FDCWD, op->path, AT_FDCWD, op->path2, 0);
    break;
  case SOON__OP_UNLINKAT:
    io_uring_prep_unlinkat(sqe, AT_FDCWD, op->path, op->flags);
    break;
  case SOON__OP_MKDIRAT:
    io_uring_prep_mkdirat(sqe, AT_FDCWD, op->path, op->mode);
    break;
  case SOON__OP_LINKAT:
    io_uring_prep_linkat(sqe, AT_FDCWD, op->path, AT_FDCWD, op->path2, 0);
    break;
  case SOON__OP_SYMLINKAT:
    io_uring_prep_symlinkat(sqe, op->path, AT_FDCWD, op->path2);
    break;
  }
  io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op);
  return 0;
}

const soon__backend_ops soon__backend_uring = {
    .name = "uring",
    .init = uring_init,
    .close = uring_close,
    .watch = uring_watch,
    .unwatch = uring_unwatch,
    .wait = uring_wait,
    .submit = uring_submit,
};
