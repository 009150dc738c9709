/* file.c: a file as an HTTP response (soon_http_respond_file): validators,
 * conditional requests and ranges, on the server's streamed responses. */
#include <soon/http.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Bodies up to this size are read into memory and sent with the head in one
 * writev; larger ones go from the page cache by sendfile. */
#define SMALL_BODY (64u << 10)

/* Headers this file adds to the caller's: Last-Modified, ETag,
 * Accept-Ranges, Content-Range. */
#define FILE_OWN_HEADERS 4

/* ------------------------------------------------------------ the plan */

/* What answers the request: decided from fstat and the request's
 * conditional and Range headers before a byte goes out. */
typedef struct file_plan {
  int status;
  uint64_t first, len; /* the bytes of the file the body carries */
  bool validators;     /* Last-Modified and ETag */
  bool ranges;         /* Accept-Ranges: bytes */
  bool content_range;  /* 206 and 416 */
  bool body;           /* else only the head (HEAD, 304, 412, 416) */
} file_plan;

typedef struct file_meta {
  uint64_t size;
  int64_t mtime; /* seconds, what Last-Modified and the dates compare */
  char etag[64]; /* with its quotes */
  size_t etag_len;
  char last_modified[32];
} file_meta;

static bool span_is(soon_http_span s, const char *lit) {
  size_t n = strlen(lit);
  return s.len == n && memcmp(s.base, lit, n) == 0;
}

static bool span_is_nocase(soon_http_span s, const char *lit) {
  size_t n = strlen(lit);
  return s.len == n && strncasecmp(s.base, lit, n) == 0;
}

/* ------------------------------------------------------------ dates */

static const char day_names[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                     "Thu", "Fri", "Sat"};
static const char month_names[12][4] = {"Jan", "Feb", "Mar", "Apr",
                                        "May", "Jun", "Jul", "Aug",
                                        "Sep", "Oct", "Nov", "Dec"};
static const char *const long_day_names[7] = {
    "Sunday",   "Monday", "Tuesday", "Wednesday",
    "Thursday", "Friday", "Saturday"};

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil): no timegm, no TZ, no locale. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

/* IMF-fixdate (RFC 9110 section 5.6.7) by hand: strftime's names follow
 * the locale, HTTP's are always English. */
