/* error.c: names and sentences for the negative errno values soon returns, and
 * the report of a broken invariant (SOON_ASSERT). glibc's strerrorname_np and
 * strerrordesc_np are thread-safe, unlike strerror. */
#include "core.h"

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
  const char *s = errno_of(err) ? strerrordesc_np(errno_of(err)) : NULL;
  return s ? s : "unknown error";
}

const char *soon_err_name(int err) {
  if (err == SOON_EOF)
    return "EOF";
  int i = eai_index(err);
  if (i >= 0)
    return eai_codes[i].name;
  const char *s = errno_of(err) ? strerrorname_np(errno_of(err)) : NULL;
  return s ? s : "UNKNOWN";
}

#ifdef SOON_DEBUG
void soon__assert_fail(const char *what, const char *file, int line) {
  fprintf(stderr, "soon: %s:%d: invariant broken: %s\n", file, line, what);
  abort();
}
#endif
