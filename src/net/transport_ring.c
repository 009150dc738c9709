/* transport_ring.c: the stream transport on io_uring: a socket's receive (or
 * accept) and send (or connect) run as native ops in the ring; readiness only
 * where the ring cannot wait (a connect(2), a listener out of fds). */
#include "net.h"

#include <limits.h>
#include <netinet/in.h>
#include <sys/uio.h>
#include <unistd.h>

#define ACCEPT_BACKLOG 64 /* accepted, not yet taken: then stop accepting */
#define SPARES_MAX 64     /* states a listener keeps for its next connections */
/* Bulk receiving (struct ring): a receive of at least BULK_MIN bytes
 * counts towards it, a smaller one against; at BULK_ENTER the stream
 * reads by readiness, and goes back to the ring after BULK_LEAVE readable
 * reports in a row that brought less than BULK_MIN each. */
#define BULK_MIN 16384
#define BULK_ENTER 4
#define BULK_LEAVE 2

/* A socket stream in the ring: one multishot receive (or accept) and one
 * send (or connect) at a time, each in the ring while its op's in_flight
 * says so, until its last report. */
typedef struct ring {
  soon__transport base;
  soon_stream *stream;
  soon__op in;  /* the multishot receive, or accept on a listener */
  soon__op out; /* the send of the waiting writes, or the connect */
  /* The connect's address: the kernel may read it until the connect
   * reports, so it is kept here rather than in the caller's request. */
  struct sockaddr_in6 peer;
  struct iovec *iov; /* the waiting writes' buffers, gathered for one send */
  size_t iov_cap;
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
  /* A bulk stream reads by readiness, straight into the reader's buffers.
   * In the ring every byte is copied twice (by the kernel into the buffer
   * ring, then by us into the reader's buffer), through 4 MiB of buffers
   * that do not stay in cache: pump-1 moved 11-14 Gbit/s that way, epoll
   * 19-29 in the same turns (docs/uring.md). Small messages stay in the
   * ring, where one wait is all a ping-pong turn costs. A stream starts
   * bulk (ring_open): one that is not pays its first receives in the ring
   * until the cancel lands, ~10 % of pump-100's bytes, where a small one
   * pays a poll and a read(2) twice. bulk_score counts towards BULK_ENTER
   * in the ring, and small reports once bulk. */
  bool bulk;
  unsigned bulk_score;
  /* Accepted connections behind accepted_fd, oldest first. */
  int *accepted;
  size_t naccepted, accepted_cap;
  /* The stash or the accepted queue, told in the poll phase as readiness
   * would tell them (ring_feed_cb). */
  soon__deferred feed;
  /* A state per connection would be an allocation per accept: a listener
   * keeps those of its closed connections (up to SPARES_MAX) for the next
   * ones, so a server allocates only for its peak of connections. */
  struct ring *home;   /* the listener this goes back to, or NULL */
  soon_queue link;     /* in home's children, or in a listener's spares */
  soon_queue children; /* a listener's open connections */
  soon_queue spares;
  unsigned nspares;
} ring;

static void ring_in_done(soon__op *op);
static void ring_out_done(soon__op *op);
static void ring_feed_cb(soon__deferred *p);
static void ring_io_cb(soon_io *io, int status, int events);

static ring *ring_of(const soon_stream *s) {
  return soon__container_of(s->transport, ring, base);
}

/* Sockets only, and only where the backend runs socket ops (all of them,
 * backend.h); without the memory, a stream simply stays on readiness. A
 * listener's spares serve only connections of its own loop, whose thread
 * alone touches them. */
static int ring_open(soon_stream *s, soon_stream *server) {
  if (!(s->stream_flags & SOON__STREAM_SOCKET) ||
      !soon__op_can(s->loop, SOON__OP_RECV))
    return -ENOTSUP;
  ring *home = server && server->loop == s->loop &&
                       server->transport->ops == &soon__transport_ring
                   ? ring_of(server)
                   : NULL;
  ring *r;
  if (home && home->nspares) {
    r = soon__container_of(home->spares.next, ring, link);
    soon__queue_remove(&r->link);
    home->nspares--;
  } else if (!(r = calloc(1, sizeof *r))) {
    return -ENOMEM;
  }
  r->base.ops = &soon__transport_ring;
  r->stream = s;
  r->bulk = true; /* until two small reads (struct ring; docs/uring.md) */
  r->in.done = ring_in_done;
  r->out.done = ring_out_done;
  soon__queue_init(&r->feed.queue);
  r->feed.cb = ring_feed_cb;
  soon__queue_init(&r->children);
  soon__queue_init(&r->spares);
  r->home = home;
  if (home)
    soon__queue_insert_tail(&home->children, &r->link);
  else
    soon__queue_init(&r->link);
  s->transport = &r->base;
  return 0;
}

