/* corpus.c: the HTTP parser's test corpus: loads the .txt files in tests/http,
 * drives the parser over inputs cut into pieces, renders what it gave. */
#include "corpus.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ small tools */

/* The corpus and the driver run in a test process: running out of memory
 * there is not a result worth reporting gracefully. */
static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fputs("corpus: out of memory\n", stderr);
    abort();
  }
  return p;
}

static char *xstrndup(const char *s, size_t n) {
  char *d = xmalloc(n + 1);
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

/* A growable byte string. */
typedef struct sbuf {
  char *p;
  size_t len, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      fputs("corpus: out of memory\n", stderr);
      abort();
    }
    b->p = p;
    b->cap = cap;
  }
  if (n)
    memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) {
  char tmp[128];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  sb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* The inverse of http_unescape, so a rendering can be pasted into a case. */
static void sb_escaped(sbuf *b, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    switch (c) {
    case '\r':
      sb_str(b, "\\r");
      break;
    case '\n':
      sb_str(b, "\\n");
      break;
    case '\t':
      sb_str(b, "\\t");
      break;
    case '\0':
      sb_str(b, "\\0");
      break;
    case '\\':
      sb_str(b, "\\\\");
      break;
    default:
      if (c < 0x20 || c >= 0x7f)
        sb_printf(b, "\\x%02x", c);
      else
        sb_put(b, (const char *)&c, 1);
    }
  }
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

char *http_unescape(const char *s, size_t n, size_t *out_len) {
  char *out = xmalloc(n + 1);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '\\') {
      out[k++] = s[i];
      continue;
    }
    if (++i == n)
      goto bad;
    switch (s[i]) {
    case 'r':
      out[k++] = '\r';
      break;
    case 'n':
      out[k++] = '\n';
      break;
    case 't':
      out[k++] = '\t';
      break;
    case '0':
      out[k++] = '\0';
      break;
    case '\\':
      out[k++] = '\\';
      break;
    case 'x': {
      int hi = i + 1 < n ? hex_digit(s[i + 1]) : -1;
      int lo = i + 2 < n ? hex_digit(s[i + 2]) : -1;
      if (hi < 0 || lo < 0)
        goto bad;
      out[k++] = (char)(hi * 16 + lo);
      i += 2;
      break;
    }
    default:
      goto bad;
    }
  }
  out[k] = '\0';
  *out_len = k;
  return out;
bad:
  free(out);
  return NULL;
}

/* ------------------------------------------------------------ the driver */

typedef struct drive {
  soon_http_parser p;
  soon_http_header *headers;
  soon_http_type type;
  int mode;
  bool head_request;
  /* The current head's bytes so far: a buffer of exactly head_len bytes,
   * replaced (moved) at each append, so a parser keeping a pointer into an
   * earlier one is caught by ASan or by the poison left behind. */
  char *head;
  size_t head_len;
  size_t head_n;    /* the head's length once parsed */
  bool in_body;     /* the head is parsed: bytes go to the body */
  size_t msg_start; /* offset in the input of the message's first byte */
  size_t body_used; /* body bytes the parser consumed */
  sbuf body;
  http_message cur;
  bool stopped; /* an error ended the drive */
  sbuf msgs;    /* the http_message array, as bytes */
} drive;

/* A span the parser returned that is outside the buffer it was given is
 * a memory-safety bug: no rendering can describe it usefully. */
static void check_span(const char *what, soon_http_span s, const char *buf,
                       size_t len) {
  if (s.len == 0 && s.base == NULL)
    return;
  if (s.base < buf || s.base > buf + len ||
      s.len > (size_t)(buf + len - s.base)) {
    fprintf(stderr, "corpus: %s span [%p,+%zu) outside the buffer [%p,+%zu)\n",
            what, (const void *)s.base, s.len, (const void *)buf, len);
    abort();
  }
}

static char *span_dup(soon_http_span s) {
  return xstrndup(s.len ? s.base : "", s.len);
}

static void push_message(drive *d) {
  d->cur.body = d->body.p ? d->body.p : xstrndup("", 0);
  d->cur.body_len = d->body.len;
  d->body = (sbuf){0};
  sb_put(&d->msgs, (const char *)&d->cur, sizeof d->cur);
  d->cur = (http_message){0};
}

/* A contract violation that is no memory hazard: recorded and shown in the
 * rendering (a "bug" line), which then matches no expectation. */
