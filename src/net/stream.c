/* stream.c: what tcp, pipe and tty share: reads, queued vectored writes,
 * shutdown, connect, listen and accept, on the readiness of one internal fd
 * watcher, or for sockets on io_uring as native ops in the ring. */
#include "net.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define READ_SIZE 65536
#define READS_PER_EVENT 32 /* then give other fds their turn */
#define WRITE_ROUNDS 8     /* of write callbacks per call: see run_write_done */
#define ACCEPT_BACKLOG 64  /* accepted, not yet taken: then stop accepting */

/* A socket stream on a completion backend runs in the ring: one multishot
 * receive (or accept) and one send (or connect) at a time. Allocated when
 * the stream gets its fd, so a tcp handle stays small on other backends. */
struct soon__stream_native {
  soon_stream *stream;
  soon__op rop; /* the multishot receive, or accept on a listener */
  soon__op wop; /* the send of the head write, or the connect */
  bool rarmed;  /* each until its op's last report */
  bool warmed;
  struct iovec *iov; /* the queued writes' buffers, gathered for one send */
  unsigned iov_cap;
  /* Received while not reading (after a read_stop, before the cancel
   * landed), or with no buffer to take it: told on the next read_start (or
   * the next iteration), before anything newer. The receive is cancelled
   * when bytes go here, and armed again only once they are all told, so
   * the stash holds at most what reached the loop before one cancel: the
   * kernel receives only into the loop's buffer ring (4 MiB, uring.c), and
   * gets those buffers back at the next wait, after we copied them. That is
   * the bound on what soon holds for a stream, whatever its reader does; a
   * receive armed again with bytes still stashed grew it by up to the ring
   * each stop/start cycle, without limit (docs/uring.md). */
  char *stash;
  size_t stash_off, stash_len, stash_cap;
  int stash_end; /* then this: 0, SOON_EOF or an error */
  /* Accepted connections behind accepted_fd, oldest first. */
  int *accepted;
  unsigned naccepted, accepted_cap;
  /* The stash or the accepted queue, told in the poll phase as readiness
   * would tell them (native_told). */
  soon__pending feed;
};

static void stream_io_cb(soon_io *io, int status, int events);
static void stream_pending_cb(soon__pending *p);
static void native_read_done(soon__op *op);
static void native_told(soon__pending *p);
static void native_write_done(soon__op *op);
static int native_arm(soon_stream *s, int code);
static void native_accept_resume(soon_stream *s);
static const soon__handle_ops stream_ops = {.close = soon__stream_close,
                                            .finish = soon__stream_finish};

void soon__stream_init(soon_loop *loop, soon_stream *s, soon_handle_type type) {
  soon__handle_init(loop, (soon_handle *)s, type, &stream_ops);
  soon__io_init_internal(loop, &s->io, -1);
  s->alloc_cb = NULL;
  s->read_cb = NULL;
  s->connection_cb = NULL;
  soon__queue_init(&s->write_queue);
  soon__queue_init(&s->write_done);
  s->write_queue_size = 0;
  s->connect_req = NULL;
  s->shutdown_req = NULL;
  soon__queue_init(&s->pending.queue);
  s->pending.cb = stream_pending_cb;
  s->accepted_fd = -1;
  s->stream_flags = 0;
  s->native = NULL;
}

/* The stream claims fd in the loop's fd table until it is closed, reading
 * or not, on every backend (soon__io_claim says why): soon_io on it, or
 * another stream, gets -EEXIST. */
int soon__stream_open(soon_stream *s, int fd) {
  if (s->io.fd >= 0)
    return -EBUSY;
  struct stat st;
  if (fstat(fd, &st) < 0)
    return -errno;
  int err = soon__io_claim(&s->io, fd);
  if (err)
    return err;
  if (S_ISSOCK(st.st_mode))
    s->stream_flags |= SOON__STREAM_SOCKET;
  /* Sockets go native when the backend runs socket ops in the ring (all of
   * them, backend.h); without the memory they simply use readiness. */
  if (S_ISSOCK(st.st_mode) && soon__op_can(s->loop, SOON__OP_RECV) &&
      (s->native = calloc(1, sizeof *s->native))) {
    s->native->stream = s;
    s->native->rop.fd = s->native->wop.fd = fd;
    s->native->rop.done = native_read_done;
    s->native->wop.done = native_write_done;
    soon__queue_init(&s->native->feed.queue);
    s->native->feed.cb = native_told;
  }
  return 0;
}

/* Undo soon__stream_open on a stream nothing has used yet, for a caller
 * whose later step failed: the fd is the caller's again, still open. */
void soon__stream_unopen(soon_stream *s) {
  soon__io_release(&s->io);
  s->io.fd = -1;
  s->stream_flags &= ~SOON__STREAM_SOCKET;
  free(s->native);
  s->native = NULL;
}

