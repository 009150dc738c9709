/* test_http_client.c: the XMLHttpRequest-shaped client (soon/http.h,
 * "client") against servers written here on soon's own streams. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <soon.h>
#include <soon/http.h>

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* ------------------------------------------------------------ the server */

/* A test server: it parses each request with soon's parser and answers
 * from a route table (raw response bytes, then keep the connection, close
 * it, or half-close it), or from a handler for what a table cannot say. */
enum { THEN_KEEP, THEN_CLOSE, THEN_SHUTDOWN, THEN_SILENT };

typedef struct srv srv;
typedef struct sconn sconn;

typedef struct route {
  const char *target; /* NULL: any */
  const char *raw;    /* the response's bytes (NULL: no answer) */
  size_t len;         /* 0: strlen(raw) */
  int then;
} route;

struct srv {
  soon_loop *loop;
  soon_tcp listener;
  int port;
  bool started;
  route routes[8];
  unsigned nroutes;
  /* instead of the routes, when set */
  void (*handler)(sconn *c);
  /* when a request's head is in, before its body */
  void (*on_head)(sconn *c);
  /* connections accepted, requests read, connections the client ended */
  unsigned accepted, requests, eofs, heads;
  sconn *conns;
  /* the last request, whole, and the methods and targets of all */
  char last_head[8192];
  char *last_body;
  size_t last_body_len;
  char log[4096];
  /* for handlers */
  int flag;
  void *data;
};

struct sconn {
  soon_tcp tcp;
  soon_shutdown_req sreq;
  srv *srv;
  sconn *next;
  char *in;
  size_t len, cap, pos;
  soon_http_parser p;
  soon_http_header hdrs[SOON_HTTP_MAX_HEADERS];
  bool head_done, closing, ignore;
  char *body;
  size_t blen;
  unsigned nreq;
};

typedef struct swrite {
  soon_write_req req;
  sconn *c;
  int then;
  char bytes[];
} swrite;

static void sconn_freed(soon_handle *h) {
  sconn *c = h->data;
  free(c->in);
  free(c->body);
  free(c);
}

static void sconn_close(sconn *c) {
  if (c->closing)
    return;
  c->closing = true;
  for (sconn **p = &c->srv->conns; *p; p = &(*p)->next)
    if (*p == c) {
      *p = c->next;
      break;
    }
  assert_int_equal(soon_close((soon_handle *)&c->tcp, sconn_freed), 0);
}

static void shut_done(soon_shutdown_req *req, int status) {
  (void)req;
  (void)status;
}

static void swrite_cb(soon_write_req *req, int status) {
  swrite *w = (swrite *)req;
  sconn *c = w->c;
  int then = w->then;
  free(w);
  if (status == -ECANCELED || c->closing)
    return;
  if (status < 0)
    c->srv->eofs++; /* the client went first: as good as its EOF */
  if (status < 0 || then == THEN_CLOSE)
    sconn_close(c);
  else if (then == THEN_SHUTDOWN)
    assert_int_equal(soon_shutdown(&c->sreq, (soon_stream *)&c->tcp, shut_done),
                     0);
}

/* Send bytes (copied), then do what then says. */
static void sconn_send(sconn *c, const char *bytes, size_t len, int then) {
  swrite *w = malloc(sizeof *w + len + 1);
  assert_non_null(w);
  memcpy(w->bytes, bytes, len);
  w->c = c;
  w->then = then;
  soon_buf b = {w->bytes, len};
  assert_int_equal(
      soon_write(&w->req, (soon_stream *)&c->tcp, &b, 1, swrite_cb), 0);
}

static void sconn_sendf(sconn *c, int then, const char *fmt, ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  assert_true(n > 0 && (size_t)n < sizeof buf);
  sconn_send(c, buf, (size_t)n, then);
}

static void answer_from_routes(sconn *c) {
  srv *s = c->srv;
  for (unsigned i = 0; i < s->nroutes; i++) {
    route *r = &s->routes[i];
    if (r->target && (c->p.target.len != strlen(r->target) ||
                      memcmp(c->p.target.base, r->target, c->p.target.len)))
      continue;
    if (r->then == THEN_SILENT || r->then == THEN_CLOSE)
      c->ignore = true; /* one request on this connection, no more */
    if (r->raw)
      sconn_send(c, r->raw, r->len ? r->len : strlen(r->raw), r->then);
    return;
  }
  fail_msg("no route for %.*s", (int)c->p.target.len, c->p.target.base);
}

static void record(sconn *c) {
  srv *s = c->srv;
  size_t n = c->pos - c->blen; /* not exact for chunked: the head's bytes */
  (void)n;
  size_t hl = 0;
  while (hl + 3 < c->len && memcmp(c->in + hl, "\r\n\r\n", 4))
    hl++;
  hl = hl + 4 < sizeof s->last_head ? hl + 4 : sizeof s->last_head - 1;
  memcpy(s->last_head, c->in, hl);
  s->last_head[hl] = '\0';
  free(s->last_body);
  s->last_body = malloc(c->blen + 1);
  assert_non_null(s->last_body);
  memcpy(s->last_body, c->body ? c->body : "", c->blen);
  s->last_body[c->blen] = '\0';
  s->last_body_len = c->blen;
  size_t l = strlen(s->log);
  snprintf(s->log + l, sizeof s->log - l, "%.*s %.*s|", (int)c->p.method.len,
           c->p.method.base, (int)c->p.target.len, c->p.target.base);
}

static void body_add(sconn *c, soon_http_span d) {
  char *b = realloc(c->body, c->blen + d.len + 1);
  assert_non_null(b);
  c->body = b;
  memcpy(c->body + c->blen, d.base, d.len);
  c->blen += d.len;
}

/* Whole requests out of c->in, each answered before the next is read. */
static void sconn_parse(sconn *c) {
  while (!c->closing && !c->ignore) {
    if (!c->head_done) {
      ssize_t n = soon_http_parse_head(&c->p, c->in, c->len);
      if (n == 0)
        return;
      assert_true(n > 0);
      c->head_done = true;
      c->pos = (size_t)n;
      c->srv->heads++;
      if (c->srv->on_head) {
        c->srv->on_head(c);
        if (c->closing || c->ignore)
          return;
      }
    }
    while (c->pos < c->len && !soon_http_message_done(&c->p)) {
      soon_http_span d;
      ssize_t n =
          soon_http_parse_body(&c->p, c->in + c->pos, c->len - c->pos, &d);
      assert_true(n > 0);
      body_add(c, d);
      c->pos += (size_t)n;
    }
    if (!soon_http_message_done(&c->p))
      return;
    c->srv->requests++;
    c->nreq++;
    record(c);
    if (c->srv->handler)
      c->srv->handler(c);
    else
      answer_from_routes(c);
    memmove(c->in, c->in + c->pos, c->len - c->pos);
    c->len -= c->pos;
    c->pos = c->blen = 0;
    c->head_done = false;
    soon_http_parser_reset(&c->p);
  }
}

static void s_alloc(soon_handle *h, size_t size, soon_buf *buf) {
  sconn *c = h->data;
  (void)size;
  if (c->cap - c->len < 65536) {
    c->cap = c->cap ? c->cap * 2 : 131072;
    c->in = realloc(c->in, c->cap);
    assert_non_null(c->in);
  }
  *buf = (soon_buf){c->in + c->len, c->cap - c->len};
}

static void s_read(soon_stream *st, ssize_t n, const soon_buf *buf) {
  sconn *c = st->data;
  (void)buf;
  if (n == 0 || c->closing)
    return;
  if (n < 0) {
    c->srv->eofs++;
    sconn_close(c);
    return;
  }
  if (c->ignore)
    return;
  c->len += (size_t)n;
  sconn_parse(c);
}

static void s_conn(soon_stream *l, int status) {
  srv *s = l->data;
  assert_int_equal(status, 0);
  sconn *c = calloc(1, sizeof *c);
  assert_non_null(c);
  assert_int_equal(soon_tcp_init(s->loop, &c->tcp), 0);
  assert_int_equal(soon_accept(l, (soon_stream *)&c->tcp), 0);
  c->tcp.data = c;
  c->srv = s;
  soon_http_limits lim = {.max_body = 64u << 20};
  assert_int_equal(soon_http_parser_init(&c->p, SOON_HTTP_REQUEST, c->hdrs,
                                         SOON_HTTP_MAX_HEADERS, &lim),
                   0);
  c->next = s->conns;
  s->conns = c;
  s->accepted++;
  assert_int_equal(soon_read_start((soon_stream *)&c->tcp, s_alloc, s_read), 0);
}

