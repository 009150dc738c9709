/* test_http_parser.c: the HTTP parser against its corpus (tests/http),
 * whole, cut anywhere, byte by byte and pipelined, and the API's edges. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <soon/http.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/corpus.h"

static http_case *cases;
static size_t ncases;

static int load(void **state) {
  (void)state;
  http_corpus_load(SOON_HTTP_CORPUS, &cases, &ncases);
  return 0;
}

static int unload(void **state) {
  (void)state;
  http_corpus_free(cases, ncases);
  return 0;
}

/* HTTP_CASE=name runs that case only: for a failure at hand. */
static bool selected(const http_case *c) {
  const char *only = getenv("HTTP_CASE");
  return !only || !strcmp(only, c->name);
}

static const char *mode_name(int mode) {
  return mode == HTTP_DRIVE_SPANS ? "spans" : "in place";
}

static void print_cuts(const size_t *cuts, size_t ncuts) {
  if (ncuts == 0)
    fprintf(stderr, "whole");
  else if (ncuts > 1 && cuts[0] == 1 && cuts[ncuts - 1] == ncuts)
    fprintf(stderr, "one byte at a time");
  else
    for (size_t i = 0; i < ncuts; i++)
      fprintf(stderr, "%scut at %zu", i ? ", " : "", cuts[i]);
}

/* Drive one input cut so and compare: whether it matched (a mismatch is
 * printed in full, so that a case can be fixed from the log alone). */
static bool check(const char *where, const char *name, soon_http_type type,
                  bool head_request, const char *in, size_t len,
                  const size_t *cuts, size_t ncuts, int mode,
                  const soon_http_limits *limits, unsigned max_headers,
                  const char *expect) {
  http_result r = http_drive(type, head_request, in, len, cuts, ncuts, mode,
                             limits, max_headers);
  char *got = http_render(&r);
  bool same = !strcmp(got, expect);
  if (!same) {
    fprintf(stderr, "%s: case %s (%s, ", where, name, mode_name(mode));
    print_cuts(cuts, ncuts);
    fprintf(stderr, ")\n--- expected\n%s--- got\n%s---\n", expect, got);
  }
  free(got);
  http_result_free(&r);
  return same;
}

static bool check_case(const http_case *c, const size_t *cuts, size_t ncuts,
                       int mode) {
  return check(c->where, c->name, c->type, c->head_request, c->input,
               c->input_len, cuts, ncuts, mode, &c->limits, c->max_headers,
               c->expect);
}

/* Offsets 1..len-1: the input one byte at a time. */
static size_t *every_offset(size_t len, size_t *ncuts) {
  *ncuts = len > 1 ? len - 1 : 0;
  size_t *cuts = malloc(sizeof *cuts * (*ncuts + 1));
  assert_non_null(cuts);
  for (size_t i = 0; i < *ncuts; i++)
    cuts[i] = i + 1;
  return cuts;
}

static void test_corpus_size(void **state) {
  (void)state;
  fprintf(stderr, "corpus: %zu cases\n", ncases);
  assert_true(ncases >= 320);
}

static void test_corpus_whole(void **state) {
  (void)state;
  size_t bad = 0;
  for (size_t i = 0; i < ncases; i++)
    for (int mode = 0; mode < 2 && selected(&cases[i]); mode++)
      if (!check_case(&cases[i], NULL, 0, mode)) {
        bad++;
        break;
      }
  fprintf(stderr, "whole: %zu of %zu cases differ\n", bad, ncases);
  assert_int_equal(bad, 0);
}

/* One cut, at every offset: the parser's state at each byte boundary is
 * saved and resumed once. The first failing cut of a case is reported. */
static void test_corpus_one_cut(void **state) {
  (void)state;
  size_t bad = 0, drives = 0;
  for (size_t i = 0; i < ncases; i++) {
    const http_case *c = &cases[i];
    bool ok = true;
    for (int mode = 0; mode < 2 && ok && selected(c); mode++)
      for (size_t k = 1; k < c->input_len && ok; k++, drives++)
        ok = check_case(c, &k, 1, mode);
    bad += !ok;
  }
  fprintf(stderr, "one cut: %zu drives, %zu cases differ\n", drives, bad);
  assert_int_equal(bad, 0);
}

