/* pingpong/uv.c: conns= TCP clients and their server in one libuv loop,
 * one 5-byte ping in flight per connection; round trips per second. */
#include "common.h"
#include <uv.h>

#define PING "PING\n"
#define PING_LEN 5

typedef struct conn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq; /* the usual write; a second one in flight is malloc'd */
  int wbusy;
  uint64_t sent, recvd;
  char rbuf[1024], wbuf[1024];
} conn;

typedef struct spare_write {
  uv_write_t req;
  char bytes[];
} spare_write;

static uv_loop_t loop;
static uv_tcp_t server;
static uv_timer_t stop_timer;
static conn *clients, *servers;
static int nconns, naccepted, nconnected, nclosed, stopping;
static uint64_t quota = UINT64_MAX;
static uint64_t pings, pongs, pongs_at_stop, echoed, spares;
static uint64_t t_start, t_stop;
static double duration;

static void on_write(uv_write_t *req, int status) {
  if (status != 0)
    bench_fail("write: %s", uv_strerror(status));
  if (req->data)
    ((conn *)req->data)->wbusy = 0;
  else
    free(req);
}

static void send_bytes(conn *c, const char *src, size_t n) {
  uv_buf_t b;
  uv_write_t *req;
  if (!c->wbusy && n <= sizeof c->wbuf) {
    c->wbusy = 1;
    memcpy(c->wbuf, src, n);
    b = uv_buf_init(c->wbuf, (unsigned)n);
    req = &c->wreq;
    req->data = c;
  } else {
    spare_write *sw = malloc(sizeof *sw + n);
    BENCH_CHECK(sw);
    memcpy(sw->bytes, src, n);
    b = uv_buf_init(sw->bytes, (unsigned)n);
    req = &sw->req;
    req->data = NULL;
    spares++;
  }
  BENCH_OK(uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_write));
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  conn *c = h->data;
  *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void echo_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn *c = s->data;
  if (nread > 0) {
    echoed += (uint64_t)nread;
    send_bytes(c, buf->base, (size_t)nread);
  } else if (nread == UV_EOF) {
    uv_close((uv_handle_t *)s, NULL);
  } else if (nread < 0) {
    bench_fail("server read: %s", uv_strerror((int)nread));
  }
}

static void send_ping(conn *c) {
  pings++;
  c->sent += PING_LEN;
  send_bytes(c, PING, PING_LEN);
}

static void on_client_closed(uv_handle_t *h) {
  (void)h;
  if (++nclosed == nconns)
    uv_close((uv_handle_t *)&server, NULL);
}

static void client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn *c = s->data;
  if (nread == 0)
    return;
  if (nread < 0)
    bench_fail("client read: %s", uv_strerror((int)nread));
  for (ssize_t i = 0; i < nread; i++)
    if (buf->base[i] != PING[(c->recvd + (uint64_t)i) % PING_LEN])
      bench_fail("pong corrupted");
  c->recvd += (uint64_t)nread;
  if (c->recvd > c->sent)
    bench_fail("more pong than ping");
  if (c->recvd < c->sent)
    return;
  pongs++;
  if (!stopping && pings < quota)
    send_ping(c);
  else
    uv_close((uv_handle_t *)&c->tcp, on_client_closed);
}

static void on_stop(uv_timer_t *t) {
  stopping = 1;
  t_stop = bench_ns();
  pongs_at_stop = pongs;
  uv_close((uv_handle_t *)t, NULL);
}

static void on_connect(uv_connect_t *req, int status) {
  conn *c = req->data;
  if (status != 0)
    bench_fail("connect: %s", uv_strerror(status));
  BENCH_OK(uv_tcp_nodelay(&c->tcp, 1));
  BENCH_OK(uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, client_read));
  if (++nconnected < nconns)
    return;
  t_start = bench_ns();
  if (quota == UINT64_MAX) {
    BENCH_OK(uv_timer_init(&loop, &stop_timer));
    uv_update_time(&loop); /* its cached time predates the set-up */
    BENCH_OK(
        uv_timer_start(&stop_timer, on_stop, (uint64_t)(duration * 1000), 0));
  }
  for (int i = 0; i < nconns; i++)
    if (pings < quota)
      send_ping(&clients[i]);
}

static void on_connection(uv_stream_t *srv, int status) {
  if (status != 0)
    bench_fail("accept: %s", uv_strerror(status));
  BENCH_CHECK(naccepted < nconns);
  conn *c = &servers[naccepted++];
  BENCH_OK(uv_tcp_init(&loop, &c->tcp));
  c->tcp.data = c;
  BENCH_OK(uv_accept(srv, (uv_stream_t *)&c->tcp));
  BENCH_OK(uv_tcp_nodelay(&c->tcp, 1));
  BENCH_OK(uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, echo_read));
}

int main(int argc, char **argv) {
  char name[64];
  nconns = (int)bench_arg(argc, argv, "conns", 1);
  duration = bench_arg(argc, argv, "duration", 0.5);
  double rt = bench_arg(argc, argv, "rt", 0);
  if (rt > 0)
    quota = (uint64_t)rt;
  snprintf(name, sizeof name, "pingpong-%d", nconns);
  bench_nofile(2 * (unsigned long)nconns + 64);
  BENCH_OK(uv_loop_init(&loop));
  clients = calloc((size_t)nconns, sizeof *clients);
  servers = calloc((size_t)nconns, sizeof *servers);
  BENCH_CHECK(clients && servers);

  struct sockaddr_in addr = bench_loopback(0);
  int len = sizeof addr;
  BENCH_OK(uv_tcp_init(&loop, &server));
  BENCH_OK(uv_tcp_bind(&server, (struct sockaddr *)&addr, 0));
  BENCH_OK(uv_listen((uv_stream_t *)&server, 1024, on_connection));
  BENCH_OK(uv_tcp_getsockname(&server, (struct sockaddr *)&addr, &len));
  for (int i = 0; i < nconns; i++) {
    conn *c = &clients[i];
    BENCH_OK(uv_tcp_init(&loop, &c->tcp));
    c->tcp.data = c;
    c->creq.data = c;
    BENCH_OK(uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&addr,
                            on_connect));
  }
  BENCH_OK(uv_run(&loop, UV_RUN_DEFAULT));
  uint64_t t_end = bench_ns();

  BENCH_CHECK(nclosed == nconns && naccepted == nconns);
  BENCH_CHECK(pongs == pings && pings > 0);
  uint64_t sent = 0;
  for (int i = 0; i < nconns; i++) {
    BENCH_CHECK(clients[i].recvd == clients[i].sent);
    sent += clients[i].sent;
  }
  BENCH_CHECK(echoed == sent);
  BENCH_OK(uv_loop_close(&loop));
  double rate = quota == UINT64_MAX
                    ? (double)pongs_at_stop / ((double)(t_stop - t_start) / 1e9)
                    : (double)pongs / ((double)(t_end - t_start) / 1e9);
  bench_result(name, "libuv", rate, "rt/s");
  fprintf(stderr, "libuv: %llu round trips, %llu spare writes\n",
          (unsigned long long)pongs, (unsigned long long)spares);
  free(clients);
  free(servers);
  return 0;
}
