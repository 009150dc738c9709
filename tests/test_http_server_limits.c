/* test_http_server_limits.c: the HTTP server against hostile and broken
 * clients: slowloris, timeouts, limits, smuggling, floods, resets, shutdown. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <soon.h>
#include <soon/http.h>

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "http/corpus.h"

/* The server runs on its own loop in a helper thread; the test body is its
 * client, with plain blocking sockets, so every assertion runs on the main
 * thread (cmocka cannot fail a test from another thread). Each blocking
 * call is bounded by WAIT_S: a server that never answers fails the test
 * instead of hanging it. */
#define WAIT_S 20

/* ------------------------------------------------------------ responses */

/* One response as the client saw it; the body is malloc'd. */
typedef struct resp {
  int status;
  unsigned flags; /* the parser's: SOON_HTTP_CONN_CLOSE ... */
  char *body;
  size_t body_len;
} resp;

#define MAX_RESPS 16

typedef struct resps {
  resp r[MAX_RESPS];
  unsigned n;       /* final responses, in order */
  unsigned interim; /* 1xx responses met on the way (100 Continue) */
  size_t used;      /* bytes the complete responses took */
} resps;

static void resps_free(resps *rs) {
  for (unsigned i = 0; i < rs->n; i++)
    free(rs->r[i].body);
  memset(rs, 0, sizeof *rs);
}

static void append(char **buf, size_t *len, const char *p, size_t n) {
  char *b = realloc(*buf, *len + n + 1);
  assert_non_null(b);
  memcpy(b + *len, p, n);
  *len += n;
  b[*len] = '\0';
  *buf = b;
}

/* Parse the complete responses in buf[0..len) with soon's own parser, as
 * a strict client would: a malformed response fails the test. heads[i]
 * says the i-th final response answers a HEAD (it has no body); NULL for
 * none. A response cut short ends the list. */
static void parse_resps(const char *buf, size_t len, const bool *heads,
                        resps *out) {
  static const soon_http_limits roomy = {.max_head = 1u << 16,
                                         .max_body = UINT64_MAX >> 2};
  soon_http_header hs[64];
  memset(out, 0, sizeof *out);
  size_t off = 0;
  while (off < len && out->n < MAX_RESPS) {
    soon_http_parser p;
    assert_int_equal(
        soon_http_parser_init(&p, SOON_HTTP_RESPONSE, hs, 64, &roomy), 0);
    p.head_request = heads && heads[out->n];
    ssize_t h = soon_http_parse_head(&p, buf + off, len - off);
    if (h == 0)
      break;
    if (h < 0)
      fail_msg("malformed response at byte %zu: %s at %zu", off,
               soon_err_name((int)h), p.error_offset);
    size_t pos = off + (size_t)h;
    resp r = {.status = p.status, .flags = p.flags};
    while (!soon_http_message_done(&p) && pos < len) {
      soon_http_span d;
      ssize_t k = soon_http_parse_body(&p, buf + pos, len - pos, &d);
      if (k < 0)
        fail_msg("malformed response body: %s", soon_err_name((int)k));
      if (d.len)
        append(&r.body, &r.body_len, d.base, d.len);
      pos += (size_t)k;
    }
    if (!soon_http_message_done(&p)) {
      free(r.body);
      break;
    }
    off = pos;
    if (r.status < 200) {
      out->interim++;
      free(r.body);
      continue;
    }
    out->r[out->n++] = r;
  }
  out->used = off;
}

static bool body_is(const resp *r, const char *s) {
  return r->body_len == strlen(s) && memcmp(r->body, s, r->body_len) == 0;
}

/* A final response of this status that closes the connection. */
static void assert_closing(const resp *r, int status) {
  assert_int_equal(r->status, status);
  assert_true(r->flags & SOON_HTTP_CONN_CLOSE);
}

/* ------------------------------------------------------------ the server */

typedef struct srv srv;
typedef void (*cmd_fn)(srv *s);

#define MAX_PARKED 16

/* A server on a loop in its own thread, and what its handler saw. Fields
 * the main thread reads while the loop runs are atomic; the rest belong to
 * the loop thread, or are read after it ended. */
struct srv {
  pthread_t thread;
  soon_loop loop;
  soon_async async; /* the main thread's commands */
  soon_timer tick;  /* a metronome for the main thread (slowloris) */
  soon_timer later; /* answers the parked requests */
  soon_http_server *server;
  soon_http_server_options opts;
  char dir[64], path[96]; /* a Unix socket, when dir is set */
  int port;
  int setup_rc, loop_close_rc;
  bool closing;
  sem_t ready, done, event, ticks;
  _Atomic(cmd_fn) cmd;
  /* graceful shutdown */
  uint64_t grace_ms;
  int close_rc, close_again_rc, close_cbs_in_call;
  /* what the handler saw */
  atomic_int handled;   /* handler calls */
  atomic_int smuggled;  /* ... for the target /smuggled */
  atomic_int parked;    /* ... for /t-later (answered on command) */
  atomic_int never;     /* ... for /t-never (answered after the close) */
  atomic_int close_cbs; /* the server's close callback */
  soon_http_req *parked_reqs[MAX_PARKED];
  unsigned nparked;
  soon_http_req *held_reqs[MAX_PARKED]; /* /t-never */
  unsigned nheld;
  atomic_int held_refused;  /* held requests whose late answer failed */
  atomic_int answer_errors; /* parked requests whose answer failed */
  atomic_int answered;      /* parked requests answered (or tried) */
  atomic_int stream_done;   /* /t-stream: the endless response failed */
  atomic_int stream_status;
  atomic_long stream_bytes;
  atomic_int body_started; /* /t-body (stream_body): the handler ran */
  atomic_int body_done;    /* ... and the body ended */
  atomic_int body_status;
  atomic_long body_bytes;
  atomic_int body_calls_after; /* body callbacks after the last one */
};

/* Tell the main thread something happened; counters go up first. */
static void post(srv *s, atomic_int *counter) {
  atomic_fetch_add(counter, 1);
  sem_post(&s->event);
}

static bool span_is(soon_http_span sp, const char *s) {
  return sp.len == strlen(s) && memcmp(sp.base, s, sp.len) == 0;
}

/* The ordinary answer: 200, and as body the target and the body's size,
 * so the client can tell which request each response answers. */
static int answer(soon_http_req *req) {
  size_t n = req->target.len + 32;
  char *b = malloc(n);
  if (!b)
    return -ENOMEM;
  int len = snprintf(b, n, "%.*s %zu", (int)req->target.len, req->target.base,
                     req->body.len);
  static const soon_http_header h[] = {
      {{"Content-Type", 12}, {"text/plain", 10}}};
  int rc = soon_http_respond(req, 200, h, 1, b, (size_t)len);
  free(b);
  return rc;
}

/* The body of /t-big: more than a small receive window takes at once. */
#define BIG_BODY (1u << 20)
static char big_body[BIG_BODY];

/* 64 KiB a write, forever: what only a send timeout or a reset stops. */
static char stream_chunk[64 << 10];

static void stream_failed(soon_http_req *req, int status) {
  srv *s = soon_http_server_data(req->server);
  atomic_store(&s->stream_status, status);
  post(s, &s->stream_done);
}

static void stream_more(soon_http_req *req, int status) {
  srv *s = soon_http_server_data(req->server);
  if (status < 0) {
    stream_failed(req, status);
    return;
  }
  atomic_fetch_add(&s->stream_bytes, (long)sizeof stream_chunk);
  int rc = soon_http_write(req, stream_chunk, sizeof stream_chunk, stream_more);
  if (rc < 0)
    stream_failed(req, rc);
}

