/* chain/ev.c: libevent's test/bench.c on libev (ev_io): n= watched
 * socketpair ends, active= written, a byte passed on; us per iteration. */
#include "common.h"
#include <ev.h>

static int npipes, nactive, nwrites, *pipes;
static ev_io *ios;
static int count, writes, fired, failures;

static void read_cb(struct ev_loop *l, ev_io *w, int revents) {
  (void)l, (void)revents;
  int idx = (int)(w - ios), widx = idx + 1;
  unsigned char ch;
  ssize_t n = recv(w->fd, &ch, 1, 0);
  if (n >= 0)
    count += (int)n;
  else
    failures++;
  if (writes) {
    if (widx >= npipes)
      widx -= npipes;
    if (send(pipes[widx ^ 1], "e", 1, 0) != 1)
      failures++;
    writes--;
    fired++;
  }
}

static double run_once(struct ev_loop *loop, int first) {
  for (int i = 0; i < npipes; i++) {
    if (!first)
      ev_io_stop(loop, &ios[i]);
    ev_io_init(&ios[i], read_cb, pipes[i], EV_READ);
    ev_io_start(loop, &ios[i]);
  }
  ev_run(loop, EVRUN_NOWAIT);

  fired = 0;
  int space = npipes / nactive;
  for (int i = 0; i < nactive; i++, fired++)
    if (send(pipes[(i * space) ^ 1], "e", 1, 0) != 1)
      failures++;
  count = 0;
  writes = nwrites;
  uint64_t t0 = bench_ns();
  do
    ev_run(loop, EVRUN_NOWAIT);
  while (count != fired);
  uint64_t t1 = bench_ns();
  if (failures)
    bench_fail("%d send/recv failures", failures);
  return (double)(t1 - t0) / 1e3;
}

int main(int argc, char **argv) {
  char name[64];
  npipes = (int)bench_arg(argc, argv, "n", 100);
  nactive = (int)bench_arg(argc, argv, "active", 100);
  nwrites = (int)bench_arg(argc, argv, "writes", 1000);
  int iters = (int)bench_arg(argc, argv, "iters", 25);
  if (nactive > npipes)
    nactive = npipes;
  BENCH_CHECK(npipes >= 2 && npipes % 2 == 0);
  snprintf(name, sizeof name, "chain-%d", npipes);
  bench_nofile((unsigned long)npipes + 64);
  struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
  pipes = malloc((size_t)npipes * sizeof *pipes);
  ios = calloc((size_t)npipes, sizeof *ios);
  BENCH_CHECK(loop && pipes && ios);
  for (int i = 0; i < npipes; i += 2)
    BENCH_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, &pipes[i]));

  double total = 0;
  run_once(loop, 1);
  for (int k = 0; k < iters; k++)
    total += run_once(loop, 0);

  for (int i = 0; i < npipes; i++) {
    unsigned char ch;
    BENCH_CHECK(recv(pipes[i], &ch, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN);
    ev_io_stop(loop, &ios[i]);
  }
  ev_loop_destroy(loop);
  for (int i = 0; i < npipes; i++)
    close(pipes[i]);
  bench_result(name, "libev", total / iters, "us/iter");
  return 0;
}