static void driver_bug(drive *d, const char *what) {
  if (!d->cur.bug)
    d->cur.bug = what;
  d->cur.error = d->cur.error ? d->cur.error : -1;
  d->cur.error_offset = 0;
  push_message(d);
  d->stopped = true;
}

static void fail_message(drive *d, int err, int p_error, size_t offset) {
  if (p_error != err) {
    driver_bug(d, "the returned error differs from p->error");
    return;
  }
  d->cur.error = err;
  d->cur.error_offset = offset;
  push_message(d);
  d->stopped = true;
}

static void copy_head(drive *d, const char *buf, size_t n) {
  const soon_http_parser *p = &d->p;
  http_message *m = &d->cur;
  if (d->type == SOON_HTTP_REQUEST) {
    check_span("method", p->method, buf, n);
    check_span("target", p->target, buf, n);
    m->method = span_dup(p->method);
    m->target = span_dup(p->target);
  } else {
    check_span("reason", p->reason, buf, n);
    m->reason = span_dup(p->reason);
    m->status = p->status;
  }
  m->version_minor = p->version_minor;
  m->nheaders = p->nheaders;
  m->names = xmalloc(sizeof(char *) * (p->nheaders + 1));
  m->values = xmalloc(sizeof(char *) * (p->nheaders + 1));
  for (unsigned i = 0; i < p->nheaders; i++) {
    check_span("header name", p->headers[i].name, buf, n);
    check_span("header value", p->headers[i].value, buf, n);
    m->names[i] = span_dup(p->headers[i].name);
    m->values[i] = span_dup(p->headers[i].value);
  }
  check_span("host", p->host, buf, n);
  m->host = p->host.len ? span_dup(p->host) : NULL;
  m->flags = p->flags;
  m->body_kind = p->body;
  m->content_length = p->content_length;
}

static void next_message(drive *d) {
  d->cur.complete = true;
  push_message(d);
  /* After an upgrade (or a CONNECT) the bytes are not HTTP: stop. */
  if (d->p.flags & SOON_HTTP_UPGRADE)
    d->stopped = true;
  d->msg_start += d->head_n + d->body_used;
  d->head_n = 0;
  d->body_used = 0;
  d->in_body = false;
  soon_http_parser_reset(&d->p);
  d->p.head_request = d->head_request;
}

static void head_append(drive *d, const char *data, size_t len) {
  char *h = xmalloc(d->head_len + len);
  if (d->head_len)
    memcpy(h, d->head, d->head_len);
  memcpy(h + d->head_len, data, len);
  if (d->head)
    memset(d->head, 0xA5, d->head_len);
  free(d->head);
  d->head = h;
  d->head_len += len;
}

/* One call of parse_body or decode_body on data[0..len): the bytes it
 * consumed, or -1 when the drive stopped. */
static ssize_t body_step(drive *d, const char *data, size_t len) {
  ssize_t r;
  if (d->mode == HTTP_DRIVE_SPANS) {
    soon_http_span span = {0};
    r = soon_http_parse_body(&d->p, data, len, &span);
    if (r >= 0 && (size_t)r <= len) {
      check_span("body data", span, data, (size_t)r);
      sb_put(&d->body, span.base, span.len);
    }
  } else {
    /* A buffer of exactly len bytes, so ASan sees any write past it. */
    char *scratch = xmalloc(len);
    memcpy(scratch, data, len);
    size_t data_len = 0;
    r = soon_http_decode_body(&d->p, scratch, len, &data_len);
    if (r >= 0 && (size_t)r <= len && data_len > (size_t)r) {
      free(scratch);
      driver_bug(d, "decode_body: data_len > bytes consumed");
      return -1;
    }
    if (r >= 0)
      sb_put(&d->body, scratch, data_len);
    free(scratch);
  }
  if (r < 0) {
    fail_message(d, (int)r, d->p.error,
                 d->msg_start + d->head_n + d->p.error_offset);
    return -1;
  }
  if ((size_t)r > len) {
    driver_bug(d, "body: consumed more than given");
    return -1;
  }
  if (r == 0 && !soon_http_message_done(&d->p)) {
    driver_bug(d, "body: consumed nothing before the message ended");
    return -1;
  }
  return r;
}

/* Body bytes until the message is done: how many it took, or -1. */
static ssize_t body_feed(drive *d, const char *data, size_t len) {
  size_t used = 0;
  while (used < len && !soon_http_message_done(&d->p)) {
    ssize_t r = body_step(d, data + used, len - used);
    if (r < 0)
      return -1;
    used += (size_t)r;
    d->body_used += (size_t)r;
  }
  return (ssize_t)used;
}