static void srv_start_on(srv *s, soon_loop *loop, const char *ip) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  memset(s, 0, sizeof *s);
  s->loop = loop;
  if (strchr(ip, ':'))
    assert_int_equal(soon_ip6_addr(ip, 0, (struct sockaddr_in6 *)&ss), 0);
  else
    assert_int_equal(soon_ip4_addr(ip, 0, (struct sockaddr_in *)&ss), 0);
  assert_int_equal(soon_tcp_init(loop, &s->listener), 0);
  s->listener.data = s;
  assert_int_equal(soon_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0), 0);
  assert_int_equal(soon_listen((soon_stream *)&s->listener, 64, s_conn), 0);
  assert_int_equal(
      soon_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len), 0);
  s->port =
      ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
  s->started = true;
}

static void srv_stop(srv *s) {
  if (!s->started)
    return;
  while (s->conns)
    sconn_close(s->conns);
  assert_int_equal(soon_close((soon_handle *)&s->listener, NULL), 0);
  free(s->last_body);
  s->last_body = NULL;
  s->started = false;
}

static void srv_route(srv *s, const char *target, const char *raw, int then) {
  assert_true(s->nroutes < sizeof s->routes / sizeof *s->routes);
  s->routes[s->nroutes++] = (route){target, raw, 0, then};
}

/* ------------------------------------------------------------ the test's world
 */

typedef struct result {
  int calls; /* every one of onload, onerror, ontimeout */
  int loads, errors, timeouts, progress;
  int err;
  int status;
  char text[64];
  char *body;
  size_t len;
  char url[512];
  uint64_t loaded; /* the last progress told */
  uint64_t sofar;  /* ... during this send (progress only grows) */
  int64_t total;
  /* what onload or onprogress does next */
  void (*then)(soon_xhr *xhr);
  bool abort_in_progress;
  struct source *src; /* soon_xhr_send_stream's */
} result;

typedef struct env {
  soon_loop loop;
  soon_timer guard;
  bool manual;
  soon_http_client *client;
  int client_closed;
  srv s, s2;
} env;

static env E;

static void client_closed(soon_http_client *client) {
  (void)client;
  E.client_closed++;
}

static void env_up_with(const soon_http_client_options *opts, bool manual) {
  memset(&E, 0, sizeof E);
  E.manual = manual;
  if (manual) {
    loop_init_manual(&E.loop);
    watchdog_arm();
  } else {
    loop_init_checked(&E.loop);
    guard_start(&E.loop, &E.guard);
  }
  assert_int_equal(soon_http_client_new(&E.loop, opts, &E.client), 0);
  srv_start_on(&E.s, &E.loop, "127.0.0.1");
}

static void env_up(void) { env_up_with(NULL, false); }

/* Everything closed, and the loop closes: nothing leaked a handle. */
static void env_down(void) {
  assert_int_equal(soon_http_client_close(E.client, client_closed), 0);
  assert_int_equal(E.client_closed, 0); /* never from inside the call */
  srv_stop(&E.s);
  srv_stop(&E.s2);
  if (E.manual) {
    assert_int_equal(soon_run(&E.loop, SOON_RUN_DEFAULT), 0);
    watchdog_disarm();
  } else {
    guard_close(&E.loop, &E.guard);
  }
  assert_int_equal(E.client_closed, 1);
  loop_close_checked(&E.loop);
}

/* Run until *n reaches want: each iteration waits for what is alive (the
 * servers' listeners keep the loop so), a hang ends at the guard. */
static void run_until(const int *n, int want) {
  while (*n < want)
    assert_true(soon_run(&E.loop, SOON_RUN_ONCE) >= 0);
}

static void run_until_u(const unsigned *n, unsigned want) {
  while (*n < want)
    assert_true(soon_run(&E.loop, SOON_RUN_ONCE) >= 0);
}

static void on_load(soon_xhr *xhr) {
  result *r = xhr->data;
  r->calls++;
  r->loads++;
  r->sofar = 0;
  r->status = xhr->status;
  snprintf(r->text, sizeof r->text, "%.*s", (int)xhr->status_text.len,
           xhr->status_text.base);
  assert_non_null(xhr->response);
  assert_int_equal(xhr->response[xhr->response_len], '\0');
  free(r->body);
  r->body = malloc(xhr->response_len + 1);
  assert_non_null(r->body);
  memcpy(r->body, xhr->response, xhr->response_len + 1);
  r->len = xhr->response_len;
  snprintf(r->url, sizeof r->url, "%s", xhr->url);
  if (r->then)
    r->then(xhr);
}

static void on_error(soon_xhr *xhr, int err) {
  result *r = xhr->data;
  r->calls++;
  r->errors++;
  r->sofar = 0;
  r->err = err;
  assert_int_equal(xhr->status, 0);
  assert_null(xhr->response);
}

static void on_timeout(soon_xhr *xhr) {
  result *r = xhr->data;
  r->calls++;
  r->timeouts++;
  r->sofar = 0;
}

static void on_progress(soon_xhr *xhr, uint64_t loaded, int64_t total) {
  result *r = xhr->data;
  assert_true(loaded > r->sofar);
  r->sofar = loaded;
  r->progress++;
  r->loaded = loaded;
  r->total = total;
  if (r->abort_in_progress)
    soon_xhr_abort(xhr);
}

static void xhr_up(soon_xhr *xhr, result *r) {
  memset(r, 0, sizeof *r);
  xhr->data = r;
  assert_int_equal(soon_xhr_init(xhr, E.client), 0);
  assert_ptr_equal(xhr->data, r); /* the caller's, untouched */
  xhr->onload = on_load;
  xhr->onerror = on_error;
  xhr->ontimeout = on_timeout;
  xhr->onprogress = on_progress;
}

static void xhr_down(soon_xhr *xhr, result *r) {
  soon_xhr_cleanup(xhr);
  assert_null(xhr->priv);
  free(r->body);
  r->body = NULL;
}

static const char *url_at(const srv *s, const char *path) {
  static char buf[4][256];
  static int k;
  char *u = buf[k++ % 4];
  snprintf(u, sizeof buf[0], "http://127.0.0.1:%d%s", s->port, path);
  return u;
}

/* open, send, and run until its one callback. */
static void request(soon_xhr *xhr, result *r, const char *method,
                    const char *url, const char *body) {
  int before = r->calls;
  assert_int_equal(soon_xhr_open(xhr, method, url), 0);
  assert_int_equal(soon_xhr_send(xhr, body, body ? strlen(body) : 0), 0);
  assert_int_equal(r->calls, before); /* never from inside send */
  run_until(&r->calls, before + 1);
}

static bool head_has(const srv *s, const char *line) {
  return strstr(s->last_head, line) != NULL;
}

/* ------------------------------------------------------------ bodies */

static void test_get_content_length(void **state) {
  (void)state;
  env_up();
  srv_route(&E.s, "/a?b=1",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Reply: yes\r\n\r\n"
            "hello",
            THEN_KEEP);
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  assert_int_equal(xhr.status, 0);
  assert_int_equal(soon_xhr_open(&xhr, "get", url_at(&E.s, "/a?b=1#fragment")),
                   0);
  assert_int_equal(soon_xhr_set_header(&xhr, "X-Test", " 1 "), 0);
  assert_int_equal(soon_xhr_send(&xhr, NULL, 0), 0);
  assert_int_equal(r.calls, 0);
  run_until(&r.calls, 1);

  assert_int_equal(r.loads, 1);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.text, "OK");
  assert_string_equal(r.body, "hello");
  assert_int_equal(r.len, 5);
  assert_string_equal(r.url, url_at(&E.s, "/a?b=1"));
  assert_true(r.progress >= 1);
  assert_int_equal(r.loaded, 5);
  assert_int_equal(r.total, 5);
  const soon_http_span *v = soon_xhr_get_header(&xhr, "x-REPLY");
  assert_non_null(v);
  assert_int_equal(v->len, 3);
  assert_memory_equal(v->base, "yes", 3);
  assert_null(soon_xhr_get_header(&xhr, "X-None"));
  assert_int_equal(xhr.nheaders, 2);

  /* The request: the method upper-cased as XHR does, no fragment, Host
   * with the port, the caller's header trimmed, no body framing. */
  char want[128];
  snprintf(want, sizeof want, "GET /a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n",
           E.s.port);
  assert_memory_equal(E.s.last_head, want, strlen(want));
  assert_true(head_has(&E.s, "\r\nX-Test: 1\r\n"));
  assert_false(head_has(&E.s, "Content-Length"));
  assert_false(head_has(&E.s, "Connection"));
  xhr_down(&xhr, &r);
  env_down();
}

static void test_get_chunked(void **state) {
  (void)state;
  env_up();
  srv_route(&E.s, NULL,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
            THEN_KEEP);
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  assert_int_equal(r.loads, 1);
  assert_string_equal(r.body, "hello world");
  assert_int_equal(r.total, -1);
  assert_int_equal(r.loaded, 11);
  /* The chunked body ended the message: the connection carries the next. */
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  assert_int_equal(r.loads, 2);
  assert_string_equal(r.body, "hello world");
  assert_int_equal(E.s.accepted, 1);
  xhr_down(&xhr, &r);
  env_down();
}