/* A state goes back to its listener as new, but for its iovec array. */
static void ring_free(soon_stream *s) {
  ring *r = ring_of(s);
  free(r->stash);
  free(r->accepted);
  soon__queue_remove(&r->link);
  while (!soon__queue_empty(&r->spares)) {
    ring *x = soon__container_of(r->spares.next, ring, link);
    soon__queue_remove(&x->link);
    free(x->iov);
    free(x);
  }
  while (!soon__queue_empty(&r->children)) {
    ring *x = soon__container_of(r->children.next, ring, link);
    soon__queue_remove(&x->link);
    x->home = NULL; /* its connections outlive it: they free themselves */
  }
  ring *home = r->home;
  if (!home || home->nspares == SPARES_MAX) {
    free(r->iov);
    free(r);
    return;
  }
  struct iovec *iov = r->iov;
  size_t iov_cap = r->iov_cap;
  memset(r, 0, sizeof *r);
  r->iov = iov;
  r->iov_cap = iov_cap;
  soon__queue_insert_tail(&home->spares, &r->link);
  home->nspares++;
}

/* Readiness only for a connect(2) in progress, and for a listener out of
 * fds: the ring's accept fails at once without a free fd, even with nobody
 * connecting, so it waits for a connection first. */
/* A file write at the head with no send in the ring: ring_send met a full
 * kernel, and waits for writability. */
static bool file_waits(const soon_stream *s) {
  const soon_write_req *head = soon__stream_head(s);
  return head && head->file >= 0 && !ring_of(s)->out.in_flight;
}

static bool stash_empty(const ring *r) { return r->stash_off == r->stash_len; }

/* A reader that takes new bytes: reading, open, nothing stashed (the
 * stash is told first: the bound on it depends on that, struct ring). */
static bool wants_bytes(const soon_stream *s) {
  const ring *r = ring_of(s);
  return (s->stream_flags & SOON__STREAM_READING) && stash_empty(r) &&
         !r->stash_end && !soon__closing((const soon_handle *)s);
}

/* A bulk reader with its receive out of the ring: it waits for
 * readability. Never while the receive is in the ring, whose last reports
 * come before anything read(2) would get. */
static bool bulk_waits(const soon_stream *s) {
  const ring *r = ring_of(s);
  return r->bulk && !r->in.in_flight && wants_bytes(s);
}

static int ring_watch(soon_stream *s) {
  ring *r = ring_of(s);
  int events = 0;
  if ((s->stream_flags & SOON__STREAM_CONNECTING) && !r->out.in_flight)
    events = SOON_WRITABLE;
  if (soon__stream_accepting(s) && !r->in.in_flight)
    events = SOON_READABLE;
  if (file_waits(s))
    events |= SOON_WRITABLE;
  if (bulk_waits(s))
    events |= SOON_READABLE;
  return soon__stream_watch(s, events, ring_io_cb);
}

/* Put the multishot receive (RECV) or accept (ACCEPT) in the ring, unless
 * it is there. */
static int ring_arm(soon_stream *s, int code) {
  ring *r = ring_of(s);
  if (r->in.in_flight)
    return 0;
  r->in.code = code;
  r->in.fd.fd = s->io.fd;
  return soon__op_submit(s->loop, &r->in);
}

/* What the stream already holds is told in the next poll phase, never from
 * inside the call that made it due, and never once closing. */
static void feed(soon_stream *s) {
  if (!soon__closing((soon_handle *)s))
    soon__feed_push(s->loop, &ring_of(s)->feed);
}

/* ------------------------------------------------------------ receiving */

/* Keep bytes received while nobody reads. Out of memory, the stream ends
 * with -ENOBUFS instead of losing them silently. */
