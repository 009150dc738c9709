/* pound/uv.c: conns= clients connect to a server in the same loop that
 * accepts and closes; clients see EOF and reconnect; accepts/s. */
#include "common.h"
#include <uv.h>

typedef struct slot {
  uv_tcp_t tcp;
  uv_connect_t creq;
} slot;

static uv_loop_t loop;
static uv_tcp_t server;
static uv_timer_t stop_timer;
static slot *slots;
static struct sockaddr_in addr;
static int nconns, nfinished, stopping;
static uint64_t accepted, accepted_at_stop, connected, eofs, t_start, t_stop;
static double duration;
static char rbuf[64];

static void free_cb(uv_handle_t *h) { free(h); }

static void on_connection(uv_stream_t *srv, int status) {
  if (status != 0)
    bench_fail("accept: %s", uv_strerror(status));
  uv_tcp_t *c = malloc(sizeof *c);
  BENCH_CHECK(c);
  BENCH_OK(uv_tcp_init(&loop, c));
  BENCH_OK(uv_accept(srv, (uv_stream_t *)c));
  accepted++;
  uv_close((uv_handle_t *)c, free_cb);
}

static void slot_start(slot *s);

static void on_slot_closed(uv_handle_t *h) {
  slot *s = h->data;
  if (!stopping)
    slot_start(s);
  else if (++nfinished == nconns)
    uv_close((uv_handle_t *)&server, NULL);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h, (void)suggested;
  *buf = uv_buf_init(rbuf, sizeof rbuf);
}

static void client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  if (nread == 0)
    return;
  if (nread != UV_EOF)
    bench_fail("client read: %zd (%s)", nread,
               nread < 0 ? uv_strerror((int)nread) : "unexpected bytes");
  eofs++;
  uv_close((uv_handle_t *)s, on_slot_closed);
}

static void on_connect(uv_connect_t *req, int status) {
  slot *s = req->data;
  if (status != 0)
    bench_fail("connect: %s", uv_strerror(status));
  connected++;
  BENCH_OK(uv_read_start((uv_stream_t *)&s->tcp, alloc_cb, client_read));
}

static void slot_start(slot *s) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  BENCH_CHECK(fd >= 0);
  bench_linger0(fd);
  BENCH_OK(uv_tcp_init(&loop, &s->tcp));
  s->tcp.data = s;
  s->creq.data = s;
  BENCH_OK(uv_tcp_open(&s->tcp, fd));
  BENCH_OK(
      uv_tcp_connect(&s->creq, &s->tcp, (struct sockaddr *)&addr, on_connect));
}

static void on_stop(uv_timer_t *t) {
  stopping = 1;
  t_stop = bench_ns();
  accepted_at_stop = accepted;
  uv_close((uv_handle_t *)t, NULL);
}

int main(int argc, char **argv) {
  char name[64];
  nconns = (int)bench_arg(argc, argv, "conns", 100);
  duration = bench_arg(argc, argv, "duration", 0.5);
  snprintf(name, sizeof name, "pound-%d", nconns);
  bench_nofile(2 * (unsigned long)nconns + 64);
  BENCH_OK(uv_loop_init(&loop));
  slots = calloc((size_t)nconns, sizeof *slots);
  BENCH_CHECK(slots);

  addr = bench_loopback(0);
  int len = sizeof addr;
  BENCH_OK(uv_tcp_init(&loop, &server));
  BENCH_OK(uv_tcp_bind(&server, (struct sockaddr *)&addr, 0));
  BENCH_OK(uv_listen((uv_stream_t *)&server, 1024, on_connection));
  BENCH_OK(uv_tcp_getsockname(&server, (struct sockaddr *)&addr, &len));
  t_start = bench_ns();
  BENCH_OK(uv_timer_init(&loop, &stop_timer));
  uv_update_time(&loop); /* its cached time predates the set-up */
  BENCH_OK(
      uv_timer_start(&stop_timer, on_stop, (uint64_t)(duration * 1000), 0));
  for (int i = 0; i < nconns; i++)
    slot_start(&slots[i]);
  BENCH_OK(uv_run(&loop, UV_RUN_DEFAULT));

  BENCH_CHECK(nfinished == nconns);
  BENCH_CHECK(accepted == connected && connected == eofs && accepted > 0);
  BENCH_OK(uv_loop_close(&loop));
  bench_result(name, "libuv",
               (double)accepted_at_stop / ((double)(t_stop - t_start) / 1e9),
               "accepts/s");
  free(slots);
  return 0;
}