/* The fd watcher follows the stream's state: readable while reading or
 * listening (and no accepted connection waits for soon_accept), writable
 * while connecting or while writes are queued. */
int soon__stream_update(soon_stream *s) {
  unsigned f = s->stream_flags;
  int events = 0;
  if (s->native) {
    /* Readiness only for a connect(2) in progress, and for a listener out
     * of fds: the ring's accept fails at once without a free fd, even
     * with nobody connecting, so it waits for a connection first. */
    if ((f & SOON__STREAM_CONNECTING) && !s->native->warmed)
      events = SOON_WRITABLE;
    if ((f & SOON__STREAM_LISTENING) && !s->native->rarmed &&
        s->accepted_fd < 0)
      events = SOON_READABLE;
  } else {
    if ((f & SOON__STREAM_READING) ||
        ((f & SOON__STREAM_LISTENING) && s->accepted_fd < 0))
      events |= SOON_READABLE;
    if ((f & SOON__STREAM_CONNECTING) || !soon__queue_empty(&s->write_queue))
      events |= SOON_WRITABLE;
  }
  if (s->io.fd < 0)
    return 0;
  if (!events)
    return soon_io_stop(&s->io);
  if (events == s->io.events)
    return 0;
  return soon_io_start(&s->io, events, stream_io_cb);
}

/* Never once closing: what a closing stream owes is told by its finish,
 * and its memory may be gone after the close callback. */
static void defer(soon_stream *s) {
  if (!soon_is_closing((soon_handle *)s))
    soon__pending_push(s->loop, &s->pending);
}

/* ------------------------------------------------------------ reading */

static int native_read_start(soon_stream *s);

static void read_stop(soon_stream *s) {
  s->stream_flags &= ~SOON__STREAM_READING;
  if (!(s->stream_flags & SOON__STREAM_LISTENING))
    soon__handle_stop((soon_handle *)s);
  /* A receive left in the ring would keep taking data in: stop it. */
  if (s->native && s->native->rarmed)
    soon__op_cancel(s->loop, &s->native->rop);
  soon__stream_update(s);
}

int soon_read_start(soon_stream *s, soon_alloc_cb alloc_cb,
                    soon_read_cb read_cb) {
  if (!s || !alloc_cb || !read_cb || soon_is_closing((soon_handle *)s))
    return -EINVAL;
  if (s->io.fd < 0)
    return -ENOTCONN;
  if (s->stream_flags & SOON__STREAM_READING)
    return -EALREADY;
  s->alloc_cb = alloc_cb;
  s->read_cb = read_cb;
  s->stream_flags |= SOON__STREAM_READING;
  int err = s->native ? native_read_start(s) : soon__stream_update(s);
  if (err) {
    s->stream_flags &= ~SOON__STREAM_READING;
    return err;
  }
  soon__handle_start((soon_handle *)s);
  return 0;
}

int soon_read_stop(soon_stream *s) {
  if (!s)
    return -EINVAL;
  if (s->stream_flags & SOON__STREAM_READING)
    read_stop(s);
  return 0;
}

static void do_read(soon_stream *s) {
  for (int i = 0; i < READS_PER_EVENT; i++) {
    if (!(s->stream_flags & SOON__STREAM_READING))
      return; /* stopped or closed by the last callback */
    soon_buf buf = {NULL, 0};
    s->alloc_cb((soon_handle *)s, READ_SIZE, &buf);
    if (!buf.base || !buf.len) {
      s->read_cb(s, -ENOBUFS, &buf);
      return;
    }
    ssize_t n;
    do
      n = read(s->io.fd, buf.base, buf.len);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
      s->read_cb(s, n, &buf);
      if ((size_t)n < buf.len)
        return; /* drained: the next readiness says when there is more */
    } else if (n == 0) {
      s->stream_flags |= SOON__STREAM_EOF;
      read_stop(s);
      s->read_cb(s, SOON_EOF, &buf);
      return;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      s->read_cb(s, 0, &buf); /* hand the buffer back */
      return;
    } else {
      int err = -errno;
      read_stop(s);
      s->read_cb(s, err, &buf);
      return;
    }
  }
}

/* ------------------------------------------------------------ writing */

/* send(MSG_NOSIGNAL) keeps SIGPIPE away from sockets. A pipe(2) end has no
 * such flag: block SIGPIPE in this thread for the write and swallow the one
 * it raised, so the process's own disposition is never touched. */
static ssize_t write_bufs(soon_stream *s, const soon_buf *bufs,
                          unsigned nbufs) {
  if (nbufs > IOV_MAX)
    nbufs = IOV_MAX;
  /* soon_buf and struct iovec have the same layout (checked below). */
  struct iovec *iov = (struct iovec *)bufs;
  ssize_t n;
  if (s->stream_flags & SOON__STREAM_SOCKET) {
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = nbufs};
    do
      n = sendmsg(s->io.fd, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
  }
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  do
    n = writev(s->io.fd, iov, (int)nbufs);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EPIPE && !sigismember(&old, SIGPIPE)) {
    struct timespec zero = {0, 0};
    int saved = errno;
    sigtimedwait(&pipe_set, NULL, &zero);
    errno = saved;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return n;
}