static void format_http_date(int64_t t, char out[32]) {
  struct tm tm;
  time_t tt = (time_t)t;
  if (!gmtime_r(&tt, &tm)) {
    tt = 0;
    gmtime_r(&tt, &tm);
  }
  snprintf(out, 32, "%s, %02d %s %04d %02d:%02d:%02d GMT",
           day_names[tm.tm_wday % 7], tm.tm_mday, month_names[tm.tm_mon % 12],
           tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* A cursor over a header value for the date parser. */
typedef struct cursor {
  const char *p, *end;
} cursor;

static bool eat(cursor *c, const char *lit) {
  size_t n = strlen(lit);
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
    return false;
  c->p += n;
  return true;
}

static bool eat_digits(cursor *c, int n, int *out) {
  if (c->end - c->p < n)
    return false;
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (c->p[i] < '0' || c->p[i] > '9')
      return false;
    v = v * 10 + (c->p[i] - '0');
  }
  c->p += n;
  *out = v;
  return true;
}

static bool eat_month(cursor *c, int *month) {
  for (int i = 0; i < 12; i++)
    if (eat(c, month_names[i])) {
      *month = i + 1;
      return true;
    }
  return false;
}

static bool eat_time(cursor *c, int *h, int *m, int *s) {
  return eat_digits(c, 2, h) && eat(c, ":") && eat_digits(c, 2, m) &&
         eat(c, ":") && eat_digits(c, 2, s);
}

static bool eat_day_name(cursor *c, bool long_name) {
  for (int i = 0; i < 7; i++)
    if (eat(c, long_name ? long_day_names[i] : day_names[i]))
      return true;
  return false;
}

/* Seconds since the epoch from the three forms RFC 9110 section 5.6.7 has
 * a recipient accept: IMF-fixdate, and the obsolete RFC 850 and asctime
 * forms. The day name is checked for form, not against the date. */
static bool parse_http_date(soon_http_span v, int64_t *out) {
  int day, month, year, h, m, s;
  cursor c = {v.base, v.base + v.len};
  cursor imf = c, rfc850 = c, asc = c;
  if (eat_day_name(&imf, false) && eat(&imf, ", ") &&
      eat_digits(&imf, 2, &day) && eat(&imf, " ") && eat_month(&imf, &month) &&
      eat(&imf, " ") && eat_digits(&imf, 4, &year) && eat(&imf, " ") &&
      eat_time(&imf, &h, &m, &s) && eat(&imf, " GMT") && imf.p == imf.end) {
    /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
  } else if (eat_day_name(&rfc850, true) && eat(&rfc850, ", ") &&
             eat_digits(&rfc850, 2, &day) && eat(&rfc850, "-") &&
             eat_month(&rfc850, &month) && eat(&rfc850, "-") &&
             eat_digits(&rfc850, 2, &year) && eat(&rfc850, " ") &&
             eat_time(&rfc850, &h, &m, &s) && eat(&rfc850, " GMT") &&
             rfc850.p == rfc850.end) {
    /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT. Two-digit years: before
     * 70 this century (the RFC's "more than 50 years in the future" rule,
     * fixed at the epoch: no file here predates it). */
    year += year < 70 ? 2000 : 1900;
  } else if (eat_day_name(&asc, false) && eat(&asc, " ") &&
             eat_month(&asc, &month) && eat(&asc, " ") &&
             (eat(&asc, " ") ? eat_digits(&asc, 1, &day)
                             : eat_digits(&asc, 2, &day)) &&
             eat(&asc, " ") && eat_time(&asc, &h, &m, &s) && eat(&asc, " ") &&
             eat_digits(&asc, 4, &year) && asc.p == asc.end) {
    /* asctime: Sun Nov  6 08:49:37 1994 */
  } else {
    return false;
  }
  if (day < 1 || day > 31 || h > 23 || m > 59 || s > 60)
    return false;
  *out = days_from_civil(year, (unsigned)month, (unsigned)day) * 86400 +
         h * 3600 + m * 60 + s;
  return true;
}

/* ------------------------------------------------------------ entity tags */

typedef enum etag_match { ETAG_NONE, ETAG_WEAK, ETAG_STRONG } etag_match;

static const char *skip_ows_commas(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
    p++;
  return p;
}

/* How a list of entity-tags (or "*") matches ours: ETAG_STRONG when an
 * identical strong tag (or "*") is in it, ETAG_WEAK when only a W/ one
 * with our opaque-tag is (RFC 9110 section 8.8.3.2). A malformed member
 * ends the list: what came before it still counts. */
static etag_match etag_list_match(soon_http_span v, const file_meta *meta) {
  const char *p = v.base, *end = v.base + v.len;
  p = skip_ows_commas(p, end);
  if (end - p == 1 && *p == '*')
    return ETAG_STRONG;
  etag_match best = ETAG_NONE;
  while (p < end) {
    bool weak = end - p >= 2 && p[0] == 'W' && p[1] == '/';
    if (weak)
      p += 2;
    if (p == end || *p != '"')
      break;
    const char *close = memchr(p + 1, '"', (size_t)(end - p - 1));
    if (!close)
      break;
    size_t n = (size_t)(close + 1 - p);
    if (n == meta->etag_len && memcmp(p, meta->etag, n) == 0) {
      if (!weak)
        return ETAG_STRONG;
      best = ETAG_WEAK;
    }
    p = skip_ows_commas(close + 1, end);
  }
  return best;
}

/* The best match over every field line called name: a list may be split
 * over several lines (RFC 9110 section 5.3). -1 when there is none. */
static int etag_header_match(const soon_http_req *req, const char *name,
                             const file_meta *meta) {
  int best = -1;
  for (unsigned i = 0; i < req->nheaders; i++) {
    if (!span_is_nocase(req->headers[i].name, name))
      continue;
    etag_match m = etag_list_match(req->headers[i].value, meta);
    if ((int)m > best)
      best = (int)m;
  }
  return best;
}

/* ------------------------------------------------------------ ranges */

/* Digits into *out, saturating: a huge first-pos is unsatisfiable, a huge
 * last-pos or suffix the end of the file, as if exact. */
static bool parse_u64(const char **pp, const char *end, uint64_t *out) {
  const char *p = *pp;
  uint64_t v = 0;
  if (p == end || *p < '0' || *p > '9')
    return false;
  for (; p < end && *p >= '0' && *p <= '9'; p++) {
    unsigned d = (unsigned)(*p - '0');
    v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
  }
  *pp = p;
  *out = v;
  return true;
}

typedef enum range_result {
  RANGE_IGNORE,   /* not bytes, or malformed: the whole file */
  RANGE_ONE,      /* one satisfiable range: 206 */
  RANGE_MANY,     /* several, one at least satisfiable: the whole file */
  RANGE_UNSATISF, /* none satisfiable: 416 */
} range_result;

/* One range-spec of a bytes range-set (RFC 9110 section 14.1.2) against a
 * file of size bytes: false if malformed; *ok whether it is satisfiable. */
static bool parse_range_spec(const char **pp, const char *end, uint64_t size,
                             uint64_t *first, uint64_t *len, bool *ok) {
  uint64_t a, b;
  const char *p = *pp;
  if (p < end && *p == '-') { /* suffix-range: the last b bytes */
    p++;
    if (!parse_u64(&p, end, &b))
      return false;
    /* Satisfiable even for an empty file (RFC 9110 section 14.1.1),
     * which then has no range to name: plan_response sends it whole. */
    *ok = b > 0;
    *len = b < size ? b : size;
    *first = size - *len;
  } else {
    if (!parse_u64(&p, end, &a) || p == end || *p != '-')
      return false;
    p++;
    b = UINT64_MAX;
    if (p < end && *p >= '0' && *p <= '9') {
      parse_u64(&p, end, &b);
      if (b < a)
        return false;
    }
    *ok = a < size;
    *first = a;
    *len = *ok ? (b < size ? b : size - 1) - a + 1 : 0;
  }
  *pp = p;
  return true;
}

static range_result parse_range(soon_http_span v, uint64_t size,
                                uint64_t *first, uint64_t *len) {
  const char *p = v.base, *end = v.base + v.len;
  if (v.len < 6 || strncasecmp(p, "bytes=", 6) != 0)
    return RANGE_IGNORE;
  p += 6;
  unsigned specs = 0, satisfiable = 0;
  for (p = skip_ows_commas(p, end); p < end; p = skip_ows_commas(p, end)) {
    uint64_t f, l;
    bool ok;
    if (!parse_range_spec(&p, end, size, &f, &l, &ok))
      return RANGE_IGNORE;
    if (p < end && *p != ',' && *p != ' ' && *p != '\t')
      return RANGE_IGNORE;
    if (specs++ == 0) {
      *first = f;
      *len = l;
    }
    satisfiable += ok;
  }
  if (specs == 0)
    return RANGE_IGNORE;
  if (satisfiable == 0)
    return RANGE_UNSATISF;
  return specs == 1 ? RANGE_ONE : RANGE_MANY;
}

/* If-Range (RFC 9110 section 13.1.5): the range applies only if the
 * validator is ours, compared strongly (a date exactly our mtime). */
static bool if_range_holds(const soon_http_req *req, const file_meta *meta) {
  const soon_http_span *v = soon_http_req_header(req, "If-Range");
  if (!v)
    return true;
  if ((v->len > 0 && v->base[0] == '"') ||
      (v->len > 1 && v->base[0] == 'W' && v->base[1] == '/'))
    return v->len == meta->etag_len &&
           memcmp(v->base, meta->etag, meta->etag_len) == 0;
  int64_t t;
  return parse_http_date(*v, &t) && t == meta->mtime;
}

/* ------------------------------------------------------------ deciding */

/* The preconditions of RFC 9110 section 13.2.2, in its order: If-Match,
 * else If-Unmodified-Since (412); If-None-Match, else If-Modified-Since
 * for GET and HEAD (304; 412 for other methods). 0 if they all pass. */
static int precondition_status(const soon_http_req *req, const file_meta *meta,
                               bool get_or_head) {
  int64_t t;
  int m = etag_header_match(req, "If-Match", meta);
  const soon_http_span *v;
  if (m >= 0) {
    if (m != ETAG_STRONG)
      return 412;
  } else if ((v = soon_http_req_header(req, "If-Unmodified-Since")) &&
             parse_http_date(*v, &t) && meta->mtime > t) {
    return 412;
  }
  m = etag_header_match(req, "If-None-Match", meta);
  if (m >= 0) {
    if (m != ETAG_NONE)
      return get_or_head ? 304 : 412;
  } else if (get_or_head &&
             (v = soon_http_req_header(req, "If-Modified-Since")) &&
             parse_http_date(*v, &t) && meta->mtime <= t) {
    return 304;
  }
  return 0;
}

static void plan_response(const soon_http_req *req, int status,
                          const file_meta *meta, file_plan *plan) {
  bool head = span_is(req->method, "HEAD");
  bool get = span_is(req->method, "GET");
  *plan = (file_plan){.status = status, .len = meta->size, .body = !head};
  if (status != 200) /* an error page: the file is not the resource */
    return;
  plan->validators = plan->ranges = true;
  int pre = precondition_status(req, meta, get || head);
  if (pre) {
    plan->status = pre;
    plan->ranges = false;
    plan->validators = pre == 304;
    plan->body = false;
    plan->len = 0;
    return;
  }
  /* Range is defined for GET alone (RFC 9110 section 14.2): HEAD and the
   * rest get the whole representation's head. */
  const soon_http_span *range = soon_http_req_header(req, "Range");
  if (!get || !range || !if_range_holds(req, meta))
    return;
  uint64_t first = 0, len = 0;
  switch (parse_range(*range, meta->size, &first, &len)) {
  case RANGE_ONE:
    if (meta->size == 0) /* "-N" of nothing: no range to name, send it all */
      return;
    plan->status = 206;
    plan->first = first;
    plan->len = len;
    plan->content_range = true;
    return;
  case RANGE_UNSATISF:
    plan->status = 416;
    plan->content_range = true;
    plan->body = false;
    plan->len = 0;
    return;
  case RANGE_MANY: /* no multipart/byteranges: the whole file is a valid
                      answer (RFC 9110 section 14.2) and simpler for all */
  case RANGE_IGNORE:
    return;
  }
}

static void file_meta_init(file_meta *meta, const struct stat *st) {
  uint64_t ns = (uint64_t)st->st_mtim.tv_sec * 1000000000u +
                (uint64_t)st->st_mtim.tv_nsec;
  meta->size = (uint64_t)st->st_size;
  meta->mtime = (int64_t)st->st_mtim.tv_sec;
  /* Strong: any change of content moves size or mtime (ns), and a file
   * replaced by rename gets another inode. */
  int n = snprintf(meta->etag, sizeof meta->etag,
                   "\"%" PRIx64 "-%" PRIx64 "-%" PRIx64 "\"",
                   (uint64_t)st->st_ino, meta->size, ns);
  meta->etag_len = (size_t)n;
  format_http_date(meta->mtime, meta->last_modified);
}

/* ------------------------------------------------------------ the head */

static soon_http_header make_header(const char *name, const char *value,
                                    size_t len) {
  return (soon_http_header){{name, strlen(name)}, {value, len}};
}

/* A response without the file's bytes (304, 412, 416) describes no
 * representation: the caller's Content-* headers (its Content-Type, say)
 * would describe a body that is not there. Content-Location stays: a 304
 * repeats it (RFC 9110 section 15.4.5). */
static bool keep_caller_header(const soon_http_header *h,
                               const file_plan *plan) {
  if (plan->status != 304 && plan->status != 412 && plan->status != 416)
    return true;
  return h->name.len < 8 || strncasecmp(h->name.base, "Content-", 8) != 0 ||
         span_is_nocase(h->name, "Content-Location");
}

/* The response's header list in all (room for nheaders +
 * FILE_OWN_HEADERS); the values point into meta and range_buf. */
static unsigned build_headers(soon_http_header *all,
                              const soon_http_header *headers,
                              unsigned nheaders, const file_plan *plan,
                              const file_meta *meta, char range_buf[80]) {
  unsigned n = 0;
  for (unsigned i = 0; i < nheaders; i++)
    if (keep_caller_header(&headers[i], plan))
      all[n++] = headers[i];
  if (plan->validators) {
    all[n++] = make_header("Last-Modified", meta->last_modified,
                           strlen(meta->last_modified));
    all[n++] = make_header("ETag", meta->etag, meta->etag_len);
  }
  if (plan->ranges)
    all[n++] = make_header("Accept-Ranges", "bytes", 5);
  if (plan->content_range) {
    int len =
        plan->status == 416
            ? snprintf(range_buf, 80, "bytes */%" PRIu64, meta->size)
            : snprintf(range_buf, 80, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64,
                       plan->first, plan->first + plan->len - 1, meta->size);
    all[n++] = make_header("Content-Range", range_buf, (size_t)len);
  }
  return n;
}

/* ------------------------------------------------------------ the body */

/* The range is written: the response is over. After a failure the
 * connection is gone and the request with it (not ours to end); a file
 * that shrank under its Content-Length fails its write (-ENODATA), and the
 * server closes the connection rather than let the client take the next
 * response for the missing bytes. */
static void on_range_written(soon_http_req *req, int status) {
  if (status == 0)
    soon_http_end(req);
}
/* A body of at most SMALL_BODY: read whole, then the head and the body go
 * out in one soon_http_respond (one writev) instead of a head and a write.
 * Most files a site serves are this small. */
static int send_small(soon_http_req *req, int fd, const file_plan *plan,
                      const soon_http_header *all, unsigned n) {
  size_t len = (size_t)plan->len, got = 0;
  char *buf = malloc(len ? len : 1);
  if (!buf)
    return -ENOMEM;
  while (got < len) {
    ssize_t r = pread(fd, buf + got, len - got, (off_t)(plan->first + got));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) /* nothing sent yet: the handler can still answer 500 */
      break;
    got += (size_t)r;
  }
  int err =
      got < len ? -EIO : soon_http_respond(req, plan->status, all, n, buf, len);
  free(buf);
  return err;
}