/* Parse the head accumulated so far. Returns whether it is complete; its
 * bytes after the head are then in *rest (malloc'd, *rest_len of them). */
static bool head_step(drive *d, char **rest, size_t *rest_len) {
  ssize_t r = soon_http_parse_head(&d->p, d->head, d->head_len);
  if (r < 0) {
    fail_message(d, (int)r, d->p.error, d->msg_start + d->p.error_offset);
    return false;
  }
  if (r == 0)
    return false;
  if ((size_t)r > d->head_len) {
    driver_bug(d, "parse_head: head longer than the bytes given");
    return false;
  }
  d->head_n = (size_t)r;
  copy_head(d, d->head, d->head_n);
  *rest_len = d->head_len - d->head_n;
  *rest = xstrndup(d->head + d->head_n, *rest_len);
  free(d->head);
  d->head = NULL;
  d->head_len = 0;
  d->in_body = true;
  return true;
}

static void feed(drive *d, const char *data, size_t len) {
  char *own = NULL; /* the bytes after a head, which data may point into */
  while (len > 0 && !d->stopped) {
    if (!d->in_body) {
      head_append(d, data, len);
      char *rest;
      size_t rest_len;
      if (!head_step(d, &rest, &rest_len))
        break;
      free(own);
      own = rest;
      data = own;
      len = rest_len;
      if (soon_http_message_done(&d->p))
        next_message(d);
      continue;
    }
    ssize_t used = body_feed(d, data, len);
    if (used < 0)
      break;
    data += used;
    len -= (size_t)used;
    if (soon_http_message_done(&d->p))
      next_message(d);
  }
  free(own);
}

static void at_eof(drive *d, size_t len) {
  int r = soon_http_parse_eof(&d->p);
  if (r < 0) {
    fail_message(d, r, d->p.error, len);
    return;
  }
  if (r > 0) {
    driver_bug(d, "parse_eof returned > 0");
    return;
  }
  /* 0 with a head parsed: the close-delimited body ended. 0 before a head:
   * nothing of a message began (at most empty lines). */
  if (d->in_body)
    next_message(d);
}

http_result http_drive(soon_http_type type, bool head_request, const char *in,
                       size_t len, const size_t *cuts, size_t ncuts, int mode,
                       const soon_http_limits *limits, unsigned max_headers) {
  drive d = {.type = type, .mode = mode, .head_request = head_request};
  if (max_headers == 0)
    max_headers = SOON_HTTP_MAX_HEADERS;
  d.headers = xmalloc(sizeof *d.headers * max_headers);
  int rc = soon_http_parser_init(&d.p, type, d.headers, max_headers, limits);
  if (rc != 0) {
    d.cur.error = rc;
    push_message(&d);
    d.stopped = true;
  }
  d.p.head_request = head_request;
  size_t at = 0;
  for (size_t i = 0; i <= ncuts && !d.stopped; i++) {
    size_t end = i < ncuts ? cuts[i] : len;
    if (end < at || end > len) {
      fprintf(stderr, "http_drive: cut %zu at %zu out of order\n", i, end);
      abort();
    }
    if (end > at)
      feed(&d, in + at, end - at);
    at = end;
  }
  if (!d.stopped)
    at_eof(&d, len);
  free(d.head);
  free(d.body.p);
  free(d.headers);
  return (http_result){.msgs = (http_message *)d.msgs.p,
                       .nmsgs = d.msgs.len / sizeof(http_message)};
}

void http_result_free(http_result *r) {
  for (size_t i = 0; i < r->nmsgs; i++) {
    http_message *m = &r->msgs[i];
    free(m->method);
    free(m->target);
    free(m->reason);
    for (unsigned k = 0; k < m->nheaders; k++) {
      free(m->names[k]);
      free(m->values[k]);
    }
    free(m->names);
    free(m->values);
    free(m->host);
    free(m->body);
  }
  free(r->msgs);
  r->msgs = NULL;
  r->nmsgs = 0;
}

/* ------------------------------------------------------------ rendering */

