/* conn.c: a server connection's read path: input buffers, parsing, the
 * body (gathered, streamed or drained), dispatch, timeouts and closing. */
#include "http.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------ sizes */

/* A connection's first input buffer: a browser's head fits, and so do 16
 * pipelined small requests. It is kept for the connection's life, so that
 * a keep-alive request allocates nothing (1,000 idle connections hold
 * about 12 MB; nginx frees its header buffer on idle, at a malloc per
 * request). */
#define IN_FIRST 4096
/* Less room than this at the end of the input: compact or grow before
 * reading, so no read is made tiny. */
#define IN_MIN_ROOM 1024
/* More output waiting than this: handle no further request until it has
 * gone, so a client that sends without reading cannot grow it unbounded. */
#define OUT_HIGH (64 * 1024)
/* stream_body: body bytes held before the handler starts reading them. */
#define STREAM_AHEAD (64 * 1024)
/* A closing connection reads and drops what the client still sends, for
 * at most this long, so its last response is not destroyed by a reset
 * (RFC 9112 section 9.6; nginx's lingering_close). */
#define LINGER_MS 5000

/* ------------------------------------------------------------ input */

static void shift(soon_http_span *sp, const char *from, size_t len, char *to) {
  uintptr_t b = (uintptr_t)sp->base, f = (uintptr_t)from;
  if (sp->base && b >= f && b <= f + len)
    sp->base = to + (b - f);
}

/* The input moved (grown, or compacted): the head's spans follow it. Only
 * while nobody holds them (never while the handler has the request). */
static void rebase(conn *c, const char *from, size_t len, char *to) {
  if (!c->hlen)
    return; /* the parser keeps offsets until the head is whole */
  soon_http_parser *p = &c->p;
  shift(&p->method, from, len, to);
  shift(&p->target, from, len, to);
  shift(&p->reason, from, len, to);
  shift(&p->host, from, len, to);
  for (unsigned i = 0; i < p->nheaders; i++) {
    shift(&p->headers[i].name, from, len, to);
    shift(&p->headers[i].value, from, len, to);
  }
}

/* Move the message to the buffer's front: room at the end without a
 * bigger buffer. */
static void compact(conn *c) {
  if (!c->msg)
    return;
  size_t n = c->ilen - c->msg;
  memmove(c->ibuf, c->ibuf + c->msg, n);
  rebase(c, c->ibuf + c->msg, n, c->ibuf);
  c->ilen -= c->msg;
  c->bpos -= c->msg;
  c->msg = 0;
}

/* A buffer of at least cap bytes, the message at its front: malloc, copy,
 * then free, so the old spans are still valid while they are rebased. */
static bool grow(conn *c, size_t cap) {
  if (cap < IN_FIRST)
    cap = IN_FIRST;
  char *p = malloc(cap);
  if (!p)
    return false;
  size_t n = c->ilen - c->msg;
  if (c->ibuf) {
    memcpy(p, c->ibuf + c->msg, n);
    rebase(c, c->ibuf + c->msg, n, p);
    free(c->ibuf);
  }
  c->ibuf = p;
  c->icap = cap;
  c->ilen = n;
  c->bpos -= c->msg;
  c->msg = 0;
  return true;
}

static void on_alloc(soon_handle *h, size_t suggested, soon_buf *buf) {
  conn *c = h->data;
  (void)suggested;
  *buf = (soon_buf){NULL, 0};
  if (c->rs == RS_LINGER)
    c->ilen = c->msg = c->bpos = 0; /* what comes now is dropped */
  if (c->icap > BUF_KEEP && !c->ilen && c->rs == RS_HEAD) {
    free(c->ibuf); /* a large body's, idle again: the first size back */
    c->ibuf = NULL;
    c->icap = 0;
  }
  if (c->icap - c->ilen < IN_MIN_ROOM && !c->held) {
    compact(c);
    size_t want = 0;
    if (c->icap - c->ilen < IN_MIN_ROOM)
      want = c->icap ? c->icap * 2 : IN_FIRST;
    /* A declared body is gathered whole: its size at once. */
    if (c->rs == RS_BODY && c->p.body == SOON_HTTP_BODY_LENGTH) {
      size_t need = c->hlen + (size_t)c->p.content_length + IN_MIN_ROOM;
      if (need > want && c->icap - c->ilen < IN_MIN_ROOM)
        want = need;
    }
    if (want && !grow(c, want))
      return; /* the read callback hears -ENOBUFS and closes */
  }
  if (c->ibuf)
    *buf = (soon_buf){c->ibuf + c->ilen, c->icap - c->ilen};
}