static int stream_start(soon_http_req *req) {
  int rc = soon_http_write_head(req, 200, NULL, 0, -1);
  if (rc == 0)
    rc = soon_http_write(req, stream_chunk, sizeof stream_chunk, stream_more);
  if (rc < 0)
    stream_failed(req, rc);
  return 0;
}

static void body_read(soon_http_req *req, int status, const char *data,
                      size_t len) {
  srv *s = soon_http_server_data(req->server);
  (void)data;
  if (atomic_load(&s->body_done)) {
    atomic_fetch_add(&s->body_calls_after, 1);
    return;
  }
  if (status < 0 || len == 0) {
    atomic_store(&s->body_status, status);
    if (status == 0)
      answer(req);
    post(s, &s->body_done);
    return;
  }
  atomic_fetch_add(&s->body_bytes, (long)len);
}

/* One handler for every test; the path picks the behaviour. No assertion
 * here: this is the loop's thread. */
static int handler(soon_http_req *req) {
  srv *s = soon_http_server_data(req->server);
  atomic_fetch_add(&s->handled, 1);
  if (span_is(req->path, "/smuggled"))
    atomic_fetch_add(&s->smuggled, 1);
  if (span_is(req->path, "/t-later") && s->nparked < MAX_PARKED) {
    s->parked_reqs[s->nparked++] = req;
    post(s, &s->parked);
    return 0;
  }
  if (span_is(req->path, "/t-never") && s->nheld < MAX_PARKED) {
    s->held_reqs[s->nheld++] = req;
    post(s, &s->never);
    return 0;
  }
  if (span_is(req->path, "/t-stream"))
    return stream_start(req);
  if (span_is(req->path, "/t-big"))
    return soon_http_respond(req, 200, NULL, 0, big_body, sizeof big_body);
  if (span_is(req->path, "/t-body")) {
    post(s, &s->body_started);
    return soon_http_req_read(req, body_read);
  }
  return answer(req);
}

static void answer_parked(srv *s) {
  for (unsigned i = 0; i < s->nparked; i++) {
    if (answer(s->parked_reqs[i]) != 0)
      atomic_fetch_add(&s->answer_errors, 1);
    post(s, &s->answered);
  }
  s->nparked = 0;
}

static void later_fired(soon_timer *t) { answer_parked(t->data); }

static void tick_fired(soon_timer *t) {
  srv *s = t->data;
  sem_post(&s->ticks);
}

static void server_closed(soon_http_server *server) {
  srv *s = soon_http_server_data(server);
  post(s, &s->close_cbs);
}

static void on_command(soon_async *a) {
  srv *s = a->data;
  cmd_fn fn = atomic_exchange(&s->cmd, NULL);
  if (fn) {
    fn(s);
    sem_post(&s->done);
  }
}

static void close_own_handles(srv *s) {
  soon_close((soon_handle *)&s->async, NULL);
  soon_close((soon_handle *)&s->tick, NULL);
  soon_close((soon_handle *)&s->later, NULL);
}

static int srv_listen(srv *s) {
  int rc = soon_http_server_new(&s->loop, &s->opts, handler, &s->server);
  if (rc != 0)
    return rc;
  if (s->dir[0])
    rc = soon_http_server_listen_unix(s->server, s->path);
  else
    rc = soon_http_server_listen(s->server, "127.0.0.1", 0);
  if (rc == 0 && !s->dir[0]) {
    s->port = soon_http_server_port(s->server);
    rc = s->port > 0 ? 0 : s->port;
  }
  if (rc != 0) {
    s->closing = true;
    soon_http_server_close(s->server, 0, server_closed);
  }
  return rc;
}

static void *srv_main(void *arg) {
  srv *s = arg;
  s->setup_rc = soon_loop_init(&s->loop);
  if (s->setup_rc != 0) {
    sem_post(&s->ready);
    return NULL;
  }
  soon_async_init(&s->loop, &s->async, on_command);
  soon_timer_init(&s->loop, &s->tick);
  soon_timer_init(&s->loop, &s->later);
  s->async.data = s->tick.data = s->later.data = s;
  s->setup_rc = srv_listen(s);
  if (s->setup_rc != 0)
    close_own_handles(s);
  sem_post(&s->ready);
  soon_run(&s->loop, SOON_RUN_DEFAULT);
  s->loop_close_rc = soon_loop_close(&s->loop);
  return NULL;
}

static void wait_sem(sem_t *sem, const char *what) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += WAIT_S;
  int r;
  while ((r = sem_timedwait(sem, &ts)) != 0 && errno == EINTR)
    ;
  if (r != 0)
    fail_msg("waited %d s for %s", WAIT_S, what);
}

/* Wait until the loop thread has counted n of something. */
static void wait_count(srv *s, atomic_int *counter, int n, const char *what) {
  while (atomic_load(counter) < n)
    wait_sem(&s->event, what);
}

static void join_bounded(srv *s) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += WAIT_S;
  if (pthread_timedjoin_np(s->thread, NULL, &ts) != 0)
    fail_msg("the server's loop did not end in %d s", WAIT_S);
}

/* Start a server with these options (NULL: the defaults); unix: on a Unix
 * socket in a fresh directory. Returns soon_http_server_new's or listen's
 * error, the thread already gone then. */
static int srv_try_start(srv *s, const soon_http_server_options *opts,
                         bool unix_socket) {
  memset(s, 0, sizeof *s);
  if (opts)
    s->opts = *opts;
  s->opts.data = s;
  if (unix_socket) {
    strcpy(s->dir, "/tmp/soon-http-limits-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    snprintf(s->path, sizeof s->path, "%s/sock", s->dir);
  }
  sem_init(&s->ready, 0, 0);
  sem_init(&s->done, 0, 0);
  sem_init(&s->event, 0, 0);
  sem_init(&s->ticks, 0, 0);
  assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
  wait_sem(&s->ready, "the server to start");
  if (s->setup_rc != 0)
    join_bounded(s);
  return s->setup_rc;
}

static void srv_start(srv *s, const soon_http_server_options *opts,
                      bool unix_socket) {
  int rc = srv_try_start(s, opts, unix_socket);
  if (rc != 0)
    fail_msg("server start: %s", soon_err_name(rc));
}

/* Run fn on the loop's thread, and wait until it has. */
static void in_loop(srv *s, cmd_fn fn) {
  atomic_store(&s->cmd, fn);
  assert_int_equal(soon_async_send(&s->async), 0);
  wait_sem(&s->done, "the loop to run a command");
}

static void cmd_stop(srv *s) {
  if (!s->closing) {
    s->closing = true;
    s->close_rc = soon_http_server_close(s->server, 0, server_closed);
  }
  close_own_handles(s);
}

/* Close the server (at once, unless a graceful close is under way), end
 * its loop, and check that its close callback ran once and that nothing
 * was left open on the loop. */
static void srv_stop(srv *s) {
  in_loop(s, cmd_stop);
  join_bounded(s);
  assert_int_equal(s->close_rc, 0);
  assert_int_equal(atomic_load(&s->close_cbs), 1);
  assert_int_equal(s->loop_close_rc, 0);
  if (s->dir[0]) {
    unlink(s->path);
    rmdir(s->dir);
  }
  sem_destroy(&s->ready);
  sem_destroy(&s->done);
  sem_destroy(&s->event);
  sem_destroy(&s->ticks);
}

static void cmd_answer_parked(srv *s) { answer_parked(s); }

/* The requests cut under their handler are answered at last: the answer
 * must fail, and it releases what the server kept for them. */
static void cmd_answer_held(srv *s) {
  for (unsigned i = 0; i < s->nheld; i++)
    if (answer(s->held_reqs[i]) < 0)
      atomic_fetch_add(&s->held_refused, 1);
  s->nheld = 0;
}

static void cmd_tick_start(srv *s) {
  if (soon_timer_start(&s->tick, tick_fired, 20, 20) != 0)
    sem_post(&s->ticks); /* cannot happen; the main thread must not hang */
}

static void cmd_tick_stop(srv *s) { soon_timer_stop(&s->tick); }

static void graceful_close(srv *s, uint64_t grace_ms);

/* ------------------------------------------------------------ the client */

/* What one connection received, and how it ended. */
typedef struct rx {
  char *buf;
  size_t len;
  int end; /* 0 while open, 1 after EOF, or -errno (-ECONNRESET) */
} rx;

static void rx_free(rx *r) {
  free(r->buf);
  memset(r, 0, sizeof *r);
}

static void bound_waits(int fd) {
  struct timeval tv = {.tv_sec = WAIT_S};
  assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
  assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), 0);
}

