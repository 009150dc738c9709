/* llhttp_diff.c: differential test of soon's HTTP parser against llhttp, the
 * parser Node.js uses: the corpus whole and byte by byte, then mutations. */
#include "corpus.h"
#include "llhttp_drive.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#ifndef SOON_HTTP_CORPUS
#define SOON_HTTP_CORPUS "tests/http"
#endif

enum { MAX_INPUT = 1 << 16 };

/* How many disagreements to print: 20, or $SOON_HTTP_DIFF_SHOW. */
static unsigned long max_shown = 20;

/* -------------------------------------------------------------- the PRNG */

/* splitmix64: one word of state, so a seed replays a run exactly. */
static uint64_t rng;

static uint64_t rand64(void) {
  uint64_t z = (rng += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

/* Uniform enough in [0, n) for n far below 2^64; 0 when n is 0. */
static size_t below(size_t n) { return n ? (size_t)(rand64() % n) : 0; }

/* -------------------------------------------------------- the comparison */

typedef enum diff_kind {
  SAME,
  SOON_REJECTS,   /* soon rejects a message that llhttp accepts */
  LLHTTP_REJECTS, /* the other way round */
  FIELDS,         /* both accept it, with different fields */
  COUNT           /* both accept all, not the same number of messages */
} diff_kind;

/* One comparison: the input, both results, and where they first differ. */
typedef struct cmp {
  soon_http_type type;
  bool head_request;
  const char *in;
  size_t len;
  const http_result *soon;
  const llhttp_result *ll;
  diff_kind kind;
  size_t msg;        /* the first message that differs */
  const char *field; /* FIELDS: which one */
} cmp;

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

static bool str_eq(const char *a, const char *b) {
  return strcmp(a ? a : "", b ? b : "") == 0;
}

/* llhttp's value span keeps the trailing OWS that RFC 9112 section 5 says
 * is not part of the value (it drops the leading OWS itself); soon's
 * excludes it. Only a representation difference: trim it before comparing. */
static bool value_eq(const char *soon, const char *ll) {
  size_t n = strlen(ll);
  while (n > 0 && is_ows(ll[n - 1]))
    n--;
  while (n > 0 && is_ows(*ll))
    ll++, n--;
  return strlen(soon) == n && memcmp(soon, ll, n) == 0;
}

/* The first field of two accepted messages that differs, or NULL. A NULL
 * reason and an empty one are the same (llhttp has no callback for an empty
 * reason). */
static const char *message_diff(soon_http_type type, const http_message *s,
                                const http_message *l) {
  if (type == SOON_HTTP_REQUEST) {
    if (!str_eq(s->method, l->method))
      return "method";
    if (!str_eq(s->target, l->target))
      return "target";
  } else {
    if (s->status != l->status)
      return "status";
    if (!str_eq(s->reason, l->reason))
      return "reason";
  }
  if (s->version_minor != l->version_minor)
    return "version";
  if (s->nheaders != l->nheaders)
    return "header count";
  for (unsigned i = 0; i < s->nheaders; i++) {
    if (strcmp(s->names[i], l->names[i]) != 0)
      return "header name";
    if (!value_eq(s->values[i], l->values[i]))
      return "header value";
  }
  if (s->body_len != l->body_len ||
      (s->body_len && memcmp(s->body, l->body, s->body_len) != 0))
    return "body";
  if (s->complete != l->complete)
    return "complete";
  if ((s->flags & SOON_HTTP_KEEP_ALIVE) != (l->flags & SOON_HTTP_KEEP_ALIVE))
    return "keep-alive";
  return NULL;
}

/* Walk both results message by message until they differ or stop. llhttp
 * (as Node builds it) discards whatever follows a message that does not
 * keep the connection alive, and stops after one that switches protocols:
 * the comparison stops there too, as a server would. */
static void compare(cmp *c) {
  const http_result *s = c->soon, *l = &c->ll->r;
  c->kind = SAME;
  for (size_t i = 0;; i++) {
    c->msg = i;
    const http_message *sm = i < s->nmsgs ? &s->msgs[i] : NULL;
    const http_message *lm = i < l->nmsgs ? &l->msgs[i] : NULL;
    bool s_ok = sm && !sm->error, l_ok = lm && !lm->error;
    if (!sm && !lm)
      return;
    if (sm && lm && sm->error && lm->error)
      return;
    if (!sm || !lm) {
      /* One ran out of messages: a difference of verdict if the other
       * rejects, else of count. */
      if ((sm && sm->error) || (lm && lm->error))
        c->kind = sm ? SOON_REJECTS : LLHTTP_REJECTS;
      else
        c->kind = COUNT;
      return;
    }
    if (!s_ok || !l_ok) {
      c->kind = s_ok ? LLHTTP_REJECTS : SOON_REJECTS;
      return;
    }
    c->field = message_diff(c->type, sm, lm);
    if (c->field) {
      c->kind = FIELDS;
      return;
    }
    bool last_ll = i + 1 == l->nmsgs;
    if (!(lm->flags & SOON_HTTP_KEEP_ALIVE) || (c->ll->upgraded && last_ll))
      return;
  }
}

/* --------------------------------------------------- the input, examined */

static int byte_at(const cmp *c, size_t off) {
  return off < c->len ? (unsigned char)c->in[off] : -1;
}

/* An LF that no CR precedes; a CR that no LF follows. */
static bool bare_lf(const cmp *c, size_t k) {
  return byte_at(c, k) == '\n' && (k == 0 || c->in[k - 1] != '\r');
}

static bool bare_cr(const cmp *c, size_t k) {
  return byte_at(c, k) == '\r' && byte_at(c, k + 1) != '\n';
}

static size_t line_start(const cmp *c, size_t k) {
  while (k > 0 && c->in[k - 1] != '\n')
    k--;
  return k;
}

/* The line around off, without its line end: [*start, *end). */
static void line_around(const cmp *c, size_t off, size_t *start, size_t *end) {
  *start = line_start(c, off);
  size_t e = off;
  while (e < c->len && c->in[e] != '\n')
    e++;
  if (e > *start && e < c->len && c->in[e - 1] == '\r')
    e--;
  *end = e;
}

/* Whether the line starting at off is a field called name. */
static bool field_line_is(const cmp *c, size_t off, const char *name) {
  size_t n = strlen(name);
  return off + n < c->len && strncasecmp(c->in + off, name, n) == 0 &&
         c->in[off + n] == ':';
}

static bool field_line_at(const cmp *c, size_t off, const char *name) {
  size_t start, end;
  line_around(c, off, &start, &end);
  return field_line_is(c, start, name);
}

/* The message at c->msg, soon's and llhttp's (NULL if it has none). */
static const http_message *soon_msg(const cmp *c) {
  return c->msg < c->soon->nmsgs ? &c->soon->msgs[c->msg] : NULL;
}

static const http_message *ll_msg(const cmp *c) {
  return c->msg < c->ll->r.nmsgs ? &c->ll->r.msgs[c->msg] : NULL;
}

/* soon rejected what llhttp accepted, with err: the code says which check
 * fired; each classifier then looks at the input to see that the check was
 * right to. */
static bool soon_error_is(const cmp *c, int err) {
  const http_message *m = soon_msg(c);
  return c->kind == SOON_REJECTS && m && m->error == err;
}

/* The same, where llhttp did parse the message (rather than drop the bytes
 * as noise between messages): the classifier looks at its fields. */
static bool soon_error_parsed(const cmp *c, int err) {
  return soon_error_is(c, err) && ll_msg(c);
}

static size_t soon_offset(const cmp *c) { return soon_msg(c)->error_offset; }

/* llhttp rejected what soon accepted, with the HPE_* error called name. */
static bool ll_error_is(const cmp *c, const char *name) {
  const http_message *m = ll_msg(c);
  return c->kind == LLHTTP_REJECTS && m && m->error &&
         strcmp(llhttp_drive_error_name(m->error), name) == 0 && soon_msg(c);
}

/* How many of llhttp's headers of the differing message are called name. */
static unsigned ll_count(const cmp *c, const char *name) {
  const http_message *m = ll_msg(c);
  unsigned n = 0;
  for (unsigned i = 0; m && i < m->nheaders; i++)
    n += strcasecmp(m->names[i], name) == 0;
  return n;
}

/* ----------------------------------------------------------- RFC grammar */

static bool tchar(int ch) {
  return ch > 0 && ch < 0x7f &&
         (isalnum(ch) || (ch != '"' && strchr("!#$%&'*+-.^_`|~", ch)));
}

static bool vchar(int ch) { return ch > 0x20 && ch < 0x7f; }

/* RFC 9110 section 5.6.4: "\"" *( qdtext / quoted-pair ) "\"", from *i;
 * moves *i past it. */
static bool quoted_string(const char *s, size_t n, size_t *i) {
  if (*i >= n || s[*i] != '"')
    return false;
  for (size_t k = *i + 1; k < n; k++) {
    unsigned char ch = (unsigned char)s[k];
    if (ch == '"') {
      *i = k + 1;
      return true;
    }
    if (ch == '\\')
      k++;
    else if ((ch != '\t' && ch < 0x20) || ch == 0x7f)
      return false;
  }
  return false;
}

static size_t skip_ows(const char *s, size_t n, size_t i) {
  while (i < n && is_ows(s[i]))
    i++;
  return i;
}

static size_t skip_token(const char *s, size_t n, size_t i) {
  while (i < n && tchar((unsigned char)s[i]))
    i++;
  return i;
}

/* RFC 9112 section 6.1 and RFC 9110 section 10.1.4: Transfer-Encoding =
 * #transfer-coding, transfer-coding = token *( OWS ";" OWS token "="
 * ( token / quoted-string ) ). Counts the chunked codings into *chunked. */
static bool coding_list_ok(const char *s, unsigned *chunked) {
  size_t n = strlen(s), i = 0;
  bool any = false;
  while (i < n) {
    i = skip_ows(s, n, i);
    if (i < n && s[i] == ',') {
      i++;
      continue;
    }
    size_t t = i;
    i = skip_token(s, n, i);
    if (i == t)
      return false;
    any = true;
    *chunked += i - t == 7 && strncasecmp(s + t, "chunked", 7) == 0;
    for (;;) {
      size_t j = skip_ows(s, n, i);
      if (j == n || s[j] != ';') {
        i = j;
        break;
      }
      j = skip_ows(s, n, j + 1);
      size_t k = skip_token(s, n, j);
      if (k == j || k == n || s[k] != '=')
        return false;
      j = ++k;
      if (!quoted_string(s, n, &j)) {
        j = skip_token(s, n, k);
        if (j == k)
          return false;
      }
      i = j;
    }
    if (i < n && s[i] != ',')
      return false;
  }
  return any;
}

/* RFC 9112 section 3.2: origin-form ("/..."), absolute-form (scheme ":"
 * ...), authority-form (host ":" port) for CONNECT only, "*" for OPTIONS
 * only. */
static bool target_form_ok(const char *method, const char *t) {
  if (strcmp(method, "CONNECT") == 0) {
    const char *colon = strrchr(t, ':');
    if (!colon || colon == t || strpbrk(t, "/?#@"))
      return false;
    for (const char *d = colon + 1; *d; d++)
      if (!isdigit((unsigned char)*d))
        return false;
    return true;
  }
  if (strcmp(t, "*") == 0)
    return strcmp(method, "OPTIONS") == 0;
  if (t[0] == '/')
    return true;
  if (!isalpha((unsigned char)t[0]))
    return false;
  size_t i = 1;
  while (isalnum((unsigned char)t[i]) || t[i] == '+' || t[i] == '-' ||
         t[i] == '.')
    i++;
  return t[i] == ':';
}

/* RFC 3986 section 3.2.2 and RFC 9110 section 7.2: Host = uri-host
 * [ ":" port ]; uri-host an IP-literal in brackets or a reg-name of
 * unreserved, pct-encoded and sub-delims characters (an IPv4 address is
 * one). Empty is allowed. */
static bool host_value_ok(const char *v) {
  static const char sub_delims[] = "!$&'()*+,;=";
  size_t i = 0;
  if (v[0] == '[') {
    const char *close = strchr(v, ']');
    if (!close || close == v + 1)
      return false;
    for (i = 1; v + i < close; i++)
      if (!isxdigit((unsigned char)v[i]) && !strchr(":.vV", v[i]) &&
          !strchr(sub_delims, v[i]) && !strchr("-_~", v[i]) &&
          !isalnum((unsigned char)v[i]))
        return false;
    i++;
  } else {
    for (; v[i] && v[i] != ':'; i++) {
      unsigned char ch = (unsigned char)v[i];
      if (ch == '%') {
        if (!isxdigit((unsigned char)v[i + 1]) ||
            !isxdigit((unsigned char)v[i + 2]))
          return false;
        i += 2;
      } else if (!isalnum(ch) && !strchr("-._~", ch) &&
                 !strchr(sub_delims, ch)) {
        return false;
      }
    }
  }
  if (v[i] == ':')
    for (i++; isdigit((unsigned char)v[i]); i++)
      ;
  return v[i] == '\0';
}

/* RFC 9112 section 7.1.1: chunk-size [ chunk-ext ] before CRLF, with
 * chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted ) ] ). */
static bool chunk_line_ok(const char *s, size_t n) {
  size_t i = 0;
  while (i < n && isxdigit((unsigned char)s[i]))
    i++;
  if (i == 0)
    return false;
  while (i < n) {
    i = skip_ows(s, n, i);
    if (i == n || s[i] != ';')
      return false;
    i = skip_ows(s, n, i + 1);
    size_t k = skip_token(s, n, i);
    if (k == i)
      return false;
    i = skip_ows(s, n, k);
    if (i < n && s[i] == '=') {
      i = skip_ows(s, n, i + 1);
      if (!quoted_string(s, n, &i)) {
        k = skip_token(s, n, i);
        if (k == i)
          return false;
        i = k;
      }
      i = skip_ows(s, n, i);
    }
  }
  return true;
}

/* RFC 9110 section 5.6.1: the elements of a comma list, trimmed of OWS
 * (SP and HTAB), one per call: [*a, *b) of v[0..n); *e is where the next
 * search starts. Empty elements count. False after the last. */
static bool list_next(const char *v, size_t n, size_t *e, size_t *a,
                      size_t *b) {
  if (*e > n)
    return false;
  size_t stop = *e;
  while (stop < n && v[stop] != ',')
    stop++;
  *a = skip_ows(v, stop, *e);
  *b = stop;
  while (*b > *a && is_ows(v[*b - 1]))
    (*b)--;
  *e = stop + 1;
  return true;
}

static bool elem_is(const char *v, size_t a, size_t b, const char *word) {
  return b - a == strlen(word) && strncasecmp(v + a, word, b - a) == 0;
}

/* Whether a field called name of message m has word among its list
 * elements, read as the RFC says. */
static bool list_has(const http_message *m, const char *name,
                     const char *word) {
  for (unsigned i = 0; m && i < m->nheaders; i++) {
    const char *v = m->values[i];
    size_t n = strlen(v), e = 0, a, b;
    if (strcasecmp(m->names[i], name) == 0)
      while (list_next(v, n, &e, &a, &b))
        if (elem_is(v, a, b, word))
          return true;
  }
  return false;
}

/* Whether a field called name of message m holds an HTAB. */
static bool field_has_htab(const http_message *m, const char *name) {
  for (unsigned i = 0; m && i < m->nheaders; i++)
    if (strcasecmp(m->names[i], name) == 0 && strchr(m->values[i], '\t'))
      return true;
  return false;
}

/* -------------------------------------------------- known: soon stricter */

/* RFC 9112 section 2.2: a recipient MAY take a bare LF for a line end. soon
 * does not: two parsers that split lines differently are a smuggling pair.
 */
static bool bare_lf_line_end(const cmp *c) {
  if (!soon_error_is(c, SOON_HTTP_ELINE_END))
    return false;
  size_t k = soon_offset(c);
  if (bare_lf(c, k))
    return true;
  /* An LF after a body that ended in CR: the CR was the body's. */
  const http_message *prev = c->msg ? &c->soon->msgs[c->msg - 1] : NULL;
  return byte_at(c, k) == '\n' && prev && prev->body_len &&
         prev->body[prev->body_len - 1] == '\r';
}

/* RFC 9112 section 2.2: a bare CR outside content MUST be rejected (or
 * replaced by SP). llhttp takes a CR and any byte after it for a line end,
 * and skips lone CRs between messages. soon reports a bare CR where its
 * line ends; when no LF ever comes, it sees a message that never ended:
 * then the proof is that with an LF after each bare CR, soon no longer
 * waits for more in that message. */
static bool bare_cr_line_end(const cmp *c) {
  if (soon_error_is(c, SOON_HTTP_ELINE_END))
    return bare_cr(c, soon_offset(c));
  if (!soon_error_is(c, SOON_HTTP_ETRUNCATED))
    return false;
  char *fixed = malloc(2 * c->len + 1);
  size_t n = 0;
  if (!fixed)
    abort();
  for (size_t k = 0; k < c->len; k++) {
    fixed[n++] = c->in[k];
    if (bare_cr(c, k))
      fixed[n++] = '\n';
  }
  bool waits = true;
  if (n > c->len) {
    http_result r = http_drive(c->type, c->head_request, fixed, n, NULL, 0,
                               HTTP_DRIVE_SPANS, NULL, SOON_HTTP_MAX_HEADERS);
    waits = c->msg < r.nmsgs && r.msgs[c->msg].error == SOON_HTTP_ETRUNCATED;
    http_result_free(&r);
  }
  free(fixed);
  return !waits;
}

/* RFC 9112 section 5.2: a server MUST reject obs-fold in a request (or
 * replace it), and soon rejects it in a response too rather than unfold. */
static bool obs_fold(const cmp *c) {
  const http_message *m = soon_msg(c);
  if (c->kind != SOON_REJECTS || !m)
    return false;
  size_t k = soon_offset(c);
  if (m->error == SOON_HTTP_EOBS_FOLD)
    return is_ows((char)byte_at(c, k)) && k > 0 && c->in[k - 1] == '\n';
  /* soon refused the value of the line before a fold (an empty
   * Content-Length, say), which llhttp completes with the fold's text */
  size_t start, end;
  line_around(c, k, &start, &end);
  return m->error != SOON_HTTP_ELINE_END &&
         memchr(c->in + start, ':', end - start) && byte_at(c, end) == '\r' &&
         byte_at(c, end + 1) == '\n' && is_ows((char)byte_at(c, end + 2));
}

/* RFC 9112 section 5.1: no whitespace between a field name and its colon;
 * a server MUST reject it (400), a proxy MUST strip it from a response.
 * llhttp keeps it as part of the name. */
static bool space_before_colon(const cmp *c) {
  bool err = soon_error_is(c, SOON_HTTP_EHEADER_NAME) ||
             soon_error_is(c, SOON_HTTP_ETRAILER);
  if (!err)
    return false;
  size_t k = soon_offset(c);
  if (!is_ows((char)byte_at(c, k)) || k == line_start(c, k))
    return false;
  while (is_ows((char)byte_at(c, k)))
    k++;
  return byte_at(c, k) == ':';
}

/* RFC 9110 section 5.1: a field name is a token: no SP, no empty name.
 * llhttp takes both, in the head and in the trailers. */
static bool name_not_token(const cmp *c) {
  if (!soon_error_is(c, SOON_HTTP_EHEADER_NAME) &&
      !soon_error_is(c, SOON_HTTP_ETRAILER))
    return false;
  size_t k = soon_offset(c), start, end;
  line_around(c, k, &start, &end);
  const char *colon = memchr(c->in + start, ':', end - start);
  int ch = byte_at(c, k);
  return colon && (c->in + k < colon || (c->in + k == colon && k == start)) &&
         !tchar(ch) && ch != '\r' && ch != '\n';
}

/* RFC 9112 section 4: reason-phrase = *( HTAB / SP / VCHAR / obs-text ):
 * no NUL, no DEL, no other control. */
static bool reason_ctl(const cmp *c) {
  if (!soon_error_is(c, SOON_HTTP_EREASON))
    return false;
  int ch = byte_at(c, soon_offset(c));
  return ch >= 0 && ((ch < 0x20 && ch != '\t') || ch == 0x7f);
}

/* RFC 9112 section 2.3 and RFC 9110 section 6.2: soon speaks HTTP/1.0 and
 * 1.1 only; llhttp takes HTTP/0.9 (a request line without a version) and
 * 2.0. */
static bool other_version(const cmp *c) {
  /* A request line without a version is 0.9 to llhttp, and soon may find
   * its "target" bad before it finds the version missing. */
  return (soon_error_parsed(c, SOON_HTTP_EVERSION) ||
          soon_error_parsed(c, SOON_HTTP_EVERSION_UNSUP) ||
          soon_error_parsed(c, SOON_HTTP_ETARGET)) &&
         ll_msg(c)->version_minor >= LLHTTP_DRIVE_OTHER_VERSION;
}

/* RFC 9112 sections 3 and 4: one SP between the parts of the request and
 * status lines, and no whitespace or control byte in a target (section
 * 3.2). llhttp takes runs of spaces and an HTAB in the target. soon does
 * not split on other whitespace (the section's MAY). */
static bool first_line_whitespace(const cmp *c) {
  bool err = soon_error_is(c, SOON_HTTP_ETARGET) ||
             soon_error_is(c, SOON_HTTP_EVERSION) ||
             soon_error_is(c, SOON_HTTP_ESTATUS);
  if (!err)
    return false;
  size_t k = soon_offset(c);
  int ch = byte_at(c, k);
  if (ch == ' ')
    return k > 0 && c->in[k - 1] == ' ';
  return soon_error_is(c, SOON_HTTP_ETARGET) && ch >= 0 &&
         (ch < 0x20 || ch == 0x7f) && ch != '\r' && ch != '\n';
}

/* RFC 9112 section 3.2 (and RFC 3986 section 2): a target is ASCII; llhttp
 * takes bytes 0x80-0xff in it. */
static bool target_not_ascii(const cmp *c) {
  return soon_error_is(c, SOON_HTTP_ETARGET) &&
         byte_at(c, soon_offset(c)) >= 0x80;
}

/* RFC 9112 section 3.2: the target's form follows the method; llhttp takes
 * "CONNECT host" without a port, "GET *", "GET host/path". */
static bool target_form(const cmp *c) {
  if (!soon_error_parsed(c, SOON_HTTP_ETARGET))
    return false;
  const http_message *m = ll_msg(c);
  size_t k = soon_offset(c);
  return k > 0 && c->in[k - 1] == ' ' && m->method && m->target &&
         !target_form_ok(m->method, m->target);
}

/* RFC 9110 section 15: a status code is three digits, 100-599; llhttp
 * takes any number, and more digits. */
static bool status_range(const cmp *c) {
  if (!soon_error_parsed(c, SOON_HTTP_ESTATUS))
    return false;
  int st = ll_msg(c)->status;
  if (st < 100 || st > 599)
    return true;
  /* status-code = 3DIGIT: llhttp reads "0200" as 200. */
  size_t start, end, i;
  line_around(c, soon_offset(c), &start, &end);
  const char *sp = memchr(c->in + start, ' ', end - start);
  if (!sp)
    return false;
  for (i = (size_t)(sp - c->in) + 1;
       i < end && isdigit((unsigned char)c->in[i]);)
    i++;
  return i - (size_t)(sp - c->in) - 1 != 3;
}

/* RFC 9112 section 3.2: a server MUST answer 400 to an HTTP/1.1 request
 * without Host, and to any request with more than one. llhttp leaves that
 * to its user. */
static bool host_count(const cmp *c) {
  if (!soon_error_parsed(c, SOON_HTTP_EHOST) || c->type != SOON_HTTP_REQUEST)
    return false;
  unsigned n = ll_count(c, "host");
  return n > 1 || (n == 0 && ll_msg(c)->version_minor == 1);
}

/* RFC 9112 section 3.2: a server MUST answer 400 to a Host that is not a
 * valid uri-host [ ":" port ]; llhttp does not look. */
static bool host_invalid(const cmp *c) {
  if (!soon_error_parsed(c, SOON_HTTP_EHOST))
    return false;
  const http_message *m = ll_msg(c);
  for (unsigned i = 0; i < m->nheaders; i++) {
    if (strcasecmp(m->names[i], "host") != 0)
      continue;
    size_t n = strlen(m->values[i]);
    while (n && is_ows(m->values[i][n - 1]))
      n--;
    char *v = strndup(m->values[i], n);
    bool ok = v && host_value_ok(v);
    free(v);
    return !ok; /* the first Host: a second is host_count's */
  }
  return false;
}

/* RFC 9112 section 2.2 lets a server skip empty lines before a request
 * line; nothing says so of a status line, and soon does not skip them
 * there. llhttp skips them in both. */
static bool response_empty_line(const cmp *c) {
  if (c->type != SOON_HTTP_RESPONSE || !soon_error_is(c, SOON_HTTP_EVERSION))
    return false;
  /* at a message's first byte: the input's line start, or (for a later
   * message) where the body before it ended */
  size_t k = soon_offset(c);
  return (k == line_start(c, k) || c->msg > 0) && byte_at(c, k) == '\r' &&
         byte_at(c, k + 1) == '\n';
}

/* soon keeps a length in an int64_t (include/soon/http.h): 2^63 and up is
 * refused; llhttp takes up to 2^64 - 1. RFC 9110 section 8.6 lets a
 * recipient refuse a length it cannot handle. */
static bool huge_length(const cmp *c) {
  if (!soon_error_is(c, SOON_HTTP_ECONTENT_LENGTH))
    return false;
  size_t start, end;
  line_around(c, soon_offset(c), &start, &end);
  if (!field_line_is(c, start, "content-length"))
    return false;
  size_t i = skip_ows(c->in, end, start + 15), e = end;
  while (e > i && is_ows(c->in[e - 1]))
    e--;
  while (i + 1 < e && c->in[i] == '0')
    i++;
  for (size_t k = i; k < e; k++)
    if (!isdigit((unsigned char)c->in[k]))
      return false;
  static const char max[] = "9223372036854775807"; /* 2^63 - 1 */
  size_t n = e - i;
  return n > sizeof max - 1 ||
         (n == sizeof max - 1 && memcmp(c->in + i, max, n) > 0);
}

/* RFC 9112 section 6.1: Transfer-Encoding in an HTTP/1.0 message means
 * faulty framing (it came through a 1.0 hop that ignored it). */
static bool te_in_http10(const cmp *c) {
  return soon_error_parsed(c, SOON_HTTP_ETRANSFER_ENCODING) &&
         ll_msg(c)->version_minor == 0 &&
         field_line_is(c, soon_offset(c), "transfer-encoding");
}

/* RFC 9112 section 6.1 and RFC 9110 section 15.6.2: a request coding the
 * server does not understand gets 501; soon decodes chunked only. llhttp
 * takes "gzip, chunked" (and any coding in an Upgrade request). */
static bool request_coding(const cmp *c) {
  if (!soon_error_is(c, SOON_HTTP_ETE_UNSUP) || c->type != SOON_HTTP_REQUEST)
    return false;
  size_t k = soon_offset(c), start, end;
  line_around(c, k, &start, &end);
  size_t t = skip_token(c->in, c->len, k);
  return field_line_is(c, start, "transfer-encoding") && t > k &&
         !(t - k == 7 && strncasecmp(c->in + k, "chunked", 7) == 0);
}

/* RFC 9112 section 6.1: a sender MUST NOT apply chunked more than once. */
static bool chunked_twice(const cmp *c) {
  if (!soon_error_parsed(c, SOON_HTTP_ETRANSFER_ENCODING))
    return false;
  size_t k = soon_offset(c);
  if (k + 7 > c->len || strncasecmp(c->in + k, "chunked", 7) != 0)
    return false;
  const http_message *m = ll_msg(c);
  unsigned chunked = 0;
  for (unsigned i = 0; i < m->nheaders; i++)
    if (strcasecmp(m->names[i], "transfer-encoding") == 0)
      coding_list_ok(m->values[i], &chunked);
  return chunked >= 2;
}

/* RFC 9112 section 7.1: chunked defines no parameters, and their presence
 * SHOULD be treated as an error; soon does, at the ';' after "chunked"
 * (llhttp rejects them too, but reads no Transfer-Encoding at all in an
 * Upgrade request). */
static bool chunked_parameter(const cmp *c) {
  if (!soon_error_parsed(c, SOON_HTTP_ETRANSFER_ENCODING))
    return false;
  size_t k = soon_offset(c), j = k;
  if (byte_at(c, k) != ';')
    return false;
  while (j > 0 && (c->in[j - 1] == ' ' || c->in[j - 1] == '\t'))
    j--;
  return j >= 7 && strncasecmp(c->in + j - 7, "chunked", 7) == 0;
}

/* RFC 9112 section 6.1: Transfer-Encoding is a list of codings; soon
 * rejects one it cannot read (the framing would be a guess), llhttp looks
 * for "chunked" in it and takes what is left as close-delimited. */
static bool malformed_coding_list(const cmp *c) {
  if (!soon_error_parsed(c, SOON_HTTP_ETRANSFER_ENCODING))
    return false;
  const http_message *m = ll_msg(c);
  for (unsigned i = 0; i < m->nheaders; i++) {
    unsigned chunked = 0;
    if (strcasecmp(m->names[i], "transfer-encoding") == 0 &&
        !coding_list_ok(m->values[i], &chunked))
      return true;
  }
  return false;
}

/* An empty Transfer-Encoding: soon takes the field's presence as a framing
 * claim it cannot read (RFC 9112 section 6.1: the list has at least one
 * coding to mean anything), and refuses it; llhttp ignores the field. */
static bool empty_coding_list(const cmp *c) {
  if (!soon_error_parsed(c, SOON_HTTP_ETE_AND_CL) &&
      !soon_error_parsed(c, SOON_HTTP_ETRANSFER_ENCODING))
    return false;
  const http_message *m = ll_msg(c);
  for (unsigned i = 0; i < m->nheaders; i++) {
    const char *v = m->values[i];
    if (strcasecmp(m->names[i], "transfer-encoding") == 0 &&
        skip_ows(v, strlen(v), 0) == strlen(v))
      return true;
  }
  return false;
}

/* RFC 9112 section 7.1: chunk-data is followed by CRLF; llhttp takes any
 * byte there (a known smuggling vector). */
static bool chunk_data_end(const cmp *c) {
  if (!soon_error_is(c, SOON_HTTP_ECHUNK_END))
    return false;
  size_t k = soon_offset(c);
  return !(byte_at(c, k) == '\r' && byte_at(c, k + 1) == '\n');
}

/* RFC 9112 section 7.1.1: chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS
 * value ] ): a name is not empty, a value not empty. llhttp takes ";;",
 * ";=1", "ext=". */
static bool chunk_ext_malformed(const cmp *c) {
  if (!soon_error_is(c, SOON_HTTP_ECHUNK_EXT))
    return false;
  size_t start, end;
  line_around(c, soon_offset(c), &start, &end);
  return !chunk_line_ok(c->in + start, end - start);
}

/* Limits (include/soon/http.h): llhttp has none (Node puts its own head
 * limit around it); soon's defaults are 8 KiB of head, 100 fields, 1 MiB
 * of body and 256 bytes of one chunk's extensions, each with its own code
 * so that a server answers 431, 413. */
static bool over_limit(const cmp *c) {
  const http_message *l = ll_msg(c), *m = soon_msg(c);
  if (!l || !m)
    return false;
  size_t k = m->error_offset, start, end;
  if (soon_error_is(c, SOON_HTTP_EHEAD_SIZE) ||
      soon_error_is(c, SOON_HTTP_ETARGET_SIZE))
    return k >= SOON_HTTP_MAX_HEAD &&
           !memmem(c->in + k - SOON_HTTP_MAX_HEAD, SOON_HTTP_MAX_HEAD,
                   "\r\n\r\n", 4);
  if (soon_error_is(c, SOON_HTTP_EHEADER_COUNT))
    return l->nheaders > SOON_HTTP_MAX_HEADERS;
  if (soon_error_is(c, SOON_HTTP_EBODY_SIZE))
    return l->body_len > SOON_HTTP_MAX_BODY;
  if (!soon_error_is(c, SOON_HTTP_ECHUNK_EXT_SIZE))
    return false;
  line_around(c, k, &start, &end);
  const char *ext = memchr(c->in + start, ';', end - start);
  return ext && (size_t)(c->in + end - ext) > SOON_HTTP_MAX_CHUNK_EXT;
}

/* --------------------------------------- known: llhttp stricter or other */

/* RFC 9110 section 9.1: a method is any token, and its registry grows;
 * llhttp knows a fixed list. */
static bool extension_method(const cmp *c) {
  if (!ll_error_is(c, "HPE_INVALID_METHOD") &&
      !ll_error_is(c, "HPE_INVALID_CONSTANT"))
    return false;
  const char *m = soon_msg(c)->method;
  return m && !llhttp_drive_method_known(m);
}

/* soon checks a target's bytes (VCHAR, include/soon/http.h) and its form,
 * and leaves RFC 3986's grammar to whoever reads the URI; llhttp parses
 * URLs itself and refuses some (a '|' in a host, but also "h3ttp://"). The
 * rejection must lie inside the target. */
static bool uri_grammar(const cmp *c) {
  if (!ll_error_is(c, "HPE_INVALID_URL"))
    return false;
  const http_message *s = soon_msg(c);
  size_t k = ll_msg(c)->error_offset, start, end;
  line_around(c, k, &start, &end);
  const char *t = s->target;
  size_t tlen = t ? strlen(t) : 0;
  const char *at = tlen ? memmem(c->in + start, end - start, t, tlen) : NULL;
  /* llhttp may stop on the SP after the target, or the byte after it */
  if (!at || c->in + k < at || c->in + k > at + tlen + 1)
    return false;
  for (size_t i = 0; i < tlen; i++)
    if (!vchar((unsigned char)t[i]))
      return false;
  return true;
}

/* RFC 9112 section 7.1.1 allows BWS around a chunk extension's ';' and
 * '=', and a name without a value anywhere in the list; llhttp 8 refuses
 * some of those. */
static bool chunk_ext_grammar(const cmp *c) {
  if (!ll_error_is(c, "HPE_STRICT") &&
      !ll_error_is(c, "HPE_INVALID_CHUNK_SIZE"))
    return false;
  size_t start, end;
  line_around(c, ll_msg(c)->error_offset, &start, &end);
  return memchr(c->in + start, ';', end - start) &&
         chunk_line_ok(c->in + start, end - start);
}

/* RFC 9110 section 5.5: OWS (SP or HTAB) around a field value is not part
 * of it; llhttp refuses an HTAB after a Content-Length's digits. */
static bool length_then_htab(const cmp *c) {
  if (!ll_error_is(c, "HPE_INVALID_CONTENT_LENGTH"))
    return false;
  size_t k = ll_msg(c)->error_offset, start, end;
  if (byte_at(c, k) != '\t' || !field_line_at(c, k, "content-length"))
    return false;
  line_around(c, k, &start, &end);
  size_t i = skip_ows(c->in, end, start + 15), d = i;
  while (i < end && isdigit((unsigned char)c->in[i]))
    i++;
  return i > d && skip_ows(c->in, end, i) == end;
}

/* RFC 9110 section 6.5.1: framing fields mean nothing in trailers, and a
 * recipient may drop trailers (soon checks their syntax and drops them).
 * llhttp reads Transfer-Encoding, Content-Length and Connection in
 * trailers as if they were headers. */
static bool trailer_semantics(const cmp *c) {
  const http_message *s = soon_msg(c), *l = ll_msg(c);
  if (!s || !l || s->error || s->body_kind != SOON_HTTP_BODY_CHUNKED)
    return false;
  if (c->kind == FIELDS)
    return strcmp(c->field, "keep-alive") == 0 &&
           (s->flags & SOON_HTTP_KEEP_ALIVE) &&
           (l->flags & LLHTTP_DRIVE_TRAILER_FRAMING);
  bool framing = ll_error_is(c, "HPE_INVALID_TRANSFER_ENCODING") ||
                 ll_error_is(c, "HPE_UNEXPECTED_CONTENT_LENGTH") ||
                 ll_error_is(c, "HPE_INVALID_CONTENT_LENGTH");
  /* llhttp stops in the field's line, or at the start of the next (an
   * empty value) */
  size_t k = l->error_offset;
  if (k > 1 && k == line_start(c, k))
    k -= 2;
  return framing && (l->flags & LLHTTP_DRIVE_HEAD_DONE) &&
         (field_line_at(c, k, "transfer-encoding") ||
          field_line_at(c, k, "content-length"));
}

/* Whether a coding list ends in chunked as the RFC reads it, and has an
 * empty element or an HTAB that llhttp reads otherwise. */
static bool ends_in_chunked_oddly(const char *v, size_t n) {
  bool odd = memchr(v, '\t', n) != NULL;
  size_t e = 0, a, b, last_a = 0, last_b = 0;
  while (list_next(v, n, &e, &a, &b)) {
    if (a == b)
      odd = true;
    else
      last_a = a, last_b = b;
  }
  return odd && elem_is(v, last_a, last_b, "chunked");
}

/* RFC 9110 sections 5.6.1 and 5.5: a recipient MUST accept empty list
 * elements, and OWS is SP or HTAB, so "chunked," and "chunked\t" end in
 * chunked; llhttp takes the empty element or the HTAB for a coding after
 * chunked (a close-delimited response, a rejected request). */
static bool coding_list_misread(const cmp *c) {
  const http_message *s = soon_msg(c);
  /* fields that differ, or a request llhttp rejects, or a response whose
   * chunks soon rejects and llhttp reads as a close-delimited body */
  bool kind =
      c->kind == FIELDS || ll_error_is(c, "HPE_INVALID_TRANSFER_ENCODING") ||
      (c->kind == SOON_REJECTS && c->type == SOON_HTTP_RESPONSE && ll_msg(c));
  /* soon reads chunked, or no body at all: a CONNECT's bytes after the
   * head are the tunnel's, whatever the framing fields say */
  bool body = s && (s->body_kind == SOON_HTTP_BODY_CHUNKED ||
                    (s->flags & SOON_HTTP_UPGRADE));
  if (!kind || !body || (s->error && c->kind != SOON_REJECTS))
    return false;
  const http_message *l = ll_msg(c);
  const char *v = NULL;
  for (unsigned i = 0; i < l->nheaders; i++) /* the last one decides */
    if (strcasecmp(l->names[i], "transfer-encoding") == 0)
      v = l->values[i];
  if (v && ends_in_chunked_oddly(v, strlen(v)))
    return true;
  if (c->kind == FIELDS)
    return false;
  /* llhttp may stop inside the value it refuses: read it from the input */
  size_t start, end;
  line_around(c, l->error_offset, &start, &end);
  return field_line_is(c, start, "transfer-encoding") &&
         ends_in_chunked_oddly(c->in + start + 18, end - start - 18);
}

/* The messages differ only in keep-alive, soon closing and llhttp not. */
static bool soon_closes(const cmp *c) {
  return c->kind == FIELDS && strcmp(c->field, "keep-alive") == 0 &&
         !(soon_msg(c)->flags & SOON_HTTP_KEEP_ALIVE);
}

/* RFC 9110 sections 5.6.1 and 7.6.1: Connection = #token, elements
 * trimmed of OWS (SP and HTAB); llhttp does not trim an HTAB, so misses
 * "close\t" (and, in HTTP/1.0, "keep-alive\t"). */
static bool connection_htab(const cmp *c) {
  const http_message *l = ll_msg(c);
  if (c->kind != FIELDS || strcmp(c->field, "keep-alive") != 0 ||
      !field_has_htab(l, "connection"))
    return false;
  return soon_closes(c)
             ? list_has(l, "connection", "close")
             : l->version_minor == 0 && list_has(l, "connection", "keep-alive");
}

/* The same for "upgrade\t": llhttp misses the upgrade, and reads the bytes
 * after the head (a WebSocket frame, say) as the next request. */
static bool connection_upgrade_htab(const cmp *c) {
  size_t i = c->msg - 1;
  if (c->msg == 0 || i >= c->soon->nmsgs || i >= c->ll->r.nmsgs ||
      c->ll->upgraded)
    return false;
  const http_message *s = &c->soon->msgs[i], *l = &c->ll->r.msgs[i];
  return (s->flags & SOON_HTTP_UPGRADE) && field_has_htab(l, "connection") &&
         list_has(l, "connection", "upgrade");
}

/* RFC 9112 section 9.3: with the close option the connection does not
 * persist, whatever else the field says; llhttp lets keep-alive win in
 * HTTP/1.0. */
static bool close_and_keep_alive(const cmp *c) {
  const http_message *l = ll_msg(c);
  return soon_closes(c) && l->version_minor == 0 &&
         list_has(l, "connection", "close") &&
         list_has(l, "connection", "keep-alive");
}

/* ------------------------------------------------------------- the table */

/* A difference that is deliberate: soon stricter, or different, on purpose.
 * match() recognises it from the input and both results, never from the
 * verdict alone; docs/http-llhttp.md gives each one's reason. */
typedef struct known {
  const char *name;
  bool (*match)(const cmp *c);
  unsigned long count;
} known;

static known knowns[] = {
    /* soon stricter */
    {"bare LF as a line end", bare_lf_line_end, 0},
    {"bare CR as a line end", bare_cr_line_end, 0},
    {"obs-fold", obs_fold, 0},
    {"whitespace before a field's colon", space_before_colon, 0},
    {"field name not a token", name_not_token, 0},
    {"control character in the reason phrase", reason_ctl, 0},
    {"HTTP/0.9 or 2.0", other_version, 0},
    {"extra SP in the first line, HTAB or CTL in the target",
     first_line_whitespace, 0},
    {"non-ASCII request target", target_not_ascii, 0},
    {"request target of the wrong form for its method", target_form, 0},
    {"status code not three digits 100-599", status_range, 0},
    {"HTTP/1.1 request without Host, or two Hosts", host_count, 0},
    {"Host not a uri-host [:port]", host_invalid, 0},
    {"empty line before a status line", response_empty_line, 0},
    {"Content-Length of 2^63 or more", huge_length, 0},
    {"Transfer-Encoding in HTTP/1.0", te_in_http10, 0},
    {"request coding other than chunked (501)", request_coding, 0},
    {"chunked twice", chunked_twice, 0},
    {"parameters on chunked", chunked_parameter, 0},
    {"malformed Transfer-Encoding list", malformed_coding_list, 0},
    {"empty Transfer-Encoding", empty_coding_list, 0},
    {"chunk data not followed by CRLF", chunk_data_end, 0},
    {"malformed chunk extension", chunk_ext_malformed, 0},
    {"over a limit (head, fields, body, chunk extension)", over_limit, 0},
    /* llhttp stricter, or reading otherwise */
    {"method llhttp does not know (llhttp rejects)", extension_method, 0},
    {"target outside llhttp's URL grammar (llhttp rejects)", uri_grammar, 0},
    {"chunk extension with BWS or a bare name (llhttp rejects)",
     chunk_ext_grammar, 0},
    {"HTAB after a Content-Length value (llhttp rejects)", length_then_htab, 0},
    {"framing fields in trailers (llhttp acts on them)", trailer_semantics, 0},
    {"empty element or HTAB in Transfer-Encoding (llhttp misreads)",
     coding_list_misread, 0},
    {"HTAB around a Connection option (llhttp misses it)", connection_htab, 0},
    {"HTAB around Connection: upgrade (llhttp reads the tunnel as HTTP)",
     connection_upgrade_htab, 0},
    {"HTTP/1.0 Connection: keep-alive, close (llhttp keeps)",
     close_and_keep_alive, 0},
};

enum { NKNOWN = sizeof knowns / sizeof knowns[0] };

static known *classify(const cmp *c) {
  for (size_t i = 0; i < NKNOWN; i++)
    if (knowns[i].match && knowns[i].match(c))
      return &knowns[i];
  return NULL;
}

/* ------------------------------------------------------------ the report */

static void put_escaped(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '\r')
      fputs("\\r", stdout);
    else if (ch == '\n')
      fputs("\\n", stdout);
    else if (ch == '\t')
      fputs("\\t", stdout);
    else if (ch == '\\')
      fputs("\\\\", stdout);
    else if (ch < 0x20 || ch >= 0x7f)
      printf("\\x%02x", ch);
    else
      putchar(ch);
  }
}

