/* clock.c: the monotonic clock behind soon_hrtime (the loop's cached time
 * reads it inline: soon__clock_ms, core.h). CLOCK_MONOTONIC never jumps
 * with wall-clock changes, which timers rely on. */
#include "core.h"

#include <time.h>

uint64_t soon_hrtime(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
