/* http-client/soon.c: soon's HTTP client against one server (url=): conns=
 * keep-alive GETs in flight for duration= seconds; completed requests/s. */
#include "../soon_util.h"
#include <soon/http.h>

/* The body every request must bring back (bench/http/launch.py's BODY). */
#define BODY "hello, world!"
#define BODY_LEN (sizeof BODY - 1)

static soon_loop loop;
static soon_http_client *client;
static soon_xhr *xhrs;
static const char *url;
static int nconns, inflight;
static uint64_t done, deadline, t_start, t_end;

static void send_one(soon_xhr *xhr);

/* The last request of the run is in: the client may go, and soon_run ends. */
static void maybe_finish(void) {
  if (inflight)
    return;
  t_end = bench_ns();
  /* The xhrs first: they belong to the client. */
  for (int i = 0; i < nconns; i++)
    soon_xhr_cleanup(&xhrs[i]);
  BENCH_OK(soon_http_client_close(client, NULL));
}

static void onload(soon_xhr *xhr) {
  inflight--;
  if (xhr->status != 200 || xhr->response_len != BODY_LEN ||
      memcmp(xhr->response, BODY, BODY_LEN) != 0)
    bench_fail("GET %s: status %d, %zu-byte body", url, xhr->status,
               xhr->response_len);
  done++;
  /* Requests already in flight at the deadline still count: both
   * implementations stop sending then and wait for the last answer. */
  if (bench_ns() < deadline)
    send_one(xhr);
  else
    maybe_finish();
}

static void onerror(soon_xhr *xhr, int err) {
  (void)xhr;
  bench_fail("GET %s: %s", url, soon_strerror(err));
}

static void send_one(soon_xhr *xhr) {
  BENCH_OK(soon_xhr_open(xhr, "GET", url));
  xhr->onload = onload;
  xhr->onerror = onerror;
  BENCH_OK(soon_xhr_send(xhr, NULL, 0));
  inflight++;
}

int main(int argc, char **argv) {
  url = bench_arg_str(argc, argv, "url", NULL);
  if (!url)
    bench_fail("usage: %s url=http://HOST:PORT/PATH [conns=N] [duration=S]",
               argv[0]);
  nconns = (int)bench_arg(argc, argv, "conns", 16);
  double duration = bench_arg(argc, argv, "duration", 1.0);
  BENCH_CHECK(nconns > 0);
  char impl[64];
  soon_bench_loop(&loop, impl, sizeof impl);
  /* Keep every connection of the run: with fewer idle ones kept than
   * requests in flight the pool would close and reopen them. */
  soon_http_client_options opts = {.max_idle_per_host = (unsigned)nconns};
  BENCH_OK(soon_http_client_new(&loop, &opts, &client));
  xhrs = calloc((size_t)nconns, sizeof *xhrs);
  BENCH_CHECK(xhrs);

  t_start = bench_ns();
  deadline = t_start + (uint64_t)(duration * 1e9);
  for (int i = 0; i < nconns; i++) {
    BENCH_OK(soon_xhr_init(&xhrs[i], client));
    send_one(&xhrs[i]);
  }
  BENCH_OK(soon_run(&loop, SOON_RUN_DEFAULT));
  BENCH_CHECK(inflight == 0 && t_end > t_start);

  free(xhrs);
  BENCH_OK(soon_loop_close(&loop));
  char row[64];
  snprintf(row, sizeof row, "http-client-%d", nconns);
  bench_result(row, impl, (double)done / ((double)(t_end - t_start) / 1e9),
               "req/s");
  return 0;
}