static void test_get_close_delimited(void **state) {
  (void)state;
  env_up();
  srv_route(&E.s, NULL, "HTTP/1.1 200 OK\r\n\r\nuntil the end", THEN_CLOSE);
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  assert_int_equal(r.loads, 1);
  assert_string_equal(r.body, "until the end");
  assert_int_equal(r.total, -1);
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  assert_int_equal(r.loads, 2);
  assert_int_equal(E.s.accepted, 2);
  xhr_down(&xhr, &r);
  env_down();
}

/* HEAD, 204 and 304 have no body whatever their headers say: all three
 * over one connection, which a body expected would have stalled. */
static void test_no_body_responses(void **state) {
  (void)state;
  env_up();
  srv_route(&E.s, "/head", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
            THEN_KEEP);
  srv_route(&E.s, "/204", "HTTP/1.1 204 No Content\r\n\r\n", THEN_KEEP);
  srv_route(&E.s, "/304",
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n",
            THEN_KEEP);
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  request(&xhr, &r, "HEAD", url_at(&E.s, "/head"), NULL);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.len, 0);
  assert_string_equal(r.body, "");
  const soon_http_span *cl = soon_xhr_get_header(&xhr, "Content-Length");
  assert_non_null(cl);
  assert_memory_equal(cl->base, "100", 3);
  request(&xhr, &r, "GET", url_at(&E.s, "/204"), NULL);
  assert_int_equal(r.status, 204);
  assert_string_equal(r.text, "No Content");
  assert_int_equal(r.len, 0);
  request(&xhr, &r, "GET", url_at(&E.s, "/304"), NULL);
  assert_int_equal(r.status, 304);
  assert_int_equal(r.len, 0);
  assert_int_equal(r.loads, 3);
  assert_int_equal(r.progress, 0);
  assert_int_equal(E.s.accepted, 1);
  xhr_down(&xhr, &r);
  env_down();
}

static void test_404_is_a_load(void **state) {
  (void)state;
  env_up();
  srv_route(&E.s, NULL,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 7\r\n\r\nmissing",
            THEN_KEEP);
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  request(&xhr, &r, "GET", url_at(&E.s, "/nothing"), NULL);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.loads, 1);
  assert_int_equal(r.status, 404);
  assert_string_equal(r.text, "Not Found");
  assert_string_equal(r.body, "missing");
  xhr_down(&xhr, &r);
  env_down();
}

static bool is_head(const sconn *c) {
  return c->p.method.len == 4 && !memcmp(c->p.method.base, "HEAD", 4);
}

/* Answers with the request's method and body (a HEAD: the head only). */
static void echo(sconn *c) {
  size_t n = c->p.method.len + 1 + c->blen;
  char head[128];
  snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n",
           n);
  if (is_head(c)) {
    sconn_send(c, head, strlen(head), THEN_KEEP);
    return;
  }
  sconn_sendf(c, THEN_KEEP, "%s%.*s %.*s", head, (int)c->p.method.len,
              c->p.method.base, (int)c->blen, c->body ? c->body : "");
}

static void test_request_bodies(void **state) {
  (void)state;
  env_up();
  E.s.handler = echo;
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  assert_int_equal(soon_xhr_open(&xhr, "POST", url_at(&E.s, "/form")), 0);
  assert_int_equal(soon_xhr_set_header(&xhr, "Content-Type", "text/plain"), 0);
  assert_int_equal(soon_xhr_set_header(&xhr, "X-List", "a"), 0);
  assert_int_equal(soon_xhr_set_header(&xhr, "x-list", "b"), 0);
  char body[] = "name=value";
  assert_int_equal(soon_xhr_send(&xhr, body, strlen(body)), 0);
  memset(body, 'x', strlen(body)); /* copied by send */
  run_until(&r.calls, 1);
  assert_string_equal(r.body, "POST name=value");
  assert_true(head_has(&E.s, "\r\nContent-Length: 10\r\n"));
  assert_true(head_has(&E.s, "\r\nContent-Type: text/plain\r\n"));
  assert_true(head_has(&E.s, "\r\nX-List: a, b\r\n"));

  /* An empty POST says so; a GET's body is dropped, as XHR does. */
  request(&xhr, &r, "POST", url_at(&E.s, "/"), NULL);
  assert_string_equal(r.body, "POST ");
  assert_true(head_has(&E.s, "\r\nContent-Length: 0\r\n"));
  request(&xhr, &r, "GET", url_at(&E.s, "/"), "ignored");
  assert_string_equal(r.body, "GET ");
  assert_false(head_has(&E.s, "Content-Length"));
  request(&xhr, &r, "PUT", url_at(&E.s, "/"), "put");
  assert_string_equal(r.body, "PUT put");
  assert_int_equal(r.loads, 4);
  assert_int_equal(E.s.accepted, 1);
  xhr_down(&xhr, &r);
  env_down();
}

/* ------------------------------------------------------------ 1xx */

/* Says 100 Continue once the head is in, noting that no body byte had
 * come before it. */
static void continue_head(sconn *c) {
  if (!soon_http_header_get(&c->p, "Expect"))
    return;
  c->srv->flag = c->len == c->pos ? 1 : -1;
  sconn_sendf(c, THEN_KEEP, "HTTP/1.1 100 Continue\r\n\r\n");
}

static void refuse_head(sconn *c) {
  c->ignore = true;
  sconn_sendf(c, THEN_KEEP,
              "HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n");
}

static void test_expect_continue(void **state) {
  (void)state;
  env_up();
  E.s.handler = echo;
  E.s.on_head = continue_head;
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  assert_int_equal(soon_xhr_open(&xhr, "POST", url_at(&E.s, "/up")), 0);
  assert_int_equal(soon_xhr_set_header(&xhr, "Expect", "100-continue"), 0);
  assert_int_equal(soon_xhr_send(&xhr, "payload", 7), 0);
  run_until(&r.calls, 1);
  assert_int_equal(r.loads, 1);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "POST payload");
  assert_int_equal(E.s.flag, 1); /* the body waited for the 100 */
  assert_true(head_has(&E.s, "\r\nExpect: 100-continue\r\n"));

  /* A final answer instead of 100: the body is never sent, and the
   * connection (the server may still expect it) is not reused. */
  E.s.on_head = refuse_head;
  assert_int_equal(soon_xhr_open(&xhr, "POST", url_at(&E.s, "/up")), 0);
  assert_int_equal(soon_xhr_set_header(&xhr, "Expect", "100-continue"), 0);
  assert_int_equal(soon_xhr_send(&xhr, "payload", 7), 0);
  run_until(&r.calls, 2);
  assert_int_equal(r.status, 417);
  assert_int_equal(E.s.requests, 1); /* the second body never came */
  E.s.on_head = NULL;
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  assert_int_equal(r.loads, 3);
  assert_int_equal(E.s.accepted, 2);
  xhr_down(&xhr, &r);
  env_down();
}

/* A server that ignores Expect: the body goes when the wait for 100
 * Continue ends (1 s, on a manual clock here), not before. */
static void test_expect_continue_unanswered(void **state) {
  (void)state;
  env_up_with(NULL, true);
  E.s.handler = echo;
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  assert_int_equal(soon_xhr_open(&xhr, "PUT", url_at(&E.s, "/up")), 0);
  assert_int_equal(soon_xhr_set_header(&xhr, "Expect", "100-continue"), 0);
  assert_int_equal(soon_xhr_send(&xhr, "late", 4), 0);
  run_until_u(&E.s.heads, 1);
  assert_int_equal(soon_loop_advance(&E.loop, 999), 0);
  assert_int_equal(E.s.requests, 0);
  assert_int_equal(soon_loop_advance(&E.loop, 1), 0);
  run_until(&r.calls, 1);
  assert_int_equal(r.loads, 1);
  assert_string_equal(r.body, "PUT late");
  xhr_down(&xhr, &r);
  env_down();
}

static void test_interim_skipped(void **state) {
  (void)state;
  env_up();
  srv_route(&E.s, NULL,
            "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
            "HTTP/1.1 100 Continue\r\n\r\n"
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            THEN_KEEP);
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  assert_int_equal(r.loads, 1);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "ok");
  assert_null(soon_xhr_get_header(&xhr, "Link"));
  assert_int_equal(xhr.nheaders, 1);
  xhr_down(&xhr, &r);
  env_down();
}

/* ------------------------------------------------------------ redirects */

static bool target_is(const sconn *c, const char *t) {
  return c->p.target.len == strlen(t) &&
         memcmp(c->p.target.base, t, c->p.target.len) == 0;
}

/* s->data (a raw response) for /dir/from, an echo for anything else. */
static void redirect_then_echo(sconn *c) {
  if (target_is(c, "/dir/from")) {
    const char *raw = c->srv->data;
    size_t n = strlen(raw) - (is_head(c) ? 3 : 0); /* HEAD: no "abc" */
    sconn_send(c, raw, n, THEN_KEEP);
  } else
    echo(c);
}

