/* uring.c: the io_uring backend. The loop sleeps in the ring; readiness is a
 * one-shot poll request per watched fd, and sockets and files run natively. */
#include "backend.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Everything prepared during an iteration (re-armed polls, sends, receives,
 * file requests) reaches the kernel in the one io_uring_enter that also
 * waits for the next completions: a ping-pong costs one syscall a turn.
 *
 * A one-shot poll, re-armed after it fires, gives the level-triggered
 * readiness of the other backends: at arm time the kernel checks the fd's
 * state, so data left unread is reported again. Multishot poll would save
 * the re-arm but is edge-like. Receives and accepts, which consume what they
 * report, are multishot.
 *
 * struct io_uring is read directly only where liburing 2.3 has no call for
 * it, and only fields no one else writes: ring_fd, flags, features and
 * sq.sqes, sq.ring_mask, sq.ring_entries are set by io_uring_queue_init and
 * never change; sq.sqe_tail is liburing's own index, moved only by
 * io_uring_get_sqe on this thread. The indices the kernel shares (the SQ
 * head, the CQ head and tail) are read only through liburing
 * (io_uring_sq_ready, io_uring_cq_ready, io_uring_for_each_cqe), which
 * orders each load as it needs. */

enum {
  RING_ENTRIES = 1024,
  CQ_ENTRIES = 16384, /* see uring_setup */
  BUF_GROUP = 0,
  BUF_COUNT = 64,   /* a power of two */
  BUF_SIZE = 65536, /* 4 MiB of buffers per loop, shared by every socket */
};

/* Linux 6.9's opcode, newer than liburing 2.3's list; the probe says
 * whether this kernel has it. */
enum { URING_OP_FTRUNCATE = 55 };

/* Linux 6.12's incremental buffers, also newer than liburing 2.3: a
 * receive takes only what it fills of a buffer, and a completion flagged
 * BUF_MORE leaves the rest of it in the ring for the next. */
enum { URING_PBUF_RING_INC = 2, URING_CQE_F_BUF_MORE = 1u << 4 };

/* user_data: an op's address, or with bit 0 set a poll (generation and fd),
 * or an op's address with bit 1 set for an op cancelled before submission
 * (its SQE became a no-op). 0: nothing to report (a poll removal). */
enum { TAG_POLL = 1, TAG_CANCELLED = 2 };

typedef struct fd_state {
  uint8_t want;  /* interest, SOON__IO_* bits; 0 = not watched */
  uint8_t armed; /* the poll mask in flight, 0 = none */
  uint32_t gen;  /* bumped on each removal, so stale reports are dropped */
} fd_state;

typedef struct uring_state {
  struct soon_loop *loop;
  struct io_uring ring;
  struct io_uring_probe *probe; /* which ops this kernel runs natively */
  fd_state *fds;
  size_t nfds;
  unsigned can;   /* bit per SOON__OP_* code run natively */
  bool net_asked; /* socket ops decided (they join can all at once) */
  struct io_uring_buf_ring *br; /* the provided buffers' ring */
  char *bufs;                   /* BUF_COUNT buffers of BUF_SIZE */
  void *bufs_mem;               /* what was allocated for them */
  uint32_t used[BUF_COUNT];     /* bytes of each buffer handed out */
  uint16_t recycle[BUF_COUNT];  /* given back by the last wait */
  unsigned nrecycle;
  struct msghdr *msgs; /* one per SQ slot, for sendmsg */
  bool enabled;        /* bound to the loop's thread (bind_ring) */
} uring_state;

