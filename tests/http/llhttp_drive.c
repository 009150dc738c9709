/* llhttp_drive.c: runs llhttp over an input and collects, from its
 * callbacks, the http_result that tests/http/llhttp_diff.c compares. */
#include "llhttp_drive.h"

#include <llhttp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct drive {
  http_message *msgs;
  size_t nmsgs, cap;
  bool head_request;
  /* Which span the last header callback fed: a name after a value starts
   * the next header. */
  bool in_value;
  /* Header callbacks after the head are the chunked trailers, which soon
   * checks and drops: not the message's headers. */
  bool headers_done;
  bool in_trailer;
  char trailer[24];
  size_t trailer_len;
  /* Lengths of the current message's strings (the message holds only the
   * NUL-terminated text), so appends need no strlen. */
  size_t method_len, target_len, reason_len, name_len, value_len;
} drive;

static void *xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p) {
    fprintf(stderr, "llhttp_drive: out of memory\n");
    abort();
  }
  return p;
}

/* Spans come in as many pieces as the input was cut into: each string
 * grows, NUL-terminated, its length kept beside it. */
static void append(char **s, size_t *len, const char *at, size_t n) {
  *s = xrealloc(*s, *len + n + 1);
  memcpy(*s + *len, at, n);
  *len += n;
  (*s)[*len] = '\0';
}

unsigned llhttp_drive_version(unsigned major, unsigned minor) {
  return major == 1 ? minor : LLHTTP_DRIVE_OTHER_VERSION + major * 10 + minor;
}

static drive *of(llhttp_t *p) { return p->data; }

static http_message *current(drive *d) { return &d->msgs[d->nmsgs - 1]; }

static void begin_message(drive *d) {
  if (d->nmsgs == d->cap) {
    d->cap = d->cap ? 2 * d->cap : 4;
    d->msgs = xrealloc(d->msgs, d->cap * sizeof *d->msgs);
  }
  memset(&d->msgs[d->nmsgs++], 0, sizeof *d->msgs);
  d->in_value = d->headers_done = d->in_trailer = false;
  d->method_len = d->target_len = d->reason_len = 0;
  d->name_len = d->value_len = 0;
}

static int on_message_begin(llhttp_t *p) {
  begin_message(of(p));
  return 0;
}

static int on_method(llhttp_t *p, const char *at, size_t n) {
  drive *d = of(p);
  append(&current(d)->method, &d->method_len, at, n);
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n) {
  drive *d = of(p);
  append(&current(d)->target, &d->target_len, at, n);
  return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t n) {
  drive *d = of(p);
  append(&current(d)->reason, &d->reason_len, at, n);
  return 0;
}

/* A header's value may be empty, and llhttp then never calls on_value: each
 * header starts with an empty value so that it still has one. */
static void new_header(drive *d) {
  http_message *m = current(d);
  m->names = xrealloc(m->names, (m->nheaders + 1) * sizeof *m->names);
  m->values = xrealloc(m->values, (m->nheaders + 1) * sizeof *m->values);
  m->names[m->nheaders] = xrealloc(NULL, 1);
  m->values[m->nheaders] = xrealloc(NULL, 1);
  m->names[m->nheaders][0] = m->values[m->nheaders][0] = '\0';
  m->nheaders++;
  d->name_len = d->value_len = 0;
}

/* Whether a field name is one that frames the message or the connection:
 * llhttp acts on these in trailers too (soon drops trailers unread). */
