/* uring.c: the io_uring backend. Readiness is a one-shot poll per watched fd,
 * re-armed after each report, and every change rides in the next loop
 * iteration's single submit. */
#include "backend.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A one-shot poll, re-armed after it fires, gives the level-triggered
 * semantics of the other backends: at arm time the kernel checks the fd's
 * current state, so unread data is reported again. Multishot poll would
 * save the re-arm but is edge-like: data left unread is never reported
 * again, which the stream layer's bounded reads rely on. */

enum { RING_ENTRIES = 1024 };

typedef struct fd_state {
  uint8_t want;  /* interest, SOON__IO_* bits; 0 = not watched */
  uint8_t armed; /* the poll mask in flight, 0 = none */
  uint32_t gen;  /* bumped on each cancel, so stale completions are dropped */
} fd_state;

typedef struct uring_state {
  struct soon_loop *loop;
  struct io_uring ring;
  struct io_uring_probe *probe; /* which ops this kernel runs natively */
  fd_state *fds;
  size_t nfds;
} uring_state;

/* user_data of a poll: generation, fd, and bit 0 set. 0 marks the
 * completions of poll removals, which carry nothing to report. */
static uint64_t poll_tag(int fd, uint32_t gen) {
  return (uint64_t)gen << 32 | (uint64_t)(uint32_t)fd << 1 | 1;
}

static struct io_uring_sqe *get_sqe(uring_state *s) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
  if (!sqe) { /* full: hand the kernel what we have, then there is room */
    io_uring_submit(&s->ring);
    sqe = io_uring_get_sqe(&s->ring);
  }
  return sqe;
}

static int uring_setup(uring_state *s) {
  if (getenv("SOON_URING_FAIL")) /* test hook: behave as a refusing kernel */
    return -ENOSYS;
  /* COOP_TASKRUN: completions are processed when we enter the kernel anyway,
   * not by interrupting the loop thread. SINGLE_ISSUER/DEFER_TASKRUN would
   * tie the ring to the thread that made it, but a loop may be made in one
   * thread and run in another. */
  int err = io_uring_queue_init(RING_ENTRIES, &s->ring,
                                IORING_SETUP_COOP_TASKRUN |
                                    IORING_SETUP_TASKRUN_FLAG);
  if (err == -EINVAL) /* a kernel older than 5.19 */
    err = io_uring_queue_init(RING_ENTRIES, &s->ring, 0);
  return err;
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
  s->probe = io_uring_get_probe_ring(&s->ring);
  s->loop = loop;
  *state = s;
  return 0;
}

static void uring_close(void *state) {
  uring_state *s = state;
  io_uring_queue_exit(&s->ring);
  if (s->probe)
    io_uring_free_probe(s->probe);
  free(s->fds);
  free(s);
}

static int grow(uring_state *s, int fd) {
  size_t need = (size_t)fd + 1, n = s->nfds ? s->nfds : 64;
  if (need <= s->nfds)
    return 0;
  while (n < need)
    n *= 2;
  fd_state *p = realloc(s->fds, n * sizeof *p);
  if (!p)
    return -ENOMEM;
  memset(p + s->nfds, 0, (n - s->nfds) * sizeof *p);
  s->fds = p;
  s->nfds = n;
  return 0;
}

static unsigned poll_mask(int events) {
  return (events & SOON__IO_READ ? POLLIN : 0) |
         (events & SOON__IO_WRITE ? POLLOUT : 0) |
         (events & SOON__IO_HUP ? POLLRDHUP : 0);
}

static int arm(uring_state *s, int fd) {
  struct io_uring_sqe *sqe = get_sqe(s);
  if (!sqe)
    return -EBUSY;
  fd_state *f = &s->fds[fd];
  io_uring_prep_poll_add(sqe, fd, poll_mask(f->want));
  io_uring_sqe_set_data64(sqe, poll_tag(fd, f->gen));
  f->armed = f->want;
  return 0;
}

