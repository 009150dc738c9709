/* parser.c: the HTTP/1.1 message parser (include/soon/http.h): strict
 * (RFC 9112, 9110), incremental, zero-copy, allocation-free. */
#include <soon/http.h>

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

/* SSE2 is in every x86-64, so the wide scans need no run-time pick; the
 * portable loops are what other machines run, and the suite runs them too
 * (SOON_HTTP_SCALAR, test http_parser/scalar). */
#if defined(__SSE2__) && !defined(SOON_HTTP_SCALAR)
#include <emmintrin.h>
#define SOON_HTTP_SSE2 1
#endif

/* ------------------------------------------------------------ characters */

enum {
  TCHAR = 1 << 0, /* token: RFC 9110 section 5.6.2 */
  VALUE = 1 << 1, /* a field value's or a reason's: HTAB SP VCHAR obs-text */
  HEX = 1 << 2,
  HOST = 1 << 3 /* reg-name: unreserved, pct-encoded, sub-delims */
};

/* One load per byte where a scan is not wide (skip_range, skip_token).
 * GNU range designators: a table that reads like the grammar. */
#define T (TCHAR | VALUE)
static const unsigned char cls[256] = {
    ['\t'] = VALUE,
    [' '] = VALUE,
    ['!'] = T | HOST,
    ['"'] = VALUE,
    ['#'] = T,
    ['$' ... '\''] = T | HOST,
    ['(' ... ')'] = VALUE | HOST,
    ['*' ... '+'] = T | HOST,
    [','] = VALUE | HOST,
    ['-' ... '.'] = T | HOST,
    ['/'] = VALUE,
    ['0' ... '9'] = T | HEX | HOST,
    [':'] = VALUE,
    [';'] = VALUE | HOST,
    ['<'] = VALUE,
    ['='] = VALUE | HOST,
    ['>' ... '@'] = VALUE,
    ['A' ... 'F'] = T | HEX | HOST,
    ['G' ... 'Z'] = T | HOST,
    ['[' ... ']'] = VALUE,
    ['^'] = T,
    ['_'] = T | HOST,
    ['`'] = T,
    ['a' ... 'f'] = T | HEX | HOST,
    ['g' ... 'z'] = T | HOST,
    ['{'] = VALUE,
    ['|'] = T,
    ['}'] = VALUE,
    ['~'] = T | HOST,
    [0x80 ... 0xff] = VALUE,
};
#undef T

static bool is(unsigned char c, unsigned what) { return cls[c] & what; }

static bool ows(char c) { return c == ' ' || c == '\t'; }

static unsigned hexval(unsigned char c) {
  return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* The first index from i whose byte is outside [lo, hi]. The caller knows
 * one is (the CR ending the line is outside every range used), so the
 * loops need no bound; the wide one reads only inside buf[0..len). Most of
 * a head is target and values: this is where its bytes are spent. */
static size_t skip_range(const char *buf, size_t i, size_t len,
                         unsigned char lo, unsigned char hi) {
#ifdef SOON_HTTP_SSE2
  const __m128i vlo = _mm_set1_epi8((char)lo), vhi = _mm_set1_epi8((char)hi);
  for (; i + 16 <= len; i += 16) {
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(buf + i));
    __m128i in = _mm_and_si128(_mm_cmpeq_epi8(_mm_max_epu8(x, vlo), x),
                               _mm_cmpeq_epi8(_mm_min_epu8(x, vhi), x));
    unsigned out = (unsigned)_mm_movemask_epi8(in) ^ 0xffffu;
    if (out)
      return i + (unsigned)__builtin_ctz(out);
  }
#else
  (void)len;
#endif
  while ((unsigned char)buf[i] >= lo && (unsigned char)buf[i] <= hi)
    i++;
  return i;
}

/* The first index from i whose byte is not a token character. Names are
 * letters, digits and '-' in the main: those go 16 at a time, the other
 * token characters one by one. The line's CR ends every scan. */
static size_t skip_token(const char *buf, size_t i, size_t len) {
#ifdef SOON_HTTP_SSE2
  const __m128i a = _mm_set1_epi8('a'), z = _mm_set1_epi8('z'),
                d0 = _mm_set1_epi8('0'), d9 = _mm_set1_epi8('9'),
                dash = _mm_set1_epi8('-'), bit = _mm_set1_epi8(0x20);
  while (i + 16 <= len) {
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(buf + i));
    __m128i l = _mm_or_si128(x, bit);
    __m128i alpha = _mm_and_si128(_mm_cmpeq_epi8(_mm_max_epu8(l, a), l),
                                  _mm_cmpeq_epi8(_mm_min_epu8(l, z), l));
    __m128i digit = _mm_and_si128(_mm_cmpeq_epi8(_mm_max_epu8(x, d0), x),
                                  _mm_cmpeq_epi8(_mm_min_epu8(x, d9), x));
    __m128i ok =
        _mm_or_si128(_mm_or_si128(alpha, digit), _mm_cmpeq_epi8(x, dash));
    unsigned out = (unsigned)_mm_movemask_epi8(ok) ^ 0xffffu;
    if (!out) {
      i += 16;
      continue;
    }
    i += (unsigned)__builtin_ctz(out);
    if (!is((unsigned char)buf[i], TCHAR))
      return i;
    i++;
  }