/* ------------------------------------------------------------ closing */

static void on_stream_closed(soon_handle *h) {
  conn *c = h->data;
  soon_http_server *s = c->server;
  soon__http_enter(c);
  c->stream_closed = true;
  s->nopen--;
  soon__http_leave(c);
  soon__http_server_check(s);
}

static void on_timer_closed(soon_handle *h) {
  conn *c = h->data;
  soon__http_enter(c);
  c->timer_closed = true;
  soon__http_leave(c);
}

/* The handler's body callback, once with an error: the request is over. */
static void reader_fail(conn *c, int err) {
  soon_http_body_cb cb = c->body_cb;
  c->reader = RD_NONE;
  c->body_cb = NULL;
  c->held = false;
  cb(&c->req, err, NULL, 0);
  soon__http_done(c);
}

void soon__http_done(conn *c) {
  soon_http_done_cb cb = c->server->o.on_done;
  if (cb)
    cb(&c->req, c->status, c->body_bytes);
}

/* Close the stream now. What is owed still gets told: writes in flight
 * fail (soon cancels them), a body being read fails here. A request the
 * handler holds with nothing outstanding keeps the struct until the
 * handler's next call on it (which answers -EPIPE). */
void soon__http_conn_close(conn *c, int err) {
  if (c->rs == RS_CLOSED)
    return;
  soon_http_server *s = c->server;
  c->rs = RS_CLOSED;
  c->reading = false;
  s->nconns--;
  soon_close(&c->stream->h, on_stream_closed);
  soon_close((soon_handle *)&c->timer, on_timer_closed);
  if (c->uw == UW_QUEUED) { /* never sent: told -ECANCELED, from the deferral */
    c->uw = UW_OWED;
    soon__http_owe(c);
  }
  if (c->held && (c->reader == RD_NEW || c->reader == RD_ON) && !c->body_done)
    reader_fail(c, err < 0 ? err : SOON_HTTP_ETRUNCATED);
  soon__http_resume_accept(s);
}

static void on_shutdown(soon_shutdown_req *req, int status) {
  (void)req;
  (void)status;
}

/* Everything written: half-close, then read until the client closes (or
 * the linger time is out), so that unread request bytes do not make the
 * kernel reset the connection under the response. */
static void start_linger(conn *c) {
  soon_http_server *s = c->server;
  if (c->peer_eof || s->closing ||
      soon_shutdown(&c->shut, &c->stream->s, on_shutdown)) {
    soon__http_conn_close(c, 0);
    return;
  }
  c->rs = RS_LINGER;
  c->ilen = c->msg = c->bpos = 0;
  uint64_t ms = LINGER_MS;
  if (s->o.keepalive_timeout_ms < ms)
    ms = s->o.keepalive_timeout_ms;
  if (s->o.header_timeout_ms < ms)
    ms = s->o.header_timeout_ms;
  c->read_deadline = soon__http_now(c) + ms;
  c->send_deadline = 0;
}

/* Close from the deferral: the calls that find a failure cannot close
 * (that would call back from inside them). */
void soon__http_fail_later(conn *c, int err) {
  if (!c->abort_err)
    c->abort_err = err;
  soon__http_owe(c);
}

/* ------------------------------------------------------------ requests */