static void stash_put(ring *r, const char *p, size_t len) {
  if (stash_empty(r))
    r->stash_off = r->stash_len = 0;
  char *stash =
      soon__grow(r->stash, &r->stash_cap, r->stash_len + len, 1, 4096);
  if (!stash) {
    r->stash_end = r->stash_end ? r->stash_end : -ENOBUFS;
    return;
  }
  r->stash = stash;
  memcpy(r->stash + r->stash_len, p, len);
  r->stash_len += len;
}

/* Copy a received chunk into the reader's buffers while the stream reads:
 * the bytes taken. */
static size_t tell_bytes(soon_stream *s, const char *p, size_t len) {
  size_t done = 0;
  while (done < len && (s->stream_flags & SOON__STREAM_READING)) {
    soon_buf buf;
    if (!soon__stream_alloc(s, len - done, &buf)) {
      feed(s); /* the rest is tried again next iteration */
      break;
    }
    size_t m = buf.len < len - done ? buf.len : len - done;
    memcpy(buf.base, p + done, m);
    done += m;
    soon__stream_data(s, (ssize_t)m, &buf);
  }
  return done;
}

/* Receive again while reading, but only with nothing stashed: the bound
 * on the stash (struct ring) depends on it. */
static void recv_resume(soon_stream *s) {
  ring *r = ring_of(s);
  int err;
  if (!wants_bytes(s))
    return;
  if (r->bulk)
    err = r->in.in_flight ? 0 : ring_watch(s);
  else
    err = ring_arm(s, SOON__OP_RECV);
  if (err)
    soon__stream_end(s, err, NULL);
}

/* Tell what was stashed, then how the stream ended, if it did; or once it
 * is all told, receive again. */
static void tell_stash(soon_stream *s) {
  ring *r = ring_of(s);
  if (!(s->stream_flags & SOON__STREAM_READING))
    return;
  r->stash_off +=
      tell_bytes(s, r->stash + r->stash_off, r->stash_len - r->stash_off);
  if (!stash_empty(r) || !(s->stream_flags & SOON__STREAM_READING))
    return;
  if (!r->stash_end) {
    recv_resume(s);
    return;
  }
  int end = r->stash_end;
  r->stash_end = 0;
  soon__stream_end(s, end, NULL);
}

/* What is stashed first; the receive waits until it is told. */
static int ring_read_start(soon_stream *s) {
  ring *r = ring_of(s);
  if (!stash_empty(r) || r->stash_end) {
    feed(s);
    return 0;
  }
  if (r->bulk)
    return r->in.in_flight ? 0 : ring_watch(s);
  return ring_arm(s, SOON__OP_RECV);
}

/* A receive left in the ring would keep taking data in: stop it. */
static void ring_read_stop(soon_stream *s) {
  ring *r = ring_of(s);
  if (r->in.in_flight)
    soon__op_cancel(s->loop, &r->in);
  if (r->bulk)
    ring_watch(s); /* no longer readable */
}

/* Count a receive towards bulk; there, the multishot receive is cancelled
 * and the stream reads by readiness once its last report is in. */
static void bulk_count(soon_stream *s, size_t len) {
  ring *r = ring_of(s);
  if (len >= BULK_MIN)
    r->bulk_score++;
  else if (r->bulk_score)
    r->bulk_score--;
  if (r->bulk_score < BULK_ENTER)
    return;
  r->bulk = true;
  r->bulk_score = 0;
  if (r->in.in_flight)
    soon__op_cancel(s->loop, &r->in); /* else recv_resume watches */
}

/* Readable, reading in bulk: read(2) into the reader's buffers, as the
 * readiness transport does. A report that brings little counts towards
 * going back to the ring. */
static void bulk_read(soon_stream *s) {
  ring *r = ring_of(s);
  size_t total = soon__ready_read(s);
  if (!(s->stream_flags & SOON__STREAM_READING) ||
      soon__closing((soon_handle *)s))
    return; /* stopped, ended or closed by a callback */
  if (total >= BULK_MIN) {
    r->bulk_score = 0;
  } else if (++r->bulk_score >= BULK_LEAVE) {
    r->bulk = false; /* small messages again: back to the ring */
    r->bulk_score = 0;
    ring_watch(s);
    recv_resume(s);
  }
}

/* Chaos: how much of a receive to tell now. The rest waits in the stash
 * for the next iteration, so one receive is never one message; all of it
 * when the stash cannot make room (chaos must not add failures). */
