/* test_tcp.c: streams over TCP and Unix sockets: echoes up to 256 MiB, 1000
 * connections, half-close, accept, options, faults and bad arguments. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <soon.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "helpers.h"

/* Echo servers stop reading above HIGH queued bytes and resume below LOW,
 * so a huge transfer holds a bounded amount of memory. */
#define HIGH_WATER (1u << 20)
#define LOW_WATER (256u << 10)
#define CHUNK (256u << 10)

/* ------------------------------------------------------------ data */

#define FNV_INIT 0xcbf29ce484222325ull

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

/* xorshift64*: the bytes only need to be unpredictable enough that a
 * dropped, duplicated or reordered chunk changes the hash. */
static void prng_fill(uint64_t *state, char *buf, size_t n) {
  for (size_t i = 0; i < n; i += 8) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    uint64_t v = x * 0x2545f4914f6cdd1dull;
    memcpy(buf + i, &v, n - i < 8 ? n - i : 8);
  }
}

static uint64_t big_size(void) {
  /* Sanitizer runs are several times slower; they set SOON_TEST_QUICK. */
  return getenv("SOON_TEST_QUICK") ? 32ull << 20 : 256ull << 20;
}

/* ------------------------------------------------------------ endpoints */

typedef enum { K_TCP4, K_TCP6, K_UNIX } kind;

/* Any stream, seen as what the test needs at the moment. */
typedef union any_stream {
  soon_handle h;
  soon_stream s;
  soon_tcp tcp;
  soon_pipe pipe;
} any_stream;

typedef struct endpoint {
  kind k;
  struct sockaddr_storage addr; /* tcp: the bound address, real port */
  char dir[64];                 /* unix: a private directory ... */
  char path[128];               /* ... holding the socket */
} endpoint;

/* The unix directory of the running test, removed by the teardown even when
 * the test failed half-way. */
static char live_dir[64], live_path[128];

static int cleanup_paths(void **state) {
  (void)state;
  if (live_path[0])
    unlink(live_path);
  if (live_dir[0])
    rmdir(live_dir);
  live_dir[0] = live_path[0] = '\0';
  return 0;
}

static void stream_init(soon_loop *loop, any_stream *a, kind k) {
  if (k == K_UNIX)
    assert_int_equal(soon_pipe_init(loop, &a->pipe), 0);
  else
    assert_int_equal(soon_tcp_init(loop, &a->tcp), 0);
}

static uint16_t port_of(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET)
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
  return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
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

/* Bind l to a fresh loopback address (port 0) or socket path and record in
 * ep what a client connects to. */
static void endpoint_bind(any_stream *l, endpoint *ep, kind k) {
  memset(ep, 0, sizeof *ep);
  ep->k = k;
  if (k == K_UNIX) {
    strcpy(ep->dir, "/tmp/soon-tcp-XXXXXX");
    assert_non_null(mkdtemp(ep->dir));
    snprintf(ep->path, sizeof ep->path, "%s/sock", ep->dir);
    strcpy(live_dir, ep->dir);
    strcpy(live_path, ep->path);
    assert_int_equal(soon_pipe_bind(&l->pipe, ep->path, 0), 0);
    return;
  }
  if (k == K_TCP4) {
    struct sockaddr_in a;
    assert_int_equal(soon_ip4_addr("127.0.0.1", 0, &a), 0);
    assert_int_equal(soon_tcp_bind(&l->tcp, (struct sockaddr *)&a, 0), 0);
  } else {
    struct sockaddr_in6 a;
    assert_int_equal(soon_ip6_addr("::1", 0, &a), 0);
    assert_int_equal(soon_tcp_bind(&l->tcp, (struct sockaddr *)&a, 0), 0);
  }
  int len = sizeof ep->addr;
  assert_int_equal(
      soon_tcp_getsockname(&l->tcp, (struct sockaddr *)&ep->addr, &len), 0);
  assert_int_equal(len, k == K_TCP4 ? sizeof(struct sockaddr_in)
                                    : sizeof(struct sockaddr_in6));
  assert_int_not_equal(port_of(&ep->addr), 0);
}

static int endpoint_connect(soon_connect_req *req, any_stream *c,
                            const endpoint *ep, soon_connect_cb cb) {
  if (ep->k == K_UNIX)
    return soon_pipe_connect(req, &c->pipe, ep->path, 0, cb);
  return soon_tcp_connect(req, &c->tcp, (const struct sockaddr *)&ep->addr, cb);
}

static void endpoint_cleanup(endpoint *ep) {
  (void)ep;
  cleanup_paths(NULL);
}

static void alloc_malloc(soon_handle *h, size_t size, soon_buf *buf) {
  (void)h;
  buf->base = malloc(size);
  buf->len = buf->base ? size : 0;
}

static void never_connect(soon_connect_req *req, int status) {
  (void)req;
  fail_msg("connect callback after a failed call (%d)", status);
}
static void never_write(soon_write_req *req, int status) {
  (void)req;
  fail_msg("write callback after a failed call (%d)", status);
}
static void never_shut(soon_shutdown_req *req, int status) {
  (void)req;
  fail_msg("shutdown callback after a failed call (%d)", status);
}
static void never_read(soon_stream *s, ssize_t n, const soon_buf *b) {
  (void)s;
  (void)b;
  fail_msg("read callback %zd", n);
}
static void never_conn(soon_stream *s, int status) {
  (void)s;
  fail_msg("connection callback %d", status);
}

/* ------------------------------------------------------------ echo server */

typedef struct echo_server {
  any_stream h;
  kind k;
  int accepted;
  int closed;      /* connections fully closed */
  int close_after; /* close the listener once this many have closed */
} echo_server;

typedef struct echo_conn {
  any_stream h;
  echo_server *srv;
  bool paused;
  soon_shutdown_req sreq;
} echo_conn;

typedef struct buf_write {
  soon_write_req req;
  char *base;
} buf_write;

static void echo_conn_closed(soon_handle *h) {
  echo_conn *c = (echo_conn *)h;
  echo_server *srv = c->srv;
  free(c);
  if (++srv->closed == srv->close_after)
    assert_int_equal(soon_close(&srv->h.h, NULL), 0);
}

static void echo_conn_close(echo_conn *c) {
  if (!soon_is_closing(&c->h.h))
    assert_int_equal(soon_close(&c->h.h, echo_conn_closed), 0);
}

static void echo_read(soon_stream *s, ssize_t nread, const soon_buf *buf);

static void echo_written(soon_write_req *req, int status) {
  buf_write *w = (buf_write *)req;
  echo_conn *c = req->data;
  free(w->base);
  free(w);
  if (status < 0) {
    echo_conn_close(c);
    return;
  }
  if (c->paused && !soon_is_closing(&c->h.h) &&
      soon_stream_write_queue_size(&c->h.s) <= LOW_WATER) {
    c->paused = false;
    assert_int_equal(soon_read_start(&c->h.s, alloc_malloc, echo_read), 0);
  }
}

static void echo_shut(soon_shutdown_req *req, int status) {
  (void)status; /* the peer may be gone already: close either way */
  echo_conn_close(req->data);
}

static void echo_read(soon_stream *s, ssize_t nread, const soon_buf *buf) {
  echo_conn *c = (echo_conn *)s;
  if (nread > 0) {
    buf_write *w = malloc(sizeof *w);
    assert_non_null(w);
    w->base = buf->base;
    w->req.data = c;
    soon_buf b = {buf->base, (size_t)nread};
    assert_int_equal(soon_write(&w->req, s, &b, 1, echo_written), 0);
    if (soon_stream_write_queue_size(s) > HIGH_WATER) {
      c->paused = true;
      assert_int_equal(soon_read_stop(s), 0);
    }
    return;
  }
  free(buf->base);
  if (nread == 0)
    return;
  if (nread == SOON_EOF) {
    /* Half-close: answer the peer's FIN with ours once the echo is out. */
    c->sreq.data = c;
    if (soon_shutdown(&c->sreq, s, echo_shut) != 0)
      echo_conn_close(c);
    return;
  }
  echo_conn_close(c);
}

static void echo_connection(soon_stream *server, int status) {
  echo_server *srv = (echo_server *)server;
  assert_int_equal(status, 0);
  echo_conn *c = calloc(1, sizeof *c);
  assert_non_null(c);
  c->srv = srv;
  stream_init(server->loop, &c->h, srv->k);
  assert_int_equal(soon_accept(server, &c->h.s), 0);
  srv->accepted++;
  assert_int_equal(soon_read_start(&c->h.s, alloc_malloc, echo_read), 0);
}

static void echo_server_start(soon_loop *loop, echo_server *srv, endpoint *ep,
                              kind k, int close_after) {
  memset(srv, 0, sizeof *srv);
  srv->k = k;
  srv->close_after = close_after;
  stream_init(loop, &srv->h, k);
  endpoint_bind(&srv->h, ep, k);
  assert_int_equal(soon_listen(&srv->h.s, 1024, echo_connection), 0);
}

/* ------------------------------------------------------------ bulk client */

/* Streams total bytes of PRNG data to an echo server, with backpressure, and
 * hashes what it sent and what came back. */
typedef struct bulk_client {
  any_stream h;
  soon_connect_req creq;
  soon_shutdown_req sreq;
  uint64_t total, queued, received;
  uint64_t prng, sent_hash, recv_hash;
  bool shut_started, eof;
  int shut_status, closes;
} bulk_client;

static void bulk_pump(bulk_client *c);

static void bulk_written(soon_write_req *req, int status) {
  buf_write *w = (buf_write *)req;
  bulk_client *c = req->data;
  assert_int_equal(status, 0);
  free(w->base);
  free(w);
  bulk_pump(c);
}

static void bulk_shut(soon_shutdown_req *req, int status) {
  bulk_client *c = req->data;
  c->shut_status = status;
}

static void bulk_pump(bulk_client *c) {
  while (c->queued < c->total &&
         soon_stream_write_queue_size(&c->h.s) < HIGH_WATER) {
    size_t n = c->total - c->queued < CHUNK ? c->total - c->queued : CHUNK;
    buf_write *w = malloc(sizeof *w);
    assert_non_null(w);
    w->base = malloc(n);
    assert_non_null(w->base);
    prng_fill(&c->prng, w->base, n);
    c->sent_hash = fnv1a(c->sent_hash, w->base, n);
    w->req.data = c;
    soon_buf b = {w->base, n};
    assert_int_equal(soon_write(&w->req, &c->h.s, &b, 1, bulk_written), 0);
    c->queued += n;
  }
  if (c->queued == c->total && !c->shut_started) {
    c->shut_started = true;
    c->sreq.data = c;
    assert_int_equal(soon_shutdown(&c->sreq, &c->h.s, bulk_shut), 0);
  }
}