/* A connected blocking socket; rcvbuf > 0 shrinks its receive buffer
 * first (before the handshake, so the window is small from the start). */
static int cl_connect_buf(const srv *s, int rcvbuf) {
  int fd;
  if (s->dir[0]) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, s->path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
      fail_msg("connect %s: %s", s->path, strerror(errno));
  } else {
    struct sockaddr_in a;
    assert_int_equal(soon_ip4_addr("127.0.0.1", s->port, &a), 0);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (rcvbuf > 0)
      assert_int_equal(
          setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
      fail_msg("connect to port %d: %s", s->port, strerror(errno));
  }
  bound_waits(fd);
  return fd;
}

static int cl_connect(const srv *s) { return cl_connect_buf(s, 0); }

/* Send everything, or stop at the first error: a server may rightly close
 * before it read all (a 413 before the body). 0 or -errno. */
static int cl_send(int fd, const void *p, size_t n) {
  const char *b = p;
  while (n > 0) {
    ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0)
      return -errno;
    b += k;
    n -= (size_t)k;
  }
  return 0;
}

static int cl_send_str(int fd, const char *s) {
  return cl_send(fd, s, strlen(s));
}

/* One blocking read into r. A read that times out fails the test: the
 * server neither answered nor closed. */
static void cl_read(int fd, rx *r) {
  char tmp[16384];
  ssize_t k;
  while ((k = recv(fd, tmp, sizeof tmp, 0)) < 0 && errno == EINTR)
    ;
  if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    fail_msg("no byte and no close from the server in %d s", WAIT_S);
  if (k < 0)
    r->end = -errno;
  else if (k == 0)
    r->end = 1;
  else
    append(&r->buf, &r->len, tmp, (size_t)k);
}

/* Read until the server closes (EOF, or a reset after its last bytes). */
static void cl_read_to_end(int fd, rx *r) {
  while (!r->end)
    cl_read(fd, r);
}

/* Read until n final responses are in (or the connection ends). */
static void cl_read_resps(int fd, rx *r, unsigned n, const bool *heads,
                          resps *out) {
  for (;;) {
    parse_resps(r->buf, r->len, heads, out);
    if (out->n >= n || r->end)
      return;
    resps_free(out);
    cl_read(fd, r);
  }
}

/* Whether the server has sent a byte or closed: never blocks. */
static bool cl_pending(int fd) {
  char b;
  ssize_t k = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return k >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Vanish: an RST instead of a FIN, whatever is queued. */
static void cl_reset(int fd) {
  struct linger l = {.l_onoff = 1, .l_linger = 0};
  assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l), 0);
  close_fd(fd);
}

/* A whole exchange on a fresh connection: one request, its response read,
 * the connection closed by the client. */
static void cl_get_ok(const srv *s, const char *path) {
  char req[256], want[256];
  snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", path);
  snprintf(want, sizeof want, "%s 0", path);
  int fd = cl_connect(s);
  assert_int_equal(cl_send_str(fd, req), 0);
  rx r = {0};
  resps rs;
  cl_read_resps(fd, &r, 1, NULL, &rs);
  assert_int_equal(rs.n, 1);
  assert_int_equal(rs.r[0].status, 200);
  assert_true(body_is(&rs.r[0], want));
  resps_free(&rs);
  rx_free(&r);
  close_fd(fd);
}

/* ------------------------------------------------------------ slowloris */

/* Heads dripped a byte per tick of the server loop's own 20 ms timer: each
 * needs over 2 s to finish, the header timeout is 200 ms. Both timers are on
 * one loop, so the cut comes first by deadline order, not by luck. Between
 * ticks a normal client is served on fresh connections. */
#define SLOW 4

static void test_slowloris(void **state) {
  (void)state;
  srv s;
  soon_http_server_options o = {.header_timeout_ms = 200,
                                .keepalive_timeout_ms = 200};
  srv_start(&s, &o, false);
  char head[256];
  int hl =
      snprintf(head, sizeof head,
               "GET /slow HTTP/1.1\r\nHost: h\r\nX-Slow: %0120d\r\n\r\n", 0);
  int slow[SLOW];
  size_t pos[SLOW];
  bool open[SLOW];
  for (int i = 0; i < SLOW; i++) {
    slow[i] = cl_connect(&s);
    assert_int_equal(cl_send(slow[i], head, 1), 0);
    pos[i] = 1;
    open[i] = true;
  }
  int silent = cl_connect(&s); /* connects, never sends a byte */
  bool silent_open = true;
  in_loop(&s, cmd_tick_start);
  int nopen = SLOW, normal = 0;
  while (nopen > 0 || silent_open) {
    wait_sem(&s.ticks, "a tick");
    for (int i = 0; i < SLOW; i++) {
      if (!open[i])
        continue;
      if (cl_pending(slow[i])) {
        open[i] = false;
        nopen--;
        continue;
      }
      if (pos[i] == (size_t)hl)
        fail_msg("slow head %d sent whole, never cut", i);
      cl_send(slow[i], head + pos[i]++, 1);
    }
    if (silent_open && cl_pending(silent))
      silent_open = false;
    char path[32];
    snprintf(path, sizeof path, "/normal-%d", normal++);
    cl_get_ok(&s, path);
  }
  in_loop(&s, cmd_tick_stop);
  print_message("slowloris: %d normal requests served meanwhile\n", normal);
  for (int i = 0; i < SLOW; i++) {
    rx r = {0};
    resps rs;
    if (pos[i] == (size_t)hl)
      fail_msg("slow head %d sent whole: never cut", i);
    cl_read_to_end(slow[i], &r);
    parse_resps(r.buf, r.len, NULL, &rs);
    assert_int_equal(rs.n, 1);
    assert_closing(&rs.r[0], 408);
    assert_int_equal(rs.used, r.len);
    resps_free(&rs);
    rx_free(&r);
    close_fd(slow[i]);
  }
  rx r = {0};
  cl_read_to_end(silent, &r);
  assert_int_equal(r.len, 0); /* no 408 where no byte came */
  rx_free(&r);
  close_fd(silent);
  assert_int_equal(atomic_load(&s.handled), normal);
  srv_stop(&s);
}

/* ------------------------------------------------------------ timeouts */

static const char body_head[] = "POST /t-body HTTP/1.1\r\nHost: h\r\n"
                                "Content-Length: 100\r\n\r\n0123456789";

