/* parse/requests.h: what the three parse programs share: the requests, the
 * results they must give, and the timed loop, so only the parsing differs. */
#ifndef BENCH_PARSE_REQUESTS_H
#define BENCH_PARSE_REQUESTS_H

#include "common.h"

/* A browser's navigation (Chrome 124's headers, in its order). */
static const char parse_get[] =
    "GET /wiki/Hypertext_Transfer_Protocol?action=view HTTP/1.1\r\n"
    "Host: en.wikipedia.org\r\n"
    "Connection: keep-alive\r\n"
    "sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", "
    "\"Not-A.Brand\";v=\"99\"\r\n"
    "sec-ch-ua-mobile: ?0\r\n"
    "sec-ch-ua-platform: \"Linux\"\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, "
    "like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/"
    "avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;"
    "q=0.7\r\n"
    "Sec-Fetch-Site: none\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "Sec-Fetch-User: ?1\r\n"
    "Sec-Fetch-Dest: document\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n"
    "Cookie: WMF-Last-Access=02-Dec-2024; GeoIP=DE:BE:Berlin:52.52:13.40:v4; "
    "enwikimwuser-sessionId=7f3c2a9d1e8b4c6a5f0d; NetworkProbeLimit=0.001\r\n"
    "\r\n";

/* An API call with a JSON body of 60 bytes. */
static const char parse_post[] =
    "POST /api/v1/events HTTP/1.1\r\n"
    "Host: api.example.com\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 60\r\n"
    "Accept: */*\r\n"
    "\r\n"
    "{\"event\":\"click\",\"target\":\"#buy\",\"id\":12345,\"ts\":1733097600}";

/* Sixteen small GETs pipelined in one buffer (parse_setup writes them). */
#define PARSE_PIPELINED 16
static char parse_pipelined[PARSE_PIPELINED * 80];

/* What parsing one buffer gave, counted by each program its own way. */
typedef struct parse_tally {
  uint64_t messages, headers, body;
} parse_tally;

/* Parses buf[0..len) (whole messages, from a fresh parser), adding to t;
 * fails the program on a parse error. */
typedef void parse_fn(const char *buf, size_t len, parse_tally *t);

typedef struct parse_input {
  const char *name, *buf;
  size_t len;
  parse_tally expect;
} parse_input;

static parse_input parse_inputs[] = {
    {"browser GET", parse_get, sizeof parse_get - 1, {1, 15, 0}},
    {"POST", parse_post, sizeof parse_post - 1, {1, 4, 60}},
    {"16 pipelined GETs",
     parse_pipelined,
     0,
     {PARSE_PIPELINED, 2 * PARSE_PIPELINED, 0}},
};
#define PARSE_NINPUTS (sizeof parse_inputs / sizeof parse_inputs[0])

static inline void parse_setup(void) {
  size_t n = 0;
  for (int i = 1; i <= PARSE_PIPELINED; i++) {
    int w = snprintf(parse_pipelined + n, sizeof parse_pipelined - n,
                     "GET /static/img/icon-%02d.png HTTP/1.1\r\n"
                     "Host: example.com\r\n"
                     "Accept: image/*\r\n"
                     "\r\n",
                     i);
    BENCH_CHECK(w > 0 && (size_t)w < sizeof parse_pipelined - n);
    n += (size_t)w;
  }
  parse_inputs[2].len = n;
}

/* Each program checks its own results once, before the clock starts. */
static inline void parse_check(parse_fn *parse) {
  for (size_t i = 0; i < PARSE_NINPUTS; i++) {
    const parse_input *in = &parse_inputs[i];
    parse_tally t = {0, 0, 0};
    parse(in->buf, in->len, &t);
    if (t.messages != in->expect.messages || t.headers != in->expect.headers ||
        t.body != in->expect.body)
      bench_fail("%s: %llu messages, %llu headers, %llu body bytes; expected "
                 "%llu, %llu, %llu",
                 in->name, (unsigned long long)t.messages,
                 (unsigned long long)t.headers, (unsigned long long)t.body,
                 (unsigned long long)in->expect.messages,
                 (unsigned long long)in->expect.headers,
                 (unsigned long long)in->expect.body);
  }
}

/* Parse the set over and over for duration=SECONDS (default 1); prints
 * requests/s (parse) and input bytes/s (parse-bytes, GB/s). The clock is
 * read once per 64 rounds, so reading it costs nothing measurable. */
static inline void parse_bench(int argc, char **argv, const char *impl,
                               parse_fn *parse) {
  double duration = bench_arg(argc, argv, "duration", 1.0);
  parse_setup();
  parse_check(parse);
  parse_tally round = {0, 0, 0};
  uint64_t bytes_per_round = 0, rounds = 0;
  for (size_t i = 0; i < PARSE_NINPUTS; i++) {
    round.messages += parse_inputs[i].expect.messages;
    round.headers += parse_inputs[i].expect.headers;
    round.body += parse_inputs[i].expect.body;
    bytes_per_round += parse_inputs[i].len;
  }
  parse_tally t = {0, 0, 0};
  uint64_t t0 = bench_ns(), t1, stop = t0 + (uint64_t)(duration * 1e9);
  do {
    for (int r = 0; r < 64; r++, rounds++)
      for (size_t i = 0; i < PARSE_NINPUTS; i++)
        parse(parse_inputs[i].buf, parse_inputs[i].len, &t);
    t1 = bench_ns();
  } while (t1 < stop);
  /* Every round counted what the check did: nothing was skipped. */
  BENCH_CHECK(t.messages == rounds * round.messages &&
              t.headers == rounds * round.headers &&
              t.body == rounds * round.body);
  double s = (double)(t1 - t0) / 1e9;
  bench_result("parse", impl, (double)(rounds * round.messages) / s, "req/s");
  bench_result("parse-bytes", impl,
               (double)(rounds * bytes_per_round) / s / 1e9, "GB/s");
}

#endif
