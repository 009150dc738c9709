/* corpus.h: the HTTP parser's test corpus (.txt files in tests/http) and its
 * driver: load the cases, parse an input cut at given offsets, render it. */
#ifndef SOON_TEST_HTTP_CORPUS_H
#define SOON_TEST_HTTP_CORPUS_H

#include <soon/http.h>

#include <stdbool.h>
#include <stddef.h>

/* One case of the corpus: an input and the rendering it must give. */
typedef struct http_case {
  char *where; /* "file.txt:123", for messages */
  char *name;
  soon_http_type type;
  bool head_request; /* "response-to-head": a response to a HEAD request */
  char *input;       /* the bytes, escapes decoded; input_len of them */
  size_t input_len;
  char *expect; /* the expected http_render() text, NUL-terminated */
  /* From its "limit" lines: pass both to http_drive. 0 means the default
   * (max_headers 0: SOON_HTTP_MAX_HEADERS). */
  soon_http_limits limits;
  unsigned max_headers;
  bool has_limits; /* any "limit" line (such a case is not pipelined) */
} http_case;

/* Load every *.txt under dir, in name order. Exits with a message naming
 * file and line on a malformed corpus file (a corpus bug, not a test). */
void http_corpus_load(const char *dir, http_case **cases, size_t *ncases);
void http_corpus_free(http_case *cases, size_t ncases);

/* What one message gave, copied out of the parser (the driver's buffers
 * are gone by the time anyone compares). */
typedef struct http_message {
  int error;                      /* 0, or the SOON_HTTP_E* that rejected it */
  size_t error_offset;            /* from the first byte of the driven input */
  char *method, *target, *reason; /* NUL-terminated copies; NULL if none */
  int status;
  unsigned version_minor;
  unsigned nheaders;
  char **names, **values; /* copies, nheaders of each */
  char *host;             /* NULL when empty */
  unsigned flags;         /* SOON_HTTP_KEEP_ALIVE, ... */
  soon_http_body body_kind;
  unsigned long long content_length;
  char *body; /* the decoded body; body_len bytes */
  size_t body_len;
  bool complete; /* head and body ended (else the input ran out) */
  /* A broken contract the driver saw (say parse_body consuming nothing
   * before the end), rendered as a "bug" line; NULL if none. Static. */
  const char *bug;
} http_message;

typedef struct http_result {
  http_message *msgs; /* in input order; the last one may have an error */
  size_t nmsgs;
} http_result;

enum {
  HTTP_DRIVE_SPANS = 0,  /* bodies through soon_http_parse_body */
  HTTP_DRIVE_INPLACE = 1 /* bodies through soon_http_decode_body */
};

/* Parse in[0..len) as messages of one type, one after another on one
 * connection, as a server would: the input arrives in pieces cut at
 * cuts[0..ncuts) (increasing offsets), each head accumulates in a buffer of
 * its own (which moves as it grows), bodies are parsed piece by piece, and
 * at the end of the input comes soon_http_parse_eof. Stops at the first
 * error. Checks on the way that every span lies inside the buffer passed
 * (aborting if not). limits may be NULL; max_headers is the size of the
 * header array (0: SOON_HTTP_MAX_HEADERS). */
http_result http_drive(soon_http_type type, bool head_request, const char *in,
                       size_t len, const size_t *cuts, size_t ncuts, int mode,
                       const soon_http_limits *limits, unsigned max_headers);
void http_result_free(http_result *r);

/* The canonical text of a result: what a corpus case's expectation holds.
 * malloc'd. */
char *http_render(const http_result *r);

/* Decode the corpus's escapes (\r \n \t \0 \\ \xHH) from s[0..n) into a
 * malloc'd buffer; *out_len gets its length. NULL for a malformed escape. */
char *http_unescape(const char *s, size_t n, size_t *out_len);

#endif