static void disarm(uring_state *s, int fd) {
  fd_state *f = &s->fds[fd];
  if (!f->armed)
    return;
  struct io_uring_sqe *sqe = get_sqe(s);
  if (sqe) {
    io_uring_prep_poll_remove(sqe, poll_tag(fd, f->gen));
    io_uring_sqe_set_data64(sqe, 0);
  }
  f->armed = 0;
  f->gen++;
}

static int uring_watch(void *state, int fd, int events) {
  uring_state *s = state;
  if (fd < 0)
    return -EINVAL;
  int err = grow(s, fd);
  if (err)
    return err;
  fd_state *f = &s->fds[fd];
  f->want = (uint8_t)events;
  if (f->armed == f->want)
    return 0;
  disarm(s, fd);
  return arm(s, fd);
}

/* The armed poll holds a reference on the file: submit its removal now, or
 * a socket closed right after would stay open until the next wait. */
static void uring_unwatch(void *state, int fd) {
  uring_state *s = state;
  if (fd < 0 || (size_t)fd >= s->nfds)
    return;
  bool armed = s->fds[fd].armed != 0;
  disarm(s, fd);
  s->fds[fd].want = 0;
  if (armed)
    io_uring_submit(&s->ring);
}

static int report(uring_state *s, uint64_t tag, int res) {
  int fd = (int)(uint32_t)(tag & 0xffffffffu) >> 1;
  uint32_t gen = (uint32_t)(tag >> 32);
  if ((size_t)fd >= s->nfds || s->fds[fd].gen != gen)
    return 0; /* cancelled since */
  fd_state *f = &s->fds[fd];
  f->armed = 0;
  int want = f->want, ev = 0;
  if (res == -EBADF) {
    ev = SOON__IO_BADFD;
  } else if (res < 0) {
    if (want) /* -ECANCELED, -ENOMEM...: just try again */
      arm(s, fd);
    return 0;
  } else {
    if (res & POLLIN)
      ev |= SOON__IO_READ;
    if (res & POLLOUT)
      ev |= SOON__IO_WRITE;
    if (res & (POLLRDHUP | POLLHUP))
      ev |= SOON__IO_HUP;
    if (res & (POLLERR | POLLHUP)) /* surfaced by the next read or write */
      ev |= SOON__IO_READ | SOON__IO_WRITE;
    if (res & POLLNVAL)
      ev = SOON__IO_BADFD;
    ev &= want | SOON__IO_BADFD;
  }
  /* Re-arm now: it is submitted with the next wait, after the loop has
   * dispatched this report, so data left unread is reported again. */
  if (want && ev != SOON__IO_BADFD)
    arm(s, fd);
  if (!ev)
    return 0;
  soon__io_ready(s->loop, fd, ev);
  return 1;
}

static int uring_wait(void *state, int timeout_ms) {
  uring_state *s = state;
  struct io_uring_cqe *cqe;
  int r;
  if (timeout_ms == 0) {
    r = io_uring_submit(&s->ring);
  } else if (timeout_ms > 0) {
    struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
                                   .tv_nsec = (timeout_ms % 1000) * 1000000L};
    r = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
  } else {
    r = io_uring_submit_and_wait(&s->ring, 1);
  }
  if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY)
    return r;

  int count = 0;
  unsigned head, seen = 0;
  io_uring_for_each_cqe(&s->ring, head, cqe) {
    seen++;
    uint64_t tag = io_uring_cqe_get_data64(cqe);
    if (tag & 1) {
      count += report(s, tag, cqe->res);
    } else if (tag) {
      soon__op *op = (soon__op *)(uintptr_t)tag;
      op->res = cqe->res;
      soon__op_complete(s->loop, op);
      count++;
    }
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
  struct io_uring_sqe *sqe = get_sqe(s);
  if (!sqe)
    return -EBUSY;
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