_Static_assert(sizeof(soon_buf) == sizeof(struct iovec) &&
                   offsetof(soon_buf, base) ==
                       offsetof(struct iovec, iov_base) &&
                   offsetof(soon_buf, len) == offsetof(struct iovec, iov_len),
               "soon_buf must match struct iovec");

/* 0 when the request is fully written, -EAGAIN when the kernel is full,
 * else the write's error. */
static int write_req(soon_stream *s, soon_write_req *req) {
  while (req->nbufs) {
    ssize_t n = write_bufs(s, req->bufs, req->nbufs);
    if (n < 0)
      return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
    s->write_queue_size -= (size_t)n;
    soon__bufs_advance(&req->bufs, &req->nbufs, (size_t)n);
  }
  return 0;
}

static void do_shutdown(soon_stream *s) {
  soon_shutdown_req *req = s->shutdown_req;
  req->status = shutdown(s->io.fd, SHUT_WR) < 0 ? -errno : 0;
  s->stream_flags |= SOON__STREAM_SHUT;
  defer(s);
}

static void write_finished(soon_stream *s, soon_write_req *req, int status) {
  if (status < 0)
    s->write_queue_size -= soon__bufs_size(req->bufs, req->nbufs);
  req->status = status;
  soon__queue_remove(&req->queue);
  soon__queue_insert_tail(&s->write_done, &req->queue);
}

static void native_send(soon_stream *s);

/* Write queued requests in order until the kernel is full (in the ring:
 * send the head); finished ones (written, or failed) move to write_done,
 * whose callbacks are owed. Then shut down if that waited for them. */
static void flush(soon_stream *s) {
  while (!s->native && !soon__queue_empty(&s->write_queue)) {
    soon_write_req *req =
        soon__container_of(s->write_queue.next, soon_write_req, queue);
    int r = write_req(s, req);
    if (r == -EAGAIN)
      break;
    write_finished(s, req, r);
  }
  if (s->native)
    native_send(s);
  /* What is left waits for writability: if the fd cannot be watched for it
   * (no memory to grow the backend's fd table), nothing would ever write
   * it, so it fails now rather than hang. */
  int err = soon__stream_update(s);
  while (err < 0 && !s->native && !soon__queue_empty(&s->write_queue))
    write_finished(
        s, soon__container_of(s->write_queue.next, soon_write_req, queue), err);
  if (soon__queue_empty(&s->write_queue) && s->shutdown_req &&
      !(s->stream_flags & SOON__STREAM_SHUT))
    do_shutdown(s);
}

/* Run the owed write callbacks, in rounds: a writer that refills from its
 * callback usually has the new write done at once, owing another callback.
 * Up to WRITE_ROUNDS rounds run here, the rest wait for the next pending
 * phase. One round would end each iteration after a write per request in
 * flight (pump-1 on epoll: 30-33 Gbit/s, libuv 38-42); rounds until the
 * kernel is full pay two epoll_ctl per EAGAIN and starve the loop (24);
 * 8 rounds keep the batches large and the loop fair (35-41; the numbers are
 * in docs/performance.md). */
static void run_write_done(soon_stream *s) {
  for (int round = 0;
       round < WRITE_ROUNDS && !soon__queue_empty(&s->write_done); round++) {
    soon_queue todo;
    soon__queue_move(&s->write_done, &todo);
    while (!soon__queue_empty(&todo)) {
      soon_write_req *req =
          soon__container_of(todo.next, soon_write_req, queue);
      soon__queue_remove(&req->queue);
      free(req->alloc);
      req->alloc = NULL;
      soon__req_done((soon_req *)req);
      req->cb(req, req->status);
    }
  }
}

int soon_write(soon_write_req *req, soon_stream *s, const soon_buf bufs[],
               unsigned nbufs, soon_write_cb cb) {
  if (!req || !s || !bufs || !nbufs || !cb || soon_is_closing((soon_handle *)s))
    return -EINVAL;
  if (s->io.fd < 0)
    return -EBADF;
  if (s->stream_flags & SOON__STREAM_SHUT || s->shutdown_req)
    return -EPIPE;
  req->alloc = NULL;
  req->bufs = req->bufsml;
  if (nbufs > sizeof req->bufsml / sizeof *req->bufsml) {
    req->alloc = req->bufs = malloc(nbufs * sizeof *bufs);
    if (!req->bufs)
      return -ENOMEM;
  }
  for (unsigned i = 0; i < nbufs; i++)
    req->bufs[i] = bufs[i];
  soon__req_start((soon_req *)req, s->loop, SOON_WRITE);
  req->handle = s;
  req->cb = cb;
  req->nbufs = nbufs;
  req->status = 0;
  s->write_queue_size += soon__bufs_size(bufs, nbufs);
  bool first = soon__queue_empty(&s->write_queue);
  soon__queue_insert_tail(&s->write_queue, &req->queue);
  if (first && !(s->stream_flags & SOON__STREAM_CONNECTING))
    flush(s); /* most writes complete here, with no wait for readiness */
  else
    soon__stream_update(s);
  if (!soon__queue_empty(&s->write_done))
    defer(s); /* never call back from inside soon_write */
  return 0;
}