static void next_message(conn *c) {
  soon_http_server *s = c->server;
  if (c->close_after) {
    c->rs = RS_FINAL;
    return;
  }
  c->msg = c->bpos;
  if (c->msg == c->ilen)
    c->msg = c->ilen = 0;
  soon_http_parser_reset(&c->p);
  c->bpos = c->msg;
  c->hlen = c->blen = 0;
  c->head_started = c->body_done = c->cont_sent = c->head_req = false;
  c->resp = RESP_NONE;
  c->reader = RD_NONE;
  c->rs = RS_HEAD;
  c->read_deadline = soon__http_now(c) + s->o.keepalive_timeout_ms;
  soon__http_obuf_trim(&c->out[c->fill]);
}

static void finish_request(conn *c) {
  c->held = false;
  c->body_cb = NULL;
  c->reader = RD_NONE;
  soon__http_done(c);
  if (c->rs == RS_CLOSED)
    return;
  if (c->close_after) {
    c->rs = RS_FINAL;
    return;
  }
  if (!c->body_done) {
    c->rs = RS_DRAIN;
    c->read_deadline = soon__http_now(c) + c->server->o.body_timeout_ms;
    return;
  }
  next_message(c);
}

/* The request is over once its response ended and the handler has heard
 * of its last write. */
void soon__http_try_finish(conn *c) {
  if (c->held && c->resp == RESP_ENDED && c->uw == UW_NONE)
    finish_request(c);
}

static void split_target(soon_http_req *q) {
  const char *t = q->target.base;
  const char *mark = q->target.len ? memchr(t, '?', q->target.len) : NULL;
  if (!mark) {
    q->path = q->target;
    q->query = (soon_http_span){t + q->target.len, 0};
    return;
  }
  q->path = (soon_http_span){t, (size_t)(mark - t)};
  q->query = (soon_http_span){mark + 1, q->target.len - q->path.len - 1};
}

/* The request as the handler (or on_done) sees it, from a whole head. */
static void fill_req(conn *c) {
  soon_http_parser *p = &c->p;
  soon_http_req *q = &c->req;
  q->data = NULL;
  q->server = c->server;
  q->loop = c->server->loop;
  q->conn = c;
  q->method = p->method;
  q->target = p->target;
  split_target(q);
  q->version_minor = p->version_minor;
  q->headers = p->headers;
  q->nheaders = p->nheaders;
  q->flags = p->flags;
  q->content_length = p->content_length;
  q->body = (soon_http_span){NULL, 0};
}

/* A request the server answers itself (response.c), told to on_done like
 * any other: with its method, target and headers when its head was whole
 * (a body too large, bad or too slow; an Expect it cannot meet), empty
 * when the head itself was refused (its spans are the parser's offsets,
 * not text). The handler never hears of it. */
static void reject(conn *c, int status) {
  soon__http_reject(c, status);
  if (!c->server->o.on_done)
    return;
  if (c->hlen) {
    fill_req(c);
  } else {
    static const soon_http_span none = {"", 0};
    c->req = (soon_http_req){.server = c->server,
                             .loop = c->server->loop,
                             .conn = c,
                             .method = none,
                             .target = none,
                             .path = none,
                             .query = none,
                             .version_minor = 1,
                             .body = none};
  }
  soon__http_done(c);
}

/* Hand the request to the handler. Room to read first: the buffer cannot
 * move while the handler holds the spans. */