static void bulk_closed(soon_handle *h) { ((bulk_client *)h)->closes++; }

static void bulk_read(soon_stream *s, ssize_t nread, const soon_buf *buf) {
  bulk_client *c = (bulk_client *)s;
  if (nread > 0) {
    c->recv_hash = fnv1a(c->recv_hash, buf->base, (size_t)nread);
    c->received += (uint64_t)nread;
    assert_true(c->received <= c->total);
  }
  free(buf->base);
  if (nread == 0 || nread > 0)
    return;
  assert_int_equal(nread, SOON_EOF);
  c->eof = true;
  assert_int_equal(soon_close(&c->h.h, bulk_closed), 0);
}

static void bulk_connected(soon_connect_req *req, int status) {
  bulk_client *c = req->data;
  assert_int_equal(status, 0);
  assert_int_equal(soon_read_start(&c->h.s, alloc_malloc, bulk_read), 0);
  bulk_pump(c);
}

static void run_echo(kind k, uint64_t total) {
  soon_loop loop;
  soon_timer guard;
  echo_server srv;
  endpoint ep;
  bulk_client c;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  echo_server_start(&loop, &srv, &ep, k, 1);

  memset(&c, 0, sizeof c);
  stream_init(&loop, &c.h, k);
  c.total = total;
  c.prng = 0x9e3779b97f4a7c15ull ^ total;
  c.sent_hash = c.recv_hash = FNV_INIT;
  c.shut_status = 1;
  c.creq.data = &c;
  assert_int_equal(endpoint_connect(&c.creq, &c.h, &ep, bulk_connected), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);

  assert_true(c.eof);
  assert_int_equal(c.closes, 1);
  assert_int_equal(c.shut_status, 0);
  assert_int_equal(c.queued, total);
  assert_int_equal(c.received, total);
  assert_int_equal(c.recv_hash, c.sent_hash);
  assert_int_equal(srv.accepted, 1);
  assert_int_equal(srv.closed, 1);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
  endpoint_cleanup(&ep);
}

static void test_tcp4_echo_1(void **state) {
  (void)state;
  run_echo(K_TCP4, 1);
}

static void test_tcp4_echo_64k(void **state) {
  (void)state;
  run_echo(K_TCP4, 64 << 10);
}

static void test_tcp4_echo_big(void **state) {
  (void)state;
  run_echo(K_TCP4, big_size());
}

static void test_tcp6_echo_1(void **state) {
  (void)state;
  if (!have_ipv6())
    skip();
  run_echo(K_TCP6, 1);
}

static void test_tcp6_echo_64k(void **state) {
  (void)state;
  if (!have_ipv6())
    skip();
  run_echo(K_TCP6, 64 << 10);
}

static void test_unix_echo_1(void **state) {
  (void)state;
  run_echo(K_UNIX, 1);
}

static void test_unix_echo_64k(void **state) {
  (void)state;
  run_echo(K_UNIX, 64 << 10);
}

static void test_unix_echo_big(void **state) {
  (void)state;
  run_echo(K_UNIX, big_size());
}

/* ------------------------------------------------------------ many */

typedef struct small_client {
  any_stream h;
  soon_connect_req creq;
  soon_write_req wreq;
  char msg[32];
  size_t len;
  char got[32];
  size_t got_len;
  int *done;
} small_client;

static void small_closed(soon_handle *h) { (*((small_client *)h)->done)++; }

static void small_read(soon_stream *s, ssize_t nread, const soon_buf *buf) {
  small_client *c = (small_client *)s;
  if (nread > 0) {
    assert_true(c->got_len + (size_t)nread <= c->len);
    memcpy(c->got + c->got_len, buf->base, (size_t)nread);
    c->got_len += (size_t)nread;
  }
  free(buf->base);
  assert_true(nread >= 0); /* the server never ends first */
  if (c->got_len == c->len) {
    assert_memory_equal(c->got, c->msg, c->len);
    assert_int_equal(soon_close(&c->h.h, small_closed), 0);
  }
}

static void small_written(soon_write_req *req, int status) {
  (void)req;
  assert_int_equal(status, 0);
}

static void small_connected(soon_connect_req *req, int status) {
  small_client *c = req->data;
  assert_int_equal(status, 0);
  soon_buf b = {c->msg, c->len};
  assert_int_equal(soon_write(&c->wreq, &c->h.s, &b, 1, small_written), 0);
  assert_int_equal(soon_read_start(&c->h.s, alloc_malloc, small_read), 0);
}

static void test_many_connections(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  echo_server srv;
  endpoint ep;
  loop_init_checked(&loop);
  /* select holds fds below FD_SETSIZE: two per connection, with margin.
   * Elsewhere 1000, unless the fd limit (raised to its hard value in main)
   * cannot hold 2000. */
  struct rlimit rl;
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
  int n = strcmp(soon_backend_name(&loop), "select") == 0 ? 200 : 1000;
  if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)(2 * n + 64) > rl.rlim_cur)
    n = (int)(rl.rlim_cur - 64) / 2;
  guard_start(&loop, &guard);
  echo_server_start(&loop, &srv, &ep, K_TCP4, n);
  small_client *cs = calloc((size_t)n, sizeof *cs);
  assert_non_null(cs);
  int done = 0;
  for (int i = 0; i < n; i++) {
    small_client *c = &cs[i];
    stream_init(&loop, &c->h, K_TCP4);
    c->len = (size_t)snprintf(c->msg, sizeof c->msg, "hello %d", i);
    c->done = &done;
    c->creq.data = c;
    assert_int_equal(endpoint_connect(&c->creq, &c->h, &ep, small_connected),
                     0);
  }
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(done, n);
  assert_int_equal(srv.accepted, n);
  assert_int_equal(srv.closed, n);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
  free(cs);
}

/* ------------------------------------------------------------ pairs */

/* One listener, one accepted connection (server) and one client, and a hook
 * that each test fills with what should happen on each event. */
typedef struct ctx ctx;
typedef struct peer peer;

enum {
  EV_ACCEPT,
  EV_CONNECT,
  EV_DATA,
  EV_EOF,
  EV_ERROR,
  EV_WRITE,
  EV_SHUT,
  EV_CLOSE
};

struct peer {
  any_stream h; /* first: a peer is its stream */
  ctx *c;
  char in[1024];
  size_t in_len;
  uint64_t in_total, in_hash;
  bool eof;
  int read_err;
  int connect_status, connect_calls;
  int write_status, write_calls;
  int shut_status, shut_calls;
  int close_calls;
  soon_connect_req creq;
  soon_write_req wreq;
  soon_shutdown_req sreq;
  char out[256];
};

struct ctx {
  soon_loop loop;
  soon_timer guard;
  kind k;
  endpoint ep;
  any_stream listener;
  peer server, client;
  int accepts;
  void (*hook)(ctx *c, peer *p, int ev);
  void *data;
};

static void peer_init(ctx *c, peer *p) {
  memset(p, 0, sizeof *p);
  p->c = c;
  p->in_hash = FNV_INIT;
  p->connect_status = p->write_status = p->shut_status = 1; /* not called */
  stream_init(&c->loop, &p->h, c->k);
}

static void peer_closed(soon_handle *h) {
  peer *p = (peer *)h;
  p->close_calls++;
  p->c->hook(p->c, p, EV_CLOSE);
}

static void peer_close(peer *p) {
  if (!soon_is_closing(&p->h.h))
    assert_int_equal(soon_close(&p->h.h, peer_closed), 0);
}

static void peer_read(soon_stream *s, ssize_t nread, const soon_buf *buf) {
  peer *p = (peer *)s;
  assert_false(soon_is_closing(&p->h.h)); /* never read after close */
  if (nread > 0) {
    size_t room = sizeof p->in - p->in_len;
    size_t k = (size_t)nread < room ? (size_t)nread : room;
    memcpy(p->in + p->in_len, buf->base, k);
    p->in_len += k;
    p->in_total += (uint64_t)nread;
    p->in_hash = fnv1a(p->in_hash, buf->base, (size_t)nread);
  }
  free(buf->base);
  if (nread > 0)
    p->c->hook(p->c, p, EV_DATA);
  else if (nread == SOON_EOF) {
    p->eof = true;
    p->c->hook(p->c, p, EV_EOF);
  } else if (nread < 0) {
    p->read_err = (int)nread;
    p->c->hook(p->c, p, EV_ERROR);
  }
}

static void peer_read_start(peer *p) {
  assert_int_equal(soon_read_start(&p->h.s, alloc_malloc, peer_read), 0);
}

static void peer_written(soon_write_req *req, int status) {
  peer *p = req->data;
  p->write_calls++;
  p->write_status = status;
  p->c->hook(p->c, p, EV_WRITE);
}

/* One write at a time per peer, from its own copy of s. */
static void peer_write(peer *p, const char *s) {
  size_t n = strlen(s);
  assert_true(n < sizeof p->out);
  memcpy(p->out, s, n);
  soon_buf b = {p->out, n};
  p->wreq.data = p;
  assert_int_equal(soon_write(&p->wreq, &p->h.s, &b, 1, peer_written), 0);
}

static void peer_shut(soon_shutdown_req *req, int status) {
  peer *p = req->data;
  p->shut_calls++;
  p->shut_status = status;
  p->c->hook(p->c, p, EV_SHUT);
}

static void peer_shutdown(peer *p) {
  p->sreq.data = p;
  assert_int_equal(soon_shutdown(&p->sreq, &p->h.s, peer_shut), 0);
}

static void peer_connected(soon_connect_req *req, int status) {
  peer *p = req->data;
  p->connect_calls++;
  p->connect_status = status;
  p->c->hook(p->c, p, EV_CONNECT);
}

static void ctx_connection(soon_stream *server, int status) {
  ctx *c = (ctx *)((char *)server - offsetof(ctx, listener));
  assert_int_equal(status, 0);
  assert_int_equal(c->accepts, 0); /* one connection per ctx */
  peer_init(c, &c->server);
  assert_int_equal(soon_accept(server, &c->server.h.s), 0);
  c->accepts++;
  c->hook(c, &c->server, EV_ACCEPT);
}

static void ctx_setup(ctx *c, kind k, void (*hook)(ctx *, peer *, int)) {
  memset(c, 0, sizeof *c);
  c->k = k;
  c->hook = hook;
  loop_init_checked(&c->loop);
  guard_start(&c->loop, &c->guard);
  stream_init(&c->loop, &c->listener, k);
  endpoint_bind(&c->listener, &c->ep, k);
  assert_int_equal(soon_listen(&c->listener.s, 16, ctx_connection), 0);
  peer_init(c, &c->client);
}

static void ctx_connect(ctx *c) {
  c->client.creq.data = &c->client;
  assert_int_equal(
      endpoint_connect(&c->client.creq, &c->client.h, &c->ep, peer_connected),
      0);
}