/* A body that stops coming: 408 and close, the handler never called. */
static void test_body_timeout(void **state) {
  (void)state;
  srv s;
  soon_http_server_options o = {.body_timeout_ms = 50};
  srv_start(&s, &o, false);
  int fd = cl_connect(&s);
  assert_int_equal(cl_send_str(fd, body_head), 0);
  rx r = {0};
  resps rs;
  cl_read_to_end(fd, &r);
  parse_resps(r.buf, r.len, NULL, &rs);
  assert_int_equal(rs.n, 1);
  assert_closing(&rs.r[0], 408);
  assert_int_equal(rs.used, r.len);
  assert_int_equal(atomic_load(&s.handled), 0);
  resps_free(&rs);
  rx_free(&r);
  close_fd(fd);
  cl_get_ok(&s, "/after");
  srv_stop(&s);
}

/* The same with stream_body: the body callback has the 10 bytes, then one
 * failure, then nothing; the connection is dropped. */
static void test_body_timeout_streamed(void **state) {
  (void)state;
  srv s;
  soon_http_server_options o = {.body_timeout_ms = 50, .stream_body = true};
  srv_start(&s, &o, false);
  int fd = cl_connect(&s);
  assert_int_equal(cl_send_str(fd, body_head), 0);
  rx r = {0};
  resps rs;
  cl_read_to_end(fd, &r);
  wait_count(&s, &s.body_done, 1, "the body callback's end");
  assert_int_equal(atomic_load(&s.body_bytes), 10);
  assert_true(atomic_load(&s.body_status) < 0);
  /* The handler never answered: nothing, or the server's own 408. */
  parse_resps(r.buf, r.len, NULL, &rs);
  assert_int_equal(rs.used, r.len);
  assert_true(rs.n <= 1);
  if (rs.n == 1)
    assert_closing(&rs.r[0], 408);
  print_message("streamed body timeout: %s\n",
                rs.n ? "408 and close" : "closed without a response");
  resps_free(&rs);
  rx_free(&r);
  close_fd(fd);
  srv_stop(&s);
  assert_int_equal(atomic_load(&s.body_calls_after), 0);
}

/* One request answered, then silence: closed, nothing more sent. */
static void run_keepalive_timeout(bool unix_socket) {
  srv s;
  soon_http_server_options o = {.keepalive_timeout_ms = 50};
  srv_start(&s, &o, unix_socket);
  int fd = cl_connect(&s);
  assert_int_equal(cl_send_str(fd, "GET /one HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
  rx r = {0};
  resps rs;
  cl_read_resps(fd, &r, 1, NULL, &rs);
  assert_int_equal(rs.n, 1);
  assert_int_equal(rs.r[0].status, 200);
  assert_false(rs.r[0].flags & SOON_HTTP_CONN_CLOSE);
  cl_read_to_end(fd, &r);
  assert_int_equal(r.end, 1);       /* a clean close */
  assert_int_equal(rs.used, r.len); /* and not a byte after the response */
  resps_free(&rs);
  rx_free(&r);
  close_fd(fd);
  assert_int_equal(atomic_load(&s.handled), 1);
  srv_stop(&s);
}

static void test_keepalive_timeout(void **state) {
  (void)state;
  run_keepalive_timeout(false);
}

static void test_keepalive_timeout_unix(void **state) {
  (void)state;
  run_keepalive_timeout(true);
}

/* A client that never reads an endless response: once the kernel's buffers
 * are full no write progresses, and the send timeout ends it; the handler's
 * write callback says so. The server serves others after. */
static void test_send_timeout(void **state) {
  (void)state;
  srv s;
  soon_http_server_options o = {.send_timeout_ms = 50};
  srv_start(&s, &o, false);
  int fd = cl_connect_buf(&s, 4096);
  assert_int_equal(cl_send_str(fd, "GET /t-stream HTTP/1.1\r\nHost: h\r\n\r\n"),
                   0);
  wait_count(&s, &s.stream_done, 1, "the stream to fail");
  assert_true(atomic_load(&s.stream_status) < 0);
  assert_true(atomic_load(&s.stream_bytes) > 0);
  rx r = {0};
  cl_read_to_end(fd, &r);
  assert_true(r.len >= 12);
  assert_memory_equal(r.buf, "HTTP/1.1 200", 12);
  print_message("send timeout: %zu bytes reached the client, then %s\n", r.len,
                r.end == 1 ? "EOF" : soon_err_name(r.end));
  rx_free(&r);
  close_fd(fd);
  cl_get_ok(&s, "/after");
  srv_stop(&s);
}

/* A client that pipelines requests as fast as it can and never reads: the
 * server must stop reading (the client's send blocks) rather than queue
 * answers without bound, and end the connection at the send timeout. The
 * client cannot see that end without reading (which would let the server
 * go on), so the server is closed with a grace far longer than WAIT_S: its
 * close callback comes in time only if the send timeout cut the one
 * connection. The heap the process gains meanwhile is the server's
 * buffering. */
#define FLOOD_MAX (64u << 20) /* sent without a push-back: a failure */
/* What the server may hold for one client: its own buffers are 64 KiB or
 * so, but on io_uring a stream keeps what the kernel received before a
 * read_stop's cancel landed, up to the loop's 4 MiB buffer ring, in a
 * stash whose capacity doubles (8 MiB). A server that queued answers to
 * 4 MiB of small requests would hold 16 MiB and more. */
#define FLOOD_HEAP (16l << 20)

static void test_pipeline_flood(void **state) {
  (void)state;
  srv s;
  /* max_requests out of reach: else the server answers 1000, closes and
   * lingers, reading and dropping what comes. */
  soon_http_server_options o = {.send_timeout_ms = 50,
                                .max_requests = 1u << 30};
  srv_start(&s, &o, false);
  int fd = cl_connect_buf(&s, 4096);
  static const char one[] = "GET /f HTTP/1.1\r\nHost: h\r\n\r\n";
  char burst[64 * (sizeof one - 1)];
  for (size_t i = 0; i < 64; i++)
    memcpy(burst + i * (sizeof one - 1), one, sizeof one - 1);
  long live0 = atomic_load(&soon_test_heap_live);
  atomic_store(&soon_test_heap_peak, live0);
  size_t sent = 0, off = 0;
  for (;;) {
    ssize_t k =
        send(fd, burst + off, sizeof burst - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0) /* EAGAIN: pushed back; an error: cut already */
      break;
    sent += (size_t)k;
    off = (off + (size_t)k) % sizeof burst;
    if (sent > FLOOD_MAX)
      fail_msg("%zu bytes of requests taken, never a push-back", sent);
  }
  graceful_close(&s, 60000);
  wait_count(&s, &s.close_cbs, 1, "the send timeout to cut the flood");
  long grown = atomic_load(&soon_test_heap_peak) - live0;
  rx r = {0};
  cl_read_to_end(fd, &r);
  print_message("flood: %zu bytes of requests sent, %d handled, %zu bytes of "
                "answers, heap +%ld KiB at most\n",
                sent, atomic_load(&s.handled), r.len, grown >> 10);
  assert_true(grown < FLOOD_HEAP);
  assert_true(atomic_load(&s.handled) < (int)(sent / (sizeof one - 1)));
  rx_free(&r);
  close_fd(fd);
  srv_stop(&s);
}

/* ------------------------------------------------------------ many */

#define MANY 1000
#define MANY_FD_BASE 1100 /* the clients' fds, above the server's */

/* 1,000 keep-alive connections open at once, two requests each: all the
 * first requests are answered before any second one is sent, so the
 * server holds every connection at the same time. The clients' fds are
 * moved above 1100, which leaves the server's below FD_SETSIZE: select
 * runs it too. */
static void test_thousand_connections(void **state) {
  (void)state;
  struct rlimit rl;
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
  rlim_t need = MANY_FD_BASE + MANY + 64;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
      print_message("RLIMIT_NOFILE hard limit %lu < %lu: skipped\n",
                    (unsigned long)rl.rlim_max, (unsigned long)need);
      skip();
    }
    struct rlimit up = {need, rl.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &up), 0);
  }
  srv s;
  soon_http_server_options o = {.backlog = 1024};
  srv_start(&s, &o, false);
  int *fds = calloc(MANY, sizeof *fds);
  rx *rxs = calloc(MANY, sizeof *rxs);
  assert_non_null(fds);
  assert_non_null(rxs);
  for (int i = 0; i < MANY; i++) {
    int fd = cl_connect(&s);
    fds[i] = fcntl(fd, F_DUPFD_CLOEXEC, MANY_FD_BASE);
    assert_true(fds[i] >= MANY_FD_BASE);
    close_fd(fd);
  }
  for (int round = 0; round < 2; round++) {
    char req[96], want[64];
    for (int i = 0; i < MANY; i++) {
      snprintf(req, sizeof req, "GET /c%d-%d HTTP/1.1\r\nHost: h\r\n\r\n", i,
               round);
      assert_int_equal(cl_send_str(fds[i], req), 0);
    }
    for (int i = 0; i < MANY; i++) {
      resps rs;
      cl_read_resps(fds[i], &rxs[i], (unsigned)round + 1, NULL, &rs);
      assert_int_equal(rs.n, round + 1);
      const resp *last = &rs.r[round];
      snprintf(want, sizeof want, "/c%d-%d 0", i, round);
      assert_int_equal(last->status, 200);
      assert_false(last->flags & SOON_HTTP_CONN_CLOSE);
      assert_true(body_is(last, want));
      assert_int_equal(rxs[i].end, 0);
      resps_free(&rs);
    }
  }
  for (int i = 0; i < MANY; i++) {
    close_fd(fds[i]);
    rx_free(&rxs[i]);
  }
  free(fds);
  free(rxs);
  assert_int_equal(atomic_load(&s.handled), 2 * MANY);
  srv_stop(&s);
  if (rl.rlim_cur < need)
    setrlimit(RLIMIT_NOFILE, &rl);
}