static void test_redirect_codes(void **state) {
  (void)state;
  static const struct {
    int code;
    const char *method, *want;
  } cases[] = {
      {301, "POST", "GET "},      {302, "POST", "GET "},
      {303, "POST", "GET "},      {307, "POST", "POST data"},
      {308, "POST", "POST data"}, {301, "PUT", "PUT data"},
      {303, "PUT", "GET "},       {302, "DELETE", "DELETE "},
      {303, "HEAD", ""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    env_up();
    char raw[256];
    snprintf(raw, sizeof raw,
             "HTTP/1.1 %d Moved\r\nLocation: to?x=1#frag\r\n"
             "Content-Length: 3\r\n\r\nabc",
             cases[i].code);
    E.s.data = raw;
    E.s.handler = redirect_then_echo;
    soon_xhr xhr;
    result r;
    xhr_up(&xhr, &r);
    assert_int_equal(
        soon_xhr_open(&xhr, cases[i].method, url_at(&E.s, "/dir/from")), 0);
    assert_int_equal(soon_xhr_set_header(&xhr, "Content-Type", "text/x"), 0);
    bool with_body =
        !strcmp(cases[i].method, "POST") || !strcmp(cases[i].method, "PUT");
    assert_int_equal(soon_xhr_send(&xhr, "data", with_body ? 4 : 0), 0);
    run_until(&r.calls, 1);
    assert_int_equal(r.loads, 1);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, cases[i].want);
    assert_string_equal(r.url, url_at(&E.s, "/dir/to?x=1"));
    assert_string_equal(xhr.url, url_at(&E.s, "/dir/to?x=1"));
    bool as_get = !strncmp(cases[i].want, "GET", 3);
    /* A redirect to GET drops the body and the fields that describe it. */
    assert_int_equal(head_has(&E.s, "Content-Type"), !as_get);
    assert_int_equal(head_has(&E.s, "Content-Length"), with_body && !as_get);
    assert_int_equal(E.s.requests, 2);
    assert_int_equal(E.s.accepted, 1); /* the redirect's body was read */
    xhr_down(&xhr, &r);
    env_down();
  }
}

/* /a/b/c redirects to s->data (a Location); anything else answers with
 * its own target. */
static void redirect_to_data(sconn *c) {
  if (target_is(c, "/a/b/c")) {
    sconn_sendf(
        c, THEN_KEEP,
        "HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n",
        (const char *)c->srv->data);
    return;
  }
  sconn_sendf(c, THEN_KEEP,
              "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%.*s",
              c->p.target.len, (int)c->p.target.len, c->p.target.base);
}

static void test_redirect_resolution(void **state) {
  (void)state;
  env_up();
  srv_start_on(&E.s2, &E.loop, "127.0.0.1");
  E.s.handler = redirect_to_data;
  E.s2.handler = redirect_to_data;
  char net[64], abs[128];
  snprintf(net, sizeof net, "//127.0.0.1:%d/net?n", E.s.port);
  snprintf(abs, sizeof abs, "HTTP://127.0.0.1:%d/other", E.s2.port);
  const struct {
    const char *loc, *want;
  } cases[] = {
      {"/abs", "/abs"},
      {"../up", "/a/up"},
      {"?q=1", "/a/b/c?q=1"},
      {"./x/./y/../z?k", "/a/b/x/z?k"},
      {"../../../../top", "/top"},
      {"d/", "/a/b/d/"},
      {"..", "/a/"},
      {net, "/net?n"},
  };
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    E.s.data = (void *)cases[i].loc;
    request(&xhr, &r, "GET", url_at(&E.s, "/a/b/c"), NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, cases[i].want);
  }
  /* Another origin: its Host, and the credentials stay behind. */
  E.s.data = abs;
  assert_int_equal(soon_xhr_open(&xhr, "GET", url_at(&E.s, "/a/b/c")), 0);
  assert_int_equal(soon_xhr_set_header(&xhr, "Authorization", "Basic eA=="), 0);
  assert_int_equal(soon_xhr_send(&xhr, NULL, 0), 0);
  run_until(&r.calls, (int)(sizeof cases / sizeof *cases) + 1);
  assert_string_equal(r.body, "/other");
  assert_string_equal(r.url, url_at(&E.s2, "/other"));
  assert_true(head_has(&E.s, "\r\nAuthorization: Basic eA==\r\n"));
  assert_false(head_has(&E.s2, "Authorization"));
  char host[64];
  snprintf(host, sizeof host, "\r\nHost: 127.0.0.1:%d\r\n", E.s2.port);
  assert_true(head_has(&E.s2, host));
  assert_int_equal(E.s.accepted, 1);
  assert_int_equal(r.loads, r.calls);
  xhr_down(&xhr, &r);
  env_down();
}

static void test_too_many_redirects(void **state) {
  (void)state;
  env_up();
  srv_route(
      &E.s, NULL,
      "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n",
      THEN_KEEP);
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  xhr.max_redirects = 3;
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.errors, 1);
  assert_int_equal(r.err, -ELOOP);
  assert_int_equal(E.s.requests, 4); /* the first and three redirects */
  xhr.max_redirects = 20;            /* the default */
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  assert_int_equal(r.err, -ELOOP);
  assert_int_equal(E.s.requests, 4 + 21);
  assert_int_equal(r.calls, 2);

  /* no_redirects hands the 3xx over. */
  xhr.no_redirects = true;
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  assert_int_equal(r.loads, 1);
  assert_int_equal(r.status, 302);
  const soon_http_span *loc = soon_xhr_get_header(&xhr, "location");
  assert_non_null(loc);
  assert_int_equal(loc->len, 5);
  assert_memory_equal(loc->base, "/loop", 5);
  assert_string_equal(r.url, url_at(&E.s, "/"));
  /* A failure closes its connection (-ELOOP twice): the third is new. */
  assert_int_equal(E.s.accepted, 3);
  xhr_down(&xhr, &r);
  env_down();
}

/* ------------------------------------------------------------ the pool */

static void send_again(soon_xhr *xhr) {
  result *r = xhr->data;
  r->then = NULL;
  const char *url = r->url; /* the same server */
  char copy[512];
  snprintf(copy, sizeof copy, "%s", url);
  assert_int_equal(soon_xhr_open(xhr, "GET", copy), 0);
  assert_int_equal(soon_xhr_send(xhr, NULL, 0), 0);
}

static void test_keepalive_reuse(void **state) {
  (void)state;
  env_up();
  srv_route(&E.s, NULL, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            THEN_KEEP);
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  request(&xhr, &r, "GET", url_at(&E.s, "/1"), NULL);
  request(&xhr, &r, "GET", url_at(&E.s, "/2"), NULL);
  /* and from inside onload, on the connection it just came in on */
  r.then = send_again;
  request(&xhr, &r, "GET", url_at(&E.s, "/3"), NULL);
  run_until(&r.calls, 4);
  assert_int_equal(r.loads, 4);
  assert_int_equal(E.s.requests, 4);
  assert_int_equal(E.s.accepted, 1);
  assert_string_equal(E.s.log, "GET /1|GET /2|GET /3|GET /3|");
  /* http://h:80/ and http://h/ are one origin: the port is left out. */
  assert_int_equal(soon_xhr_open(&xhr, "GET", "HTTP://LocalHost:80/x#y"), 0);
  assert_string_equal(xhr.url, "http://localhost/x");
  assert_int_equal(soon_xhr_open(&xhr, "GET", "http://[::1]:8080?q"), 0);
  assert_string_equal(xhr.url, "http://[::1]:8080/?q");
  xhr_down(&xhr, &r);
  env_down();
}

static void test_pool_limit(void **state) {
  (void)state;
  soon_http_client_options opts = {.max_idle_per_host = 1};
  env_up_with(&opts, false);
  srv_route(&E.s, NULL, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            THEN_KEEP);
  soon_xhr a, b;
  result ra, rb;
  xhr_up(&a, &ra);
  xhr_up(&b, &rb);
  for (int round = 1; round <= 2; round++) {
    assert_int_equal(soon_xhr_open(&a, "GET", url_at(&E.s, "/a")), 0);
    assert_int_equal(soon_xhr_open(&b, "GET", url_at(&E.s, "/b")), 0);
    assert_int_equal(soon_xhr_send(&a, NULL, 0), 0);
    assert_int_equal(soon_xhr_send(&b, NULL, 0), 0);
    run_until(&ra.calls, round);
    run_until(&rb.calls, round);
  }
  assert_int_equal(ra.loads + rb.loads, 4);
  /* Two at once need two connections; only one stays idle, so the
   * second round reuses it and opens one more. */
  assert_int_equal(E.s.accepted, 3);
  run_until_u(&E.s.eofs, 1);
  xhr_down(&a, &ra);
  xhr_down(&b, &rb);
  env_down();
}

