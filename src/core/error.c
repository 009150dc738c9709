/* error.c: names and sentences for the negative errno values soon returns.
 * glibc's strerrorname_np/strerrordesc_np are thread-safe, unlike strerror. */
#include "core.h"

#include <netdb.h>
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

const char *soon_strerror(int err) {
  if (err == SOON_EOF)
    return "end of file";
  int i = eai_index(err);
  if (i >= 0)
    return gai_strerror(eai_codes[i].eai);
  const char *s = err < 0 ? strerrordesc_np(-err) : NULL;
  return s ? s : "unknown error";
}

const char *soon_err_name(int err) {
  if (err == SOON_EOF)
    return "EOF";
  int i = eai_index(err);
  if (i >= 0)
    return eai_codes[i].name;
  const char *s = err < 0 ? strerrorname_np(-err) : NULL;
  return s ? s : "UNKNOWN";
}