static bool framing_name(const char *s, size_t n) {
  static const char *const names[] = {"connection", "content-length",
                                      "transfer-encoding"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (n == strlen(names[i]) && strncasecmp(s, names[i], n) == 0)
      return true;
  return false;
}

/* A trailer's name, kept only for framing_name. */
static void trailer_name(drive *d, const char *at, size_t n) {
  if (d->in_value || !d->in_trailer)
    d->trailer_len = 0;
  d->in_trailer = true;
  d->in_value = false;
  for (size_t i = 0; i < n && d->trailer_len < sizeof d->trailer; i++)
    d->trailer[d->trailer_len++] = at[i];
}

static int on_header_field(llhttp_t *p, const char *at, size_t n) {
  drive *d = of(p);
  http_message *m = current(d);
  if (d->headers_done) {
    trailer_name(d, at, n);
    return 0;
  }
  if (m->nheaders == 0 || d->in_value)
    new_header(d);
  d->in_value = false;
  append(&m->names[m->nheaders - 1], &d->name_len, at, n);
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n) {
  drive *d = of(p);
  http_message *m = current(d);
  if (d->headers_done) {
    d->in_value = true;
    if (framing_name(d->trailer, d->trailer_len))
      m->flags |= LLHTTP_DRIVE_TRAILER_FRAMING;
    return 0;
  }
  d->in_value = true;
  append(&m->values[m->nheaders - 1], &d->value_len, at, n);
  return 0;
}

/* Whether a response has no body whatever its headers say (RFC 9112
 * section 6.3). llhttp 8 leaves that to its user, who answers 1 from
 * on_headers_complete (as Node's client does for HEAD): left alone, it
 * would wait for the Content-Length of a 304, a 204 or a 1xx. */
static bool no_body_response(const llhttp_t *p, const drive *d) {
  return p->type == HTTP_RESPONSE &&
         (d->head_request || p->status_code / 100 == 1 ||
          p->status_code == 204 || p->status_code == 304);
}

/* Returning 1 tells llhttp that the message has no body. */
static int on_headers_complete(llhttp_t *p) {
  drive *d = of(p);
  http_message *m = current(d);
  d->headers_done = true;
  m->flags |= LLHTTP_DRIVE_HEAD_DONE;
  m->status = p->type == HTTP_RESPONSE ? p->status_code : 0;
  m->version_minor = llhttp_drive_version(p->http_major, p->http_minor);
  return no_body_response(p, d) ? 1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n) {
  http_message *m = current(of(p));
  append(&m->body, &m->body_len, at, n);
  return 0;
}

/* The flags are still the message's here (llhttp clears them after). */
static int on_message_complete(llhttp_t *p) {
  http_message *m = current(of(p));
  m->complete = true;
  if (llhttp_should_keep_alive(p))
    m->flags |= SOON_HTTP_KEEP_ALIVE;
  return 0;
}

static void fail(drive *d, int err, size_t offset) {
  if (d->nmsgs == 0 || current(d)->complete)
    begin_message(d);
  current(d)->error = err;
  current(d)->error_offset = offset;
}

static const llhttp_settings_t *settings(void) {
  static llhttp_settings_t s;
  if (!s.on_message_begin) {
    llhttp_settings_init(&s);
    s.on_message_begin = on_message_begin;
    s.on_method = on_method;
    s.on_url = on_url;
    s.on_status = on_status;
    s.on_header_field = on_header_field;
    s.on_header_value = on_header_value;
    s.on_headers_complete = on_headers_complete;
    s.on_body = on_body;
    s.on_message_complete = on_message_complete;
  }
  return &s;
}

llhttp_result llhttp_drive(soon_http_type type, bool head_request,
                           const char *in, size_t len, const size_t *cuts,
                           size_t ncuts) {
  drive d = {.head_request = head_request};
  llhttp_t p;
  llhttp_init(&p, type == SOON_HTTP_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE,
              settings());
  p.data = &d;
  llhttp_result out = {{0}, false};
  size_t at = 0;
  llhttp_errno_t err = HPE_OK;
  for (size_t i = 0; i <= ncuts && err == HPE_OK; i++) {
    size_t end = i < ncuts ? cuts[i] : len;
    if (end < at || end > len)
      continue; /* a bad cut list: the rest goes in the last piece */
    err = llhttp_execute(&p, in + at, end - at);
    at = end;
  }
  if (err == HPE_PAUSED_UPGRADE) {
    /* The rest is another protocol's: what came before is the result. */
    out.upgraded = true;
  } else if (err != HPE_OK) {
    /* Each piece was passed in place, so the position is in the input. */
    fail(&d, (int)err, (size_t)(llhttp_get_error_pos(&p) - in));
  } else {
    err = llhttp_finish(&p);
    if (err != HPE_OK)
      fail(&d, (int)err, len);
  }
  out.r.msgs = d.msgs;
  out.r.nmsgs = d.nmsgs;
  return out;
}

const char *llhttp_drive_error_name(int error) {
  return llhttp_errno_name((llhttp_errno_t)error);
}

/* Probed, not listed: the methods of llhttp's table that it takes in a
 * request (the table also holds RTSP's, which it refuses there). */
bool llhttp_drive_method_known(const char *method) {
#define LLHTTP_DRIVE_NAME(num, name, string) #string,
  static const char *const table[] = {HTTP_ALL_METHOD_MAP(LLHTTP_DRIVE_NAME)};
#undef LLHTTP_DRIVE_NAME
  enum { N = sizeof table / sizeof table[0] };
  static bool taken[N], probed;
  if (!probed) {
    probed = true;
    for (size_t i = 0; i < N; i++) {
      char in[96];
      int len =
          snprintf(in, sizeof in, "%s / HTTP/1.1\r\nHost: a\r\n\r\n", table[i]);
      llhttp_result r =
          llhttp_drive(SOON_HTTP_REQUEST, false, in, (size_t)len, NULL, 0);
      taken[i] = r.r.nmsgs == 1 && !r.r.msgs[0].error;
      http_result_free(&r.r);
    }
  }
  for (size_t i = 0; i < N; i++)
    if (taken[i] && strcmp(table[i], method) == 0)
      return true;
  return false;
}