static int uring_setup(uring_state *s) {
  if (getenv("SOON_URING_FAIL")) /* test hook: behave as a refusing kernel */
    return -ENOSYS;
  /* DEFER_TASKRUN: the kernel finishes receives and sends only when the
   * loop enters it to wait, in one batch, instead of interrupting the loop
   * for each (measured in docs/uring.md). It needs SINGLE_ISSUER, one
   * thread per ring: created disabled, the ring is bound to the first
   * thread that runs the loop, not the one that made it. Not SQPOLL: a
   * kernel thread spinning on the SQ costs a core to save the one syscall
   * an iteration makes anyway. A CQ 16 times the SQ (256 KiB): stopping
   * many watchers leaves a completion each for later iterations, and a CQ
   * that overflows makes the kernel queue and copy them slowly (chain-10000
   * docs/uring.md); its cancel hash table also grows with it. */
  struct io_uring_params p = {
      .flags = IORING_SETUP_R_DISABLED | IORING_SETUP_SINGLE_ISSUER |
               IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
               IORING_SETUP_CQSIZE,
      .cq_entries = CQ_ENTRIES};
  int err = io_uring_queue_init_params(RING_ENTRIES, &s->ring, &p);
  if (err == -EINVAL) { /* before Linux 6.1: task work interrupts the loop */
    p = (struct io_uring_params){.flags = IORING_SETUP_CQSIZE,
                                 .cq_entries = CQ_ENTRIES};
    err = io_uring_queue_init_params(RING_ENTRIES, &s->ring, &p);
  }
  return err;
}

/* Enter the kernel only from the loop's thread (soon__loop_bind: the first
 * one to run it, or to fill the SQ before that), which the ring is bound to
 * on its first entry. Any other gets -EEXIST, every time, not only when the
 * kernel would notice. */
static int bind_ring(uring_state *s) {
  int err = soon__loop_bind(s->loop);
  if (err || s->enabled)
    return err;
  /* liburing 2.3 declares io_uring_enable_rings but does not export it. */
  if (s->ring.flags & IORING_SETUP_R_DISABLED &&
      syscall(__NR_io_uring_register, s->ring.ring_fd,
              IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0)
    return -errno;
  s->enabled = true;
  return 0;
}

static struct io_uring_sqe *get_sqe(uring_state *s) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
  /* Full: hand the kernel what we have. Before the first wait this binds
   * the ring to the thread setting up so much (docs/uring.md). */
  if (!sqe && bind_ring(s) == 0) {
    io_uring_submit(&s->ring);
    sqe = io_uring_get_sqe(&s->ring);
  }
  return sqe;
}

static int opcode_of(int code);

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
  for (int code = SOON__OP_READ; code < SOON__OP_RECV; code++)
    if (s->probe && io_uring_opcode_supported(s->probe, opcode_of(code)))
      s->can |= 1u << code;
  s->loop = loop;
  *state = s;
  return 0;
}

static void uring_close(void *state) {
  uring_state *s = state;
  io_uring_queue_exit(&s->ring); /* also drops the buffer ring */
  if (s->probe)
    io_uring_free_probe(s->probe);
  if (s->br)
    munmap(s->br, BUF_COUNT * sizeof(struct io_uring_buf));
  free(s->bufs_mem);
  free(s->msgs);
  free(s->fds);
  free(s);
}

/* ------------------------------------------------------------ readiness */

static uint64_t poll_tag(int fd, uint32_t gen) {
  return (uint64_t)gen << 32 | (uint64_t)(uint32_t)fd << 1 | TAG_POLL;
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
    if (s->ring.features & IORING_FEAT_CQE_SKIP) /* the removed poll reports */
      sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  }
  f->armed = 0;
  f->gen++;
}

static int uring_watch(void *state, int fd, int old, int events) {
  uring_state *s = state;
  (void)old; /* what is armed, not what was asked, decides */
  if (fd < 0)
    return -EINVAL;
  fd_state *fds = soon__grow(s->fds, &s->nfds, (size_t)fd + 1, sizeof *fds, 64);
  if (!fds)
    return -ENOMEM;
  s->fds = fds;
  fd_state *f = &fds[fd];
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
  if (armed && s->enabled && bind_ring(s) == 0) /* else not in the kernel yet */
    io_uring_submit(&s->ring);
}

static int report(uring_state *s, uint64_t tag, int res) {
  int fd = (int)((uint32_t)tag >> 1);
  uint32_t gen = (uint32_t)(tag >> 32);
  if ((size_t)fd >= s->nfds || s->fds[fd].gen != gen)
    return 0; /* removed since */
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
  /* Re-armed now, submitted with the next wait, after the loop has
   * dispatched this report: data left unread is reported again. */
  if (want && ev != SOON__IO_BADFD)
    arm(s, fd);
  if (!ev)
    return 0;
  soon__io_ready(s->loop, fd, ev);
  return 1;
}