static void put_str(const char *label, const char *s) {
  if (!s)
    return;
  printf(" %s \"", label);
  put_escaped(s, strlen(s));
  putchar('"');
}

/* The compared fields, one message a line or three: what a reader of a
 * disagreement needs, in the same shape for both parsers. */
static void render(const char *who, const http_result *r, bool is_ll) {
  printf("  %s: %zu message(s)\n", who, r->nmsgs);
  for (size_t i = 0; i < r->nmsgs; i++) {
    const http_message *m = &r->msgs[i];
    printf("    [%zu]", i);
    if (m->error)
      printf(" ERROR %s at %zu;",
             is_ll ? llhttp_drive_error_name(m->error)
                   : soon_err_name(m->error),
             m->error_offset);
    put_str("method", m->method);
    put_str("target", m->target);
    if (m->status)
      printf(" status %d", m->status);
    put_str("reason", m->reason);
    if (m->version_minor >= LLHTTP_DRIVE_OTHER_VERSION)
      printf(" HTTP/%u.%u",
             (m->version_minor - LLHTTP_DRIVE_OTHER_VERSION) / 10,
             (m->version_minor - LLHTTP_DRIVE_OTHER_VERSION) % 10);
    else
      printf(" HTTP/1.%u", m->version_minor);
    printf("%s%s\n", m->complete ? " complete" : "",
           m->flags & SOON_HTTP_KEEP_ALIVE ? " keep-alive" : "");
    for (unsigned h = 0; h < m->nheaders; h++) {
      printf("       ");
      put_str("header", m->names[h]);
      put_str(":", m->values[h]);
      putchar('\n');
    }
    if (m->body_len) {
      printf("       body %zu \"", m->body_len);
      put_escaped(m->body, m->body_len < 200 ? m->body_len : 200);
      printf("%s\"\n", m->body_len < 200 ? "" : "...");
    }
  }
}