static void test_corpus_bytewise(void **state) {
  (void)state;
  size_t bad = 0;
  for (size_t i = 0; i < ncases; i++) {
    const http_case *c = &cases[i];
    size_t ncuts;
    size_t *cuts = every_offset(c->input_len, &ncuts);
    for (int mode = 0; mode < 2 && selected(c); mode++)
      if (!check_case(c, cuts, ncuts, mode)) {
        bad++;
        break;
      }
    free(cuts);
  }
  fprintf(stderr, "byte by byte: %zu of %zu cases differ\n", bad, ncases);
  assert_int_equal(bad, 0);
}

/* Whether a case can be followed by another on the same connection: its
 * expectation (not the parser's output) has complete messages only, none
 * of which ends with the connection, and it uses the default limits. */
static bool pipelinable(const http_case *c) {
  const char *e = c->expect;
  return !c->head_request && !c->has_limits && !strncmp(e, "message\n", 8) &&
         !strstr(e, "\nerror ") && !strstr(e, "\nbug ") &&
         !strstr(e, "\nincomplete\n") && !strstr(e, "\nbody-kind close\n") &&
         !strstr(e, " upgrade");
}

static char *concat3(const http_case *t[3], size_t *len, bool input) {
  size_t n = 0;
  for (int k = 0; k < 3; k++)
    n += input ? t[k]->input_len : strlen(t[k]->expect);
  char *s = malloc(n + 1);
  assert_non_null(s);
  size_t at = 0;
  for (int k = 0; k < 3; k++) {
    const char *p = input ? t[k]->input : t[k]->expect;
    size_t m = input ? t[k]->input_len : strlen(t[k]->expect);
    memcpy(s + at, p, m);
    at += m;
  }
  s[at] = '\0';
  *len = at;
  return s;
}

/* Three consecutive pipelinable cases of one type, sent back to back:
 * each message must come out as it did alone. */
static bool check_triple(const http_case *t[3], size_t *drives) {
  size_t len, elen;
  char *in = concat3(t, &len, true);
  char *expect = concat3(t, &elen, false);
  char where[512];
  snprintf(where, sizeof where, "%s+%s+%s", t[0]->where, t[1]->where,
           t[2]->where);
  size_t ncuts;
  size_t *cuts = every_offset(len, &ncuts);
  bool ok = true;
  for (int mode = 0; mode < 2 && ok; mode++) {
    ok = check(where, "pipelined", t[0]->type, false, in, len, NULL, 0, mode,
               NULL, 0, expect) &&
         check(where, "pipelined", t[0]->type, false, in, len, cuts, ncuts,
               mode, NULL, 0, expect);
    *drives += 2;
  }
  free(cuts);
  free(in);
  free(expect);
  return ok;
}

static void test_corpus_pipelined(void **state) {
  (void)state;
  size_t bad = 0, drives = 0;
  for (int type = SOON_HTTP_REQUEST; type <= SOON_HTTP_RESPONSE; type++) {
    const http_case *t[3];
    size_t have = 0;
    for (size_t i = 0; i < ncases; i++) {
      if ((int)cases[i].type != type || !pipelinable(&cases[i]))
        continue;
      t[0] = t[1];
      t[1] = t[2];
      t[2] = &cases[i];
      if (++have >= 3)
        bad += !check_triple(t, &drives);
    }
  }
  fprintf(stderr, "pipelined: %zu drives, %zu triples differ\n", drives, bad);
  assert_true(drives > 0);
  assert_int_equal(bad, 0);
}

/* ------------------------------------------------------------ API edges */

static soon_http_header hdrs[SOON_HTTP_MAX_HEADERS];

static void init_request(soon_http_parser *p) {
  assert_int_equal(soon_http_parser_init(p, SOON_HTTP_REQUEST, hdrs,
                                         SOON_HTTP_MAX_HEADERS, NULL),
                   0);
}

static void test_init_bad_arguments(void **state) {
  (void)state;
  soon_http_parser p;
  assert_int_equal(
      soon_http_parser_init(NULL, SOON_HTTP_REQUEST, hdrs, 4, NULL), -EINVAL);
  assert_int_equal(soon_http_parser_init(&p, (soon_http_type)7, hdrs, 4, NULL),
                   -EINVAL);
  assert_int_equal(soon_http_parser_init(&p, (soon_http_type)-1, hdrs, 4, NULL),
                   -EINVAL);
  assert_int_equal(soon_http_parser_init(&p, SOON_HTTP_REQUEST, NULL, 4, NULL),
                   -EINVAL);
  /* No array and no room: valid, a head with no headers fits. */
  assert_int_equal(soon_http_parser_init(&p, SOON_HTTP_RESPONSE, NULL, 0, NULL),
                   0);
}

