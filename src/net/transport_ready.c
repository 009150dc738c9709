/* transport_ready.c: the stream transport on readiness: the stream's fd watcher
 * says when, non-blocking syscalls move the bytes. Any fd, every backend. */
#include "net.h"

#include <limits.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/uio.h>
#include <unistd.h>

#define READ_SIZE 65536
#define READS_PER_EVENT 32 /* then give other fds their turn */

static void ready_io_cb(soon_io *io, int status, int events);

/* No state of its own: every stream it takes points here. */
static soon__transport ready = {&soon__transport_ready};

/* The watcher follows the stream's state: readable while reading or while
 * a listener takes connections, writable while connecting or while writes
 * wait. */
static inline int ready_events(const soon_stream *s) {
  int events = 0;
  if ((s->stream_flags & SOON__STREAM_READING) || soon__stream_accepting(s))
    events |= SOON_READABLE;
  if ((s->stream_flags & SOON__STREAM_CONNECTING) || soon__stream_head(s))
    events |= SOON_WRITABLE;
  return events;
}

SOON__INLINE int ready_watch(soon_stream *s) {
  int events = ready_events(s);
  /* Unchanged (nearly every write: a socket that takes it all), no call:
   * soon__stream_watch would answer 0 for it too. */
  if (events == s->io.events)
    return 0;
  return soon__stream_watch(s, events, ready_io_cb);
}

/* The table's entries (ready_watch is inlined where this file calls it). */
static int ready_watch_op(soon_stream *s) { return ready_watch(s); }
static void ready_update(soon_stream *s) { ready_watch(s); }

static int ready_open(soon_stream *s, soon_stream *server) {
  (void)server;
  s->transport = &ready;
  return 0;
}

static void ready_nothing(soon_stream *s) { (void)s; }

/* ------------------------------------------------------------ reading */

/* Read what the fd has, into the reader's buffers: the bytes read. */
SOON__INLINE size_t ready_read(soon_stream *s) {
  size_t total = 0;
  for (int i = 0; i < READS_PER_EVENT; i++) {
    if (!(s->stream_flags & SOON__STREAM_READING))
      return total; /* stopped or closed by the last callback */
    soon_buf buf;
    if (!soon__stream_alloc(s, READ_SIZE, &buf))
      return total;
    size_t want = buf.len;
    ssize_t n;
    if (SOON__CHAOS(s->loop)) {
      /* Chaos: a random prefix, or (1 in 8) a spurious EAGAIN, as a real
       * network gives, so one read is never one message. Readiness is
       * level-triggered on every backend: what is left is reported again. */
      if (soon__chaos_below(s->loop, 8) == 0) {
        soon__stream_data(s, 0, &buf);
        return total;
      }
      want = 1 + soon__chaos_below(s->loop,
                                   want > UINT_MAX ? UINT_MAX : (unsigned)want);
    }
    do
      n = read(s->io.fd, buf.base, want);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
      total += (size_t)n;
      soon__stream_data(s, n, &buf);
      if ((size_t)n < want)
        return total; /* drained: the next readiness says when there is more */
    } else if (n == 0) {
      soon__stream_end(s, SOON_EOF, &buf);
      return total;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      soon__stream_data(s, 0, &buf); /* hand the buffer back */
      return total;
    } else {
      soon__stream_end(s, -errno, &buf);
      return total;
    }
  }
  return total;
}

size_t soon__ready_read(soon_stream *s) { return ready_read(s); }

/* ------------------------------------------------------------ writing */

/* send(MSG_NOSIGNAL) keeps SIGPIPE away from sockets. A pipe(2) end has no
 * such flag: SIGPIPE is blocked in this thread around its writes, and the
 * one they raised is taken back, so the process's own disposition is never
 * touched. Once around all the writes of a send, not around each. */
static void sigpipe_block(sigset_t *old) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, old);
}