#else
  (void)len;
#endif
  while (is((unsigned char)buf[i], TCHAR))
    i++;
  return i;
}

/* Whether s[0..n) is word, case-insensitively. word is lower-case
 * letters, digits and '-': bytes with 0x20 set, so or-ing 0x20 into the
 * input folds its upper-case letters and nothing else that can be there
 * (only control characters, refused before, would fold onto a digit or
 * '-'). Eight, then four bytes at a time, overlapping at the end. */
static bool same(const char *s, size_t n, const char *word) {
  if (strlen(word) != n) /* a constant, once inlined */
    return false;
  if (n >= 8) {
    uint64_t x, w;
    for (size_t i = 0;; i = i + 8 < n - 8 ? i + 8 : n - 8) {
      memcpy(&x, s + i, 8);
      memcpy(&w, word + i, 8);
      if ((x | 0x2020202020202020u) != w)
        return false;
      if (i == n - 8)
        return true;
    }
  }
  if (n >= 4) {
    uint32_t x, w, y, v;
    memcpy(&x, s, 4);
    memcpy(&w, word, 4);
    memcpy(&y, s + n - 4, 4);
    memcpy(&v, word + n - 4, 4);
    return (x | 0x20202020u) == w && (y | 0x20202020u) == v;
  }
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] | 0x20) != (unsigned char)word[i])
      return false;
  return true;
}

/* ------------------------------------------------------------ state */

enum {
  /* the head */
  S_FIRST_LINE,
  S_FIELDS,
  /* the body */
  S_LENGTH,
  S_CLOSE,
  S_SIZE_FIRST, /* a chunk-size's first digit */
  S_SIZE,       /* more digits, or what ends them */
  S_SIZE_WS,    /* BWS after the size: only ';' may follow */
  S_EXT_NAME_START,
  S_EXT_NAME,
  S_EXT_NAME_WS, /* BWS after a name: '=' or ';' */
  S_EXT_VALUE_START,
  S_EXT_TOKEN,
  S_EXT_QUOTED,
  S_EXT_QUOTED_ESC,
  S_EXT_TOKEN_END, /* after a quoted value's closing quote */
  S_EXT_WS,        /* BWS after a value: only ';' may follow */
  S_SIZE_LF,
  S_DATA,
  S_DATA_CR,
  S_DATA_LF,
  S_TRAILER_START,
  S_TRAILER_NAME,
  S_TRAILER_VALUE,
  S_TRAILER_LF,
  S_END_LF,
  S_DONE
};

/* Headers met so far, in p->seen. */
enum {
  SEEN_LENGTH = 1 << 0,
  SEEN_TE = 1 << 1,
  SEEN_HOST = 1 << 2,
  SEEN_CHUNKED = 1 << 3,     /* chunked among the codings */
  CHUNKED_LAST = 1 << 4,     /* ... and last so far */
  SEEN_UPGRADE_HDR = 1 << 5, /* an Upgrade header */
  CONNECT = 1 << 6           /* a CONNECT request */
};

static int fail(soon_http_parser *p, int err, size_t offset) {
  p->error = err;
  p->error_offset = offset;
  return err;
}

/* Whether a line ends at buf[i]. Only whole lines are parsed, so a CR
 * there is never the buffer's last byte. */
static bool crlf(const char *buf, size_t i) {
  return buf[i] == '\r' && buf[i + 1] == '\n';
}

/* The error for the byte at i that a line's grammar did not expect: err,
 * unless it is a CR or LF that is not a line end (bare: ELINE_END). A line
 * ending too soon is the grammar's error, at its CR. */
static int bad(soon_http_parser *p, const char *buf, size_t i, int err) {
  bool bare = (buf[i] == '\r' || buf[i] == '\n') && !crlf(buf, i);
  return fail(p, bare ? SOON_HTTP_ELINE_END : err, i);
}

/* While the head is parsed its spans hold offsets from its first byte: the
 * caller's buffer may move between calls. They become pointers when the
 * head is complete. */
static soon_http_span at(size_t off, size_t len) {
  return (soon_http_span){(const char *)(uintptr_t)off, len};
}

static void rebase(soon_http_span *s, const char *buf) {
  s->base = buf + (uintptr_t)s->base;
}

/* ------------------------------------------------------------ setup */

int soon_http_parser_init(soon_http_parser *p, soon_http_type type,
                          soon_http_header *headers, unsigned nheaders,
                          const soon_http_limits *limits) {
  if (!p || (type != SOON_HTTP_REQUEST && type != SOON_HTTP_RESPONSE) ||
      (!headers && nheaders))
    return -EINVAL;
  memset(p, 0, sizeof *p);
  p->type = type;
  p->headers = headers;
  p->max_headers = nheaders;
  if (limits)
    p->limits = *limits;
  if (!p->limits.max_head)
    p->limits.max_head = SOON_HTTP_MAX_HEAD;
  if (!p->limits.max_chunk_ext)
    p->limits.max_chunk_ext = SOON_HTTP_MAX_CHUNK_EXT;
  if (!p->limits.max_body)
    p->limits.max_body = SOON_HTTP_MAX_BODY;
  return 0;
}