/* max_connections 4: a fifth and a sixth connection wait (the kernel has
 * them, in the backlog) while four are served; each is served once one of
 * the four closes. "Not served" is checked after round trips on the four:
 * a correct server passes always, a wrong one fails almost always. */
static void test_max_connections(void **state) {
  (void)state;
  srv s;
  soon_http_server_options o = {.max_connections = 4};
  srv_start(&s, &o, false);
  int c[4], extra[2];
  rx r[4] = {{0}};
  resps rs;
  for (int i = 0; i < 4; i++) {
    c[i] = cl_connect(&s);
    assert_int_equal(cl_send_str(c[i], "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"),
                     0);
    cl_read_resps(c[i], &r[i], 1, NULL, &rs);
    assert_int_equal(rs.n, 1);
    assert_int_equal(rs.r[0].status, 200);
    resps_free(&rs);
  }
  for (int k = 0; k < 2; k++) {
    extra[k] = cl_connect(&s);
    char req[64];
    snprintf(req, sizeof req, "GET /extra%d HTTP/1.1\r\nHost: h\r\n\r\n", k);
    assert_int_equal(cl_send_str(extra[k], req), 0);
  }
  for (int i = 0; i < 4; i++) {
    assert_int_equal(cl_send_str(c[i], "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"),
                     0);
    cl_read_resps(c[i], &r[i], 2, NULL, &rs);
    assert_int_equal(rs.n, 2);
    assert_int_equal(rs.r[1].status, 200);
    resps_free(&rs);
  }
  assert_false(cl_pending(extra[0]));
  assert_false(cl_pending(extra[1]));
  assert_int_equal(atomic_load(&s.handled), 8);
  for (int k = 0; k < 2; k++) {
    close_fd(c[k]); /* one place frees up: the next waiting one is served */
    char want[32];
    snprintf(want, sizeof want, "/extra%d 0", k);
    rx e = {0};
    cl_read_resps(extra[k], &e, 1, NULL, &rs);
    assert_int_equal(rs.n, 1);
    assert_int_equal(rs.r[0].status, 200);
    assert_true(body_is(&rs.r[0], want));
    resps_free(&rs);
    rx_free(&e);
    if (k == 0) /* the sixth still waits: four are open again */
      assert_false(cl_pending(extra[1]));
  }
  for (int i = 2; i < 4; i++)
    close_fd(c[i]);
  for (int i = 0; i < 4; i++)
    rx_free(&r[i]);
  close_fd(extra[0]);
  close_fd(extra[1]);
  assert_int_equal(atomic_load(&s.handled), 10);
  srv_stop(&s);
}

/* ------------------------------------------------------------ the corpus */

/* Every request case of the parser's smuggling.txt and limits.txt, alone
 * and with "GET /smuggled" pipelined after it, sent to a server with the
 * case's limits. What the server must do is read off the parser's own
 * verdict on the same bytes (http_drive): the messages it accepts before
 * the first rejection are each handled and answered 200 in order; the
 * rejection is answered with soon_http_error_status's code, Connection:
 * close, and the connection closed; nothing after it reaches the handler. */
typedef struct corpus_stats {
  int rejected, accepted, closed_early;
  int skip_truncated, skip_upgrade, skip_expect, skip_limits;
} corpus_stats;

static const char smuggled[] = "GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n";

static void check_case(srv *s, const http_case *c, const char *in, size_t len,
                       corpus_stats *st) {
  http_result res = http_drive(SOON_HTTP_REQUEST, false, in, len, NULL, 0,
                               HTTP_DRIVE_SPANS, &c->limits, c->max_headers);
  unsigned ok = 0, want_smuggled = 0;
  int err = 0;
  bool closes = false, heads[MAX_RESPS] = {false};
  for (size_t i = 0; i < res.nmsgs && !closes; i++) {
    const http_message *m = &res.msgs[i];
    if (m->error) {
      err = m->error;
      break;
    }
    if (m->flags & SOON_HTTP_UPGRADE) {
      st->skip_upgrade++; /* the bytes after it are the handler's */
      goto out;
    }
    if (m->flags & SOON_HTTP_EXPECT_OTHER) {
      st->skip_expect++; /* the server's 417 */
      goto out;
    }
    assert_true(ok < MAX_RESPS - 1);
    heads[ok++] = strcmp(m->method, "HEAD") == 0;
    want_smuggled += strcmp(m->target, "/smuggled") == 0;
    closes = !(m->flags & SOON_HTTP_KEEP_ALIVE);
  }
  if (err == SOON_HTTP_ETRUNCATED) {
    st->skip_truncated++; /* the server waits for the rest: no verdict */
    goto out;
  }
  int handled0 = atomic_load(&s->handled),
      smuggled0 = atomic_load(&s->smuggled);
  int fd = cl_connect(s);
  cl_send(fd, in, len); /* an early close may cut it: fine */
  rx r = {0};
  resps rs;
  if (err || closes)
    cl_read_to_end(fd, &r);
  parse_resps(r.buf, r.len, heads, &rs);
  if (!err && !closes) /* all accepted, the connection stays */
    cl_read_resps(fd, &r, ok, heads, &rs);
  if (rs.n != ok + (err != 0) || rs.used != r.len)
    fail_msg("%s (%s, %zu bytes): %u responses in %zu/%zu bytes, want %u "
             "and %s",
             c->where, c->name, len, rs.n, rs.used, r.len, ok,
             err ? soon_err_name(err) : "none");
  for (unsigned i = 0; i < ok; i++) {
    const http_message *m = &res.msgs[i];
    char want[64];
    snprintf(want, sizeof want, " %zu", m->body_len);
    const resp *p = &rs.r[i];
    assert_int_equal(p->status, 200);
    if (!heads[i]) {
      size_t tl = strlen(m->target);
      assert_int_equal(p->body_len, tl + strlen(want));
      assert_memory_equal(p->body, m->target, tl);
      assert_memory_equal(p->body + tl, want, strlen(want));
    }
  }
  if (err) {
    if (rs.r[ok].status != soon_http_error_status(err) ||
        !(rs.r[ok].flags & SOON_HTTP_CONN_CLOSE))
      fail_msg("%s (%s): %s answered %d%s, want %d with Connection: close",
               c->where, c->name, soon_err_name(err), rs.r[ok].status,
               rs.r[ok].flags & SOON_HTTP_CONN_CLOSE ? " (close)" : "",
               soon_http_error_status(err));
    st->rejected++;
  } else if (closes) {
    assert_true(rs.r[ok - 1].flags & SOON_HTTP_CONN_CLOSE);
    st->closed_early++;
  } else {
    st->accepted++;
  }
  if (atomic_load(&s->handled) - handled0 != (int)ok)
    fail_msg("%s (%s): %d handler calls, want %u", c->where, c->name,
             atomic_load(&s->handled) - handled0, ok);
  assert_int_equal(atomic_load(&s->smuggled) - smuggled0, (int)want_smuggled);
  resps_free(&rs);
  rx_free(&r);
  close_fd(fd);
out:
  http_result_free(&res);
}