static void dispatch(conn *c) {
  soon_http_server *s = c->server;
  if (c->icap - c->ilen < IN_MIN_ROOM) {
    compact(c);
    if (c->icap - c->ilen < IN_MIN_ROOM)
      grow(c, c->icap * 2); /* else reading waits for the answer */
  }
  soon_http_parser *p = &c->p;
  soon_http_req *q = &c->req;
  fill_req(c);
  if (!s->o.stream_body) {
    q->content_length =
        p->body == SOON_HTTP_BODY_CHUNKED ? c->blen : p->content_length;
    q->body = (soon_http_span){c->ibuf + c->msg + c->hlen, c->blen};
  }
  c->head_req = p->method.len == 4 && memcmp(p->method.base, "HEAD", 4) == 0;
  c->rs = RS_HANDLER;
  c->held = true;
  c->resp = RESP_NONE;
  c->uw = UW_NONE;
  c->reader = RD_NONE;
  c->body_cb = NULL;
  c->read_deadline = 0; /* the handler's time is its own */
  c->keep = false;
  c->status = 0;
  c->body_bytes = 0;
  int r = s->handler(q);
  if (r >= 0 || c->detached || !c->held || c->rs == RS_CLOSED)
    return;
  if (c->resp == RESP_NONE)
    soon__http_respond_error(c, 500);
  else if (c->resp == RESP_STREAM) /* half a response: only a close ends it */
    soon__http_fail_later(c, -ECONNABORTED);
}

/* A head is in: on to its body, or to the handler. */
static void begin_request(conn *c, size_t hlen) {
  soon_http_server *s = c->server;
  c->hlen = hlen;
  c->bpos = c->msg + hlen;
  c->blen = 0;
  c->nreqs++;
  c->body_done = soon_http_message_done(&c->p);
  if (c->p.flags & SOON_HTTP_EXPECT_OTHER) {
    reject(c, 417);
    return;
  }
  if (c->body_done || s->o.stream_body) {
    dispatch(c);
    return;
  }
  c->rs = RS_BODY;
  c->read_deadline = soon__http_now(c) + s->o.body_timeout_ms;
  /* Gathered: the server reads the body, so it asks for it at once. */
  bool all_here = c->p.body == SOON_HTTP_BODY_LENGTH &&
                  c->ilen - c->bpos >= c->p.content_length;
  if (soon__http_continue_due(c) && !all_here)
    soon__http_send_continue(c);
}

/* The client stopped sending with no request to answer: close once the
 * answers so far have gone. */
static void at_eof(conn *c) {
  c->close_after = true;
  c->rs = RS_FINAL;
}

static bool parse_head(conn *c) {
  soon_http_server *s = c->server;
  if (c->close_after) {
    c->rs = RS_FINAL;
    return true;
  }
  if (soon__http_out_pending(c) > OUT_HIGH)
    return false; /* on_written resumes */
  size_t len = c->ilen - c->msg;
  if (!len) {
    if (c->peer_eof)
      at_eof(c);
    return false;
  }
  ssize_t r = soon_http_parse_head(&c->p, c->ibuf + c->msg, len);
  if (r > 0) {
    begin_request(c, (size_t)r);
    return true;
  }
  if (r < 0) {
    reject(c, soon_http_error_status((int)r));
    return false;
  }
  if (!c->head_started) { /* the header timeout runs from the first byte */
    c->head_started = true;
    c->read_deadline = soon__http_now(c) + s->o.header_timeout_ms;
  }
  if (c->peer_eof)
    at_eof(c); /* a truncated head: nobody left to answer */
  return false;
}

/* Gathered mode: the body goes right after the head, decoded in place
 * (chunk framing removed), so req->body is one span. */
static bool gather_body(conn *c) {
  soon_http_server *s = c->server;
  bool progress = false;
  while (c->bpos < c->ilen && !c->body_done) {
    soon_http_span d;
    ssize_t r =
        soon_http_parse_body(&c->p, c->ibuf + c->bpos, c->ilen - c->bpos, &d);
    if (r < 0) {
      reject(c, soon_http_error_status((int)r));
      return false;
    }
    char *end = c->ibuf + c->msg + c->hlen + c->blen;
    if (d.len && d.base != end)
      memmove(end, d.base, d.len);
    c->blen += d.len;
    c->bpos += (size_t)r;
    c->body_done = soon_http_message_done(&c->p);
    progress = true;
  }
  if (c->body_done) {
    dispatch(c);
    return true;
  }
  /* All consumed: framing bytes are dropped and reading goes on right
   * after the body so far. */
  c->ilen = c->bpos = c->msg + c->hlen + c->blen;
  if (progress)
    c->read_deadline = soon__http_now(c) + s->o.body_timeout_ms;
  if (c->peer_eof)
    at_eof(c);
  return false;
}