static void sigpipe_unblock(const sigset_t *old, bool raised) {
  if (raised && !sigismember(old, SIGPIPE)) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    struct timespec zero = {0, 0};
    sigtimedwait(&set, NULL, &zero);
  }
  pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* One write of up to IOV_MAX buffers (soon_buf is a struct iovec, core.h):
 * the byte count or a negative errno. Inlined into its two callers: it is
 * most of what a write costs here, and a call more would be a tenth. */
SOON__INLINE ssize_t write_bufs(soon_stream *s, const soon_buf *bufs,
                                unsigned nbufs) {
  soon_buf part;
  if (SOON__CHAOS(s->loop) && nbufs > 0 && bufs[0].len > 0) {
    /* Chaos: a random prefix of the first buffer, so writers see partial
     * writes; the rest is sent later, in order, as after a full kernel. */
    part.base = bufs[0].base;
    part.len = 1 + soon__chaos_below(s->loop, bufs[0].len > UINT_MAX
                                                  ? UINT_MAX
                                                  : (unsigned)bufs[0].len);
    bufs = &part;
    nbufs = 1;
  }
  struct iovec *iov = (struct iovec *)bufs;
  if (nbufs > IOV_MAX)
    nbufs = IOV_MAX;
  ssize_t n;
  if ((s->stream_flags & SOON__STREAM_SOCKET) && nbufs == 1) {
    /* The usual write, one buffer: no msghdr to fill. */
    do
      n = send(s->io.fd, iov->iov_base, iov->iov_len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
  } else if (s->stream_flags & SOON__STREAM_SOCKET) {
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = nbufs};
    do
      n = sendmsg(s->io.fd, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
  } else {
    do
      n = writev(s->io.fd, iov, (int)nbufs);
    while (n < 0 && errno == EINTR);
  }
  return n < 0 ? -errno : n;
}

#define SENDFILE_MAX 0x7ffff000 /* what one sendfile(2) moves at most */

ssize_t soon__ready_send_file(soon_stream *s, soon_write_req *req) {
  if (!req->file_left)
    return 0;
  size_t want = req->file_left < SENDFILE_MAX ? req->file_left : SENDFILE_MAX;
  if (SOON__CHAOS(s->loop)) /* a short send, as write_bufs makes */
    want = 1 + soon__chaos_below(s->loop, (unsigned)want);
  off_t off = (off_t)req->file_off;
  /* sendfile has no MSG_NOSIGNAL: a closed peer raises SIGPIPE, kept away
   * as for pipes. */
  sigset_t old;
  sigpipe_block(&old);
  ssize_t n;
  do
    n = sendfile(s->io.fd, req->file, &off, want);
  while (n < 0 && errno == EINTR);
  ssize_t res = n > 0 ? n : n == 0 ? -ENODATA : -errno;
  /* The peer may have gone part-way, after some bytes: short, not -EPIPE,
   * and SIGPIPE raised all the same. */
  sigpipe_unblock(&old, res != (ssize_t)want);
  return res;
}

/* Write the waiting requests in order until the kernel is full; for a
 * pipe, whether SIGPIPE was raised (sigpipe_unblock). */
SOON__INLINE bool send_waiting(soon_stream *s, bool pipe) {
  bool raised = false;
  soon_write_req *req;
  while ((req = soon__stream_head(s))) {
    ssize_t n = req->file >= 0 ? soon__ready_send_file(s, req)
                               : write_bufs(s, req->bufs, req->nbufs);
    if (n == -EAGAIN)
      break;
    if (pipe) /* a reader gone part-way raises SIGPIPE after a short write */
      raised |=
          n == -EPIPE || (req->file < 0 && n >= 0 &&
                          (size_t)n < soon__bufs_size(req->bufs, req->nbufs));
    soon__stream_sent(s, n);
  }
  return raised;
}

/* Not a socket: SIGPIPE blocked around the writes (sigpipe_block). Out of
 * line, so that the socket's path saves no registers for it. */
static __attribute__((noinline)) void send_waiting_pipe(soon_stream *s) {
  if (!soon__stream_head(s))
    return;
  sigset_t old;
  sigpipe_block(&old);
  sigpipe_unblock(&old, send_waiting(s, true));
}

static void ready_send(soon_stream *s) {
  if (s->stream_flags & SOON__STREAM_SOCKET)
    send_waiting(s, false);
  else
    send_waiting_pipe(s);
  /* What is left waits for writability: if the fd cannot be watched for it
   * (no memory to grow the backend's fd table), nothing would ever write
   * it, so it fails now rather than hang. */
  int err = ready_watch(s);
  while (err < 0 && soon__stream_head(s))
    soon__stream_sent(s, err);
}

ssize_t soon__ready_try_write(soon_stream *s, const soon_buf *bufs,
                              unsigned nbufs) {
  if (s->stream_flags & SOON__STREAM_SOCKET)
    return write_bufs(s, bufs, nbufs);
  sigset_t old;
  sigpipe_block(&old);
  ssize_t n = write_bufs(s, bufs, nbufs);
  sigpipe_unblock(&old,
                  n == -EPIPE ||
                      (n >= 0 && (size_t)n < soon__bufs_size(bufs, nbufs)));
  return n;
}

/* ------------------------------------------------------------ connecting */

static int ready_connect(soon_stream *s, const struct sockaddr *addr,
                         unsigned len) {
  return soon__stream_connect_now(s, addr, len, ready_watch_op);
}

/* ------------------------------------------------------------ accepting */

static void ready_accept(soon_stream *s) {
  while (soon__stream_accepting(s)) {
    int fd = accept4(s->io.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      soon__stream_accepted(s, fd);
      continue;
    }
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK)
      return;
    if (err == EINTR || err == ECONNABORTED)
      continue;
    bool out_of_fds = err == EMFILE || err == ENFILE;
    if (out_of_fds)
      soon__drop_connections(s->io.fd);
    soon__stream_accepted(s, -err);
    if (out_of_fds)
      return;
  }
  ready_watch(s); /* a connection waits for soon_accept: pause */
}