/* The idle timeout and the maximum age, on a manual clock: no waiting. */
static void test_idle_timeout_and_age(void **state) {
  (void)state;
  soon_http_client_options opts = {.idle_timeout_ms = 1000, .max_age_ms = 1500};
  env_up_with(&opts, true);
  srv_route(&E.s, NULL, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            THEN_KEEP);
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  assert_int_equal(soon_loop_advance(&E.loop, 999), 0);
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  assert_int_equal(E.s.accepted, 1); /* not idle long enough to go */
  assert_int_equal(soon_loop_advance(&E.loop, 1000), 0);
  run_until_u(&E.s.eofs, 1); /* closed idle, the server sees it */
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  assert_int_equal(E.s.accepted, 2);
  /* Age: reused at 1499 ms, not at 1500 ms. */
  assert_int_equal(soon_loop_advance(&E.loop, 900), 0);
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  assert_int_equal(soon_loop_advance(&E.loop, 599), 0);
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  assert_int_equal(E.s.accepted, 2);
  assert_int_equal(soon_loop_advance(&E.loop, 1), 0);
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  assert_int_equal(E.s.accepted, 3);
  run_until_u(&E.s.eofs, 2);
  assert_int_equal(r.loads, 6);
  xhr_down(&xhr, &r);
  env_down();
}

/* The server half-closes an idle connection: the client sees the EOF,
 * drops it (the server then sees the client's), and a POST, which is
 * never retried, goes on a new one. */
static void test_idle_closed_by_server(void **state) {
  (void)state;
  env_up();
  srv_route(&E.s, NULL, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            THEN_SHUTDOWN);
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  run_until_u(&E.s.eofs, 1);
  request(&xhr, &r, "POST", url_at(&E.s, "/"), "x");
  assert_int_equal(r.loads, 2);
  assert_int_equal(E.s.accepted, 2);
  xhr_down(&xhr, &r);
  env_down();
}

static void post_again(soon_xhr *xhr) {
  result *r = xhr->data;
  char copy[512];
  r->then = NULL;
  snprintf(copy, sizeof copy, "%s", r->url);
  assert_int_equal(soon_xhr_open(xhr, "POST", copy), 0);
  assert_int_equal(soon_xhr_send(xhr, "x", 1), 0);
}

/* The race: the server closes a connection right after its response, and
 * the next request, sent from onload, goes out on it before the close is
 * read (the connection is in the pool at that moment, by construction).
 * A GET is retried once on a new connection; a POST is not. */
static void test_retry_when_closed_under_request(void **state) {
  (void)state;
  env_up();
  srv_route(&E.s, NULL, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            THEN_CLOSE);
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  r.then = send_again;
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  run_until(&r.calls, 2);
  assert_int_equal(r.loads, 2);
  assert_int_equal(r.status, 200);
  assert_int_equal(E.s.requests, 2);
  assert_int_equal(E.s.accepted, 2);

  r.then = post_again;
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  run_until(&r.calls, 4);
  assert_int_equal(r.loads, 3);
  assert_int_equal(r.errors, 1);
  /* How the end shows depends on the kernel's timing: the EOF, or the
   * reset the request provoked. */
  assert_true(r.err == SOON_HTTP_ETRUNCATED || r.err == -ECONNRESET ||
              r.err == -EPIPE);
  assert_int_equal(E.s.accepted, 3); /* not retried */
  assert_int_equal(E.s.requests, 3);
  xhr_down(&xhr, &r);
  env_down();
}

/* ------------------------------------------------------------ bad servers */

/* The code soon's parser gives a response, whole: what onerror must say. */
static int parser_code(const char *raw) {
  soon_http_parser p;
  soon_http_header h[8];
  size_t len = strlen(raw);
  assert_int_equal(soon_http_parser_init(&p, SOON_HTTP_RESPONSE, h, 8, NULL),
                   0);
  ssize_t n = soon_http_parse_head(&p, raw, len);
  for (size_t at = (size_t)n; n > 0 && at < len && !soon_http_message_done(&p);
       at += (size_t)n) {
    soon_http_span d;
    n = soon_http_parse_body(&p, raw + at, len - at, &d);
  }
  return n < 0 ? (int)n : 0;
}

static void test_malformed_responses(void **state) {
  (void)state;
  static const char *const bad[] = {
      "HELLO WORLD\r\n\r\n",
      "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
      "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    env_up();
    srv_route(&E.s, NULL, bad[i], THEN_KEEP);
    int want = parser_code(bad[i]);
    assert_true(want < 0);
    soon_xhr xhr;
    result r;
    xhr_up(&xhr, &r);
    request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.err, want);
    xhr_down(&xhr, &r);
    env_down();
  }
}

static void test_truncated_and_odd(void **state) {
  (void)state;
  static const struct {
    const char *raw;
    int err;
  } cases[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",
       SOON_HTTP_ETRUNCATED},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
       SOON_HTTP_ETRUNCATED},
      {"HTTP/1.1 200 OK\r\nContent-Le", SOON_HTTP_ETRUNCATED},
      {"", SOON_HTTP_ETRUNCATED},
      {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n"
       "Connection: upgrade\r\n\r\n",
       -EPROTO},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    env_up();
    srv_route(&E.s, NULL, cases[i].raw, THEN_CLOSE);
    if (!*cases[i].raw)
      E.s.routes[0].raw = NULL, E.s.routes[0].then = THEN_KEEP;
    soon_xhr xhr;
    result r;
    xhr_up(&xhr, &r);
    if (!*cases[i].raw) {
      /* A server that closes without a word. */
      assert_int_equal(soon_xhr_open(&xhr, "GET", url_at(&E.s, "/")), 0);
      assert_int_equal(soon_xhr_send(&xhr, NULL, 0), 0);
      run_until_u(&E.s.requests, 1);
      sconn_close(E.s.conns);
      run_until(&r.calls, 1);
    } else {
      request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
    }
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.err, cases[i].err);
    xhr_down(&xhr, &r);
    env_down();
  }
}

/* 10 MiB, to a client that takes 1 MiB: by Content-Length (refused at the
 * head), chunked and until the close (refused when the limit is passed). */
static void test_response_too_large(void **state) {
  (void)state;
  size_t big = 10u << 20;
  char *raw = malloc(big + 256);
  assert_non_null(raw);
  for (int mode = 0; mode < 3; mode++) {
    env_up();
    int h = mode == 0
                ? sprintf(raw, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n",
                          big)
            : mode == 1 ? sprintf(raw,
                                  "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
                                  "chunked\r\n\r\n%zx\r\n",
                                  big)
                        : sprintf(raw, "HTTP/1.1 200 OK\r\n\r\n");
    memset(raw + h, 'z', big);
    size_t len = (size_t)h + big;
    if (mode == 1)
      len += (size_t)sprintf(raw + len, "\r\n0\r\n\r\n");
    E.s.routes[0] = (route){NULL, raw, len, mode == 2 ? THEN_CLOSE : THEN_KEEP};
    E.s.nroutes = 1;
    soon_xhr xhr;
    result r;
    xhr_up(&xhr, &r);
    xhr.max_response = 1u << 20;
    request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.err, -EFBIG);
    assert_true(r.loaded <= 1u << 20);
    /* A limit of exactly the size passes. */
    xhr.max_response = big;
    xhr.onprogress = NULL;
    request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
    assert_int_equal(r.loads, 1);
    assert_int_equal(r.len, big);
    assert_int_equal(r.body[big - 1], 'z');
    xhr_down(&xhr, &r);
    env_down();
  }
  free(raw);
}

static void test_head_too_large(void **state) {
  (void)state;
  env_up();
  size_t n = 70000;
  char *raw = malloc(n + 128);
  assert_non_null(raw);
  int h = sprintf(raw, "HTTP/1.1 200 OK\r\nX-Big: ");
  memset(raw + h, 'b', n);
  sprintf(raw + h + n, "\r\nContent-Length: 0\r\n\r\n");
  srv_route(&E.s, NULL, raw, THEN_KEEP);
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  assert_int_equal(r.errors, 1);
  assert_int_equal(r.err, SOON_HTTP_EHEAD_SIZE);
  xhr_down(&xhr, &r);
  env_down();
  free(raw);
}

/* ------------------------------------------------------------ timeouts */

static void test_timeout_never_answered(void **state) {
  (void)state;
  env_up();
  srv_route(&E.s, NULL, NULL, THEN_KEEP);
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  xhr.timeout_ms = 20; /* on the real clock: this is what fires it */
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.timeouts, 1);
  assert_int_equal(E.s.requests, 1);
  assert_int_equal(xhr.status, 0);
  xhr_down(&xhr, &r);
  env_down();
}

/* Without an ontimeout, the timeout is an onerror with -ETIMEDOUT, as a
 * browser's "error" event: the article's program sets only onload and
 * onerror, and must still hear of it. */
