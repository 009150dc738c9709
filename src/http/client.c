/* client.c: the HTTP/1.1 client shaped like XMLHttpRequest (soon/http.h,
 * "client"): URLs, the connection pool, retries, redirects, timeouts. */
#include <soon/http.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------ limits */

enum {
  DEFAULT_IDLE_PER_HOST = 6,
  DEFAULT_MAX_REDIRECTS = 20,
  /* A response's head may be larger than the 8 KiB a server allows a
   * request: servers send long Set-Cookie and CSP lines, and a client
   * talks to servers it chose. */
  RESPONSE_MAX_HEAD = 64 << 10,
  RESPONSE_MAX_HEADERS = 256,
  READ_SIZE = 64 << 10, /* a busy connection's first read buffer */
  READ_ROOM = 16 << 10, /* grown when less is free (a long head) */
  PULL_SIZE = 64 << 10, /* what soon_xhr_send_stream's source is asked for */
  BODY_FIRST = 16 << 10 /* a body of unknown length starts with this */
};

#define DEFAULT_IDLE_TIMEOUT_MS 30000u
#define DEFAULT_MAX_AGE_MS 300000u
#define DEFAULT_CONNECT_TIMEOUT_MS 10000u
#define DEFAULT_MAX_RESPONSE (16u << 20)
/* How long a body waits for "100 Continue" before it goes anyway (RFC 9110
 * section 10.1.1 asks for no indefinite wait; curl waits 1 s). */
#define CONTINUE_WAIT_MS 1000u

/* ------------------------------------------------------------ types */

typedef struct conn conn;
typedef struct xfer xfer;

/* A parsed http(s) URL in one block: href is "scheme://authority/target"
 * without the fragment; host is what is resolved (IPv6 without brackets);
 * authority is the Host header's value and the pool's key (the port only
 * when not the scheme's, so http://h/ and http://h:80/ share connections). */
typedef struct url {
  char *mem;
  const char *href, *host, *authority, *target;
  uint16_t port;
  bool https;
} url;

typedef struct field {
  char *name, *value;
} field;

struct soon_http_client {
  soon_loop *loop;
  soon_http_client_options opts;
  conn *conns;   /* every connection not yet freed */
  conn *idle;    /* the idle ones, the last used first */
  unsigned busy; /* requests in flight: soon_http_client_close's -EBUSY */
  unsigned live; /* connections, exchanges and the timer not yet freed */
  bool closing;
  void (*close_cb)(soon_http_client *client);
  /* Never started: closing it puts the close callback in a close phase,
   * so the user's callback never runs from inside soon_http_client_close. */
  soon_timer timer;
};

/* One TCP connection. Busy, it serves one exchange (ex); idle, it waits in
 * client->idle with its read still started, so a server's close is seen;
 * parked, its response is done but its request's last write is not, and
 * it goes idle when that write is. */
struct conn {
  soon_tcp tcp;
  soon_timer timer; /* the connect timeout, then the idle timeout */
  soon_connect_req creq;
  soon_write_req wreq;
  soon_http_client *client;
  xfer *ex;  /* the exchange it serves */
  xfer *wex; /* whose bytes the write in flight holds */
  conn *next, *prev;
  conn *inext, *iprev;
  char *key;     /* the URL's authority */
  uint64_t born; /* when it connected: max_age_ms */
  char *in;      /* the response so far (a head, or one read of body) */
  size_t len, cap;
  char tiny[16];     /* an idle connection reads only EOF or junk: no buffer */
  unsigned handles;  /* not yet closed; freed at 0 */
  bool writing;      /* wreq is in flight */
  bool broken;       /* a write failed: never pooled */
  bool idle, parked; /* see above */
  bool reused;       /* it served an exchange before this one */
  bool closing;
};

enum { TELL_LOAD, TELL_ERROR, TELL_TIMEOUT };

/* One soon_xhr_send: every hop (redirects) and attempt (the retry) until
 * its callback. Reference counted: the xhr holds it until it is told or
 * aborted, and the timer, a write in flight, a lookup in flight and a
 * user callback under way each hold it too, so an abort (or the xhr's
 * memory freed) never leaves the loop a dangling pointer. */
struct xfer {
  soon_http_client *client;
  struct soon__xhr *x; /* NULL once told or aborted */
  unsigned refs;
  soon_timer timer; /* the deadlines, or a result found inside send */
  uint64_t deadline, continue_at;
  bool later;
  int later_kind, later_err;
  /* the xhr's settings, as they were at send */
  uint64_t connect_timeout_ms, max_response;
  unsigned max_redirects;
  bool no_redirects;
  /* this hop */
  url u;
  const char *method; /* x->method, or "GET" after a 303 */
  bool is_head;
  bool drop_body_fields; /* a redirect made it a GET */
  bool drop_auth;        /* a redirect left the origin */
  unsigned redirects;
  char *head; /* the request's head */
  size_t head_len;
  bool expect_continue; /* the body waits for 100 Continue */
  bool body_due;        /* ... and may go once the head's write is done */
  bool req_done;        /* every byte of the request handed to soon_write */
  bool fresh;           /* skip the pool: the retry */
  bool retried, got_bytes, head_done;
  bool following;       /* the response is a redirect taken */
  char *location;       /* its target, while its body is read */
  bool redirect_to_get; /* 303, or 301 and 302 after a POST */
  /* the body: a copy, or a source to pull */
  char *body;
  size_t body_len;
  soon_xhr_body_cb pull;
  int64_t pull_len; /* < 0: chunked */
  uint64_t pulled;
  char *chunk;
  char chunk_line[24];
  /* connecting */
  soon_getaddrinfo_req gai;
  bool resolving;
  struct addrinfo *addrs, *next_addr, one;
  struct sockaddr_storage one_addr;
  int last_err;
  conn *conn;
  /* the response */
  soon_http_parser parser;
  soon_http_header headers[RESPONSE_MAX_HEADERS];
};

struct soon__xhr {
  soon_xhr *xhr;
  soon_http_client *client;
  xfer *ex;     /* the request in flight */
  bool in_send; /* results found now are told from the loop */
  int send_err; /* ... unless that fails: send returns it */
  char *method; /* NULL until open */
  url u;
  char *final; /* xhr->url */
  field *fields;
  unsigned nfields;
  /* the response: its head copied, spans into it */
  char *head;
  soon_http_header *headers;
  char *body;
  size_t body_len, body_cap;
};

static void begin(xfer *ex);
static void try_next(xfer *ex);
static void fail(xfer *ex, int err);
static void conn_close(conn *c);
static void start_body(xfer *ex);

/* ------------------------------------------------------------ strings */

/* A growing string, always NUL-terminated; one failed allocation fails
 * the lot, checked once at the end. */
typedef struct sbuf {
  char *p;
  size_t len, cap;
  bool failed;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
  if (b->failed)
    return;
  if (b->cap - b->len <= n) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len <= n)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->failed = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static char *sb_done(sbuf *b, size_t *len) {
  if (b->failed || !b->p) {
    free(b->p);
    return NULL;
  }
  if (len)
    *len = b->len;
  return b->p;
}

