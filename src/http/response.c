/* response.c: the server's answers: the Date cache, the status table,
 * header checks, the output buffers and their writes, 100 Continue. */
#include "http.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define OUT_FIRST 4096

/* ------------------------------------------------------------ buffers */

/* obuf_room's slow path: the buffer grows (doubling) to hold n more. */
static __attribute__((noinline)) char *obuf_grow(obuf *b, size_t n) {
  size_t cap = b->cap ? b->cap : OUT_FIRST;
  while (cap - b->len < n) {
    if (cap > SIZE_MAX / 2)
      return NULL;
    cap *= 2;
  }
  char *p = realloc(b->base, cap);
  if (!p)
    return NULL;
  b->base = p;
  b->cap = cap;
  return p + b->len;
}

/* Room for n more bytes at the end of b: where they go, or NULL. Never
 * called on a buffer in flight (its bytes must not move). Inline, the
 * growing apart: there is room nearly always. */
static inline char *obuf_room(obuf *b, size_t n) {
  if (b->cap - b->len >= n)
    return b->base + b->len;
  return obuf_grow(b, n);
}

static bool obuf_put(obuf *b, const char *s, size_t n) {
  char *w = obuf_room(b, n);
  if (!w)
    return false;
  memcpy(w, s, n);
  b->len += n;
  return true;
}

void soon__http_obuf_trim(obuf *b) {
  if (b->cap > BUF_KEEP && !b->len) {
    free(b->base);
    *b = (obuf){NULL, 0, 0};
  }
}

/* ------------------------------------------------------------ the Date */

static char *put_2(char *w, unsigned v) {
  w[0] = (char)('0' + v / 10 % 10);
  w[1] = (char)('0' + v % 10);
  return w + 2;
}

#define OK_LINE "HTTP/1.1 200 OK\r\n"
#define OK_LEN (sizeof OK_LINE - 1)
/* Every field of the Date line has a fixed width: copied with a constant
 * size, the copy is a few moves rather than a call. */
#define DATE_LEN (sizeof "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n" - 1)

/* "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n" (RFC 9110 section 5.6.7),
 * by hand: strftime would read the locale each time. */
static void date_refresh(soon_http_server *s) {
  uint64_t now = soon_now(s->loop);
  if (s->date_set && now - s->date_at < 1000)
    return;
  s->date_at = now;
  static const char days[] = "SunMonTueWedThuFriSat";
  static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  char *w = s->date;
  memcpy(w, OK_LINE "Date: ", OK_LEN + 6);
  w += OK_LEN + 6;
  memcpy(w, days + 3 * tm.tm_wday, 3);
  w += 3;
  *w++ = ',';
  *w++ = ' ';
  w = put_2(w, (unsigned)tm.tm_mday);
  *w++ = ' ';
  memcpy(w, months + 3 * tm.tm_mon, 3);
  w += 3;
  *w++ = ' ';
  unsigned year = (unsigned)tm.tm_year + 1900;
  w = put_2(w, year / 100);
  w = put_2(w, year);
  *w++ = ' ';
  w = put_2(w, (unsigned)tm.tm_hour);
  *w++ = ':';
  w = put_2(w, (unsigned)tm.tm_min);
  *w++ = ':';
  w = put_2(w, (unsigned)tm.tm_sec);
  memcpy(w, " GMT\r\n", 6);
  w += 6;
  s->date_set = true;
}

/* ------------------------------------------------------------ heads */

/* The reason phrases of RFC 9110 section 15 (and 429, 431, 451 of RFCs
 * 6585 and 7725), by code; any other code gets an empty one, as the
 * grammar allows. */
