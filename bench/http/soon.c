/* http/soon.c: the http workload's hello server on soon's HTTP server
 * (soon/http.h): 13 bytes a request; bench/http/launch.py loads it with wrk.
 *
 * Prints `listening on http://127.0.0.1:PORT/` once it listens, and
 * `SERVED n` when it stops: on SIGTERM or SIGINT, or after requests=N
 * (a fixed amount of work for callgrind and strace: bench/http/profile). */
#include "../soon_util.h"
#include <signal.h>
#include <soon/http.h>

#define BODY "hello, world!"
#define BODY_LEN 13
#define GRACE_MS 1000

static soon_loop loop;
static soon_http_server *server;
static soon_signal sigterm, sigint;
static uint64_t served, quota = UINT64_MAX;
static bool stopping;

/* The same header nginx, h2o and evhttp send for this body, so every row
 * answers the same bytes give or take the Server and Date lines. */
static const soon_http_header headers[] = {
    {{"Content-Type", 12}, {"text/plain", 10}}};

static void on_server_closed(soon_http_server *s) { (void)s; }

/* Graceful, as a real deployment stops: the signal handles go too, so the
 * loop ends once the server's last connection has. */
static void stop(void) {
  if (stopping)
    return;
  stopping = true;
  BENCH_OK(soon_signal_stop(&sigterm));
  BENCH_OK(soon_signal_stop(&sigint));
  soon_close((soon_handle *)&sigterm, NULL);
  soon_close((soon_handle *)&sigint, NULL);
  BENCH_OK(soon_http_server_close(server, GRACE_MS, on_server_closed));
}

static void on_signal(soon_signal *h, int signum) {
  (void)h, (void)signum;
  stop();
}

static int on_request(soon_http_req *req) {
  int r = soon_http_respond(req, 200, headers, 1, BODY, BODY_LEN);
  if (r < 0)
    return r; /* the server answers 500: wrk's status count shows it */
  if (++served == quota)
    stop();
  return 0;
}

int main(int argc, char **argv) {
  double n = bench_arg(argc, argv, "requests", 0);
  if (n > 0)
    quota = (uint64_t)n;
  soon_bench_loop(&loop, NULL, 0);

  soon_http_server_options opts = {.threads = 1};
  BENCH_OK(soon_http_server_new(&loop, &opts, on_request, &server));
  BENCH_OK(soon_http_server_listen(server, "127.0.0.1", 0));
  int port = soon_http_server_port(server);
  BENCH_OK(port);
  BENCH_OK(soon_signal_init(&loop, &sigterm));
  BENCH_OK(soon_signal_init(&loop, &sigint));
  BENCH_OK(soon_signal_start(&sigterm, on_signal, SIGTERM));
  BENCH_OK(soon_signal_start(&sigint, on_signal, SIGINT));
  printf("listening on http://127.0.0.1:%d/\n", port);
  fflush(stdout);

  BENCH_OK(soon_run(&loop, SOON_RUN_DEFAULT));
  BENCH_OK(soon_loop_close(&loop));
  printf("SERVED %llu\n", (unsigned long long)served);
  return 0;
}