static void test_timeout_without_ontimeout(void **state) {
  (void)state;
  env_up();
  srv_route(&E.s, NULL, NULL, THEN_KEEP);
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  xhr.ontimeout = NULL;
  xhr.timeout_ms = 20;
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.errors, 1);
  assert_int_equal(r.err, -ETIMEDOUT);
  assert_int_equal(r.timeouts, 0);
  xhr_down(&xhr, &r);
  env_down();
}

/* The whole request's deadline counts from send, redirects included; on
 * a manual clock, exactly. */
static void test_timeout_manual_clock(void **state) {
  (void)state;
  env_up_with(NULL, true);
  srv_route(&E.s, "/slow", NULL, THEN_KEEP);
  srv_route(&E.s, NULL,
            "HTTP/1.1 307 T\r\nLocation: /slow\r\nContent-Length: 0\r\n\r\n",
            THEN_KEEP);
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  xhr.timeout_ms = 5000;
  assert_int_equal(soon_xhr_open(&xhr, "GET", url_at(&E.s, "/")), 0);
  assert_int_equal(soon_xhr_send(&xhr, NULL, 0), 0);
  run_until_u(&E.s.requests, 2);
  assert_int_equal(soon_loop_advance(&E.loop, 4999), 0);
  assert_int_equal(r.calls, 0);
  assert_int_equal(soon_loop_advance(&E.loop, 1), 0);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.timeouts, 1);
  xhr_down(&xhr, &r);
  env_down();
}

/* A listener whose accept queue is full drops SYNs: a connect that
 * neither succeeds nor fails, until the connect timeout. */
static void test_connect_timeout(void **state) {
  (void)state;
  env_up_with(NULL, true);
  struct sockaddr_in a;
  socklen_t alen = sizeof a;
  assert_int_equal(soon_ip4_addr("127.0.0.1", 0, &a), 0);
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(l >= 0);
  assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(l, 0), 0);
  assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);
  int filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_int_equal(connect(filler, (struct sockaddr *)&a, sizeof a), 0);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(a.sin_port));
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  xhr.connect_timeout_ms = 3000;
  assert_int_equal(soon_xhr_open(&xhr, "GET", url), 0);
  assert_int_equal(soon_xhr_send(&xhr, NULL, 0), 0);
  assert_true(soon_run(&E.loop, SOON_RUN_NOWAIT) >= 0);
  assert_int_equal(soon_loop_advance(&E.loop, 2999), 0);
  assert_int_equal(r.calls, 0);
  assert_int_equal(soon_loop_advance(&E.loop, 1), 0);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.timeouts, 1);
  xhr_down(&xhr, &r);
  env_down();
  close_fd(filler);
  close_fd(l);
}

/* ------------------------------------------------------------ addresses */

static void test_refused(void **state) {
  (void)state;
  env_up();
  /* A port just bound and closed: nobody listens there. */
  struct sockaddr_in a;
  socklen_t alen = sizeof a;
  assert_int_equal(soon_ip4_addr("127.0.0.1", 0, &a), 0);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
  close_fd(fd);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(a.sin_port));
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  request(&xhr, &r, "GET", url, NULL);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.errors, 1);
  assert_int_equal(r.err, -ECONNREFUSED);
  xhr_down(&xhr, &r);
  env_down();
}

/* A name through soon_getaddrinfo; localhost may give ::1 first, which
 * refuses (the server is on 127.0.0.1): the next address is tried. */
static void test_localhost(void **state) {
  (void)state;
  env_up();
  srv_route(&E.s, NULL, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            THEN_KEEP);
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  char url[64], host[64];
  snprintf(url, sizeof url, "http://localhost:%d/n", E.s.port);
  snprintf(host, sizeof host, "\r\nHost: localhost:%d\r\n", E.s.port);
  request(&xhr, &r, "GET", url, NULL);
  assert_int_equal(r.loads, 1);
  assert_string_equal(r.body, "ok");
  assert_true(head_has(&E.s, host));
  request(&xhr, &r, "GET", url, NULL); /* pooled under its name */
  assert_int_equal(E.s.accepted, 1);
  xhr_down(&xhr, &r);
  env_down();
}

static bool have_ipv6(void) {
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return false;
  struct sockaddr_in6 a;
  memset(&a, 0, sizeof a);
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

static void test_ipv6_literal(void **state) {
  (void)state;
  if (!have_ipv6())
    skip();
  env_up();
  srv_start_on(&E.s2, &E.loop, "::1");
  srv_route(&E.s2, NULL, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv6",
            THEN_KEEP);
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  char url[64], host[64];
  snprintf(url, sizeof url, "http://[0:0::1]:%d/six", E.s2.port);
  snprintf(host, sizeof host, "\r\nHost: [::1]:%d\r\n", E.s2.port);
  request(&xhr, &r, "GET", url, NULL);
  assert_int_equal(r.loads, 1);
  assert_string_equal(r.body, "v6");
  assert_true(head_has(&E.s2, host));
  xhr_down(&xhr, &r);
  env_down();
}

static void test_https_refused_from_the_loop(void **state) {
  (void)state;
  env_up();
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  request(&xhr, &r, "GET", "https://127.0.0.1:1/", NULL);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.errors, 1);
  assert_int_equal(r.err, -EPROTONOSUPPORT);
  /* and as a redirect's target */
  srv_route(&E.s, NULL,
            "HTTP/1.1 301 M\r\nLocation: https://example.com/\r\n"
            "Content-Length: 0\r\n\r\n",
            THEN_KEEP);
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  assert_int_equal(r.err, -EPROTONOSUPPORT);
  /* a scheme the client has no use for */
  E.s.routes[0].raw = "HTTP/1.1 301 M\r\nLocation: ftp://example.com/\r\n"
                      "Content-Length: 0\r\n\r\n";
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  assert_int_equal(r.err, -EPROTONOSUPPORT);
  assert_int_equal(r.calls, 3);
  xhr_down(&xhr, &r);
  env_down();
}

/* ------------------------------------------------------------ the API */

static void test_bad_arguments(void **state) {
  (void)state;
  env_up();
  static const char *const urls[] = {
      "",
      "ftp://h/",
      "http:/h/",
      "http://",
      "http:///path",
      "http://user@h/",
      "http://user:pw@h/",
      "http://h:0/",
      "http://h:65536/",
      "http://h:12a/",
      "http://h:123456/",
      "http://[::1/",
      "http://[]/",
      "http://[zz::1]/",
      "http://ho st/",
      "http://h/pa th",
      "http://h/\x7f",
      "http://h/caf\xc3\xa9",
      "http://h\r\n/",
      "//h/",
      "h/",
  };
  static const char *const methods[] = {"",        "GE T",    "G\r\n", "GET/",
                                        "CONNECT", "connect", "G:"};
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  for (size_t i = 0; i < sizeof urls / sizeof *urls; i++)
    assert_int_equal(soon_xhr_open(&xhr, "GET", urls[i]), -EINVAL);
  for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
    assert_int_equal(soon_xhr_open(&xhr, methods[i], "http://h/"), -EINVAL);
  assert_int_equal(soon_xhr_open(NULL, "GET", "http://h/"), -EINVAL);
  assert_int_equal(soon_xhr_open(&xhr, NULL, "http://h/"), -EINVAL);
  assert_int_equal(soon_xhr_open(&xhr, "GET", NULL), -EINVAL);
  /* Nothing to send before open; headers need an open request too. */
  assert_int_equal(soon_xhr_send(&xhr, NULL, 0), -EINVAL);
  assert_int_equal(soon_xhr_set_header(&xhr, "X", "y"), -EINVAL);
  assert_int_equal(soon_xhr_open(&xhr, "M-SEARCH", "http://h:1"), 0);
  assert_string_equal(xhr.url, "http://h:1/");
  assert_int_equal(soon_xhr_open(&xhr, "GET", "http://h:/"), 0);
  assert_string_equal(xhr.url, "http://h/");
  static const char *const fields[] = {
      "Host",       "content-length", "Transfer-Encoding",
      "CONNECTION", "Bad Name",       "",
      "a:b"};
  for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
    assert_int_equal(soon_xhr_set_header(&xhr, fields[i], "v"), -EINVAL);
  assert_int_equal(soon_xhr_set_header(&xhr, "X", "a\r\nInjected: 1"), -EINVAL);
  assert_int_equal(soon_xhr_set_header(&xhr, "X", "a\nb"), -EINVAL);
  assert_int_equal(soon_xhr_set_header(&xhr, "X", "a\0b"), 0); /* "a" */
  assert_int_equal(soon_xhr_set_header(&xhr, "X", "\x01"), -EINVAL);
  assert_int_equal(soon_xhr_set_header(&xhr, NULL, "v"), -EINVAL);
  assert_int_equal(soon_xhr_set_header(&xhr, "X", NULL), -EINVAL);
  assert_int_equal(soon_xhr_send(&xhr, NULL, 3), -EINVAL);
  assert_int_equal(soon_xhr_send_stream(&xhr, 3, NULL), -EINVAL);
  assert_int_equal(soon_xhr_init(NULL, E.client), -EINVAL);
  assert_int_equal(soon_xhr_init(&xhr, NULL), -EINVAL);
  assert_int_equal(soon_http_client_new(NULL, NULL, &E.client), -EINVAL);
  assert_int_equal(soon_http_client_new(&E.loop, NULL, NULL), -EINVAL);
  assert_int_equal(soon_http_client_close(NULL, NULL), -EINVAL);
  assert_null(soon_xhr_get_header(NULL, "x"));
  assert_null(soon_xhr_get_header(&xhr, NULL));
  soon_xhr_abort(NULL);
  soon_xhr_abort(&xhr); /* idle: nothing */
  soon_xhr_cleanup(NULL);

  /* Busy: one request at a time per xhr, and the client stays. */
  srv_route(&E.s, NULL, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            THEN_KEEP);
  assert_int_equal(soon_xhr_open(&xhr, "GET", url_at(&E.s, "/")), 0);
  assert_int_equal(soon_xhr_send(&xhr, NULL, 0), 0);
  assert_int_equal(soon_xhr_send(&xhr, NULL, 0), -EBUSY);
  assert_int_equal(soon_xhr_open(&xhr, "GET", url_at(&E.s, "/")), -EBUSY);
  assert_int_equal(soon_xhr_set_header(&xhr, "X", "y"), -EBUSY);
  assert_int_equal(soon_http_client_close(E.client, NULL), -EBUSY);
  run_until(&r.calls, 1);
  assert_int_equal(r.loads, 1);
  /* Sent again without a new open: the same request. */
  assert_int_equal(soon_xhr_send(&xhr, NULL, 0), 0);
  run_until(&r.calls, 2);
  assert_int_equal(r.loads, 2);
  xhr_down(&xhr, &r);
  env_down();
}