static const char *kind_name(diff_kind k) {
  switch (k) {
  case SOON_REJECTS:
    return "soon rejects, llhttp accepts";
  case LLHTTP_REJECTS:
    return "llhttp rejects, soon accepts";
  case FIELDS:
    return "both accept, fields differ";
  case COUNT:
    return "both accept, message counts differ";
  default:
    return "same";
  }
}

/* "message 0: soon rejects (HTTP_EHOST at 25), llhttp accepts": the line
 * to grep a long list of disagreements by. */
static void print_kind(const cmp *c) {
  printf("  message %zu: %s", c->msg, kind_name(c->kind));
  const http_message *m = c->kind == SOON_REJECTS     ? soon_msg(c)
                          : c->kind == LLHTTP_REJECTS ? ll_msg(c)
                                                      : NULL;
  if (m)
    printf(" (%s at %zu)",
           c->kind == SOON_REJECTS ? soon_err_name(m->error)
                                   : llhttp_drive_error_name(m->error),
           m->error_offset);
  if (c->field)
    printf(": %s", c->field);
  putchar('\n');
}

static const char *type_name(soon_http_type t) {
  return t == SOON_HTTP_REQUEST ? "request" : "response";
}

/* ------------------------------------------------------------- the tally */

typedef struct tally {
  unsigned long compared, both_accept, both_reject, explained, unexplained;
  unsigned long incremental; /* a cut parse that rendered otherwise */
  unsigned long shown;
} tally;

