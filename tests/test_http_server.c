/* test_http_server.c: the HTTP/1.1 server's API on every backend: whole,
 * HEAD and streamed responses, keep-alive, pipelining, bodies, errors. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <soon.h>
#include <soon/http.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

#include "helpers.h"

/* The server runs in a thread of its own (its loop, its handler); each
 * test is a client of plain blocking sockets in the test's thread, where
 * cmocka's assertions work. The handlers record what they saw; the test
 * checks it once the server thread is joined. */

/* ------------------------------------------------------------ the server */

typedef struct env env;

/* What the handlers record, for the test to check after the join. */
#define MAX_SEEN 16
typedef struct seen {
  char method[16], path[64], query[64], host[32], xtest[32];
  unsigned version_minor, flags;
  uint64_t content_length;
  char body[64];
  size_t body_len;
} seen;

struct env {
  soon_loop loop;
  soon_http_server *srv;
  soon_async stop;
  soon_timer guard;
  pthread_t thread;
  soon_http_server_options opts;
  soon_http_handler handler;
  const char *ip; /* or a Unix socket at path */
  char dir[64], path[108];
  int port, listen_err, loop_close_err, closed;
  uint64_t grace;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool ready;
  int event; /* a handler's signal to the client, under mu */
  /* records */
  _Atomic int calls;
  seen seen[MAX_SEEN];
  int rc[32]; /* return codes the handlers got, by the test's index */
  int status[8];
  _Atomic int writes_told, write_errors, body_bytes, body_ends, body_errors;
  uint64_t body_sum;
  size_t rest_len;
  char rest[16];
  /* run in the server thread right after soon_http_server_close */
  void (*after_close)(env *e);
  soon_http_req *held;
};

static env *env_of(soon_http_req *req) {
  return soon_http_server_data(req->server);
}

static void on_guard(soon_timer *t) {
  (void)t;
  fprintf(stderr, "guard timer fired: the server loop did not finish\n");
  abort();
}

static void on_server_closed(soon_http_server *s) {
  env *e = soon_http_server_data(s);
  e->closed++;
}

static void on_stop(soon_async *a) {
  env *e = a->data;
  if (soon_http_server_close(e->srv, e->grace, on_server_closed))
    abort();
  soon_close((soon_handle *)a, NULL);
  if (e->after_close)
    e->after_close(e);
}

static void signal_ready(env *e) {
  pthread_mutex_lock(&e->mu);
  e->ready = true;
  pthread_cond_broadcast(&e->cv);
  pthread_mutex_unlock(&e->mu);
}

static void *server_main(void *arg) {
  env *e = arg;
  memset(&e->loop, 0, sizeof e->loop);
  if (soon_loop_init(&e->loop))
    abort();
  e->opts.data = e;
  if (soon_http_server_new(&e->loop, &e->opts, e->handler, &e->srv))
    abort();
  e->listen_err = e->ip ? soon_http_server_listen(e->srv, e->ip, 0)
                        : soon_http_server_listen_unix(e->srv, e->path);
  if (e->listen_err) {
    soon_http_server_close(e->srv, 0, on_server_closed);
    signal_ready(e);
    soon_run(&e->loop, SOON_RUN_DEFAULT);
    e->loop_close_err = soon_loop_close(&e->loop);
    return NULL;
  }
  if (e->ip)
    e->port = soon_http_server_port(e->srv);
  e->stop.data = e;
  if (soon_async_init(&e->loop, &e->stop, on_stop) ||
      soon_timer_init(&e->loop, &e->guard) ||
      soon_timer_start(&e->guard, on_guard, GUARD_MS, 0))
    abort();
  soon_unref((soon_handle *)&e->guard);
  signal_ready(e);
  soon_run(&e->loop, SOON_RUN_DEFAULT);
  soon_close((soon_handle *)&e->guard, NULL);
  soon_run(&e->loop, SOON_RUN_DEFAULT);
  e->loop_close_err = soon_loop_close(&e->loop);
  return NULL;
}

static env *env_new(soon_http_handler handler) {
  env *e = calloc(1, sizeof *e);
  assert_non_null(e);
  e->handler = handler;
  e->ip = "127.0.0.1";
  pthread_mutex_init(&e->mu, NULL);
  pthread_cond_init(&e->cv, NULL);
  return e;
}

static void env_start(env *e) {
  assert_int_equal(pthread_create(&e->thread, NULL, server_main, e), 0);
  pthread_mutex_lock(&e->mu);
  while (!e->ready)
    pthread_cond_wait(&e->cv, &e->mu);
  pthread_mutex_unlock(&e->mu);
  assert_int_equal(e->listen_err, 0);
}

/* Close the server (after grace), join its thread: every handle closed. */
static void env_stop(env *e) {
  assert_int_equal(soon_async_send(&e->stop), 0);
  assert_int_equal(pthread_join(e->thread, NULL), 0);
  assert_int_equal(e->closed, 1);
  assert_int_equal(e->loop_close_err, 0);
}

static void env_free(env *e) {
  if (e->dir[0]) {
    unlink(e->path);
    rmdir(e->dir);
  }
  pthread_mutex_destroy(&e->mu);
  pthread_cond_destroy(&e->cv);
  free(e);
}

/* From a handler (server thread): wake a client waiting in env_wait. */
static void env_signal(env *e, int event) {
  pthread_mutex_lock(&e->mu);
  e->event = event;
  pthread_cond_broadcast(&e->cv);
  pthread_mutex_unlock(&e->mu);
}

static int env_wait(env *e) {
  pthread_mutex_lock(&e->mu);
  while (!e->event)
    pthread_cond_wait(&e->cv, &e->mu);
  int ev = e->event;
  pthread_mutex_unlock(&e->mu);
  return ev;
}

static void copy_span(char *dst, size_t size, soon_http_span s) {
  size_t n = s.len < size - 1 ? s.len : size - 1;
  if (n)
    memcpy(dst, s.base, n);
  dst[n] = '\0';
}

/* Record the request in e->seen[its call number]; that number. */
static int record(soon_http_req *req) {
  env *e = env_of(req);
  int k = atomic_fetch_add(&e->calls, 1);
  if (k >= MAX_SEEN)
    return k;
  seen *s = &e->seen[k];
  copy_span(s->method, sizeof s->method, req->method);
  copy_span(s->path, sizeof s->path, req->path);
  copy_span(s->query, sizeof s->query, req->query);
  const soon_http_span *h = soon_http_req_header(req, "HOST");
  if (h)
    copy_span(s->host, sizeof s->host, *h);
  h = soon_http_req_header(req, "x-test");
  if (h)
    copy_span(s->xtest, sizeof s->xtest, *h);
  s->version_minor = req->version_minor;
  s->flags = req->flags;
  s->content_length = req->content_length;
  s->body_len = req->body.len;
  copy_span(s->body, sizeof s->body, req->body);
  return k;
}

static int respond_text(soon_http_req *req, int status, const char *text) {
  static const soon_http_header h[] = {
      {{"Content-Type", 12}, {"text/plain", 10}}};
  return soon_http_respond(req, status, h, 1, text, strlen(text));
}

/* Answers with the path as the body. */
static int echo_path(soon_http_req *req) {
  record(req);
  char body[80];
  copy_span(body, sizeof body, req->path);
  return respond_text(req, 200, body);
}

/* ------------------------------------------------------------ the client */

typedef struct client {
  int fd;
  char *buf;
  size_t len, cap;
} client;

/* Long enough never to cut a working test, short enough that a server that
 * never answers fails the test instead of hanging it. */
#define CLIENT_TIMEOUT_S 20

static void cl_set_timeout(int fd) {
  struct timeval tv = {CLIENT_TIMEOUT_S, 0};
  assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
}

static void cl_open(client *cl, env *e) {
  memset(cl, 0, sizeof *cl);
  int fd;
  if (!e->ip) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", e->path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  } else if (strchr(e->ip, ':')) {
    struct sockaddr_in6 a;
    assert_int_equal(soon_ip6_addr(e->ip, e->port, &a), 0);
    fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  } else {
    struct sockaddr_in a;
    assert_int_equal(soon_ip4_addr(e->ip, e->port, &a), 0);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  cl_set_timeout(fd);
  cl->fd = fd;
}

static void cl_close(client *cl) {
  close_fd(cl->fd);
  free(cl->buf);
  cl->buf = NULL;
}

static void cl_send_n(client *cl, const char *s, size_t n) {
  while (n) {
    ssize_t w = send(cl->fd, s, n, MSG_NOSIGNAL);
    assert_true(w > 0);
    s += w;
    n -= (size_t)w;
  }
}

static void cl_send(client *cl, const char *s) { cl_send_n(cl, s, strlen(s)); }

/* One byte per send: the server sees any split. */
static void cl_send_bytes(client *cl, const char *s) {
  for (; *s; s++)
    cl_send_n(cl, s, 1);
}

/* Read more: the count, 0 at EOF, -1 on an error (a reset, the timeout). */
static ssize_t cl_fill(client *cl) {
  if (cl->cap - cl->len < 65536) {
    cl->cap = cl->cap ? cl->cap * 2 : 131072;
    cl->buf = realloc(cl->buf, cl->cap);
    assert_non_null(cl->buf);
  }
  ssize_t n;
  do
    n = recv(cl->fd, cl->buf + cl->len, cl->cap - cl->len, 0);
  while (n < 0 && errno == EINTR);
  if (n > 0)
    cl->len += (size_t)n;
  return n;
}

static void cl_consume(client *cl, size_t n) {
  memmove(cl->buf, cl->buf + n, cl->len - n);
  cl->len -= n;
}