static const char *const reasons[] = {
    [200 - 200] = "OK",
    [201 - 200] = "Created",
    [202 - 200] = "Accepted",
    [203 - 200] = "Non-Authoritative Information",
    [204 - 200] = "No Content",
    [205 - 200] = "Reset Content",
    [206 - 200] = "Partial Content",
    [300 - 200] = "Multiple Choices",
    [301 - 200] = "Moved Permanently",
    [302 - 200] = "Found",
    [303 - 200] = "See Other",
    [304 - 200] = "Not Modified",
    [307 - 200] = "Temporary Redirect",
    [308 - 200] = "Permanent Redirect",
    [400 - 200] = "Bad Request",
    [401 - 200] = "Unauthorized",
    [402 - 200] = "Payment Required",
    [403 - 200] = "Forbidden",
    [404 - 200] = "Not Found",
    [405 - 200] = "Method Not Allowed",
    [406 - 200] = "Not Acceptable",
    [407 - 200] = "Proxy Authentication Required",
    [408 - 200] = "Request Timeout",
    [409 - 200] = "Conflict",
    [410 - 200] = "Gone",
    [411 - 200] = "Length Required",
    [412 - 200] = "Precondition Failed",
    [413 - 200] = "Content Too Large",
    [414 - 200] = "URI Too Long",
    [415 - 200] = "Unsupported Media Type",
    [416 - 200] = "Range Not Satisfiable",
    [417 - 200] = "Expectation Failed",
    [421 - 200] = "Misdirected Request",
    [422 - 200] = "Unprocessable Content",
    [426 - 200] = "Upgrade Required",
    [428 - 200] = "Precondition Required",
    [429 - 200] = "Too Many Requests",
    [431 - 200] = "Request Header Fields Too Large",
    [451 - 200] = "Unavailable For Legal Reasons",
    [500 - 200] = "Internal Server Error",
    [501 - 200] = "Not Implemented",
    [502 - 200] = "Bad Gateway",
    [503 - 200] = "Service Unavailable",
    [504 - 200] = "Gateway Timeout",
    [505 - 200] = "HTTP Version Not Supported",
};

static const char *reason(int status) {
  unsigned k = (unsigned)(status - 200);
  const char *r = k < sizeof reasons / sizeof *reasons ? reasons[k] : NULL;
  return r ? r : "";
}

static char *put(char *w, const char *s, size_t n) {
  memcpy(w, s, n);
  return w + n;
}

#define PUT_LIT(w, lit) put(w, lit, sizeof lit - 1)

/* Always HTTP/1.1, to 1.0 clients too: the version a server speaks, not
 * the one it was asked in (RFC 9110 section 6.2). */
static char *put_status(char *w, int status) {
  const char *r = reason(status);
  w = PUT_LIT(w, "HTTP/1.1 ");
  *w++ = (char)('0' + status / 100);
  w = put_2(w, (unsigned)status);
  *w++ = ' ';
  w = put(w, r, strlen(r));
  return PUT_LIT(w, "\r\n");
}

/* Its digits counted first, then written from the last two at a time:
 * no reversal, half the divisions. */
static char *put_u64(char *w, uint64_t v) {
  static const char pairs[] = "00010203040506070809101112131415161718192021"
                              "22232425262728293031323334353637383940414243"
                              "44454647484950515253545556575859606162636465"
                              "66676869707172737475767778798081828384858687"
                              "888990919293949596979899";
  size_t n = 1;
  for (uint64_t t = v; t >= 10; t /= 10)
    n++;
  char *e = w + n;
  for (; v >= 100; v /= 100) {
    e -= 2;
    memcpy(e, pairs + 2 * (v % 100), 2);
  }
  if (v >= 10)
    memcpy(e - 2, pairs + 2 * v, 2);
  else
    e[-1] = (char)('0' + v);
  return w + n;
}

static char *put_hex(char *w, uint64_t v) {
  char tmp[16];
  size_t n = 0;
  do
    tmp[n++] = "0123456789abcdef"[v & 15];
  while (v >>= 4);
  while (n)
    *w++ = tmp[--n];
  return w;
}

/* The longest a head can be without the caller's headers: status line,
 * Date, a framing line and Connection, the empty line. */
#define HEAD_FIXED 256

/* A header name's bytes: a token (RFC 9110 section 5.6.2), one load each. */
static const bool tchar[256] = {
    ['!'] = 1,         ['#' ... '\''] = 1, ['*' ... '+'] = 1,
    ['-' ... '.'] = 1, ['0' ... '9'] = 1,  ['A' ... 'Z'] = 1,
    ['^' ... 'z'] = 1, ['|'] = 1,          ['~'] = 1,
};

/* Four bytes a step, no branch per byte: names are valid nearly always,
 * so the answer is wanted at the end, not early. */
static bool is_token(const char *p, size_t n) {
  const unsigned char *u = (const unsigned char *)p;
  bool ok = true;
  size_t k = 0;
  for (; k + 4 <= n; k += 4)
    ok &= tchar[u[k]] & tchar[u[k + 1]] & tchar[u[k + 2]] & tchar[u[k + 3]];
  for (; k < n; k++)
    ok &= tchar[u[k]];
  return ok;
}