static tally t;

static void show_header(const char *origin, soon_http_type type,
                        bool head_request, const char *in, size_t len) {
  printf("--- %s (%s%s, %zu bytes): \"", origin, type_name(type),
         head_request ? " to HEAD" : "", len);
  put_escaped(in, len);
  printf("\"\n");
}

static void count_verdicts(const cmp *c) {
  bool s_err = c->soon->nmsgs && c->soon->msgs[c->soon->nmsgs - 1].error;
  bool l_err = c->ll->r.nmsgs && c->ll->r.msgs[c->ll->r.nmsgs - 1].error;
  if (!s_err && !l_err)
    t.both_accept++;
  else if (s_err && l_err)
    t.both_reject++;
}

/* Compare one input's two results; count, classify, show. */
static void judge(const char *origin, soon_http_type type, bool head_request,
                  const char *in, size_t len, const http_result *soon,
                  const llhttp_result *ll) {
  cmp c = {.type = type,
           .head_request = head_request,
           .in = in,
           .len = len,
           .soon = soon,
           .ll = ll};
  compare(&c);
  t.compared++;
  if (c.kind == SAME) {
    count_verdicts(&c);
    return;
  }
  known *k = classify(&c);
  if (k) {
    k->count++;
    t.explained++;
    return;
  }
  t.unexplained++;
  if (t.shown++ >= max_shown)
    return;
  show_header(origin, type, head_request, in, len);
  print_kind(&c);
  render("soon", soon, false);
  render("llhttp", &ll->r, true);
}