static bool is_alnum(unsigned char c) {
  return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

/* RFC 9110 section 5.6.2. */
static bool is_tchar(unsigned char c) {
  return is_alnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_token(const char *s) {
  if (!*s)
    return false;
  for (; *s; s++)
    if (!is_tchar((unsigned char)*s))
      return false;
  return true;
}

static bool span_is(soon_http_span s, const char *lit) {
  return s.len == strlen(lit) && strncasecmp(s.base, lit, s.len) == 0;
}

/* ------------------------------------------------------------ URLs */

/* host [":" port] into host (lowercased; an IPv6 literal in its canonical
 * form, without brackets) and port (left alone when absent or empty).
 * Userinfo is refused: credentials in a URL end up in logs, and the
 * Authorization header is the caller's way. */
static int parse_authority(const char *s, size_t n, char *host, size_t cap,
                           uint16_t *port, bool *v6) {
  size_t i = 0;
  *v6 = n && s[0] == '[';
  if (memchr(s, '@', n))
    return -EINVAL;
  if (*v6) {
    const char *end = memchr(s, ']', n);
    char tmp[INET6_ADDRSTRLEN];
    struct in6_addr a;
    size_t hl = end ? (size_t)(end - s) - 1 : 0;
    if (!hl || hl >= sizeof tmp)
      return -EINVAL;
    memcpy(tmp, s + 1, hl);
    tmp[hl] = '\0';
    if (inet_pton(AF_INET6, tmp, &a) != 1 ||
        !inet_ntop(AF_INET6, &a, host, (socklen_t)cap))
      return -EINVAL;
    i = hl + 2;
  } else {
    for (; i < n && s[i] != ':'; i++) {
      unsigned char c = (unsigned char)s[i];
      if (!is_alnum(c) && c != '-' && c != '.' && c != '_' && c != '~')
        return -EINVAL;
      if (i + 1 >= cap)
        return -EINVAL;
      host[i] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
    }
    if (!i)
      return -EINVAL;
    host[i] = '\0';
  }
  if (i == n)
    return 0;
  if (s[i++] != ':' || n - i > 5)
    return -EINVAL;
  if (i == n)
    return 0; /* "host:" means the scheme's port (RFC 3986 section 3.2.3) */
  unsigned v = 0;
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -EINVAL;
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  if (!v || v > 65535)
    return -EINVAL;
  *port = (uint16_t)v;
  return 0;
}

/* http://host[:port][/path][?query][#fragment], or https://; -EINVAL for
 * anything else. The target must be what a request line carries (no
 * space, control or non-ASCII byte: percent-encode them). */
static int url_parse(const char *s, url *u) {
  bool https = strncasecmp(s, "https://", 8) == 0;
  if (!https && strncasecmp(s, "http://", 7) != 0)
    return -EINVAL;
  s += https ? 8 : 7;
  size_t alen = strcspn(s, "/?#");
  char host[256], auth[300];
  uint16_t port = https ? 443 : 80, dflt = port;
  bool v6;
  int err = parse_authority(s, alen, host, sizeof host, &port, &v6);
  if (err)
    return err;
  const char *t = s + alen;
  size_t tlen = strcspn(t, "#");
  for (size_t i = 0; i < tlen; i++)
    if ((unsigned char)t[i] <= ' ' || (unsigned char)t[i] >= 0x7f)
      return -EINVAL;
  snprintf(auth, sizeof auth, v6 ? "[%s]" : "%s", host);
  if (port != dflt)
    snprintf(auth + strlen(auth), sizeof auth - strlen(auth), ":%u",
             (unsigned)port);
  sbuf b = {0};
  sb_str(&b, https ? "https://" : "http://");
  sb_str(&b, auth);
  size_t target = b.len;
  if (!tlen || t[0] != '/')
    sb_add(&b, "/", 1);
  sb_add(&b, t, tlen);
  size_t at_host = b.len + 1;
  sb_add(&b, "", 1);
  sb_str(&b, host);
  size_t at_auth = b.len + 1;
  sb_add(&b, "", 1);
  sb_str(&b, auth);
  char *mem = sb_done(&b, NULL);
  if (!mem)
    return -ENOMEM;
  *u = (url){mem, mem, mem + at_host, mem + at_auth, mem + target, port, https};
  return 0;
}

static void url_free(url *u) {
  free(u->mem);
  memset(u, 0, sizeof *u);
}

/* path (it starts with '/') with its dot segments removed, RFC 3986
 * section 5.2.4: "." goes, ".." takes the segment before it along. */
static void sb_path(sbuf *b, const char *p, size_t n) {
  size_t base = b->len;
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && p[j] != '/')
      j++;
    size_t seg = j - i - 1;
    bool last = j == n;
    if (seg == 1 && p[i + 1] == '.') {
      if (last)
        sb_add(b, "/", 1);
    } else if (seg == 2 && p[i + 1] == '.' && p[i + 2] == '.') {
      while (!b->failed && b->len > base && b->p[b->len - 1] != '/')
        b->len--;
      if (!b->failed && b->len > base)
        b->len--;
      if (last)
        sb_add(b, "/", 1);
    } else {
      sb_add(b, p + i, j - i);
    }
    i = j;
  }
  if (!b->failed && b->len == base)
    sb_add(b, "/", 1);
  if (!b->failed)
    b->p[b->len] = '\0';
}

/* An absolute path and query: the path cleaned, the query as it is. */
static void sb_target(sbuf *b, const char *t) {
  size_t path = strcspn(t, "?");
  sb_path(b, t, path);
  sb_str(b, t + path);
}

static bool has_scheme(const char *r) {
  size_t i = 0;
  if (!((r[0] | 0x20) >= 'a' && (r[0] | 0x20) <= 'z'))
    return false;
  while (is_alnum((unsigned char)r[i]) || r[i] == '+' || r[i] == '-' ||
         r[i] == '.')
    i++;
  return r[i] == ':';
}

/* The URL a Location header names, resolved against base (RFC 3986
 * section 5.2; the fragment dropped). -EPROTONOSUPPORT for a scheme other
 * than http and https. */
static int url_resolve(const url *base, soon_http_span loc, char **out) {
  const char *hash = memchr(loc.base, '#', loc.len);
  size_t n = hash ? (size_t)(hash - loc.base) : loc.len;
  char *r = malloc(n + 1);
  if (!r)
    return -ENOMEM;
  memcpy(r, loc.base, n);
  r[n] = '\0';
  sbuf b = {0};
  const char *scheme = base->https ? "https:" : "http:";
  if (has_scheme(r)) {
    bool ours = !strncasecmp(r, "http://", 7) || !strncasecmp(r, "https://", 8);
    if (!ours) {
      free(r);
      return -EPROTONOSUPPORT;
    }
    sb_str(&b, r);
  } else if (r[0] == '/' && r[1] == '/') {
    sb_str(&b, scheme);
    sb_str(&b, r);
  } else {
    sb_str(&b, scheme);
    sb_str(&b, "//");
    sb_str(&b, base->authority);
    if (r[0] == '/') {
      sb_target(&b, r);
    } else if (!r[0] || r[0] == '?') {
      sb_add(&b, base->target, strcspn(base->target, "?"));
      sb_str(&b, r[0] ? r : base->target + strcspn(base->target, "?"));
    } else {
      /* The base's directory, then the reference: merged, then cleaned. */
      sbuf m = {0};
      size_t path = strcspn(base->target, "?");
      size_t dir = path;
      while (dir && base->target[dir - 1] != '/')
        dir--;
      sb_add(&m, base->target, dir);
      sb_str(&m, r);
      char *merged = sb_done(&m, NULL);
      if (merged)
        sb_target(&b, merged);
      else
        b.failed = true;
      free(merged);
    }
  }
  free(r);
  *out = sb_done(&b, NULL);
  return *out ? 0 : -ENOMEM;
}

