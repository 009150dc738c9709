/* parse/soon.c: soon's HTTP parser (soon/http.h) on the requests of
 * parse/requests.h: reset, head, body (as spans into the buffer), repeat. */
#include "requests.h"
#include <soon/http.h>

static soon_http_parser parser;
static soon_http_header headers[SOON_HTTP_MAX_HEADERS];

/* The messages of buf one after another, as a server reads a connection:
 * a head, its body (spans into buf, nothing copied), then the next. */
static void parse(const char *buf, size_t len, parse_tally *t) {
  size_t off = 0;
  while (off < len) {
    soon_http_parser_reset(&parser);
    ssize_t n = soon_http_parse_head(&parser, buf + off, len - off);
    if (n <= 0)
      bench_fail("parse_head at %zu: %zd (%s)", off, n, soon_err_name((int)n));
    off += (size_t)n;
    t->headers += parser.nheaders;
    while (!soon_http_message_done(&parser)) {
      soon_http_span data;
      n = soon_http_parse_body(&parser, buf + off, len - off, &data);
      if (n <= 0)
        bench_fail("parse_body at %zu: %zd (%s)", off, n,
                   soon_err_name((int)n));
      off += (size_t)n;
      t->body += data.len;
    }
    t->messages++;
  }
}

int main(int argc, char **argv) {
  BENCH_OK(soon_http_parser_init(&parser, SOON_HTTP_REQUEST, headers,
                                 SOON_HTTP_MAX_HEADERS, NULL));
  parse_bench(argc, argv, "soon", parse);
  return 0;
}