/* soon parsing the input cut into pieces must give what it gave whole. */
static void check_incremental(const char *origin, soon_http_type type,
                              bool head_request, const char *in, size_t len,
                              const char *whole, const size_t *cuts,
                              size_t ncuts, int mode) {
  http_result r = http_drive(type, head_request, in, len, cuts, ncuts, mode,
                             NULL, SOON_HTTP_MAX_HEADERS);
  char *text = http_render(&r);
  if (strcmp(text, whole) != 0) {
    t.incremental++;
    if (t.shown++ < max_shown) {
      show_header(origin, type, head_request, in, len);
      printf("  soon cut at");
      for (size_t i = 0; i < ncuts; i++)
        printf(" %zu", cuts[i]);
      printf(" (%s) renders otherwise than whole:\n--- whole:\n%s--- cut:\n%s",
             mode == HTTP_DRIVE_INPLACE ? "in place" : "spans", whole, text);
    }
  }
  free(text);
  http_result_free(&r);
}

/* ------------------------------------------------------------ the corpus */

/* Both parsers run with soon's default limits: a case's own (tiny, to
 * test them) would add differences that say nothing of the grammar. */
static void run_case(const http_case *k, const size_t *cuts, size_t ncuts,
                     const char *how) {
  http_result s =
      http_drive(k->type, k->head_request, k->input, k->input_len, cuts, ncuts,
                 HTTP_DRIVE_SPANS, NULL, SOON_HTTP_MAX_HEADERS);
  llhttp_result l = llhttp_drive(k->type, k->head_request, k->input,
                                 k->input_len, cuts, ncuts);
  char origin[512];
  snprintf(origin, sizeof origin, "%s %s (%s)", k->where, k->name, how);
  judge(origin, k->type, k->head_request, k->input, k->input_len, &s, &l);
  http_result_free(&s);
  http_result_free(&l.r);
}