/* ------------------------------------------------------------ the client */

static void client_maybe_done(soon_http_client *client) {
  if (!client->closing || client->live)
    return;
  if (client->close_cb)
    client->close_cb(client);
  free(client);
}

static void client_timer_closed(soon_handle *h) {
  soon_http_client *client = h->data;
  client->live--;
  client_maybe_done(client);
}

int soon_http_client_new(soon_loop *loop, const soon_http_client_options *opts,
                         soon_http_client **out) {
  if (!loop || !out)
    return -EINVAL;
  soon_http_client *c = calloc(1, sizeof *c);
  if (!c)
    return -ENOMEM;
  int err = soon_timer_init(loop, &c->timer);
  if (err) {
    free(c);
    return err;
  }
  c->loop = loop;
  c->timer.data = c;
  c->live = 1;
  if (opts)
    c->opts = *opts;
  if (!c->opts.max_idle_per_host)
    c->opts.max_idle_per_host = DEFAULT_IDLE_PER_HOST;
  if (!c->opts.idle_timeout_ms)
    c->opts.idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_MS;
  if (!c->opts.max_age_ms)
    c->opts.max_age_ms = DEFAULT_MAX_AGE_MS;
  *out = c;
  return 0;
}

int soon_http_client_close(soon_http_client *client,
                           void (*cb)(soon_http_client *client)) {
  if (!client)
    return -EINVAL;
  if (client->closing)
    return -EALREADY;
  if (client->busy)
    return -EBUSY;
  client->closing = true;
  client->close_cb = cb;
  /* Idle and parked connections; every other one serves an exchange an
   * abort has closed already. */
  for (conn *c = client->conns; c; c = c->next)
    if (!c->ex)
      conn_close(c);
  soon_close((soon_handle *)&client->timer, client_timer_closed);
  return 0;
}

/* ------------------------------------------------------------ connections */

static void conn_closed(soon_handle *h) {
  conn *c = h->data;
  if (--c->handles)
    return;
  soon_http_client *client = c->client;
  if (c->prev)
    c->prev->next = c->next;
  else
    client->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  free(c->in);
  free(c->key);
  free(c);
  client->live--;
  client_maybe_done(client);
}

static void idle_unlink(conn *c) {
  soon_http_client *client = c->client;
  if (c->iprev)
    c->iprev->inext = c->inext;
  else
    client->idle = c->inext;
  if (c->inext)
    c->inext->iprev = c->iprev;
  c->inext = c->iprev = NULL;
  c->idle = false;
}

/* Close it; the write or connect in flight, if any, ends with -ECANCELED
 * before the close callbacks, and frees nothing of an exchange's. */
static void conn_close(conn *c) {
  if (c->closing)
    return;
  c->closing = true;
  if (c->idle)
    idle_unlink(c);
  c->parked = false;
  soon_close((soon_handle *)&c->timer, conn_closed);
  soon_close((soon_handle *)&c->tcp, conn_closed);
}

static conn *conn_new(soon_http_client *client, const char *key) {
  conn *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->key = strdup(key);
  if (!c->key || soon_timer_init(client->loop, &c->timer)) {
    free(c->key);
    free(c);
    return NULL;
  }
  c->client = client;
  c->timer.data = c;
  c->handles = 1;
  c->next = client->conns;
  if (c->next)
    c->next->prev = c;
  client->conns = c;
  client->live++;
  /* The timer never keeps the loop alive: a connect or a read does. */
  soon_unref((soon_handle *)&c->timer);
  if (soon_tcp_init(client->loop, &c->tcp)) {
    c->closing = true;
    soon_close((soon_handle *)&c->timer, conn_closed);
    return NULL;
  }
  c->tcp.data = c;
  c->creq.data = c;
  c->wreq.data = c;
  c->handles = 2;
  return c;
}

static unsigned idle_count(soon_http_client *client, const char *key) {
  unsigned n = 0;
  for (conn *c = client->idle; c; c = c->inext)
    n += strcmp(c->key, key) == 0;
  return n;
}

static bool too_old(conn *c) {
  return soon_now(c->client->loop) - c->born >= c->client->opts.max_age_ms;
}

static void idle_timed_out(soon_timer *t) { conn_close(t->data); }

static void pool_put(conn *c) {
  soon_http_client *client = c->client;
  if (client->closing || too_old(c) ||
      idle_count(client, c->key) >= client->opts.max_idle_per_host) {
    conn_close(c);
    return;
  }
  /* Idle connections hold no buffer; nothing reads this one past here
   * (the response that ended is told after). */
  free(c->in);
  c->in = NULL;
  c->len = c->cap = 0;
  c->idle = true;
  c->inext = client->idle;
  if (c->inext)
    c->inext->iprev = c;
  client->idle = c;
  /* An idle connection does not keep soon_run going. */
  soon_unref((soon_handle *)&c->tcp);
  if (soon_timer_start(&c->timer, idle_timed_out, client->opts.idle_timeout_ms,
                       0))
    conn_close(c);
}

/* The last used idle connection to key that is young enough. */
static conn *pool_take(soon_http_client *client, const char *key) {
  conn *c = client->idle, *next;
  for (; c; c = next) {
    next = c->inext;
    if (strcmp(c->key, key) != 0)
      continue;
    if (too_old(c)) {
      conn_close(c);
      continue;
    }
    idle_unlink(c);
    soon_timer_stop(&c->timer);
    soon_ref((soon_handle *)&c->tcp);
    c->reused = true;
    return c;
  }
  return NULL;
}

/* ------------------------------------------------------------ exchanges */

static void xfer_ref(xfer *ex) { ex->refs++; }

static void xfer_unref(xfer *ex) {
  if (--ex->refs)
    return;
  soon_http_client *client = ex->client;
  url_free(&ex->u);
  soon_freeaddrinfo(ex->addrs);
  free(ex->head);
  free(ex->body);
  free(ex->chunk);
  free(ex->location);
  free(ex);
  client->live--;
  client_maybe_done(client);
}

static void xfer_timer_closed(soon_handle *h) { xfer_unref(h->data); }

/* Let go of the connection: to the pool when keep says it may carry the
 * next request, after the request's last write if that is in flight. */
static void release_conn(xfer *ex, bool keep) {
  conn *c = ex->conn;
  if (!c)
    return;
  ex->conn = NULL;
  c->ex = NULL;
  if (!keep)
    conn_close(c);
  else if (c->writing)
    c->parked = true;
  else
    pool_put(c);
}

/* Stop everything but the timer: connection, lookup, deadlines. */
static void settle(xfer *ex) {
  release_conn(ex, false);
  if (ex->resolving)
    soon_cancel((soon_req *)&ex->gai); /* its callback still comes */
  ex->deadline = ex->continue_at = 0;
  soon_timer_stop(&ex->timer);
}

static void clear_response(struct soon__xhr *x) {
  soon_xhr *xhr = x->xhr;
  free(x->head);
  free(x->headers);
  free(x->body);
  x->head = x->body = NULL;
  x->headers = NULL;
  x->body_len = x->body_cap = 0;
  xhr->status = 0;
  xhr->status_text = (soon_http_span){"", 0};
  xhr->response = NULL;
  xhr->response_len = 0;
  xhr->headers = NULL;
  xhr->nheaders = 0;
}

