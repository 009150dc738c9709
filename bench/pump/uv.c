/* pump/uv.c: conns= clients keep two 64 KiB writes queued to servers in
 * the same loop, which count and spot-check every byte; Gbit/s. */
#include "common.h"
#include <uv.h>

#define BUFSZ 65536
#define INFLIGHT 2

typedef struct client {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq[INFLIGHT];
  uv_shutdown_t sreq;
  int inflight;
  uint64_t sent;
} client;

typedef struct sconn {
  uv_tcp_t tcp;
  uint64_t recvd;
} sconn;

static uv_loop_t loop;
static uv_tcp_t server;
static uv_timer_t stop_timer;
static client *clients;
static sconn *servers;
static int nconns, naccepted, nconnected, neof, stopping;
static uint64_t received, received_at_stop, t_start, t_stop;
static double duration;
static char wbuf[BUFSZ], rbuf[BUFSZ];

static void on_shutdown(uv_shutdown_t *req, int status) {
  if (status != 0)
    bench_fail("shutdown: %s", uv_strerror(status));
  uv_close((uv_handle_t *)req->handle, NULL);
}

static void on_write(uv_write_t *req, int status);

static void send_buf(client *c, uv_write_t *req) {
  uv_buf_t b = uv_buf_init(wbuf, BUFSZ);
  req->data = c;
  c->inflight++;
  BENCH_OK(uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_write));
}

static void on_write(uv_write_t *req, int status) {
  client *c = req->data;
  if (status != 0)
    bench_fail("write: %s", uv_strerror(status));
  c->sent += BUFSZ;
  c->inflight--;
  if (!stopping)
    send_buf(c, req);
  else if (c->inflight == 0)
    BENCH_OK(uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown));
}

static void on_stop(uv_timer_t *t) {
  /* On a loaded machine the stop can come before the first byte is read:
   * nothing would be measured, so the run goes on for one more period. */
  if (!received) {
    BENCH_OK(uv_timer_start(t, on_stop, (uint64_t)(duration * 1000), 0));
    return;
  }
  stopping = 1;
  t_stop = bench_ns();
  received_at_stop = received;
  uv_close((uv_handle_t *)t, NULL);
}

static void on_connect(uv_connect_t *req, int status) {
  (void)req;
  if (status != 0)
    bench_fail("connect: %s", uv_strerror(status));
  if (++nconnected < nconns)
    return;
  t_start = bench_ns();
  BENCH_OK(uv_timer_init(&loop, &stop_timer));
  uv_update_time(&loop); /* its cached time predates the set-up */
  BENCH_OK(
      uv_timer_start(&stop_timer, on_stop, (uint64_t)(duration * 1000), 0));
  for (int i = 0; i < nconns; i++)
    for (int k = 0; k < INFLIGHT; k++)
      send_buf(&clients[i], &clients[i].wreq[k]);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h, (void)suggested;
  *buf = uv_buf_init(rbuf, sizeof rbuf);
}

static void server_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  sconn *c = s->data;
  if (nread > 0) {
    if ((unsigned char)buf->base[0] != (unsigned char)wbuf[c->recvd % BUFSZ] ||
        (unsigned char)buf->base[nread - 1] !=
            (unsigned char)wbuf[(c->recvd + (uint64_t)nread - 1) % BUFSZ])
      bench_fail("stream corrupted at %llu", (unsigned long long)c->recvd);
    c->recvd += (uint64_t)nread;
    received += (uint64_t)nread;
  } else if (nread == UV_EOF) {
    uv_close((uv_handle_t *)s, NULL);
    if (++neof == nconns)
      uv_close((uv_handle_t *)&server, NULL);
  } else if (nread < 0) {
    bench_fail("server read: %s", uv_strerror((int)nread));
  }
}

static void on_connection(uv_stream_t *srv, int status) {
  if (status != 0)
    bench_fail("accept: %s", uv_strerror(status));
  BENCH_CHECK(naccepted < nconns);
  sconn *c = &servers[naccepted++];
  BENCH_OK(uv_tcp_init(&loop, &c->tcp));
  c->tcp.data = c;
  BENCH_OK(uv_accept(srv, (uv_stream_t *)&c->tcp));
  BENCH_OK(uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, server_read));
}

int main(int argc, char **argv) {
  char name[64];
  nconns = (int)bench_arg(argc, argv, "conns", 1);
  duration = bench_arg(argc, argv, "duration", 0.5);
  snprintf(name, sizeof name, "pump-%d", nconns);
  for (int i = 0; i < BUFSZ; i++)
    wbuf[i] = (char)bench_pattern((uint64_t)i);
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
    BENCH_OK(uv_tcp_init(&loop, &clients[i].tcp));
    BENCH_OK(uv_tcp_connect(&clients[i].creq, &clients[i].tcp,
                            (struct sockaddr *)&addr, on_connect));
  }
  BENCH_OK(uv_run(&loop, UV_RUN_DEFAULT));

  BENCH_CHECK(neof == nconns && naccepted == nconns);
  uint64_t sent = 0;
  for (int i = 0; i < nconns; i++)
    sent += clients[i].sent;
  bench_pump_check(sent, received, received_at_stop);
  BENCH_OK(uv_loop_close(&loop));
  bench_result(name, "libuv",
               (double)received_at_stop * 8 /
                   ((double)(t_stop - t_start) / 1e9) / 1e9,
               "Gbit/s");
  free(clients);
  free(servers);
  return 0;
}