/* Everything before `type` is the message's; the array stays. */
void soon_http_parser_reset(soon_http_parser *p) {
  if (!p)
    return;
  soon_http_header *headers = p->headers;
  memset(p, 0, offsetof(soon_http_parser, type));
  p->headers = headers;
}

int soon_http_error_status(int err) {
  switch (err) {
  case SOON_HTTP_EHEAD_SIZE:
  case SOON_HTTP_EHEADER_COUNT:
    return 431;
  case SOON_HTTP_ETARGET_SIZE:
    return 414;
  case SOON_HTTP_EBODY_SIZE:
    return 413;
  case SOON_HTTP_ETE_UNSUP:
    return 501;
  case SOON_HTTP_EVERSION_UNSUP:
    return 505;
  default:
    return 400;
  }
}

/* ------------------------------------------------------------ first line */

/* "HTTP/1.1" from buf[i], inside a whole line: its end, or an error. A
 * well-formed version other than 1.0 or 1.1 (HTTP/2.0, HTTP/1.2) is 505,
 * not 400. */
static ssize_t version(soon_http_parser *p, const char *buf, size_t i,
                       size_t len) {
  static const char name[] = "HTTP/";
  if (i + 8 <= len && memcmp(buf + i, "HTTP/1.", 7) == 0 &&
      (buf[i + 7] == '1' || buf[i + 7] == '0')) { /* the usual, at once */
    p->version_minor = (unsigned)(buf[i + 7] - '0');
    return (ssize_t)(i + 8);
  }
  for (size_t k = 0; k < 5; k++, i++)
    if (buf[i] != name[k])
      return bad(p, buf, i, SOON_HTTP_EVERSION);
  if (buf[i] < '0' || buf[i] > '9')
    return bad(p, buf, i, SOON_HTTP_EVERSION);
  if (buf[i + 1] != '.')
    return bad(p, buf, i + 1, SOON_HTTP_EVERSION);
  if (buf[i + 2] < '0' || buf[i + 2] > '9')
    return bad(p, buf, i + 2, SOON_HTTP_EVERSION);
  if (buf[i] != '1')
    return fail(p, SOON_HTTP_EVERSION_UNSUP, i);
  if (buf[i + 2] > '1')
    return fail(p, SOON_HTTP_EVERSION_UNSUP, i + 2);
  p->version_minor = (unsigned)(buf[i + 2] - '0');
  return (ssize_t)(i + 3);
}

/* Which forms a target may take (RFC 9112 section 3.2): authority-form
 * only for CONNECT, "*" only for OPTIONS, else origin-form or
 * absolute-form (a scheme, then ':'). */
static bool target_form_ok(const char *m, size_t mlen, const char *t,
                           size_t tlen) {
  bool connect = mlen == 7 && memcmp(m, "CONNECT", 7) == 0;
  if (connect)
    return t[0] != '/' && memchr(t, ':', tlen) && !memchr(t, '/', tlen) &&
           !memchr(t, '?', tlen);
  if (tlen == 1 && t[0] == '*')
    return mlen == 7 && memcmp(m, "OPTIONS", 7) == 0;
  if (t[0] == '/')
    return true;
  /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then ':' */
  for (size_t i = 0; i < tlen; i++) {
    char c = t[i], l = (char)(c | 0x20);
    if (c == ':')
      return i > 0;
    bool alpha = l >= 'a' && l <= 'z';
    if (!alpha && (i == 0 || !((c >= '0' && c <= '9') || c == '+' || c == '-' ||
                               c == '.')))
      return false;
  }
  return false;
}

/* method SP request-target SP HTTP-version CRLF, from buf[i]: the next
 * line's start, or an error. Each scan stops at the line's CR at the
 * latest (a CTL), so none needs a bound. */
static ssize_t request_line(soon_http_parser *p, const char *buf, size_t i,
                            size_t len) {
  size_t m = i;
  i = skip_token(buf, i, len);
  if (i == m || buf[i] != ' ')
    return bad(p, buf, i,
               i > m && crlf(buf, i) ? SOON_HTTP_ETARGET : SOON_HTTP_EMETHOD);
  p->method = at(m, i - m);
  if (i - m == 7 && memcmp(buf + m, "CONNECT", 7) == 0)
    p->seen |= CONNECT;
  size_t t = ++i;
  i = skip_range(buf, i, len, '!', '~'); /* TARGET: VCHAR */
  if (i == t || (buf[i] != ' ' && !crlf(buf, i)))
    return bad(p, buf, i, SOON_HTTP_ETARGET);
  if (!target_form_ok(buf + m, t - 1 - m, buf + t, i - t))
    return fail(p, SOON_HTTP_ETARGET, t);
  p->target = at(t, i - t);
  if (buf[i] != ' ') /* HTTP/0.9: "GET /" */
    return fail(p, SOON_HTTP_EVERSION, i);
  ssize_t end = version(p, buf, i + 1, len);
  if (end >= 0 && !crlf(buf, (size_t)end))
    return bad(p, buf, (size_t)end, SOON_HTTP_EVERSION);
  return end < 0 ? end : end + 2;
}