static size_t chaos_cut(ring *r, size_t len) {
  size_t now = 1 + soon__chaos_below(r->stream->loop, (unsigned)len);
  char *stash = soon__grow(r->stash, &r->stash_cap, len - now, 1, 4096);
  if (!stash)
    return len;
  r->stash = stash;
  return now;
}

static void received(soon_stream *s, const soon__op *op) {
  ring *r = ring_of(s);
  bool reading = s->stream_flags & SOON__STREAM_READING;
  /* The end is set (bytes dropped for want of memory, say): what the
   * receive still brings would be told after a gap, or as a clean EOF. */
  if (r->stash_end)
    return;
  if (op->res > 0) {
    size_t len = (size_t)op->res, done = 0;
    if (!r->bulk)
      bulk_count(s, len);
    else if (r->in.in_flight) /* the cancel found it running: again */
      soon__op_cancel(s->loop, &r->in);
    bool was_empty = stash_empty(r);
    if (was_empty && reading) {
      size_t now = SOON__CHAOS(s->loop) ? chaos_cut(r, len) : len;
      done = tell_bytes(s, op->data, now);
      if (done == now && now < len && (s->stream_flags & SOON__STREAM_READING))
        feed(s);
    }
    if (done < len) {
      stash_put(r, (const char *)op->data + done, len - done);
      /* Still reading, but no buffer for them: receive no more until they
       * are told (a read_stop has cancelled the receive already). */
      if (was_empty && r->in.in_flight &&
          (s->stream_flags & SOON__STREAM_READING))
        soon__op_cancel(s->loop, &r->in);
    }
  } else if (op->res != -ECANCELED && op->res != -ENOBUFS) {
    int end = op->res == 0 ? SOON_EOF : (int)op->res;
    if (stash_empty(r) && reading)
      soon__stream_end(s, end, NULL);
    else
      r->stash_end = end;
  }
}

/* ------------------------------------------------------------ accepting */

static void tell_accepted(soon_stream *s) {
  ring *r = ring_of(s);
  while (soon__stream_accepting(s) && r->naccepted) {
    int fd = r->accepted[0];
    memmove(r->accepted, r->accepted + 1, --r->naccepted * sizeof(int));
    soon__stream_accepted(s, fd);
  }
}

/* Whether a listener should have its accept in the ring: listening, not
 * closing, and room behind accepted_fd. */
static bool accept_wanted(const soon_stream *s) {
  return ring_of(s)->naccepted < ACCEPT_BACKLOG &&
         (s->stream_flags & SOON__STREAM_LISTENING) &&
         !soon__closing((const soon_handle *)s);
}

static void accepted(soon_stream *s, const soon__op *op) {
  ring *r = ring_of(s);
  int res = (int)op->res;
  if (res >= 0) {
    int *a = soon__grow(r->accepted, &r->accepted_cap, r->naccepted + 1,
                        sizeof *a, 8);
    if (!a) {
      close(res); /* the peer sees a reset, as on a full backlog */
      return;
    }
    r->accepted = a;
    r->accepted[r->naccepted++] = res;
    tell_accepted(s);
    /* Nobody takes them: stop accepting until soon_accept does. */
    if (r->naccepted >= ACCEPT_BACKLOG && r->in.in_flight)
      soon__op_cancel(s->loop, &r->in);
    return;
  }
  if (res == -EMFILE || res == -ENFILE)
    soon__drop_connections(s->io.fd);
  if (res != -ECANCELED && res != -ECONNABORTED && res != -EINTR &&
      res != -EAGAIN && (s->stream_flags & SOON__STREAM_LISTENING))
    soon__stream_accepted(s, res);
}

static int ring_listen(soon_stream *s) { return ring_arm(s, SOON__OP_ACCEPT); }

/* After soon_accept took accepted_fd: the next one, and accept again if
 * it had stopped. */
static void ring_accept_resume(soon_stream *s) {
  if (ring_of(s)->naccepted)
    feed(s);
  if (accept_wanted(s))
    ring_arm(s, SOON__OP_ACCEPT);
}

/* ------------------------------------------------------------ sending */

/* Chaos: send a random prefix of the head's first buffer, so writers see
 * short sends; the rest goes later, in order. False if out of memory. */