static void ctx_close_all(ctx *c) {
  if (!soon_is_closing(&c->listener.h))
    assert_int_equal(soon_close(&c->listener.h, NULL), 0);
  if (c->accepts)
    peer_close(&c->server);
  peer_close(&c->client);
}

static void ctx_run(ctx *c) {
  assert_int_equal(soon_run(&c->loop, SOON_RUN_DEFAULT), 0);
}

/* Check every handle closed exactly once, then release everything. */
static void ctx_teardown(ctx *c) {
  assert_int_equal(c->client.close_calls, 1);
  if (c->accepts)
    assert_int_equal(c->server.close_calls, 1);
  guard_close(&c->loop, &c->guard);
  loop_close_checked(&c->loop);
  endpoint_cleanup(&c->ep);
}

/* ------------------------------------------------------------ half-close */

/* The client says "ping" and shuts down; the server reads it, sees EOF, and
 * can still answer "pong" on its half. */
static void half_client_first(ctx *c, peer *p, int ev) {
  if (p == &c->server && ev == EV_ACCEPT)
    peer_read_start(p);
  else if (p == &c->client && ev == EV_CONNECT) {
    assert_int_equal(p->connect_status, 0);
    peer_read_start(p);
    peer_write(p, "ping");
    peer_shutdown(p);
  } else if (p == &c->server && ev == EV_EOF) {
    assert_int_equal(p->in_len, 4);
    assert_memory_equal(p->in, "ping", 4);
    peer_write(p, "pong");
    peer_shutdown(p);
  } else if (p == &c->client && ev == EV_EOF) {
    assert_int_equal(p->in_len, 4);
    assert_memory_equal(p->in, "pong", 4);
    ctx_close_all(c);
  } else if (ev == EV_ERROR)
    fail_msg("read error %d", p->read_err);
}

/* The reverse: the server speaks first and shuts down; the client reads to
 * EOF and then answers on its own half. */
static void half_server_first(ctx *c, peer *p, int ev) {
  if (p == &c->server && ev == EV_ACCEPT) {
    peer_read_start(p);
    peer_write(p, "hello");
    peer_shutdown(p);
  } else if (p == &c->client && ev == EV_CONNECT) {
    assert_int_equal(p->connect_status, 0);
    peer_read_start(p);
  } else if (p == &c->client && ev == EV_EOF) {
    assert_int_equal(p->in_len, 5);
    assert_memory_equal(p->in, "hello", 5);
    peer_write(p, "bye");
    peer_shutdown(p);
  } else if (p == &c->server && ev == EV_EOF) {
    assert_int_equal(p->in_len, 3);
    assert_memory_equal(p->in, "bye", 3);
    ctx_close_all(c);
  } else if (ev == EV_ERROR)
    fail_msg("read error %d", p->read_err);
}

static void run_half_close(kind k, void (*hook)(ctx *, peer *, int)) {
  ctx c;
  ctx_setup(&c, k, hook);
  ctx_connect(&c);
  ctx_run(&c);
  assert_true(c.client.eof);
  assert_true(c.server.eof);
  assert_int_equal(c.client.write_calls, 1);
  assert_int_equal(c.client.write_status, 0);
  assert_int_equal(c.server.write_calls, 1);
  assert_int_equal(c.server.write_status, 0);
  assert_int_equal(c.client.shut_calls, 1);
  assert_int_equal(c.client.shut_status, 0);
  assert_int_equal(c.server.shut_calls, 1);
  assert_int_equal(c.server.shut_status, 0);
  ctx_teardown(&c);
}

static void test_half_close_client_first(void **state) {
  (void)state;
  run_half_close(K_TCP4, half_client_first);
}

static void test_half_close_server_first(void **state) {
  (void)state;
  run_half_close(K_TCP4, half_server_first);
}

static void test_unix_half_close(void **state) {
  (void)state;
  run_half_close(K_UNIX, half_client_first);
  run_half_close(K_UNIX, half_server_first);
}

/* A shutdown asked for before the connection is up waits for it, like a
 * write would: the server then reads a clean EOF. Once shut down, writing
 * is -EPIPE and a second shutdown -EALREADY, both from the call. */
static void early_shut_hook(ctx *c, peer *p, int ev) {
  if (p == &c->server && ev == EV_ACCEPT)
    peer_read_start(p);
  else if (p == &c->server && ev == EV_EOF) {
    assert_int_equal(p->in_len, 0);
    ctx_close_all(c);
  } else if (p == &c->server && ev == EV_ERROR)
    fail_msg("read error %d", p->read_err);
}

static void run_shutdown_before_connect(kind k) {
  ctx c;
  ctx_setup(&c, k, early_shut_hook);
  ctx_connect(&c);
  peer_shutdown(&c.client);
  soon_shutdown_req again;
  soon_write_req w;
  soon_buf b = {"x", 1};
  assert_int_equal(soon_shutdown(&again, &c.client.h.s, never_shut), -EALREADY);
  assert_int_equal(soon_write(&w, &c.client.h.s, &b, 1, never_write), -EPIPE);
  ctx_run(&c);
  assert_int_equal(c.client.connect_status, 0);
  assert_int_equal(c.client.shut_calls, 1);
  assert_int_equal(c.client.shut_status, 0);
  assert_true(c.server.eof);
  ctx_teardown(&c);
}

static void test_shutdown_before_connect(void **state) {
  (void)state;
  run_shutdown_before_connect(K_TCP4);
}

static void test_unix_shutdown_before_connect(void **state) {
  (void)state;
  run_shutdown_before_connect(K_UNIX);
}

/* ------------------------------------------------------------ connect errors
 */

static void refused_cb(soon_connect_req *req, int status) {
  int *out = req->data;
  *out = status;
}