/* The xhr and the exchange part: nothing of it will reach the xhr again. */
static void detach(xfer *ex) {
  struct soon__xhr *x = ex->x;
  x->ex = NULL;
  ex->x = NULL;
  ex->client->busy--;
  soon_close((soon_handle *)&ex->timer, xfer_timer_closed);
  xfer_unref(ex);
}

/* The one callback of this send, last: the user may open, send, abort,
 * clean up or free anything from it. */
static void tell(xfer *ex, int kind, int err) {
  struct soon__xhr *x = ex->x;
  soon_xhr *xhr = x->xhr;
  settle(ex);
  detach(ex);
  if (kind == TELL_LOAD) {
    xhr->response = x->body ? x->body : "";
    xhr->response_len = x->body_len;
    if (xhr->onload)
      xhr->onload(xhr);
    return;
  }
  clear_response(x);
  /* Without an ontimeout a timeout is an error, as the browser's "error"
   * event for a network timeout: the article's program sets only onload
   * and onerror, and still hears of it. */
  if (kind == TELL_TIMEOUT && xhr->ontimeout)
    xhr->ontimeout(xhr);
  else if (xhr->onerror)
    xhr->onerror(xhr, kind == TELL_TIMEOUT ? -ETIMEDOUT : err);
}

static void xfer_timer_cb(soon_timer *t);

/* Tell now, or from the loop when found inside soon_xhr_send. */
static void finish(xfer *ex, int kind, int err) {
  struct soon__xhr *x = ex->x;
  settle(ex);
  if (!x->in_send) {
    tell(ex, kind, err);
    return;
  }
  ex->later = true;
  ex->later_kind = kind;
  ex->later_err = err;
  int e = soon_timer_start(&ex->timer, xfer_timer_cb, 0, 0);
  if (e)
    x->send_err = e;
}

static void fail(xfer *ex, int err) {
  if (err == SOON_HTTP_EBODY_SIZE)
    err = -EFBIG;
  finish(ex, err == -ETIMEDOUT ? TELL_TIMEOUT : TELL_ERROR, err);
}

/* The timer at the nearer of the deadline and the end of a wait for 100
 * Continue. */
static int arm(xfer *ex) {
  uint64_t due = ex->deadline;
  if (ex->continue_at && (!due || ex->continue_at < due))
    due = ex->continue_at;
  if (!due)
    return soon_timer_stop(&ex->timer);
  uint64_t now = soon_now(ex->client->loop);
  return soon_timer_start(&ex->timer, xfer_timer_cb, due > now ? due - now : 0,
                          0);
}

static void xfer_timer_cb(soon_timer *t) {
  xfer *ex = t->data;
  if (ex->later) {
    tell(ex, ex->later_kind, ex->later_err);
    return;
  }
  uint64_t now = soon_now(ex->client->loop);
  if (ex->deadline && now >= ex->deadline) {
    finish(ex, TELL_TIMEOUT, 0);
    return;
  }
  if (ex->continue_at && now >= ex->continue_at) {
    ex->continue_at = 0;
    xfer_ref(ex);
    start_body(ex);
    bool ours = ex->x != NULL;
    xfer_unref(ex);
    if (!ours)
      return;
  }
  if (arm(ex) && ex->continue_at) {
    ex->continue_at = 0; /* no timer for the wait: send the body now */
    start_body(ex);
  }
}

/* ------------------------------------------------------------ the request */

static bool method_is(const char *m, const char *lit) {
  return strcmp(m, lit) == 0;
}

/* RFC 9110 section 9.2.2: what may be sent twice. */
static bool idempotent(const char *m) {
  static const char *const list[] = {"GET",    "HEAD",    "PUT",
                                     "DELETE", "OPTIONS", "TRACE"};
  for (size_t i = 0; i < sizeof list / sizeof *list; i++)
    if (method_is(m, list[i]))
      return true;
  return false;
}

static bool has_body(const xfer *ex) { return ex->body_len || ex->pull; }

/* Fields a redirect to GET drops with the body (the Fetch standard's
 * request-body-header names). */
static bool body_field(const char *name) {
  return !strcasecmp(name, "Content-Type") ||
         !strcasecmp(name, "Content-Encoding") ||
         !strcasecmp(name, "Content-Language") ||
         !strcasecmp(name, "Content-Location");
}

static bool keep_field(const xfer *ex, const field *f) {
  if (!strcasecmp(f->name, "Expect"))
    return has_body(ex);
  if (ex->drop_body_fields && body_field(f->name))
    return false;
  return !(ex->drop_auth && !strcasecmp(f->name, "Authorization"));
}

static void add_framing(sbuf *b, const xfer *ex) {
  char line[64];
  if (ex->pull && ex->pull_len < 0) {
    sb_str(b, "Transfer-Encoding: chunked\r\n");
    return;
  }
  uint64_t n = ex->pull ? (uint64_t)ex->pull_len : ex->body_len;
  /* POST, PUT and PATCH say their empty body (RFC 9110 section 8.6). */
  if (!n && !method_is(ex->method, "POST") && !method_is(ex->method, "PUT") &&
      !method_is(ex->method, "PATCH"))
    return;
  snprintf(line, sizeof line, "Content-Length: %" PRIu64 "\r\n", n);
  sb_str(b, line);
}

/* The request head for this hop; notes whether the body waits for 100. */
static int render_head(xfer *ex) {
  struct soon__xhr *x = ex->x;
  sbuf b = {0};
  ex->expect_continue = false;
  sb_str(&b, ex->method);
  sb_add(&b, " ", 1);
  sb_str(&b, ex->u.target);
  sb_str(&b, " HTTP/1.1\r\nHost: ");
  sb_str(&b, ex->u.authority);
  sb_add(&b, "\r\n", 2);
  for (unsigned i = 0; i < x->nfields; i++) {
    const field *f = &x->fields[i];
    if (!keep_field(ex, f))
      continue;
    if (!strcasecmp(f->name, "Expect") && !strcasecmp(f->value, "100-continue"))
      ex->expect_continue = true;
    sb_str(&b, f->name);
    sb_add(&b, ": ", 2);
    sb_str(&b, f->value);
    sb_add(&b, "\r\n", 2);
  }
  add_framing(&b, ex);
  sb_add(&b, "\r\n", 2);
  free(ex->head);
  ex->head = sb_done(&b, &ex->head_len);
  return ex->head ? 0 : -ENOMEM;
}

static void write_cb(soon_write_req *req, int status);

/* One write on the connection, holding ex (whose bytes it sends). */
static int conn_write(conn *c, xfer *ex, const soon_buf *bufs, unsigned n) {
  xfer_ref(ex);
  c->wex = ex;
  c->writing = true;
  int err = soon_write(&c->wreq, (soon_stream *)&c->tcp, bufs, n, write_cb);
  if (err) {
    c->writing = false;
    c->wex = NULL;
    xfer_unref(ex);
  }
  return err;
}

static void conn_fail(xfer *ex, int err);

/* The next piece of a streamed body: framed when chunked, and the final
 * empty chunk at its end. */