static void tell_body(conn *c, const char *data, size_t len) {
  c->body_cb(&c->req, 0, data, len);
}

/* stream_body (or a gathered body asked for by soon_http_req_read): the
 * body to the reader as it comes. */
static bool feed_reader(conn *c) {
  soon_http_server *s = c->server;
  if (c->reader != RD_ON)
    return false;
  if (!s->o.stream_body) { /* gathered: whole, then the end */
    c->body_done = true;
    if (c->blen)
      tell_body(c, c->ibuf + c->msg + c->hlen, c->blen);
  }
  bool progress = false;
  while (c->bpos < c->ilen && !c->body_done && c->reader == RD_ON) {
    soon_http_span d;
    ssize_t r =
        soon_http_parse_body(&c->p, c->ibuf + c->bpos, c->ilen - c->bpos, &d);
    if (r < 0) {
      reader_fail(c, (int)r);
      soon__http_conn_close(c, (int)r);
      return false;
    }
    c->bpos += (size_t)r;
    c->body_done = soon_http_message_done(&c->p);
    progress = true;
    if (d.len)
      tell_body(c, d.base, d.len);
  }
  if (c->rs != RS_HANDLER || c->reader != RD_ON)
    return c->rs != RS_HANDLER;
  if (c->body_done) {
    c->reader = RD_DONE;
    c->read_deadline = 0;
    if (c->p.body == SOON_HTTP_BODY_CHUNKED)
      c->req.content_length = c->p.total;
    tell_body(c, NULL, 0);
    return c->rs != RS_HANDLER;
  }
  /* Told and consumed: the space after the head is free again. */
  if (c->bpos == c->ilen)
    c->ilen = c->bpos = c->msg + c->hlen;
  if (progress)
    c->read_deadline = soon__http_now(c) + s->o.body_timeout_ms;
  if (c->peer_eof) {
    reader_fail(c, SOON_HTTP_ETRUNCATED);
    soon__http_conn_close(c, SOON_HTTP_ETRUNCATED);
  }
  return false;
}

/* Answered before its body was read: the body is read and dropped, never
 * taken for the next request (the parser bounds it by max_body). */
static bool drain_body(conn *c) {
  soon_http_server *s = c->server;
  bool progress = false;
  while (c->bpos < c->ilen && !c->body_done) {
    soon_http_span d;
    ssize_t r =
        soon_http_parse_body(&c->p, c->ibuf + c->bpos, c->ilen - c->bpos, &d);
    if (r < 0) {
      at_eof(c); /* the answer has gone out; only a close is left */
      return true;
    }
    c->bpos += (size_t)r;
    c->body_done = soon_http_message_done(&c->p);
    progress = true;
  }
  if (c->body_done) {
    next_message(c);
    return true;
  }
  c->ilen = c->bpos = c->msg;
  if (progress)
    c->read_deadline = soon__http_now(c) + s->o.body_timeout_ms;
  if (c->peer_eof)
    at_eof(c);
  return false;
}

static bool step(conn *c) {
  if (c->detached)
    return false;
  switch (c->rs) {
  case RS_HEAD:
    return parse_head(c);
  case RS_BODY:
    return gather_body(c);
  case RS_HANDLER:
    return feed_reader(c);
  case RS_DRAIN:
    return drain_body(c);
  case RS_LINGER:
    c->ilen = c->msg = c->bpos = 0;
    if (c->peer_eof)
      soon__http_conn_close(c, 0);
    return false;
  default:
    return false;
  }
}

static void on_read(soon_stream *st, ssize_t n, const soon_buf *buf);