/* High bit of each byte of x that is below 14 ('\r' + 1), none for bytes
 * at or above (exact as a whole: nonzero iff such a byte exists). */
static uint64_t below_14(const char *p) {
  const uint64_t ones = 0x0101010101010101u;
  uint64_t x;
  memcpy(&x, p, 8);
  return (x - ones * 14) & ~x & (ones << 7);
}

/* A value may hold any byte but CR, LF and NUL: a handler echoing what a
 * client sent must not split the response. Eight bytes a step (the last
 * word overlapping) while no byte is below 14; a value with one (a tab,
 * or a bad byte) is looked at byte by byte. */
static bool is_value(const char *p, size_t n) {
  if (n >= 8) {
    uint64_t low = below_14(p + n - 8);
    for (size_t k = 0; k + 8 < n; k += 8)
      low |= below_14(p + k);
    if (!low)
      return true;
  }
  for (size_t k = 0; k < n; k++)
    if (p[k] == '\r' || p[k] == '\n' || !p[k])
      return false;
  return true;
}

/* The fields the server writes itself, by length first: most names are
 * told apart without a compare. */
static inline bool server_owned(const soon_http_span *n) {
  switch (n->len) {
  case 4:
    return !strncasecmp(n->base, "date", 4);
  case 10:
    return !strncasecmp(n->base, "connection", 10);
  case 14:
    return !strncasecmp(n->base, "content-length", 14);
  case 17:
    return !strncasecmp(n->base, "transfer-encoding", 17);
  default:
    return false;
  }
}

/* Connection: close is the one owned field a handler may give: it asks
 * the server to close after this response, which the server then says
 * itself (put_head), as when it closes on its own. Any other Connection
 * (keep-alive, upgrade) would contradict what the server does. */
static bool asks_close(const soon_http_span *name,
                       const soon_http_span *value) {
  return name->len == 10 && !strncasecmp(name->base, "connection", 10) &&
         value->len == 5 && !strncasecmp(value->base, "close", 5);
}

/* The caller's headers: tokens for names, no CR, LF or NUL in values (a
 * handler echoing user input must not split the response), and none of
 * the fields the server owns but Connection: close (*wants_close). Their size,
 * as put_head writes them, in *size. */
static int check_headers(const soon_http_header *h, unsigned n, size_t *size,
                         bool *wants_close) {
  if (n && !h)
    return -EINVAL;
  size_t total = 0;
  *wants_close = false;
  for (unsigned i = 0; i < n; i++) {
    const soon_http_span *name = &h[i].name, *value = &h[i].value;
    if (!name->len || !name->base || (value->len && !value->base))
      return -EINVAL;
    if (!is_token(name->base, name->len) || !is_value(value->base, value->len))
      return -EINVAL;
    if (server_owned(name)) {
      if (!asks_close(name, value))
        return -EINVAL;
      *wants_close = true;
      continue;
    }
    total += name->len + value->len + 4;
  }
  *size = total;
  return 0;
}

/* How the response's body is framed. */
typedef enum { F_NONE, F_LENGTH, F_CHUNKED, F_CLOSE } framing;

/* Append a head to the output; body_len is the Content-Length with
 * F_LENGTH. The caller checked the headers and reserved room. Inlined,
 * as are put_whole and start_checks: soon_http_respond is then one
 * function instead of four calls of six or seven arguments (callgrind,
 * hello row: about 50 fewer instructions a request). */