/* HTTP-version SP status-code [SP reason-phrase] CRLF. The SP before an
 * empty reason may be missing: common, and harmless to framing. */
static ssize_t status_line(soon_http_parser *p, const char *buf, size_t i,
                           size_t len) {
  ssize_t end = version(p, buf, i, len);
  if (end < 0)
    return end;
  i = (size_t)end;
  if (buf[i] != ' ')
    return bad(p, buf, i,
               crlf(buf, i) ? SOON_HTTP_ESTATUS : SOON_HTTP_EVERSION);
  int status = 0;
  for (size_t k = ++i; i < k + 3; i++) {
    if (buf[i] < '0' || buf[i] > '9')
      return bad(p, buf, i, SOON_HTTP_ESTATUS);
    status = status * 10 + (buf[i] - '0');
  }
  if (status < 100 || status > 599)
    return fail(p, SOON_HTTP_ESTATUS, i - 3);
  p->status = status;
  if (buf[i] != ' ' && !crlf(buf, i))
    return bad(p, buf, i, SOON_HTTP_ESTATUS);
  size_t r = buf[i] == ' ' ? ++i : i;
  while (!crlf(buf, i = skip_range(buf, i, len, ' ', '~'))) {
    if (!is((unsigned char)buf[i], VALUE))
      return bad(p, buf, i, SOON_HTTP_EREASON);
    i++;
  }
  p->reason = at(r, i - r);
  return (ssize_t)(i + 2);
}

/* ------------------------------------------------------------ fields */

/* Content-Length: 1*DIGIT, once; a list ("1, 1") is refused too. */
static int content_length(soon_http_parser *p, const char *buf, size_t line,
                          size_t v, size_t vlen) {
  if (p->seen & SEEN_LENGTH)
    return fail(p, SOON_HTTP_ECONTENT_LENGTH, line);
  if (p->seen & SEEN_TE)
    return fail(p, SOON_HTTP_ETE_AND_CL, line);
  if (vlen == 0)
    return fail(p, SOON_HTTP_ECONTENT_LENGTH, v);
  uint64_t n = 0;
  for (size_t i = v; i < v + vlen; i++) {
    unsigned d = (unsigned)(unsigned char)buf[i] - '0';
    if (d > 9 || n > ((uint64_t)INT64_MAX - d) / 10)
      return fail(p, SOON_HTTP_ECONTENT_LENGTH, i);
    n = n * 10 + d;
  }
  p->seen |= SEEN_LENGTH;
  p->flags |= SOON_HTTP_HAS_LENGTH;
  p->content_length = n;
  return 0;
}

/* Transfer-Encoding: a list of codings, each a token with parameters.
 * A request's must end with chunked and hold nothing else that soon would
 * have to decode (501); a response's may end otherwise (then the body runs
 * to the close). chunked twice, or in HTTP/1.0, is refused. */
static int transfer_encoding(soon_http_parser *p, const char *buf, size_t line,
                             size_t i, size_t stop) {
  if (p->seen & SEEN_LENGTH)
    return fail(p, SOON_HTTP_ETE_AND_CL, line);
  if (p->version_minor == 0)
    return fail(p, SOON_HTTP_ETRANSFER_ENCODING, line);
  p->seen |= SEEN_TE;
  p->flags |= SOON_HTTP_HAS_TE;
  bool any = false;
  while (i < stop) {
    if (buf[i] == ',' || ows(buf[i])) { /* empty list elements are allowed */
      i++;
      continue;
    }
    size_t t = i;
    while (i < stop && is((unsigned char)buf[i], TCHAR))
      i++;
    if (i == t)
      return fail(p, SOON_HTTP_ETRANSFER_ENCODING, i);
    bool chunked = same(buf + t, i - t, "chunked");
    /* parameters: *( OWS ";" OWS token "=" ( token / quoted-string ) ) */
    for (;;) {
      size_t j = i;
      while (j < stop && ows(buf[j]))
        j++;
      if (j == stop || buf[j] != ';') {
        i = j;
        break;
      }
      if (chunked) /* it has none: RFC 9112 section 7.1 says refuse them */
        return fail(p, SOON_HTTP_ETRANSFER_ENCODING, j);
      for (j++; j < stop && ows(buf[j]); j++)
        ;
      size_t k = j;
      while (j < stop && is((unsigned char)buf[j], TCHAR))
        j++;
      if (j == k || j == stop || buf[j] != '=')
        return fail(p, SOON_HTTP_ETRANSFER_ENCODING, j);
      k = ++j;
      if (j < stop && buf[j] == '"') {
        for (j++; j < stop && buf[j] != '"'; j++)
          if (buf[j] == '\\' && ++j == stop)
            break;
        if (j == stop)
          return fail(p, SOON_HTTP_ETRANSFER_ENCODING, j);
        j++;
      } else {
        while (j < stop && is((unsigned char)buf[j], TCHAR))
          j++;
        if (j == k)
          return fail(p, SOON_HTTP_ETRANSFER_ENCODING, j);
      }
      i = j;
    }
    if (i < stop && buf[i] != ',')
      return fail(p, SOON_HTTP_ETRANSFER_ENCODING, i);
    if (chunked && (p->seen & SEEN_CHUNKED))
      return fail(p, SOON_HTTP_ETRANSFER_ENCODING, t);
    if (!chunked && p->type == SOON_HTTP_REQUEST)
      return fail(p,
                  (p->seen & SEEN_CHUNKED) ? SOON_HTTP_ETRANSFER_ENCODING
                                           : SOON_HTTP_ETE_UNSUP,
                  t);
    p->seen = chunked ? p->seen | SEEN_CHUNKED | CHUNKED_LAST
                      : p->seen & ~(unsigned)CHUNKED_LAST;
    any = true;
  }
  if (!any)
    return fail(p, SOON_HTTP_ETRANSFER_ENCODING, stop);
  return 0;
}

