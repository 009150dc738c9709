/* net.h: what the network files share: socket helpers, the request queue of
 * stream writes and UDP sends, and streams on their transport contract. */
#ifndef SOON_NET_H
#define SOON_NET_H

#include "../core/core.h"

#include <sys/socket.h>

/* ------------------------------------------------------------ sockets */

/* A non-blocking, close-on-exec socket, or a negative errno. */
int soon__socket(int domain, int type, int protocol);
/* Make fd non-blocking (and close-on-exec); 0 or a negative errno. */
int soon__nonblock(int fd);
/* The length of addr by its family: sockaddr_in or sockaddr_in6, else 0. */
unsigned soon__addr_len(const struct sockaddr *addr);
/* An int socket option on fd: 0, -EBADF for no socket yet, or -errno. */
int soon__set_opt(int fd, int level, int name, int value);
/* getsockname or getpeername (get) of fd into name, *namelen bytes on entry,
 * the address's length on return: 0, -EINVAL, -EBADF or -errno. */
int soon__sock_name(int fd, struct sockaddr *name, int *namelen,
                    int (*get)(int, struct sockaddr *, socklen_t *));
/* connect(2) on a non-blocking fd: 0, -EINPROGRESS (finish it with
 * soon__connect_result once fd is writable), or the error. */
int soon__connect(int fd, const struct sockaddr *addr, unsigned len);
/* A connect in progress: -EINPROGRESS while it still is, else its result. */
int soon__connect_result(int fd);
/* Keep an fd in reserve for soon__drop_connections (from soon_listen). */
void soon__reserve_fd(void);
/* Out of fds (EMFILE, ENFILE), connections waiting in the backlog keep a
 * listener readable and the loop spinning: the reserved fd is given up to
 * accept and close them (as libuv and nginx do), then taken again. */
void soon__drop_connections(int listen_fd);

/* ------------------------------------------------------------ requests */

/* A handle's requests in order (soon__reqq, soon__qnode: soon/private.h):
 * each waits until the kernel takes it, then is done with a status and its
 * callback owed, then its callback runs. Requests finish in the order they
 * were queued, so the done ones are always the front of the queue. Nothing
 * is allocated. */

/* How many rounds of owed callbacks one run takes: see soon__reqq_run. */
#define SOON__REQQ_ROUNDS 8

static inline void soon__reqq_init(soon__reqq *q) {
  soon__queue_init(&q->all);
  q->waiting = &q->all;
}

/* The first waiting request, or NULL. */
static inline soon__qnode *soon__reqq_head(const soon__reqq *q) {
  return q->waiting == &q->all
             ? NULL
             : soon__container_of(q->waiting, soon__qnode, queue);
}

/* Whether callbacks are owed. */
static inline bool soon__reqq_owed(const soon__reqq *q) {
  return q->all.next != q->waiting;
}

/* Queue n behind every other request, waiting. */
static inline void soon__reqq_push(soon__reqq *q, soon__qnode *n) {
  soon__queue_insert_tail(&q->all, &n->queue);
  if (q->waiting == &q->all)
    q->waiting = &n->queue;
}

/* Take back n, waiting and never told: its call failed after all. */
static inline void soon__reqq_remove(soon__reqq *q, soon__qnode *n) {
  if (q->waiting == &n->queue)
    q->waiting = n->queue.next;
  soon__queue_remove(&n->queue);
}

/* The first waiting request is done with status: its callback is owed. */
static inline void soon__reqq_finish(soon__reqq *q, int status) {
  soon__qnode *n = soon__reqq_head(q);
  n->status = status;
  q->waiting = q->waiting->next;
}

/* Every waiting request is done with status (-ECANCELED when closing). */
static inline void soon__reqq_finish_all(soon__reqq *q, int status) {
  while (soon__reqq_head(q))
    soon__reqq_finish(q, status);
}

/* Run the owed callbacks in order (tell: one request's), in up to
 * SOON__REQQ_ROUNDS rounds: a round runs those owed when it starts, so
 * callbacks that refill the queue and get done at once run in the next
 * round, and a writer that always refills cannot starve the loop (the rest
 * waits for the handle's next pending phase, which the call that made them
 * done has asked for). Stops once h is closing: what is owed then is run by
 * soon__reqq_run_closed, in h's close phase, before its close callback, and
 * never from inside soon_close. */
static inline void soon__reqq_run(soon__reqq *q, const soon_handle *h,
                                  void (*tell)(soon__qnode *n)) {
  /* Inline, so that the caller's tell is a direct call (or inlined): one
   * write callback per pending phase is the common case (pingpong). */
  for (int round = 0;
       round < SOON__REQQ_ROUNDS && soon__reqq_owed(q) && !soon__closing(h);
       round++) {
    soon_queue *last = q->waiting->prev; /* this round's last */
    bool was_last;
    do {
      soon_queue *n = q->all.next;
      was_last = n == last;
      soon__queue_remove(n);
      tell(soon__container_of(n, soon__qnode, queue));
    } while (!was_last && !soon__closing(h));
  }
}
/* From the handle's close phase: every owed callback. */
void soon__reqq_run_closed(soon__reqq *q, void (*tell)(soon__qnode *n));