static bool chaos_prefix(ring *r, const soon_write_req *head) {
  size_t len = head->nbufs ? head->bufs[0].len : 0;
  struct iovec *iov;
  if (!len || !(iov = soon__grow(r->iov, &r->iov_cap, 1, sizeof *iov, 16)))
    return false;
  r->iov = iov;
  iov->iov_base = head->bufs[0].base;
  iov->iov_len =
      1 + soon__chaos_below(r->stream->loop,
                            len > UINT_MAX ? UINT_MAX : (unsigned)len);
  r->out.rw.iov = iov;
  r->out.rw.niov = 1;
  return true;
}

/* Point the send at the waiting writes' buffers: the head's own array when
 * it is alone, else all of them (up to IOV_MAX) gathered into r->iov. Out
 * of memory to gather, the head goes alone. */
static void gather(soon_stream *s, soon_write_req *head) {
  ring *r = ring_of(s);
  soon__op *op = &r->out;
  op->code = SOON__OP_SEND;
  op->rw.fd = s->io.fd;
  op->rw.iov = head->bufs;
  op->rw.niov = head->nbufs < IOV_MAX ? head->nbufs : IOV_MAX;
  if (SOON__CHAOS(s->loop) && chaos_prefix(r, head))
    return;
  if (head->node.queue.next == &s->writes.all || op->rw.niov == IOV_MAX)
    return;
  unsigned niov = 0;
  for (soon_queue *q = &head->node.queue; q != &s->writes.all && niov < IOV_MAX;
       q = q->next) {
    soon_write_req *req = soon__container_of(q, soon_write_req, node.queue);
    if (req->file >= 0)
      break; /* sent by itself, after these */
    unsigned take = IOV_MAX - niov < req->nbufs ? IOV_MAX - niov : req->nbufs;
    struct iovec *iov =
        soon__grow(r->iov, &r->iov_cap, niov + take, sizeof *iov, 16);
    if (!iov)
      return;
    r->iov = iov;
    memcpy(r->iov + niov, req->bufs, take * sizeof *r->iov);
    niov += take;
  }
  op->rw.iov = r->iov;
  op->rw.niov = niov;
}

/* Send what waits, in one sendmsg in the ring: only one send at a time
 * keeps the writes in order. A large write goes by sendmsg(2) first, as on
 * readiness: in the ring a bulk writer got one send a wait, where the
 * direct call lets the write callbacks of the pending phase write again at
 * once (docs/uring.md has the numbers). What the kernel does not take then
 * goes in the ring, which waits for room (waiting for writability instead
 * measured no better). Small writes stay in the ring, where they cost no
 * syscall of their own, unless the stream reads by readiness (bulk): a
 * readable report is told before the send reports of the same wait, and a
 * reader that closes on the answer to its write would see that write,
 * whose bytes were sent, told -ECANCELED (tests/test_tcp.c,
 * test_many_connections under chaos). A write done by the call is done
 * before anything it makes the peer answer. */
static void ring_send(soon_stream *s) {
  ring *r = ring_of(s);
  soon_write_req *req;
  while (!r->out.in_flight && (req = soon__stream_head(s))) {
    if (req->file >= 0) { /* by sendfile, between sends */
      ssize_t n = soon__ready_send_file(s, req);
      if (n == -EAGAIN)
        break;
      soon__stream_sent(s, n);
      continue;
    }
    if (r->bulk || soon__bufs_size(req->bufs, req->nbufs) >= BULK_MIN) {
      ssize_t n = soon__ready_try_write(s, req->bufs, req->nbufs);
      if (n > 0 || (n < 0 && n != -EAGAIN)) {
        soon__stream_sent(s, n);
        continue;
      }
    }
    gather(s, req);
    int err = soon__op_submit(s->loop, &r->out);
    if (err)
      soon__stream_sent(s, err);
  }
  ring_watch(s);
}

/* ------------------------------------------------------------ connecting */

/* A TCP stream connects in the ring; a Unix socket by connect(2), which
 * answers at once, where the ring would wait out a full backlog instead of
 * reporting EAGAIN; so does a stream the ring cannot take the connect of. */
