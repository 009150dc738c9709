/* pump/soon.c: conns= clients keep two 64 KiB writes queued to servers in
 * the same loop, which count and spot-check every byte; Gbit/s. */
#include "../soon_util.h"

#define BUFSZ 65536
#define INFLIGHT 2

typedef struct client {
  soon_tcp tcp;
  soon_connect_req creq;
  soon_write_req wreq[INFLIGHT];
  soon_shutdown_req sreq;
  int inflight;
  uint64_t sent;
} client;

typedef struct sconn {
  soon_tcp tcp;
  uint64_t recvd;
} sconn;

static soon_loop loop;
static soon_tcp server;
static soon_timer stop_timer;
static client *clients;
static sconn *servers;
static int nconns, naccepted, nconnected, neof, stopping;
static uint64_t received, received_at_stop, t_start, t_stop;
static double duration;
static char wbuf[BUFSZ], rbuf[BUFSZ];

static void on_closed(soon_handle *h) { (void)h; }

static void on_shutdown(soon_shutdown_req *req, int status) {
  if (status != 0)
    bench_fail("shutdown: %s", soon_strerror(status));
  soon_close((soon_handle *)req->handle, on_closed);
}

static void on_write(soon_write_req *req, int status);

static void send_buf(client *c, soon_write_req *req) {
  soon_buf b = {wbuf, BUFSZ};
  req->data = c;
  c->inflight++;
  BENCH_OK(soon_write(req, (soon_stream *)&c->tcp, &b, 1, on_write));
}

static void on_write(soon_write_req *req, int status) {
  client *c = req->data;
  if (status != 0)
    bench_fail("write: %s", soon_strerror(status));
  c->sent += BUFSZ;
  c->inflight--;
  if (!stopping)
    send_buf(c, req);
  else if (c->inflight == 0)
    BENCH_OK(soon_shutdown(&c->sreq, (soon_stream *)&c->tcp, on_shutdown));
}

static void on_stop(soon_timer *t) {
  /* On a loaded machine the stop can come before the first byte is read:
   * nothing would be measured, so the run goes on for one more period. */
  if (!received) {
    BENCH_OK(soon_timer_start(t, on_stop, (uint64_t)(duration * 1000), 0));
    return;
  }
  stopping = 1;
  t_stop = bench_ns();
  received_at_stop = received;
  soon_close((soon_handle *)t, NULL);
}

static void on_connect(soon_connect_req *req, int status) {
  (void)req;
  if (status != 0)
    bench_fail("connect: %s", soon_strerror(status));
  if (++nconnected < nconns)
    return;
  t_start = bench_ns();
  BENCH_OK(soon_timer_init(&loop, &stop_timer));
  soon_update_time(&loop); /* its cached time predates the set-up */
  BENCH_OK(
      soon_timer_start(&stop_timer, on_stop, (uint64_t)(duration * 1000), 0));
  for (int i = 0; i < nconns; i++)
    for (int k = 0; k < INFLIGHT; k++)
      send_buf(&clients[i], &clients[i].wreq[k]);
}

static void alloc_cb(soon_handle *h, size_t suggested, soon_buf *buf) {
  (void)h, (void)suggested;
  *buf = (soon_buf){rbuf, sizeof rbuf}; /* one loop thread: one buffer */
}

static void server_read(soon_stream *s, ssize_t nread, const soon_buf *buf) {
  sconn *c = s->data;
  if (nread > 0) {
    /* Spot-check: first and last byte are where the stream says. */
    if ((unsigned char)buf->base[0] != (unsigned char)wbuf[c->recvd % BUFSZ] ||
        (unsigned char)buf->base[nread - 1] !=
            (unsigned char)wbuf[(c->recvd + (uint64_t)nread - 1) % BUFSZ])
      bench_fail("stream corrupted at %llu", (unsigned long long)c->recvd);
    c->recvd += (uint64_t)nread;
    received += (uint64_t)nread;
  } else if (nread == SOON_EOF) {
    soon_close((soon_handle *)s, on_closed);
    if (++neof == nconns)
      soon_close((soon_handle *)&server, NULL);
  } else if (nread < 0) {
    bench_fail("server read: %s", soon_strerror((int)nread));
  }
}

static void on_connection(soon_stream *srv, int status) {
  if (status != 0)
    bench_fail("accept: %s", soon_strerror(status));
  BENCH_CHECK(naccepted < nconns);
  sconn *c = &servers[naccepted++];
  BENCH_OK(soon_tcp_init(&loop, &c->tcp));
  c->tcp.data = c;
  BENCH_OK(soon_accept(srv, (soon_stream *)&c->tcp));
  BENCH_OK(soon_read_start((soon_stream *)&c->tcp, alloc_cb, server_read));
}

int main(int argc, char **argv) {
  char impl[64], name[64];
  nconns = (int)bench_arg(argc, argv, "conns", 1);
  duration = bench_arg(argc, argv, "duration", 0.5);
  snprintf(name, sizeof name, "pump-%d", nconns);
  for (int i = 0; i < BUFSZ; i++)
    wbuf[i] = (char)bench_pattern((uint64_t)i);
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
    BENCH_OK(soon_tcp_init(&loop, &clients[i].tcp));
    BENCH_OK(soon_tcp_connect(&clients[i].creq, &clients[i].tcp,
                              (struct sockaddr *)&addr, on_connect));
  }
  BENCH_OK(soon_run(&loop, SOON_RUN_DEFAULT));

  /* Self-check: every byte written arrived, on every connection. */
  BENCH_CHECK(neof == nconns && naccepted == nconns);
  uint64_t sent = 0;
  for (int i = 0; i < nconns; i++)
    sent += clients[i].sent;
  bench_pump_check(sent, received, received_at_stop);
  BENCH_OK(soon_loop_close(&loop));
  bench_result(name, impl,
               (double)received_at_stop * 8 /
                   ((double)(t_stop - t_start) / 1e9) / 1e9,
               "Gbit/s");
  free(clients);
  free(servers);
  return 0;
}