static inline __attribute__((always_inline)) char *
put_head(conn *c, char *w, int status, const soon_http_header *h, unsigned n,
         framing f, uint64_t body_len) {
  soon_http_server *s = c->server;
  date_refresh(s);
  if (status == 200) {
    w = put(w, s->date, OK_LEN + DATE_LEN);
  } else {
    w = put_status(w, status);
    w = put(w, s->date + OK_LEN, DATE_LEN);
  }
  if (f == F_LENGTH) {
    w = PUT_LIT(w, "Content-Length: ");
    w = put_u64(w, body_len);
    w = PUT_LIT(w, "\r\n");
  } else if (f == F_CHUNKED) {
    w = PUT_LIT(w, "Transfer-Encoding: chunked\r\n");
  }
  if (!c->keep)
    w = PUT_LIT(w, "Connection: close\r\n");
  else if (c->req.version_minor == 0)
    w = PUT_LIT(w, "Connection: keep-alive\r\n");
  for (unsigned i = 0; i < n; i++) {
    /* Connection: close, written above: the one owned field check_headers
     * lets through, and it made c->keep false, so a kept connection has
     * none to look for. */
    if (!c->keep && server_owned(&h[i].name))
      continue;
    w = put(w, h[i].name.base, h[i].name.len);
    w = PUT_LIT(w, ": ");
    if (h[i].value.len)
      w = put(w, h[i].value.base, h[i].value.len);
    w = PUT_LIT(w, "\r\n");
  }
  return PUT_LIT(w, "\r\n");
}

/* 204 and 304 have no body and no framing (RFC 9110 sections 8.6, 15.3.5,
 * 15.4.5): a 304's Content-Length would have to be the full resource's. */
static bool status_has_body(int status) {
  return status != 204 && status != 304;
}

/* A whole response into the output. */
static inline __attribute__((always_inline)) int
put_whole(conn *c, int status, const soon_http_header *h, unsigned n,
          size_t hsize, const void *body, size_t len) {
  bool body_out = !c->head_req && status_has_body(status);
  c->status = status;
  c->body_bytes = body_out ? len : 0;
  obuf *b = &c->out[c->fill];
  size_t need = HEAD_FIXED + hsize + (body_out ? len : 0);
  if (need < hsize)
    return -ENOMEM;
  char *start = obuf_room(b, need);
  if (!start)
    return -ENOMEM;
  char *w = put_head(c, start, status, h, n,
                     status_has_body(status) ? F_LENGTH : F_NONE, len);
  if (body_out && len)
    w = put(w, body, len);
  b->len += (size_t)(w - start);
  return 0;
}

/* ------------------------------------------------------------ writing */

static void on_written(soon_write_req *req, int status);

static void add_buf(soon_buf *bufs, unsigned *n, const char *base, size_t len) {
  if (len)
    bufs[(*n)++] = (soon_buf){(char *)base, len};
}

/* TCP_CORK while a file range goes out, from the head before it to its
 * end (nginx's tcp_nopush): the kernel then sends full segments. Without
 * it (TCP_NODELAY is on) each piece sendfile queues leaves at once, and the
 * client pays for many small segments: on the 1 MiB file row wrk spent 621
 * us of CPU per response against 405 corked, for 2,376 -> 2,912 req/s
 * (uring; epoll 1,295 -> 1,629). Nothing to do on a Unix socket. */
static void cork(conn *c, int on) {
  int fd;
  if (!c->server->is_unix && soon_stream_fileno(&c->stream->s, &fd) == 0)
    (void)setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
}

/* The waiting user write is a file range: the bytes before it go in one
 * soon_write, the range by soon_write_file, and what was put after it (the
 * chunk's end, later responses) moves to the other buffer, which is empty
 * (nothing is in flight), to go once these are written. */
static int write_out_file(conn *c, unsigned i, size_t skip) {
  obuf *b = &c->out[i], *next = &c->out[i ^ 1];
  size_t at = c->uat;
  if (c->nwriting || next->len)
    return -EBUSY; /* an upgrade's early flush: not with a file waiting */
  if ((c->chunked && !obuf_put(next, "\r\n", 2)) ||
      (b->len > at && !obuf_put(next, b->base + at, b->len - at)))
    return -ENOMEM;
  b->len = at;
  cork(c, 1);
  if (at > skip) {
    soon_buf head = {b->base + skip, at - skip};
    c->wreq[i].data = c;
    int err = soon_write(&c->wreq[i], &c->stream->s, &head, 1, on_written);
    if (err)
      return err;
    c->nwriting++;
  }
  c->fwreq.data = c;
  int err = soon_write_file(&c->fwreq, &c->stream->s, c->ufile, c->uoff,
                            c->ulen, on_written);
  if (err)
    return err;
  c->nwriting++;
  c->wbytes = at - skip + c->ulen;
  c->uw = UW_SENT;
  return 0;
}

/* Start writing out[i], with the waiting user bytes where they belong:
 * one soon_write (one writev) for everything the turn produced. */