/* ------------------------------------------------------------ buffers */

/* Receives take a buffer from a ring the kernel shares with us, only when
 * data arrives: an idle connection holds none. Incremental where the kernel
 * has it: small receives share a 64 KiB buffer instead of taking one each,
 * and a large one takes up to 64 KiB in one completion (one tcp_recvmsg,
 * one window update, where 16 KiB buffers made four). */
static int buffers_init(uring_state *s) {
  size_t ring_size = BUF_COUNT * sizeof(struct io_uring_buf);
  void *br = mmap(NULL, ring_size, PROT_READ | PROT_WRITE,
                  MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (br == MAP_FAILED)
    return -ENOMEM;
  s->br = br;
  /* Page-aligned: the kernel's copy into a buffer ran at a fraction of its
   * speed at malloc's 16-byte offset into its mmap (perf: _copy_to_iter 54 %
   * of pump-1, 22 % aligned; 4.6-7.1 Gbit/s, 11.6-12.4 aligned;
   * docs/uring.md). Aligned by hand: tests/test_nomem.c fails and counts
   * every malloc, which aligned_alloc would bypass. */
  s->bufs_mem = malloc((size_t)BUF_COUNT * BUF_SIZE + 4095);
  s->bufs = s->bufs_mem
                ? (char *)(((uintptr_t)s->bufs_mem + 4095) & ~(uintptr_t)4095)
                : NULL;
  s->msgs = calloc(s->ring.sq.ring_entries, sizeof *s->msgs);
  if (!s->bufs || !s->msgs)
    return -ENOMEM;
  io_uring_buf_ring_init(s->br);
  struct io_uring_buf_reg reg = {.ring_addr = (uintptr_t)s->br,
                                 .ring_entries = BUF_COUNT,
                                 .bgid = BUF_GROUP};
  reg.pad = URING_PBUF_RING_INC; /* the field newer headers call flags */
  int err = io_uring_register_buf_ring(&s->ring, &reg, 0);
  if (err == -EINVAL) { /* before Linux 6.12: a buffer per receive */
    reg.pad = 0;
    err = io_uring_register_buf_ring(&s->ring, &reg, 0);
  }
  if (err)
    return err;
  for (unsigned i = 0; i < BUF_COUNT; i++)
    io_uring_buf_ring_add(s->br, s->bufs + (size_t)i * BUF_SIZE, BUF_SIZE,
                          (unsigned short)i, io_uring_buf_ring_mask(BUF_COUNT),
                          (int)i);
  io_uring_buf_ring_advance(s->br, BUF_COUNT);
  return 0;
}

/* The loop has dispatched every chunk the last wait handed out: give their
 * buffers back to the kernel (memory writes, no syscall). */
static void buffers_recycle(uring_state *s) {
  for (unsigned i = 0; i < s->nrecycle; i++) {
    unsigned bid = s->recycle[i];
    s->used[bid] = 0;
    io_uring_buf_ring_add(s->br, s->bufs + (size_t)bid * BUF_SIZE, BUF_SIZE,
                          (unsigned short)bid,
                          io_uring_buf_ring_mask(BUF_COUNT), (int)i);
  }
  io_uring_buf_ring_advance(s->br, (int)s->nrecycle);
  s->nrecycle = 0;
}

/* Socket ops need multishot receive and the sync cancel that close relies
 * on (Linux 6.0; SEND_ZC came with them and is what the probe can see), and
 * a registered buffer ring. Without them sockets use readiness. Decided
 * when first asked: a loop without sockets spends no buffers. */
static void net_decide(uring_state *s) {
  s->net_asked = true;
  if (s->probe && io_uring_opcode_supported(s->probe, IORING_OP_SEND_ZC) &&
      !getenv("SOON_URING_NO_NET") /* test hook */ && buffers_init(s) == 0)
    s->can |= 1u << SOON__OP_RECV | 1u << SOON__OP_SEND |
              1u << SOON__OP_ACCEPT | 1u << SOON__OP_CONNECT;
}

/* ------------------------------------------------------------ waiting */

static int uring_wait(void *state, int timeout_ms) {
  uring_state *s = state;
  struct io_uring_cqe *cqe;
  int r = bind_ring(s);
  if (r)
    return r;
  if (s->nrecycle)
    buffers_recycle(s);
  if (io_uring_cq_ready(&s->ring))
    timeout_ms = 0; /* left over from the last wait */
  if (timeout_ms == 0) {
    r = io_uring_submit(&s->ring); /* enters if completions wait */
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
    uint64_t tag = io_uring_cqe_get_data64(cqe);
    if (tag & TAG_POLL) {
      count += report(s, tag, cqe->res);
    } else if (tag) {
      soon__op *op = (soon__op *)(uintptr_t)(tag & ~(uint64_t)TAG_CANCELLED);
      int64_t res = tag & TAG_CANCELLED ? -ECANCELED : cqe->res;
      void *data = NULL;
      unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
      if (cqe->flags & IORING_CQE_F_BUFFER)
        data = s->bufs + (size_t)bid * BUF_SIZE + s->used[bid];
      if (soon__op_complete(s->loop, op, res, data,
                            cqe->flags & IORING_CQE_F_MORE) < 0)
        break; /* the loop's queue is full: the rest waits for next time */
      if (data && res > 0)
        s->used[bid] += (uint32_t)res;
      if (data && !(cqe->flags & URING_CQE_F_BUF_MORE))
        s->recycle[s->nrecycle++] = (uint16_t)bid;
      count++;
    }
    seen++;
  }
  io_uring_cq_advance(&s->ring, seen);
  return count;
}

/* ------------------------------------------------------------ native ops */

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
  case SOON__OP_FTRUNCATE:
    return URING_OP_FTRUNCATE;
  case SOON__OP_RECV:
    return IORING_OP_RECV;
  case SOON__OP_SEND:
    return IORING_OP_SENDMSG;
  case SOON__OP_ACCEPT:
    return IORING_OP_ACCEPT;
  case SOON__OP_CONNECT:
    return IORING_OP_CONNECT;
  default:
    return -1;
  }
}

