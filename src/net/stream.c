/* stream.c: what tcp, pipe and tty share: the stream API and its request state
 * machine (reads, queued writes, shutdown, connect, listen and accept, close),
 * on the transport chosen when the stream gets its fd (net.h). */
#include "net.h"

#include <sys/stat.h>
#include <unistd.h>

/* In order of preference: the first whose open takes a stream keeps it, and
 * the last takes any. */
static const soon__transport_ops *const transports[] = {&soon__transport_ring,
                                                        &soon__transport_ready};

static void stream_pending_cb(soon__deferred *p);
static const soon__handle_ops stream_ops = {.close = soon__stream_close,
                                            .finish = soon__stream_finish};

void soon__stream_init(soon_loop *loop, soon_stream *s, soon_handle_type type) {
  soon__handle_init(loop, (soon_handle *)s, type, &stream_ops);
  soon__io_init_internal(loop, &s->io, -1);
  s->alloc_cb = NULL;
  s->read_cb = NULL;
  soon__reqq_init(&s->writes);
  s->write_queue_size = 0;
  s->connect_req = NULL;
  s->shutdown_req = NULL;
  soon__queue_init(&s->pending.queue);
  s->pending.cb = stream_pending_cb;
  s->accepted_fd = -1;
  s->stream_flags = 0;
  s->transport = NULL;
}

/* The stream claims fd in the loop's fd table until it is closed, reading
 * or not, on every transport (soon__io_claim says why): soon_io on it, or
 * another stream, gets -EEXIST. */
static int stream_open(soon_stream *s, int fd, soon_stream *server) {
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
  const soon__transport_ops *const *t = transports;
  while ((*t)->open(s, server))
    t++;
  return 0;
}

int soon__stream_open(soon_stream *s, int fd) {
  return stream_open(s, fd, NULL);
}

int soon__stream_watch(soon_stream *s, int events, soon_io_cb cb) {
  if (s->io.fd < 0)
    return 0;
  if (!events)
    return soon_io_stop(&s->io);
  if (events == s->io.events)
    return 0;
  return soon_io_start(&s->io, events, cb);
}

/* Never once closing: what a closing stream owes is told by its finish,
 * and its memory may be gone after the close callback. */
static void push_pending(soon_stream *s) {
  if (!soon__closing((soon_handle *)s))
    soon__pending_push(s->loop, &s->pending);
}

/* ------------------------------------------------------------ reading */

static void read_stop(soon_stream *s) {
  s->stream_flags &= ~SOON__STREAM_READING;
  soon__handle_stop((soon_handle *)s);
  s->transport->ops->read_stop(s);
}

/* A listener does not read: its connection callback has the read
 * callback's place. */