static int write_out(conn *c, unsigned i, size_t skip) {
  obuf *b = &c->out[i];
  bool user = c->uw == UW_QUEUED;
  if (user && c->ufile >= 0)
    return write_out_file(c, i, skip);
  size_t at = user ? c->uat : b->len;
  soon_buf bufs[4];
  unsigned n = 0;
  add_buf(bufs, &n, b->base + skip, at - skip);
  if (user) {
    add_buf(bufs, &n, c->udata, c->ulen);
    if (c->chunked)
      add_buf(bufs, &n, "\r\n", 2);
  }
  add_buf(bufs, &n, b->base + at, b->len - at);
  if (!n)
    return 0;
  c->wreq[i].data = c;
  int err = soon_write(&c->wreq[i], &c->stream->s, bufs, n, on_written);
  if (err)
    return err;
  c->nwriting++;
  c->wbytes = b->len - skip + (user ? c->ulen + (c->chunked ? 2 : 0) : 0);
  if (user)
    c->uw = UW_SENT;
  return 0;
}

void soon__http_flush(conn *c) {
  if (c->nwriting || c->rs == RS_CLOSED || c->detached)
    return;
  obuf *b = &c->out[c->fill];
  if (!b->len && c->uw != UW_QUEUED)
    return;
  size_t skip = 0;
  if (c->server->try_first && c->uw != UW_QUEUED) {
    soon_buf whole = {b->base, b->len};
    ssize_t n = soon_try_write(&c->stream->s, &whole, 1);
    if (n == (ssize_t)b->len) {
      b->len = 0; /* all gone: no request, no callback */
      return;
    }
    if (n < 0 && n != -EAGAIN) {
      soon__http_fail_later(c, (int)n);
      return;
    }
    skip = n > 0 ? (size_t)n : 0;
  }
  int err = write_out(c, c->fill, skip);
  if (err) {
    soon__http_fail_later(c, err);
    return;
  }
  c->fill ^= 1;
  soon_http_server *s = c->server;
  c->send_deadline = soon__http_now(c) + s->o.send_timeout_ms;
  c->send_mark = soon_stream_write_queue_size(&c->stream->s);
}

/* The handler's write callback, once: an error ends the request (the
 * handler must not answer any more; the connection is gone). */
void soon__http_tell_write(conn *c, int status) {
  soon_http_write_cb cb = c->ucb;
  c->ucb = NULL;
  c->uw = UW_NONE;
  if (c->ufile >= 0) {
    close(c->ufile);
    c->ufile = -1;
  }
  bool over = status < 0 && c->held;
  if (over)
    c->held = false;
  if (cb)
    cb(&c->req, status);
  if (over)
    soon__http_done(c);
}

static void on_written(soon_write_req *req, int status) {
  conn *c = req->data;
  bool file = req == &c->fwreq;
  if (file && c->rs != RS_CLOSED)
    cork(c, 0); /* the rest goes now */
  soon__http_enter(c);
  c->nwriting--;
  if (!file)
    c->out[req == &c->wreq[1]].len = 0;
  if (!c->nwriting) { /* else a file range goes on, on the same clock */
    c->wbytes = 0;
    c->send_deadline = 0;
  }
  if (!c->detached) {
    /* A file range is told once its own write is done. */
    bool user = c->uw == UW_SENT && (file || c->ufile < 0);
    if (status < 0)
      soon__http_conn_close(c, status);
    if (user) {
      soon__http_tell_write(c, status);
      soon__http_try_finish(c);
    }
    if (c->rs != RS_CLOSED)
      soon__http_advance(c);
  }
  soon__http_leave(c);
}

/* ------------------------------------------------------------ endings */

/* Whether the connection may carry another request after this one. */
static bool decide_keep(const conn *c) {
  const soon_http_req *q = &c->req;
  if (!(q->flags & SOON_HTTP_KEEP_ALIVE) || (q->flags & SOON_HTTP_UPGRADE))
    return false;
  if (c->close_after || c->server->closing)
    return false;
  if (c->nreqs >= c->server->o.max_requests)
    return false;
  /* A client that expects 100-continue and was never told may or may not
   * send its body now: the next bytes cannot be trusted to be a request. */
  if (!c->body_done && (q->flags & SOON_HTTP_EXPECT_CONTINUE) && !c->cont_sent)
    return false;
  return true;
}

/* After a response ended: the next request, the flush, now if we are in
 * soon__http_advance, else from the deferral (a call must not run the
 * handler of the next request inside itself). */