/* Connection: a list of tokens; the three that matter become flags, the
 * others (hop-by-hop header names) are left to the caller. */
static void connection(soon_http_parser *p, const char *buf, size_t i,
                       size_t stop) {
  /* Elements end at commas only: "x close" is one (not a token), and
   * means nothing, rather than "close". */
  while (i < stop) {
    const char *comma = memchr(buf + i, ',', stop - i);
    size_t end = comma ? (size_t)(comma - buf) : stop, t = i, e = end;
    while (t < e && ows(buf[t]))
      t++;
    while (e > t && ows(buf[e - 1]))
      e--;
    if (same(buf + t, e - t, "close"))
      p->flags |= SOON_HTTP_CONN_CLOSE;
    else if (same(buf + t, e - t, "keep-alive"))
      p->flags |= SOON_HTTP_CONN_KEEP_ALIVE;
    else if (same(buf + t, e - t, "upgrade"))
      p->flags |= SOON_HTTP_CONN_UPGRADE;
    i = end + 1;
  }
}

/* Host = uri-host [ ":" port ] (RFC 9112 section 3.2: a server answers
 * 400 to a second one, or to an invalid value). uri-host is an IP-literal
 * in brackets, or reg-name / IPv4address: unreserved, pct-encoded and
 * sub-delims characters. Empty is allowed. */
static int host(soon_http_parser *p, const char *buf, size_t line, size_t v,
                size_t vlen) {
  if (p->seen & SEEN_HOST)
    return fail(p, SOON_HTTP_EHOST, line);
  p->seen |= SEEN_HOST;
  p->host = at(v, vlen);
  size_t i = v, stop = v + vlen;
  if (i < stop && buf[i] == '[') { /* IP-literal */
    for (i++; i < stop && buf[i] != ']'; i++)
      if (!is((unsigned char)buf[i], HOST) && buf[i] != ':')
        return fail(p, SOON_HTTP_EHOST, i);
    if (i == stop || i == v + 1)
      return fail(p, SOON_HTTP_EHOST, i);
    i++;
  } else {
    while (is((unsigned char)buf[i], HOST)) /* OWS or CR ends the value */
      i++;
  }
  if (i < stop && buf[i] == ':') /* port = *DIGIT */
    for (i++; i < stop && buf[i] >= '0' && buf[i] <= '9'; i++)
      ;
  return i == stop ? 0 : fail(p, SOON_HTTP_EHOST, i);
}

/* What the server and client act on, recognised once, here. */
static int known_field(soon_http_parser *p, const char *buf, size_t line,
                       const char *name, size_t nlen, size_t v, size_t vlen) {
  switch (nlen) {
  case 4:
    if (p->type == SOON_HTTP_REQUEST && same(name, 4, "host"))
      return host(p, buf, line, v, vlen);
    return 0;
  case 6:
    if (same(name, 6, "expect"))
      p->flags |= same(buf + v, vlen, "100-continue")
                      ? SOON_HTTP_EXPECT_CONTINUE
                      : SOON_HTTP_EXPECT_OTHER;
    return 0;
  case 7:
    if (same(name, 7, "upgrade") && vlen)
      p->seen |= SEEN_UPGRADE_HDR;
    return 0;
  case 10:
    if (same(name, 10, "connection"))
      connection(p, buf, v, v + vlen);
    return 0;
  case 14:
    return same(name, 14, "content-length")
               ? content_length(p, buf, line, v, vlen)
               : 0;
  case 17:
    return same(name, 17, "transfer-encoding")
               ? transfer_encoding(p, buf, line, v, v + vlen)
               : 0;
  default:
    return 0;
  }
}

/* field-name ":" OWS field-value OWS CRLF, from buf[i]: the next line's
 * start, or an error. */