static int uring_can(void *state, int code) {
  uring_state *s = state;
  if (code >= SOON__OP_RECV && !s->net_asked)
    net_decide(s);
  return code > 0 && code < 32 && (s->can >> code & 1);
}

/* Prepared now, submitted with the next wait. */
static int uring_submit(void *state, soon__op *op) {
  uring_state *s = state;
  if (op->code <= 0 || op->code >= 32 || !(s->can >> op->code & 1))
    return -ENOTSUP;
  struct io_uring_sqe *sqe = get_sqe(s);
  if (!sqe)
    return -EBUSY;
  switch (op->code) {
  case SOON__OP_READ:
    io_uring_prep_readv(sqe, op->rw.fd, op->rw.iov, op->rw.niov,
                        (uint64_t)op->rw.off);
    break;
  case SOON__OP_WRITE:
    io_uring_prep_writev(sqe, op->rw.fd, op->rw.iov, op->rw.niov,
                         (uint64_t)op->rw.off);
    break;
  case SOON__OP_OPENAT:
    io_uring_prep_openat(sqe, AT_FDCWD, op->open.path, op->open.flags,
                         op->open.mode);
    break;
  case SOON__OP_CLOSE:
    io_uring_prep_close(sqe, op->fd.fd);
    break;
  case SOON__OP_STATX:
    if (op->statx.path)
      io_uring_prep_statx(sqe, AT_FDCWD, op->statx.path, op->statx.flags,
                          STATX_BASIC_STATS, op->statx.buf);
    else
      io_uring_prep_statx(sqe, op->statx.fd, "",
                          op->statx.flags | AT_EMPTY_PATH, STATX_BASIC_STATS,
                          op->statx.buf);
    break;
  case SOON__OP_FSYNC:
    io_uring_prep_fsync(sqe, op->fsync.fd,
                        op->fsync.datasync ? IORING_FSYNC_DATASYNC : 0);
    break;
  case SOON__OP_RENAMEAT:
    io_uring_prep_renameat(sqe, AT_FDCWD, op->path2.path, AT_FDCWD,
                           op->path2.path2, 0);
    break;
  case SOON__OP_UNLINKAT:
    io_uring_prep_unlinkat(sqe, AT_FDCWD, op->unlink.path, op->unlink.flags);
    break;
  case SOON__OP_MKDIRAT:
    io_uring_prep_mkdirat(sqe, AT_FDCWD, op->mkdir.path, op->mkdir.mode);
    break;
  case SOON__OP_LINKAT:
    io_uring_prep_linkat(sqe, AT_FDCWD, op->path2.path, AT_FDCWD,
                         op->path2.path2, 0);
    break;
  case SOON__OP_SYMLINKAT:
    io_uring_prep_symlinkat(sqe, op->path2.path, AT_FDCWD, op->path2.path2);
    break;
  case SOON__OP_FTRUNCATE:
    io_uring_prep_rw(URING_OP_FTRUNCATE, sqe, op->ftruncate.fd, NULL, 0,
                     (uint64_t)op->ftruncate.length);
    break;
  case SOON__OP_RECV:
    io_uring_prep_recv_multishot(sqe, op->fd.fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    break;
  case SOON__OP_SEND: {
    /* WAITALL: a stream socket's send goes on after a short write, in the
     * kernel. One buffer (a ping-pong's) goes by plain send: sendmsg's
     * msghdr and iovec copies and imports were 2 % of a ping-pong's CPU
     * (perf, docs/uring.md). */
    const struct iovec *iov = op->rw.iov;
    if (op->rw.niov == 1 && iov->iov_len <= INT_MAX) { /* sqe->len: 32 bits */
      io_uring_prep_send(sqe, op->rw.fd, iov->iov_base, iov->iov_len,
                         MSG_NOSIGNAL | MSG_WAITALL);
      break;
    }
    /* The kernel copies the msghdr when it takes the SQE
     * (IORING_FEAT_SUBMIT_STABLE), so one per SQ slot is enough. */
    struct msghdr *msg = &s->msgs[sqe - s->ring.sq.sqes];
    *msg = (struct msghdr){.msg_iov = (struct iovec *)op->rw.iov,
                           .msg_iovlen = op->rw.niov};
    io_uring_prep_sendmsg(sqe, op->rw.fd, msg, MSG_NOSIGNAL | MSG_WAITALL);
    break;
  }
  case SOON__OP_ACCEPT:
    io_uring_prep_multishot_accept(sqe, op->fd.fd, NULL, NULL,
                                   SOCK_NONBLOCK | SOCK_CLOEXEC);
    break;
  case SOON__OP_CONNECT:
    io_uring_prep_connect(sqe, op->connect.fd, op->connect.addr,
                          op->connect.addrlen);
    break;
  }
  io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op);
  return 0;
}