/* ------------------------------------------------------------ abort */

static void test_abort(void **state) {
  (void)state;
  env_up();
  srv_route(&E.s, NULL, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            THEN_KEEP);
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  /* Right after send (connecting), after the request went (waiting for
   * the answer), and while a name is being resolved. */
  assert_int_equal(soon_xhr_open(&xhr, "GET", url_at(&E.s, "/")), 0);
  assert_int_equal(soon_xhr_send(&xhr, NULL, 0), 0);
  soon_xhr_abort(&xhr);
  soon_xhr_abort(&xhr);
  E.s.routes[0].raw = NULL; /* hold the answer back */
  assert_int_equal(soon_xhr_send(&xhr, NULL, 0), 0);
  run_until_u(&E.s.requests, 1);
  soon_xhr_abort(&xhr);
  char url[64];
  snprintf(url, sizeof url, "http://localhost:%d/", E.s.port);
  assert_int_equal(soon_xhr_open(&xhr, "GET", url), 0);
  assert_int_equal(soon_xhr_send(&xhr, NULL, 0), 0);
  soon_xhr_abort(&xhr);
  assert_int_equal(xhr.status, 0);
  /* The xhr is usable again at once. */
  E.s.routes[0].raw = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.loads, 1);
  xhr_down(&xhr, &r);
  env_down();
  assert_int_equal(r.calls, 1); /* nothing for the aborted ones, ever */
}

