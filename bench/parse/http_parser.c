/* parse/http_parser.c: nodejs/http-parser (Debian's libhttp-parser) on the
 * requests of parse/requests.h, its callbacks recording spans. */
#include "record.h"
#include <http_parser.h>

static http_parser parser;
static http_parser_settings settings;
static record rec;

static int on_url(http_parser *p, const char *at, size_t len) {
  return record_url(p->data, at, len);
}
static int on_header_field(http_parser *p, const char *at, size_t len) {
  return record_field(p->data, at, len);
}
static int on_header_value(http_parser *p, const char *at, size_t len) {
  return record_value(p->data, at, len);
}
static int on_body(http_parser *p, const char *at, size_t len) {
  return record_body(p->data, at, len);
}
static int on_message_complete(http_parser *p) {
  return record_complete(p->data);
}

/* One execute over the whole buffer, which must all be consumed. */
static void parse(const char *buf, size_t len, parse_tally *t) {
  http_parser_init(&parser, HTTP_REQUEST);
  parser.data = &rec;
  rec.tally = t;
  size_t n = http_parser_execute(&parser, &settings, buf, len);
  if (n != len || HTTP_PARSER_ERRNO(&parser) != HPE_OK)
    bench_fail("http_parser_execute: %zu of %zu bytes: %s", n, len,
               http_errno_name(HTTP_PARSER_ERRNO(&parser)));
}

int main(int argc, char **argv) {
  http_parser_settings_init(&settings);
  settings.on_url = on_url;
  settings.on_header_field = on_header_field;
  settings.on_header_value = on_header_value;
  settings.on_body = on_body;
  settings.on_message_complete = on_message_complete;
  parse_bench(argc, argv, "http_parser", parse);
  return 0;
}