static void run_corpus(const http_case *cases, size_t ncases) {
  size_t cap = 0, *cuts = NULL;
  for (size_t i = 0; i < ncases; i++) {
    const http_case *k = &cases[i];
    run_case(k, NULL, 0, "whole");
    if (k->input_len < 2)
      continue;
    if (k->input_len - 1 > cap) {
      cap = k->input_len - 1;
      cuts = realloc(cuts, cap * sizeof *cuts);
      if (!cuts)
        abort();
    }
    for (size_t j = 0; j + 1 < k->input_len; j++)
      cuts[j] = j + 1;
    run_case(k, cuts, k->input_len - 1, "byte by byte");
  }
  free(cuts);
}

/* ----------------------------------------------------------- the mutator */

typedef struct buf {
  char *p;
  size_t len, cap;
} buf;

static void reserve(buf *b, size_t n) {
  if (n <= b->cap)
    return;
  b->cap = n * 2;
  b->p = realloc(b->p, b->cap);
  if (!b->p)
    abort();
}

static void set(buf *b, const char *s, size_t n) {
  reserve(b, n);
  memcpy(b->p, s, n);
  b->len = n;
}

/* Insert n bytes at off (off <= len). */
static void insert(buf *b, size_t off, const char *s, size_t n) {
  reserve(b, b->len + n);
  memmove(b->p + off + n, b->p + off, b->len - off);
  memcpy(b->p + off, s, n);
  b->len += n;
}