int soon_read_start(soon_stream *s, soon_alloc_cb alloc_cb,
                    soon_read_cb read_cb) {
  if (!s || !alloc_cb || !read_cb || soon__closing((soon_handle *)s))
    return -EINVAL;
  if (s->io.fd < 0 || (s->stream_flags & SOON__STREAM_LISTENING))
    return -ENOTCONN;
  if (s->stream_flags & SOON__STREAM_READING)
    return -EALREADY;
  s->alloc_cb = alloc_cb;
  s->read_cb = read_cb;
  s->stream_flags |= SOON__STREAM_READING;
  int err = s->transport->ops->read_start(s);
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

bool soon__stream_alloc(soon_stream *s, size_t size, soon_buf *buf) {
  *buf = (soon_buf){NULL, 0};
  /* A user callback like any other: traced, with no status to give. */
  SOON__TELL(s->loop, SOON__PHASE_LOOP, s->type, s, SOON__NO_STATUS,
             s->alloc_cb((soon_handle *)s, size, buf));
  if (buf->base && buf->len)
    return true;
  SOON__TELL(s->loop, SOON__PHASE_LOOP, s->type, s, -ENOBUFS,
             s->read_cb(s, -ENOBUFS, buf));
  return false;
}

void soon__stream_end(soon_stream *s, int status, const soon_buf *buf) {
  static const soon_buf none = {NULL, 0};
  read_stop(s);
  SOON__TELL(s->loop, SOON__PHASE_LOOP, s->type, s, status,
             s->read_cb(s, status, buf ? buf : &none));
}

/* ------------------------------------------------------------ writing */

static void do_shutdown(soon_stream *s) {
  soon_shutdown_req *req = s->shutdown_req;
  req->status = shutdown(s->io.fd, SHUT_WR) < 0 ? -errno : 0;
  s->stream_flags |= SOON__STREAM_SHUT;
  push_pending(s);
}

/* Hand the waiting writes to the transport; once none waits, the shutdown
 * that waited for them. */
SOON__INLINE void flush(soon_stream *s) {
  s->transport->ops->send(s);
  if (!soon__stream_head(s) && s->shutdown_req &&
      !(s->stream_flags & SOON__STREAM_SHUT))
    do_shutdown(s);
}

SOON__INLINE void tell_write(soon__qnode *n) {
  soon_write_req *req = soon__container_of(n, soon_write_req, node);
  soon__bufs_free(req->copy, req->bufsml);
  soon__req_done((soon_req *)req);
  SOON__TELL(req->loop, SOON__PHASE_LOOP, SOON__KIND_REQ | SOON_WRITE, req,
             n->status, req->cb(req, n->status));
}

/* Up to SOON__REQQ_ROUNDS rounds of write callbacks here, the rest in the
 * next pending phase. One round would end each iteration after a write per
 * request in flight (pump-1 on epoll: 30-33 Gbit/s, libuv 38-42); rounds
 * until the kernel is full pay two epoll_ctl per EAGAIN and starve the loop
 * (24); 8 rounds keep the batches large and the loop fair (35-41; the
 * numbers are in docs/performance.md). */
static void run_write_done(soon_stream *s) {
  soon__reqq_run(&s->writes, (soon_handle *)s, tell_write);
}

void soon__stream_writable(soon_stream *s) {
  flush(s);
  run_write_done(s);
}

/* Whether s takes writes: 0, or why not. */
static int write_check(const soon_stream *s) {
  if (s->io.fd < 0)
    return -EBADF;
  if (s->stream_flags & SOON__STREAM_SHUT || s->shutdown_req)
    return -EPIPE;
  return 0;
}

/* Queue req (its size bytes set) behind the stream's other writes. */
SOON__INLINE void queue_write(soon_write_req *req, soon_stream *s, size_t size,
                              soon_write_cb cb) {
  soon__req_start((soon_req *)req, s->loop, SOON_WRITE);
  req->handle = s;
  req->cb = cb;
  s->write_queue_size += size;
  bool first = !soon__stream_head(s);
  soon__reqq_push(&s->writes, &req->node);
  /* Else the transport is on it already: writability or a send to come. */
  if (first && !(s->stream_flags & SOON__STREAM_CONNECTING))
    flush(s); /* most writes complete here, with no wait for readiness */
  if (soon__reqq_owed(&s->writes))
    push_pending(s); /* never call back from inside soon_write */
}

int soon_write(soon_write_req *req, soon_stream *s, const soon_buf bufs[],
               unsigned nbufs, soon_write_cb cb) {
  if (!req || !s || !bufs || !nbufs || !cb || soon__closing((soon_handle *)s))
    return -EINVAL;
  int err = write_check(s);
  if (err)
    return err;
  size_t size;
  req->copy =
      soon__bufs_copy(req->bufsml, sizeof req->bufsml / sizeof *req->bufsml,
                      bufs, nbufs, &size);
  if (!req->copy)
    return -ENOMEM;
  req->bufs = req->copy;
  req->nbufs = nbufs;
  req->file = -1;
  queue_write(req, s, size, cb);
  return 0;
}

int soon_write_file(soon_write_req *req, soon_stream *s, int file,
                    int64_t offset, size_t len, soon_write_cb cb) {
  if (!req || !s || file < 0 || offset < 0 ||
      len > (uint64_t)(INT64_MAX - offset) || !cb ||
      soon__closing((soon_handle *)s))
    return -EINVAL;
  int err = write_check(s);
  if (err)
    return err;
  req->copy = NULL;
  req->bufs = NULL;
  req->nbufs = 0;
  req->file = file;
  req->file_off = offset;
  req->file_left = len;
  queue_write(req, s, len, cb);
  return 0;
}

ssize_t soon_try_write(soon_stream *s, const soon_buf bufs[], unsigned nbufs) {
  if (!s || !bufs || !nbufs)
    return -EINVAL;
  if (s->io.fd < 0)
    return -EBADF;
  if (soon__stream_head(s) || (s->stream_flags & SOON__STREAM_CONNECTING))
    return -EAGAIN;
  return s->transport->ops->try_write(s, bufs, nbufs);
}

int soon_stream_fileno(const soon_stream *s, int *fd) {
  if (!s || !fd)
    return -EINVAL;
  if (s->io.fd < 0)
    return -EBADF;
  *fd = s->io.fd;
  return 0;
}

size_t soon_stream_write_queue_size(const soon_stream *s) {
  return s ? s->write_queue_size : 0;
}

int soon_shutdown(soon_shutdown_req *req, soon_stream *s, soon_shutdown_cb cb) {
  if (!req || !s || !cb || soon__closing((soon_handle *)s))
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
  if (!soon__stream_head(s) && !(s->stream_flags & SOON__STREAM_CONNECTING))
    do_shutdown(s);
  return 0;
}

/* ------------------------------------------------------------ connecting */

int soon__stream_connect_to(soon_connect_req *req, soon_stream *s,
                            const struct sockaddr *addr, unsigned len,
                            soon_connect_cb cb) {
  soon__req_start((soon_req *)req, s->loop, SOON_CONNECT);
  req->handle = s;
  req->cb = cb;
  req->status = 0;
  s->connect_req = req;
  s->stream_flags |= SOON__STREAM_CONNECTING;
  int r = s->transport->ops->connect(s, addr, len);
  if (r != -EINPROGRESS) {
    s->stream_flags &= ~SOON__STREAM_CONNECTING;
    req->status = r; /* known now, told in the pending phase */
    push_pending(s);
  }
  return 0;
}

int soon__stream_connect_now(soon_stream *s, const struct sockaddr *addr,
                             unsigned len, int (*watch)(soon_stream *s)) {
  int r = soon__connect(s->io.fd, addr, len);
  if (r != -EINPROGRESS)
    return r;
  int err = watch(s);
  return err ? err : -EINPROGRESS;
}

static void tell_connect(soon_stream *s) {
  soon_connect_req *req = s->connect_req;
  s->connect_req = NULL;
  soon__req_done((soon_req *)req);
  SOON__TELL(req->loop, SOON__PHASE_LOOP, SOON__KIND_REQ | SOON_CONNECT, req,
             req->status, req->cb(req, req->status));
}

void soon__stream_connected(soon_stream *s, int status) {
  s->stream_flags &= ~SOON__STREAM_CONNECTING;
  s->connect_req->status = status;
  if (status) { /* what waited for the connection fails with it */
    while (soon__stream_head(s))
      soon__stream_sent(s, status);
    if (s->shutdown_req) {
      s->shutdown_req->status = status;
      s->stream_flags |= SOON__STREAM_SHUT;
      push_pending(s);
    }
  }
  flush(s);
  /* Writes queued while connecting may have just completed: their callbacks
   * are owed, after the connect callback, with no further event to come. */
  if (soon__reqq_owed(&s->writes))
    push_pending(s);
  tell_connect(s);
}

/* ------------------------------------------------------------ listening */

int soon_listen(soon_stream *s, int backlog, soon_connection_cb cb) {
  if (!s || !cb || soon__closing((soon_handle *)s) ||
      (s->type != SOON_TCP && s->type != SOON_PIPE))
    return -EINVAL;
  /* Bind first; and a stream that reads is a connection already. */
  if (s->io.fd < 0 || (s->stream_flags & SOON__STREAM_READING))
    return -EINVAL;
  if (listen(s->io.fd, backlog) < 0)
    return -errno;
  soon__reserve_fd();
  s->connection_cb = cb;
  s->stream_flags |= SOON__STREAM_LISTENING;
  int err = s->transport->ops->listen(s);
  if (err) {
    s->stream_flags &= ~SOON__STREAM_LISTENING;
    return err;
  }
  soon__handle_start((soon_handle *)s);
  return 0;
}

void soon__stream_accepted(soon_stream *s, int fd) {
  if (fd >= 0)
    s->accepted_fd = fd;
  SOON__TELL(s->loop, SOON__PHASE_LOOP, s->type, s, fd < 0 ? fd : 0,
             s->connection_cb(s, fd < 0 ? fd : 0));
}

int soon_accept(soon_stream *server, soon_stream *client) {
  if (!server || !client || client->type != server->type ||
      soon__closing((soon_handle *)client))
    return -EINVAL;
  if (server->accepted_fd < 0)
    return -EAGAIN;
  int err = stream_open(client, server->accepted_fd, server);
  if (err)
    return err;
  server->accepted_fd = -1;
  server->transport->ops->accept_resume(server);
  return 0;
}

/* ------------------------------------------------------------ owed */

/* Tell what the stream owes, in order: the connect's result, the write
 * callbacks, the shutdown's result. Completions that happened inside a call
 * (soon_write, soon_shutdown, an immediate connect) come here, in the next
 * pending phase. Once a callback closes the stream, the rest waits for its
 * close phase (closed: this is it), before the close callback. */
SOON__INLINE void tell_owed(soon_stream *s, bool closed) {
  if (s->connect_req && !(s->stream_flags & SOON__STREAM_CONNECTING))
    tell_connect(s);
  if (closed)
    soon__reqq_run_closed(&s->writes, tell_write);
  else
    run_write_done(s);
  if (!closed && soon__closing((soon_handle *)s))
    return;
  if (s->shutdown_req && (s->stream_flags & SOON__STREAM_SHUT)) {
    soon_shutdown_req *req = s->shutdown_req;
    s->shutdown_req = NULL;
    soon__req_done((soon_req *)req);
    SOON__TELL(req->loop, SOON__PHASE_LOOP, SOON__KIND_REQ | SOON_SHUTDOWN, req,
               req->status, req->cb(req, req->status));
  }
}

static void stream_pending_cb(soon__deferred *p) {
  tell_owed(soon__container_of(p, soon_stream, pending), false);
}

/* ------------------------------------------------------------ closing */

void soon__stream_close(soon_handle *h) {
  soon_stream *s = (soon_stream *)h;
  if (s->transport)
    s->transport->ops->close(s);
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
  soon__reqq_finish_all(&s->writes, -ECANCELED);
  s->write_queue_size = 0;
  if (s->connect_req)
    s->connect_req->status = -ECANCELED;
  if (s->shutdown_req && !(s->stream_flags & SOON__STREAM_SHUT))
    s->shutdown_req->status = -ECANCELED;
  s->stream_flags |= SOON__STREAM_SHUT;
}

void soon__stream_finish(soon_handle *h) {
  soon_stream *s = (soon_stream *)h;
  tell_owed(s, true);
  if (s->transport)
    s->transport->ops->free(s);
  s->transport = NULL;
}