/* Whether c comes from this corpus file (where is "dir/file.txt:line"). */
static bool from_file(const http_case *c, const char *file) {
  const char *slash = strrchr(c->where, '/');
  const char *base = slash ? slash + 1 : c->where;
  size_t n = strlen(file);
  return strncmp(base, file, n) == 0 && base[n] == ':';
}

static void test_corpus(void **state) {
  (void)state;
  http_case *cases;
  size_t n;
  http_corpus_load(SOON_HTTP_CORPUS, &cases, &n);
  corpus_stats st = {0};
  srv def;
  srv_start(&def, NULL, false);
  int ncases = 0;
  for (size_t i = 0; i < n; i++) {
    const http_case *c = &cases[i];
    if (c->type != SOON_HTTP_REQUEST ||
        !(from_file(c, "smuggling.txt") || from_file(c, "limits.txt")))
      continue;
    ncases++;
    srv own, *s = &def;
    if (c->has_limits) {
      soon_http_server_options o = {.limits = c->limits,
                                    .max_headers = c->max_headers};
      int rc = srv_try_start(&own, &o, false);
      if (rc != 0) {
        print_message("%s (%s): the server refuses its limits (%s)\n", c->where,
                      c->name, soon_err_name(rc));
        st.skip_limits++;
        continue;
      }
      s = &own;
    }
    check_case(s, c, c->input, c->input_len, &st);
    size_t len = c->input_len + sizeof smuggled - 1;
    char *two = malloc(len);
    assert_non_null(two);
    memcpy(two, c->input, c->input_len);
    memcpy(two + c->input_len, smuggled, sizeof smuggled - 1);
    check_case(s, c, two, len, &st);
    free(two);
    if (s == &own)
      srv_stop(&own);
  }
  srv_stop(&def);
  print_message("corpus: %d request cases, %d inputs rejected as the parser "
                "does, %d accepted, %d closed by a message before; skipped: "
                "%d truncated, %d upgrades, %d other Expect, %d limits\n",
                ncases, st.rejected, st.accepted, st.closed_early,
                st.skip_truncated, st.skip_upgrade, st.skip_expect,
                st.skip_limits);
  assert_true(st.rejected > 200);
  http_corpus_free(cases, n);
}

/* A rejected request pipelined behind a large response, and more bytes
 * sent once the response is coming: the client, with a small receive
 * window, still gets the whole response, then the 400, then a clean end.
 * A server that has closed its socket by then makes the kernel answer
 * the late bytes with a reset and drop what it still had to send: it must
 * half-close and read on instead (a lingering close, as nginx's). */
static void test_reject_behind_big_response(void **state) {
  (void)state;
  srv s;
  srv_start(&s, NULL, false);
  int fd = cl_connect_buf(&s, 4096);
  assert_int_equal(cl_send_str(fd, "GET /t-big HTTP/1.1\r\nHost: h\r\n\r\n"
                                   "GET /bad HTTP/1.1\r\nHost: h\r\n"
                                   "Content-Length: 1\r\nContent-Length: 1\r\n"
                                   "\r\n"),
                   0);
  rx r = {0};
  resps rs;
  while (r.len < (64u << 10) && !r.end)
    cl_read(fd, &r);
  static char tail[16 << 10];
  memset(tail, 'x', sizeof tail);
  cl_send(fd, tail, sizeof tail);
  cl_read_to_end(fd, &r);
  parse_resps(r.buf, r.len, NULL, &rs);
  if (rs.n != 2 || rs.used != r.len)
    fail_msg("%u responses in %zu of %zu bytes, then %s", rs.n, rs.used, r.len,
             r.end == 1 ? "EOF" : soon_err_name(r.end));
  assert_int_equal(rs.r[0].status, 200);
  assert_int_equal(rs.r[0].body_len, BIG_BODY);
  assert_closing(&rs.r[1], 400);
  assert_int_equal(r.end, 1);
  assert_int_equal(atomic_load(&s.handled), 1);
  resps_free(&rs);
  rx_free(&r);
  close_fd(fd);
  srv_stop(&s);
}

/* ------------------------------------------------------------ limits */

/* Send req on a fresh connection; expect one response of this status,
 * with Connection: close, then the close. The handler is not called. */
static void expect_rejected(srv *s, const char *req, size_t len, int status) {
  int h0 = atomic_load(&s->handled);
  int fd = cl_connect(s);
  cl_send(fd, req, len);
  rx r = {0};
  resps rs;
  cl_read_to_end(fd, &r);
  parse_resps(r.buf, r.len, NULL, &rs);
  if (rs.n != 1 || rs.used != r.len)
    fail_msg("%.40s...: %u responses in %zu bytes, want one %d", req, rs.n,
             r.len, status);
  assert_closing(&rs.r[0], status);
  assert_int_equal(rs.interim, 0); /* no 100 Continue for a refused body */
  assert_int_equal(atomic_load(&s->handled), h0);
  resps_free(&rs);
  rx_free(&r);
  close_fd(fd);
}

/* Send req on a fresh connection; expect one 200 whose body is want. */
static void expect_ok(srv *s, const char *req, size_t len, const char *want) {
  int fd = cl_connect(s);
  assert_int_equal(cl_send(fd, req, len), 0);
  rx r = {0};
  resps rs;
  cl_read_resps(fd, &r, 1, NULL, &rs);
  assert_int_equal(rs.n, 1);
  assert_int_equal(rs.r[0].status, 200);
  if (!body_is(&rs.r[0], want))
    fail_msg("body %.*s, want %s", (int)rs.r[0].body_len, rs.r[0].body, want);
  resps_free(&rs);
  rx_free(&r);
  close_fd(fd);
}

