/* pound/soon.c: conns= clients connect to a server in the same loop that
 * accepts and closes; clients see EOF and reconnect; accepts/s. */
#include "../soon_util.h"

typedef struct slot {
  soon_tcp tcp;
  soon_connect_req creq;
} slot;

static soon_loop loop;
static soon_tcp server;
static soon_timer stop_timer;
static slot *slots;
static struct sockaddr_in addr;
static int nconns, nfinished, stopping;
static uint64_t accepted, accepted_at_stop, connected, eofs, t_start, t_stop;
static double duration;
static char rbuf[64];

static void free_cb(soon_handle *h) { free(h); }

static void on_connection(soon_stream *srv, int status) {
  if (status != 0)
    bench_fail("accept: %s", soon_strerror(status));
  soon_tcp *c = malloc(sizeof *c);
  BENCH_CHECK(c);
  BENCH_OK(soon_tcp_init(&loop, c));
  BENCH_OK(soon_accept(srv, (soon_stream *)c));
  accepted++;
  soon_close((soon_handle *)c, free_cb);
}

static void slot_start(slot *s);

static void on_slot_closed(soon_handle *h) {
  slot *s = h->data;
  if (!stopping) {
    slot_start(s);
  } else if (++nfinished == nconns) {
    soon_close((soon_handle *)&server, NULL);
  }
}

static void alloc_cb(soon_handle *h, size_t suggested, soon_buf *buf) {
  (void)h, (void)suggested;
  *buf = (soon_buf){rbuf, sizeof rbuf};
}

static void client_read(soon_stream *s, ssize_t nread, const soon_buf *buf) {
  (void)buf;
  if (nread == 0)
    return;
  if (nread != SOON_EOF)
    bench_fail("client read: %zd (%s)", nread,
               nread < 0 ? soon_strerror((int)nread) : "unexpected bytes");
  eofs++;
  soon_close((soon_handle *)s, on_slot_closed);
}

static void on_connect(soon_connect_req *req, int status) {
  slot *s = req->data;
  if (status != 0)
    bench_fail("connect: %s", soon_strerror(status));
  connected++;
  BENCH_OK(soon_read_start((soon_stream *)&s->tcp, alloc_cb, client_read));
}

/* The socket is made here so it can linger 0: the client's close is a RST,
 * and no TIME_WAIT is left to exhaust the ports of this shared machine. */
static void slot_start(slot *s) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  BENCH_CHECK(fd >= 0);
  bench_linger0(fd);
  BENCH_OK(soon_tcp_init(&loop, &s->tcp));
  s->tcp.data = s;
  s->creq.data = s;
  BENCH_OK(soon_tcp_open(&s->tcp, fd));
  BENCH_OK(soon_tcp_connect(&s->creq, &s->tcp, (struct sockaddr *)&addr,
                            on_connect));
}

static void on_stop(soon_timer *t) {
  stopping = 1;
  t_stop = bench_ns();
  accepted_at_stop = accepted;
  soon_close((soon_handle *)t, NULL);
}

int main(int argc, char **argv) {
  char impl[64], name[64];
  nconns = (int)bench_arg(argc, argv, "conns", 100);
  duration = bench_arg(argc, argv, "duration", 0.5);
  snprintf(name, sizeof name, "pound-%d", nconns);
  bench_nofile(2 * (unsigned long)nconns + 64);
  soon_bench_loop(&loop, impl, sizeof impl);
  slots = calloc((size_t)nconns, sizeof *slots);
  BENCH_CHECK(slots);

  addr = bench_loopback(0);
  int len = sizeof addr;
  BENCH_OK(soon_tcp_init(&loop, &server));
  BENCH_OK(soon_tcp_bind(&server, (struct sockaddr *)&addr, 0));
  BENCH_OK(soon_listen((soon_stream *)&server, 1024, on_connection));
  BENCH_OK(soon_tcp_getsockname(&server, (struct sockaddr *)&addr, &len));
  t_start = bench_ns();
  BENCH_OK(soon_timer_init(&loop, &stop_timer));
  soon_update_time(&loop); /* its cached time predates the set-up */
  BENCH_OK(
      soon_timer_start(&stop_timer, on_stop, (uint64_t)(duration * 1000), 0));
  for (int i = 0; i < nconns; i++)
    slot_start(&slots[i]);
  BENCH_OK(soon_run(&loop, SOON_RUN_DEFAULT));

  /* Self-check: every connection made was accepted, closed and seen closed. */
  BENCH_CHECK(nfinished == nconns);
  BENCH_CHECK(accepted == connected && connected == eofs && accepted > 0);
  BENCH_OK(soon_loop_close(&loop));
  bench_result(name, impl,
               (double)accepted_at_stop / ((double)(t_stop - t_start) / 1e9),
               "accepts/s");
  free(slots);
  return 0;
}
