/* pingpong/soon.c: conns= TCP clients and their server in one soon loop,
 * one 5-byte ping in flight per connection; round trips per second. */
#include "../soon_util.h"

#define PING "PING\n"
#define PING_LEN 5

typedef struct conn {
  soon_tcp tcp;
  soon_connect_req creq;
  soon_write_req wreq; /* the usual write; a second one in flight is malloc'd */
  int wbusy;
  uint64_t sent, recvd; /* bytes (clients) */
  char rbuf[1024], wbuf[1024];
} conn;

typedef struct spare_write {
  soon_write_req req;
  char bytes[];
} spare_write;

static soon_loop loop;
static soon_tcp server;
static soon_timer stop_timer;
static conn *clients, *servers;
static int nconns, naccepted, nconnected, nclosed, stopping;
static uint64_t quota = UINT64_MAX; /* pings to send in all (count mode) */
static uint64_t pings, pongs, pongs_at_stop, echoed, spares;
static uint64_t t_start, t_stop;
static double duration;

static void on_write(soon_write_req *req, int status) {
  if (status != 0)
    bench_fail("write: %s", soon_strerror(status));
  if (req->data)
    ((conn *)req->data)->wbusy = 0;
  else
    free(req);
}

/* Write n bytes from src on c, copying them (the caller's buffer is reused). */
static void send_bytes(conn *c, const char *src, size_t n) {
  soon_buf b;
  soon_write_req *req;
  if (!c->wbusy && n <= sizeof c->wbuf) {
    c->wbusy = 1;
    memcpy(c->wbuf, src, n);
    b = (soon_buf){c->wbuf, n};
    req = &c->wreq;
    req->data = c;
  } else {
    spare_write *sw = malloc(sizeof *sw + n);
    BENCH_CHECK(sw);
    memcpy(sw->bytes, src, n);
    b = (soon_buf){sw->bytes, n};
    req = &sw->req;
    req->data = NULL;
    spares++;
  }
  BENCH_OK(soon_write(req, (soon_stream *)&c->tcp, &b, 1, on_write));
}

static void alloc_cb(soon_handle *h, size_t suggested, soon_buf *buf) {
  (void)suggested;
  conn *c = h->data;
  *buf = (soon_buf){c->rbuf, sizeof c->rbuf};
}

static void on_server_closed(soon_handle *h) { (void)h; }

static void echo_read(soon_stream *s, ssize_t nread, const soon_buf *buf) {
  conn *c = s->data;
  if (nread > 0) {
    echoed += (uint64_t)nread;
    send_bytes(c, buf->base, (size_t)nread);
  } else if (nread == SOON_EOF) {
    soon_close((soon_handle *)s, on_server_closed);
  } else if (nread < 0) {
    bench_fail("server read: %s", soon_strerror((int)nread));
  }
}

static void send_ping(conn *c) {
  pings++;
  c->sent += PING_LEN;
  send_bytes(c, PING, PING_LEN);
}

static void on_client_closed(soon_handle *h) {
  (void)h;
  if (++nclosed == nconns)
    soon_close((soon_handle *)&server, NULL);
}

static void client_read(soon_stream *s, ssize_t nread, const soon_buf *buf) {
  conn *c = s->data;
  if (nread == 0)
    return;
  if (nread < 0)
    bench_fail("client read: %s", soon_strerror((int)nread));
  for (ssize_t i = 0; i < nread; i++)
    if (buf->base[i] != PING[(c->recvd + (uint64_t)i) % PING_LEN])
      bench_fail("pong corrupted");
  c->recvd += (uint64_t)nread;
  if (c->recvd > c->sent)
    bench_fail("more pong than ping");
  if (c->recvd < c->sent)
    return; /* the rest of this pong is on its way */
  pongs++;
  if (!stopping && pings < quota)
    send_ping(c);
  else
    soon_close((soon_handle *)&c->tcp, on_client_closed);
}

static void on_stop(soon_timer *t) {
  stopping = 1;
  t_stop = bench_ns();
  pongs_at_stop = pongs;
  soon_close((soon_handle *)t, NULL);
}