/* Read while there is something to read for, and room: bounded input. */
static void update_reading(conn *c) {
  bool want = false;
  switch (c->rs) {
  case RS_HEAD:
    want = soon__http_out_pending(c) <= OUT_HIGH;
    break;
  case RS_BODY:
  case RS_DRAIN:
  case RS_LINGER:
    want = true;
    break;
  case RS_HANDLER:
    if (c->reader == RD_ON && !c->body_done) {
      want = c->icap > c->ilen;
    } else {
      /* Look ahead (the next pipelined request, or the body until the
       * handler reads it), a head's worth, in the room there is. */
      size_t limit = c->body_done ? c->server->o.limits.max_head : STREAM_AHEAD;
      want = c->ilen - c->bpos < limit && c->icap - c->ilen >= IN_MIN_ROOM;
    }
    break;
  default:
    return;
  }
  if (c->peer_eof)
    want = false;
  if (want == c->reading)
    return;
  if (want) {
    int err = soon_read_start(&c->stream->s, on_alloc, on_read);
    if (err)
      soon__http_conn_close(c, err);
    else
      c->reading = true;
  } else {
    soon_read_stop(&c->stream->s);
    c->reading = false;
  }
}

static void on_timer(soon_timer *t);

/* One timer per connection for the earliest deadline, restarted only when
 * a deadline comes before it: a request moving the keep-alive deadline
 * later costs a store, and the timer, firing early, starts again for the
 * rest. */
static void arm_timer(conn *c) {
  if (c->rs == RS_CLOSED)
    return;
  uint64_t d = c->read_deadline;
  if (c->send_deadline && (!d || c->send_deadline < d))
    d = c->send_deadline;
  if (!d)
    return;
  if (soon_is_active((soon_handle *)&c->timer) &&
      soon_timer_get_due(&c->timer) <= d)
    return;
  uint64_t now = soon__http_now(c);
  soon_timer_start(&c->timer, on_timer, d > now ? d - now : 0, 0);
}

/* Whatever happened, take the connection as far as it goes: requests in
 * the buffer one after another (the next once the previous response
 * ended), then one write for everything they produced. */
void soon__http_advance(conn *c) {
  if (c->detached)
    return;
  if (c->advancing) {
    c->again = true;
    return;
  }
  c->advancing = true;
  /* A response ending in a step that made progress needs no extra turn:
   * the next step runs anyway. */
  do {
    c->again = false;
    while (step(c))
      c->again = false;
  } while (c->again && c->rs != RS_CLOSED && !c->detached);
  c->advancing = false;
  if (c->rs == RS_CLOSED || c->detached)
    return;
  soon__http_flush(c);
  if (c->rs == RS_FINAL && !c->nwriting && !c->out[c->fill].len &&
      c->uw == UW_NONE && !c->abort_err)
    start_linger(c);
  if (c->rs == RS_CLOSED)
    return;
  update_reading(c);
  arm_timer(c);
}

static void on_read(soon_stream *st, ssize_t n, const soon_buf *buf) {
  conn *c = st->data;
  (void)buf;
  if (n == 0)
    return;
  soon__http_enter(c);
  if (n > 0) {
    c->ilen += (size_t)n;
    soon__http_advance(c);
  } else if (n == SOON_EOF) {
    c->reading = false;
    c->peer_eof = true;
    soon__http_advance(c);
  } else {
    soon__http_conn_close(c, (int)n);
  }
  soon__http_leave(c);
}

static void read_timeout(conn *c) {
  switch (c->rs) {
  case RS_HEAD:
    if (c->head_started)
      reject(c, 408);
    else if (soon__http_out_pending(c)) /* an answer still going: not idle */
      c->read_deadline = soon__http_now(c) + c->server->o.keepalive_timeout_ms;
    else
      soon__http_conn_close(c, 0); /* idle: nothing to answer */
    break;
  case RS_BODY:
    reject(c, 408);
    break;
  case RS_HANDLER:
    if (c->reader == RD_ON) {
      reader_fail(c, -ETIMEDOUT);
      soon__http_conn_close(c, -ETIMEDOUT);
    }
    break;
  case RS_DRAIN:
  case RS_LINGER:
    soon__http_conn_close(c, -ETIMEDOUT);
    break;
  default:
    break;
  }
}