/* ------------------------------------------------------------ streams */

/* stream_flags */
enum {
  SOON__STREAM_READING = 1u << 0,
  SOON__STREAM_LISTENING = 1u << 1,
  SOON__STREAM_SHUT = 1u << 2,       /* shutdown(SHUT_WR) done, or failed */
  SOON__STREAM_CONNECTING = 1u << 3, /* until the transport reports */
  SOON__STREAM_SOCKET = 1u << 4,     /* writes use send(MSG_NOSIGNAL) */
};

/* Initialise the stream part of a tcp or pipe handle (no fd yet). */
void soon__stream_init(soon_loop *loop, soon_stream *s, soon_handle_type type);
/* Give the stream its fd (non-blocking already). -EBUSY if it has one. */
int soon__stream_open(soon_stream *s, int fd);
/* A socket of domain for a stream that has none yet (made by bind or
 * connect, once the family is known): 0 or a negative errno. */
int soon__stream_socket(soon_stream *s, int domain);
/* The stream's handle ops, for types that wrap them (tty). */
void soon__stream_close(soon_handle *h);
void soon__stream_finish(soon_handle *h);
static inline int soon__stream_fd(const soon_stream *s) { return s->io.fd; }
/* Connect s to addr (len bytes) and tell cb: the whole connect, whichever
 * way the transport makes it. */
int soon__stream_connect_to(soon_connect_req *req, soon_stream *s,
                            const struct sockaddr *addr, unsigned len,
                            soon_connect_cb cb);

/* ------------------------------------------------------------ transports
 *
 * A stream moves its bytes through a transport, as the loop waits through a
 * backend. stream.c holds the API and the state machine: the write queue,
 * shutdown after the writes, the connect request, reading started or
 * stopped, the connection handed to soon_accept, closing. A transport holds
 * what meets the kernel:
 *
 *   transport_ready.c  readiness of the stream's fd watcher, non-blocking
 *                      syscalls; any fd, on every backend;
 *   transport_ring.c   native ops in io_uring: one multishot receive (or
 *                      accept), one send (or connect) at a time; sockets,
 *                      where the backend runs socket ops.
 *
 * The transport is chosen once, when the stream gets its fd (the first in
 * stream.c's list whose open takes it), and kept until the stream's close
 * phase. stream.c calls its table at the points below, the stream's flags
 * already saying the new state, and never asks which transport it has.
 *
 * A transport reports back only through the soon__stream_* reports below.
 * Reports that run the caller's callbacks (data, end, connected, accepted,
 * writable) are made from the transport's own events (readiness, a
 * completion, a feed in the poll phase), never from inside a table call;
 * every read callback runs in the poll phase. sent only counts bytes, and
 * may be made from send. Once the stream is closing, a transport reports
 * nothing: what is owed is told by the close phase.
 *
 * A transport that keeps state per stream embeds soon__transport first in
 * it; one that keeps none points every stream at one shared instance. */

typedef struct soon__transport_ops soon__transport_ops;

/* What a stream's transport field points to. */
typedef struct soon__transport {
  const soon__transport_ops *ops;
} soon__transport;

struct soon__transport_ops {
  /* Take s, its fd just set (server: the listener it was accepted from, or
   * NULL): 0 and s->transport set, or nonzero to leave s to the next
   * transport. The last one takes every stream. */
  int (*open)(soon_stream *s, soon_stream *server);
  /* Reading started (READING set): 0 or a negative errno. */
  int (*read_start)(soon_stream *s);
  /* Reading stopped (READING cleared): take in nothing more. */
  void (*read_stop)(soon_stream *s);
  /* Writes wait, or more than before, and the stream is not connecting:
   * hand them to the kernel in order, reporting each result through
   * soon__stream_sent; those that cannot be written now go when the
   * transport can (then soon__stream_writable). */
  void (*send)(soon_stream *s);
  /* Write what the kernel takes at once, nothing waiting: the byte count,
   * or -EAGAIN or another negative errno. */
  ssize_t (*try_write)(soon_stream *s, const soon_buf *bufs, unsigned nbufs);
  /* Connect (CONNECTING set): -EINPROGRESS, then soon__stream_connected
   * later; else the result now (0 or a negative errno), told by stream.c. */
  int (*connect)(soon_stream *s, const struct sockaddr *addr, unsigned len);
  /* Listening started (LISTENING set, listen(2) done): 0 or a negative
   * errno. Each connection goes to soon__stream_accepted while accepted_fd
   * is -1; one waiting there pauses the transport until accept_resume. */
  int (*listen)(soon_stream *s);
  /* soon_accept took accepted_fd: offer the next connection. */
  void (*accept_resume)(soon_stream *s);
  /* Closing, from soon_close, the fd still open: stop what is under way.
   * A transport that the kernel still reads or writes for (ops in the
   * ring) holds the handle (soon__handle_hold) until its last report. */
  void (*close)(soon_stream *s);
  /* The stream's state given back: its close phase, or an open undone. */
  void (*free)(soon_stream *s);
};