static void on_connect(soon_connect_req *req, int status) {
  conn *c = req->data;
  if (status != 0)
    bench_fail("connect: %s", soon_strerror(status));
  BENCH_OK(soon_tcp_set_nodelay(&c->tcp, 1));
  BENCH_OK(soon_read_start((soon_stream *)&c->tcp, alloc_cb, client_read));
  if (++nconnected < nconns)
    return;
  /* Every client is connected: the clock starts with the first pings. */
  t_start = bench_ns();
  if (quota == UINT64_MAX) {
    BENCH_OK(soon_timer_init(&loop, &stop_timer));
    soon_update_time(&loop); /* its cached time predates the set-up */
    BENCH_OK(
        soon_timer_start(&stop_timer, on_stop, (uint64_t)(duration * 1000), 0));
  }
  for (int i = 0; i < nconns; i++)
    if (pings < quota)
      send_ping(&clients[i]);
}

static void on_connection(soon_stream *srv, int status) {
  if (status != 0)
    bench_fail("accept: %s", soon_strerror(status));
  BENCH_CHECK(naccepted < nconns);
  conn *c = &servers[naccepted++];
  BENCH_OK(soon_tcp_init(&loop, &c->tcp));
  c->tcp.data = c;
  BENCH_OK(soon_accept(srv, (soon_stream *)&c->tcp));
  BENCH_OK(soon_tcp_set_nodelay(&c->tcp, 1));
  BENCH_OK(soon_read_start((soon_stream *)&c->tcp, alloc_cb, echo_read));
}

int main(int argc, char **argv) {
  char impl[64], name[64];
  nconns = (int)bench_arg(argc, argv, "conns", 1);
  duration = bench_arg(argc, argv, "duration", 0.5);
  double rt = bench_arg(argc, argv, "rt", 0); /* count mode, for callgrind */
  if (rt > 0)
    quota = (uint64_t)rt;
  snprintf(name, sizeof name, "pingpong-%d", nconns);
  bench_nofile(2 * (unsigned long)nconns + 64);
  soon_bench_loop(&loop, impl, sizeof impl);
  clients = calloc((size_t)nconns, sizeof *clients);
  servers = calloc((size_t)nconns, sizeof *servers);
  BENCH_CHECK(clients && servers);

  struct sockaddr_in addr = bench_loopback(0);
  int len = sizeof addr;
  BENCH_OK(soon_tcp_init(&loop, &server));
  BENCH_OK(soon_tcp_bind(&server, (struct sockaddr *)&addr, 0));
  BENCH_OK(soon_listen((soon_stream *)&server, 1024, on_connection));
  BENCH_OK(soon_tcp_getsockname(&server, (struct sockaddr *)&addr, &len));
  for (int i = 0; i < nconns; i++) {
    conn *c = &clients[i];
    BENCH_OK(soon_tcp_init(&loop, &c->tcp));
    c->tcp.data = c;
    c->creq.data = c;
    BENCH_OK(soon_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&addr,
                              on_connect));
  }
  BENCH_OK(soon_run(&loop, SOON_RUN_DEFAULT));
  uint64_t t_end = bench_ns();

  /* Self-check: every ping answered, every byte echoed, everything closed. */
  BENCH_CHECK(nclosed == nconns && naccepted == nconns);
  BENCH_CHECK(pongs == pings && pings > 0);
  uint64_t sent = 0;
  for (int i = 0; i < nconns; i++) {
    BENCH_CHECK(clients[i].recvd == clients[i].sent);
    sent += clients[i].sent;
  }
  BENCH_CHECK(echoed == sent);
  BENCH_OK(soon_loop_close(&loop));
  double rate = quota == UINT64_MAX
                    ? (double)pongs_at_stop / ((double)(t_stop - t_start) / 1e9)
                    : (double)pongs / ((double)(t_end - t_start) / 1e9);
  bench_result(name, impl, rate, "rt/s");
  fprintf(stderr, "%s: %llu round trips, %llu spare writes\n", impl,
          (unsigned long long)pongs, (unsigned long long)spares);
  free(clients);
  free(servers);
  return 0;
}
