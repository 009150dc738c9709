/* parse/llhttp.c: llhttp (Node.js's parser, Debian's node-llhttp sources) on
 * the requests of parse/requests.h, its callbacks recording spans. */
#include "record.h"
#include <llhttp.h>

static llhttp_t parser;
static llhttp_settings_t settings;
static record rec;

static int on_url(llhttp_t *p, const char *at, size_t len) {
  return record_url(p->data, at, len);
}
static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  return record_field(p->data, at, len);
}
static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  return record_value(p->data, at, len);
}
static int on_body(llhttp_t *p, const char *at, size_t len) {
  return record_body(p->data, at, len);
}
static int on_message_complete(llhttp_t *p) { return record_complete(p->data); }

/* One execute over the whole buffer: llhttp runs from one message into the
 * next by itself. */
static void parse(const char *buf, size_t len, parse_tally *t) {
  llhttp_reset(&parser);
  parser.data = &rec;
  rec.tally = t;
  llhttp_errno_t err = llhttp_execute(&parser, buf, len);
  if (err != HPE_OK)
    bench_fail("llhttp_execute: %s (%s)", llhttp_errno_name(err),
               llhttp_get_error_reason(&parser));
}

int main(int argc, char **argv) {
  llhttp_settings_init(&settings);
  settings.on_url = on_url;
  settings.on_header_field = on_header_field;
  settings.on_header_value = on_header_value;
  settings.on_body = on_body;
  settings.on_message_complete = on_message_complete;
  llhttp_init(&parser, HTTP_REQUEST, &settings);
  parse_bench(argc, argv, "llhttp", parse);
  return 0;
}