ssize_t soon_try_write(soon_stream *s, const soon_buf bufs[], unsigned nbufs) {
  if (!s || !bufs || !nbufs)
    return -EINVAL;
  if (s->io.fd < 0)
    return -EBADF;
  if (!soon__queue_empty(&s->write_queue) ||
      (s->stream_flags & SOON__STREAM_CONNECTING))
    return -EAGAIN;
  ssize_t n = write_bufs(s, bufs, nbufs);
  if (n < 0)
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  return n;
}

size_t soon_stream_write_queue_size(const soon_stream *s) {
  return s ? s->write_queue_size : 0;
}

int soon_shutdown(soon_shutdown_req *req, soon_stream *s, soon_shutdown_cb cb) {
  if (!req || !s || !cb || soon_is_closing((soon_handle *)s))
    return -EINVAL;
  if (s->io.fd < 0)
    return -ENOTCONN;
  if (s->shutdown_req || (s->stream_flags & SOON__STREAM_SHUT))
    return -EALREADY;
  soon__req_start((soon_req *)req, s->loop, SOON_SHUTDOWN);
  req->handle = s;
  req->cb = cb;
  req->status = 0;
  s->shutdown_req = req;
  /* After the queued writes, and after the connection is made. */
  if (soon__queue_empty(&s->write_queue) &&
      !(s->stream_flags & SOON__STREAM_CONNECTING))
    do_shutdown(s);
  return 0;
}

/* ------------------------------------------------------------ connecting */

/* Start a non-blocking connect's completion on the stream's fd: cb gets the
 * result of connect_err (0 or EINPROGRESS is "wait", else an error now). */
static int stream_connect(soon_connect_req *req, soon_stream *s,
                          int connect_err, soon_connect_cb cb) {
  soon__req_start((soon_req *)req, s->loop, SOON_CONNECT);
  req->handle = s;
  req->cb = cb;
  req->status = 0;
  s->connect_req = req;
  if (connect_err == EINPROGRESS) {
    s->stream_flags |= SOON__STREAM_CONNECTING;
    int err = soon__stream_update(s);
    if (err) {
      s->stream_flags &= ~SOON__STREAM_CONNECTING;
      req->status = err;
      defer(s);
    }
    return 0;
  }
  req->status = -connect_err; /* known now, told in the pending phase */
  defer(s);
  return 0;
}

static void deliver_connect(soon_stream *s) {
  soon_connect_req *req = s->connect_req;
  s->connect_req = NULL;
  soon__req_done((soon_req *)req);
  req->cb(req, req->status);
}

/* The connect finished with status (0 or a negative errno). */
static void connected(soon_stream *s, int status) {
  s->stream_flags &= ~SOON__STREAM_CONNECTING;
  s->connect_req->status = status;
  if (status) { /* what waited for the connection fails with it */
    while (!soon__queue_empty(&s->write_queue))
      write_finished(
          s, soon__container_of(s->write_queue.next, soon_write_req, queue),
          status);
    if (s->shutdown_req) {
      s->shutdown_req->status = status;
      s->stream_flags |= SOON__STREAM_SHUT;
      defer(s);
    }
    soon__stream_update(s);
  } else {
    flush(s);
  }
  /* Writes queued while connecting may have just completed: their callbacks
   * are owed, after the connect callback, with no further event to come. */
  if (!soon__queue_empty(&s->write_done))
    defer(s);
  deliver_connect(s);
}

static void finish_connect(soon_stream *s) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(s->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
    err = errno;
  if (err == EINPROGRESS)
    return; /* spurious wakeup: still connecting */
  connected(s, -err);
}

/* Connect s to addr: a TCP stream that runs in the ring connects there (the
 * address is kept in the request until the kernel takes it); else
 * connect(2) now, and readiness for the rest. A Unix socket always uses
 * connect(2): it answers at once, where the ring would wait out a full
 * backlog instead of reporting EAGAIN. */
int soon__stream_connect_to(soon_connect_req *req, soon_stream *s,
                            const struct sockaddr *addr, unsigned len,
                            soon_connect_cb cb) {
  struct soon__stream_native *n = s->native;
  if (n && addr->sa_family != AF_UNIX && len <= sizeof req->addr) {
    memcpy(&req->addr, addr, len);
    n->wop.code = SOON__OP_CONNECT;
    n->wop.iov = &req->addr;
    n->wop.niov = len;
    if (soon__op_submit(s->loop, &n->wop) == 0) {
      n->warmed = true;
      stream_connect(req, s, EINPROGRESS, cb); /* sets CONNECTING */
      return 0;
    }
  }
  int r = connect(s->io.fd, addr, len);
  int err = r == 0 ? 0 : errno == EINTR ? EINPROGRESS : errno;
  return stream_connect(req, s, err, cb);
}