static void erase(buf *b, size_t off, size_t n) {
  if (off + n > b->len)
    n = b->len - off;
  memmove(b->p + off, b->p + off + n, b->len - off - n);
  b->len -= n;
}

/* The bytes that sit at the edges of HTTP's grammar. */
static const char interesting[] = "\r\n\0\t :,;0123456789abcdefABCDEFx+-\""
                                  "\x7f\x80\xff";

static char interesting_byte(void) {
  return interesting[below(sizeof interesting - 1)];
}

static void flip_bit(buf *b) {
  if (b->len)
    b->p[below(b->len)] ^= (char)(1u << below(8));
}

static void insert_byte(buf *b) {
  char ch = below(2) ? interesting_byte() : (char)below(256);
  insert(b, below(b->len + 1), &ch, 1);
}

static void delete_bytes(buf *b) {
  if (b->len)
    erase(b, below(b->len), 1 + below(4));
}

static void duplicate_bytes(buf *b) {
  if (!b->len)
    return;
  size_t from = below(b->len), n = 1 + below(16);
  if (n > b->len - from)
    n = b->len - from;
  char tmp[16];
  memcpy(tmp, b->p + from, n);
  insert(b, below(b->len + 1), tmp, n);
}

static void replace_interesting(buf *b) {
  if (b->len)
    b->p[below(b->len)] = interesting_byte();
}

/* Where the head ends (after its empty line), or the length if it does not
 * end: mutations aimed at header lines stay inside it. */
static size_t head_end(const buf *b) {
  for (size_t i = 0; i + 1 < b->len; i++) {
    if (b->p[i] == '\n' && b->p[i + 1] == '\n')
      return i + 2;
    if (i + 3 < b->len && memcmp(b->p + i, "\r\n\r\n", 4) == 0)
      return i + 4;
  }
  return b->len;
}

/* A random header line [*start, *end) (end after its LF), if any. */
static bool pick_header_line(const buf *b, size_t *start, size_t *end) {
  size_t lim = head_end(b), lines[64], n = 0;
  const char *first = memchr(b->p, '\n', lim);
  if (!first)
    return false;
  for (size_t i = (size_t)(first - b->p) + 1; i < lim && n < 64;) {
    const char *nl = memchr(b->p + i, '\n', lim - i);
    if (!nl)
      break;
    size_t next = (size_t)(nl - b->p) + 1;
    if (next - i > 2) /* not the empty line */
      lines[n++] = i;
    i = next;
  }
  if (!n)
    return false;
  *start = lines[below(n)];
  *end =
      (size_t)((const char *)memchr(b->p + *start, '\n', lim - *start) - b->p) +
      1;
  return true;
}

static void duplicate_header(buf *b) {
  size_t start, end;
  if (!pick_header_line(b, &start, &end))
    return;
  char line[512];
  size_t n = end - start < sizeof line ? end - start : sizeof line;
  memcpy(line, b->p + start, n);
  insert(b, end, line, n);
}

static void recase_header(buf *b) {
  size_t start, end;
  if (!pick_header_line(b, &start, &end))
    return;
  int how = (int)below(3);
  for (size_t i = start; i < end && b->p[i] != ':'; i++) {
    unsigned char ch = (unsigned char)b->p[i];
    int up = how == 2 ? (int)below(2) : how;
    b->p[i] = (char)(up ? toupper(ch) : tolower(ch));
  }
}

/* A digit of a Content-Length value or of a chunk size (the lengths that
 * frame a body, where smuggling lives), else any digit: replaced, doubled or
 * removed. */
static void change_length_digit(buf *b) {
  size_t spots[256], n = 0;
  size_t head = head_end(b);
  for (size_t i = 0; i < b->len && n < 256; i++) {
    if (!isxdigit((unsigned char)b->p[i]))
      continue;
    bool in_cl = false;
    if (i < head) {
      size_t ls = i;
      while (ls > 0 && b->p[ls - 1] != '\n')
        ls--;
      in_cl = i - ls > 15 && strncasecmp(b->p + ls, "content-length:", 15) == 0;
    }
    bool chunk_line = i >= head && (i == head || b->p[i - 1] == '\n' ||
                                    isxdigit((unsigned char)b->p[i - 1]));
    if (in_cl || chunk_line)
      spots[n++] = i;
  }
  size_t at;
  if (n) {
    at = spots[below(n)];
  } else {
    for (size_t i = 0; i < b->len && n < 256; i++)
      if (isdigit((unsigned char)b->p[i]))
        spots[n++] = i;
    if (!n)
      return;
    at = spots[below(n)];
  }
  static const char digits[] = "0123456789abcdefF";
  switch (below(3)) {
  case 0:
    b->p[at] = digits[below(sizeof digits - 1)];
    break;
  case 1:
    insert(b, at, b->p + at, 1);
    break;
  default:
    erase(b, at, 1);
  }
}

