/* stream.c: what tcp, pipe and tty share: reads, queued vectored writes,
 * shutdown, connect completion, listen and accept, on the readiness of one
 * internal fd watcher. */
#include "net.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define READ_SIZE 65536
#define READS_PER_EVENT 32 /* then give other fds their turn */

static void stream_io_cb(soon_io *io, int status, int events);
static void stream_pending_cb(soon__pending *p);
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
}

int soon__stream_open(soon_stream *s, int fd) {
  if (s->io.fd >= 0)
    return -EBUSY;
  struct stat st;
  if (fstat(fd, &st) < 0)
    return -errno;
  s->io.fd = fd;
  if (S_ISSOCK(st.st_mode))
    s->stream_flags |= SOON__STREAM_SOCKET;
  return 0;
}

/* The fd watcher follows the stream's state: readable while reading or
 * listening (and no accepted connection waits for soon_accept), writable
 * while connecting or while writes are queued. */
int soon__stream_update(soon_stream *s) {
  unsigned f = s->stream_flags;
  int events = 0;
  if ((f & SOON__STREAM_READING) ||
      ((f & SOON__STREAM_LISTENING) && s->accepted_fd < 0))
    events |= SOON_READABLE;
  if ((f & SOON__STREAM_CONNECTING) || !soon__queue_empty(&s->write_queue))
    events |= SOON_WRITABLE;
  if (s->io.fd < 0)
    return 0;
  if (!events)
    return soon_io_stop(&s->io);
  if (events == s->io.events)
    return 0;
  return soon_io_start(&s->io, events, stream_io_cb);
}

static void defer(soon_stream *s) {
  if (soon__queue_empty(&s->pending.queue))
    soon__pending_push(s->loop, &s->pending);
}

/* ------------------------------------------------------------ reading */

static void read_stop(soon_stream *s) {
  s->stream_flags &= ~SOON__STREAM_READING;
  if (!(s->stream_flags & SOON__STREAM_LISTENING))
    soon__handle_stop((soon_handle *)s);
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
  int err = soon__stream_update(s);
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

/* Write queued requests in order until the kernel is full; finished ones
 * (written, or failed) move to write_done, whose callbacks are owed. */
static void flush(soon_stream *s) {
  while (!soon__queue_empty(&s->write_queue)) {
    soon_write_req *req =
        soon__container_of(s->write_queue.next, soon_write_req, queue);
    int r = write_req(s, req);
    if (r == -EAGAIN)
      break;
    if (r < 0)
      s->write_queue_size -= soon__bufs_size(req->bufs, req->nbufs);
    req->status = r;
    soon__queue_remove(&req->queue);
    soon__queue_insert_tail(&s->write_done, &req->queue);
  }
  if (soon__queue_empty(&s->write_queue) && s->shutdown_req &&
      !(s->stream_flags & SOON__STREAM_SHUT))
    do_shutdown(s);
  soon__stream_update(s);
}

/* Writes these callbacks finish wait for the next pending phase: a writer
 * that refills from its callback must not monopolise the iteration. */
static void run_write_done(soon_stream *s) {
  soon_queue todo;
  soon__queue_move(&s->write_done, &todo);
  while (!soon__queue_empty(&todo)) {
    soon_write_req *req = soon__container_of(todo.next, soon_write_req, queue);
    soon__queue_remove(&req->queue);
    free(req->alloc);
    req->alloc = NULL;
    s->loop->active_reqs--;
    req->cb(req, req->status);
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
  req->type = SOON_WRITE;
  req->loop = s->loop;
  req->handle = s;
  req->cb = cb;
  req->nbufs = nbufs;
  req->status = 0;
  s->loop->active_reqs++;
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
  req->type = SOON_SHUTDOWN;
  req->loop = s->loop;
  req->handle = s;
  req->cb = cb;
  req->status = 0;
  s->shutdown_req = req;
  s->loop->active_reqs++;
  if (soon__queue_empty(&s->write_queue))
    do_shutdown(s);
  return 0;
}

/* ------------------------------------------------------------ connecting */

int soon__stream_connect(soon_connect_req *req, soon_stream *s, int connect_err,
                         soon_connect_cb cb) {
  req->type = SOON_CONNECT;
  req->loop = s->loop;
  req->handle = s;
  req->cb = cb;
  req->status = 0;
  s->connect_req = req;
  s->loop->active_reqs++;
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
  s->loop->active_reqs--;
  req->cb(req, req->status);
}

static void finish_connect(soon_stream *s) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(s->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
    err = errno;
  if (err == EINPROGRESS)
    return; /* spurious wakeup: still connecting */
  s->stream_flags &= ~SOON__STREAM_CONNECTING;
  s->connect_req->status = -err;
  if (err) /* nothing queued can be written now */
    soon__stream_update(s);
  else
    flush(s);
  /* Writes queued while connecting may have just completed: their callbacks
   * are owed, after the connect callback, with no further event to come. */
  if (!soon__queue_empty(&s->write_done))
    defer(s);
  deliver_connect(s);
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
  int err = soon__stream_update(s);
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
  soon__stream_update(server);
  return 0;
}

/* ------------------------------------------------------------ dispatch */

static void stream_io_cb(soon_io *io, int status, int events) {
  soon_stream *s = soon__container_of(io, soon_stream, io);
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
    s->loop->active_reqs--;
    req->cb(req, req->status);
  }
}

/* ------------------------------------------------------------ closing */

void soon__stream_close(soon_handle *h) {
  soon_stream *s = (soon_stream *)h;
  soon_io_stop(&s->io);
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
  stream_pending_cb(&((soon_stream *)h)->pending);
}