/* ------------------------------------------------------------ listening */

/* When the process is out of fds, pending connections would keep the
 * listener readable and the loop spinning. A reserved fd is released to
 * accept and drop them (as libuv and nginx do), then taken again. */
static _Atomic int reserve_fd = -1;

static void reserve_take(void) {
  if (atomic_load(&reserve_fd) >= 0)
    return;
  int fd = open("/", O_RDONLY | O_CLOEXEC);
  int none = -1;
  if (fd >= 0 && !atomic_compare_exchange_strong(&reserve_fd, &none, fd))
    close(fd);
}

static void drop_pending_connections(int server_fd) {
  int fd = atomic_exchange(&reserve_fd, -1);
  if (fd < 0)
    return;
  close(fd);
  for (;;) {
    int c = accept4(server_fd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    close(c);
  }
  reserve_take();
}

static void do_accept(soon_stream *s) {
  while (s->accepted_fd < 0 && (s->stream_flags & SOON__STREAM_LISTENING)) {
    int fd = accept4(s->io.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK)
        return;
      if (err == EINTR || err == ECONNABORTED)
        continue;
      if (err == EMFILE || err == ENFILE)
        drop_pending_connections(s->io.fd);
      s->connection_cb(s, -err);
      if (err == EMFILE || err == ENFILE)
        return;
      continue;
    }
    s->accepted_fd = fd;
    s->connection_cb(s, 0);
  }
  soon__stream_update(s); /* a connection waits for soon_accept: pause */
}

int soon_listen(soon_stream *s, int backlog, soon_connection_cb cb) {
  if (!s || !cb || soon_is_closing((soon_handle *)s) ||
      (s->type != SOON_TCP && s->type != SOON_PIPE))
    return -EINVAL;
  if (s->io.fd < 0)
    return -EINVAL; /* bind first */
  if (listen(s->io.fd, backlog) < 0)
    return -errno;
  reserve_take();
  s->connection_cb = cb;
  s->stream_flags |= SOON__STREAM_LISTENING;
  int err = s->native ? native_arm(s, SOON__OP_ACCEPT) : soon__stream_update(s);
  if (err) {
    s->stream_flags &= ~SOON__STREAM_LISTENING;
    return err;
  }
  soon__handle_start((soon_handle *)s);
  return 0;
}

int soon_accept(soon_stream *server, soon_stream *client) {
  if (!server || !client || client->type != server->type ||
      soon_is_closing((soon_handle *)client))
    return -EINVAL;
  if (server->accepted_fd < 0)
    return -EAGAIN;
  int err = soon__stream_open(client, server->accepted_fd);
  if (err)
    return err;
  server->accepted_fd = -1;
  if (server->native)
    native_accept_resume(server);
  else
    soon__stream_update(server);
  return 0;
}

/* ------------------------------------------------------------ in the ring */

/* The native ops' results arrive in the loop's completion phase, not as
 * readiness; what they owe the caller is told in the same callbacks. */

static int native_arm(soon_stream *s, int code) {
  struct soon__stream_native *n = s->native;
  if (n->rarmed)
    return 0;
  n->rop.code = code;
  int err = soon__op_submit(s->loop, &n->rop);
  n->rarmed = err == 0;
  return err;
}

/* What the stream already holds is told in the next poll phase, never from
 * inside the call that made it due, and never once closing. */
static void feed(soon_stream *s) {
  if (!soon_is_closing((soon_handle *)s))
    soon__feed_push(s->loop, &s->native->feed);
}

static bool stash_empty(const struct soon__stream_native *n) {
  return n->stash_off == n->stash_len;
}

/* Keep bytes received while nobody reads. Out of memory, the stream ends
 * with -ENOBUFS instead of losing them silently. */
static void stash_put(struct soon__stream_native *n, const char *p,
                      size_t len) {
  if (stash_empty(n))
    n->stash_off = n->stash_len = 0;
  if (n->stash_len + len > n->stash_cap) {
    size_t cap = n->stash_cap ? n->stash_cap * 2 : 4096;
    while (cap < n->stash_len + len)
      cap *= 2;
    char *p2 = realloc(n->stash, cap);
    if (!p2) {
      n->stash_end = n->stash_end ? n->stash_end : -ENOBUFS;
      return;
    }
    n->stash = p2;
    n->stash_cap = cap;
  }
  memcpy(n->stash + n->stash_len, p, len);
  n->stash_len += len;
}

/* Copy a received chunk into the caller's buffers while the stream reads;
 * the bytes taken. */
