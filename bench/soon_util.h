/* soon_util.h: how the soon programs get their loop: on $SOON_BACKEND, and
 * n/a (exit 77) when this build or kernel lacks that backend. */
#ifndef BENCH_SOON_UTIL_H
#define BENCH_SOON_UTIL_H

#include "common.h"
#include <soon.h>

/* Initialise loop on the backend the driver asked for; *impl gets
 * "soon-<backend>". A loop that would silently run on another backend than
 * the one asked for is a skip too: its numbers would be mislabelled. */
static inline void soon_bench_loop(soon_loop *loop, char *impl, size_t n) {
  const char *want = getenv("SOON_BACKEND");
  /* $SOON_BENCH_METRICS=1 measures what SOON_LOOP_METRICS costs. */
  const char *metrics = getenv("SOON_BENCH_METRICS");
  soon_loop_options opts = {
      .flags = metrics && *metrics == '1' ? SOON_LOOP_METRICS : 0};
  int r = soon_loop_init_ex(loop, &opts);
  if (r == -ENOSYS || r == -EINVAL || r == -EPERM || r == -EOPNOTSUPP)
    bench_skip("backend %s unavailable: %s", want ? want : "(default)",
               soon_err_name(r));
  if (r < 0)
    bench_fail("soon_loop_init: %s", soon_strerror(r));
  const char *got = soon_backend_name(loop);
  if (want && *want && strcmp(want, got) != 0)
    bench_skip("asked for backend %s, the loop runs on %s", want, got);
  if (impl)
    snprintf(impl, n, "soon-%s", got);
}

#endif
