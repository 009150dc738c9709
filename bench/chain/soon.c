/* chain/soon.c: libevent's test/bench.c on soon: n= watched socketpair
 * ends, active= written, each read passes a byte on; us per iteration. */
#include "../soon_util.h"

#include <sys/select.h>

static int npipes, nactive, nwrites, *pipes;
static soon_io *ios;
static int count, writes, fired, failures;

static void read_cb(soon_io *io, int status, int events) {
  (void)events;
  if (status != 0)
    bench_fail("io: %s", soon_strerror(status));
  int idx = (int)(io - ios), widx = idx + 1;
  unsigned char ch;
  ssize_t n = recv(io->fd, &ch, 1, 0);
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

/* One iteration: (re)register every watcher and settle (not timed), then
 * time the chain from the first writes until every byte has been read. */
static double run_once(soon_loop *loop, int first) {
  for (int i = 0; i < npipes; i++) {
    if (!first)
      BENCH_OK(soon_io_stop(&ios[i]));
    int r = soon_io_start(&ios[i], SOON_READABLE, read_cb);
    if (r < 0 && strcmp(soon_backend_name(loop), "select") == 0)
      bench_skip("select cannot watch fd %d (FD_SETSIZE %d): %s", ios[i].fd,
                 FD_SETSIZE, soon_err_name(r));
    BENCH_OK(r);
  }
  soon_run(loop, SOON_RUN_NOWAIT);

  fired = 0;
  int space = npipes / nactive;
  for (int i = 0; i < nactive; i++, fired++)
    if (send(pipes[(i * space) ^ 1], "e", 1, 0) != 1)
      failures++;
  count = 0;
  writes = nwrites;
  uint64_t t0 = bench_ns();
  do
    BENCH_OK(soon_run(loop, SOON_RUN_NOWAIT));
  while (count != fired);
  uint64_t t1 = bench_ns();
  if (failures)
    bench_fail("%d send/recv failures", failures);
  return (double)(t1 - t0) / 1e3;
}

int main(int argc, char **argv) {
  char impl[64], name[64];
  soon_loop loop;
  npipes = (int)bench_arg(argc, argv, "n", 100);
  nactive = (int)bench_arg(argc, argv, "active", 100);
  nwrites = (int)bench_arg(argc, argv, "writes", 1000);
  int iters = (int)bench_arg(argc, argv, "iters", 25);
  if (nactive > npipes)
    nactive = npipes;
  BENCH_CHECK(npipes >= 2 && npipes % 2 == 0);
  snprintf(name, sizeof name, "chain-%d", npipes);
  bench_nofile((unsigned long)npipes + 64);
  soon_bench_loop(&loop, impl, sizeof impl);
  pipes = malloc((size_t)npipes * sizeof *pipes);
  ios = calloc((size_t)npipes, sizeof *ios);
  BENCH_CHECK(pipes && ios);
  for (int i = 0; i < npipes; i += 2)
    BENCH_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, &pipes[i]));
  for (int i = 0; i < npipes; i++)
    BENCH_OK(soon_io_init(&loop, &ios[i], pipes[i]));

  double total = 0;
  run_once(&loop, 1); /* warm-up */
  for (int k = 0; k < iters; k++)
    total += run_once(&loop, 0);

  /* Self-check: every byte written was read; nothing is left in any pair. */
  for (int i = 0; i < npipes; i++) {
    unsigned char ch;
    BENCH_CHECK(recv(pipes[i], &ch, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN);
    soon_close((soon_handle *)&ios[i], NULL);
  }
  BENCH_OK(soon_run(&loop, SOON_RUN_DEFAULT));
  BENCH_OK(soon_loop_close(&loop));
  for (int i = 0; i < npipes; i++)
    close(pipes[i]);
  bench_result(name, impl, total / iters, "us/iter");
  return 0;
}