static ssize_t field_line(soon_http_parser *p, const char *buf, size_t i,
                          size_t len) {
  size_t line = i;
  if (ows(buf[i]))
    return fail(p, SOON_HTTP_EOBS_FOLD, i);
  i = skip_token(buf, i, len);
  if (i == line || buf[i] != ':')
    return bad(p, buf, i, SOON_HTTP_EHEADER_NAME);
  size_t nlen = i - line;
  for (i++; ows(buf[i]); i++)
    ;
  /* SP and VCHAR in runs; HTAB and obs-text one by one (rare). */
  size_t v = i;
  while (!crlf(buf, i = skip_range(buf, i, len, ' ', '~'))) {
    if (!is((unsigned char)buf[i], VALUE))
      return bad(p, buf, i, SOON_HTTP_EHEADER_VALUE);
    i++;
  }
  size_t vend = i;
  while (vend > v && ows(buf[vend - 1]))
    vend--;
  if (p->nheaders == p->max_headers)
    return fail(p, SOON_HTTP_EHEADER_COUNT, line);
  p->headers[p->nheaders++] =
      (soon_http_header){at(line, nlen), at(v, vend - v)};
  int err = known_field(p, buf, line, buf + line, nlen, v, vend - v);
  return err ? err : (ssize_t)(i + 2);
}

/* ------------------------------------------------------------ head end */

/* The framing (RFC 9112 section 6.3) and what the connection does after. */
static int head_done(soon_http_parser *p, const char *buf, size_t line) {
  bool request = p->type == SOON_HTTP_REQUEST;
  if (request && p->version_minor == 1 && !(p->seen & SEEN_HOST))
    return fail(p, SOON_HTTP_EHOST, line);
  bool keep = p->version_minor == 1 ? !(p->flags & SOON_HTTP_CONN_CLOSE)
                                    : (p->flags & SOON_HTTP_CONN_KEEP_ALIVE) &&
                                          !(p->flags & SOON_HTTP_CONN_CLOSE);
  /* The bytes after the head are not HTTP: after an upgrade request, a
   * 101 that accepts one, or a CONNECT (RFC 9110 section 9.3.6: it has no
   * content; what follows is the tunnel's). */
  bool upgrading =
      (p->seen & SEEN_UPGRADE_HDR) && (p->flags & SOON_HTTP_CONN_UPGRADE);
  if ((upgrading && (request || p->status == 101)) || (p->seen & CONNECT))
    p->flags |= SOON_HTTP_UPGRADE;
  if ((!request && (p->head_request || p->status < 200 || p->status == 204 ||
                    p->status == 304)) ||
      (p->seen & CONNECT))
    p->body = SOON_HTTP_BODY_NONE;
  else if (p->seen & SEEN_TE)
    p->body = (p->seen & CHUNKED_LAST) ? SOON_HTTP_BODY_CHUNKED
                                       : SOON_HTTP_BODY_CLOSE;
  else if (p->seen & SEEN_LENGTH)
    p->body = SOON_HTTP_BODY_LENGTH;
  else
    p->body = request ? SOON_HTTP_BODY_NONE : SOON_HTTP_BODY_CLOSE;
  if (p->body == SOON_HTTP_BODY_LENGTH &&
      p->content_length > p->limits.max_body)
    return fail(p, SOON_HTTP_EBODY_SIZE, line);
  if (p->body == SOON_HTTP_BODY_CLOSE)
    keep = false;
  if (keep)
    p->flags |= SOON_HTTP_KEEP_ALIVE;
  if (p->body != SOON_HTTP_BODY_LENGTH)
    p->content_length = 0;
  switch (p->body) {
  case SOON_HTTP_BODY_NONE:
    p->state = S_DONE;
    break;
  case SOON_HTTP_BODY_LENGTH:
    p->left = p->content_length;
    p->state = p->left ? S_LENGTH : S_DONE;
    break;
  case SOON_HTTP_BODY_CHUNKED:
    p->state = S_SIZE_FIRST;
    break;
  case SOON_HTTP_BODY_CLOSE:
    p->state = S_CLOSE;
    break;
  }
  rebase(&p->method, buf);
  rebase(&p->target, buf);
  rebase(&p->reason, buf);
  rebase(&p->host, buf);
  for (unsigned k = 0; k < p->nheaders; k++) {
    rebase(&p->headers[k].name, buf);
    rebase(&p->headers[k].value, buf);
  }
  return 0;
}

/* ------------------------------------------------------------ the head */

/* The line from buf[i], whole: the next one's start, or an error. Once
 * the empty line ends the head, p->state has left the head's. */
static ssize_t head_line(soon_http_parser *p, const char *buf, size_t i,
                         size_t len) {
  bool empty = crlf(buf, i);
  if (p->state == S_FIRST_LINE) {
    /* Empty lines before a request line: RFC 9112 section 2.2. */
    if (empty && p->type == SOON_HTTP_REQUEST)
      return (ssize_t)(i + 2);
    p->state = S_FIELDS;
    return p->type == SOON_HTTP_REQUEST ? request_line(p, buf, i, len)
                                        : status_line(p, buf, i, len);
  }
  if (!empty)
    return field_line(p, buf, i, len);
  int err = head_done(p, buf, i);
  return err ? err : (ssize_t)(i + 2);
}