static const struct {
  int err;
  const char *name;
} error_names[] = {
    {SOON_HTTP_EMETHOD, "EMETHOD"},
    {SOON_HTTP_ETARGET, "ETARGET"},
    {SOON_HTTP_EVERSION, "EVERSION"},
    {SOON_HTTP_EVERSION_UNSUP, "EVERSION_UNSUP"},
    {SOON_HTTP_ESTATUS, "ESTATUS"},
    {SOON_HTTP_EREASON, "EREASON"},
    {SOON_HTTP_ELINE_END, "ELINE_END"},
    {SOON_HTTP_EHEADER_NAME, "EHEADER_NAME"},
    {SOON_HTTP_EHEADER_VALUE, "EHEADER_VALUE"},
    {SOON_HTTP_EOBS_FOLD, "EOBS_FOLD"},
    {SOON_HTTP_ECONTENT_LENGTH, "ECONTENT_LENGTH"},
    {SOON_HTTP_ETE_AND_CL, "ETE_AND_CL"},
    {SOON_HTTP_ETRANSFER_ENCODING, "ETRANSFER_ENCODING"},
    {SOON_HTTP_ETE_UNSUP, "ETE_UNSUP"},
    {SOON_HTTP_EHOST, "EHOST"},
    {SOON_HTTP_EHEAD_SIZE, "EHEAD_SIZE"},
    {SOON_HTTP_EHEADER_COUNT, "EHEADER_COUNT"},
    {SOON_HTTP_ETARGET_SIZE, "ETARGET_SIZE"},
    {SOON_HTTP_EBODY_SIZE, "EBODY_SIZE"},
    {SOON_HTTP_ECHUNK_SIZE, "ECHUNK_SIZE"},
    {SOON_HTTP_ECHUNK_EXT, "ECHUNK_EXT"},
    {SOON_HTTP_ECHUNK_EXT_SIZE, "ECHUNK_EXT_SIZE"},
    {SOON_HTTP_ECHUNK_END, "ECHUNK_END"},
    {SOON_HTTP_ETRAILER, "ETRAILER"},
    {SOON_HTTP_ETRUNCATED, "ETRUNCATED"},
    {SOON_HTTP_EDONE, "EDONE"},
};

static void render_error(sbuf *b, int err) {
  for (size_t i = 0; i < sizeof error_names / sizeof error_names[0]; i++)
    if (error_names[i].err == err) {
      sb_str(b, error_names[i].name);
      return;
    }
  /* Not an HTTP error (say -ENOSYS from a stub): still a readable name. */
  sb_printf(b, "errno(%d)", err);
}

static const char *const flag_names[] = {
    "keep-alive",   "conn-close", "conn-keep-alive",
    "conn-upgrade", "upgrade",    "expect-continue",
    "expect-other", "has-length", "has-te",
};

static void render_flags(sbuf *b, unsigned flags) {
  sb_str(b, "flags");
  for (unsigned bit = 0; bit < 32; bit++) {
    if (!(flags & (1u << bit)))
      continue;
    if (bit < sizeof flag_names / sizeof flag_names[0])
      sb_printf(b, " %s", flag_names[bit]);
    else
      sb_printf(b, " bit%u", bit);
  }
  sb_str(b, "\n");
}

static void render_body_kind(sbuf *b, const http_message *m) {
  switch (m->body_kind) {
  case SOON_HTTP_BODY_NONE:
    sb_str(b, "body-kind none\n");
    break;
  case SOON_HTTP_BODY_LENGTH:
    sb_printf(b, "body-kind length %llu\n", m->content_length);
    break;
  case SOON_HTTP_BODY_CHUNKED:
    sb_str(b, "body-kind chunked\n");
    break;
  case SOON_HTTP_BODY_CLOSE:
    sb_str(b, "body-kind close\n");
    break;
  default:
    sb_printf(b, "body-kind ?%d\n", (int)m->body_kind);
  }
}

static void render_line(sbuf *b, const char *key, const char *s) {
  sb_str(b, key);
  sb_escaped(b, s, strlen(s));
  sb_str(b, "\n");
}