/* The head of one case and the tail of another of the same type. */
static void splice(buf *b, const http_case *cases, size_t ncases,
                   const http_case *base) {
  for (int tries = 0; tries < 8; tries++) {
    const http_case *o = &cases[below(ncases)];
    if (o->type != base->type)
      continue;
    size_t keep = below(b->len + 1), from = below(o->input_len + 1);
    b->len = keep;
    insert(b, keep, o->input + from, o->input_len - from);
    return;
  }
}

static void mutate(buf *b, const http_case *cases, size_t ncases,
                   const http_case *base) {
  switch (below(10)) {
  case 0:
    flip_bit(b);
    break;
  case 1:
    insert_byte(b);
    break;
  case 2:
    delete_bytes(b);
    break;
  case 3:
    duplicate_bytes(b);
    break;
  case 4:
    splice(b, cases, ncases, base);
    break;
  case 5:
  case 6:
    replace_interesting(b);
    break;
  case 7:
    change_length_digit(b);
    break;
  case 8:
    duplicate_header(b);
    break;
  default:
    recase_header(b);
  }
}

/* Up to three increasing cut offsets inside [1, len). */
static size_t random_cuts(size_t len, size_t cuts[3]) {
  if (len < 2)
    return 0;
  size_t n = 1 + below(3), k = 0;
  for (size_t i = 0; i < n; i++)
    cuts[i] = 1 + below(len - 1);
  for (size_t i = 1; i < n; i++) /* three at most: insertion sort */
    for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
      size_t tmp = cuts[j];
      cuts[j] = cuts[j - 1];
      cuts[j - 1] = tmp;
    }
  for (size_t i = 0; i < n; i++)
    if (k == 0 || cuts[i] != cuts[k - 1])
      cuts[k++] = cuts[i];
  return k;
}

/* The cases soon accepts whole: most of the corpus's are rejections, and a
 * mutation of one mostly stays one, where only the verdicts compare. */
static size_t accepted_cases(const http_case *cases, size_t ncases,
                             size_t *out) {
  size_t n = 0;
  for (size_t i = 0; i < ncases; i++) {
    http_result r = http_drive(cases[i].type, cases[i].head_request,
                               cases[i].input, cases[i].input_len, NULL, 0,
                               HTTP_DRIVE_SPANS, NULL, SOON_HTTP_MAX_HEADERS);
    if (r.nmsgs && !r.msgs[r.nmsgs - 1].error)
      out[n++] = i;
    http_result_free(&r);
  }
  return n;
}

static void run_mutations(const http_case *cases, size_t ncases,
                          unsigned long n) {
  buf b = {0};
  size_t *good = malloc(ncases * sizeof *good);
  if (!good)
    abort();
  size_t ngood = accepted_cases(cases, ncases, good);
  for (unsigned long i = 0; i < n; i++) {
    /* three in four from an accepted case, so that fields get compared */
    const http_case *base =
        ngood && below(4) ? &cases[good[below(ngood)]] : &cases[below(ncases)];
    set(&b, base->input, base->input_len);
    size_t rounds = 1 + (below(4) == 0 ? 1 + below(3) : 0);
    for (size_t r = 0; r < rounds && b.len < MAX_INPUT; r++)
      mutate(&b, cases, ncases, base);
    char origin[600];
    snprintf(origin, sizeof origin, "mutation %lu of %s %s", i, base->where,
             base->name);
    http_result s =
        http_drive(base->type, base->head_request, b.p, b.len, NULL, 0,
                   HTTP_DRIVE_SPANS, NULL, SOON_HTTP_MAX_HEADERS);
    llhttp_result l =
        llhttp_drive(base->type, base->head_request, b.p, b.len, NULL, 0);
    judge(origin, base->type, base->head_request, b.p, b.len, &s, &l);
    char *whole = http_render(&s);
    size_t cuts[3], ncuts = random_cuts(b.len, cuts);
    check_incremental(origin, base->type, base->head_request, b.p, b.len, whole,
                      cuts, ncuts,
                      below(2) ? HTTP_DRIVE_INPLACE : HTTP_DRIVE_SPANS);
    free(whole);
    http_result_free(&s);
    http_result_free(&l.r);
  }
  free(good);
  free(b.p);
}

/* ------------------------------------------------------------------ main */

static uint64_t env_u64(const char *name, uint64_t dflt) {
  const char *v = getenv(name);
  if (!v || !*v)
    return dflt;
  char *end;
  unsigned long long x = strtoull(v, &end, 10);
  if (*end) {
    fprintf(stderr, "llhttp_diff: %s=%s is not a number\n", name, v);
    exit(2);
  }
  return x;
}

/* --show TYPE INPUT: both parsers' results for one escaped input, to look
 * at a disagreement by hand (TYPE: request, response, response-to-head). */
static int show(const char *type, const char *escaped) {
  soon_http_type ty =
      strcmp(type, "request") == 0 ? SOON_HTTP_REQUEST : SOON_HTTP_RESPONSE;
  bool head = strcmp(type, "response-to-head") == 0;
  size_t len;
  char *in = http_unescape(escaped, strlen(escaped), &len);
  if (!in) {
    fprintf(stderr, "llhttp_diff: bad escape in the input\n");
    return 2;
  }
  http_result s = http_drive(ty, head, in, len, NULL, 0, HTTP_DRIVE_SPANS, NULL,
                             SOON_HTTP_MAX_HEADERS);
  llhttp_result l = llhttp_drive(ty, head, in, len, NULL, 0);
  cmp c = {.type = ty,
           .head_request = head,
           .in = in,
           .len = len,
           .soon = &s,
           .ll = &l};
  compare(&c);
  known *k = c.kind == SAME ? NULL : classify(&c);
  printf("message %zu: %s%s%s%s%s\n", c.msg, kind_name(c.kind),
         c.field ? ": " : "", c.field ? c.field : "", k ? "; known: " : "",
         k ? k->name : "");
  render("soon", &s, false);
  render("llhttp", &l.r, true);
  http_result_free(&s);
  http_result_free(&l.r);
  free(in);
  return c.kind == SAME || k ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--show") == 0)
    return show(argv[2], argv[3]);
  const char *dir = argc > 1 ? argv[1] : SOON_HTTP_CORPUS;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  uint64_t seed =
      env_u64("SOON_HTTP_DIFF_SEED",
              (uint64_t)now.tv_sec * 1000000007u + (uint64_t)now.tv_nsec);
  unsigned long n = (unsigned long)env_u64("SOON_HTTP_DIFF_N", 1000000);
  max_shown = (unsigned long)env_u64("SOON_HTTP_DIFF_SHOW", max_shown);
  printf("llhttp_diff: seed %" PRIu64 " (SOON_HTTP_DIFF_SEED=%" PRIu64
         " replays)\n",
         seed, seed);
  fflush(stdout);
  rng = seed;

  http_case *cases;
  size_t ncases;
  http_corpus_load(dir, &cases, &ncases);
  if (!ncases) {
    printf("llhttp_diff: no corpus cases under %s\n", dir);
    return 1;
  }
  run_corpus(cases, ncases);
  unsigned long corpus_compared = t.compared;
  run_mutations(cases, ncases, n);
  http_corpus_free(cases, ncases);

  printf("llhttp_diff: %zu corpus cases (%lu comparisons, whole and byte by "
         "byte), %lu mutations\n",
         ncases, corpus_compared, n);
  printf("  same verdict and fields: %lu (both accept %lu, both reject %lu)\n",
         t.compared - t.explained - t.unexplained, t.both_accept,
         t.both_reject);
  printf("  known differences: %lu\n", t.explained);
  for (size_t i = 0; i < NKNOWN; i++)
    if (knowns[i].count)
      printf("    %8lu  %s\n", knowns[i].count, knowns[i].name);
  printf("  unexplained differences: %lu\n", t.unexplained);
  printf("  cut parses that differ from the whole: %lu\n", t.incremental);
  if (t.shown > max_shown)
    printf("  (%lu shown of %lu)\n", max_shown, t.shown);
  return t.unexplained || t.incremental ? 1 : 0;
}