static size_t deliver(soon_stream *s, const char *p, size_t len) {
  size_t done = 0;
  while (done < len && (s->stream_flags & SOON__STREAM_READING)) {
    soon_buf buf = {NULL, 0};
    s->alloc_cb((soon_handle *)s, len - done, &buf);
    if (!buf.base || !buf.len) {
      s->read_cb(s, -ENOBUFS, &buf);
      feed(s); /* the rest is tried again next iteration */
      break;
    }
    size_t m = buf.len < len - done ? buf.len : len - done;
    memcpy(buf.base, p + done, m);
    done += m;
    s->read_cb(s, (ssize_t)m, &buf);
  }
  return done;
}

static void deliver_end(soon_stream *s, int end) {
  soon_buf buf = {NULL, 0};
  if (end == SOON_EOF)
    s->stream_flags |= SOON__STREAM_EOF;
  read_stop(s);
  s->read_cb(s, end, &buf);
}

/* Receive again while reading, but only with nothing stashed: the bound
 * on the stash (struct soon__stream_native) depends on it. */
static void native_recv_resume(soon_stream *s) {
  struct soon__stream_native *n = s->native;
  int err;
  if ((s->stream_flags & SOON__STREAM_READING) && stash_empty(n) &&
      !n->stash_end && !soon_is_closing((soon_handle *)s) &&
      (err = native_arm(s, SOON__OP_RECV)))
    deliver_end(s, err);
}

/* Tell what was stashed, then how the stream ended, if it did; or once it
 * is all told, receive again. */
static void native_drain(soon_stream *s) {
  struct soon__stream_native *n = s->native;
  if (!(s->stream_flags & SOON__STREAM_READING))
    return;
  n->stash_off +=
      deliver(s, n->stash + n->stash_off, n->stash_len - n->stash_off);
  if (!stash_empty(n) || !(s->stream_flags & SOON__STREAM_READING))
    return;
  if (!n->stash_end) {
    native_recv_resume(s);
    return;
  }
  int end = n->stash_end;
  n->stash_end = 0;
  deliver_end(s, end);
}

/* What is stashed first; the receive waits until it is told. */
static int native_read_start(soon_stream *s) {
  struct soon__stream_native *n = s->native;
  if (!stash_empty(n) || n->stash_end) {
    feed(s);
    return 0;
  }
  return native_arm(s, SOON__OP_RECV);
}

static void native_received(soon_stream *s, const soon__op *op) {
  struct soon__stream_native *n = s->native;
  bool reading = s->stream_flags & SOON__STREAM_READING;
  /* The end is set (bytes dropped for want of memory, say): what the
   * receive still brings would be told after a gap, or as a clean EOF. */
  if (n->stash_end)
    return;
  if (op->res > 0) {
    size_t len = (size_t)op->res, done = 0;
    bool was_empty = stash_empty(n);
    if (was_empty && reading)
      done = deliver(s, op->data, len);
    if (done < len) {
      stash_put(n, (const char *)op->data + done, len - done);
      /* Still reading, but no buffer for them: receive no more until they
       * are told (a read_stop has cancelled the receive already). */
      if (was_empty && n->rarmed && (s->stream_flags & SOON__STREAM_READING))
        soon__op_cancel(s->loop, &n->rop);
    }
  } else if (op->res != -ECANCELED && op->res != -ENOBUFS) {
    int end = op->res == 0 ? SOON_EOF : (int)op->res;
    if (stash_empty(n) && reading)
      deliver_end(s, end);
    else
      n->stash_end = end;
  }
}

static void native_accept_drain(soon_stream *s) {
  struct soon__stream_native *n = s->native;
  while (s->accepted_fd < 0 && n->naccepted &&
         (s->stream_flags & SOON__STREAM_LISTENING)) {
    s->accepted_fd = n->accepted[0];
    memmove(n->accepted, n->accepted + 1, --n->naccepted * sizeof(int));
    s->connection_cb(s, 0);
  }
}

static void native_accepted(soon_stream *s, const soon__op *op) {
  struct soon__stream_native *n = s->native;
  int res = (int)op->res;
  if (res >= 0) {
    if (n->naccepted == n->accepted_cap) {
      unsigned cap = n->accepted_cap ? n->accepted_cap * 2 : 8;
      int *a = realloc(n->accepted, cap * sizeof *a);
      if (!a) {
        close(res); /* the peer sees a reset, as on a full backlog */
        return;
      }
      n->accepted = a;
      n->accepted_cap = cap;
    }
    n->accepted[n->naccepted++] = res;
    native_accept_drain(s);
    /* Nobody takes them: stop accepting until soon_accept does. */
    if (n->naccepted >= ACCEPT_BACKLOG && n->rarmed)
      soon__op_cancel(s->loop, &n->rop);
    return;
  }
  if (res == -EMFILE || res == -ENFILE)
    drop_pending_connections(s->io.fd);
  if (res != -ECANCELED && res != -ECONNABORTED && res != -EINTR &&
      res != -EAGAIN && (s->stream_flags & SOON__STREAM_LISTENING))
    s->connection_cb(s, res);
}