static void pull_next(xfer *ex) {
  soon_xhr *xhr = ex->x->xhr;
  conn *c = ex->conn;
  uint64_t left =
      ex->pull_len < 0 ? PULL_SIZE : (uint64_t)ex->pull_len - ex->pulled;
  size_t cap = left < PULL_SIZE ? (size_t)left : PULL_SIZE;
  if (!ex->chunk && !(ex->chunk = malloc(PULL_SIZE))) {
    fail(ex, -ENOMEM);
    return;
  }
  ssize_t n = 0;
  if (cap) {
    xfer_ref(ex);
    n = ex->pull(xhr, ex->chunk, cap);
    bool ours = ex->x && ex->conn == c;
    xfer_unref(ex);
    if (!ours)
      return;
  }
  if (n < 0 || (size_t)n > cap || (!n && ex->pull_len >= 0 && left)) {
    /* A source that fails, overfills, or ends short of its length. */
    fail(ex, n < 0 ? (int)n : -EINVAL);
    return;
  }
  ex->pulled += (uint64_t)n;
  soon_buf bufs[3];
  unsigned nb = 0;
  if (ex->pull_len < 0) {
    int k = snprintf(ex->chunk_line, sizeof ex->chunk_line,
                     n ? "%zx\r\n" : "0\r\n\r\n", (size_t)n);
    bufs[nb++] = (soon_buf){ex->chunk_line, (size_t)k};
  }
  if (n) {
    bufs[nb++] = (soon_buf){ex->chunk, (size_t)n};
    if (ex->pull_len < 0)
      bufs[nb++] = (soon_buf){(char *)"\r\n", 2};
  }
  ex->req_done =
      !n || (ex->pull_len >= 0 && ex->pulled == (uint64_t)ex->pull_len);
  if (!nb)
    return;
  int err = conn_write(c, ex, bufs, nb);
  if (err)
    conn_fail(ex, err);
}

/* The body, once the head allows it (at once, or after 100 Continue). */
static void start_body(xfer *ex) {
  conn *c = ex->conn;
  if (!c || ex->req_done)
    return;
  if (c->writing) {
    ex->body_due = true; /* when the head's write is done */
    return;
  }
  ex->body_due = false;
  if (ex->pull) {
    pull_next(ex);
    return;
  }
  soon_buf buf = {ex->body, ex->body_len};
  ex->req_done = true;
  int err = conn_write(c, ex, &buf, 1);
  if (err)
    conn_fail(ex, err);
}

/* The head, with a copied body in the same write unless it waits for 100
 * Continue; a streamed body follows the head's write. */
static void send_request(xfer *ex) {
  conn *c = ex->conn;
  soon_buf bufs[2] = {{ex->head, ex->head_len}, {ex->body, ex->body_len}};
  bool with_body = ex->body_len && !ex->expect_continue;
  ex->req_done = !has_body(ex) || with_body;
  int err = conn_write(c, ex, bufs, with_body ? 2 : 1);
  if (err) {
    conn_fail(ex, err);
    return;
  }
  if (ex->expect_continue) {
    ex->continue_at = soon_now(ex->client->loop) + CONTINUE_WAIT_MS;
    if (arm(ex))
      ex->continue_at = 0;
  }
  if (ex->pull && !ex->continue_at)
    ex->body_due = true;
  else if (ex->expect_continue && !ex->continue_at)
    start_body(ex);
}

static void write_cb(soon_write_req *req, int status) {
  conn *c = req->data;
  xfer *ex = c->wex;
  c->wex = NULL;
  c->writing = false;
  if (status)
    c->broken = true;
  if (c->parked) {
    c->parked = false;
    if (status)
      conn_close(c);
    else
      pool_put(c);
  } else if (!c->closing && ex->x && c->ex == ex) {
    /* Once the response has begun, a failed write is the server's
     * answer coming early (413 and a close): read it. */
    if (status && !ex->got_bytes)
      conn_fail(ex, status);
    else if (!status && ex->body_due)
      start_body(ex);
    else if (!status && ex->pull && !ex->req_done && !ex->continue_at)
      pull_next(ex);
  }
  xfer_unref(ex);
}

/* ------------------------------------------------------------ connecting */

static void attach(xfer *ex, conn *c) {
  ex->conn = c;
  c->ex = ex;
  c->len = 0;
}

static void alloc_cb(soon_handle *h, size_t suggested, soon_buf *buf);
static void read_cb(soon_stream *s, ssize_t nread, const soon_buf *buf);

static void connect_cb(soon_connect_req *req, int status) {
  conn *c = req->data;
  xfer *ex = c->ex;
  if (!ex)
    return; /* aborted or timed out: closing, -ECANCELED */
  soon_timer_stop(&c->timer);
  if (!status) {
    c->born = soon_now(c->client->loop);
    (void)soon_tcp_set_nodelay(&c->tcp, 1); /* latency only */
    status = soon_read_start((soon_stream *)&c->tcp, alloc_cb, read_cb);
  }
  if (status) {
    release_conn(ex, false);
    ex->last_err = status;
    try_next(ex);
    return;
  }
  send_request(ex);
}

static void connect_timed_out(soon_timer *t) {
  conn *c = t->data;
  xfer *ex = c->ex;
  if (!ex)
    return;
  release_conn(ex, false);
  ex->last_err = -ETIMEDOUT;
  try_next(ex);
}

/* A new connection to sa for ex: 0, or the error that stopped it early. */
static int connect_to(xfer *ex, struct sockaddr *sa) {
  conn *c = conn_new(ex->client, ex->u.authority);
  if (!c)
    return -ENOMEM;
  int err = soon_tcp_connect(&c->creq, &c->tcp, sa, connect_cb);
  if (!err && ex->connect_timeout_ms)
    err = soon_timer_start(&c->timer, connect_timed_out, ex->connect_timeout_ms,
                           0);
  if (err) {
    conn_close(c);
    return err;
  }
  attach(ex, c);
  return 0;
}