static void response_ended(conn *c) {
  c->resp = RESP_ENDED;
  if (!c->keep)
    c->close_after = true;
  if (c->reader == RD_NEW || c->reader == RD_ON) {
    c->reader = RD_NONE; /* the rest of the body is drained */
    c->body_cb = NULL;
  }
  soon__http_try_finish(c);
  if (c->advancing) {
    c->again = true;
    return;
  }
  soon__http_flush(c);
  soon__http_owe(c);
}

void soon__http_respond_error(conn *c, int status) {
  c->keep = false;
  const char *r = reason(status);
  static const soon_http_header type[] = {
      {{"Content-Type", 12}, {"text/plain", 10}}};
  char body[64];
  size_t rlen = strlen(r);
  memcpy(body, r, rlen);
  body[rlen] = '\n';
  if (put_whole(c, status, type, 1, 28, body, rlen + 1)) {
    bool over = c->held;
    c->held = false;
    soon__http_conn_close(c, -ENOMEM);
    if (over)
      soon__http_done(c);
    return;
  }
  response_ended(c);
}

/* A rejected request: its status, Connection: close, and no more. */
void soon__http_reject(conn *c, int status) {
  c->keep = false;
  c->close_after = true;
  c->rs = RS_FINAL;
  c->head_req = c->hlen && c->p.method.len == 4 &&
                memcmp(c->p.method.base, "HEAD", 4) == 0;
  const char *r = reason(status);
  size_t rlen = strlen(r);
  char body[64];
  char *w = put(body, r, rlen);
  *w++ = '\n';
  static const soon_http_header type[] = {
      {{"Content-Type", 12}, {"text/plain", 10}}};
  if (put_whole(c, status, type, 1, 28, body, (size_t)(w - body)))
    soon__http_conn_close(c, -ENOMEM);
}

/* ------------------------------------------------------- 100 Continue */

bool soon__http_continue_due(const conn *c) {
  return (c->p.flags & SOON_HTTP_EXPECT_CONTINUE) && !c->cont_sent &&
         c->p.version_minor == 1 && !c->body_done;
}

void soon__http_send_continue(conn *c) {
  static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
  if (obuf_put(&c->out[c->fill], line, sizeof line - 1))
    c->cont_sent = true;
}

/* ------------------------------------------------------------ responses */

/* The common checks of the calls that start a response; *wants_close if the
 * handler asks to close after it. */
static inline __attribute__((always_inline)) int
start_checks(soon_http_req *req, int status, const soon_http_header *h,
             unsigned n, size_t *hsize, bool *wants_close, conn **out) {
  if (!req || !req->conn)
    return -EINVAL;
  conn *c = req->conn;
  /* 1xx are not answers: 100 Continue is the server's, 101 the upgraded
   * stream's (soon_http_req_upgrade). */
  if (status < 200 || status > 999 || check_headers(h, n, hsize, wants_close))
    return -EINVAL;
  if (!c->held || c->resp != RESP_NONE || c->detached)
    return -EALREADY;
  *out = c;
  return 0;
}

int soon_http_respond(soon_http_req *req, int status,
                      const soon_http_header *headers, unsigned nheaders,
                      const void *body, size_t len) {
  conn *c;
  size_t hsize;
  bool wants_close;
  int err =
      start_checks(req, status, headers, nheaders, &hsize, &wants_close, &c);
  if (err)
    return err;
  if ((!body && len) || (!status_has_body(status) && len))
    return -EINVAL;
  if (c->rs == RS_CLOSED)
    return soon__http_release_dead(c);
  c->keep = !wants_close && decide_keep(c);
  err = put_whole(c, status, headers, nheaders, hsize, body, len);
  if (err)
    return err;
  response_ended(c);
  return 0;
}