/* Not yet submitted: the SQE becomes a no-op that reports -ECANCELED. Else
 * the kernel cancels it now, if it is waiting (not running). */
static int uring_cancel(void *state, soon__op *op) {
  uring_state *s = state;
  uint64_t tag = (uint64_t)(uintptr_t)op;
  /* The SQEs the kernel has not taken: the last io_uring_sq_ready ones up
   * to liburing's tail. Not SQPOLL, so the kernel takes them only inside
   * io_uring_enter, on this thread: none is taken while we look. */
  struct io_uring_sq *sq = &s->ring.sq;
  for (unsigned i = sq->sqe_tail - io_uring_sq_ready(&s->ring);
       i != sq->sqe_tail; i++) {
    struct io_uring_sqe *sqe = &sq->sqes[i & sq->ring_mask];
    if (sqe->user_data == tag) {
      io_uring_prep_nop(sqe);
      io_uring_sqe_set_data64(sqe, tag | TAG_CANCELLED);
      return 0;
    }
  }
  struct io_uring_sync_cancel_reg reg = {.addr = tag};
  return io_uring_register_sync_cancel(&s->ring, &reg) == 0 ? 0 : -EBUSY;
}

const soon__backend_ops soon__backend_uring = {
    .name = "uring",
    .init = uring_init,
    .close = uring_close,
    .watch = uring_watch,
    .unwatch = uring_unwatch,
    .wait = uring_wait,
    .can = uring_can,
    .submit = uring_submit,
    .cancel = uring_cancel,
};
