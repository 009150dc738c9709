/* grow.h: growing an array by doubling, for every table soon keeps (fd
 * tables, timer slots, stashes, queues): one place that checks for overflow.
 * Included by core.h and backend.h, so backends share it too. */
#ifndef SOON_GROW_H
#define SOON_GROW_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* An array p of *cap elements of elem bytes, grown to hold at least need:
 * its size doubles from *cap (first if 0) until it does, and the new part is
 * zeroed. Returns the array (p itself if it was large enough) with *cap
 * updated, or NULL without memory or on overflow (p and *cap untouched). */
static inline void *soon__grow(void *p, size_t *cap, size_t need, size_t elem,
                               size_t first) {
  if (need <= *cap)
    return p;
  size_t n = *cap ? *cap : first;
  while (n < need) {
    if (n > SIZE_MAX / 2)
      return NULL;
    n *= 2;
  }
  if (n > SIZE_MAX / elem)
    return NULL;
  char *q = realloc(p, n * elem);
  if (!q)
    return NULL;
  memset(q + *cap * elem, 0, (n - *cap) * elem);
  *cap = n;
  return q;
}

#endif