static void set_port(struct sockaddr *sa, uint16_t port) {
  if (sa->sa_family == AF_INET)
    ((struct sockaddr_in *)sa)->sin_port = htons(port);
  else
    ((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
}

/* The next address, until one connects; the last one's error otherwise
 * (-ETIMEDOUT, a connect timeout, is an ontimeout). */
static void try_next(xfer *ex) {
  while (ex->next_addr) {
    struct addrinfo *ai = ex->next_addr;
    ex->next_addr = ai->ai_next;
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
      continue;
    set_port(ai->ai_addr, ex->u.port);
    int err = connect_to(ex, ai->ai_addr);
    if (!err)
      return;
    ex->last_err = err;
  }
  fail(ex, ex->last_err ? ex->last_err : SOON_EAI_NONAME);
}

static void resolved(soon_getaddrinfo_req *req, int status,
                     struct addrinfo *res) {
  xfer *ex = req->data;
  ex->resolving = false;
  if (ex->x && !ex->later && !status) {
    ex->addrs = res;
    ex->next_addr = res;
    ex->last_err = 0;
    try_next(ex);
  } else {
    soon_freeaddrinfo(res);
    if (ex->x && !ex->later)
      fail(ex, status);
  }
  xfer_unref(ex);
}

/* A numeric host is connected to at once; a name goes through
 * soon_getaddrinfo first, and each address it gives is tried in turn. */
static void connect_start(xfer *ex) {
  struct sockaddr_in *a4 = (struct sockaddr_in *)&ex->one_addr;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ex->one_addr;
  soon_freeaddrinfo(ex->addrs);
  ex->addrs = NULL;
  ex->last_err = 0;
  if (!soon_ip4_addr(ex->u.host, ex->u.port, a4) ||
      !soon_ip6_addr(ex->u.host, ex->u.port, a6)) {
    memset(&ex->one, 0, sizeof ex->one);
    ex->one.ai_family = ex->one_addr.ss_family;
    ex->one.ai_addr = (struct sockaddr *)&ex->one_addr;
    ex->next_addr = &ex->one;
    try_next(ex);
    return;
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_protocol = IPPROTO_TCP};
  xfer_ref(ex);
  ex->resolving = true;
  ex->gai.data = ex;
  int err = soon_getaddrinfo(ex->client->loop, &ex->gai, resolved, ex->u.host,
                             NULL, &hints);
  if (err) {
    ex->resolving = false;
    xfer_unref(ex);
    fail(ex, err);
  }
}

/* This hop's request, on an idle connection to its host or a new one. */
static void begin(xfer *ex) {
  ex->got_bytes = ex->head_done = ex->following = false;
  ex->body_due = ex->req_done = false;
  ex->continue_at = 0;
  free(ex->location);
  ex->location = NULL;
  if (ex->u.https) {
    fail(ex, -EPROTONOSUPPORT); /* until TLS exists */
    return;
  }
  soon_http_limits limits = {.max_head = RESPONSE_MAX_HEAD,
                             .max_body = ex->max_response};
  int err = render_head(ex);
  if (!err)
    err = soon_http_parser_init(&ex->parser, SOON_HTTP_RESPONSE, ex->headers,
                                RESPONSE_MAX_HEADERS, &limits);
  if (err) {
    fail(ex, err);
    return;
  }
  ex->parser.head_request = ex->is_head;
  conn *c = ex->fresh ? NULL : pool_take(ex->client, ex->u.authority);
  ex->fresh = false;
  if (!c) {
    connect_start(ex);
    return;
  }
  attach(ex, c);
  send_request(ex);
}

/* ------------------------------------------------------------ the response */

static void alloc_cb(soon_handle *h, size_t suggested, soon_buf *buf) {
  conn *c = h->data;
  (void)suggested;
  if (!c->ex) {
    *buf = (soon_buf){c->tiny, sizeof c->tiny};
    return;
  }
  if (c->cap - c->len < READ_ROOM) {
    size_t cap = c->cap ? c->cap * 2 : READ_SIZE;
    char *p = realloc(c->in, cap);
    if (!p) {
      *buf = (soon_buf){NULL, 0}; /* the read gets -ENOBUFS */
      return;
    }
    c->in = p;
    c->cap = cap;
  }
  *buf = (soon_buf){c->in + c->len, c->cap - c->len};
}

static bool body_reserve(struct soon__xhr *x, uint64_t want) {
  if (want <= x->body_cap)
    return true;
  if (want > SIZE_MAX)
    return false;
  size_t cap = x->body_cap ? x->body_cap : BODY_FIRST;
  while (cap < want)
    cap = cap > SIZE_MAX / 2 ? (size_t)want : cap * 2;
  char *p = realloc(x->body, cap);
  if (!p)
    return false;
  x->body = p;
  x->body_cap = cap;
  x->body[x->body_len] = '\0'; /* responseText is a C string, even empty */
  return true;
}

/* Appended, NUL-terminated: responseText is a C string. */
static bool body_append(struct soon__xhr *x, const char *p, size_t n) {
  if (!body_reserve(x, (uint64_t)x->body_len + n + 1))
    return false;
  memcpy(x->body + x->body_len, p, n);
  x->body_len += n;
  x->body[x->body_len] = '\0';
  return true;
}

static soon_http_span rebase(soon_http_span s, const char *from,
                             const char *to) {
  if (!s.len)
    return (soon_http_span){"", 0};
  return (soon_http_span){to + (s.base - from), s.len};
}

/* The final response's head, copied into the xhr's memory: the status,
 * reason and headers point there, not into the connection's buffer. */
static bool store_head(xfer *ex, size_t n) {
  struct soon__xhr *x = ex->x;
  soon_http_parser *p = &ex->parser;
  const char *in = ex->conn->in;
  clear_response(x);
  x->head = malloc(n);
  x->headers = malloc(sizeof *x->headers * (p->nheaders ? p->nheaders : 1));
  bool ok = x->head && x->headers;
  if (ok && p->body == SOON_HTTP_BODY_LENGTH)
    ok = body_reserve(x, p->content_length + 1);
  if (!ok) {
    fail(ex, -ENOMEM);
    return false;
  }
  memcpy(x->head, in, n);
  for (unsigned i = 0; i < p->nheaders; i++) {
    x->headers[i].name = rebase(p->headers[i].name, in, x->head);
    x->headers[i].value = rebase(p->headers[i].value, in, x->head);
  }
  x->xhr->status = p->status;
  x->xhr->status_text = rebase(p->reason, in, x->head);
  x->xhr->headers = x->headers;
  x->xhr->nheaders = p->nheaders;
  return true;
}

static bool is_redirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 ||
         status == 308;
}

/* Whether this response is a redirect to take (1), not one (0), or one
 * past the limit or to nowhere usable (a negative errno). */
static int redirect(xfer *ex) {
  soon_http_parser *p = &ex->parser;
  const soon_http_span *loc = soon_http_header_get(p, "Location");
  if (!is_redirect(p->status) || ex->no_redirects || !loc)
    return 0;
  /* As browsers do (the Fetch standard, "HTTP-redirect fetch"). */
  bool to_get = p->status == 303 ? !ex->is_head
                                 : (p->status == 301 || p->status == 302) &&
                                       method_is(ex->method, "POST");
  if (ex->pull && !to_get)
    return 0; /* a streamed body cannot be sent again: the caller decides */
  if (ex->redirects >= ex->max_redirects)
    return -ELOOP;
  int err = url_resolve(&ex->u, *loc, &ex->location);
  if (err)
    return err;
  ex->redirect_to_get = to_get;
  ex->following = true;
  return 1;
}

/* A final response's head (n bytes at the connection's buffer). */
static bool on_head(xfer *ex, size_t n) {
  if (ex->continue_at) {
    /* Answered before 100 Continue: the body stays unsent, and the
     * connection is not reused (the server may still expect it). */
    ex->continue_at = 0;
    (void)arm(ex); /* only ever stops, or keeps the deadline */
  }
  int r = redirect(ex);
  if (r < 0) {
    fail(ex, r);
    return false;
  }
  return r ? true : store_head(ex, n);
}

/* An interim response (1xx) of n bytes: skipped, unless it is the 100
 * Continue the body waits for. */
static bool on_interim(xfer *ex, size_t n) {
  conn *c = ex->conn;
  int status = ex->parser.status;
  if (status == 101) {
    fail(ex, -EPROTO); /* no upgrade was asked for */
    return false;
  }
  if (status == 100 && ex->continue_at) {
    ex->continue_at = 0;
    (void)arm(ex);
    start_body(ex); /* may pull: the user's code */
    if (!ex->x || ex->conn != c)
      return false;
  }
  memmove(c->in, c->in + n, c->len - n);
  c->len -= n;
  soon_http_parser_reset(&ex->parser);
  ex->parser.head_request = ex->is_head;
  return true;
}

static void follow(xfer *ex);

/* The response has ended: the connection back to the pool when it may
 * carry another request, then the next hop or the callback. */
static void message_end(xfer *ex, bool extra) {
  conn *c = ex->conn;
  bool keep = (ex->parser.flags & SOON_HTTP_KEEP_ALIVE) && !extra &&
              ex->req_done && !c->broken;
  release_conn(ex, keep);
  if (ex->following)
    follow(ex);
  else
    finish(ex, TELL_LOAD, 0);
}

/* Body bytes buf[0..len): kept (a redirect's dropped), told as progress,
 * and the end handled. False once ex is done reading on this connection. */
static bool on_body(xfer *ex, const char *buf, size_t len) {
  soon_http_parser *p = &ex->parser;
  struct soon__xhr *x = ex->x;
  conn *c = ex->conn;
  size_t used = 0, before = x->body_len;
  while (used < len && !soon_http_message_done(p)) {
    soon_http_span d;
    ssize_t n = soon_http_parse_body(p, buf + used, len - used, &d);
    if (n < 0) {
      fail(ex, (int)n);
      return false;
    }
    if (d.len && !ex->following && !body_append(x, d.base, d.len)) {
      fail(ex, -ENOMEM);
      return false;
    }
    used += (size_t)n;
  }
  c->len = 0;
  if (x->body_len > before && x->xhr->onprogress) {
    int64_t total =
        p->body == SOON_HTTP_BODY_LENGTH ? (int64_t)p->content_length : -1;
    x->xhr->onprogress(x->xhr, x->body_len, total);
    if (ex->x != x || ex->conn != c)
      return false; /* aborted from the callback */
  }
  if (!soon_http_message_done(p))
    return true;
  message_end(ex, used < len);
  return false;
}

/* New bytes at the connection's buffer: interim heads, the head, body. */
static void on_bytes(xfer *ex) {
  conn *c = ex->conn;
  size_t used = 0;
  while (!ex->head_done) {
    ssize_t n = soon_http_parse_head(&ex->parser, c->in, c->len);
    if (n == 0)
      return;
    if (n < 0) {
      fail(ex, (int)n);
      return;
    }
    if (ex->parser.status >= 200) {
      ex->head_done = true;
      used = (size_t)n;
      if (!on_head(ex, used))
        return;
    } else if (!on_interim(ex, (size_t)n)) {
      return;
    }
  }
  on_body(ex, c->in + used, c->len - used);
}

/* The connection failed under ex: once more on a new connection when the
 * server may have closed it idle just as the request went out (RFC 9112
 * section 9.3.1): a reused connection, no byte of an answer, an
 * idempotent method, a body that can be sent again. */
static void conn_fail(xfer *ex, int err) {
  conn *c = ex->conn;
  bool retry = c && c->reused && !ex->got_bytes && !ex->retried && !ex->pull &&
               idempotent(ex->method);
  release_conn(ex, false);
  if (!retry) {
    fail(ex, err);
    return;
  }
  ex->retried = true;
  ex->fresh = true;
  begin(ex);
}

/* The end of the stream (err 0) or a read error: the end of a body that
 * runs until the close, or a failure. */
static void on_end(xfer *ex, int err) {
  if (!err && ex->head_done && soon_http_parse_eof(&ex->parser) == 0) {
    message_end(ex, false);
    return;
  }
  conn_fail(ex, err ? err : SOON_HTTP_ETRUNCATED);
}

static void read_cb(soon_stream *s, ssize_t nread, const soon_buf *buf) {
  conn *c = s->data;
  xfer *ex = c->ex;
  (void)buf; /* it is c->in + c->len, or c->tiny */
  if (!nread || c->closing)
    return;
  if (!ex) {
    /* Idle or parked: an EOF, an error, or bytes nobody asked for. */
    conn_close(c);
    return;
  }
  xfer_ref(ex);
  if (nread < 0) {
    on_end(ex, nread == SOON_EOF ? 0 : (int)nread);
  } else {
    c->len += (size_t)nread;
    ex->got_bytes = true;
    on_bytes(ex);
  }
  xfer_unref(ex);
}

/* The next hop, after a redirect's body has been read. */
static void follow(xfer *ex) {
  struct soon__xhr *x = ex->x;
  url next;
  int err = url_parse(ex->location, &next);
  char *final = err ? NULL : strdup(next.href);
  if (!final) {
    if (!err)
      url_free(&next);
    fail(ex, err ? err : -ENOMEM);
    return;
  }
  if (ex->redirect_to_get) {
    ex->method = "GET";
    ex->is_head = false;
    free(ex->body);
    ex->body = NULL;
    ex->body_len = 0;
    ex->pull = NULL;
    ex->drop_body_fields = true;
  }
  if (next.https != ex->u.https || strcmp(next.authority, ex->u.authority))
    ex->drop_auth = true; /* credentials stay with their origin */
  free(x->final);
  x->final = final;
  x->xhr->url = final;
  url_free(&ex->u);
  ex->u = next;
  ex->redirects++;
  ex->retried = false;
  begin(ex);
}

/* ------------------------------------------------------------ the xhr */

int soon_xhr_init(soon_xhr *xhr, soon_http_client *client) {
  if (!xhr || !client)
    return -EINVAL;
  struct soon__xhr *x = calloc(1, sizeof *x);
  if (!x)
    return -ENOMEM;
  x->xhr = xhr;
  x->client = client;
  /* Every field but data, which is the caller's. */
  xhr->onload = NULL;
  xhr->onerror = NULL;
  xhr->ontimeout = NULL;
  xhr->onprogress = NULL;
  xhr->timeout_ms = 0;
  xhr->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
  xhr->max_response = DEFAULT_MAX_RESPONSE;
  xhr->max_redirects = DEFAULT_MAX_REDIRECTS;
  xhr->no_redirects = false;
  xhr->url = NULL;
  xhr->priv = x;
  clear_response(x);
  return 0;
}

/* XHR's method normalisation: the standard methods in any case become
 * upper case; anything else is sent as given. */
static char *method_copy(const char *m) {
  static const char *const known[] = {"DELETE",  "GET",  "HEAD",
                                      "OPTIONS", "POST", "PUT"};
  for (size_t i = 0; i < sizeof known / sizeof *known; i++)
    if (!strcasecmp(m, known[i]))
      return strdup(known[i]);
  return strdup(m);
}

static void fields_free(struct soon__xhr *x) {
  for (unsigned i = 0; i < x->nfields; i++) {
    free(x->fields[i].name);
    free(x->fields[i].value);
  }
  free(x->fields);
  x->fields = NULL;
  x->nfields = 0;
}

int soon_xhr_open(soon_xhr *xhr, const char *method, const char *url_str) {
  if (!xhr || !xhr->priv || !method || !url_str)
    return -EINVAL;
  struct soon__xhr *x = xhr->priv;
  if (x->ex)
    return -EBUSY;
  /* CONNECT would make the connection a tunnel, not an HTTP exchange. */
  if (!is_token(method) || !strcasecmp(method, "CONNECT"))
    return -EINVAL;
  url u;
  int err = url_parse(url_str, &u);
  if (err)
    return err;
  char *m = method_copy(method), *final = strdup(u.href);
  if (!m || !final) {
    free(m);
    free(final);
    url_free(&u);
    return -ENOMEM;
  }
  free(x->method);
  url_free(&x->u);
  free(x->final);
  fields_free(x);
  clear_response(x);
  x->method = m;
  x->u = u;
  x->final = final;
  xhr->url = final;
  return 0;
}

static bool reserved_field(const char *name) {
  return !strcasecmp(name, "Host") || !strcasecmp(name, "Content-Length") ||
         !strcasecmp(name, "Transfer-Encoding") ||
         !strcasecmp(name, "Connection");
}

/* value's bytes without its leading and trailing SP and HTAB (*at, *n);
 * false when it holds a byte no field value may (a CR or LF would split
 * the head). */
static bool field_value(const char *value, const char **at, size_t *n) {
  while (*value == ' ' || *value == '\t')
    value++;
  size_t len = strlen(value);
  while (len && (value[len - 1] == ' ' || value[len - 1] == '\t'))
    len--;
  for (const char *p = value; *p; p++) {
    unsigned char ch = (unsigned char)*p;
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
      return false;
  }
  *at = value;
  *n = len;
  return true;
}

/* A field set twice is combined, as XHR's setRequestHeader does. */
static int field_combine(field *f, char *v) {
  size_t a = strlen(f->value), b = strlen(v);
  char *both = malloc(a + b + 3);
  if (!both) {
    free(v);
    return -ENOMEM;
  }
  memcpy(both, f->value, a);
  memcpy(both + a, ", ", 2);
  memcpy(both + a + 2, v, b + 1);
  free(f->value);
  free(v);
  f->value = both;
  return 0;
}

int soon_xhr_set_header(soon_xhr *xhr, const char *name, const char *value) {
  if (!xhr || !xhr->priv || !name || !value)
    return -EINVAL;
  struct soon__xhr *x = xhr->priv;
  if (x->ex)
    return -EBUSY;
  if (!x->method || !is_token(name) || reserved_field(name))
    return -EINVAL;
  const char *at;
  size_t len;
  if (!field_value(value, &at, &len))
    return -EINVAL;
  char *v = malloc(len + 1);
  if (!v)
    return -ENOMEM;
  memcpy(v, at, len);
  v[len] = '\0';
  for (unsigned i = 0; i < x->nfields; i++)
    if (!strcasecmp(x->fields[i].name, name))
      return field_combine(&x->fields[i], v);
  field *f = realloc(x->fields, sizeof *f * (x->nfields + 1));
  char *n = strdup(name);
  if (f)
    x->fields = f;
  if (!f || !n) {
    free(n);
    free(v);
    return -ENOMEM;
  }
  x->fields[x->nfields++] = (field){n, v};
  return 0;
}

static int send_check(soon_xhr *xhr) {
  if (!xhr || !xhr->priv || !xhr->priv->method)
    return -EINVAL;
  if (xhr->priv->ex)
    return -EBUSY;
  return xhr->priv->client->closing ? -EINVAL : 0;
}

static xfer *xfer_new(struct soon__xhr *x) {
  xfer *ex = calloc(1, sizeof *ex);
  if (!ex)
    return NULL;
  if (url_parse(x->u.href, &ex->u)) {
    free(ex);
    return NULL;
  }
  if (soon_timer_init(x->client->loop, &ex->timer)) {
    url_free(&ex->u);
    free(ex);
    return NULL;
  }
  soon_xhr *xhr = x->xhr;
  ex->timer.data = ex;
  ex->client = x->client;
  ex->refs = 2; /* the xhr's, and the timer's until its close callback */
  ex->client->live++;
  ex->method = x->method;
  ex->is_head = method_is(x->method, "HEAD");
  ex->connect_timeout_ms = xhr->connect_timeout_ms;
  ex->max_response =
      xhr->max_response ? xhr->max_response : DEFAULT_MAX_RESPONSE;
  ex->max_redirects = xhr->max_redirects;
  ex->no_redirects = xhr->no_redirects;
  return ex;
}

/* The exchange belongs to the xhr from here; whatever happens now is told
 * from the loop (finish), or, if even that cannot be arranged, returned
 * with no callback. */
static int send_start(struct soon__xhr *x, xfer *ex) {
  soon_xhr *xhr = x->xhr;
  char *final = strdup(x->u.href);
  if (!final) {
    soon_close((soon_handle *)&ex->timer, xfer_timer_closed);
    xfer_unref(ex);
    return -ENOMEM;
  }
  clear_response(x);
  free(x->final);
  x->final = final;
  xhr->url = final;
  x->ex = ex;
  ex->x = x;
  x->client->busy++;
  uint64_t now = soon_now(x->client->loop);
  if (xhr->timeout_ms && xhr->timeout_ms < UINT64_MAX - now)
    ex->deadline = now + xhr->timeout_ms;
  x->send_err = arm(ex);
  if (!x->send_err) {
    x->in_send = true;
    begin(ex);
    x->in_send = false;
  }
  if (x->send_err) {
    int err = x->send_err;
    settle(ex);
    detach(ex);
    return err;
  }
  return 0;
}

/* XHR sends no body with GET and HEAD. */
static bool bodiless(const char *method) {
  return method_is(method, "GET") || method_is(method, "HEAD");
}

int soon_xhr_send(soon_xhr *xhr, const void *body, size_t len) {
  int err = send_check(xhr);
  if (err)
    return err;
  if (!body && len)
    return -EINVAL;
  struct soon__xhr *x = xhr->priv;
  if (bodiless(x->method))
    len = 0;
  xfer *ex = xfer_new(x);
  if (ex && len && (ex->body = malloc(len)))
    memcpy(ex->body, body, len);
  if (!ex || (len && !ex->body)) {
    if (ex) {
      soon_close((soon_handle *)&ex->timer, xfer_timer_closed);
      xfer_unref(ex);
    }
    return -ENOMEM;
  }
  ex->body_len = len;
  return send_start(x, ex);
}

int soon_xhr_send_stream(soon_xhr *xhr, int64_t length, soon_xhr_body_cb cb) {
  int err = send_check(xhr);
  if (err)
    return err;
  if (!cb || bodiless(xhr->priv->method))
    return -EINVAL;
  xfer *ex = xfer_new(xhr->priv);
  if (!ex)
    return -ENOMEM;
  if (length) { /* an empty body is no stream: Content-Length: 0 */
    ex->pull = cb;
    ex->pull_len = length;
  }
  return send_start(xhr->priv, ex);
}

void soon_xhr_abort(soon_xhr *xhr) {
  if (!xhr || !xhr->priv || !xhr->priv->ex)
    return;
  struct soon__xhr *x = xhr->priv;
  xfer *ex = x->ex;
  settle(ex);
  detach(ex);
  clear_response(x);
}

const soon_http_span *soon_xhr_get_header(const soon_xhr *xhr,
                                          const char *name) {
  if (!xhr || !name)
    return NULL;
  for (unsigned i = 0; i < xhr->nheaders; i++)
    if (span_is(xhr->headers[i].name, name))
      return &xhr->headers[i].value;
  return NULL;
}

void soon_xhr_cleanup(soon_xhr *xhr) {
  if (!xhr || !xhr->priv)
    return;
  struct soon__xhr *x = xhr->priv;
  soon_xhr_abort(xhr);
  clear_response(x);
  free(x->method);
  url_free(&x->u);
  free(x->final);
  fields_free(x);
  free(x);
  xhr->priv = NULL;
  xhr->url = NULL;
}