ssize_t soon_http_parse_head(soon_http_parser *p, const char *buf, size_t len) {
  if (!p || (!buf && len))
    return -EINVAL;
  if (p->error)
    return p->error;
  if (p->state > S_FIELDS)
    return SOON_HTTP_EDONE;
  /* Only the new bytes are searched, once, for the last LF: the lines
   * before it are whole, and are parsed once each. A head arriving a byte
   * at a time stays linear, and the result does not depend on the split. */
  size_t limit = p->limits.max_head, end = len < limit ? len : limit;
  if (p->scan < end) {
    const char *lf = memrchr(buf + p->scan, '\n', end - p->scan);
    if (lf)
      p->whole = (size_t)(lf - buf) + 1;
    p->scan = end;
  }
  while (p->line < p->whole) {
    ssize_t next = head_line(p, buf, p->line, len);
    if (next < 0)
      return next;
    p->line = (size_t)next;
    if (p->state > S_FIELDS)
      return next;
  }
  if (len <= limit)
    return 0;
  return fail(p,
              p->state == S_FIRST_LINE && p->type == SOON_HTTP_REQUEST
                  ? SOON_HTTP_ETARGET_SIZE
                  : SOON_HTTP_EHEAD_SIZE,
              limit);
}

/* ------------------------------------------------------------ the body */

/* The state after c in a chunk's extensions (RFC 9112 section 7.1.1):
 *   chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted ) ) )
 * or S_DONE when c does not fit there. */
static unsigned ext_next(unsigned state, unsigned char c) {
  bool ws = ows((char)c), tchar = is(c, TCHAR);
  switch (state) {
  case S_SIZE_WS: /* after BWS only ';' */
  case S_EXT_WS:
    return ws ? state : c == ';' ? S_EXT_NAME_START : S_DONE;
  case S_EXT_NAME_START:
    return ws ? state : tchar ? S_EXT_NAME : S_DONE;
  case S_EXT_NAME:
    if (tchar)
      return state;
    /* fall through */
  case S_EXT_NAME_WS:
    return ws                                 ? S_EXT_NAME_WS
           : c == '='                         ? S_EXT_VALUE_START
           : c == ';'                         ? S_EXT_NAME_START
           : c == '\r' && state == S_EXT_NAME ? S_SIZE_LF
                                              : S_DONE;
  case S_EXT_VALUE_START:
    return ws ? state : c == '"' ? S_EXT_QUOTED : tchar ? S_EXT_TOKEN : S_DONE;
  case S_EXT_TOKEN:
    return tchar       ? state
           : ws        ? S_EXT_WS
           : c == ';'  ? S_EXT_NAME_START
           : c == '\r' ? S_SIZE_LF
                       : S_DONE;
  case S_EXT_QUOTED:
    return c == '"'       ? S_EXT_TOKEN_END
           : c == '\\'    ? S_EXT_QUOTED_ESC
           : is(c, VALUE) ? state
                          : S_DONE;
  case S_EXT_QUOTED_ESC:
    return is(c, VALUE) ? S_EXT_QUOTED : S_DONE;
  case S_EXT_TOKEN_END: /* a closing quote: as after a token, minus more */
    return ws          ? S_EXT_WS
           : c == ';'  ? S_EXT_NAME_START
           : c == '\r' ? S_SIZE_LF
                       : S_DONE;
  default:
    return S_DONE;
  }
}

/* One byte of a chunked body's framing (everything but the data): 0, or
 * the error, at body offset off. The size's digits are checked against the
 * body limit as they come, so a huge size fails at its first digit over. */