/* A larger body: the head, then the range by sendfile (no copy through
 * the loop); the fd is the server's from there. */
static int send_streamed(soon_http_req *req, int fd, const file_plan *plan,
                         const soon_http_header *all, unsigned n) {
  int err = soon_http_write_head(req, plan->status, all, n, (int64_t)plan->len);
  if (err) {
    close(fd);
    return err;
  }
  return soon_http_write_file(req, fd, (int64_t)plan->first, (size_t)plan->len,
                              on_range_written);
}

/* The response the plan says. HEAD declares the length it would send, so
 * it is a head alone; 304, 412 and 416 have neither body nor length. */
static int send_response(soon_http_req *req, int fd, const file_plan *plan,
                         const soon_http_header *all, unsigned n) {
  int err;
  if (plan->body && plan->len > SMALL_BODY)
    return send_streamed(req, fd, plan, all, n);
  if (plan->body)
    err = send_small(req, fd, plan, all, n);
  else if (plan->status == 304 || plan->status == 412 || plan->status == 416)
    err = soon_http_respond(req, plan->status, all, n, NULL, 0);
  else if ((err = soon_http_write_head(req, plan->status, all, n,
                                       (int64_t)plan->len)) == 0)
    err = soon_http_end(req);
  close(fd);
  return err;
}