int soon_http_write_head(soon_http_req *req, int status,
                         const soon_http_header *headers, unsigned nheaders,
                         int64_t content_length) {
  conn *c;
  size_t hsize;
  bool wants_close;
  int err =
      start_checks(req, status, headers, nheaders, &hsize, &wants_close, &c);
  if (err)
    return err;
  bool nobody = !status_has_body(status);
  if (nobody && content_length > 0)
    return -EINVAL;
  if (c->rs == RS_CLOSED)
    return soon__http_release_dead(c);
  c->keep = !wants_close && decide_keep(c);
  framing f = nobody                 ? F_NONE
              : content_length >= 0  ? F_LENGTH
              : c->req.version_minor ? F_CHUNKED
                                     : F_CLOSE;
  if (f == F_CLOSE)
    c->keep = false; /* HTTP/1.0 without a length: the close ends it */
  obuf *b = &c->out[c->fill];
  char *start = obuf_room(b, HEAD_FIXED + hsize);
  if (!start)
    return -ENOMEM;
  char *w = put_head(c, start, status, headers, nheaders, f,
                     f == F_LENGTH ? (uint64_t)content_length : 0);
  b->len += (size_t)(w - start);
  c->resp = RESP_STREAM;
  c->status = status;
  c->chunked = f == F_CHUNKED;
  c->nobody = nobody || c->head_req;
  c->left = f == F_LENGTH ? content_length : nobody ? 0 : -1;
  if (!c->advancing)
    soon__http_flush(c);
  return 0;
}

/* The handler's one waiting write: len bytes of data, or of file from off. */
static int user_write(soon_http_req *req, const void *data, int file,
                      int64_t off, size_t len, soon_http_write_cb cb) {
  conn *c = req->conn;
  if (!c->held || c->resp == RESP_ENDED || c->detached)
    return -EALREADY;
  if (c->resp == RESP_NONE)
    return -EINVAL;
  if (c->uw != UW_NONE)
    return -EBUSY;
  if (c->left >= 0 && len > (uint64_t)c->left)
    return -EINVAL; /* more than the Content-Length said */
  if (c->rs == RS_CLOSED)
    return soon__http_release_dead(c);
  if (c->left >= 0)
    c->left -= (int64_t)len;
  c->ucb = cb;
  c->ufile = file;
  c->uoff = off;
  if (!len || c->nobody) { /* nothing to send: told all the same */
    c->uw = UW_OWED;
    soon__http_owe(c);
    return 0;
  }
  obuf *b = &c->out[c->fill];
  if (c->chunked) {
    char *w = obuf_room(b, 20);
    if (!w) {
      c->left = -1;
      c->ucb = NULL;
      c->ufile = -1; /* still the caller's */
      return -ENOMEM;
    }
    w = put_hex(w, len);
    w = PUT_LIT(w, "\r\n");
    b->len = (size_t)(w - b->base);
  }
  c->udata = data;
  c->ulen = len;
  c->uat = b->len;
  c->body_bytes += len;
  c->uw = UW_QUEUED;
  if (!c->advancing)
    soon__http_flush(c);
  return 0;
}

int soon_http_write(soon_http_req *req, const void *data, size_t len,
                    soon_http_write_cb cb) {
  if (!req || !req->conn || (!data && len))
    return -EINVAL;
  return user_write(req, data, -1, 0, len, cb);
}

int soon_http_write_file(soon_http_req *req, int fd, int64_t offset, size_t len,
                         soon_http_write_cb cb) {
  if (fd < 0)
    return -EINVAL;
  int err = !req || !req->conn || offset < 0
                ? -EINVAL
                : user_write(req, NULL, fd, offset, len, cb);
  if (err) /* ours whatever the outcome, as for soon_http_respond_file */
    close(fd);
  return err;
}

int soon_http_end(soon_http_req *req) {
  if (!req || !req->conn)
    return -EINVAL;
  conn *c = req->conn;
  if (!c->held || c->resp == RESP_ENDED || c->detached)
    return -EALREADY;
  if (c->resp == RESP_NONE)
    return -EINVAL;
  if (c->rs == RS_CLOSED)
    return soon__http_release_dead(c);
  if (c->chunked && !c->nobody) {
    static const char last[] = "0\r\n\r\n";
    if (!obuf_put(&c->out[c->fill], last, sizeof last - 1))
      return -ENOMEM;
  }
  if (!c->nobody && c->left > 0)
    c->keep = false; /* shorter than declared: the close tells the client */
  response_ended(c);
  return 0;
}

/* Earlier responses still waiting go out before the upgraded stream's own
 * bytes: written now, with the second request if one is in flight. */
int soon__http_flush_before_handover(conn *c) {
  if (!c->out[c->fill].len)
    return 0;
  int err = write_out(c, c->fill, 0);
  if (!err)
    c->fill ^= 1;
  return err;
}