static int framing(soon_http_parser *p, unsigned char c, size_t off) {
  switch (p->state) {
  case S_SIZE_FIRST:
    if (!is(c, HEX))
      return fail(p, c == '\n' ? SOON_HTTP_ELINE_END : SOON_HTTP_ECHUNK_SIZE,
                  off);
    p->left = hexval(c);
    p->ext = 0;
    p->state = S_SIZE;
    if (p->left > p->limits.max_body - p->total)
      return fail(p, SOON_HTTP_EBODY_SIZE, off);
    break;
  case S_SIZE:
    if (is(c, HEX)) {
      if (p->left > (uint64_t)INT64_MAX >> 4)
        return fail(p, SOON_HTTP_ECHUNK_SIZE, off);
      p->left = p->left << 4 | hexval(c);
      if (p->left > p->limits.max_body - p->total)
        return fail(p, SOON_HTTP_EBODY_SIZE, off);
    } else if (c == '\r')
      p->state = S_SIZE_LF;
    else if (c == ';' || ows((char)c))
      p->state = c == ';' ? S_EXT_NAME_START : S_SIZE_WS;
    else
      return fail(p, c == '\n' ? SOON_HTTP_ELINE_END : SOON_HTTP_ECHUNK_SIZE,
                  off);
    break;
  case S_SIZE_LF:
  case S_DATA_LF:
  case S_TRAILER_LF:
  case S_END_LF: /* the LF after a CR: else that CR was bare */
    if (c != '\n')
      return fail(p, SOON_HTTP_ELINE_END, off - 1);
    p->state = p->state == S_SIZE_LF      ? (p->left ? S_DATA : S_TRAILER_START)
               : p->state == S_DATA_LF    ? S_SIZE_FIRST
               : p->state == S_TRAILER_LF ? S_TRAILER_START
                                          : S_DONE;
    break;
  case S_DATA_CR:
    if (c != '\r')
      return fail(p, SOON_HTTP_ECHUNK_END, off);
    p->state = S_DATA_LF;
    break;
  case S_TRAILER_START: /* trailers are checked as headers, then dropped */
  case S_TRAILER_NAME:
  case S_TRAILER_VALUE:
    if (++p->ext > p->limits.max_head)
      return fail(p, SOON_HTTP_EHEAD_SIZE, off);
    if (c == '\n')
      return fail(p, SOON_HTTP_ELINE_END, off);
    if (p->state == S_TRAILER_START && c == '\r')
      p->state = S_END_LF;
    else if (p->state == S_TRAILER_START && ows((char)c))
      return fail(p, SOON_HTTP_EOBS_FOLD, off);
    else if (p->state != S_TRAILER_VALUE && is(c, TCHAR))
      p->state = S_TRAILER_NAME;
    else if (p->state == S_TRAILER_NAME && c == ':')
      p->state = S_TRAILER_VALUE;
    else if (p->state == S_TRAILER_VALUE && c == '\r')
      p->state = S_TRAILER_LF;
    else if (p->state != S_TRAILER_VALUE || !is(c, VALUE))
      return fail(p, SOON_HTTP_ETRAILER, off);
    break;
  default: { /* the extensions */
    unsigned next = ext_next(p->state, c);
    if (next == S_DONE)
      return fail(p,
                  c == '\n'               ? SOON_HTTP_ELINE_END
                  : p->state == S_SIZE_WS ? SOON_HTTP_ECHUNK_SIZE
                                          : SOON_HTTP_ECHUNK_EXT,
                  off);
    if (next != S_SIZE_LF && ++p->ext > p->limits.max_chunk_ext)
      return fail(p, SOON_HTTP_ECHUNK_EXT_SIZE, off);
    p->state = next;
  }
  }
  return 0;
}

ssize_t soon_http_parse_body(soon_http_parser *p, const char *buf, size_t len,
                             soon_http_span *data) {
  if (!p || !data || (!buf && len))
    return -EINVAL;
  *data = (soon_http_span){buf, 0};
  if (p->error)
    return p->error;
  if (p->state <= S_FIELDS)
    return -EINVAL; /* the head first */
  if (p->state == S_DONE)
    return SOON_HTTP_EDONE;
  size_t i = 0;
  if (p->state == S_CLOSE) {
    if (len > p->limits.max_body - p->total)
      return fail(p, SOON_HTTP_EBODY_SIZE,
                  p->offset + (size_t)(p->limits.max_body - p->total));
    i = len;
    *data = (soon_http_span){buf, len};
  }
  /* Framing byte by byte, then one run of data: one span per call. */
  while (i < len && p->state != S_DONE && p->state != S_CLOSE) {
    if (p->state == S_LENGTH || p->state == S_DATA) {
      size_t n = len - i < p->left ? len - i : (size_t)p->left;
      *data = (soon_http_span){buf + i, n};
      i += n;
      p->left -= n;
      if (!p->left)
        p->state = p->state == S_LENGTH ? S_DONE : S_DATA_CR;
      break;
    }
    int err = framing(p, (unsigned char)buf[i], p->offset + i);
    if (err)
      return err;
    i++;
  }
  p->total += data->len;
  p->offset += i;
  return (ssize_t)i;
}

ssize_t soon_http_decode_body(soon_http_parser *p, char *buf, size_t len,
                              size_t *data_len) {
  if (!p || !data_len || (!buf && len))
    return -EINVAL;
  *data_len = 0;
  if (p->state == S_DONE && !p->error)
    return SOON_HTTP_EDONE;
  size_t used = 0, out = 0;
  while (used < len && p->state != S_DONE) {
    soon_http_span d;
    ssize_t n = soon_http_parse_body(p, buf + used, len - used, &d);
    if (n < 0)
      return n;
    memmove(buf + out, d.base, d.len); /* never forward: out <= used */
    out += d.len;
    used += (size_t)n;
  }
  *data_len = out;
  return (ssize_t)used;
}

int soon_http_parse_eof(soon_http_parser *p) {
  if (!p)
    return -EINVAL;
  if (p->error)
    return p->error;
  if (p->state == S_CLOSE)
    p->state = S_DONE;
  if (p->state == S_DONE || (p->state == S_FIRST_LINE && p->scan == p->line))
    return 0; /* a whole message, or nothing of one begun */
  return fail(p, SOON_HTTP_ETRUNCATED,
              p->state <= S_FIELDS ? p->scan : p->offset);
}

bool soon_http_message_done(const soon_http_parser *p) {
  return p && !p->error && p->state == S_DONE;
}

const soon_http_span *soon_http_header_get(const soon_http_parser *p,
                                           const char *name) {
  if (!p || !name || p->state <= S_FIELDS)
    return NULL;
  size_t n = strlen(name);
  for (unsigned k = 0; k < p->nheaders; k++) {
    const soon_http_header *h = &p->headers[k];
    if (h->name.len == n && strncasecmp(h->name.base, name, n) == 0)
      return &h->value;
  }
  return NULL;
}
