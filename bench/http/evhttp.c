/* http/evhttp.c: the http workload's hello server on libevent's evhttp,
 * one event_base: 13 bytes a request; bench/http/launch.py loads it with wrk.
 *
 * Prints `listening on http://127.0.0.1:PORT/` once it listens, and
 * `SERVED n` when SIGTERM or SIGINT stops it. */
#include "common.h"
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <signal.h>

#define BODY "hello, world!"
#define BODY_LEN 13

static struct event_base *base;
static uint64_t served;

static void on_request(struct evhttp_request *req, void *arg) {
  (void)arg;
  struct evkeyvalq *out = evhttp_request_get_output_headers(req);
  BENCH_OK(evhttp_add_header(out, "Content-Type", "text/plain"));
  BENCH_OK(evbuffer_add(evhttp_request_get_output_buffer(req), BODY, BODY_LEN));
  /* NULL: the body is in the request's own output buffer already. */
  evhttp_send_reply(req, 200, "OK", NULL);
  served++;
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
  (void)sig, (void)what, (void)arg;
  BENCH_OK(event_base_loopbreak(base));
}

int main(void) {
  /* evhttp writes with write(2): a client gone mid-response (wrk stopping)
   * must cost an EPIPE, not the process. */
  signal(SIGPIPE, SIG_IGN);
  base = event_base_new();
  BENCH_CHECK(base);
  struct evhttp *http = evhttp_new(base);
  BENCH_CHECK(http);
  evhttp_set_gencb(http, on_request, NULL);
  struct evhttp_bound_socket *bound =
      evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
  BENCH_CHECK(bound);
  struct sockaddr_in addr;
  socklen_t len = sizeof addr;
  BENCH_OK(getsockname(evhttp_bound_socket_get_fd(bound),
                       (struct sockaddr *)&addr, &len));

  struct event *term = evsignal_new(base, SIGTERM, on_signal, NULL);
  struct event *intr = evsignal_new(base, SIGINT, on_signal, NULL);
  BENCH_CHECK(term && intr);
  BENCH_OK(event_add(term, NULL));
  BENCH_OK(event_add(intr, NULL));
  printf("listening on http://127.0.0.1:%d/\n", ntohs(addr.sin_port));
  fflush(stdout);

  BENCH_OK(event_base_dispatch(base));
  event_free(term);
  event_free(intr);
  evhttp_free(http);
  event_base_free(base);
  printf("SERVED %llu\n", (unsigned long long)served);
  return 0;
}