extern const soon__transport_ops soon__transport_ring;
extern const soon__transport_ops soon__transport_ready;

/* The readiness transport's reads from a readable fd into the reader's
 * buffers (up to 32 of 64 KiB): the bytes read. The ring's bulk streams
 * read this way too. */
size_t soon__ready_read(soon_stream *s);
/* The readiness transport's direct write, for the ring's try_write too. */
ssize_t soon__ready_try_write(soon_stream *s, const soon_buf *bufs,
                              unsigned nbufs);
/* One sendfile(2) of what is left of req, a soon_write_file at the head:
 * the byte count, or a negative errno (-EAGAIN: the kernel is full;
 * -ENODATA: the file ended first). The ring's file writes too: io_uring
 * has no sendfile, and a splice would need a pipe per stream. */
ssize_t soon__ready_send_file(soon_stream *s, soon_write_req *req);

/* A transport's connect by connect(2): the result now, or -EINPROGRESS and
 * watch (the transport's) waits for writability, which ends it: the
 * transport's readiness callback reports soon__connect_result. */
int soon__stream_connect_now(soon_stream *s, const struct sockaddr *addr,
                             unsigned len, int (*watch)(soon_stream *s));
/* Start, change or stop the stream's fd watcher to events (0: none), with
 * the transport's callback: 0 or a negative errno. */
int soon__stream_watch(soon_stream *s, int events, soon_io_cb cb);

/* The first write waiting for the kernel, or NULL. */
static inline soon_write_req *soon__stream_head(const soon_stream *s) {
  soon__qnode *n = soon__reqq_head(&s->writes);
  return n ? soon__container_of(n, soon_write_req, node) : NULL;
}

/* Whether a listener takes a connection now: one waits for soon_accept. */
static inline bool soon__stream_accepting(const soon_stream *s) {
  return (s->stream_flags & SOON__STREAM_LISTENING) && s->accepted_fd < 0;
}

/* ----- reports, from the transports */

/* A buffer for up to size bytes from the reader's alloc callback into buf:
 * true, or false when it gave none (the read callback got -ENOBUFS). */
bool soon__stream_alloc(soon_stream *s, size_t size, soon_buf *buf);
/* n bytes were read into buf (0: none, buf handed back). */
static inline void soon__stream_data(soon_stream *s, ssize_t n,
                                     const soon_buf *buf) {
  SOON__TELL(s->loop, SOON__PHASE_LOOP, s->type, s, soon__status_of(n),
             s->read_cb(s, n, buf));
}
/* Reading ended: SOON_EOF or an error. Reading stops, then the read
 * callback gets status, with buf handed back (NULL: none). */
void soon__stream_end(soon_stream *s, int status, const soon_buf *buf);
/* The bytes req has still to write. */
static inline size_t soon__write_left(const soon_write_req *req) {
  return req->file >= 0 ? req->file_left
                        : soon__bufs_size(req->bufs, req->nbufs);
}

/* Take up to *left bytes off the front of req's buffers (or file range):
 * whether it is all written. */
SOON__INLINE bool soon__take_written(soon_write_req *req, size_t *left) {
  if (req->file >= 0) {
    size_t n = *left < req->file_left ? *left : req->file_left;
    req->file_off += (int64_t)n;
    req->file_left -= n;
    *left -= n;
    return !req->file_left;
  }
  while (req->nbufs && *left >= req->bufs->len) {
    *left -= req->bufs->len;
    req->bufs++;
    req->nbufs--;
  }
  if (!req->nbufs)
    return true;
  req->bufs->base += *left;
  req->bufs->len -= *left;
  *left = 0;
  return false;
}

/* The kernel took res bytes of the waiting writes (< 0: the first waiting
 * write failed with res): the writes it finished are done. Inline: every
 * write's result comes through here, and the call cost 10 Ir of 41. */
SOON__INLINE void soon__stream_sent(soon_stream *s, ssize_t res) {
  soon_write_req *req = soon__stream_head(s);
  if (res < 0) {
    s->write_queue_size -= soon__write_left(req);
    soon__reqq_finish(&s->writes, (int)res);
    return;
  }
  size_t left = (size_t)res;
  s->write_queue_size -= left;
  for (; req && soon__take_written(req, &left); req = soon__stream_head(s))
    soon__reqq_finish(&s->writes, 0);
}

/* The transport can take more (the fd is writable, a send completed):
 * send what waits, then run the write callbacks owed. */
void soon__stream_writable(soon_stream *s);
/* The connect finished with status (0 or a negative errno). */
void soon__stream_connected(soon_stream *s, int status);
/* A listener accepted fd (>= 0), now accepted_fd, or failed (< 0): its
 * connection callback is told. */
void soon__stream_accepted(soon_stream *s, int fd);

#endif
