/* parse/record.h: what the callback parsers' (llhttp, http_parser) callbacks
 * do: record each span, as soon's parser fills its header array. */
#ifndef BENCH_PARSE_RECORD_H
#define BENCH_PARSE_RECORD_H

#include "requests.h"

#include <stdbool.h>

#define RECORD_MAX_HEADERS 100 /* as SOON_HTTP_MAX_HEADERS */

typedef struct record_span {
  const char *at;
  size_t len;
} record_span;

/* The message being parsed; a callback's span continues the last one when
 * the parser splits a field across calls (it does not here: one buffer
 * holds whole messages, but a fair recorder pays for the test). */
typedef struct record {
  record_span url, body;
  record_span names[RECORD_MAX_HEADERS], values[RECORD_MAX_HEADERS];
  unsigned nheaders;
  bool in_value; /* the last header callback was a value's */
  parse_tally *tally;
} record;

static inline void record_extend(record_span *s, const char *at, size_t len) {
  if (s->len == 0)
    s->at = at;
  s->len += len;
}

static inline int record_url(record *r, const char *at, size_t len) {
  record_extend(&r->url, at, len);
  return 0;
}

static inline int record_field(record *r, const char *at, size_t len) {
  if (r->nheaders == 0 || r->in_value) {
    if (r->nheaders == RECORD_MAX_HEADERS)
      return -1; /* as soon's parser: more headers than the array */
    r->names[r->nheaders] = (record_span){at, 0};
    r->values[r->nheaders] = (record_span){NULL, 0};
    r->nheaders++;
    r->in_value = false;
  }
  record_extend(&r->names[r->nheaders - 1], at, len);
  return 0;
}

static inline int record_value(record *r, const char *at, size_t len) {
  r->in_value = true;
  record_extend(&r->values[r->nheaders - 1], at, len);
  return 0;
}

static inline int record_body(record *r, const char *at, size_t len) {
  record_extend(&r->body, at, len);
  r->tally->body += len;
  return 0;
}

/* The message is complete: count it and start the next one afresh. */
static inline int record_complete(record *r) {
  r->tally->messages++;
  r->tally->headers += r->nheaders;
  r->url.len = r->body.len = 0;
  r->nheaders = 0;
  r->in_value = false;
  return 0;
}

#endif