static void test_abort_in_progress(void **state) {
  (void)state;
  env_up();
  size_t big = 1u << 20;
  char *raw = malloc(big + 64);
  assert_non_null(raw);
  int h = sprintf(raw, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", big);
  memset(raw + h, 'p', big);
  E.s.routes[0] = (route){NULL, raw, (size_t)h + big, THEN_KEEP};
  E.s.nroutes = 1;
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  r.abort_in_progress = true;
  assert_int_equal(soon_xhr_open(&xhr, "GET", url_at(&E.s, "/")), 0);
  assert_int_equal(soon_xhr_send(&xhr, NULL, 0), 0);
  run_until(&r.progress, 1);
  run_until_u(&E.s.eofs, 1); /* the connection went with the request */
  assert_int_equal(r.progress, 1);
  assert_int_equal(r.calls, 0);
  assert_true(r.loaded < big);
  xhr_down(&xhr, &r);
  env_down();
  assert_int_equal(r.calls, 0);
  free(raw);
}

/* The xhr's memory is the caller's: after abort and cleanup it may be
 * freed at once, whatever was in flight (ASan checks the rest). */
static void test_abort_then_free(void **state) {
  (void)state;
  env_up();
  E.s.handler = echo;
  result r;
  char url[64];
  snprintf(url, sizeof url, "http://localhost:%d/", E.s.port);
  const char *urls[] = {url_at(&E.s, "/"), url};
  for (int stage = 0; stage < 4; stage++) {
    soon_xhr *xhr = malloc(sizeof *xhr);
    assert_non_null(xhr);
    xhr_up(xhr, &r);
    assert_int_equal(soon_xhr_open(xhr, "POST", urls[stage & 1]), 0);
    assert_int_equal(soon_xhr_set_header(xhr, "Expect", "100-continue"), 0);
    assert_int_equal(soon_xhr_send(xhr, "body", 4), 0);
    if (stage >= 2) /* the request is out, the body waits for 100 */
      run_until_u(&E.s.accepted, (unsigned)stage - 1);
    soon_xhr_abort(xhr);
    soon_xhr_cleanup(xhr);
    memset(xhr, 0xa5, sizeof *xhr);
    free(xhr);
  }
  /* cleanup without an abort, in flight */
  soon_xhr *xhr = malloc(sizeof *xhr);
  xhr_up(xhr, &r);
  assert_int_equal(soon_xhr_open(xhr, "GET", url_at(&E.s, "/")), 0);
  assert_int_equal(soon_xhr_send(xhr, NULL, 0), 0);
  soon_xhr_cleanup(xhr);
  free(xhr);
  env_down();
  assert_int_equal(r.calls, 0);
}

static void cleanup_in_onload(soon_xhr *xhr) {
  soon_xhr_abort(xhr); /* done already: nothing */
  soon_xhr_cleanup(xhr);
  free(xhr);
}

static void test_cleanup_from_onload(void **state) {
  (void)state;
  env_up();
  srv_route(&E.s, NULL, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            THEN_KEEP);
  result r;
  soon_xhr *xhr = malloc(sizeof *xhr);
  xhr_up(xhr, &r);
  r.then = cleanup_in_onload;
  assert_int_equal(soon_xhr_open(xhr, "GET", url_at(&E.s, "/")), 0);
  assert_int_equal(soon_xhr_send(xhr, NULL, 0), 0);
  run_until(&r.calls, 1);
  assert_int_equal(r.loads, 1);
  free(r.body);
  env_down();
}

/* ------------------------------------------------------------ streamed bodies
 */

/* A streamed body from a list of parts; fails with -EIO at fail_at. */
typedef struct source {
  const char *const *parts;
  int next, fail_at, calls;
  bool abort;
} source;

static ssize_t pull(soon_xhr *xhr, char *buf, size_t cap) {
  source *s = ((result *)xhr->data)->src;
  s->calls++;
  if (s->abort) {
    soon_xhr_abort(xhr);
    return -EIO; /* ignored: aborted */
  }
  if (s->next == s->fail_at)
    return -EIO;
  const char *p = s->parts[s->next];
  if (!p)
    return 0;
  size_t n = strlen(p);
  assert_true(n <= cap);
  memcpy(buf, p, n);
  s->next++;
  return (ssize_t)n;
}

static void test_send_stream(void **state) {
  (void)state;
  env_up();
  E.s.handler = echo;
  static const char *const parts[] = {"ab", "cd", "e", NULL};
  soon_xhr xhr;
  result r;
  source src = {parts, 0, -1, 0, false};
  xhr_up(&xhr, &r);
  r.src = &src;
  /* With a length: Content-Length; without: chunked. */
  assert_int_equal(soon_xhr_open(&xhr, "POST", url_at(&E.s, "/s")), 0);
  assert_int_equal(soon_xhr_send_stream(&xhr, 5, pull), 0);
  assert_int_equal(src.calls, 0); /* pulled as the connection takes it */
  run_until(&r.calls, 1);
  assert_int_equal(r.loads, 1);
  assert_string_equal(r.body, "POST abcde");
  assert_true(head_has(&E.s, "\r\nContent-Length: 5\r\n"));
  src = (source){parts, 0, -1, 0, false};
  assert_int_equal(soon_xhr_open(&xhr, "PUT", url_at(&E.s, "/s")), 0);
  assert_int_equal(soon_xhr_send_stream(&xhr, -1, pull), 0);
  run_until(&r.calls, 2);
  assert_string_equal(r.body, "PUT abcde");
  assert_true(head_has(&E.s, "\r\nTransfer-Encoding: chunked\r\n"));
  /* ... and after 100 Continue */
  E.s.on_head = continue_head;
  src = (source){parts, 0, -1, 0, false};
  assert_int_equal(soon_xhr_open(&xhr, "POST", url_at(&E.s, "/s")), 0);
  assert_int_equal(soon_xhr_set_header(&xhr, "Expect", "100-continue"), 0);
  assert_int_equal(soon_xhr_send_stream(&xhr, -1, pull), 0);
  run_until(&r.calls, 3);
  assert_string_equal(r.body, "POST abcde");
  assert_int_equal(E.s.flag, 1);
  E.s.on_head = NULL;
  assert_int_equal(r.loads, 3);
  assert_int_equal(E.s.accepted, 1);

  /* A failing source fails the request, with its error, not retried. */
  src = (source){parts, 0, 1, 0, false};
  assert_int_equal(soon_xhr_open(&xhr, "PUT", url_at(&E.s, "/s")), 0);
  assert_int_equal(soon_xhr_send_stream(&xhr, -1, pull), 0);
  run_until(&r.calls, 4);
  assert_int_equal(r.errors, 1);
  assert_int_equal(r.err, -EIO);
  /* One that ends short of its length. */
  src = (source){parts, 0, -1, 0, false};
  assert_int_equal(soon_xhr_open(&xhr, "PUT", url_at(&E.s, "/s")), 0);
  assert_int_equal(soon_xhr_send_stream(&xhr, 50, pull), 0);
  run_until(&r.calls, 5);
  assert_int_equal(r.errors, 2);
  assert_int_equal(r.err, -EINVAL);
  /* An abort from inside the source: no callback. */
  src = (source){parts, 0, -1, 0, true};
  assert_int_equal(soon_xhr_open(&xhr, "PUT", url_at(&E.s, "/s")), 0);
  assert_int_equal(soon_xhr_send_stream(&xhr, -1, pull), 0);
  run_until(&src.calls, 1);
  /* A 307 would need the body again: handed to onload. */
  E.s.handler = NULL;
  srv_route(&E.s, NULL,
            "HTTP/1.1 307 T\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n",
            THEN_KEEP);
  src = (source){parts, 0, -1, 0, false};
  assert_int_equal(soon_xhr_open(&xhr, "POST", url_at(&E.s, "/s")), 0);
  assert_int_equal(soon_xhr_send_stream(&xhr, -1, pull), 0);
  run_until(&r.calls, 6);
  assert_int_equal(r.loads, 4);
  assert_int_equal(r.status, 307);
  /* GET has no body to stream. */
  assert_int_equal(soon_xhr_open(&xhr, "GET", url_at(&E.s, "/s")), 0);
  assert_int_equal(soon_xhr_send_stream(&xhr, -1, pull), -EINVAL);
  xhr_down(&xhr, &r);
  env_down();
  assert_int_equal(r.calls, 6);
}

/* ------------------------------------------------------------ the client */

static void test_client_close(void **state) {
  (void)state;
  env_up();
  srv_route(&E.s, NULL, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            THEN_KEEP);
  soon_xhr xhr;
  result r;
  xhr_up(&xhr, &r);
  request(&xhr, &r, "GET", url_at(&E.s, "/"), NULL);
  /* Closing closes the idle connection (the server sees it go); the
   * callback comes from the loop. */
  assert_int_equal(soon_http_client_close(E.client, client_closed), 0);
  assert_int_equal(soon_http_client_close(E.client, client_closed), -EALREADY);
  assert_int_equal(soon_xhr_send(&xhr, NULL, 0), -EINVAL);
  assert_int_equal(E.client_closed, 0);
  run_until_u(&E.s.eofs, 1);
  run_until(&E.client_closed, 1);
  xhr_down(&xhr, &r);
  /* A new client for env_down to close. */
  assert_int_equal(soon_http_client_new(&E.loop, NULL, &E.client), 0);
  E.client_closed = 0;
  env_down();
}

/* Many requests at once, several xhrs, one client: each told once. */
static void test_many_parallel(void **state) {
  (void)state;
  soon_http_client_options opts = {.max_idle_per_host = 20};
  env_up_with(&opts, false);
  srv_route(&E.s, NULL, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmany",
            THEN_KEEP);
  enum { N = 20, ROUNDS = 5 };
  soon_xhr xhr[N];
  result r[N];
  for (int i = 0; i < N; i++)
    xhr_up(&xhr[i], &r[i]);
  for (int round = 1; round <= ROUNDS; round++) {
    for (int i = 0; i < N; i++) {
      assert_int_equal(soon_xhr_open(&xhr[i], "GET", url_at(&E.s, "/")), 0);
      assert_int_equal(soon_xhr_send(&xhr[i], NULL, 0), 0);
    }
    for (int i = 0; i < N; i++)
      run_until(&r[i].calls, round);
  }
  for (int i = 0; i < N; i++) {
    assert_int_equal(r[i].loads, ROUNDS);
    assert_string_equal(r[i].body, "many");
    xhr_down(&xhr[i], &r[i]);
  }
  assert_int_equal(E.s.requests, N * ROUNDS);
  assert_int_equal(E.s.accepted, N); /* all idle after a round, all reused */
  env_down();
}

/* Each allocation soon_xhr_send makes fails in turn, on a new connection
 * and on a pooled one: send returns -ENOMEM and nothing is called, or
 * exactly one callback comes (the sanitizers check that nothing leaks). */
static void test_send_out_of_memory(void **state) {
  (void)state;
  env_up();
  srv_route(&E.s, NULL, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            THEN_KEEP);
  for (int pooled = 0; pooled < 2; pooled++) {
    long made = 0;
    for (long n = 1; n <= made + 1; n++) {
      soon_http_client *client;
      assert_int_equal(soon_http_client_new(&E.loop, NULL, &client), 0);
      soon_xhr xhr;
      result r;
      memset(&r, 0, sizeof r);
      xhr.data = &r;
      assert_int_equal(soon_xhr_init(&xhr, client), 0);
      xhr.onload = on_load;
      xhr.onerror = on_error;
      xhr.ontimeout = on_timeout;
      assert_int_equal(soon_xhr_open(&xhr, "POST", url_at(&E.s, "/")), 0);
      if (pooled) {
        assert_int_equal(soon_xhr_send(&xhr, "warm", 4), 0);
        run_until(&r.calls, 1);
      }
      int calls = r.calls;
      long before = soon_test_alloc_count;
      soon_test_alloc_fail_nth = n;
      int err = soon_xhr_send(&xhr, "body", 4);
      made = soon_test_alloc_count - before;
      bool hit = soon_test_alloc_fail_nth == 0;
      soon_test_alloc_fail_nth = 0;
      if (err) {
        assert_true(hit);
        assert_int_equal(err, -ENOMEM);
      } else {
        run_until(&r.calls, calls + 1);
        assert_true(r.loads || r.err == -ENOMEM);
      }
      int closed = E.client_closed;
      soon_xhr_cleanup(&xhr);
      free(r.body);
      assert_int_equal(soon_http_client_close(client, client_closed), 0);
      run_until(&E.client_closed, closed + 1);
      assert_int_equal(r.calls, calls + !err);
    }
    assert_true(made > 3);
  }
  E.client_closed = 0;
  env_down();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_get_content_length),
      cmocka_unit_test(test_get_chunked),
      cmocka_unit_test(test_get_close_delimited),
      cmocka_unit_test(test_no_body_responses),
      cmocka_unit_test(test_404_is_a_load),
      cmocka_unit_test(test_request_bodies),
      cmocka_unit_test(test_expect_continue),
      cmocka_unit_test(test_expect_continue_unanswered),
      cmocka_unit_test(test_interim_skipped),
      cmocka_unit_test(test_redirect_codes),
      cmocka_unit_test(test_redirect_resolution),
      cmocka_unit_test(test_too_many_redirects),
      cmocka_unit_test(test_keepalive_reuse),
      cmocka_unit_test(test_pool_limit),
      cmocka_unit_test(test_idle_timeout_and_age),
      cmocka_unit_test(test_idle_closed_by_server),
      cmocka_unit_test(test_retry_when_closed_under_request),
      cmocka_unit_test(test_malformed_responses),
      cmocka_unit_test(test_truncated_and_odd),
      cmocka_unit_test(test_response_too_large),
      cmocka_unit_test(test_head_too_large),
      cmocka_unit_test(test_timeout_never_answered),
      cmocka_unit_test(test_timeout_without_ontimeout),
      cmocka_unit_test(test_timeout_manual_clock),
      cmocka_unit_test(test_connect_timeout),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_localhost),
      cmocka_unit_test(test_ipv6_literal),
      cmocka_unit_test(test_https_refused_from_the_loop),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_abort),
      cmocka_unit_test(test_abort_in_progress),
      cmocka_unit_test(test_abort_then_free),
      cmocka_unit_test(test_cleanup_from_onload),
      cmocka_unit_test(test_send_stream),
      cmocka_unit_test(test_client_close),
      cmocka_unit_test(test_many_parallel),
      cmocka_unit_test(test_send_out_of_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
