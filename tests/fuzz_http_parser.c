/* fuzz_http_parser.c: the HTTP parser's libFuzzer target (tools/fuzz): any
 * input, cut any way, stays in bounds and parses as it does whole. */
#include "corpus.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The first byte of an input picks how the rest is parsed; the fuzzer
 * mutates it like any other, so every combination gets explored:
 *   bits 0-1  type: request, response, response to HEAD, request
 *   bit  2    bodies by spans (parse_body) or in place (decode_body)
 *   bits 3-4  the cut: none (then the two body modes are compared instead),
 *             one cut, byte at a time, or small limits (byte at a time)
 *   bits 5-7  k, a parameter: where the one cut lies, how small the limits
 * The seed writer sets only the type bits (SEL_* below). */
enum { SEL_REQUEST = 0, SEL_RESPONSE = 1, SEL_RESPONSE_TO_HEAD = 2 };
enum { CUT_NONE, CUT_ONE, CUT_BYTES, CUT_SMALL_LIMITS };

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One way of driving an input: what http_drive takes besides the input. */
typedef struct drive {
  const char *what; /* for the mismatch report */
  size_t *cuts;
  size_t ncuts;
  int mode;
  const soon_http_limits *limits;
  unsigned max_headers;
} drive;

static bool known_status(int status) {
  return status == 400 || status == 413 || status == 414 || status == 431 ||
         status == 501 || status == 505;
}

/* What holds of any parse, whatever the input: checked on each result, so
 * a wrong answer is caught even when every way of cutting agrees on it.
 * NULL, or the broken promise. */
static const char *broken_promise(soon_http_type type, bool head_request,
                                  size_t len, unsigned max_headers,
                                  const http_result *r) {
  for (size_t i = 0; i < r->nmsgs; i++) {
    const http_message *m = &r->msgs[i];
    bool last = i + 1 == r->nmsgs;
    if (m->error) {
      if (!last)
        return "a message after an error";
      if (m->error_offset > len)
        return "an error offset past the end of the input";
      if (!known_status(soon_http_error_status(m->error)))
        return "soon_http_error_status outside 400 413 414 431 501 505";
      continue;
    }
    /* The driver ends with soon_http_parse_eof: a message cut short is
     * ETRUNCATED, not incomplete. */
    if (!m->complete)
      return "an incomplete message without an error";
    if (m->version_minor > 1)
      return "a version other than HTTP/1.0 or 1.1 accepted";
    if (type == SOON_HTTP_RESPONSE && (m->status < 100 || m->status > 599))
      return "a status outside 100..599 accepted";
    if (m->nheaders > max_headers)
      return "more headers than the array holds";
    if (m->body_kind == SOON_HTTP_BODY_LENGTH &&
        m->body_len != m->content_length)
      return "a complete body whose length is not its Content-Length";
    if (m->body_kind == SOON_HTTP_BODY_NONE && m->body_len)
      return "body bytes in a message without a body";
    if (head_request && m->body_kind != SOON_HTTP_BODY_NONE)
      return "a body in a response to HEAD";
    if ((m->flags & SOON_HTTP_KEEP_ALIVE) &&
        ((m->flags & SOON_HTTP_CONN_CLOSE) ||
         m->body_kind == SOON_HTTP_BODY_CLOSE))
      return "keep-alive with Connection: close or a close-delimited body";
    if (m->body_kind == SOON_HTTP_BODY_CLOSE && !last)
      return "a message after a close-delimited body";
  }
  return NULL;
}

static char *render(soon_http_type type, bool head_request, const char *in,
                    size_t len, const drive *d) {
  http_result r = http_drive(type, head_request, in, len, d->cuts, d->ncuts,
                             d->mode, d->limits, d->max_headers);
  char *text = http_render(&r);
  const char *broken =
      broken_promise(type, head_request, len, d->max_headers, &r);
  if (broken) {
    fprintf(stderr, "fuzz_http_parser: %s (%s):\n%s\n", broken, d->what, text);
    abort();
  }
  http_result_free(&r);
  return text;
}

/* Cuts after every byte: offsets 1 .. len-1 (a cut at 0 or len would cut
 * nothing). NULL when there is nowhere to cut. */