int soon_http_respond_file(soon_http_req *req, int status, int fd,
                           const soon_http_header *headers, unsigned nheaders) {
  struct stat st;
  if (fd < 0)
    return -EINVAL;
  /* The fd is ours from here, whatever the outcome: the caller never has
   * to wonder whether to close it. */
  if (!req || (nheaders > 0 && !headers) || status < 100 || status > 999 ||
      nheaders > UINT_MAX - FILE_OWN_HEADERS) {
    close(fd);
    return -EINVAL;
  }
  if (fstat(fd, &st) < 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  if (!S_ISREG(st.st_mode)) { /* a directory, a FIFO: no length to promise */
    close(fd);
    return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
  }
  file_meta meta;
  file_plan plan;
  file_meta_init(&meta, &st);
  plan_response(req, status, &meta, &plan);

  soon_http_header local[32], *all = local;
  if (nheaders + FILE_OWN_HEADERS > 32) {
    all = malloc((nheaders + FILE_OWN_HEADERS) * sizeof *all);
    if (!all) {
      close(fd);
      return -ENOMEM;
    }
  }
  char range_buf[80];
  unsigned n = build_headers(all, headers, nheaders, &plan, &meta, range_buf);
  int err = send_response(req, fd, &plan, all, n);
  if (all != local)
    free(all);
  return err;
}