static void render_message(sbuf *b, const http_message *m) {
  sb_str(b, "message\n");
  if (m->bug)
    sb_printf(b, "bug %s\n", m->bug);
  if (m->error) {
    sb_str(b, "error ");
    render_error(b, m->error);
    sb_printf(b, " at %zu\n", m->error_offset);
    return;
  }
  if (m->method) {
    render_line(b, "method ", m->method);
    render_line(b, "target ", m->target);
  }
  if (m->reason) {
    sb_printf(b, "status %d\n", m->status);
    render_line(b, "reason ", m->reason);
  }
  sb_printf(b, "version 1.%u\n", m->version_minor);
  for (unsigned i = 0; i < m->nheaders; i++) {
    sb_str(b, "header ");
    sb_escaped(b, m->names[i], strlen(m->names[i]));
    sb_str(b, ": ");
    sb_escaped(b, m->values[i], strlen(m->values[i]));
    sb_str(b, "\n");
  }
  if (m->host)
    render_line(b, "host ", m->host);
  render_flags(b, m->flags);
  render_body_kind(b, m);
  if (m->body_len) {
    sb_str(b, "body ");
    sb_escaped(b, m->body, m->body_len);
    sb_str(b, "\n");
  }
  sb_str(b, m->complete ? "end\n" : "incomplete\n");
}

char *http_render(const http_result *r) {
  sbuf b = {0};
  sb_put(&b, "", 0);
  for (size_t i = 0; i < r->nmsgs; i++)
    render_message(&b, &r->msgs[i]);
  return b.p;
}

/* ------------------------------------------------------------ the loader */

typedef struct loader {
  const char *file;
  size_t line;
  sbuf cases;   /* http_case array, as bytes */
  http_case *c; /* the case being read, or NULL before the first */
  sbuf input, expect;
  enum { BEFORE, NAMED, TYPED, INPUT, EXPECT } state;
} loader;

static void die(const loader *l, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s:%zu: ", l->file, l->line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(2);
}

static bool name_ok(const char *s) {
  if (!*s)
    return false;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
      return false;
  return true;
}

static void case_end(loader *l) {
  if (!l->c)
    return;
  if (l->state == NAMED)
    die(l, "case %s: no type line", l->c->name);
  if (l->state == TYPED)
    die(l, "case %s: no input lines", l->c->name);
  l->c->input = l->input.p ? l->input.p : xstrndup("", 0);
  l->c->input_len = l->input.len;
  l->c->expect = l->expect.p ? l->expect.p : xstrndup("", 0);
  l->input = (sbuf){0};
  l->expect = (sbuf){0};
  sb_put(&l->cases, (const char *)l->c, sizeof *l->c);
  free(l->c);
  l->c = NULL;
}

static void case_begin(loader *l, const char *name) {
  case_end(l);
  if (!name_ok(name))
    die(l, "case name '%s': use letters, digits, '-', '_', '.'", name);
  l->c = xmalloc(sizeof *l->c);
  *l->c = (http_case){0};
  l->c->name = xstrndup(name, strlen(name));
  char where[512];
  snprintf(where, sizeof where, "%s:%zu", l->file, l->line);
  l->c->where = xstrndup(where, strlen(where));
  l->state = NAMED;
}

static void read_type(loader *l, const char *s) {
  if (!strcmp(s, "request"))
    l->c->type = SOON_HTTP_REQUEST;
  else if (!strcmp(s, "response"))
    l->c->type = SOON_HTTP_RESPONSE;
  else if (!strcmp(s, "response-to-head")) {
    l->c->type = SOON_HTTP_RESPONSE;
    l->c->head_request = true;
  } else
    die(l, "expected request, response or response-to-head, not '%s'", s);
  l->state = TYPED;
}

static void read_limit(loader *l, const char *s) {
  char what[32];
  unsigned long long v;
  int end = 0;
  if (sscanf(s, "limit %31s %llu%n", what, &v, &end) != 2 || s[end] != '\0' ||
      v == 0)
    die(l, "expected 'limit <name> <positive number>'");
  if (!strcmp(what, "max_head"))
    l->c->limits.max_head = (size_t)v;
  else if (!strcmp(what, "max_headers"))
    l->c->max_headers = (unsigned)v;
  else if (!strcmp(what, "max_chunk_ext"))
    l->c->limits.max_chunk_ext = (size_t)v;
  else if (!strcmp(what, "max_body"))
    l->c->limits.max_body = v;
  else
    die(l, "unknown limit '%s'", what);
  l->c->has_limits = true;
}

