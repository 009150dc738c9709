/* http-client/curl.c: libcurl's multi interface against one server (url=):
 * conns= keep-alive GETs in flight for duration= seconds; completed req/s. */
#include "../common.h"
#include <curl/curl.h>

/* The body every request must bring back (bench/http/launch.py's BODY). */
#define BODY "hello, world!"
#define BODY_LEN (sizeof BODY - 1)

/* One request slot: an easy handle re-added after each answer, so the
 * multi handle's connection cache hands it its keep-alive connection. */
typedef struct slot {
  CURL *easy;
  size_t len;
  char body[BODY_LEN];
} slot;

static const char *url;

/* The body as it comes; more than BODY_LEN is kept count of, not stored. */
static size_t on_data(char *data, size_t size, size_t n, void *arg) {
  slot *s = arg;
  size_t bytes = size * n;
  if (s->len < BODY_LEN) {
    size_t room = BODY_LEN - s->len;
    memcpy(s->body + s->len, data, bytes < room ? bytes : room);
  }
  s->len += bytes;
  return bytes;
}

/* libcurl's calls fail with codes of their own: a failure names the call. */
static void curl_ok(CURLcode c, const char *what) {
  if (c != CURLE_OK)
    bench_fail("%s: %s", what, curl_easy_strerror(c));
}

static void curlm_ok(CURLMcode c, const char *what) {
  if (c != CURLM_OK)
    bench_fail("%s: %s", what, curl_multi_strerror(c));
}

static void slot_init(slot *s) {
  s->easy = curl_easy_init();
  BENCH_CHECK(s->easy);
  curl_ok(curl_easy_setopt(s->easy, CURLOPT_URL, url), "curl_easy_setopt");
  curl_ok(curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_data),
          "curl_easy_setopt");
  curl_ok(curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s), "curl_easy_setopt");
  curl_ok(curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s), "curl_easy_setopt");
  /* No SIGALRM for timeouts: this program has no threads to protect. */
  curl_ok(curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L), "curl_easy_setopt");
}

/* A finished transfer: checked like soon's (200, the exact body). */
static void check_done(CURLMsg *msg) {
  slot *s;
  long status = 0;
  curl_ok(curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s),
          "curl_easy_getinfo");
  if (msg->data.result != CURLE_OK)
    bench_fail("GET %s: %s", url, curl_easy_strerror(msg->data.result));
  curl_ok(curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status),
          "curl_easy_getinfo");
  if (status != 200 || s->len != BODY_LEN || memcmp(s->body, BODY, BODY_LEN))
    bench_fail("GET %s: status %ld, %zu-byte body", url, status, s->len);
}

int main(int argc, char **argv) {
  url = bench_arg_str(argc, argv, "url", NULL);
  if (!url)
    bench_fail("usage: %s url=http://HOST:PORT/PATH [conns=N] [duration=S]",
               argv[0]);
  int nconns = (int)bench_arg(argc, argv, "conns", 16);
  double duration = bench_arg(argc, argv, "duration", 1.0);
  BENCH_CHECK(nconns > 0);
  curl_ok(curl_global_init(CURL_GLOBAL_DEFAULT), "curl_global_init");
  CURLM *multi = curl_multi_init();
  BENCH_CHECK(multi);
  /* Keep every connection of the run, as soon's max_idle_per_host. */
  curlm_ok(curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)nconns),
           "curl_multi_setopt");
  slot *slots = calloc((size_t)nconns, sizeof *slots);
  BENCH_CHECK(slots);

  uint64_t t_start = bench_ns(), done = 0;
  uint64_t deadline = t_start + (uint64_t)(duration * 1e9);
  for (int i = 0; i < nconns; i++) {
    slot_init(&slots[i]);
    curlm_ok(curl_multi_add_handle(multi, slots[i].easy),
             "curl_multi_add_handle");
  }
  int running = nconns;
  while (running) {
    curlm_ok(curl_multi_perform(multi, &running), "curl_multi_perform");
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(multi, &left))) {
      if (msg->msg != CURLMSG_DONE)
        continue;
      CURL *easy = msg->easy_handle;
      check_done(msg); /* msg is gone once its handle is removed */
      done++;
      curlm_ok(curl_multi_remove_handle(multi, easy),
               "curl_multi_remove_handle");
      /* Requests in flight at the deadline still count, as in soon.c. */
      if (bench_ns() < deadline) {
        slot *s;
        curl_ok(curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&s),
                "curl_easy_getinfo");
        s->len = 0;
        curlm_ok(curl_multi_add_handle(multi, easy), "curl_multi_add_handle");
        running++;
      }
    }
    if (running)
      curlm_ok(curl_multi_poll(multi, NULL, 0, 1000, NULL), "curl_multi_poll");
  }
  uint64_t t_end = bench_ns();

  for (int i = 0; i < nconns; i++)
    curl_easy_cleanup(slots[i].easy);
  free(slots);
  curl_multi_cleanup(multi);
  curl_global_cleanup();
  char row[64];
  snprintf(row, sizeof row, "http-client-%d", nconns);
  bench_result(row, "libcurl", (double)done / ((double)(t_end - t_start) / 1e9),
               "req/s");
  return 0;
}