/* ------------------------------------------------------------ dispatch */

/* An fd closed behind the stream's back, a connect, a listener: out of
 * line, so that a connection's read and write path stays lean. */
static __attribute__((noinline)) void ready_io_rare(soon_stream *s, int status,
                                                    int events) {
  if (status < 0) /* the fd was closed behind our back */
    events = SOON_READABLE | SOON_WRITABLE;
  if (s->stream_flags & SOON__STREAM_CONNECTING) {
    int err = soon__connect_result(s->io.fd);
    if (err != -EINPROGRESS) /* else a spurious wakeup */
      soon__stream_connected(s, err);
    return; /* reads and writes start on the next readiness */
  }
  if ((events & SOON_READABLE) && (s->stream_flags & SOON__STREAM_LISTENING))
    ready_accept(s);
  else if (events & SOON_READABLE)
    ready_read(s);
  if ((events & SOON_WRITABLE) && s->io.fd >= 0 && soon__stream_head(s))
    soon__stream_writable(s);
}

static void ready_io_cb(soon_io *io, int status, int events) {
  soon_stream *s = soon__container_of(io, soon_stream, io);
  if (__builtin_expect(status < 0 ||
                           (s->stream_flags &
                            (SOON__STREAM_CONNECTING | SOON__STREAM_LISTENING)),
                       0)) {
    ready_io_rare(s, status, events);
    return;
  }
  if (events & SOON_READABLE)
    ready_read(s);
  if ((events & SOON_WRITABLE) && s->io.fd >= 0 && soon__stream_head(s))
    soon__stream_writable(s);
}

const soon__transport_ops soon__transport_ready = {
    .open = ready_open,
    .read_start = ready_watch_op,
    .read_stop = ready_update,
    .send = ready_send,
    .try_write = soon__ready_try_write,
    .connect = ready_connect,
    .listen = ready_watch_op,
    .accept_resume = ready_update,
    .close = ready_nothing, /* the stream stops the watcher itself */
    .free = ready_nothing,
};