static size_t *byte_cuts(size_t len, size_t *ncuts) {
  *ncuts = len > 1 ? len - 1 : 0;
  if (*ncuts == 0)
    return NULL;
  size_t *cuts = malloc(*ncuts * sizeof *cuts);
  if (!cuts)
    abort();
  for (size_t i = 0; i < *ncuts; i++)
    cuts[i] = i + 1;
  return cuts;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  unsigned sel = data[0], k = sel >> 5;
  const char *in = (const char *)data + 1;
  size_t len = size - 1;
  soon_http_type type =
      (sel & 3) == SEL_RESPONSE || (sel & 3) == SEL_RESPONSE_TO_HEAD
          ? SOON_HTTP_RESPONSE
          : SOON_HTTP_REQUEST;
  bool head_request = (sel & 3) == SEL_RESPONSE_TO_HEAD;
  int mode = sel & 4 ? HTTP_DRIVE_INPLACE : HTTP_DRIVE_SPANS;

  /* Small enough that inputs of a few hundred bytes reach every limit; a 0
   * would mean the default, hence the + 1s. */
  soon_http_limits small = {
      .max_head = 32 + 32 * k, .max_chunk_ext = 1 + k, .max_body = 1 + 16 * k};
  drive whole = {"whole input", NULL, 0, mode, NULL, SOON_HTTP_MAX_HEADERS};
  drive cut = whole;
  size_t one_cut;
  switch ((sel >> 3) & 3) {
  case CUT_NONE:
    /* Nothing to cut: the other body mode must give the same result. */
    cut.what = "whole input, the other body mode";
    cut.mode = mode == HTTP_DRIVE_SPANS ? HTTP_DRIVE_INPLACE : HTTP_DRIVE_SPANS;
    break;
  case CUT_ONE:
    /* Eight positions along the input; as mutations change its length,
     * they reach every offset. */
    one_cut = len * (k + 1) / 9;
    cut.what = "one cut";
    if (one_cut > 0 && one_cut < len) {
      cut.cuts = &one_cut;
      cut.ncuts = 1;
    }
    break;
  case CUT_BYTES:
    cut.what = "byte at a time";
    cut.cuts = byte_cuts(len, &cut.ncuts);
    break;
  case CUT_SMALL_LIMITS:
    whole.what = "whole input, small limits";
    whole.limits = cut.limits = &small;
    whole.max_headers = cut.max_headers = 1 + k;
    cut.what = "byte at a time, small limits";
    cut.cuts = byte_cuts(len, &cut.ncuts);
    break;
  }

  /* http_drive aborts by itself if a span leaves its buffer. */
  char *a = render(type, head_request, in, len, &whole);
  char *b = render(type, head_request, in, len, &cut);
  if (strcmp(a, b) != 0) {
    fprintf(stderr,
            "fuzz_http_parser: the parse depends on how the input is cut "
            "(selector 0x%02x)\n--- %s:\n%s\n--- %s:\n%s\n",
            sel, whole.what, a, cut.what, b);
    abort();
  }
  free(a);
  free(b);
  if (cut.cuts != &one_cut)
    free(cut.cuts);
  return 0;
}

/* ---------------------------------------------------------- the seeds */

static void write_seed(const char *dir, size_t i, const http_case *c) {
  unsigned char sel = c->type == SOON_HTTP_REQUEST ? SEL_REQUEST
                      : c->head_request            ? SEL_RESPONSE_TO_HEAD
                                                   : SEL_RESPONSE;
  char path[4096];
  snprintf(path, sizeof path, "%s/%04zu", dir, i);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(&sel, 1, 1, f) != 1 ||
      fwrite(c->input, 1, c->input_len, f) != c->input_len || fclose(f) != 0) {
    fprintf(stderr, "fuzz_http_parser: cannot write %s: %s\n", path,
            strerror(errno));
    exit(1);
  }
}

/* With $SOON_FUZZ_WRITE_SEEDS=DIR, the program writes the corpus
 * (the .txt files of tests/http) into DIR as seeds, one file per case, and
 * exits instead of fuzzing: the corpus format is read by one loader only. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  const char *dir = getenv("SOON_FUZZ_WRITE_SEEDS");
  if (!dir || !*dir)
    return 0;
  if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
    fprintf(stderr, "fuzz_http_parser: mkdir %s: %s\n", dir, strerror(errno));
    exit(1);
  }
  http_case *cases;
  size_t n;
  http_corpus_load(SOON_HTTP_CORPUS, &cases, &n);
  for (size_t i = 0; i < n; i++)
    write_seed(dir, i, &cases[i]);
  http_corpus_free(cases, n);
  printf("fuzz_http_parser: %zu seeds from %s in %s\n", n, SOON_HTTP_CORPUS,
         dir);
  exit(0);
}
