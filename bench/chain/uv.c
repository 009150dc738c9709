/* chain/uv.c: libevent's test/bench.c on libuv (uv_poll_t): n= watched
 * socketpair ends, active= written, a byte passed on; us per iteration. */
#include "common.h"
#include <uv.h>

static int npipes, nactive, nwrites, *pipes;
static uv_poll_t *polls;
static int count, writes, fired, failures;

static void read_cb(uv_poll_t *p, int status, int events) {
  (void)events;
  if (status != 0)
    bench_fail("poll: %s", uv_strerror(status));
  int idx = (int)(p - polls), widx = idx + 1;
  unsigned char ch;
  ssize_t n = recv(pipes[idx], &ch, 1, 0);
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

static double run_once(uv_loop_t *loop, int first) {
  for (int i = 0; i < npipes; i++) {
    if (!first)
      BENCH_OK(uv_poll_stop(&polls[i]));
    BENCH_OK(uv_poll_start(&polls[i], UV_READABLE, read_cb));
  }
  uv_run(loop, UV_RUN_NOWAIT);

  fired = 0;
  int space = npipes / nactive;
  for (int i = 0; i < nactive; i++, fired++)
    if (send(pipes[(i * space) ^ 1], "e", 1, 0) != 1)
      failures++;
  count = 0;
  writes = nwrites;
  uint64_t t0 = bench_ns();
  do
    uv_run(loop, UV_RUN_NOWAIT);
  while (count != fired);
  uint64_t t1 = bench_ns();
  if (failures)
    bench_fail("%d send/recv failures", failures);
  return (double)(t1 - t0) / 1e3;
}

int main(int argc, char **argv) {
  char name[64];
  uv_loop_t loop;
  npipes = (int)bench_arg(argc, argv, "n", 100);
  nactive = (int)bench_arg(argc, argv, "active", 100);
  nwrites = (int)bench_arg(argc, argv, "writes", 1000);
  int iters = (int)bench_arg(argc, argv, "iters", 25);
  if (nactive > npipes)
    nactive = npipes;
  BENCH_CHECK(npipes >= 2 && npipes % 2 == 0);
  snprintf(name, sizeof name, "chain-%d", npipes);
  bench_nofile((unsigned long)npipes + 64);
  BENCH_OK(uv_loop_init(&loop));
  pipes = malloc((size_t)npipes * sizeof *pipes);
  polls = calloc((size_t)npipes, sizeof *polls);
  BENCH_CHECK(pipes && polls);
  for (int i = 0; i < npipes; i += 2)
    BENCH_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, &pipes[i]));
  for (int i = 0; i < npipes; i++)
    BENCH_OK(uv_poll_init(&loop, &polls[i], pipes[i]));

  double total = 0;
  run_once(&loop, 1);
  for (int k = 0; k < iters; k++)
    total += run_once(&loop, 0);

  for (int i = 0; i < npipes; i++) {
    unsigned char ch;
    BENCH_CHECK(recv(pipes[i], &ch, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN);
    uv_close((uv_handle_t *)&polls[i], NULL);
  }
  BENCH_OK(uv_run(&loop, UV_RUN_DEFAULT));
  BENCH_OK(uv_loop_close(&loop));
  for (int i = 0; i < npipes; i++)
    close(pipes[i]);
  bench_result(name, "libuv", total / iters, "us/iter");
  return 0;
}