static void test_header_get(void **state) {
  (void)state;
  static const char head[] = "GET / HTTP/1.1\r\n"
                             "Host: a\r\n"
                             "X-Thing: one\r\n"
                             "x-thing: two\r\n"
                             "\r\n";
  soon_http_parser p;
  init_request(&p);
  assert_int_equal(soon_http_parse_head(&p, head, sizeof head - 1),
                   sizeof head - 1);
  const soon_http_span *v = soon_http_header_get(&p, "X-THING");
  assert_non_null(v);
  assert_int_equal(v->len, 3);
  assert_memory_equal(v->base, "one", 3); /* the first of the two */
  v = soon_http_header_get(&p, "host");
  assert_non_null(v);
  assert_memory_equal(v->base, "a", 1);
  assert_null(soon_http_header_get(&p, "X-Thin"));
  assert_null(soon_http_header_get(&p, "X-Things"));
  assert_null(soon_http_header_get(&p, "Missing"));
}

static void test_parse_after_done(void **state) {
  (void)state;
  static const char head[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  soon_http_parser p;
  init_request(&p);
  assert_int_equal(soon_http_parse_head(&p, head, sizeof head - 1),
                   sizeof head - 1);
  assert_true(soon_http_message_done(&p));
  assert_int_equal(soon_http_parse_head(&p, head, sizeof head - 1),
                   SOON_HTTP_EDONE);
  soon_http_span data;
  assert_int_equal(soon_http_parse_body(&p, "x", 1, &data), SOON_HTTP_EDONE);
  char b[1] = {'x'};
  size_t n;
  assert_int_equal(soon_http_decode_body(&p, b, 1, &n), SOON_HTTP_EDONE);
  /* reset readies it for the next message on the connection. */
  soon_http_parser_reset(&p);
  assert_int_equal(soon_http_parse_head(&p, head, sizeof head - 1),
                   sizeof head - 1);
}

static const char chunked_head[] = "POST / HTTP/1.1\r\n"
                                   "Host: a\r\n"
                                   "Transfer-Encoding: chunked\r\n"
                                   "\r\n";
static const char chunked_body[] = "4\r\nWiki\r\n"
                                   "5;name=value\r\npedia\r\n"
                                   "E\r\n in\r\n\r\nchunks.\r\n"
                                   "0\r\nTrailer: x\r\n\r\n";
static const char chunked_data[] = "Wikipedia in\r\n\r\nchunks.";

static void test_decode_in_place_same_bytes(void **state) {
  (void)state;
  size_t hlen = sizeof chunked_head - 1, blen = sizeof chunked_body - 1;
  soon_http_parser p;
  init_request(&p);
  assert_int_equal(soon_http_parse_head(&p, chunked_head, hlen), hlen);
  assert_int_equal(p.body, SOON_HTTP_BODY_CHUNKED);
  char spans[64];
  size_t nspans = 0, at = 0;
  while (!soon_http_message_done(&p)) {
    soon_http_span d;
    ssize_t r = soon_http_parse_body(&p, chunked_body + at, blen - at, &d);
    assert_true(r > 0);
    assert_true(nspans + d.len <= sizeof spans);
    memcpy(spans + nspans, d.base, d.len);
    nspans += d.len;
    at += (size_t)r;
  }
  assert_int_equal(at, blen);

  init_request(&p);
  assert_int_equal(soon_http_parse_head(&p, chunked_head, hlen), hlen);
  char buf[sizeof chunked_body];
  memcpy(buf, chunked_body, blen);
  size_t n = 0;
  assert_int_equal(soon_http_decode_body(&p, buf, blen, &n), blen);
  assert_true(soon_http_message_done(&p));
  assert_int_equal(n, sizeof chunked_data - 1);
  assert_memory_equal(buf, chunked_data, n);
  assert_int_equal(nspans, n);
  assert_memory_equal(spans, chunked_data, n);
}

static void test_eof_on_fresh_parser(void **state) {
  (void)state;
  soon_http_parser p;
  init_request(&p);
  assert_int_equal(soon_http_parse_eof(&p), 0);
  assert_int_equal(soon_http_parser_init(&p, SOON_HTTP_RESPONSE, hdrs,
                                         SOON_HTTP_MAX_HEADERS, NULL),
                   0);
  assert_int_equal(soon_http_parse_eof(&p), 0);
}

/* An 8000-byte head fed one byte at a time: each call must look at the new
 * byte only, so the LF search resumes at the end of what it has seen. */
static void test_head_bytewise_linear(void **state) {
  (void)state;
  enum { LEN = 8000 };
  static char head[LEN + 1];
  size_t at =
      (size_t)snprintf(head, sizeof head, "GET / HTTP/1.1\r\nHost: a\r\n");
  unsigned lines = 1; /* Host */
  for (int i = 0; at < LEN - 2; i++, lines++) {
    size_t room = LEN - 2 - at; /* what is left before the final CRLF */
    size_t line = room >= 2 * 80 ? 80 : room; /* the last line takes it all */
    int n = snprintf(head + at, sizeof head - at, "X-H%02d: ", i);
    memset(head + at + n, 'v', line - (size_t)n - 2);
    memcpy(head + at + line - 2, "\r\n", 2);
    at += line;
  }
  memcpy(head + at, "\r\n", 2);
  assert_int_equal(at + 2, LEN);
  soon_http_parser p;
  init_request(&p);
  for (size_t len = 1; len < LEN; len++) {
    assert_int_equal(soon_http_parse_head(&p, head, len), 0);
    assert_int_equal(p.scan, len);
  }
  assert_int_equal(soon_http_parse_head(&p, head, LEN), LEN);
  assert_int_equal(p.nheaders, lines);
}

static void test_error_status(void **state) {
  (void)state;
  assert_int_equal(soon_http_error_status(SOON_HTTP_EHEAD_SIZE), 431);
  assert_int_equal(soon_http_error_status(SOON_HTTP_EHEADER_COUNT), 431);
  assert_int_equal(soon_http_error_status(SOON_HTTP_ETARGET_SIZE), 414);
  assert_int_equal(soon_http_error_status(SOON_HTTP_EBODY_SIZE), 413);
  assert_int_equal(soon_http_error_status(SOON_HTTP_ETE_UNSUP), 501);
  assert_int_equal(soon_http_error_status(SOON_HTTP_EVERSION_UNSUP), 505);
  assert_int_equal(soon_http_error_status(SOON_HTTP_EMETHOD), 400);
  assert_int_equal(soon_http_error_status(SOON_HTTP_ECONTENT_LENGTH), 400);
  assert_int_equal(soon_http_error_status(SOON_HTTP_ECHUNK_SIZE), 400);
  assert_int_equal(soon_http_error_status(-EINVAL), 400);
  assert_int_equal(soon_http_error_status(-ENOENT), 400);
}

/* The corpus's escapes, and the driver's own refusal of bad ones. */
static void test_unescape(void **state) {
  (void)state;
  size_t n;
  char *s = http_unescape("a\\r\\n\\t\\0\\\\\\x7F\\xff", 19, &n);
  assert_non_null(s);
  assert_int_equal(n, 8);
  assert_memory_equal(s, "a\r\n\t\0\\\x7f\xff", 8);
  free(s);
  assert_null(http_unescape("\\x4g", 4, &n));
  assert_null(http_unescape("\\x4", 3, &n));
  assert_null(http_unescape("\\", 1, &n));
  assert_null(http_unescape("\\q", 2, &n));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_corpus_size),
      cmocka_unit_test(test_corpus_whole),
      cmocka_unit_test(test_corpus_one_cut),
      cmocka_unit_test(test_corpus_bytewise),
      cmocka_unit_test(test_corpus_pipelined),
      cmocka_unit_test(test_init_bad_arguments),
      cmocka_unit_test(test_header_get),
      cmocka_unit_test(test_parse_after_done),
      cmocka_unit_test(test_decode_in_place_same_bytes),
      cmocka_unit_test(test_eof_on_fresh_parser),
      cmocka_unit_test(test_head_bytewise_linear),
      cmocka_unit_test(test_error_status),
      cmocka_unit_test(test_unescape),
  };
  return cmocka_run_group_tests(tests, load, unload);
}