/* Whether the server closed with nothing more sent (a reset counts). */
static bool cl_eof(client *cl) {
  if (cl->len)
    return false;
  ssize_t n = cl_fill(cl);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* Exactly n raw bytes. */
static void cl_read_raw(client *cl, char *out, size_t n) {
  while (cl->len < n)
    assert_true(cl_fill(cl) > 0);
  memcpy(out, cl->buf, n);
  cl_consume(cl, n);
}

#define MAX_RESP_HEADERS 32
typedef struct resp {
  int status;
  unsigned version_minor;
  unsigned nh;
  char names[MAX_RESP_HEADERS][64], values[MAX_RESP_HEADERS][128];
  soon_http_body framing;
  char *body;
  size_t len;
} resp;

static const char *hdr(const resp *r, const char *name) {
  for (unsigned i = 0; i < r->nh; i++)
    if (!strcasecmp(r->names[i], name))
      return r->values[i];
  return NULL;
}

static void resp_free(resp *r) {
  free(r->body);
  r->body = NULL;
}

/* One response, parsed by soon's own parser (its corpus tests it): 0, or
 * -1 if the connection ended (or failed) first. */
static int cl_response(client *cl, resp *r, bool head) {
  memset(r, 0, sizeof *r);
  soon_http_parser p;
  soon_http_header hs[MAX_RESP_HEADERS];
  soon_http_limits lim = {.max_body = 1u << 30};
  assert_int_equal(
      soon_http_parser_init(&p, SOON_HTTP_RESPONSE, hs, MAX_RESP_HEADERS, &lim),
      0);
  p.head_request = head;
  ssize_t h;
  while ((h = soon_http_parse_head(&p, cl->buf, cl->len)) == 0)
    if (cl_fill(cl) <= 0)
      return -1;
  assert_true(h > 0);
  r->status = p.status;
  r->version_minor = p.version_minor;
  r->framing = p.body;
  r->nh = p.nheaders;
  for (unsigned i = 0; i < p.nheaders; i++) {
    copy_span(r->names[i], sizeof r->names[i], hs[i].name);
    copy_span(r->values[i], sizeof r->values[i], hs[i].value);
  }
  cl_consume(cl, (size_t)h);
  size_t cap = 0;
  while (!soon_http_message_done(&p)) {
    if (!cl->len) {
      ssize_t n = cl_fill(cl);
      if (n == 0 && soon_http_parse_eof(&p) == 0)
        break;
      if (n <= 0)
        return -1;
      continue;
    }
    soon_http_span d;
    ssize_t k = soon_http_parse_body(&p, cl->buf, cl->len, &d);
    assert_true(k > 0);
    if (r->len + d.len + 1 > cap) {
      cap = (r->len + d.len + 1) * 2;
      r->body = realloc(r->body, cap);
      assert_non_null(r->body);
    }
    memcpy(r->body + r->len, d.base, d.len);
    r->len += d.len;
    cl_consume(cl, (size_t)k);
  }
  if (!r->body)
    r->body = calloc(1, 1);
  r->body[r->len] = '\0';
  return 0;
}

static void expect_response(client *cl, resp *r, int status, const char *body) {
  assert_int_equal(cl_response(cl, r, false), 0);
  assert_int_equal(r->status, status);
  if (body)
    assert_string_equal(r->body, body);
}

/* A server-made error: its status, Connection: close, then the close. */
static void expect_rejected(client *cl, int status) {
  resp r;
  assert_int_equal(cl_response(cl, &r, false), 0);
  assert_int_equal(r.status, status);
  assert_non_null(hdr(&r, "connection"));
  assert_string_equal(hdr(&r, "connection"), "close");
  resp_free(&r);
  assert_true(cl_eof(cl));
}

static env *start(soon_http_handler handler) {
  env *e = env_new(handler);
  env_start(e);
  return e;
}

static env *start_opts(soon_http_handler handler,
                       const soon_http_server_options *o) {
  env *e = env_new(handler);
  e->opts = *o;
  env_start(e);
  return e;
}

static void finish(env *e) {
  env_stop(e);
  env_free(e);
}

/* ------------------------------------------------------------ whole */

static int whole_handler(soon_http_req *req) {
  record(req);
  static const soon_http_header h[] = {
      {{"X-Test", 6}, {"yes", 3}}, {{"Content-Type", 12}, {"text/plain", 10}}};
  return soon_http_respond(req, 201, h, 2, "hello world\n", 12);
}

static void test_whole(void **state) {
  (void)state;
  env *e = start(whole_handler);
  client cl;
  cl_open(&cl, e);
  cl_send(&cl, "GET /p/a?x=1&y HTTP/1.1\r\nHost: example\r\n"
               "X-Test: one\r\n\r\n");
  resp r;
  expect_response(&cl, &r, 201, "hello world\n");
  assert_int_equal(r.version_minor, 1);
  assert_string_equal(hdr(&r, "content-length"), "12");
  assert_string_equal(hdr(&r, "x-test"), "yes");
  assert_string_equal(hdr(&r, "content-type"), "text/plain");
  assert_null(hdr(&r, "connection")); /* 1.1 keeps it open, unsaid */
  const char *date = hdr(&r, "date");
  assert_non_null(date);
  assert_int_equal(strlen(date), 29); /* Sun, 06 Nov 1994 08:49:37 GMT */
  assert_string_equal(date + 25, " GMT");
  assert_int_equal(date[3], ',');
  resp_free(&r);
  /* Kept alive: a second request on the same connection. */
  cl_send(&cl, "POST /second HTTP/1.1\r\nHost: example\r\n"
               "Content-Length: 3\r\n\r\nabc");
  expect_response(&cl, &r, 201, "hello world\n");
  resp_free(&r);
  cl_close(&cl);
  env_stop(e);
  assert_int_equal(e->calls, 2);
  seen *s = &e->seen[0];
  assert_string_equal(s->method, "GET");
  assert_string_equal(s->path, "/p/a");
  assert_string_equal(s->query, "x=1&y");
  assert_string_equal(s->host, "example");
  assert_string_equal(s->xtest, "one");
  assert_int_equal(s->version_minor, 1);
  assert_true(s->flags & SOON_HTTP_KEEP_ALIVE);
  assert_int_equal(s->body_len, 0);
  s = &e->seen[1];
  assert_string_equal(s->method, "POST");
  assert_string_equal(s->path, "/second");
  assert_string_equal(s->query, "");
  assert_int_equal(s->content_length, 3);
  assert_string_equal(s->body, "abc");
  env_free(e);
}

static void test_head(void **state) {
  (void)state;
  env *e = start(whole_handler);
  client cl;
  cl_open(&cl, e);
  cl_send(&cl, "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"
               "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  resp r;
  assert_int_equal(cl_response(&cl, &r, true), 0);
  assert_int_equal(r.status, 201);
  assert_string_equal(hdr(&r, "content-length"), "12"); /* as for GET */
  assert_string_equal(hdr(&r, "x-test"), "yes");
  assert_int_equal(r.len, 0);
  resp_free(&r);
  /* No body bytes went out after the HEAD's head: this parses cleanly. */
  expect_response(&cl, &r, 201, "hello world\n");
  resp_free(&r);
  cl_close(&cl);
  finish(e);
}

/* 204 and 304 carry no body and no framing at all. */
static int nobody_handler(soon_http_req *req) {
  record(req);
  if (req->path.len == 4 && !memcmp(req->path.base, "/204", 4))
    return soon_http_respond(req, 204, NULL, 0, NULL, 0);
  int err = soon_http_write_head(req, 304, NULL, 0, -1);
  return err ? err : soon_http_end(req);
}

static void test_no_body_status(void **state) {
  (void)state;
  env *e = start(nobody_handler);
  client cl;
  resp r;
  cl_open(&cl, e);
  cl_send(&cl, "GET /204 HTTP/1.1\r\nHost: a\r\n\r\n"
               "GET /304 HTTP/1.1\r\nHost: a\r\n\r\n"
               "GET /204 HTTP/1.1\r\nHost: a\r\n\r\n");
  for (int i = 0; i < 3; i++) {
    expect_response(&cl, &r, i == 1 ? 304 : 204, "");
    assert_null(hdr(&r, "content-length"));
    assert_null(hdr(&r, "transfer-encoding"));
    assert_null(hdr(&r, "connection"));
    resp_free(&r);
  }
  cl_close(&cl);
  finish(e);
}

/* The hot path allocates nothing: a keep-alive request reuses its
 * connection's buffers (counted by tests/alloc.c, every thread). */
static void test_no_allocation(void **state) {
  (void)state;
  env *e = start(whole_handler);
  client cl;
  resp r;
  cl_open(&cl, e);
  static const char get[] = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
  cl_send(&cl, get); /* the first one sizes the buffers */
  expect_response(&cl, &r, 201, "hello world\n");
  resp_free(&r);
  assert_int_equal(cl.len, 0);
  /* The same response each time (the Date's length does not change).
   * Three more warm-up requests: on io_uring a stream reads its first two
   * by readiness and then moves to the ring (src/net/transport_ring.c,
   * bulk), where chaos splits a receive and so first allocates the
   * stream's stash; the last two are the ring's first receives. */
  size_t size = 0;
  char buf[1024];
  for (int warm = 0; warm < 3; warm++) {
    cl_send(&cl, get);
    size = 0;
    while (!size || !strstr(buf, "hello world\n")) {
      ssize_t n = recv(cl.fd, buf + size, sizeof buf - 1 - size, 0);
      assert_true(n > 0);
      size += (size_t)n;
      buf[size] = '\0';
    }
  }
  long before = atomic_load(&soon_test_alloc_count);
  for (int i = 0; i < 200; i++) {
    cl_send(&cl, get);
    for (size_t got = 0; got < size;) {
      ssize_t n = recv(cl.fd, buf, size - got, 0);
      assert_true(n > 0);
      got += (size_t)n;
    }
  }
  long after = atomic_load(&soon_test_alloc_count);
  assert_int_equal(after - before, 0);
  cl_close(&cl);
  finish(e);
}

/* ------------------------------------------------------------ keep-alive */

static void test_http10(void **state) {
  (void)state;
  env *e = start(echo_path);
  client cl;
  resp r;
  /* 1.0 without keep-alive: answered, then closed. */
  cl_open(&cl, e);
  cl_send(&cl, "GET /a HTTP/1.0\r\n\r\n");
  expect_response(&cl, &r, 200, "/a");
  assert_string_equal(hdr(&r, "connection"), "close");
  assert_string_equal(hdr(&r, "content-length"), "2");
  resp_free(&r);
  assert_true(cl_eof(&cl));
  cl_close(&cl);
  /* With Connection: keep-alive: said back, and the connection stays. */
  cl_open(&cl, e);
  cl_send(&cl, "GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  expect_response(&cl, &r, 200, "/b");
  assert_string_equal(hdr(&r, "connection"), "keep-alive");
  resp_free(&r);
  cl_send(&cl, "GET /c HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
  expect_response(&cl, &r, 200, "/c");
  assert_string_equal(hdr(&r, "connection"), "keep-alive");
  resp_free(&r);
  cl_send(&cl, "GET /d HTTP/1.0\r\n\r\n");
  expect_response(&cl, &r, 200, "/d");
  assert_string_equal(hdr(&r, "connection"), "close");
  resp_free(&r);
  assert_true(cl_eof(&cl));
  cl_close(&cl);
  finish(e);
}

static void test_connection_close(void **state) {
  (void)state;
  env *e = start(echo_path);
  client cl;
  resp r;
  cl_open(&cl, e);
  /* What follows a Connection: close request is never answered. */
  cl_send(&cl, "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
               "GET /never HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_response(&cl, &r, 200, "/x");
  assert_string_equal(hdr(&r, "connection"), "close");
  resp_free(&r);
  assert_true(cl_eof(&cl));
  cl_close(&cl);
  env_stop(e);
  assert_int_equal(e->calls, 1);
  env_free(e);
}

static void test_max_requests(void **state) {
  (void)state;
  soon_http_server_options o = {.max_requests = 2};
  env *e = start_opts(echo_path, &o);
  client cl;
  resp r;
  cl_open(&cl, e);
  cl_send(&cl, "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_response(&cl, &r, 200, "/1");
  assert_null(hdr(&r, "connection"));
  resp_free(&r);
  cl_send(&cl, "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_response(&cl, &r, 200, "/2");
  assert_string_equal(hdr(&r, "connection"), "close");
  resp_free(&r);
  assert_true(cl_eof(&cl));
  cl_close(&cl);
  finish(e);
}

/* A handler's own Connection: close (any case), whole on /whole and
 * streamed (chunked) elsewhere; another Connection value is refused
 * first. rc[2k] and rc[2k + 1] for call k. */
static int handler_close(soon_http_req *req) {
  env *e = env_of(req);
  int k = record(req);
  if (k >= 16)
    abort();
  static const soon_http_header keep[] = {
      {{"Connection", 10}, {"keep-alive", 10}}};
  static const soon_http_header h[] = {{{"X-A", 3}, {"1", 1}},
                                       {{"CONNECTION", 10}, {"Close", 5}}};
  e->rc[2 * k] = soon_http_respond(req, 200, keep, 1, "no", 2);
  if (req->path.len == 6 && !memcmp(req->path.base, "/whole", 6)) {
    e->rc[2 * k + 1] = soon_http_respond(req, 200, h, 2, "bye", 3);
    return 0;
  }
  int err = soon_http_write_head(req, 200, h, 2, -1);
  if (!err)
    err = soon_http_write(req, "abc", 3, NULL);
  if (!err)
    err = soon_http_end(req);
  e->rc[2 * k + 1] = err;
  return 0;
}

static unsigned hdr_count(const resp *r, const char *name) {
  unsigned n = 0;
  for (unsigned i = 0; i < r->nh; i++)
    n += !strcasecmp(r->names[i], name);
  return n;
}

/* The server's one Connection: close, the handler's other headers, the
 * body, then the close. */
static void expect_handler_close(client *cl, const char *body) {
  resp r;
  expect_response(cl, &r, 200, body);
  assert_int_equal(hdr_count(&r, "connection"), 1);
  assert_string_equal(hdr(&r, "connection"), "close");
  assert_string_equal(hdr(&r, "x-a"), "1");
  resp_free(&r);
  assert_true(cl_eof(cl));
}

static void test_handler_close(void **state) {
  (void)state;
  env *e = start(handler_close);
  client cl;
  /* What follows is never handled: the server closes as if it chose to. */
  cl_open(&cl, e);
  cl_send(&cl, "GET /whole HTTP/1.1\r\nHost: a\r\n\r\n"
               "GET /never HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_handler_close(&cl, "bye");
  cl_close(&cl);
  /* Streamed: chunked all the same, then closed. */
  cl_open(&cl, e);
  cl_send(&cl, "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n"
               "GET /never HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_handler_close(&cl, "abc");
  cl_close(&cl);
  /* An HTTP/1.0 client asking for keep-alive is told close. */
  cl_open(&cl, e);
  cl_send(&cl, "GET /whole HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  expect_handler_close(&cl, "bye");
  cl_close(&cl);
  env_stop(e);
  assert_int_equal(e->calls, 3);
  assert_string_equal(e->seen[1].path, "/stream");
  for (int k = 0; k < 3; k++) {
    assert_int_equal(e->rc[2 * k], -EINVAL);
    assert_int_equal(e->rc[2 * k + 1], 0);
  }
  env_free(e);
}

/* ------------------------------------------------------------ pipelining */

static const char three[] = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                            "POST /2 HTTP/1.1\r\nHost: a\r\n"
                            "Content-Length: 4\r\n\r\nbody"
                            "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n";

static void expect_three(client *cl) {
  resp r;
  expect_response(cl, &r, 200, "/1");
  resp_free(&r);
  expect_response(cl, &r, 200, "/2");
  resp_free(&r);
  expect_response(cl, &r, 200, "/3");
  resp_free(&r);
}

static void test_pipelined(void **state) {
  (void)state;
  env *e = start(echo_path);
  client cl;
  cl_open(&cl, e);
  cl_send(&cl, three);
  expect_three(&cl);
  cl_send_bytes(&cl, three);
  expect_three(&cl);
  cl_close(&cl);
  /* A client that half-closes after sending: all answered, then closed. */
  cl_open(&cl, e);
  cl_send(&cl, three);
  assert_int_equal(shutdown(cl.fd, SHUT_WR), 0);
  expect_three(&cl);
  assert_true(cl_eof(&cl));
  cl_close(&cl);
  env_stop(e);
  assert_int_equal(e->calls, 9);
  assert_string_equal(e->seen[1].body, "body");
  assert_string_equal(e->seen[4].body, "body");
  env_free(e);
}

/* Answers from a timer, after the handler returned. */
typedef struct later {
  soon_timer t;
  soon_http_req *req;
} later;

static void free_handle(soon_handle *h) { free(h); }

static void later_fire(soon_timer *t) {
  later *l = t->data;
  char body[80];
  copy_span(body, sizeof body, l->req->path);
  env *e = env_of(l->req);
  e->rc[atomic_load(&e->calls) - 1] = respond_text(l->req, 200, body);
  soon_close((soon_handle *)t, free_handle);
}

static int later_handler(soon_http_req *req) {
  record(req);
  later *l = malloc(sizeof *l);
  if (!l || soon_timer_init(req->loop, &l->t))
    abort();
  l->t.data = l;
  l->req = req;
  return soon_timer_start(&l->t, later_fire, 1, 0);
}

static void test_answer_later(void **state) {
  (void)state;
  env *e = start(later_handler);
  client cl;
  cl_open(&cl, e);
  cl_send(&cl, three); /* each handled once the one before is answered */
  expect_three(&cl);
  cl_send_bytes(&cl, "GET /4 HTTP/1.1\r\nHost: a\r\n\r\n");
  resp r;
  expect_response(&cl, &r, 200, "/4");
  resp_free(&r);
  cl_close(&cl);
  env_stop(e);
  assert_int_equal(e->calls, 4);
  for (int i = 0; i < 4; i++)
    assert_int_equal(e->rc[i], 0);
  env_free(e);
}

/* ------------------------------------------------------------ streamed */

static uintptr_t step_of(soon_http_req *req) { return (uintptr_t)req->data; }

static void next_step(soon_http_req *req) {
  req->data = (void *)(step_of(req) + 1);
}

static void count_write(soon_http_req *req, int status) {
  env *e = env_of(req);
  atomic_fetch_add(&e->writes_told, 1);
  if (status)
    atomic_fetch_add(&e->write_errors, 1);
}

static void known_written(soon_http_req *req, int status) {
  count_write(req, status);
  next_step(req);
  if (step_of(req) == 1)
    soon_http_write(req, "world", 5, known_written);
  else
    soon_http_end(req);
}

static int known_handler(soon_http_req *req) {
  record(req);
  int err = soon_http_write_head(req, 200, NULL, 0, 10);
  return err ? err : soon_http_write(req, "hello", 5, known_written);
}

static void test_stream_known_length(void **state) {
  (void)state;
  env *e = start(known_handler);
  client cl;
  resp r;
  cl_open(&cl, e);
  cl_send(&cl, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_response(&cl, &r, 200, "helloworld");
  assert_string_equal(hdr(&r, "content-length"), "10");
  assert_null(hdr(&r, "transfer-encoding"));
  resp_free(&r);
  cl_send(&cl, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_response(&cl, &r, 200, "helloworld");
  resp_free(&r);
  cl_close(&cl);
  env_stop(e);
  assert_int_equal(e->writes_told, 4);
  assert_int_equal(e->write_errors, 0);
  env_free(e);
}

/* "ab", nothing, "cdef", end: each write from the last one's callback. */
static void chunked_written(soon_http_req *req, int status) {
  count_write(req, status);
  next_step(req);
  switch (step_of(req)) {
  case 1:
    soon_http_write(req, "", 0, chunked_written);
    break;
  case 2:
    soon_http_write(req, "cdef", 4, chunked_written);
    break;
  default:
    soon_http_end(req);
  }
}

static int chunked_handler(soon_http_req *req) {
  record(req);
  static const soon_http_header h[] = {{{"X-Streamed", 10}, {"1", 1}}};
  int err = soon_http_write_head(req, 200, h, 1, -1);
  return err ? err : soon_http_write(req, "ab", 2, chunked_written);
}

static void test_stream_chunked(void **state) {
  (void)state;
  env *e = start(chunked_handler);
  client cl;
  resp r;
  cl_open(&cl, e);
  cl_send(&cl, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_response(&cl, &r, 200, "abcdef");
  assert_int_equal(r.framing, SOON_HTTP_BODY_CHUNKED);
  assert_string_equal(hdr(&r, "transfer-encoding"), "chunked");
  assert_null(hdr(&r, "content-length"));
  assert_string_equal(hdr(&r, "x-streamed"), "1");
  resp_free(&r);
  /* HEAD: the same head, no chunk at all; then the connection goes on. */
  cl_send(&cl, "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"
               "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  assert_int_equal(cl_response(&cl, &r, true), 0);
  assert_string_equal(hdr(&r, "transfer-encoding"), "chunked");
  assert_int_equal(r.len, 0);
  resp_free(&r);
  expect_response(&cl, &r, 200, "abcdef");
  resp_free(&r);
  cl_close(&cl);
  /* HTTP/1.0: no chunks; the body ends with the connection. */
  cl_open(&cl, e);
  cl_send(&cl, "GET / HTTP/1.0\r\n\r\n");
  expect_response(&cl, &r, 200, "abcdef");
  assert_int_equal(r.framing, SOON_HTTP_BODY_CLOSE);
  assert_null(hdr(&r, "transfer-encoding"));
  assert_null(hdr(&r, "content-length"));
  assert_string_equal(hdr(&r, "connection"), "close");
  resp_free(&r);
  assert_true(cl_eof(&cl));
  cl_close(&cl);
  env_stop(e);
  assert_int_equal(e->writes_told, 4 * 3);
  assert_int_equal(e->write_errors, 0);
  env_free(e);
}

/* Backpressure: 4 MiB in 256 KiB writes, each from the last's callback. */
#define BP_CHUNK (256 * 1024)
#define BP_COUNT 16
static char *bp_data;

static char *pattern(size_t n) {
  char *p = malloc(n);
  assert_non_null(p);
  uint32_t x = 2463534242u;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p[i] = (char)x;
  }
  return p;
}

static void bp_written(soon_http_req *req, int status) {
  count_write(req, status);
  if (status)
    return;
  next_step(req);
  uintptr_t k = step_of(req);
  if (k < BP_COUNT)
    soon_http_write(req, bp_data + k * BP_CHUNK, BP_CHUNK, bp_written);
  else
    soon_http_end(req);
}

static int bp_handler(soon_http_req *req) {
  env *e = env_of(req);
  record(req);
  int err =
      soon_http_write_head(req, 200, NULL, 0, (int64_t)BP_CHUNK * BP_COUNT);
  if (!err)
    err = soon_http_write(req, bp_data, BP_CHUNK, bp_written);
  e->rc[0] = soon_http_write(req, "x", 1, bp_written); /* one at a time */
  return err;
}

static void test_backpressure(void **state) {
  (void)state;
  bp_data = pattern((size_t)BP_CHUNK * BP_COUNT);
  env *e = start(bp_handler);
  client cl;
  resp r;
  cl_open(&cl, e);
  cl_send(&cl, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_response(&cl, &r, 200, NULL);
  assert_int_equal(r.len, (size_t)BP_CHUNK * BP_COUNT);
  assert_memory_equal(r.body, bp_data, r.len);
  resp_free(&r);
  cl_close(&cl);
  env_stop(e);
  assert_int_equal(e->rc[0], -EBUSY);
  assert_int_equal(e->writes_told, BP_COUNT);
  assert_int_equal(e->write_errors, 0);
  env_free(e);
  free(bp_data);
}

/* soon_http_write_file: ranges of a file between in-memory writes, with a
 * length or chunked, answered at once or from the callbacks, pipelined;
 * each fd closed by the server once its write is told (checked in the
 * callback: nothing else opens fds on the server's thread meanwhile). */
#define SF_SIZE (1u << 20)
#define SF_OFF 1000
#define SF_LEN 300000
static char *sf_data;
static char sf_path[64];
static int sf_fd = -1; /* the fd of the write in flight */

static int sf_open(void) {
  int fd = open(sf_path, O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  return fd;
}

static bool fd_closed(int fd) {
  return fcntl(fd, F_GETFD) < 0 && errno == EBADF;
}

static void sf_written(soon_http_req *req, int status) {
  env *e = env_of(req);
  count_write(req, status);
  if (sf_fd >= 0 && !fd_closed(sf_fd))
    e->rc[10]++; /* a file write told with its fd still open */
  sf_fd = -1;
  next_step(req);
  if (status)
    return;
  if (step_of(req) == 1) /* the range went: "tail" next */
    soon_http_write(req, "tail", 4, sf_written);
  else
    soon_http_end(req);
}

static void sf_range_written(soon_http_req *req, int status) {
  env *e = env_of(req);
  count_write(req, status);
  if (!fd_closed(sf_fd))
    e->rc[10]++;
  sf_fd = -1;
  if (!status)
    soon_http_end(req);
}

static void sf_head_written(soon_http_req *req, int status) {
  count_write(req, status);
  if (status)
    return;
  sf_fd = sf_open();
  soon_http_write_file(req, sf_fd, SF_OFF, SF_LEN, sf_range_written);
}

static int sf_handler(soon_http_req *req) {
  env *e = env_of(req);
  record(req);
  soon_http_span p = req->path;
  int err;
  if (p.len == 4 && !memcmp(p.base, "/len", 4)) {
    /* "head", the range from the callback, then end */
    err = soon_http_write_head(req, 200, NULL, 0, 4 + SF_LEN);
    return err ? err : soon_http_write(req, "head", 4, sf_head_written);
  }
  if (p.len == 8 && !memcmp(p.base, "/chunked", 8)) {
    /* chunked: the range, then "tail" from its callback, then end */
    err = soon_http_write_head(req, 200, NULL, 0, -1);
    if (err)
      return err;
    sf_fd = sf_open();
    return soon_http_write_file(req, sf_fd, SF_OFF, SF_LEN, sf_written);
  }
  /* /now and /chunked-now: the range and the end at once, so the next
   * pipelined response is put behind the range before it is sent */
  bool chunked = p.len == 12;
  err = soon_http_write_head(req, 200, NULL, 0, chunked ? -1 : SF_LEN);
  if (err)
    return err;
  int fd = sf_open();
  e->rc[0] = soon_http_write_file(req, -1, 0, 1, NULL);
  if (chunked) {
    close(fd);
  } else {
    e->rc[1] = soon_http_write_file(req, fd, 0, SF_LEN + 1, NULL);
    e->rc[2] = fd_closed(fd) ? 0 : 1; /* refused, and closed all the same */
  }
  sf_fd = sf_open();
  err = soon_http_write_file(req, sf_fd, SF_OFF, SF_LEN, sf_range_written);
  if (err)
    return err;
  fd = sf_open();
  e->rc[3] = soon_http_write_file(req, fd, 0, 1, NULL);
  e->rc[4] = fd_closed(fd) ? 0 : 1;
  return soon_http_end(req);
}

static void expect_range(client *cl, resp *r, bool chunked, const char *pre,
                         const char *post) {
  expect_response(cl, r, 200, NULL);
  size_t a = strlen(pre), b = strlen(post);
  assert_int_equal(r->len, a + SF_LEN + b);
  assert_memory_equal(r->body, pre, a);
  assert_memory_equal(r->body + a, sf_data + SF_OFF, SF_LEN);
  assert_memory_equal(r->body + a + SF_LEN, post, b);
  assert_int_equal(r->framing,
                   chunked ? SOON_HTTP_BODY_CHUNKED : SOON_HTTP_BODY_LENGTH);
  resp_free(r);
}

static void test_stream_file(void **state) {
  (void)state;
  sf_data = pattern(SF_SIZE);
  strcpy(sf_path, "/tmp/soon-sf-XXXXXX");
  int w = mkstemp(sf_path);
  assert_true(w >= 0);
  assert_int_equal(write(w, sf_data, SF_SIZE), (ssize_t)SF_SIZE);
  close_fd(w);
  env *e = start(sf_handler);
  client cl;
  resp r;
  cl_open(&cl, e);
  cl_send(&cl, "GET /len HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_range(&cl, &r, false, "head", "");
  cl_send(&cl, "GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_range(&cl, &r, true, "", "tail");
  cl_send(&cl, "GET /now HTTP/1.1\r\nHost: a\r\n\r\n"
               "GET /chunked-now HTTP/1.1\r\nHost: a\r\n\r\n"
               "GET /now HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_range(&cl, &r, false, "", "");
  expect_range(&cl, &r, true, "", "");
  expect_range(&cl, &r, false, "", "");
  /* HEAD: the head alone; the range is told, its fd closed. The head is
   * out before the handler hears of its writes: a request after it is
   * answered only once they are told, so the client does not leave first
   * (its close would have them told -ECANCELED). */
  cl_send(&cl, "HEAD /len HTTP/1.1\r\nHost: a\r\n\r\n");
  assert_int_equal(cl_response(&cl, &r, true), 0);
  assert_int_equal(r.len, 0);
  assert_string_equal(hdr(&r, "content-length"), "300004");
  resp_free(&r);
  cl_send(&cl, "GET /len HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_range(&cl, &r, false, "head", "");
  cl_close(&cl);
  env_stop(e);
  assert_int_equal(e->rc[0], -EINVAL); /* no fd */
  assert_int_equal(e->rc[1], -EINVAL); /* longer than the length */
  assert_int_equal(e->rc[2], 0);
  assert_int_equal(e->rc[3], -EBUSY); /* one write at a time */
  assert_int_equal(e->rc[4], 0);
  assert_int_equal(e->rc[10], 0);
  /* /len 2 (head, range), /chunked 2 (range, tail), three /now 1 each,
   * HEAD /len 2, /len 2 */
  assert_int_equal(e->writes_told, 2 + 2 + 3 + 2 + 2);
  assert_int_equal(e->write_errors, 0);
  env_free(e);
  unlink(sf_path);
  free(sf_data);
}

/* on_done: once per request the handler got, with the status and body
 * bytes its response had, the spans still valid; soon_http_req_peername
 * from the handler, and again from on_done once the connection is gone. */
#define DONE_MAX 32
static struct {
  char method[8], path[16];
  int status, peer_port;
  uint64_t bytes;
} dones[DONE_MAX];
static _Atomic int ndones;
static char *done_big; /* 4 MiB: more than a client that left can take */
#define DONE_BIG (4u << 20)

static int peer_port(soon_http_req *req) {
  struct sockaddr_in a;
  int len = sizeof a;
  int rc = soon_http_req_peername(req, (struct sockaddr *)&a, &len);
  if (rc)
    return rc;
  return len == sizeof a && a.sin_family == AF_INET ? ntohs(a.sin_port) : -1;
}

static void on_done_record(soon_http_req *req, int status, uint64_t bytes) {
  int k = atomic_fetch_add(&ndones, 1);
  if (k >= DONE_MAX)
    return;
  copy_span(dones[k].method, sizeof dones[k].method, req->method);
  copy_span(dones[k].path, sizeof dones[k].path, req->path);
  dones[k].status = status;
  dones[k].bytes = bytes;
  dones[k].peer_port = peer_port(req);
}

static void done_written(soon_http_req *req, int status) {
  next_step(req);
  if (status)
    return;
  if (step_of(req) == 1)
    soon_http_write(req, "de", 2, done_written);
  else
    soon_http_end(req);
}

static int done_handler(soon_http_req *req) {
  env *e = env_of(req);
  int k = record(req);
  soon_http_span p = req->path;
  bool ask = !(p.len > 2 && p.base[1] == 'n'); /* /n...: never asked */
  if (ask && k < 32)
    e->rc[k] = peer_port(req);
  if (p.len == 7 && !memcmp(p.base, "/stream", 7)) {
    int err = soon_http_write_head(req, 200, NULL, 0, -1);
    return err ? err : soon_http_write(req, "abc", 3, done_written);
  }
  if (p.len == 5 && !memcmp(p.base, "/fail", 5))
    return -EIO;
  if (p.len >= 4 && !memcmp(p.base + p.len - 3, "big", 3)) {
    int err = soon_http_write_head(req, 200, NULL, 0, DONE_BIG);
    if (!err)
      env_signal(e, 1); /* the client may leave now */
    return err ? err : soon_http_write(req, done_big, DONE_BIG, done_written);
  }
  return soon_http_respond(req, 200, NULL, 0, "hello", 5);
}

static int done_find(const char *path, int from) {
  for (int i = from; i < ndones && i < DONE_MAX; i++)
    if (!strcmp(dones[i].path, path))
      return i;
  fail_msg("no on_done for %s", path);
  return -1;
}

static void test_on_done(void **state) {
  (void)state;
  done_big = calloc(1, DONE_BIG);
  assert_non_null(done_big);
  atomic_store(&ndones, 0);
  soon_http_server_options o = {.on_done = on_done_record};
  env *e = start_opts(done_handler, &o);
  client cl;
  resp r;
  cl_open(&cl, e);
  struct sockaddr_in me;
  socklen_t melen = sizeof me;
  assert_int_equal(getsockname(cl.fd, (struct sockaddr *)&me, &melen), 0);
  int port = ntohs(me.sin_port);
  cl_send(&cl, "GET /whole HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_response(&cl, &r, 200, "hello");
  resp_free(&r);
  cl_send(&cl, "HEAD /whole HTTP/1.1\r\nHost: a\r\n\r\n");
  assert_int_equal(cl_response(&cl, &r, true), 0);
  resp_free(&r);
  cl_send(&cl, "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_response(&cl, &r, 200, "abcde");
  resp_free(&r);
  cl_send(&cl, "GET /fail HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_response(&cl, &r, 500, NULL);
  resp_free(&r);
  cl_close(&cl);
  /* Two clients that leave in the middle of 4 MiB: the response fails,
   * the request is over all the same. */
  const char *big[] = {"GET /big HTTP/1.1\r\nHost: a\r\n\r\n",
                       "GET /nbig HTTP/1.1\r\nHost: a\r\n\r\n"};
  for (int i = 0; i < 2; i++) {
    cl_open(&cl, e);
    cl_send(&cl, big[i]);
    assert_int_equal(env_wait(e), 1);
    pthread_mutex_lock(&e->mu);
    e->event = 0;
    pthread_mutex_unlock(&e->mu);
    struct linger lg = {1, 0}; /* a reset: the server's writes fail */
    setsockopt(cl.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    cl_close(&cl);
  }
  env_stop(e);
  assert_int_equal(e->calls, 6);
  assert_int_equal(ndones, 6); /* once each */
  int i = done_find("/whole", 0);
  assert_int_equal(dones[i].status, 200);
  assert_int_equal(dones[i].bytes, 5);
  assert_int_equal(dones[i].peer_port, port);
  i = done_find("/whole", i + 1); /* the HEAD */
  assert_int_equal(dones[i].status, 200);
  assert_int_equal(dones[i].bytes, 0);
  i = done_find("/stream", 0);
  assert_int_equal(dones[i].status, 200);
  assert_int_equal(dones[i].bytes, 5);
  i = done_find("/fail", 0);
  assert_int_equal(dones[i].status, 500);
  assert_true(dones[i].bytes > 0);
  i = done_find("/big", 0);
  assert_int_equal(dones[i].status, 200);
  assert_int_equal(dones[i].bytes, DONE_BIG); /* queued, not all sent */
  assert_true(dones[i].peer_port > 0);        /* kept from the handler */
  i = done_find("/nbig", 0);
  assert_int_equal(dones[i].peer_port, -ENOTCONN); /* never asked, gone */
  for (int k = 0; k < 4; k++)
    assert_int_equal(e->rc[k], port); /* the handler's own asks */
  env_free(e);
  free(done_big);
}

/* soon_http_req_peername's bad arguments. */
static int peer_args_handler(soon_http_req *req) {
  env *e = env_of(req);
  struct sockaddr_in a;
  int len = sizeof a, neg = -1;
  e->rc[0] = soon_http_req_peername(NULL, (struct sockaddr *)&a, &len);
  e->rc[1] = soon_http_req_peername(req, NULL, &len);
  e->rc[2] = soon_http_req_peername(req, (struct sockaddr *)&a, NULL);
  e->rc[3] = soon_http_req_peername(req, (struct sockaddr *)&a, &neg);
  len = 2; /* too short: cut, and the whole length told */
  e->rc[4] = soon_http_req_peername(req, (struct sockaddr *)&a, &len);
  e->rc[5] = len;
  return soon_http_respond(req, 204, NULL, 0, NULL, 0);
}

static void test_peername_args(void **state) {
  (void)state;
  env *e = start(peer_args_handler);
  client cl;
  resp r;
  cl_open(&cl, e);
  cl_send(&cl, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_response(&cl, &r, 204, "");
  resp_free(&r);
  cl_close(&cl);
  env_stop(e);
  for (int k = 0; k < 4; k++)
    assert_int_equal(e->rc[k], -EINVAL);
  assert_int_equal(e->rc[4], 0);
  assert_int_equal(e->rc[5], sizeof(struct sockaddr_in));
  env_free(e);
}

/* ------------------------------------------------------------ bodies */

static int body_echo(soon_http_req *req) {
  record(req);
  return soon_http_respond(req, 200, NULL, 0, req->body.base, req->body.len);
}

static void test_body_gathered(void **state) {
  (void)state;
  env *e = start(body_echo);
  client cl;
  resp r;
  cl_open(&cl, e);
  cl_send(&cl, "POST /l HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n");
  cl_send(&cl, "hello world");
  expect_response(&cl, &r, 200, "hello world");
  resp_free(&r);
  /* Chunked, with an extension and a trailer; a request right after. */
  cl_send_bytes(&cl, "POST /c HTTP/1.1\r\nHost: a\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n"
                     "0\r\nX-Trailer: x\r\n\r\n"
                     "GET /after HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_response(&cl, &r, 200, "hello world");
  resp_free(&r);
  expect_response(&cl, &r, 200, "");
  resp_free(&r);
  /* Large: the buffer grows past its first size, the head moves. */
  size_t n = 300000;
  char *big = pattern(n);
  char head[128];
  snprintf(head, sizeof head,
           "PUT /big HTTP/1.1\r\nHost: a\r\nContent-Length: %zu\r\n\r\n", n);
  cl_send(&cl, head);
  cl_send_n(&cl, big, n);
  expect_response(&cl, &r, 200, NULL);
  assert_int_equal(r.len, n);
  assert_memory_equal(r.body, big, n);
  resp_free(&r);
  free(big);
  cl_close(&cl);
  env_stop(e);
  assert_int_equal(e->calls, 4);
  assert_int_equal(e->seen[0].content_length, 11);
  assert_string_equal(e->seen[1].path, "/c");
  assert_int_equal(e->seen[1].content_length, 11); /* the decoded size */
  assert_string_equal(e->seen[2].path, "/after");
  assert_string_equal(e->seen[3].path, "/big");
  env_free(e);
}

static uint64_t byte_sum(const char *p, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i < n; i++)
    s = s * 31 + (unsigned char)p[i];
  return s;
}

/* stream_body: the body through soon_http_req_read, answered at its end
 * with "bytes:sum". */
static void sb_body(soon_http_req *req, int status, const char *data,
                    size_t len) {
  env *e = env_of(req);
  if (status < 0) {
    atomic_fetch_add(&e->body_errors, 1);
    return;
  }
  if (len) {
    atomic_fetch_add(&e->body_bytes, (int)len);
    for (size_t i = 0; i < len; i++)
      e->body_sum = e->body_sum * 31 + (unsigned char)data[i];
    return;
  }
  atomic_fetch_add(&e->body_ends, 1);
  char out[64];
  snprintf(out, sizeof out, "%d:%llu", atomic_load(&e->body_bytes),
           (unsigned long long)e->body_sum);
  atomic_store(&e->body_bytes, 0);
  e->body_sum = 0;
  soon_http_respond(req, 200, NULL, 0, out, strlen(out));
}

static int sb_handler(soon_http_req *req) {
  env *e = env_of(req);
  int k = record(req);
  int err = soon_http_req_read(req, sb_body);
  if (k < 8)
    e->rc[k] = soon_http_req_read(req, sb_body); /* once per request */
  return err;
}

static void expect_sum(client *cl, const char *data, size_t n) {
  char want[64];
  snprintf(want, sizeof want, "%zu:%llu", n,
           (unsigned long long)byte_sum(data, n));
  resp r;
  expect_response(cl, &r, 200, want);
  resp_free(&r);
}

static void test_body_streamed(void **state) {
  (void)state;
  soon_http_server_options o = {.stream_body = true};
  env *e = start_opts(sb_handler, &o);
  client cl;
  cl_open(&cl, e);
  size_t n = 300000;
  char *big = pattern(n);
  char head[128];
  snprintf(head, sizeof head,
           "POST /l HTTP/1.1\r\nHost: a\r\nContent-Length: %zu\r\n\r\n", n);
  cl_send(&cl, head);
  cl_send_n(&cl, big, n);
  expect_sum(&cl, big, n);
  /* Chunked: 300 chunks of 1000. */
  cl_send(&cl, "POST /c HTTP/1.1\r\nHost: a\r\n"
               "Transfer-Encoding: chunked\r\n\r\n");
  for (size_t i = 0; i < 300; i++) {
    cl_send(&cl, "3e8\r\n");
    cl_send_n(&cl, big + i * 1000, 1000);
    cl_send(&cl, "\r\n");
  }
  cl_send(&cl, "0\r\n\r\n");
  expect_sum(&cl, big, n);
  /* No body: told its end at once. */
  cl_send(&cl, "GET /none HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_sum(&cl, "", 0);
  free(big);
  cl_close(&cl);
  env_stop(e);
  assert_int_equal(e->calls, 3);
  assert_int_equal(e->body_ends, 3);
  assert_int_equal(e->body_errors, 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(e->rc[i], -EALREADY);
  env_free(e);
}

static void test_expect_continue(void **state) {
  (void)state;
  static const char head[] = "POST / HTTP/1.1\r\nHost: a\r\n"
                             "Content-Length: 5\r\n"
                             "Expect: 100-continue\r\n\r\n";
  resp r;
  client cl;
  /* Gathered: asked for at once. */
  env *e = start(body_echo);
  cl_open(&cl, e);
  cl_send(&cl, head);
  expect_response(&cl, &r, 100, "");
  resp_free(&r);
  cl_send(&cl, "hello");
  expect_response(&cl, &r, 200, "hello");
  resp_free(&r);
  cl_close(&cl);
  finish(e);
  /* Streamed: asked for when the handler reads. */
  soon_http_server_options o = {.stream_body = true};
  e = start_opts(sb_handler, &o);
  cl_open(&cl, e);
  cl_send(&cl, head);
  expect_response(&cl, &r, 100, "");
  resp_free(&r);
  cl_send(&cl, "hello");
  expect_sum(&cl, "hello", 5);
  cl_close(&cl);
  finish(e);
}

/* Answers without reading the body. */
static int ignore_handler(soon_http_req *req) {
  record(req);
  return respond_text(req, 200, "ignored");
}

static void test_body_ignored(void **state) {
  (void)state;
  soon_http_server_options o = {.stream_body = true, .limits.max_body = 8000};
  env *e = start_opts(ignore_handler, &o);
  client cl;
  resp r;
  cl_open(&cl, e);
  char *big = pattern(5000);
  cl_send(&cl, "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n");
  cl_send_n(&cl, big, 5000);
  cl_send(&cl, "GET /b HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_response(&cl, &r, 200, "ignored");
  assert_null(hdr(&r, "connection"));
  resp_free(&r);
  expect_response(&cl, &r, 200, "ignored");
  resp_free(&r);
  /* Chunked the same. */
  cl_send(&cl, "POST /c HTTP/1.1\r\nHost: a\r\n"
               "Transfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\r\n0\r\n\r\nGET /d HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_response(&cl, &r, 200, "ignored");
  resp_free(&r);
  expect_response(&cl, &r, 200, "ignored");
  resp_free(&r);
  cl_close(&cl);
  /* A client expecting 100-continue and never asked: the body cannot be
   * told from the next request, so the connection closes. */
  cl_open(&cl, e);
  cl_send(&cl, "POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
               "Expect: 100-continue\r\n\r\n");
  expect_response(&cl, &r, 200, "ignored");
  assert_string_equal(hdr(&r, "connection"), "close");
  resp_free(&r);
  assert_true(cl_eof(&cl));
  cl_close(&cl);
  /* Larger than max_body as it comes (chunked): answered, then closed. */
  cl_open(&cl, e);
  cl_send(&cl, "POST /f HTTP/1.1\r\nHost: a\r\n"
               "Transfer-Encoding: chunked\r\n\r\n");
  expect_response(&cl, &r, 200, "ignored");
  resp_free(&r);
  for (int i = 0; i < 3; i++) {
    cl_send(&cl, "1388\r\n"); /* 5000 */
    if (send(cl.fd, big, 5000, MSG_NOSIGNAL) < 0)
      break; /* closed already */
    if (send(cl.fd, "\r\n", 2, MSG_NOSIGNAL) < 0)
      break;
  }
  assert_true(cl_eof(&cl));
  cl_close(&cl);
  free(big);
  env_stop(e);
  assert_int_equal(e->calls, 6);
  assert_string_equal(e->seen[1].path, "/b");
  assert_string_equal(e->seen[3].path, "/d");
  env_free(e);
}

/* ------------------------------------------------------------ upgrade */

typedef struct upgraded {
  soon_stream *s;
  env *e;
  soon_write_req w[8];
  unsigned nw;
  char got[16];
  size_t ngot;
  char buf[64];
} upgraded;

static void upg_closed(soon_handle *h) {
  upgraded *u = h->data;
  free(u->s); /* the server malloc'd it; its memory is the caller's now */
  free(u);
}

/* Closed once the last echo has gone (closing earlier would cancel it). */
static void upg_written(soon_write_req *w, int status) {
  upgraded *u = w->data;
  if (status)
    abort();
  if (u->ngot == 8 && w == &u->w[u->nw - 1])
    soon_close((soon_handle *)u->s, upg_closed);
}

static void upg_echo(upgraded *u, const char *data, size_t n) {
  if (!n)
    return;
  memcpy(u->got + u->ngot, data, n);
  soon_buf b = {u->got + u->ngot, n};
  u->ngot += n;
  if (u->ngot == 8) /* "PINGMORE": all there is */
    soon_read_stop(u->s);
  u->w[u->nw].data = u;
  if (soon_write(&u->w[u->nw++], u->s, &b, 1, upg_written))
    abort();
}

static void upg_alloc(soon_handle *h, size_t size, soon_buf *b) {
  upgraded *u = h->data;
  (void)size;
  *b = (soon_buf){u->buf, 8 - u->ngot};
}

static void upg_read(soon_stream *s, ssize_t n, const soon_buf *b) {
  upgraded *u = s->data;
  if (n > 0)
    upg_echo(u, b->base, (size_t)n);
  else if (n < 0)
    abort();
}

static int upgrade_handler(soon_http_req *req) {
  env *e = env_of(req);
  record(req);
  upgraded *u = calloc(1, sizeof *u);
  soon_buf rest;
  e->rc[0] = soon_http_req_upgrade(req, &u->s, &rest);
  if (e->rc[0])
    abort();
  e->rc[1] = soon_http_respond(req, 200, NULL, 0, NULL, 0); /* too late */
  u->e = e;
  u->s->data = u;
  e->rest_len = rest.len;
  if (rest.len)
    memcpy(e->rest, rest.base, rest.len < 16 ? rest.len : 16);
  static const char sw[] = "HTTP/1.1 101 Switching Protocols\r\n"
                           "Upgrade: test\r\nConnection: Upgrade\r\n\r\n";
  soon_buf b = {(char *)sw, sizeof sw - 1};
  u->w[u->nw].data = u;
  if (soon_write(&u->w[u->nw++], u->s, &b, 1, upg_written))
    abort();
  upg_echo(u, rest.base, rest.len);
  free(rest.base);
  if (u->ngot < 8 && soon_read_start(u->s, upg_alloc, upg_read))
    abort();
  return 0;
}

static void test_upgrade(void **state) {
  (void)state;
  env *e = start(upgrade_handler);
  client cl;
  resp r;
  cl_open(&cl, e);
  cl_send(&cl, "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: test\r\n"
               "Connection: Upgrade\r\n\r\nPING");
  expect_response(&cl, &r, 101, NULL);
  assert_string_equal(hdr(&r, "upgrade"), "test");
  resp_free(&r);
  cl_send(&cl, "MORE");
  char echo[8];
  cl_read_raw(&cl, echo, 8);
  assert_memory_equal(echo, "PINGMORE", 8);
  assert_true(cl_eof(&cl));
  cl_close(&cl);
  env_stop(e);
  assert_int_equal(e->calls, 1);
  assert_true(e->seen[0].flags & SOON_HTTP_UPGRADE);
  assert_int_equal(e->rc[0], 0);
  assert_int_equal(e->rc[1], -EALREADY);
  /* What the server had read after the head, however the reads fell. */
  assert_true(e->rest_len <= 4);
  assert_memory_equal(e->rest, "PING", e->rest_len);
  env_free(e);
}

/* ------------------------------------------------------------ errors */

typedef struct bad_case {
  const char *request; /* "%L": 1100 letters */
  int status;
} bad_case;

static void send_case(client *cl, const char *req) {
  const char *mark = strstr(req, "%L");
  if (!mark) {
    cl_send(cl, req);
    return;
  }
  cl_send_n(cl, req, (size_t)(mark - req));
  char letters[1100];
  memset(letters, 'x', sizeof letters);
  /* The server may answer and close before it has read them all. */
  if (send(cl->fd, letters, sizeof letters, MSG_NOSIGNAL) > 0)
    send(cl->fd, mark + 2, strlen(mark + 2), MSG_NOSIGNAL);
}

static void test_rejected(void **state) {
  (void)state;
  static const bad_case cases[] = {
      {"GET / HTTP/1.1\r\n\r\n", 400}, /* no Host */
      {"GET / HTTP/1.1\nHost: a\n\n", 400},
      {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
       "Transfer-Encoding: chunked\r\n\r\n",
       400},
      {"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
       "Content-Length: 1\r\n\r\nx",
       400},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
       "zz\r\n",
       400},
      {"GET /%L HTTP/1.1\r\nHost: a\r\n\r\n", 414},
      {"GET / HTTP/1.1\r\nHost: a\r\nX-Long: %L\r\n\r\n", 431},
      {"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n"
       "E: 1\r\nF: 1\r\nG: 1\r\nH: 1\r\n\r\n",
       431},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n", 413},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
       "40\r\n0123456789012345678901234567890123456789012345678901234567890123"
       "\r\n40\r\n",
       413},
      {"POST / HTTP/1.1\r\nHost: a\r\n"
       "Transfer-Encoding: gzip, chunked\r\n\r\n",
       501},
      {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
      {"GET / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n", 417},
  };
  soon_http_server_options o = {.limits = {.max_head = 1024, .max_body = 100},
                                .max_headers = 8,
                                .on_done = on_done_record};
  atomic_store(&ndones, 0);
  env *e = start_opts(echo_path, &o);
  size_t ncases = sizeof cases / sizeof *cases;
  for (size_t i = 0; i < ncases; i++) {
    client cl;
    cl_open(&cl, e);
    send_case(&cl, cases[i].request);
    expect_rejected(&cl, cases[i].status);
    cl_close(&cl);
  }
  /* A good request, then a bad one: the first is answered. */
  client cl;
  cl_open(&cl, e);
  cl_send(&cl, "GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET  / HTTP/1.1\r\n\r\n");
  resp r;
  expect_response(&cl, &r, 200, "/ok");
  resp_free(&r);
  expect_rejected(&cl, 400);
  cl_close(&cl);
  env_stop(e);
  assert_int_equal(e->calls, 1); /* never for a rejected request */
  /* on_done hears of every one, in order (each answer was read before the
   * next client came), asked for the client's address while it was there:
   * with the method when the head was whole (a bad or too large chunked
   * body, an Expect), without it when the head was refused. */
  assert_int_equal(ndones, ncases + 2);
  for (size_t i = 0; i < ncases; i++) {
    assert_int_equal(dones[i].status, cases[i].status);
    assert_true(dones[i].peer_port > 0);
    assert_true(dones[i].bytes > 0); /* the reason, as the body */
  }
  assert_string_equal(dones[0].method, "");     /* no Host: the head refused */
  assert_string_equal(dones[5].method, "POST"); /* "zz", a bad chunk size */
  assert_string_equal(dones[5].path, "/");
  assert_string_equal(dones[10].method, "POST"); /* the chunks too large */
  assert_string_equal(dones[13].method, "GET");  /* the Expect */
  assert_string_equal(dones[ncases].path, "/ok");
  assert_int_equal(dones[ncases].status, 200);
  assert_string_equal(dones[ncases + 1].method, ""); /* "GET  /": refused */
  assert_int_equal(dones[ncases + 1].status, 400);
  env_free(e);
}

static int failing_handler(soon_http_req *req) {
  record(req);
  return -EIO;
}

static void test_handler_error(void **state) {
  (void)state;
  env *e = start(failing_handler);
  client cl;
  cl_open(&cl, e);
  cl_send(&cl, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_rejected(&cl, 500);
  cl_close(&cl);
  finish(e);
}

static void test_timeouts(void **state) {
  (void)state;
  soon_http_server_options o = {.header_timeout_ms = 50,
                                .body_timeout_ms = 50,
                                .keepalive_timeout_ms = 50,
                                .on_done = on_done_record};
  atomic_store(&ndones, 0);
  env *e = start_opts(echo_path, &o);
  client cl;
  resp r;
  /* Part of a head, then nothing: 408. */
  cl_open(&cl, e);
  cl_send(&cl, "GET / HTTP/1.1\r\nHo");
  expect_rejected(&cl, 408);
  cl_close(&cl);
  /* Part of a body, then nothing: 408. */
  cl_open(&cl, e);
  cl_send(&cl, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
  expect_rejected(&cl, 408);
  cl_close(&cl);
  /* Idle after an answer, or from the start: closed without a word. */
  cl_open(&cl, e);
  cl_send(&cl, "GET /k HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_response(&cl, &r, 200, "/k");
  resp_free(&r);
  assert_true(cl_eof(&cl));
  cl_close(&cl);
  cl_open(&cl, e);
  assert_true(cl_eof(&cl));
  cl_close(&cl);
  env_stop(e);
  assert_int_equal(e->calls, 1);
  /* The two 408s reach on_done (the idle closes are no requests). */
  assert_int_equal(ndones, 3);
  assert_int_equal(dones[0].status, 408);
  assert_string_equal(dones[0].method, ""); /* the head never whole */
  assert_int_equal(dones[1].status, 408);
  assert_string_equal(dones[1].method, "POST");
  assert_int_equal(dones[2].status, 200);
  env_free(e);
}

static void test_body_stream_failures(void **state) {
  (void)state;
  soon_http_server_options o = {.stream_body = true, .body_timeout_ms = 50};
  env *e = start_opts(sb_handler, &o);
  client cl;
  /* The body stops coming: the reader hears a timeout, the client a
   * close. */
  cl_open(&cl, e);
  cl_send(&cl, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc");
  assert_true(cl_eof(&cl));
  cl_close(&cl);
  /* The client goes away mid-body: the reader hears it. */
  cl_open(&cl, e);
  cl_send(&cl, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
               "\r\n3\r\nabc\r\n");
  assert_int_equal(shutdown(cl.fd, SHUT_WR), 0);
  assert_true(cl_eof(&cl));
  cl_close(&cl);
  /* Bad framing mid-body: the same. */
  cl_open(&cl, e);
  cl_send(&cl, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
               "\r\n3\r\nabcX\r\n");
  assert_true(cl_eof(&cl));
  cl_close(&cl);
  env_stop(e);
  assert_int_equal(e->calls, 3);
  assert_int_equal(e->body_errors, 3);
  assert_int_equal(e->body_ends, 0);
  env_free(e);
}

/* A client that does not read: its send is cut after send_timeout_ms. */
#define ST_CHUNK (1 << 20)
static char *st_data;

static void st_written(soon_http_req *req, int status) {
  env *e = env_of(req);
  count_write(req, status);
  if (status < 0) {
    env_signal(e, 1);
    return;
  }
  next_step(req);
  if (step_of(req) < 64)
    soon_http_write(req, st_data, ST_CHUNK, st_written);
  else
    soon_http_end(req); /* never: the client reads nothing */
}

static int st_handler(soon_http_req *req) {
  record(req);
  int err = soon_http_write_head(req, 200, NULL, 0, (int64_t)ST_CHUNK * 64);
  return err ? err : soon_http_write(req, st_data, ST_CHUNK, st_written);
}

static void test_send_timeout(void **state) {
  (void)state;
  st_data = calloc(1, ST_CHUNK);
  soon_http_server_options o = {.send_timeout_ms = 50};
  env *e = start_opts(st_handler, &o);
  client cl;
  cl_open(&cl, e);
  int small = 4096;
  setsockopt(cl.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  cl_send(&cl, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  assert_int_equal(env_wait(e), 1); /* the handler heard the failure */
  cl_close(&cl);
  env_stop(e);
  assert_int_equal(e->write_errors, 1);
  env_free(e);
  free(st_data);
}

/* ------------------------------------------------------------ the API */

static int dummy_handler(soon_http_req *req) {
  (void)req;
  return 0;
}

static void on_closed_count(soon_http_server *s) {
  int *n = soon_http_server_data(s);
  (*n)++;
}

static void test_api_server(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_checked(&loop);
  soon_http_server *s = NULL;
  int closed = 0;
  soon_http_server_options o = {.data = &closed};
  assert_int_equal(soon_http_server_new(NULL, &o, dummy_handler, &s), -EINVAL);
  assert_int_equal(soon_http_server_new(&loop, &o, NULL, &s), -EINVAL);
  assert_int_equal(soon_http_server_new(&loop, &o, dummy_handler, NULL),
                   -EINVAL);
  soon_http_server_options bad = {.backlog = -1};
  assert_int_equal(soon_http_server_new(&loop, &bad, dummy_handler, &s),
                   -EINVAL);
  bad = (soon_http_server_options){.threads = 100000};
  assert_int_equal(soon_http_server_new(&loop, &bad, dummy_handler, &s),
                   -EINVAL);
  assert_int_equal(soon_http_server_new(&loop, &o, dummy_handler, &s), 0);
  assert_ptr_equal(soon_http_server_data(s), &closed);
  assert_null(soon_http_server_data(NULL));
  assert_int_equal(soon_http_server_port(s), -ENOTCONN);
  assert_int_equal(soon_http_server_port(NULL), -EINVAL);
  assert_int_equal(soon_http_server_listen(NULL, "127.0.0.1", 0), -EINVAL);
  assert_int_equal(soon_http_server_listen(s, NULL, 0), -EINVAL);
  assert_int_equal(soon_http_server_listen(s, "127.0.0.1", 70000), -EINVAL);
  assert_int_equal(soon_http_server_listen(s, "localhost", 0), -EINVAL);
  assert_int_equal(soon_http_server_listen_unix(s, NULL), -EINVAL);
  assert_int_equal(soon_http_server_listen(s, "127.0.0.1", 0), 0);
  assert_true(soon_http_server_port(s) > 0);
  assert_int_equal(soon_http_server_listen(s, "127.0.0.1", 0), -EALREADY);
  /* The same port again, without SO_REUSEPORT on ours: taken. */
  soon_http_server *s2;
  assert_int_equal(soon_http_server_new(&loop, NULL, dummy_handler, &s2), 0);
  assert_int_equal(
      soon_http_server_listen(s2, "127.0.0.1", soon_http_server_port(s)),
      -EADDRINUSE);
  assert_int_equal(soon_http_server_close(s2, 0, NULL), 0);
  assert_int_equal(soon_http_server_close(NULL, 0, NULL), -EINVAL);
  assert_int_equal(soon_http_server_close(s, 0, on_closed_count), 0);
  assert_int_equal(soon_http_server_close(s, 0, on_closed_count), -EALREADY);
  assert_int_equal(closed, 0); /* never from inside the call */
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(closed, 1);
  /* The request calls, without a request. */
  assert_null(soon_http_req_header(NULL, "host"));
  assert_int_equal(soon_http_respond(NULL, 200, NULL, 0, NULL, 0), -EINVAL);
  assert_int_equal(soon_http_write_head(NULL, 200, NULL, 0, 0), -EINVAL);
  assert_int_equal(soon_http_write(NULL, "x", 1, NULL), -EINVAL);
  assert_int_equal(soon_http_end(NULL), -EINVAL);
  assert_int_equal(soon_http_req_read(NULL, sb_body), -EINVAL);
  soon_stream *st;
  soon_buf rest;
  assert_int_equal(soon_http_req_upgrade(NULL, &st, &rest), -EINVAL);
  loop_close_checked(&loop);
}

static void noop_written(soon_http_req *req, int status) {
  count_write(req, status);
}

/* Header fields longer than a word, refused wherever the bad byte is (the
 * server checks values and names several bytes at a time). */
static const soon_http_header long_bad[] = {
    {{"X-Long", 6}, {"aaaaaaaa\r\nb", 11}},
    {{"X-Long", 6}, {"aaaaaaaaaaaaaaa\n", 16}},
    {{"X-Long", 6}, {"aaaaaaaaa\0bbbbbbbbb", 19}},
    {{"X-Long", 6}, {"\raaaaaaaaaaaaaaa", 16}},
    {{"X-Long-Bad-Name\x01", 16}, {"a", 1}},
    {{"X-Longer-Name-Bad(", 18}, {"a", 1}},
    {{"X Long-Name", 11}, {"a", 1}},
};
static int long_bad_accepted = -1;

/* Each call's errors, recorded in e->rc for the test to check. */
static int api_handler(soon_http_req *req) {
  env *e = env_of(req);
  int *rc = e->rc;
  record(req);
  /* A tab and bytes above 0x7f are fine in a value, long or short. */
  soon_http_header h[] = {
      {{"X-Ok", 4}, {"1", 1}},
      {{"X-Long", 6}, {"tab\there, caf\xc3\xa9 au lait", 23}}};
  if (req->path.len == 6 && !memcmp(req->path.base, "/whole", 6)) {
    rc[0] = soon_http_respond(req, 99, NULL, 0, NULL, 0);
    rc[1] = soon_http_respond(req, 1000, NULL, 0, NULL, 0);
    rc[2] = soon_http_respond(req, 100, NULL, 0, NULL, 0);
    soon_http_header bad = {{"Content-Length", 14}, {"1", 1}};
    rc[3] = soon_http_respond(req, 200, &bad, 1, NULL, 0);
    bad = (soon_http_header){{"connection", 10}, {"keep-alive", 10}};
    rc[4] = soon_http_respond(req, 200, &bad, 1, NULL, 0);
    bad = (soon_http_header){{"X-Split", 7}, {"a\r\nb", 4}};
    rc[5] = soon_http_respond(req, 200, &bad, 1, NULL, 0);
    bad = (soon_http_header){{"bad name", 8}, {"a", 1}};
    rc[6] = soon_http_respond(req, 200, &bad, 1, NULL, 0);
    long_bad_accepted = 0;
    for (size_t i = 0; i < sizeof long_bad / sizeof *long_bad; i++)
      long_bad_accepted +=
          soon_http_respond(req, 200, &long_bad[i], 1, NULL, 0) != -EINVAL;
    rc[7] = soon_http_respond(req, 200, NULL, 0, NULL, 5);
    rc[8] = soon_http_respond(req, 200, NULL, 1, NULL, 0);
    rc[9] = soon_http_write(req, "x", 1, noop_written);
    rc[10] = soon_http_end(req);
    rc[11] = soon_http_req_upgrade(req, &(soon_stream *){NULL},
                                   &(soon_buf){NULL, 0});
    rc[12] = soon_http_req_read(req, NULL);
    rc[13] = soon_http_write_head(req, 204, NULL, 0, 5);
    rc[14] = soon_http_respond(req, 204, NULL, 0, "x", 1);
    rc[15] = soon_http_respond(req, 200, h, 2, "ok", 2);
    rc[16] = soon_http_respond(req, 200, NULL, 0, "ok", 2);
    rc[17] = soon_http_write_head(req, 200, NULL, 0, 0);
    rc[18] = soon_http_write(req, "x", 1, noop_written);
    rc[19] = soon_http_end(req);
    rc[20] = soon_http_req_read(req, sb_body);
    return 0;
  }
  if (req->path.len == 7 && !memcmp(req->path.base, "/stream", 7)) {
    rc[21] = soon_http_write_head(req, 200, NULL, 0, -1);
    rc[22] = soon_http_write_head(req, 200, NULL, 0, -1);
    rc[23] = soon_http_write(req, "abc", 3, noop_written);
    rc[24] = soon_http_write(req, "def", 3, noop_written);
    rc[25] = soon_http_respond(req, 200, NULL, 0, NULL, 0);
    rc[26] = soon_http_end(req); /* with the write still waiting: fine */
    rc[27] = soon_http_end(req);
    return 0;
  }
  rc[28] = soon_http_write_head(req, 200, NULL, 0, 2);
  rc[29] = soon_http_write(req, "abc", 3, noop_written);
  rc[30] = soon_http_write(req, "ab", 2, NULL);
  rc[31] = soon_http_end(req);
  return 0;
}

static void test_api_request(void **state) {
  (void)state;
  env *e = start(api_handler);
  client cl;
  resp r;
  cl_open(&cl, e);
  cl_send(&cl, "GET /whole HTTP/1.1\r\nHost: a\r\n\r\n"
               "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n"
               "GET /len HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_response(&cl, &r, 200, "ok");
  assert_string_equal(hdr(&r, "x-ok"), "1");
  assert_string_equal(hdr(&r, "x-long"), "tab\there, caf\xc3\xa9 au lait");
  resp_free(&r);
  expect_response(&cl, &r, 200, "abc");
  resp_free(&r);
  expect_response(&cl, &r, 200, "ab");
  resp_free(&r);
  cl_close(&cl);
  env_stop(e);
  static const int want[32] = {
      -EINVAL, -EINVAL,   -EINVAL,   -EINVAL,   -EINVAL,   -EINVAL,   -EINVAL,
      -EINVAL, -EINVAL,   -EINVAL,   -EINVAL,   -EINVAL,   -EINVAL,   -EINVAL,
      -EINVAL, 0,         -EALREADY, -EALREADY, -EALREADY, -EALREADY, -EALREADY,
      0,       -EALREADY, 0,         -EBUSY,    -EALREADY, 0,         -EALREADY,
      0,       -EINVAL,   0,         0};
  for (int i = 0; i < 32; i++) {
    if (e->rc[i] != want[i])
      fail_msg("rc[%d] is %d, not %d", i, e->rc[i], want[i]);
  }
  assert_int_equal(long_bad_accepted, 0);
  assert_int_equal(e->writes_told, 1); /* the one accepted write */
  assert_int_equal(e->write_errors, 0);
  env_free(e);
}

/* ------------------------------------------------------------ listening */

static void one_request(env *e) {
  client cl;
  resp r;
  cl_open(&cl, e);
  cl_send(&cl, "GET /one HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_response(&cl, &r, 200, "/one");
  resp_free(&r);
  cl_close(&cl);
}

static void test_listen_ipv6(void **state) {
  (void)state;
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in6 a;
  assert_int_equal(soon_ip6_addr("::1", 0, &a), 0);
  bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
  if (fd >= 0)
    close(fd);
  if (!ok)
    skip(); /* no IPv6 loopback here */
  env *e = env_new(echo_path);
  e->ip = "::1";
  env_start(e);
  assert_true(e->port > 0);
  one_request(e);
  finish(e);
}

static void test_listen_unix(void **state) {
  (void)state;
  env *e = env_new(echo_path);
  snprintf(e->dir, sizeof e->dir, "/tmp/soon-http-XXXXXX");
  assert_non_null(mkdtemp(e->dir));
  snprintf(e->path, sizeof e->path, "%s/s", e->dir);
  e->ip = NULL;
  env_start(e);
  one_request(e);
  finish(e);
}

static void test_threads(void **state) {
  (void)state;
  soon_http_server_options o = {.threads = 2};
  env *e = start_opts(echo_path, &o);
  client a, b;
  resp r;
  cl_open(&a, e);
  cl_open(&b, e);
  cl_send(&a, "GET /a HTTP/1.1\r\nHost: a\r\n\r\n");
  cl_send(&b, "GET /b HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_response(&a, &r, 200, "/a");
  resp_free(&r);
  expect_response(&b, &r, 200, "/b");
  resp_free(&r);
  cl_close(&a);
  cl_close(&b);
  finish(e);
}

static void test_threads_unix(void **state) {
  (void)state;
  env *e = env_new(echo_path);
  e->opts.threads = 3;
  snprintf(e->dir, sizeof e->dir, "/tmp/soon-http-XXXXXX");
  assert_non_null(mkdtemp(e->dir));
  snprintf(e->path, sizeof e->path, "%s/s", e->dir);
  e->ip = NULL;
  env_start(e);
  for (int i = 0; i < 4; i++)
    one_request(e);
  finish(e);
}

/* ------------------------------------------------------------ closing */

static void test_close_idle(void **state) {
  (void)state;
  /* Nothing ever connected. */
  env *e = start(echo_path);
  finish(e);
  /* An idle keep-alive connection: closed at once. */
  e = start(echo_path);
  client cl;
  resp r;
  cl_open(&cl, e);
  cl_send(&cl, "GET /i HTTP/1.1\r\nHost: a\r\n\r\n");
  expect_response(&cl, &r, 200, "/i");
  resp_free(&r);
  e->grace = 60000; /* not waited for: nothing is in flight */
  env_stop(e);
  assert_true(cl_eof(&cl));
  cl_close(&cl);
  env_free(e);
}

/* The handler tells the client it has the request, and answers from a
 * timer: the close waits for the answer (grace), which goes out whole. */
static void held_fire(soon_timer *t) {
  later *l = t->data;
  env *e = env_of(l->req);
  e->rc[0] = respond_text(l->req, 200, "late");
  soon_close((soon_handle *)t, free_handle);
}

static int held_handler(soon_http_req *req) {
  env *e = env_of(req);
  record(req);
  later *l = malloc(sizeof *l);
  if (!l || soon_timer_init(req->loop, &l->t))
    abort();
  l->t.data = l;
  l->req = req;
  env_signal(e, 1);
  return soon_timer_start(&l->t, held_fire, 20, 0);
}

static void test_close_in_flight(void **state) {
  (void)state;
  env *e = start(held_handler);
  client cl;
  resp r;
  cl_open(&cl, e);
  cl_send(&cl, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  assert_int_equal(env_wait(e), 1);
  e->grace = 60000;
  assert_int_equal(soon_async_send(&e->stop), 0);
  expect_response(&cl, &r, 200, "late");
  resp_free(&r);
  assert_true(cl_eof(&cl));
  cl_close(&cl);
  assert_int_equal(pthread_join(e->thread, NULL), 0);
  assert_int_equal(e->closed, 1);
  assert_int_equal(e->loop_close_err, 0);
  assert_int_equal(e->rc[0], 0);
  env_free(e);
}

/* Past the grace period: the connection is closed under the request, and
 * the handler's late answer hears -EPIPE (the request is over). */
static void orphan_fire(soon_timer *t) {
  env *e = t->data;
  e->rc[0] = respond_text(e->held, 200, "too late");
  soon_close((soon_handle *)t, free_handle);
}

/* Started after the close's grace timer, with the same deadline: it runs
 * after it (equal deadlines run in start order). */
static void orphan_after_close(env *e) {
  soon_timer *t = malloc(sizeof *t);
  if (!t || soon_timer_init(&e->loop, t))
    abort();
  t->data = e;
  soon_timer_start(t, orphan_fire, 0, 0);
}

static int orphan_handler(soon_http_req *req) {
  env *e = env_of(req);
  record(req);
  e->held = req;
  env_signal(e, 1);
  return 0;
}

static void test_close_grace_over(void **state) {
  (void)state;
  env *e = start(orphan_handler);
  e->after_close = orphan_after_close;
  client cl;
  cl_open(&cl, e);
  cl_send(&cl, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  assert_int_equal(env_wait(e), 1);
  env_stop(e); /* grace 0 */
  assert_true(cl_eof(&cl));
  cl_close(&cl);
  assert_int_equal(e->rc[0], -EPIPE);
  env_free(e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_whole),
      cmocka_unit_test(test_head),
      cmocka_unit_test(test_no_body_status),
      cmocka_unit_test(test_no_allocation),
      cmocka_unit_test(test_http10),
      cmocka_unit_test(test_connection_close),
      cmocka_unit_test(test_max_requests),
      cmocka_unit_test(test_handler_close),
      cmocka_unit_test(test_pipelined),
      cmocka_unit_test(test_answer_later),
      cmocka_unit_test(test_stream_known_length),
      cmocka_unit_test(test_stream_chunked),
      cmocka_unit_test(test_backpressure),
      cmocka_unit_test(test_stream_file),
      cmocka_unit_test(test_on_done),
      cmocka_unit_test(test_peername_args),
      cmocka_unit_test(test_body_gathered),
      cmocka_unit_test(test_body_streamed),
      cmocka_unit_test(test_expect_continue),
      cmocka_unit_test(test_body_ignored),
      cmocka_unit_test(test_upgrade),
      cmocka_unit_test(test_rejected),
      cmocka_unit_test(test_handler_error),
      cmocka_unit_test(test_timeouts),
      cmocka_unit_test(test_body_stream_failures),
      cmocka_unit_test(test_send_timeout),
      cmocka_unit_test(test_api_server),
      cmocka_unit_test(test_api_request),
      cmocka_unit_test(test_listen_ipv6),
      cmocka_unit_test(test_listen_unix),
      cmocka_unit_test(test_threads),
      cmocka_unit_test(test_threads_unix),
      cmocka_unit_test(test_close_idle),
      cmocka_unit_test(test_close_in_flight),
      cmocka_unit_test(test_close_grace_over),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