/* A head of exactly len bytes: the request line, Host, and X: padding. */
static size_t head_of(char *buf, size_t len, const char *target) {
  int n = snprintf(buf, len + 1, "GET %s HTTP/1.1\r\nHost: h\r\nX: ", target);
  assert_true(n > 0 && (size_t)n + 4 <= len);
  memset(buf + n, 'x', len - (size_t)n - 4);
  memcpy(buf + len - 4, "\r\n\r\n", 4);
  return len;
}

#define LIM_HEAD 256
#define LIM_BODY 100

static void test_limits(void **state) {
  (void)state;
  srv s;
  soon_http_server_options o = {
      .limits = {.max_head = LIM_HEAD, .max_body = LIM_BODY}, .max_headers = 4};
  srv_start(&s, &o, false);
  char buf[1024];

  /* The head: at the limit served, one byte over 431. */
  expect_ok(&s, buf, head_of(buf, LIM_HEAD, "/at"), "/at 0");
  expect_rejected(&s, buf, head_of(buf, LIM_HEAD + 1, "/over"), 431);
  /* The request line alone over max_head: 414. */
  char line[LIM_HEAD + 64] = "GET /";
  memset(line + 5, 'a', LIM_HEAD);
  strcpy(line + 5 + LIM_HEAD, " HTTP/1.1\r\nHost: h\r\n\r\n");
  expect_rejected(&s, line, strlen(line), 414);
  /* Header count: four fit, five do not. */
  const char four[] =
      "GET /4 HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
  const char five[] =
      "GET /5 HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
  expect_ok(&s, four, strlen(four), "/4 0");
  expect_rejected(&s, five, strlen(five), 431);

  /* A declared body over max_body: 413 from the head alone, before any
   * body byte is sent, and no 100 Continue invites one. */
  const char cl_over[] =
      "POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n";
  expect_rejected(&s, cl_over, strlen(cl_over), 413);
  const char cl_expect[] =
      "POST /big HTTP/1.1\r\nHost: h\r\n"
      "Expect: 100-continue\r\nContent-Length: 101\r\n\r\n";
  expect_rejected(&s, cl_expect, strlen(cl_expect), 413);
  int n = snprintf(buf, sizeof buf,
                   "POST /cl HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n",
                   LIM_BODY);
  memset(buf + n, 'b', LIM_BODY);
  expect_ok(&s, buf, (size_t)n + LIM_BODY, "/cl 100");

  /* Chunked: 100 bytes in 4 chunks served; the same plus one byte is 413
   * as soon as the chunk that passes the limit is announced, and nothing
   * is answered before. */
  const char chunk[] = "19\r\n0123456789012345678901234\r\n"; /* 25 bytes */
  const char te[] =
      "POST /ch HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  n = snprintf(buf, sizeof buf, "%s%s%s%s%s0\r\n\r\n", te, chunk, chunk, chunk,
               chunk);
  expect_ok(&s, buf, (size_t)n, "/ch 100");
  int fd = cl_connect(&s);
  assert_int_equal(cl_send_str(fd, te), 0);
  for (int i = 0; i < 4; i++)
    assert_int_equal(cl_send_str(fd, chunk), 0);
  assert_false(cl_pending(fd)); /* 100 bytes: still within the limit */
  cl_send_str(fd, "1\r\nx\r\n0\r\n\r\n");
  rx r = {0};
  resps rs;
  cl_read_to_end(fd, &r);
  parse_resps(r.buf, r.len, NULL, &rs);
  assert_int_equal(rs.n, 1);
  assert_closing(&rs.r[0], 413);
  resps_free(&rs);
  rx_free(&r);
  close_fd(fd);
  assert_int_equal(atomic_load(&s.handled), 4);
  srv_stop(&s);
}

/* max_requests 3: the third response says Connection: close and the
 * connection ends, sequentially and when five come pipelined. */