static int ring_connect(soon_stream *s, const struct sockaddr *addr,
                        unsigned len) {
  ring *r = ring_of(s);
  if (addr->sa_family != AF_UNIX && len <= sizeof r->peer &&
      !r->out.in_flight) {
    memcpy(&r->peer, addr, len);
    r->out.code = SOON__OP_CONNECT;
    r->out.connect.fd = s->io.fd;
    r->out.connect.addr = &r->peer;
    r->out.connect.addrlen = len;
    if (soon__op_submit(s->loop, &r->out) == 0)
      return -EINPROGRESS;
  }
  return soon__stream_connect_now(s, addr, len, ring_watch);
}

/* ------------------------------------------------------------ reports */

/* The last report of a closing stream's ops lets its close callback run. */
static void release_if_idle(soon_stream *s) {
  ring *r = ring_of(s);
  if (!r->in.in_flight && !r->out.in_flight)
    soon__handle_release((soon_handle *)s);
}

static void ring_in_done(soon__op *op) {
  soon_stream *s = soon__container_of(op, ring, in)->stream;
  if (soon__closing((soon_handle *)s)) {
    if (op->code == SOON__OP_ACCEPT && op->res >= 0)
      close((int)op->res);
    release_if_idle(s);
    return;
  }
  if (op->code == SOON__OP_ACCEPT) {
    accepted(s, op);
    if (op->in_flight || !accept_wanted(s))
      return;
    if (op->res == -EMFILE || op->res == -ENFILE || ring_arm(s, op->code))
      ring_watch(s); /* wait for readability, then accept again */
    return;
  }
  received(s, op);
  /* A multishot receive ends on -ENOBUFS, a cancel, or a full CQ: go on
   * (once the stash is told, if it holds bytes). */
  recv_resume(s);
}

static void ring_out_done(soon__op *op) {
  soon_stream *s = soon__container_of(op, ring, out)->stream;
  if (soon__closing((soon_handle *)s)) {
    release_if_idle(s); /* its request was cancelled by the close */
    return;
  }
  if (op->code == SOON__OP_CONNECT) {
    soon__stream_connected(s, (int)op->res);
    return;
  }
  soon__stream_sent(s, (ssize_t)op->res);
  soon__stream_writable(s); /* what is left, and what was queued meanwhile */
}

static void ring_feed_cb(soon__deferred *p) {
  soon_stream *s = soon__container_of(p, ring, feed)->stream;
  tell_accepted(s);
  tell_stash(s);
}

/* A connect(2) finished, a connection waits for a listener that was out
 * of fds (accept again), or a file write can go on. */
static void ring_io_cb(soon_io *io, int status, int events) {
  soon_stream *s = soon__container_of(io, soon_stream, io);
  (void)status;
  if ((events & SOON_READABLE) && bulk_waits(s)) {
    bulk_read(s);
    if (soon__closing((soon_handle *)s) || !(events & SOON_WRITABLE))
      return; /* else a connect or a file write may wait for it too */
  }
  if (s->stream_flags & SOON__STREAM_LISTENING) {
    ring_arm(s, SOON__OP_ACCEPT);
    ring_watch(s);
  } else if (s->stream_flags & SOON__STREAM_CONNECTING) {
    int err = soon__connect_result(s->io.fd);
    if (err != -EINPROGRESS) /* else a spurious wakeup */
      soon__stream_connected(s, err);
  } else if (file_waits(s)) {
    soon__stream_writable(s);
  }
}

/* ------------------------------------------------------------ closing */

/* Stop what is in the ring. The close callback waits for the last report,
 * since the kernel may still write into the stream's memory. */
static void ring_close(soon_stream *s) {
  ring *r = ring_of(s);
  soon__queue_remove(&r->feed.queue);
  if (r->in.in_flight)
    soon__op_cancel(s->loop, &r->in);
  if (r->out.in_flight)
    soon__op_cancel(s->loop, &r->out);
  if (r->in.in_flight || r->out.in_flight)
    soon__handle_hold((soon_handle *)s);
  for (size_t i = 0; i < r->naccepted; i++)
    close(r->accepted[i]);
  r->naccepted = 0;
}

const soon__transport_ops soon__transport_ring = {
    .open = ring_open,
    .read_start = ring_read_start,
    .read_stop = ring_read_stop,
    .send = ring_send,
    .try_write = soon__ready_try_write, /* a direct write is a syscall */
    .connect = ring_connect,
    .listen = ring_listen,
    .accept_resume = ring_accept_resume,
    .close = ring_close,
    .free = ring_free,
};