/* Whether a listener should have its accept in the ring: listening, not
 * closing, and room behind accepted_fd. */
static bool accept_wanted(const soon_stream *s) {
  return s->native->naccepted < ACCEPT_BACKLOG &&
         (s->stream_flags & SOON__STREAM_LISTENING) &&
         !soon_is_closing((const soon_handle *)s);
}

/* After soon_accept took accepted_fd: the next one, and accept again if
 * it had stopped. */
static void native_accept_resume(soon_stream *s) {
  if (s->native->naccepted)
    feed(s);
  if (accept_wanted(s))
    native_arm(s, SOON__OP_ACCEPT);
}

static void native_told(soon__pending *p) {
  soon_stream *s =
      soon__container_of(p, struct soon__stream_native, feed)->stream;
  native_accept_drain(s);
  native_drain(s);
}

static void native_read_done(soon__op *op) {
  struct soon__stream_native *n =
      soon__container_of(op, struct soon__stream_native, rop);
  soon_stream *s = n->stream;
  if (!op->more)
    n->rarmed = false;
  if (soon_is_closing((soon_handle *)s)) {
    if (op->code == SOON__OP_ACCEPT && op->res >= 0)
      close((int)op->res);
    if (!n->rarmed && !n->warmed)
      soon__handle_release((soon_handle *)s);
    return;
  }
  if (op->code == SOON__OP_ACCEPT) {
    native_accepted(s, op);
    if (n->rarmed || !accept_wanted(s))
      return;
    if (op->res == -EMFILE || op->res == -ENFILE || native_arm(s, op->code))
      soon__stream_update(s); /* wait for readability, then accept again */
    return;
  }
  native_received(s, op);
  /* A multishot receive ends on -ENOBUFS, a cancel, or a full CQ: go on
   * (once the stash is told, if it holds bytes). */
  native_recv_resume(s);
}

/* Point the send at the queued writes' buffers: the head's own array when
 * it is alone, else all of them (up to IOV_MAX) gathered into n->iov. Out of
 * memory to gather, the head goes alone. */
static void native_gather(soon_stream *s, soon_write_req *head) {
  struct soon__stream_native *n = s->native;
  n->wop.iov = (struct iovec *)head->bufs;
  n->wop.niov = head->nbufs < IOV_MAX ? head->nbufs : IOV_MAX;
  if (head->queue.next == &s->write_queue || n->wop.niov == IOV_MAX)
    return;
  unsigned niov = 0;
  for (soon_queue *q = &head->queue; q != &s->write_queue && niov < IOV_MAX;
       q = q->next) {
    soon_write_req *req = soon__container_of(q, soon_write_req, queue);
    unsigned take = IOV_MAX - niov < req->nbufs ? IOV_MAX - niov : req->nbufs;
    if (niov + take > n->iov_cap) {
      unsigned cap = n->iov_cap ? n->iov_cap : 16;
      while (cap < niov + take)
        cap *= 2;
      struct iovec *iov = realloc(n->iov, cap * sizeof *iov);
      if (!iov)
        return;
      n->iov = iov;
      n->iov_cap = cap;
    }
    memcpy(n->iov + niov, req->bufs, take * sizeof *n->iov);
    niov += take;
  }
  n->wop.iov = n->iov;
  n->wop.niov = niov;
}

/* Send what is queued, in one sendmsg: only one send at a time keeps the
 * writes in order. */
static void native_send(soon_stream *s) {
  struct soon__stream_native *n = s->native;
  while (!n->warmed && !soon__queue_empty(&s->write_queue) &&
         !(s->stream_flags & SOON__STREAM_CONNECTING)) {
    soon_write_req *req =
        soon__container_of(s->write_queue.next, soon_write_req, queue);
    n->wop.code = SOON__OP_SEND;
    native_gather(s, req);
    int err = soon__op_submit(s->loop, &n->wop);
    if (!err)
      n->warmed = true;
    else
      write_finished(s, req, err);
  }
}

/* A send took res bytes (or failed): finish the writes they cover, in
 * order; an error is the head's. */
static void native_sent(soon_stream *s, int64_t res) {
  if (res < 0) {
    write_finished(
        s, soon__container_of(s->write_queue.next, soon_write_req, queue),
        (int)res);
    return;
  }
  size_t left = (size_t)res;
  s->write_queue_size -= left;
  while (!soon__queue_empty(&s->write_queue)) {
    soon_write_req *req =
        soon__container_of(s->write_queue.next, soon_write_req, queue);
    size_t size = soon__bufs_size(req->bufs, req->nbufs);
    size_t m = left < size ? left : size;
    soon__bufs_advance(&req->bufs, &req->nbufs, m);
    left -= m;
    if (req->nbufs)
      break;
    write_finished(s, req, 0);
  }
}

