/* error.c: names and sentences for the negative errno values soon returns, and
 * the report of a broken invariant (SOON_ASSERT). glibc's strerrorname_np and
 * strerrordesc_np are thread-safe, unlike strerror. */
#include "core.h"

#include <soon/http.h>

#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The SOON_EAI_* codes stand for getaddrinfo's EAI_* ones, which glibc
 * numbers differently (and negatively): keep both here, side by side. */
static const struct {
  int err;
  int eai;
  const char *name;
} eai_codes[] = {
#ifdef EAI_ADDRFAMILY
    {SOON_EAI_ADDRFAMILY, EAI_ADDRFAMILY, "EAI_ADDRFAMILY"},
#endif
    {SOON_EAI_AGAIN, EAI_AGAIN, "EAI_AGAIN"},
    {SOON_EAI_BADFLAGS, EAI_BADFLAGS, "EAI_BADFLAGS"},
    {SOON_EAI_FAIL, EAI_FAIL, "EAI_FAIL"},
    {SOON_EAI_FAMILY, EAI_FAMILY, "EAI_FAMILY"},
    {SOON_EAI_MEMORY, EAI_MEMORY, "EAI_MEMORY"},
#ifdef EAI_NODATA
    {SOON_EAI_NODATA, EAI_NODATA, "EAI_NODATA"},
#endif
    {SOON_EAI_NONAME, EAI_NONAME, "EAI_NONAME"},
    {SOON_EAI_OVERFLOW, EAI_OVERFLOW, "EAI_OVERFLOW"},
    {SOON_EAI_SERVICE, EAI_SERVICE, "EAI_SERVICE"},
    {SOON_EAI_SOCKTYPE, EAI_SOCKTYPE, "EAI_SOCKTYPE"},
};

static int eai_index(int err) {
  for (size_t i = 0; i < sizeof eai_codes / sizeof *eai_codes; i++)
    if (eai_codes[i].err == err)
      return (int)i;
  return -1;
}

/* The HTTP parser's rejections (soon/http.h), SOON_HTTP_EMETHOD on. */
static const struct {
  const char *name, *text;
} http_codes[] = {
    {"HTTP_EMETHOD", "HTTP: invalid method"},
    {"HTTP_ETARGET", "HTTP: invalid request target"},
    {"HTTP_EVERSION", "HTTP: invalid version"},
    {"HTTP_EVERSION_UNSUP", "HTTP: version not supported"},
    {"HTTP_ESTATUS", "HTTP: invalid status code"},
    {"HTTP_EREASON", "HTTP: invalid reason phrase"},
    {"HTTP_ELINE_END", "HTTP: bare CR or LF"},
    {"HTTP_EHEADER_NAME", "HTTP: invalid header name"},
    {"HTTP_EHEADER_VALUE", "HTTP: invalid header value"},
    {"HTTP_EOBS_FOLD", "HTTP: folded header line"},
    {"HTTP_ECONTENT_LENGTH", "HTTP: invalid or repeated Content-Length"},
    {"HTTP_ETE_AND_CL", "HTTP: Transfer-Encoding with Content-Length"},
    {"HTTP_ETRANSFER_ENCODING", "HTTP: invalid Transfer-Encoding"},
    {"HTTP_ETE_UNSUP", "HTTP: transfer coding not implemented"},
    {"HTTP_EHOST", "HTTP: missing or repeated Host"},
    {"HTTP_EHEAD_SIZE", "HTTP: header section too large"},
    {"HTTP_EHEADER_COUNT", "HTTP: too many header fields"},
    {"HTTP_ETARGET_SIZE", "HTTP: request line too long"},
    {"HTTP_EBODY_SIZE", "HTTP: body too large"},
    {"HTTP_ECHUNK_SIZE", "HTTP: invalid chunk size"},
    {"HTTP_ECHUNK_EXT", "HTTP: invalid chunk extension"},
    {"HTTP_ECHUNK_EXT_SIZE", "HTTP: chunk extension too long"},
    {"HTTP_ECHUNK_END", "HTTP: chunk data not followed by CRLF"},
    {"HTTP_ETRAILER", "HTTP: invalid trailer field"},
    {"HTTP_ETRUNCATED", "HTTP: connection closed mid-message"},
    {"HTTP_EDONE", "HTTP: message already parsed"},
};

_Static_assert(sizeof http_codes / sizeof *http_codes ==
                   SOON_HTTP_EMETHOD - SOON_HTTP_EDONE + 1,
               "one row per SOON_HTTP_E* code");

static int http_index(int err) {
  if (err > SOON_HTTP_EMETHOD || err < SOON_HTTP_EDONE)
    return -1;
  return SOON_HTTP_EMETHOD - err;
}

/* For dns.c (declared in net/net.h): getaddrinfo's r as a SOON_EAI_* code.
 * EAI_SYSTEM leaves its reason in errno, read here on the caller's thread. */
int soon__eai_error(int r) {
  if (r == 0)
    return 0;
  if (r == EAI_SYSTEM)
    return errno ? -errno : -EIO;
  for (size_t i = 0; i < sizeof eai_codes / sizeof *eai_codes; i++)
    if (eai_codes[i].eai == r)
      return eai_codes[i].err;
  return SOON_EAI_FAIL;
}

/* The errno a negative err stands for, else 0. INT_MIN has none: its
 * negation would overflow. */
static int errno_of(int err) { return err < 0 && err != INT_MIN ? -err : 0; }

const char *soon_strerror(int err) {
  if (err == SOON_EOF)
    return "end of file";
  int i = eai_index(err);
  if (i >= 0)
    return gai_strerror(eai_codes[i].eai);
  if ((i = http_index(err)) >= 0)
    return http_codes[i].text;
  const char *s = errno_of(err) ? strerrordesc_np(errno_of(err)) : NULL;
  return s ? s : "unknown error";
}

const char *soon_err_name(int err) {
  if (err == SOON_EOF)
    return "EOF";
  int i = eai_index(err);
  if (i >= 0)
    return eai_codes[i].name;
  if ((i = http_index(err)) >= 0)
    return http_codes[i].name;
  const char *s = errno_of(err) ? strerrorname_np(errno_of(err)) : NULL;
  return s ? s : "UNKNOWN";
}

#ifdef SOON_DEBUG
void soon__assert_fail(const char *what, const char *file, int line) {
  fprintf(stderr, "soon: %s:%d: invariant broken: %s\n", file, line, what);
  abort();
}
#endif