static void test_connect_refused(void **state) {
  (void)state;
  /* A port that was just free: bound by us, then released. */
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a;
  assert_int_equal(soon_ip4_addr("127.0.0.1", 0, &a), 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t alen = sizeof a;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
  close_fd(fd);

  soon_loop loop;
  soon_timer guard;
  soon_tcp t;
  soon_connect_req req;
  int status = 1;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  assert_int_equal(soon_tcp_init(&loop, &t), 0);
  req.data = &status;
  assert_int_equal(
      soon_tcp_connect(&req, &t, (struct sockaddr *)&a, refused_cb), 0);
  assert_int_equal(status, 1); /* never from inside the call */
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(status, -ECONNREFUSED);
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

static void test_ip_addr_parse(void **state) {
  (void)state;
  struct sockaddr_in a4;
  struct sockaddr_in6 a6;
  char name[64];
  assert_int_equal(soon_ip4_addr("not an ip", 80, &a4), -EINVAL);
  assert_int_equal(soon_ip4_addr("127.0.0.256", 80, &a4), -EINVAL);
  assert_int_equal(soon_ip4_addr("::1", 80, &a4), -EINVAL);
  assert_int_equal(soon_ip4_addr(NULL, 80, &a4), -EINVAL);
  assert_int_equal(soon_ip4_addr("127.0.0.1", 80, NULL), -EINVAL);
  assert_int_equal(soon_ip4_addr("127.0.0.1", -1, &a4), -EINVAL);
  assert_int_equal(soon_ip4_addr("127.0.0.1", 65536, &a4), -EINVAL);
  assert_int_equal(soon_ip6_addr("not an ip", 80, &a6), -EINVAL);
  assert_int_equal(soon_ip6_addr("1:2:3:4:5:6:7:8:9", 80, &a6), -EINVAL);
  assert_int_equal(soon_ip6_addr("127.0.0.1", 80, &a6), -EINVAL);
  assert_int_equal(soon_ip6_addr(NULL, 80, &a6), -EINVAL);

  assert_int_equal(soon_ip4_addr("10.1.2.3", 8080, &a4), 0);
  assert_int_equal(a4.sin_family, AF_INET);
  assert_int_equal(ntohs(a4.sin_port), 8080);
  assert_int_equal(soon_ip_name((struct sockaddr *)&a4, name, sizeof name), 0);
  assert_string_equal(name, "10.1.2.3");
  assert_int_equal(soon_ip_name((struct sockaddr *)&a4, name, 4), -ENOSPC);
  assert_int_equal(soon_ip6_addr("fe80::1", 443, &a6), 0);
  assert_int_equal(a6.sin6_family, AF_INET6);
  assert_int_equal(ntohs(a6.sin6_port), 443);
  assert_int_equal(soon_ip_name((struct sockaddr *)&a6, name, sizeof name), 0);
  assert_string_equal(name, "fe80::1");
  assert_int_equal(soon_ip_name(NULL, name, sizeof name), -EINVAL);
}

/* ------------------------------------------------------------ accept */

typedef struct deferred {
  soon_timer timer; /* first: the timer callback finds the test by it */
  soon_loop *loop;
  any_stream listener;
  int conn_cbs;
  int conn_cbs_at_accept[2];
  int accepted;
  any_stream conns[2];
  any_stream spares[2]; /* closed at once, but alive until the close phase */
  soon_tcp clients[2];
  soon_connect_req creqs[2];
  int connect_status[2];
} deferred;

static void deferred_accept_timer(soon_timer *t) {
  deferred *d = (deferred *)t;
  d->conn_cbs_at_accept[d->accepted] = d->conn_cbs;
  stream_init(d->loop, &d->conns[d->accepted], K_TCP4);
  assert_int_equal(soon_accept(&d->listener.s, &d->conns[d->accepted].s), 0);
  /* The one waiting connection was taken: nothing else is held. */
  any_stream *spare = &d->spares[d->accepted];
  stream_init(d->loop, spare, K_TCP4);
  assert_int_equal(soon_accept(&d->listener.s, &spare->s), -EAGAIN);
  assert_int_equal(soon_close(&spare->h, NULL), 0);
  d->accepted++;
  if (d->accepted == 2) {
    assert_int_equal(soon_close(&d->listener.h, NULL), 0);
    for (int i = 0; i < 2; i++) {
      assert_int_equal(soon_close(&d->conns[i].h, NULL), 0);
      assert_int_equal(soon_close((soon_handle *)&d->clients[i], NULL), 0);
    }
    assert_int_equal(soon_close((soon_handle *)&d->timer, NULL), 0);
  }
}

static void deferred_connection(soon_stream *server, int status) {
  deferred *d = server->data;
  assert_int_equal(status, 0);
  d->conn_cbs++;
  /* Accept later, from a timer: the listener must pause meanwhile. */
  assert_int_equal(soon_timer_start(&d->timer, deferred_accept_timer, 1, 0), 0);
}

static void deferred_connected(soon_connect_req *req, int status) {
  *(int *)req->data = status;
}

static void test_accept_deferred(void **state) {
  (void)state;
  soon_timer guard;
  soon_loop loop;
  endpoint ep;
  deferred d;
  memset(&d, 0, sizeof d);
  d.loop = &loop;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  stream_init(&loop, &d.listener, K_TCP4);
  endpoint_bind(&d.listener, &ep, K_TCP4);
  d.listener.h.data = &d;
  assert_int_equal(soon_listen(&d.listener.s, 8, deferred_connection), 0);
  assert_int_equal(soon_timer_init(&loop, &d.timer), 0);
  /* Nothing waiting yet. */
  any_stream none;
  stream_init(&loop, &none, K_TCP4);
  assert_int_equal(soon_accept(&d.listener.s, &none.s), -EAGAIN);
  assert_int_equal(soon_close(&none.h, NULL), 0);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(soon_tcp_init(&loop, &d.clients[i]), 0);
    d.connect_status[i] = 1;
    d.creqs[i].data = &d.connect_status[i];
    assert_int_equal(soon_tcp_connect(&d.creqs[i], &d.clients[i],
                                      (struct sockaddr *)&ep.addr,
                                      deferred_connected),
                     0);
  }
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(d.accepted, 2);
  assert_int_equal(d.conn_cbs, 2);
  /* Each connection callback was followed by its accept before the next. */
  assert_int_equal(d.conn_cbs_at_accept[0], 1);
  assert_int_equal(d.conn_cbs_at_accept[1], 2);
  assert_int_equal(d.connect_status[0], 0);
  assert_int_equal(d.connect_status[1], 0);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ options */

static void options_hook(ctx *c, peer *p, int ev) {
  if (ev == EV_CONNECT)
    assert_int_equal(p->connect_status, 0);
  if (!(c->accepts && c->client.connect_calls) ||
      soon_is_closing(&c->listener.h))
    return; /* wait for both ends */
  soon_tcp *cl = &c->client.h.tcp, *sv = &c->server.h.tcp;
  assert_int_equal(soon_tcp_set_nodelay(cl, 1), 0);
  assert_int_equal(soon_tcp_set_nodelay(cl, 0), 0);
  assert_int_equal(soon_tcp_set_nodelay(sv, 1), 0);
  assert_int_equal(soon_tcp_set_keepalive(cl, 1, 60), 0);
  assert_int_equal(soon_tcp_set_keepalive(cl, 0, 0), 0);
  assert_int_equal(soon_tcp_set_keepalive(sv, 1, 1), 0);
  assert_int_equal(soon_tcp_set_keepalive(cl, 1, 0), -EINVAL);

  struct sockaddr_storage csock, cpeer, ssock, speer, lsock;
  int n1 = sizeof csock, n2 = sizeof cpeer, n3 = sizeof ssock,
      n4 = sizeof speer, n5 = sizeof lsock;
  assert_int_equal(soon_tcp_getsockname(cl, (struct sockaddr *)&csock, &n1), 0);
  assert_int_equal(soon_tcp_getpeername(cl, (struct sockaddr *)&cpeer, &n2), 0);
  assert_int_equal(soon_tcp_getsockname(sv, (struct sockaddr *)&ssock, &n3), 0);
  assert_int_equal(soon_tcp_getpeername(sv, (struct sockaddr *)&speer, &n4), 0);
  assert_int_equal(
      soon_tcp_getsockname(&c->listener.tcp, (struct sockaddr *)&lsock, &n5),
      0);
  assert_int_equal(n1, sizeof(struct sockaddr_in));
  assert_int_equal(n1, n4);
  assert_int_equal(n2, n3);
  assert_memory_equal(&csock, &speer, (size_t)n1);
  assert_memory_equal(&cpeer, &ssock, (size_t)n2);
  assert_memory_equal(&ssock, &lsock, (size_t)n2);
  assert_int_equal(port_of(&cpeer), port_of(&c->ep.addr));
  char name[64];
  assert_int_equal(soon_ip_name((struct sockaddr *)&csock, name, sizeof name),
                   0);
  assert_string_equal(name, "127.0.0.1");
  /* Too small a buffer: -EINVAL for nonsense sizes only. */
  int zero = 0;
  assert_int_equal(soon_tcp_getsockname(cl, (struct sockaddr *)&csock, &zero),
                   -EINVAL);
  ctx_close_all(c);
}

static void test_tcp_options(void **state) {
  (void)state;
  ctx c;
  ctx_setup(&c, K_TCP4, options_hook);
  /* No socket yet. */
  soon_tcp bare;
  struct sockaddr_storage ss;
  int n = sizeof ss;
  assert_int_equal(soon_tcp_init(&c.loop, &bare), 0);
  assert_int_equal(soon_tcp_set_nodelay(&bare, 1), -EBADF);
  assert_int_equal(soon_tcp_set_keepalive(&bare, 1, 10), -EBADF);
  assert_int_equal(soon_tcp_set_keepalive(&bare, 0, 0), -EBADF);
  assert_int_equal(soon_tcp_getsockname(&bare, (struct sockaddr *)&ss, &n),
                   -EBADF);
  assert_int_equal(soon_tcp_getpeername(&bare, (struct sockaddr *)&ss, &n),
                   -EBADF);
  assert_int_equal(soon_tcp_set_nodelay(NULL, 1), -EINVAL);
  assert_int_equal(soon_close((soon_handle *)&bare, NULL), 0);
  ctx_connect(&c);
  ctx_run(&c);
  ctx_teardown(&c);
}

/* An fd connected outside soon, adopted with soon_tcp_open. */
static void open_hook(ctx *c, peer *p, int ev) {
  if (p == &c->server && ev == EV_ACCEPT)
    peer_read_start(p);
  else if (p == &c->server && ev == EV_EOF) {
    assert_int_equal(p->in_len, 3);
    assert_memory_equal(p->in, "abc", 3);
    ctx_close_all(c);
  } else if (ev == EV_ERROR)
    fail_msg("read error %d", p->read_err);
}

static void test_tcp_open(void **state) {
  (void)state;
  ctx c;
  ctx_setup(&c, K_TCP4, open_hook);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  /* Blocking connect: the kernel completes it into the listen backlog. */
  assert_int_equal(
      connect(fd, (struct sockaddr *)&c.ep.addr, sizeof(struct sockaddr_in)),
      0);
  assert_int_equal(soon_tcp_open(&c.client.h.tcp, -1), -EINVAL);
  assert_int_equal(soon_tcp_open(&c.client.h.tcp, fd), 0);
  assert_int_equal(soon_tcp_open(&c.client.h.tcp, fd), -EBUSY);
  struct sockaddr_storage peer_addr;
  int n = sizeof peer_addr;
  assert_int_equal(
      soon_tcp_getpeername(&c.client.h.tcp, (struct sockaddr *)&peer_addr, &n),
      0);
  assert_int_equal(port_of(&peer_addr), port_of(&c.ep.addr));
  peer_write(&c.client, "abc");
  peer_shutdown(&c.client);
  ctx_run(&c);
  assert_int_equal(c.client.write_status, 0);
  assert_int_equal(c.client.shut_status, 0);
  ctx_teardown(&c);
}

static void test_tcp_reuseport_and_bind_flags(void **state) {
  (void)state;
  soon_loop loop;
  soon_tcp a, b, d, e;
  struct sockaddr_in addr;
  struct sockaddr_storage ss;
  int n = sizeof ss;
  loop_init_checked(&loop);
  assert_int_equal(soon_tcp_init(&loop, &a), 0);
  assert_int_equal(soon_tcp_init(&loop, &b), 0);
  assert_int_equal(soon_tcp_init(&loop, &d), 0);
  assert_int_equal(soon_tcp_init(&loop, &e), 0);
  assert_int_equal(soon_ip4_addr("127.0.0.1", 0, &addr), 0);

  /* Unknown flags, and IPV6ONLY on an IPv4 address. */
  assert_int_equal(soon_tcp_bind(&e, (struct sockaddr *)&addr, 0x80), -EINVAL);
  assert_int_equal(
      soon_tcp_bind(&e, (struct sockaddr *)&addr, SOON_TCP_IPV6ONLY), -EINVAL);
  assert_int_equal(soon_tcp_bind(&e, NULL, 0), -EINVAL);
  struct sockaddr bogus = {.sa_family = AF_UNIX};
  assert_int_equal(soon_tcp_bind(&e, &bogus, 0), -EINVAL);
  assert_int_equal(soon_tcp_bind(NULL, (struct sockaddr *)&addr, 0), -EINVAL);

  assert_int_equal(
      soon_tcp_bind(&a, (struct sockaddr *)&addr, SOON_TCP_REUSEPORT), 0);
  assert_int_equal(soon_listen((soon_stream *)&a, 8, never_conn), 0);
  assert_int_equal(soon_tcp_getsockname(&a, (struct sockaddr *)&ss, &n), 0);
  addr.sin_port = htons(port_of(&ss));
  /* Both ask for SO_REUSEPORT: they share the port. */
  assert_int_equal(
      soon_tcp_bind(&b, (struct sockaddr *)&addr, SOON_TCP_REUSEPORT), 0);
  assert_int_equal(soon_listen((soon_stream *)&b, 8, never_conn), 0);
  /* Without it, the port is taken (at bind, or at the latest at listen). */
  int r = soon_tcp_bind(&d, (struct sockaddr *)&addr, 0);
  if (r == 0)
    r = soon_listen((soon_stream *)&d, 8, never_conn);
  assert_int_equal(r, -EADDRINUSE);

  assert_int_equal(soon_close((soon_handle *)&a, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&b, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&d, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&e, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

static void test_tcp6_ipv6only(void **state) {
  (void)state;
  if (!have_ipv6())
    skip();
  soon_loop loop;
  soon_tcp t;
  struct sockaddr_in6 a;
  loop_init_checked(&loop);
  assert_int_equal(soon_tcp_init(&loop, &t), 0);
  assert_int_equal(soon_ip6_addr("::1", 0, &a), 0);
  assert_int_equal(soon_tcp_bind(&t, (struct sockaddr *)&a, SOON_TCP_IPV6ONLY),
                   0);
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ bad arguments */

static void test_bad_arguments(void **state) {
  (void)state;
  soon_loop loop;
  soon_tcp t, bound;
  soon_pipe p;
  soon_write_req wreq;
  soon_connect_req creq;
  soon_shutdown_req sreq;
  char byte = 'x';
  soon_buf buf = {&byte, 1};
  struct sockaddr_in addr;
  loop_init_checked(&loop);
  assert_int_equal(soon_tcp_init(NULL, &t), -EINVAL);
  assert_int_equal(soon_tcp_init(&loop, NULL), -EINVAL);
  assert_int_equal(soon_tcp_init(&loop, &t), 0);
  assert_int_equal(soon_tcp_init(&loop, &bound), 0);
  assert_int_equal(soon_pipe_init(&loop, &p), 0);
  assert_int_equal(soon_ip4_addr("127.0.0.1", 0, &addr), 0);
  soon_stream *s = (soon_stream *)&t;

  /* Reading. */
  assert_int_equal(soon_read_start(NULL, alloc_malloc, never_read), -EINVAL);
  assert_int_equal(soon_read_start(s, NULL, never_read), -EINVAL);
  assert_int_equal(soon_read_start(s, alloc_malloc, NULL), -EINVAL);
  assert_int_equal(soon_read_start(s, alloc_malloc, never_read), -ENOTCONN);
  assert_int_equal(soon_read_stop(NULL), -EINVAL);
  assert_int_equal(soon_read_stop(s), 0);

  /* Writing. */
  assert_int_equal(soon_write(NULL, s, &buf, 1, never_write), -EINVAL);
  assert_int_equal(soon_write(&wreq, NULL, &buf, 1, never_write), -EINVAL);
  assert_int_equal(soon_write(&wreq, s, NULL, 1, never_write), -EINVAL);
  assert_int_equal(soon_write(&wreq, s, &buf, 0, never_write), -EINVAL);
  assert_int_equal(soon_write(&wreq, s, &buf, 1, NULL), -EINVAL);
  int r = soon_write(&wreq, s, &buf, 1, never_write);
  assert_true(r == -EBADF || r == -ENOTCONN);
  assert_int_equal(soon_try_write(NULL, &buf, 1), -EINVAL);
  assert_int_equal(soon_try_write(s, NULL, 1), -EINVAL);
  assert_int_equal(soon_try_write(s, &buf, 0), -EINVAL);
  r = (int)soon_try_write(s, &buf, 1);
  assert_true(r == -EBADF || r == -ENOTCONN);
  assert_int_equal(soon_stream_write_queue_size(s), 0);

  /* Shutdown. */
  assert_int_equal(soon_shutdown(NULL, s, never_shut), -EINVAL);
  assert_int_equal(soon_shutdown(&sreq, NULL, never_shut), -EINVAL);
  assert_int_equal(soon_shutdown(&sreq, s, NULL), -EINVAL);
  assert_int_equal(soon_shutdown(&sreq, s, never_shut), -ENOTCONN);

  /* Listen and accept. */
  assert_int_equal(soon_listen(s, 8, never_conn), -EINVAL); /* unbound */
  assert_int_equal(soon_listen(NULL, 8, never_conn), -EINVAL);
  assert_int_equal(soon_tcp_bind(&bound, (struct sockaddr *)&addr, 0), 0);
  assert_int_equal(soon_listen((soon_stream *)&bound, 8, NULL), -EINVAL);
  assert_int_equal(soon_listen((soon_stream *)&bound, 8, never_conn), 0);
  assert_int_equal(soon_accept(NULL, s), -EINVAL);
  assert_int_equal(soon_accept((soon_stream *)&bound, NULL), -EINVAL);
  /* A pipe cannot take a tcp connection. */
  assert_int_equal(soon_accept((soon_stream *)&bound, (soon_stream *)&p),
                   -EINVAL);
  assert_int_equal(soon_accept((soon_stream *)&bound, s), -EAGAIN);

  /* Connect. */
  assert_int_equal(
      soon_tcp_connect(NULL, &t, (struct sockaddr *)&addr, never_connect),
      -EINVAL);
  assert_int_equal(
      soon_tcp_connect(&creq, NULL, (struct sockaddr *)&addr, never_connect),
      -EINVAL);
  assert_int_equal(soon_tcp_connect(&creq, &t, NULL, never_connect), -EINVAL);
  assert_int_equal(soon_tcp_connect(&creq, &t, (struct sockaddr *)&addr, NULL),
                   -EINVAL);
  assert_int_equal(soon_tcp_open(NULL, 0), -EINVAL);
  assert_int_equal(soon_tcp_getsockname(NULL, NULL, NULL), -EINVAL);

  /* Nothing works on a closing handle. */
  assert_int_equal(soon_close((soon_handle *)&t, NULL), 0);
  assert_int_equal(soon_read_start(s, alloc_malloc, never_read), -EINVAL);
  assert_int_equal(soon_write(&wreq, s, &buf, 1, never_write), -EINVAL);
  assert_int_equal(soon_shutdown(&sreq, s, never_shut), -EINVAL);
  assert_int_equal(soon_tcp_bind(&t, (struct sockaddr *)&addr, 0), -EINVAL);
  assert_int_equal(
      soon_tcp_connect(&creq, &t, (struct sockaddr *)&addr, never_connect),
      -EINVAL);
  assert_int_equal(soon_close((soon_handle *)&t, NULL), -EINVAL);

  assert_int_equal(soon_close((soon_handle *)&bound, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&p, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

/* read_start twice, and a second connect while one is in flight. */
static void twice_hook(ctx *c, peer *p, int ev) {
  if (p == &c->client && ev == EV_CONNECT) {
    assert_int_equal(p->connect_status, 0);
    peer_read_start(p);
    assert_int_equal(soon_read_start(&p->h.s, alloc_malloc, never_read),
                     -EALREADY);
    assert_int_equal(soon_read_stop(&p->h.s), 0);
    assert_int_equal(soon_read_stop(&p->h.s), 0); /* idempotent */
    peer_read_start(p);                           /* and again after stop */
    ctx_close_all(c);
  }
}

static void test_read_start_twice(void **state) {
  (void)state;
  ctx c;
  ctx_setup(&c, K_TCP4, twice_hook);
  ctx_connect(&c);
  soon_connect_req again;
  assert_int_equal(soon_tcp_connect(&again, &c.client.h.tcp,
                                    (struct sockaddr *)&c.ep.addr,
                                    never_connect),
                   -EALREADY);
  ctx_run(&c);
  assert_int_equal(c.client.connect_calls, 1);
  ctx_teardown(&c);
}

/* A connection the listener took from the kernel but nobody accepted is
 * closed with the listener, not leaked. */
static int count_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  assert_non_null(d);
  while (readdir(d))
    n++;
  closedir(d);
  return n;
}

typedef struct unaccepted {
  any_stream listener;
  soon_tcp client;
  soon_connect_req creq;
  int conn_cbs;
} unaccepted;

static void unaccepted_connection(soon_stream *server, int status) {
  unaccepted *u = server->data;
  assert_int_equal(status, 0);
  u->conn_cbs++;
  assert_int_equal(soon_close(&u->listener.h, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&u->client, NULL), 0);
}

static void unaccepted_connected(soon_connect_req *req, int status) {
  (void)req;
  assert_true(status == 0 || status == -ECANCELED);
}

static void test_unaccepted_closed_with_listener(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  endpoint ep;
  unaccepted u;
  memset(&u, 0, sizeof u);
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  stream_init(&loop, &u.listener, K_TCP4);
  endpoint_bind(&u.listener, &ep, K_TCP4);
  u.listener.h.data = &u;
  assert_int_equal(soon_listen(&u.listener.s, 8, unaccepted_connection), 0);
  int before = count_fds(); /* the listener's included */
  assert_int_equal(soon_tcp_init(&loop, &u.client), 0);
  assert_int_equal(soon_tcp_connect(&u.creq, &u.client,
                                    (struct sockaddr *)&ep.addr,
                                    unaccepted_connected),
                   0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(u.conn_cbs, 1);
  assert_int_equal(count_fds(), before - 1); /* all gone, listener too */
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

/* An alloc callback with no buffer: the read callback gets -ENOBUFS. */
static void alloc_none(soon_handle *h, size_t size, soon_buf *buf) {
  (void)h;
  (void)size;
  buf->base = NULL;
  buf->len = 0;
}

static void nobufs_read(soon_stream *s, ssize_t nread, const soon_buf *buf) {
  peer *p = (peer *)s;
  (void)buf;
  assert_int_equal(nread, -ENOBUFS);
  p->read_err = (int)nread;
  ctx_close_all(p->c);
}

static void nobufs_hook(ctx *c, peer *p, int ev) {
  if (p == &c->server && ev == EV_ACCEPT)
    assert_int_equal(soon_read_start(&p->h.s, alloc_none, nobufs_read), 0);
  else if (p == &c->client && ev == EV_CONNECT) {
    assert_int_equal(p->connect_status, 0);
    peer_write(p, "data");
  }
}

static void test_read_nobufs(void **state) {
  (void)state;
  ctx c;
  ctx_setup(&c, K_TCP4, nobufs_hook);
  ctx_connect(&c);
  ctx_run(&c);
  assert_int_equal(c.server.read_err, -ENOBUFS);
  ctx_teardown(&c);
}

/* A client bound to its own address first keeps it when it connects. */
static void bound_hook(ctx *c, peer *p, int ev) {
  if (p == &c->client && ev == EV_CONNECT) {
    assert_int_equal(p->connect_status, 0);
    struct sockaddr_storage mine, seen;
    int n1 = sizeof mine, n2 = sizeof seen;
    assert_int_equal(
        soon_tcp_getsockname(&p->h.tcp, (struct sockaddr *)&mine, &n1), 0);
    assert_int_equal(port_of(&mine), *(uint16_t *)c->data);
    if (c->accepts) {
      assert_int_equal(
          soon_tcp_getpeername(&c->server.h.tcp, (struct sockaddr *)&seen, &n2),
          0);
      assert_int_equal(port_of(&seen), port_of(&mine));
    }
    ctx_close_all(c);
  }
}

static void test_bind_then_connect(void **state) {
  (void)state;
  ctx c;
  ctx_setup(&c, K_TCP4, bound_hook);
  struct sockaddr_in a;
  struct sockaddr_storage ss;
  int n = sizeof ss;
  assert_int_equal(soon_ip4_addr("127.0.0.1", 0, &a), 0);
  assert_int_equal(soon_tcp_bind(&c.client.h.tcp, (struct sockaddr *)&a, 0), 0);
  assert_int_equal(
      soon_tcp_getsockname(&c.client.h.tcp, (struct sockaddr *)&ss, &n), 0);
  uint16_t port = port_of(&ss);
  assert_int_not_equal(port, 0);
  c.data = &port;
  ctx_connect(&c);
  ctx_run(&c);
  ctx_teardown(&c);
}

/* ------------------------------------------------------------ faults */

/* The peer aborts (SO_LINGER {1, 0} then close sends RST): the reader gets
 * -ECONNRESET, not a crash and not a clean EOF. */
static void reset_hook(ctx *c, peer *p, int ev) {
  if (p == &c->server && ev == EV_ACCEPT) {
    peer_read_start(p);
    struct linger lg = {1, 0};
    int fd = *(int *)c->data;
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    peer_close(&c->client); /* soon closes the fd: the RST goes out */
  } else if (p == &c->server && ev == EV_ERROR) {
    assert_int_equal(p->read_err, -ECONNRESET);
    ctx_close_all(c);
  } else if (p == &c->server && ev == EV_EOF) {
    fail_msg("EOF instead of a reset");
  }
}

static void test_peer_reset(void **state) {
  (void)state;
  ctx c;
  ctx_setup(&c, K_TCP4, reset_hook);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  assert_int_equal(
      connect(fd, (struct sockaddr *)&c.ep.addr, sizeof(struct sockaddr_in)),
      0);
  assert_int_equal(soon_tcp_open(&c.client.h.tcp, fd), 0);
  c.data = &fd;
  ctx_run(&c);
  assert_int_equal(c.server.read_err, -ECONNRESET);
  ctx_teardown(&c);
}

/* The client closes; the server sees EOF and keeps writing: the kernel
 * answers with a reset, and a write callback gets -EPIPE (or -ECONNRESET).
 * No SIGPIPE handler is installed: a SIGPIPE would kill this process. */
static void epipe_hook(ctx *c, peer *p, int ev) {
  if (p == &c->server && ev == EV_ACCEPT)
    peer_read_start(p);
  else if (p == &c->client && ev == EV_CONNECT) {
    assert_int_equal(p->connect_status, 0);
    peer_close(p);
  } else if (p == &c->server && ev == EV_EOF)
    peer_write(p, "x");
  else if (p == &c->server && ev == EV_WRITE) {
    /* Bounded: the reset arrives within a few writes on loopback. */
    if (p->write_status == 0 && p->write_calls < 1000)
      peer_write(p, "x");
    else
      ctx_close_all(c);
  }
}

static void run_epipe(kind k) {
  ctx c;
  ctx_setup(&c, k, epipe_hook);
  ctx_connect(&c);
  ctx_run(&c);
  assert_true(c.server.eof);
  assert_true(c.server.write_status == -EPIPE ||
              c.server.write_status == -ECONNRESET);
  ctx_teardown(&c);
}

static void test_write_after_peer_closed(void **state) {
  (void)state;
  run_epipe(K_TCP4);
}

static void test_unix_write_after_peer_closed(void **state) {
  (void)state;
  run_epipe(K_UNIX);
}

/* Writes that cannot complete (the server never reads), a pending shutdown
 * behind them, and a read in flight; then the client is closed. */
enum { INFLIGHT_N = 32, INFLIGHT_SIZE = 4 << 20 };

typedef struct inflight {
  soon_timer timer; /* first: the timer callback finds the test by it */
  ctx *c;
  char *big;
  soon_write_req reqs[INFLIGHT_N];
  int calls[INFLIGHT_N], status[INFLIGHT_N], order[INFLIGHT_N];
  int ncalls;
  int calls_at_close;
} inflight;

static void inflight_written(soon_write_req *req, int status) {
  inflight *f = req->data;
  int i = (int)(req - f->reqs);
  assert_int_equal(f->c->client.close_calls, 0); /* before the close cb */
  f->calls[i]++;
  f->status[i] = status;
  f->order[f->ncalls++] = i;
}

static void inflight_close(soon_timer *t) {
  inflight *f = (inflight *)t;
  /* 128 MiB cannot all be in the kernel: some writes are still queued. */
  assert_true(soon_stream_write_queue_size(&f->c->client.h.s) > 0);
  peer_close(&f->c->client);
  assert_int_equal(soon_stream_write_queue_size(&f->c->client.h.s), 0);
  assert_int_equal(f->ncalls, 0); /* callbacks wait for the loop */
  assert_int_equal(soon_close((soon_handle *)&f->timer, NULL), 0);
}

static void inflight_hook(ctx *c, peer *p, int ev) {
  inflight *f = c->data;
  if (p == &c->client && ev == EV_CONNECT) {
    assert_int_equal(p->connect_status, 0);
    peer_read_start(p);
    for (int i = 0; i < INFLIGHT_N; i++) {
      soon_buf b = {f->big, INFLIGHT_SIZE};
      f->reqs[i].data = f;
      assert_int_equal(
          soon_write(&f->reqs[i], &p->h.s, &b, 1, inflight_written), 0);
    }
    peer_shutdown(p);
    assert_int_equal(soon_timer_start(&f->timer, inflight_close, 0, 0), 0);
  } else if (p == &c->client && ev == EV_SHUT) {
    assert_int_equal(f->ncalls, INFLIGHT_N); /* writes first, in order */
  } else if (p == &c->client && ev == EV_CLOSE) {
    f->calls_at_close = f->ncalls;
    ctx_close_all(c);
  } else if (ev == EV_DATA || ev == EV_EOF || ev == EV_ERROR) {
    assert_true(p == &c->client && ev == EV_DATA); /* nothing is sent back */
  }
}

static void run_inflight(kind k) {
  ctx c;
  inflight f;
  memset(&f, 0, sizeof f);
  f.c = &c;
  f.big = calloc(1, INFLIGHT_SIZE);
  assert_non_null(f.big);
  ctx_setup(&c, k, inflight_hook);
  c.data = &f;
  assert_int_equal(soon_timer_init(&c.loop, &f.timer), 0);
  ctx_connect(&c);
  ctx_run(&c);
  assert_int_equal(f.ncalls, INFLIGHT_N);
  assert_int_equal(f.calls_at_close, INFLIGHT_N);
  int cancelled = 0;
  for (int i = 0; i < INFLIGHT_N; i++) {
    assert_int_equal(f.calls[i], 1);
    assert_int_equal(f.order[i], i);
    if (f.status[i] == -ECANCELED)
      cancelled++;
    else /* fully written ones may say 0, but only before the cancelled */
      assert_true(f.status[i] == 0 && cancelled == 0);
  }
  assert_true(cancelled > 0);
  assert_int_equal(f.status[INFLIGHT_N - 1], -ECANCELED);
  assert_int_equal(c.client.shut_calls, 1);
  assert_int_equal(c.client.shut_status, -ECANCELED);
  ctx_teardown(&c);
  free(f.big);
}

static void test_close_with_writes_in_flight(void **state) {
  (void)state;
  run_inflight(K_TCP4);
}

static void test_unix_close_with_writes_in_flight(void **state) {
  (void)state;
  run_inflight(K_UNIX);
}

/* A connect request cut short by closing its handle gets -ECANCELED, before
 * the close callback. */
static void cancel_hook(ctx *c, peer *p, int ev) {
  if (p == &c->client && ev == EV_CONNECT) {
    assert_int_equal(p->connect_status, -ECANCELED);
    assert_int_equal(p->close_calls, 0);
  } else if (p == &c->client && ev == EV_CLOSE) {
    assert_int_equal(p->connect_calls, 1);
    ctx_close_all(c);
  } else if (p == &c->server && ev == EV_ACCEPT) {
    peer_close(p); /* the kernel may have completed it: drop it */
  }
}

static void run_connect_cancel(kind k) {
  ctx c;
  ctx_setup(&c, k, cancel_hook);
  ctx_connect(&c);
  peer_close(&c.client);
  assert_int_equal(c.client.connect_calls, 0);
  ctx_run(&c);
  assert_int_equal(c.client.connect_calls, 1);
  assert_int_equal(c.client.connect_status, -ECANCELED);
  ctx_teardown(&c);
}

static void test_connect_cancelled_by_close(void **state) {
  (void)state;
  run_connect_cancel(K_TCP4);
}

static void test_unix_connect_cancelled_by_close(void **state) {
  (void)state;
  run_connect_cancel(K_UNIX);
}

/* A write queued before the connection is up goes out once it is, and its
 * callback follows the connect callback without any further event. */
static void early_hook(ctx *c, peer *p, int ev) {
  if (p == &c->server && ev == EV_ACCEPT)
    peer_read_start(p);
  else if (p == &c->client && ev == EV_CONNECT) {
    assert_int_equal(p->connect_status, 0);
    assert_int_equal(p->write_calls, 0);
  } else if (p == &c->client && ev == EV_WRITE) {
    assert_int_equal(p->connect_calls, 1);
    assert_int_equal(p->write_status, 0);
    /* The server holds the connection open and silent: only this callback
     * can end the test. */
    if (c->server.in_len == 5)
      ctx_close_all(c);
  } else if (p == &c->server && ev == EV_DATA) {
    if (p->in_len == 5 && c->client.write_calls)
      ctx_close_all(c);
  }
}

static void run_write_before_connect(kind k) {
  ctx c;
  ctx_setup(&c, k, early_hook);
  ctx_connect(&c);
  peer_write(&c.client, "early");
  ctx_run(&c);
  assert_int_equal(c.client.write_calls, 1);
  assert_int_equal(c.server.in_len, 5);
  assert_memory_equal(c.server.in, "early", 5);
  ctx_teardown(&c);
}

static void test_write_before_connect(void **state) {
  (void)state;
  run_write_before_connect(K_TCP4);
}

static void test_unix_write_before_connect(void **state) {
  (void)state;
  run_write_before_connect(K_UNIX);
}

/* The same when the connection fails: the write fails too. */
typedef struct failing {
  soon_tcp t;
  soon_connect_req creq;
  soon_write_req wreq;
  int connect_status, write_status, order;
} failing;

static void failing_connected(soon_connect_req *req, int status) {
  failing *f = req->data;
  f->connect_status = status;
  f->order = f->order * 10 + 1;
}

static void failing_written(soon_write_req *req, int status) {
  failing *f = req->data;
  f->write_status = status;
  f->order = f->order * 10 + 2;
  assert_int_equal(soon_close((soon_handle *)&f->t, NULL), 0);
}

static void test_write_before_refused_connect(void **state) {
  (void)state;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a;
  assert_int_equal(soon_ip4_addr("127.0.0.1", 0, &a), 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t alen = sizeof a;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
  close_fd(fd);

  soon_loop loop;
  soon_timer guard;
  failing f;
  memset(&f, 0, sizeof f);
  f.connect_status = f.write_status = 1;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  assert_int_equal(soon_tcp_init(&loop, &f.t), 0);
  f.creq.data = f.wreq.data = &f;
  assert_int_equal(
      soon_tcp_connect(&f.creq, &f.t, (struct sockaddr *)&a, failing_connected),
      0);
  soon_buf b = {"hello", 5};
  assert_int_equal(
      soon_write(&f.wreq, (soon_stream *)&f.t, &b, 1, failing_written), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(f.connect_status, -ECONNREFUSED);
  assert_true(f.write_status < 0);
  assert_int_equal(f.order, 12); /* connect first, then the write */
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

/* Write callbacks run in write order and never from inside soon_write; the
 * bytes arrive in order too. */
enum { ORDER_N = 100, ORDER_SRC = 4 << 20 };

typedef struct ordered {
  ctx *c;
  char *src;
  soon_write_req reqs[ORDER_N];
  int next;
  bool in_write;
  uint64_t sent, sent_hash;
  size_t max_queue;
} ordered;

static void ordered_written(soon_write_req *req, int status) {
  ordered *o = req->data;
  assert_false(o->in_write);
  assert_int_equal(status, 0);
  assert_int_equal(req - o->reqs, o->next);
  o->next++;
  if (o->next == ORDER_N) {
    assert_int_equal(soon_stream_write_queue_size(&o->c->client.h.s), 0);
    peer_shutdown(&o->c->client);
  }
}

static void ordered_hook(ctx *c, peer *p, int ev) {
  ordered *o = c->data;
  if (p == &c->server && ev == EV_ACCEPT)
    peer_read_start(p);
  else if (p == &c->client && ev == EV_CONNECT) {
    assert_int_equal(p->connect_status, 0);
    size_t off = 0;
    for (int i = 0; i < ORDER_N; i++) {
      /* 1..6 buffers (past the request's inline room), now and then 1 MiB
       * big so that later writes queue behind it. */
      soon_buf bufs[6];
      unsigned n = 1 + (unsigned)i % 6;
      for (unsigned j = 0; j < n; j++) {
        size_t len = (i % 10 == 5 && j == 0) ? (1u << 20) : 1 + (size_t)i + j;
        if (off + len > ORDER_SRC)
          off = 0;
        bufs[j].base = o->src + off;
        bufs[j].len = len;
        o->sent_hash = fnv1a(o->sent_hash, bufs[j].base, len);
        o->sent += len;
        off += len;
      }
      o->reqs[i].data = o;
      o->in_write = true;
      assert_int_equal(
          soon_write(&o->reqs[i], &p->h.s, bufs, n, ordered_written), 0);
      o->in_write = false;
      size_t q = soon_stream_write_queue_size(&p->h.s);
      if (q > o->max_queue)
        o->max_queue = q;
    }
    assert_int_equal(o->next, 0); /* not one callback from inside */
  } else if (p == &c->server && ev == EV_EOF) {
    assert_int_equal(p->in_total, o->sent);
    assert_int_equal(p->in_hash, o->sent_hash);
    ctx_close_all(c);
  } else if (ev == EV_ERROR)
    fail_msg("read error %d", p->read_err);
}

static void run_write_order(kind k) {
  ctx c;
  ordered o;
  memset(&o, 0, sizeof o);
  o.c = &c;
  o.sent_hash = FNV_INIT;
  o.src = malloc(ORDER_SRC);
  assert_non_null(o.src);
  uint64_t seed = 42;
  prng_fill(&seed, o.src, ORDER_SRC);
  ctx_setup(&c, k, ordered_hook);
  c.data = &o;
  ctx_connect(&c);
  ctx_run(&c);
  assert_int_equal(o.next, ORDER_N);
  assert_true(o.max_queue > 0); /* the queue grew, then drained */
  assert_int_equal(c.client.shut_status, 0);
  ctx_teardown(&c);
  free(o.src);
}

static void test_write_order(void **state) {
  (void)state;
  run_write_order(K_TCP4);
}

static void test_unix_write_order(void **state) {
  (void)state;
  run_write_order(K_UNIX);
}

/* More buffers than one writev takes (IOV_MAX): the request goes out in
 * several system calls, whole and in order. */
enum { MANY_BUFS = 3000 };

typedef struct many_bufs {
  char *src;
  soon_buf bufs[MANY_BUFS];
  soon_write_req req;
  uint64_t sent, sent_hash;
  int status, calls;
} many_bufs;

static void many_written(soon_write_req *req, int status) {
  ctx *c = req->data;
  many_bufs *m = c->data;
  m->status = status;
  m->calls++;
  peer_shutdown(&c->client);
}

static void many_hook(ctx *c, peer *p, int ev) {
  many_bufs *m = c->data;
  if (p == &c->server && ev == EV_ACCEPT)
    peer_read_start(p);
  else if (p == &c->client && ev == EV_CONNECT) {
    assert_int_equal(p->connect_status, 0);
    m->req.data = c;
    assert_int_equal(
        soon_write(&m->req, &p->h.s, m->bufs, MANY_BUFS, many_written), 0);
  } else if (p == &c->server && ev == EV_EOF) {
    assert_int_equal(p->in_total, m->sent);
    assert_int_equal(p->in_hash, m->sent_hash);
    ctx_close_all(c);
  } else if (ev == EV_ERROR)
    fail_msg("read error %d", p->read_err);
}

static void test_write_many_bufs(void **state) {
  (void)state;
  ctx c;
  many_bufs *m = calloc(1, sizeof *m);
  assert_non_null(m);
  m->src = malloc(3 * MANY_BUFS);
  assert_non_null(m->src);
  uint64_t seed = 3;
  prng_fill(&seed, m->src, 3 * MANY_BUFS);
  m->sent_hash = FNV_INIT;
  for (int i = 0; i < MANY_BUFS; i++) {
    /* Lengths 0..2: empty buffers in the middle are legal too. */
    m->bufs[i].base = m->src + 3 * i;
    m->bufs[i].len = (size_t)i % 3;
    m->sent += m->bufs[i].len;
    m->sent_hash = fnv1a(m->sent_hash, m->bufs[i].base, m->bufs[i].len);
  }
  m->status = 1;
  ctx_setup(&c, K_TCP4, many_hook);
  c.data = m;
  ctx_connect(&c);
  ctx_run(&c);
  assert_int_equal(m->calls, 1);
  assert_int_equal(m->status, 0);
  ctx_teardown(&c);
  free(m->src);
  free(m);
}

/* soon_try_write writes what fits now and says -EAGAIN when nothing does or
 * when writes are queued; the queue drains to 0 once the peer reads. */
typedef struct trying {
  char *buf;
  uint64_t tried;
  soon_write_req req;
  int write_status;
} trying;

enum { TRY_CHUNK = 64 << 10, TRY_WRITE = 1 << 20 };

static void trying_written(soon_write_req *req, int status) {
  ctx *c = req->data;
  trying *t = c->data;
  t->write_status = status;
  assert_int_equal(soon_stream_write_queue_size(&c->client.h.s), 0);
  peer_shutdown(&c->client);
}

static void trying_hook(ctx *c, peer *p, int ev) {
  trying *t = c->data;
  if (ev == EV_CONNECT)
    assert_int_equal(p->connect_status, 0);
  if ((ev == EV_CONNECT || ev == EV_ACCEPT) && c->accepts &&
      c->client.connect_calls) {
    soon_stream *s = &c->client.h.s;
    soon_buf b = {t->buf, TRY_CHUNK};
    ssize_t n;
    int rounds = 0;
    while ((n = soon_try_write(s, &b, 1)) > 0) {
      t->tried += (uint64_t)n;
      assert_true(++rounds < 100000); /* the kernel fills up eventually */
    }
    assert_int_equal(n, -EAGAIN);
    assert_true(t->tried > 0);
    assert_int_equal(soon_stream_write_queue_size(s), 0);
    soon_buf w = {t->buf, TRY_WRITE};
    t->req.data = c;
    assert_int_equal(soon_write(&t->req, s, &w, 1, trying_written), 0);
    assert_true(soon_stream_write_queue_size(s) > 0);
    assert_true(soon_stream_write_queue_size(s) <= TRY_WRITE);
    /* Queued writes come first: try_write must not jump the queue. */
    assert_int_equal(soon_try_write(s, &b, 1), -EAGAIN);
    peer_read_start(&c->server);
  } else if (p == &c->server && ev == EV_EOF) {
    assert_int_equal(p->in_total, t->tried + TRY_WRITE);
    ctx_close_all(c);
  } else if (ev == EV_ERROR)
    fail_msg("read error %d", p->read_err);
}

static void run_try_write(kind k) {
  ctx c;
  trying t;
  memset(&t, 0, sizeof t);
  t.write_status = 1;
  t.buf = calloc(1, TRY_WRITE);
  assert_non_null(t.buf);
  ctx_setup(&c, k, trying_hook);
  c.data = &t;
  ctx_connect(&c);
  ctx_run(&c);
  assert_int_equal(t.write_status, 0);
  assert_int_equal(c.client.shut_status, 0);
  ctx_teardown(&c);
  free(t.buf);
}

static void test_try_write(void **state) {
  (void)state;
  run_try_write(K_TCP4);
}

static void test_unix_try_write(void **state) {
  (void)state;
  run_try_write(K_UNIX);
}

/* Out of fds, the listener must not keep the loop spinning on connections
 * it cannot take. The soft limit is lowered just above the fds in use, a
 * few raw clients (moved to high fd numbers first) connect, and the loop's
 * iterations are counted for a short window after the -EMFILE. */
enum { EMFILE_CLIENTS = 8 };

typedef struct emfile {
  soon_loop *loop;
  any_stream listener;
  soon_tcp conns[EMFILE_CLIENTS];
  int accepted;
  int error;
  soon_check check;
  soon_timer window;
  unsigned long iterations;
  struct rlimit saved;
} emfile;

static void emfile_count(soon_check *h) {
  emfile *e = h->data;
  e->iterations++;
}

static void emfile_window_end(soon_timer *t) {
  emfile *e = t->data;
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &e->saved), 0);
  assert_int_equal(soon_close(&e->listener.h, NULL), 0);
  for (int i = 0; i < e->accepted; i++)
    assert_int_equal(soon_close((soon_handle *)&e->conns[i], NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&e->check, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&e->window, NULL), 0);
}

static void emfile_connection(soon_stream *server, int status) {
  emfile *e = server->data;
  if (status == 0) {
    assert_true(e->accepted < EMFILE_CLIENTS);
    soon_tcp *t = &e->conns[e->accepted];
    assert_int_equal(soon_tcp_init(e->loop, t), 0);
    assert_int_equal(soon_accept(server, (soon_stream *)t), 0);
    e->accepted++;
    return;
  }
  assert_true(status == -EMFILE || status == -ENFILE);
  if (e->error)
    return; /* a later burst: the window is already open */
  e->error = status;
  e->check.data = e->window.data = e;
  assert_int_equal(soon_check_start(&e->check, emfile_count), 0);
  assert_int_equal(soon_timer_start(&e->window, emfile_window_end, 100, 0), 0);
}

static struct rlimit nofile_saved;

/* Put the fd limit back even when the test failed with it lowered. */
static int restore_nofile(void **state) {
  setrlimit(RLIMIT_NOFILE, &nofile_saved);
  return cleanup_paths(state);
}

static void test_emfile_does_not_spin(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  endpoint ep;
  emfile e;
  memset(&e, 0, sizeof e);
  e.loop = &loop;
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &e.saved), 0);
  nofile_saved = e.saved;
  if (e.saved.rlim_cur < 1000)
    skip(); /* no room for the clients at fds 900 and up */
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  assert_int_equal(soon_check_init(&loop, &e.check), 0);
  assert_int_equal(soon_timer_init(&loop, &e.window), 0);
  stream_init(&loop, &e.listener, K_TCP4);
  endpoint_bind(&e.listener, &ep, K_TCP4);
  e.listener.h.data = &e;
  assert_int_equal(soon_listen(&e.listener.s, 64, emfile_connection), 0);

  /* The clients live at high fd numbers (below FD_SETSIZE, though they are
   * not watched), so the low numbers are what accept competes for. */
  int cli[EMFILE_CLIENTS];
  for (int i = 0; i < EMFILE_CLIENTS; i++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    cli[i] = fcntl(fd, F_DUPFD_CLOEXEC, 900 + i);
    assert_true(cli[i] >= 900);
    close_fd(fd);
    assert_int_equal(connect(cli[i], (struct sockaddr *)&ep.addr,
                             sizeof(struct sockaddr_in)),
                     0);
  }
  int lowest = dup(0);
  assert_true(lowest >= 0);
  close_fd(lowest);
  /* Two more fds: a couple of accepts succeed, then -EMFILE. */
  struct rlimit low = {(rlim_t)lowest + 2, e.saved.rlim_max};
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);

  soon_run(&loop, SOON_RUN_DEFAULT);
  setrlimit(RLIMIT_NOFILE, &e.saved); /* also if an assertion failed above */

  assert_true(e.error == -EMFILE || e.error == -ENFILE);
  assert_true(e.accepted >= 1);
  assert_true(e.accepted < EMFILE_CLIENTS);
  /* A spinning loop turns millions of times in 100 ms; a waiting one a
   * handful. The bound is a count, not a time. */
  assert_true(e.iterations < 1000);
  for (int i = 0; i < EMFILE_CLIENTS; i++)
    close_fd(cli[i]);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ owed on close
 */

/* Closing a stream before its connection is up cancels all it owes: the
 * connect, write and shutdown callbacks each get -ECANCELED once, in that
 * order, every one before the close callback (on every backend). A unix
 * connect is made at once (its callback is still owed, and cancelled), so
 * the write and shutdown may be done before the close: they then say 0. */
static int owed_events[8], nowed;

static void owed_hook(ctx *c, peer *p, int ev) {
  if (p == &c->client) {
    assert_true(nowed < 8);
    owed_events[nowed++] = ev;
    if (ev == EV_CLOSE)
      ctx_close_all(c);
  } else if (p == &c->server && ev == EV_ACCEPT) {
    peer_close(p); /* the kernel may have completed it: drop it */
  }
}

static void run_close_cancels_owed(kind k) {
  ctx c;
  ctx_setup(&c, k, owed_hook);
  nowed = 0;
  ctx_connect(&c);
  peer_write(&c.client, "never sent");
  peer_shutdown(&c.client);
  peer_close(&c.client);
  assert_int_equal(nowed, 0); /* nothing from inside soon_close */
  ctx_run(&c);
  assert_int_equal(nowed, 4);
  assert_int_equal(owed_events[0], EV_CONNECT);
  assert_int_equal(owed_events[1], EV_WRITE);
  assert_int_equal(owed_events[2], EV_SHUT);
  assert_int_equal(owed_events[3], EV_CLOSE);
  assert_int_equal(c.client.connect_status, -ECANCELED);
  if (k == K_UNIX) {
    assert_true(c.client.write_status == 0 ||
                c.client.write_status == -ECANCELED);
    if (c.client.write_status == -ECANCELED) /* a shutdown waits for it */
      assert_int_equal(c.client.shut_status, -ECANCELED);
    assert_true(c.client.shut_status == 0 ||
                c.client.shut_status == -ECANCELED);
  } else {
    assert_int_equal(c.client.write_status, -ECANCELED);
    assert_int_equal(c.client.shut_status, -ECANCELED);
  }
  ctx_teardown(&c);
}

static void test_close_cancels_owed(void **state) {
  (void)state;
  run_close_cancels_owed(K_TCP4);
}

static void test_unix_close_cancels_owed(void **state) {
  (void)state;
  run_close_cancels_owed(K_UNIX);
}

/* No buffer from alloc_cb (len 0, or no base) is -ENOBUFS for that try
 * only: reading stays started and the bytes wait, so the next alloc_cb that
 * gives a buffer gets them all. */
static int scarce_left, scarce_nobufs;

static void alloc_scarce(soon_handle *h, size_t size, soon_buf *buf) {
  alloc_malloc(h, size, buf);
  if (scarce_left == 2)
    buf->len = 0;
  else if (scarce_left == 1) {
    free(buf->base);
    buf->base = NULL;
  }
  if (scarce_left > 0)
    scarce_left--;
}

static void scarce_read(soon_stream *s, ssize_t nread, const soon_buf *buf) {
  peer *p = (peer *)s;
  if (nread == -ENOBUFS) {
    free(buf->base);
    scarce_nobufs++;
    assert_true(soon_is_active(&p->h.h)); /* still reading */
    return;
  }
  peer_read(s, nread, buf);
}

static void scarce_hook(ctx *c, peer *p, int ev) {
  if (p == &c->server && ev == EV_ACCEPT)
    assert_int_equal(soon_read_start(&p->h.s, alloc_scarce, scarce_read), 0);
  else if (p == &c->client && ev == EV_CONNECT) {
    assert_int_equal(p->connect_status, 0);
    peer_write(p, "data");
  } else if (p == &c->server && ev == EV_DATA && p->in_len == 4)
    ctx_close_all(c);
}

static void test_read_nobufs_then_buffer(void **state) {
  (void)state;
  ctx c;
  ctx_setup(&c, K_TCP4, scarce_hook);
  scarce_left = 2;
  scarce_nobufs = 0;
  ctx_connect(&c);
  ctx_run(&c);
  assert_int_equal(scarce_nobufs, 2);
  assert_int_equal(c.server.in_len, 4);
  assert_memory_equal(c.server.in, "data", 4);
  ctx_teardown(&c);
}

/* NULL where a handle is due: -EINVAL from the calls that return errors, 0
 * from the queue size, never a crash. */
static void test_null_handle(void **state) {
  (void)state;
  struct sockaddr_storage ss;
  int len = sizeof ss;
  char name[64];
  size_t nlen = sizeof name;
  assert_int_equal(soon_tcp_set_nodelay(NULL, 1), -EINVAL);
  assert_int_equal(soon_tcp_set_keepalive(NULL, 0, 0), -EINVAL);
  assert_int_equal(soon_tcp_set_keepalive(NULL, 1, 60), -EINVAL);
  assert_int_equal(soon_tcp_getpeername(NULL, (struct sockaddr *)&ss, &len),
                   -EINVAL);
  assert_int_equal(soon_pipe_getpeername(NULL, name, &nlen), -EINVAL);
  assert_int_equal(soon_stream_write_queue_size(NULL), 0);
}

static int raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  return 0;
}

int main(void) {
  raise_nofile();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_tcp4_echo_1, cleanup_paths),
      cmocka_unit_test_teardown(test_tcp4_echo_64k, cleanup_paths),
      cmocka_unit_test_teardown(test_tcp4_echo_big, cleanup_paths),
      cmocka_unit_test_teardown(test_tcp6_echo_1, cleanup_paths),
      cmocka_unit_test_teardown(test_tcp6_echo_64k, cleanup_paths),
      cmocka_unit_test_teardown(test_unix_echo_1, cleanup_paths),
      cmocka_unit_test_teardown(test_unix_echo_64k, cleanup_paths),
      cmocka_unit_test_teardown(test_unix_echo_big, cleanup_paths),
      cmocka_unit_test_teardown(test_many_connections, cleanup_paths),
      cmocka_unit_test_teardown(test_half_close_client_first, cleanup_paths),
      cmocka_unit_test_teardown(test_half_close_server_first, cleanup_paths),
      cmocka_unit_test_teardown(test_unix_half_close, cleanup_paths),
      cmocka_unit_test_teardown(test_shutdown_before_connect, cleanup_paths),
      cmocka_unit_test_teardown(test_unix_shutdown_before_connect,
                                cleanup_paths),
      cmocka_unit_test(test_connect_refused),
      cmocka_unit_test(test_ip_addr_parse),
      cmocka_unit_test_teardown(test_accept_deferred, cleanup_paths),
      cmocka_unit_test_teardown(test_tcp_options, cleanup_paths),
      cmocka_unit_test_teardown(test_tcp_open, cleanup_paths),
      cmocka_unit_test(test_tcp_reuseport_and_bind_flags),
      cmocka_unit_test(test_tcp6_ipv6only),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test_teardown(test_read_start_twice, cleanup_paths),
      cmocka_unit_test_teardown(test_unaccepted_closed_with_listener,
                                cleanup_paths),
      cmocka_unit_test_teardown(test_read_nobufs, cleanup_paths),
      cmocka_unit_test_teardown(test_bind_then_connect, cleanup_paths),
      cmocka_unit_test_teardown(test_peer_reset, cleanup_paths),
      cmocka_unit_test_teardown(test_write_after_peer_closed, cleanup_paths),
      cmocka_unit_test_teardown(test_unix_write_after_peer_closed,
                                cleanup_paths),
      cmocka_unit_test_teardown(test_close_with_writes_in_flight,
                                cleanup_paths),
      cmocka_unit_test_teardown(test_unix_close_with_writes_in_flight,
                                cleanup_paths),
      cmocka_unit_test_teardown(test_connect_cancelled_by_close, cleanup_paths),
      cmocka_unit_test_teardown(test_unix_connect_cancelled_by_close,
                                cleanup_paths),
      cmocka_unit_test_teardown(test_write_before_connect, cleanup_paths),
      cmocka_unit_test_teardown(test_unix_write_before_connect, cleanup_paths),
      cmocka_unit_test(test_write_before_refused_connect),
      cmocka_unit_test_teardown(test_write_order, cleanup_paths),
      cmocka_unit_test_teardown(test_unix_write_order, cleanup_paths),
      cmocka_unit_test_teardown(test_write_many_bufs, cleanup_paths),
      cmocka_unit_test_teardown(test_try_write, cleanup_paths),
      cmocka_unit_test_teardown(test_unix_try_write, cleanup_paths),
      cmocka_unit_test_teardown(test_emfile_does_not_spin, restore_nofile),
      cmocka_unit_test_teardown(test_close_cancels_owed, cleanup_paths),
      cmocka_unit_test_teardown(test_unix_close_cancels_owed, cleanup_paths),
      cmocka_unit_test(test_null_handle),
      cmocka_unit_test_teardown(test_read_nobufs_then_buffer, cleanup_paths),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