static void native_write_done(soon__op *op) {
  struct soon__stream_native *n =
      soon__container_of(op, struct soon__stream_native, wop);
  soon_stream *s = n->stream;
  n->warmed = false;
  if (soon_is_closing((soon_handle *)s)) {
    if (!n->rarmed)
      soon__handle_release((soon_handle *)s);
    return; /* its request was cancelled by the close */
  }
  if (op->code == SOON__OP_CONNECT) {
    connected(s, (int)op->res);
    return;
  }
  native_sent(s, op->res);
  flush(s); /* what is left, and what was queued meanwhile */
  run_write_done(s);
}

/* Closing: stop what is in the ring. The close callback waits for the last
 * report, since the kernel may still write into the stream's memory. */
static void native_close(soon_stream *s) {
  struct soon__stream_native *n = s->native;
  soon__queue_remove(&n->feed.queue);
  if (n->rarmed)
    soon__op_cancel(s->loop, &n->rop);
  if (n->warmed)
    soon__op_cancel(s->loop, &n->wop);
  if (n->rarmed || n->warmed)
    soon__handle_hold((soon_handle *)s);
  for (unsigned i = 0; i < n->naccepted; i++)
    close(n->accepted[i]);
  n->naccepted = 0;
}

/* ------------------------------------------------------------ dispatch */

static void stream_io_cb(soon_io *io, int status, int events) {
  soon_stream *s = soon__container_of(io, soon_stream, io);
  if (s->native && (s->stream_flags & SOON__STREAM_LISTENING)) {
    native_arm(s, SOON__OP_ACCEPT); /* a connection waits: accept again */
    soon__stream_update(s);
    return;
  }
  if (status < 0) /* the fd was closed behind our back */
    events = SOON_READABLE | SOON_WRITABLE;
  if (s->stream_flags & SOON__STREAM_CONNECTING) {
    finish_connect(s);
    return; /* reads and writes start on the next readiness */
  }
  if ((events & SOON_READABLE) && (s->stream_flags & SOON__STREAM_LISTENING))
    do_accept(s);
  else if (events & SOON_READABLE)
    do_read(s);
  if ((events & SOON_WRITABLE) && s->io.fd >= 0 &&
      !soon__queue_empty(&s->write_queue)) {
    flush(s);
    run_write_done(s);
  }
}

/* Completions that happened inside a call (soon_write, soon_shutdown, an
 * immediate connect) are told here, in the next pending phase. */
static void stream_pending_cb(soon__pending *p) {
  soon_stream *s = soon__container_of(p, soon_stream, pending);
  if (s->connect_req && !(s->stream_flags & SOON__STREAM_CONNECTING))
    deliver_connect(s);
  run_write_done(s);
  if (s->shutdown_req && (s->stream_flags & SOON__STREAM_SHUT)) {
    soon_shutdown_req *req = s->shutdown_req;
    s->shutdown_req = NULL;
    soon__req_done((soon_req *)req);
    req->cb(req, req->status);
  }
}

/* ------------------------------------------------------------ closing */

void soon__stream_close(soon_handle *h) {
  soon_stream *s = (soon_stream *)h;
  if (s->native)
    native_close(s);
  soon__io_release(&s->io); /* the fd number may come back for anyone */
  if (s->accepted_fd >= 0)
    close(s->accepted_fd);
  s->accepted_fd = -1;
  /* stdin, stdout and stderr stay open (as in libuv): closing a stream made
   * on them must not let the next open(2) become the process's stdout. */
  if (s->io.fd > STDERR_FILENO)
    close(s->io.fd);
  s->io.fd = -1;
  s->stream_flags &= ~(SOON__STREAM_READING | SOON__STREAM_LISTENING |
                       SOON__STREAM_CONNECTING);
  soon__handle_stop(h);
  /* Every owed callback runs in stream_finish, before the close callback. */
  soon__queue_remove(&s->pending.queue);
  while (!soon__queue_empty(&s->write_queue)) {
    soon_write_req *req =
        soon__container_of(s->write_queue.next, soon_write_req, queue);
    req->status = -ECANCELED;
    soon__queue_remove(&req->queue);
    soon__queue_insert_tail(&s->write_done, &req->queue);
  }
  s->write_queue_size = 0;
  if (s->connect_req)
    s->connect_req->status = -ECANCELED;
  if (s->shutdown_req && !(s->stream_flags & SOON__STREAM_SHUT))
    s->shutdown_req->status = -ECANCELED;
  s->stream_flags |= SOON__STREAM_SHUT;
}

void soon__stream_finish(soon_handle *h) {
  soon_stream *s = (soon_stream *)h;
  stream_pending_cb(&s->pending);
  if (s->native) {
    free(s->native->stash);
    free(s->native->iov);
    free(s->native->accepted);
    free(s->native);
    s->native = NULL;
  }
}