static void on_timer(soon_timer *t) {
  conn *c = t->data;
  soon_http_server *s = c->server;
  uint64_t now = soon__http_now(c);
  soon__http_enter(c);
  if (c->send_deadline && now >= c->send_deadline) {
    /* A send that moves keeps its time; one that does not is cut. */
    size_t q = soon_stream_write_queue_size(&c->stream->s);
    if (!q || !c->nwriting) {
      c->send_deadline = 0; /* all gone; its callback is on its way */
    } else if (q < c->send_mark) {
      c->send_mark = q;
      c->send_deadline = now + s->o.send_timeout_ms;
    } else {
      soon__http_conn_close(c, -ETIMEDOUT);
    }
  }
  if (c->rs != RS_CLOSED && c->read_deadline && now >= c->read_deadline) {
    c->read_deadline = 0;
    read_timeout(c);
  }
  if (c->rs != RS_CLOSED)
    soon__http_advance(c);
  soon__http_leave(c);
}

/* The deferred work of one connection. */
void soon__http_run_owed(conn *c) {
  if (c->detached)
    return;
  if (c->abort_err && c->rs != RS_CLOSED) {
    /* A failed response ends the request (else its write's callback). */
    if (c->held && c->resp == RESP_STREAM && c->uw == UW_NONE) {
      c->held = false;
      soon__http_done(c);
    }
    soon__http_conn_close(c, c->abort_err);
  }
  if (c->uw == UW_OWED) {
    soon__http_tell_write(c, c->rs == RS_CLOSED ? -ECANCELED : 0);
    soon__http_try_finish(c);
  }
  if (c->reader == RD_NEW) {
    c->reader = RD_ON;
    if (!c->body_done) /* the body timeout runs from the first wish */
      c->read_deadline = soon__http_now(c) + c->server->o.body_timeout_ms;
  }
  if (c->rs != RS_CLOSED)
    soon__http_advance(c);
}

/* ------------------------------------------------------------ connections */

static void free_conn(conn *c) {
  free(c->ibuf);
  free(c->out[0].base);
  free(c->out[1].base);
  if (!c->detached)
    free(c->stream);
  free(c);
}

void soon__http_conn_maybe_free(conn *c) {
  if (c->busy || c->owed || c->nwriting)
    return;
  if (c->detached) {
    if (c->timer_closed)
      free_conn(c);
    return;
  }
  if (c->rs != RS_CLOSED || !c->stream_closed || !c->timer_closed || c->held ||
      c->uw != UW_NONE)
    return;
  soon_http_server *s = c->server;
  soon__http_unlist(s, c);
  free_conn(c);
  soon__http_maybe_free_server(s);
}

conn *soon__http_conn_new(soon_http_server *s) {
  conn *c = calloc(1, sizeof *c + s->o.max_headers * sizeof(soon_http_header));
  if (!c)
    return NULL;
  c->stream = malloc(sizeof *c->stream);
  if (!c->stream) {
    free(c);
    return NULL;
  }
  c->server = s;
  c->ufile = -1;
  soon_http_parser_init(&c->p, SOON_HTTP_REQUEST, c->headers, s->o.max_headers,
                        &s->o.limits);
  return c;
}

/* Accepted and listed: its first request, under the header timeout. */
void soon__http_conn_start(conn *c) {
  soon_http_server *s = c->server;
  c->stream->h.data = c;
  c->timer.data = c;
  soon_timer_init(s->loop, &c->timer);
  if (!s->is_unix) /* answers leave at once, not after a delayed ACK */
    soon_tcp_set_nodelay(&c->stream->tcp, 1);
  c->rs = RS_HEAD;
  c->read_deadline = soon__http_now(c) + s->o.header_timeout_ms;
  soon__http_enter(c);
  soon__http_advance(c);
  soon__http_leave(c);
}

/* ------------------------------------------------- the handler's calls */