/* "> " alone is an empty input line (a case whose input is empty). */
static void read_input(loader *l, const char *s, size_t n) {
  if (n < 2 || s[1] != ' ')
    die(l, "an input line starts with '> '");
  if (n > 2 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
    die(l, "trailing white space on an input line: write it \\x20 or \\t");
  size_t len;
  char *bytes = http_unescape(s + 2, n - 2, &len);
  if (!bytes)
    die(l, "bad escape (use \\r \\n \\t \\0 \\\\ \\xHH)");
  sb_put(&l->input, bytes, len);
  free(bytes);
  l->state = INPUT;
}

static void read_line(loader *l, const char *s, size_t n) {
  if (memchr(s, '\r', n))
    die(l, "a raw CR in a corpus file: write it \\r");
  if (n == 0 || s[0] == '#')
    return;
  if (n >= 4 && !strncmp(s, "=== ", 4)) {
    case_begin(l, s + 4);
    return;
  }
  switch (l->state) {
  case BEFORE:
    die(l, "expected '=== <case name>'");
    break;
  case NAMED:
    read_type(l, s);
    break;
  case TYPED:
  case INPUT:
    if (s[0] == '>')
      read_input(l, s, n);
    else if (l->state == TYPED && !strncmp(s, "limit ", 6))
      read_limit(l, s);
    else if (l->state == TYPED)
      die(l, "expected a limit or an input line ('> ...')");
    else {
      l->state = EXPECT;
      read_line(l, s, n);
    }
    break;
  case EXPECT:
    if (s[0] == '>' || !strncmp(s, "limit ", 6))
      die(l, "input or limit line after the expectation began");
    sb_put(&l->expect, s, n);
    sb_put(&l->expect, "\n", 1);
    break;
  }
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "%s: cannot open\n", path);
    exit(2);
  }
  sbuf b = {0};
  char tmp[4096];
  size_t n;
  while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
    sb_put(&b, tmp, n);
  fclose(f);
  sb_put(&b, "", 0);
  *len = b.len;
  return b.p;
}

static void load_file(loader *l, const char *path) {
  size_t len;
  char *text = read_file(path, &len);
  l->file = path;
  l->line = 0;
  l->state = BEFORE;
  for (size_t at = 0; at < len;) {
    const char *nl = memchr(text + at, '\n', len - at);
    size_t end = nl ? (size_t)(nl - text) : len;
    l->line++;
    text[end] = '\0'; /* the line handlers take C strings */
    read_line(l, text + at, end - at);
    at = end + 1;
  }
  case_end(l);
  free(text);
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int case_by_name(const void *a, const void *b) {
  return strcmp(((const http_case *)a)->name, ((const http_case *)b)->name);
}

/* Names are unique across files, so a failure names one case only. */
static void check_unique(const http_case *cases, size_t n) {
  http_case *sorted = xmalloc(sizeof *sorted * n);
  memcpy(sorted, cases, sizeof *sorted * n);
  qsort(sorted, n, sizeof *sorted, case_by_name);
  for (size_t i = 1; i < n; i++)
    if (!strcmp(sorted[i - 1].name, sorted[i].name)) {
      fprintf(stderr, "%s: case name %s already used at %s\n", sorted[i].where,
              sorted[i].name, sorted[i - 1].where);
      exit(2);
    }
  free(sorted);
}

void http_corpus_load(const char *dir, http_case **cases, size_t *ncases) {
  DIR *dp = opendir(dir);
  if (!dp) {
    fprintf(stderr, "%s: cannot open the corpus directory\n", dir);
    exit(2);
  }
  sbuf names = {0};
  struct dirent *e;
  while ((e = readdir(dp))) {
    size_t n = strlen(e->d_name);
    if (n > 4 && !strcmp(e->d_name + n - 4, ".txt") &&
        strcmp(e->d_name, "README.txt")) {
      char *path = xmalloc(strlen(dir) + n + 2);
      sprintf(path, "%s/%s", dir, e->d_name);
      sb_put(&names, (const char *)&path, sizeof path);
    }
  }
  closedir(dp);
  char **paths = (char **)names.p;
  size_t npaths = names.len / sizeof(char *);
  if (npaths)
    qsort(paths, npaths, sizeof *paths, by_name);
  loader l = {0};
  for (size_t i = 0; i < npaths; i++)
    load_file(&l, paths[i]);
  for (size_t i = 0; i < npaths; i++)
    free(paths[i]);
  free(names.p);
  *cases = (http_case *)l.cases.p;
  *ncases = l.cases.len / sizeof(http_case);
  check_unique(*cases, *ncases);
}

void http_corpus_free(http_case *cases, size_t ncases) {
  for (size_t i = 0; i < ncases; i++) {
    free(cases[i].where);
    free(cases[i].name);
    free(cases[i].input);
    free(cases[i].expect);
  }
  free(cases);
}