static void test_max_requests(void **state) {
  (void)state;
  srv s;
  soon_http_server_options o = {.max_requests = 3};
  srv_start(&s, &o, false);
  int fd = cl_connect(&s);
  rx r = {0};
  resps rs;
  for (unsigned i = 1; i <= 3; i++) {
    assert_int_equal(cl_send_str(fd, "GET /s HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
    cl_read_resps(fd, &r, i, NULL, &rs);
    assert_int_equal(rs.n, i);
    assert_int_equal(rs.r[i - 1].status, 200);
    assert_int_equal(!!(rs.r[i - 1].flags & SOON_HTTP_CONN_CLOSE), i == 3);
    resps_free(&rs);
  }
  cl_read_to_end(fd, &r);
  parse_resps(r.buf, r.len, NULL, &rs);
  assert_int_equal(rs.n, 3);
  assert_int_equal(rs.used, r.len);
  resps_free(&rs);
  rx_free(&r);
  close_fd(fd);

  fd = cl_connect(&s);
  char five[256] = "";
  for (int i = 1; i <= 5; i++) {
    char one[64];
    snprintf(one, sizeof one, "GET /p%d HTTP/1.1\r\nHost: h\r\n\r\n", i);
    strcat(five, one);
  }
  cl_send_str(fd, five);
  cl_read_to_end(fd, &r);
  parse_resps(r.buf, r.len, NULL, &rs);
  assert_int_equal(rs.n, 3);
  assert_int_equal(rs.used, r.len);
  assert_true(body_is(&rs.r[0], "/p1 0"));
  assert_true(body_is(&rs.r[1], "/p2 0"));
  assert_true(body_is(&rs.r[2], "/p3 0"));
  assert_false(rs.r[1].flags & SOON_HTTP_CONN_CLOSE);
  assert_true(rs.r[2].flags & SOON_HTTP_CONN_CLOSE);
  resps_free(&rs);
  rx_free(&r);
  close_fd(fd);
  assert_int_equal(atomic_load(&s.handled), 6);
  srv_stop(&s);
}

/* ------------------------------------------------------------ shutdown */

static void cmd_graceful(srv *s) {
  s->closing = true;
  s->close_rc = soon_http_server_close(s->server, s->grace_ms, server_closed);
  s->close_cbs_in_call = atomic_load(&s->close_cbs);
  s->close_again_rc = soon_http_server_close(s->server, 1, server_closed);
}

/* The parked requests are answered from a timer, after the close. */
static void cmd_answer_later(srv *s) {
  soon_timer_start(&s->later, later_fired, 1, 0);
}

static void graceful_close(srv *s, uint64_t grace_ms) {
  s->grace_ms = grace_ms;
  in_loop(s, cmd_graceful);
  assert_int_equal(s->close_rc, 0);
  assert_int_equal(s->close_cbs_in_call, 0); /* never from inside the call */
  assert_int_equal(s->close_again_rc, -EALREADY);
}

/* fd was idle when the server closed: it ends without a byte. */
static void expect_silent_close(int fd) {
  rx r = {0};
  cl_read_to_end(fd, &r);
  assert_int_equal(r.len, 0);
  rx_free(&r);
  close_fd(fd);
}

/* Graceful shutdown, the grace long (60 s, past WAIT_S): idle connections
 * (one served, one that sent nothing) must be closed at once, or the test
 * times out on them; no new connection is served; two requests in flight,
 * one with another request pipelined behind it, are answered from a timer
 * started after the close, with Connection: close; the close callback
 * waits for them, and comes as soon as they are done, not at the grace
 * deadline. */
static void test_graceful_shutdown(void **state) {
  (void)state;
  srv s;
  srv_start(&s, NULL, false);
  const char later[] = "GET /t-later HTTP/1.1\r\nHost: h\r\n\r\n";
  int idle = cl_connect(&s), fresh = cl_connect(&s);
  int a1 = cl_connect(&s), a2 = cl_connect(&s);
  rx r = {0};
  resps rs;
  assert_int_equal(cl_send_str(idle, "GET /idle HTTP/1.1\r\nHost: h\r\n\r\n"),
                   0);
  cl_read_resps(idle, &r, 1, NULL, &rs);
  assert_int_equal(rs.n, 1);
  resps_free(&rs);
  rx_free(&r);
  assert_int_equal(cl_send_str(a1, later), 0);
  char two[160];
  snprintf(two, sizeof two, "%sGET /after HTTP/1.1\r\nHost: h\r\n\r\n", later);
  assert_int_equal(cl_send_str(a2, two), 0);
  wait_count(&s, &s.parked, 2, "the handlers of /t-later");

  graceful_close(&s, 60000);
  /* No new connection is served: refused, or closed unanswered. */
  struct sockaddr_in a;
  assert_int_equal(soon_ip4_addr("127.0.0.1", s.port, &a), 0);
  int late = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(late >= 0);
  bound_waits(late);
  if (connect(late, (struct sockaddr *)&a, sizeof a) == 0) {
    cl_send_str(late, "GET /late HTTP/1.1\r\nHost: h\r\n\r\n");
    expect_silent_close(late);
  } else {
    /* ECONNRESET: on io_uring the socket outlives its fd until the ring
     * lets go of it, so a handshake can begin and be reset. */
    assert_true(errno == ECONNREFUSED || errno == ECONNRESET);
    close_fd(late);
  }
  expect_silent_close(idle);
  expect_silent_close(fresh);
  /* Requests are in flight: no close callback yet. */
  assert_int_equal(atomic_load(&s.close_cbs), 0);

  in_loop(&s, cmd_answer_later);
  int answered[] = {a1, a2};
  for (int i = 0; i < 2; i++) {
    cl_read_to_end(answered[i], &r);
    parse_resps(r.buf, r.len, NULL, &rs);
    assert_int_equal(rs.n, 1);
    assert_int_equal(rs.used, r.len);
    assert_closing(&rs.r[0], 200);
    assert_true(body_is(&rs.r[0], "/t-later 0"));
    resps_free(&rs);
    rx_free(&r);
    close_fd(answered[i]);
  }
  wait_count(&s, &s.close_cbs, 1, "the close callback");
  assert_int_equal(atomic_load(&s.answer_errors), 0);
  /* /idle and the two /t-later: not /after, not /late. */
  assert_int_equal(atomic_load(&s.handled), 3);
  srv_stop(&s);
}

/* Graceful shutdown, the grace short (50 ms): a request its handler does
 * not answer in time is cut, unanswered, and the close callback runs. */
static void test_graceful_shutdown_cut(void **state) {
  (void)state;
  srv s;
  srv_start(&s, NULL, false);
  int never = cl_connect(&s);
  assert_int_equal(
      cl_send_str(never, "GET /t-never HTTP/1.1\r\nHost: h\r\n\r\n"), 0);
  wait_count(&s, &s.never, 1, "the handler of /t-never");
  graceful_close(&s, 50);
  rx r = {0};
  resps rs;
  cl_read_to_end(never, &r);
  parse_resps(r.buf, r.len, NULL, &rs);
  assert_int_equal(rs.n, 0);
  resps_free(&rs);
  rx_free(&r);
  close_fd(never);
  wait_count(&s, &s.close_cbs, 1, "the close callback");
  /* Its handler, never told, answers after the close callback: refused.
   * The server keeps the request (and itself) until that call, so a
   * handler that never calls again leaks both (ASan would say so). */
  in_loop(&s, cmd_answer_held);
  assert_int_equal(atomic_load(&s.held_refused), 1);
  srv_stop(&s);
}

/* ------------------------------------------------------------ vanishing */

/* Clients that reset mid-head, mid-body, while their handler waits to
 * answer, and mid-response; the server serves another after each, and at
 * the end its loop closes with nothing left (ASan: nothing leaked). */
static void test_vanish(void **state) {
  (void)state;
  srv s;
  srv_start(&s, NULL, false);

  int fd = cl_connect(&s);
  assert_int_equal(cl_send_str(fd, "GET /gone HTTP/1.1\r\nHost:"), 0);
  cl_reset(fd);
  cl_get_ok(&s, "/after-head");

  fd = cl_connect(&s);
  assert_int_equal(cl_send_str(fd, "POST /gone HTTP/1.1\r\nHost: h\r\n"
                                   "Content-Length: 100\r\n\r\n0123456789"),
                   0);
  cl_reset(fd);
  cl_get_ok(&s, "/after-body");

  /* The handler answers after the client is gone: the answer fails or is
   * dropped, and nothing breaks. */
  fd = cl_connect(&s);
  assert_int_equal(cl_send_str(fd, "GET /t-later HTTP/1.1\r\nHost: h\r\n\r\n"),
                   0);
  wait_count(&s, &s.parked, 1, "the handler of /t-later");
  cl_reset(fd);
  cl_get_ok(&s, "/between");
  in_loop(&s, cmd_answer_parked);
  print_message("answer after the reset: %s\n",
                atomic_load(&s.answer_errors) ? "refused" : "accepted");
  cl_get_ok(&s, "/after-answer");

  /* Mid-response: the endless writer is told. */
  fd = cl_connect(&s);
  assert_int_equal(cl_send_str(fd, "GET /t-stream HTTP/1.1\r\nHost: h\r\n\r\n"),
                   0);
  rx r = {0};
  while (r.len < 4096 && !r.end)
    cl_read(fd, &r);
  assert_memory_equal(r.buf, "HTTP/1.1 200", 12);
  rx_free(&r);
  cl_reset(fd);
  wait_count(&s, &s.stream_done, 1, "the stream to fail");
  assert_true(atomic_load(&s.stream_status) < 0);
  cl_get_ok(&s, "/after-response");
  assert_int_equal(atomic_load(&s.handled), 7);
  srv_stop(&s);
}

/* The same mid-body reset with stream_body: the body callback fails. */
static void test_vanish_streamed_body(void **state) {
  (void)state;
  srv s;
  soon_http_server_options o = {.stream_body = true};
  srv_start(&s, &o, false);
  int fd = cl_connect(&s);
  assert_int_equal(cl_send_str(fd, body_head), 0);
  wait_count(&s, &s.body_started, 1, "the handler of /t-body");
  cl_reset(fd);
  wait_count(&s, &s.body_done, 1, "the body callback's end");
  assert_true(atomic_load(&s.body_status) < 0);
  assert_true(atomic_load(&s.body_bytes) <= 10);
  srv_stop(&s);
  assert_int_equal(atomic_load(&s.body_calls_after), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_slowloris),
      cmocka_unit_test(test_body_timeout),
      cmocka_unit_test(test_body_timeout_streamed),
      cmocka_unit_test(test_keepalive_timeout),
      cmocka_unit_test(test_keepalive_timeout_unix),
      cmocka_unit_test(test_send_timeout),
      cmocka_unit_test(test_pipeline_flood),
      cmocka_unit_test(test_thousand_connections),
      cmocka_unit_test(test_max_connections),
      cmocka_unit_test(test_corpus),
      cmocka_unit_test(test_reject_behind_big_response),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_max_requests),
      cmocka_unit_test(test_graceful_shutdown),
      cmocka_unit_test(test_graceful_shutdown_cut),
      cmocka_unit_test(test_vanish),
      cmocka_unit_test(test_vanish_streamed_body),
  };
  /* SOON_TEST_FILTER=test_slowloris runs one test (while debugging). */
  if (getenv("SOON_TEST_FILTER"))
    cmocka_set_test_filter(getenv("SOON_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