/* The connection died under a request the handler held: this call ends
 * it (and frees it unless a callback is still owed). */
int soon__http_release_dead(conn *c) {
  c->held = false;
  soon__http_done(c);
  soon__http_conn_maybe_free(c);
  return -EPIPE;
}

int soon_http_req_peername(const soon_http_req *req, struct sockaddr *addr,
                           int *len) {
  if (!req || !req->conn || !addr || !len || *len < 0)
    return -EINVAL;
  conn *c = req->conn;
  int fd;
  if (!c->peer_len) {
    socklen_t n = sizeof c->peer;
    if (c->rs == RS_CLOSED || c->detached ||
        soon_stream_fileno(&c->stream->s, &fd) < 0)
      return -ENOTCONN;
    if (getpeername(fd, (struct sockaddr *)&c->peer, &n) < 0)
      return -errno;
    c->peer_len = (unsigned)n;
  }
  memcpy(addr, &c->peer,
         (unsigned)*len < c->peer_len ? (size_t)*len : c->peer_len);
  *len = (int)c->peer_len;
  return 0;
}

const soon_http_span *soon_http_req_header(const soon_http_req *req,
                                           const char *name) {
  if (!req || !name)
    return NULL;
  size_t n = strlen(name);
  for (unsigned i = 0; i < req->nheaders; i++) {
    const soon_http_header *h = &req->headers[i];
    if (h->name.len == n && strncasecmp(h->name.base, name, n) == 0)
      return &h->value;
  }
  return NULL;
}

int soon_http_req_read(soon_http_req *req, soon_http_body_cb cb) {
  if (!req || !req->conn || !cb)
    return -EINVAL;
  conn *c = req->conn;
  if (!c->held || c->reader != RD_NONE || c->resp == RESP_ENDED || c->detached)
    return -EALREADY;
  if (c->rs == RS_CLOSED)
    return soon__http_release_dead(c);
  c->body_cb = cb;
  c->reader = RD_NEW; /* told from the deferral, never from this call */
  /* stream_body: the client is asked for the body when the handler wants
   * it (not if a response has begun: a 100 after it would be wrong). */
  if (soon__http_continue_due(c) && c->resp == RESP_NONE) {
    soon__http_send_continue(c);
    if (!c->advancing)
      soon__http_flush(c);
  }
  soon__http_owe(c);
  return 0;
}

int soon_http_req_upgrade(soon_http_req *req, soon_stream **stream,
                          soon_buf *rest) {
  if (!req || !req->conn || !stream || !rest)
    return -EINVAL;
  conn *c = req->conn;
  if (!(req->flags & SOON_HTTP_UPGRADE))
    return -EINVAL;
  if (!c->held || c->resp != RESP_NONE || c->detached)
    return -EALREADY;
  if (c->rs == RS_CLOSED)
    return soon__http_release_dead(c);
  size_t n = c->ilen - c->bpos;
  char *copy = NULL;
  if (n && !(copy = malloc(n)))
    return -ENOMEM;
  if (n)
    memcpy(copy, c->ibuf + c->bpos, n);
  int err = soon__http_flush_before_handover(c);
  if (err) {
    free(copy);
    return err;
  }
  soon_http_server *s = c->server;
  if (c->reading)
    soon_read_stop(&c->stream->s);
  c->reading = false;
  c->detached = true;
  c->held = false;
  c->status = 0; /* the server sent no response */
  soon__http_done(c);
  soon__http_unowe(c);
  soon__http_unlist(s, c);
  s->nconns--;
  s->nopen--;
  c->stream->h.data = NULL; /* the caller's from now on */
  *stream = &c->stream->s;
  *rest = (soon_buf){copy, n};
  /* The struct lives on until its writes in flight and its timer are
   * done; it no longer knows the server. */
  soon_close((soon_handle *)&c->timer, on_timer_closed);
  soon__http_resume_accept(s);
  /* closing: this may have been the last connection */
  soon__http_server_check(s);
  return 0;
}
