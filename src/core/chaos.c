/* chaos.c: chaos mode's seed and per-loop PRNG, and the shuffles the loop
 * applies to what it promises no order for (docs/guide/event-loop.md). */
#include "core.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* splitmix64: one add and a few mixes per draw, and every seed (even a
 * small one like 1) gives a well spread stream, so seeds 1, 2, 3 differ. */
uint64_t soon__chaos_next(soon_loop *loop) {
  uint64_t z = (loop->chaos_state += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

unsigned soon__chaos_below(soon_loop *loop, unsigned n) {
  return n ? (unsigned)(soon__chaos_next(loop) % n) : 0;
}

/* $SOON_CHAOS: 0 and *seed = 0 when unset, empty or "0"; "random" picks
 * one; else a decimal seed, or -EINVAL (a typo must not silently turn
 * chaos off). */
static int env_seed(uint64_t *seed) {
  const char *v = getenv("SOON_CHAOS");
  *seed = 0;
  if (!v || !*v)
    return 0;
  if (strcmp(v, "random") == 0) {
    /* Short enough to type back in, and never 0 (which is off). */
    uint64_t s = soon_hrtime() ^ ((uint64_t)getpid() << 32);
    *seed = ((s * 0x9e3779b97f4a7c15u) >> 33) | 1;
    return 0;
  }
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  if (errno || *end || v[0] == '-')
    return -EINVAL;
  *seed = n;
  return 0;
}

int soon__chaos_init(soon_loop *loop, uint64_t seed) {
  if (!seed) {
    int err = env_seed(&seed);
    if (err)
      return err;
  }
  loop->chaos_seed = seed;
  loop->chaos_state = seed;
  if (seed) {
    /* Once per process, so that a failing test's output names its seed. */
    static atomic_flag told = ATOMIC_FLAG_INIT;
    if (!atomic_flag_test_and_set(&told))
      fprintf(stderr,
              "soon: chaos seed %" PRIu64 " (SOON_CHAOS=%" PRIu64
              " replays it)\n",
              seed, seed);
  }
  return 0;
}

uint64_t soon_loop_chaos_seed(const soon_loop *loop) {
  return soon__loop_usable(loop) ? loop->chaos_seed : 0;
}

/* Draw elements from q at random into a new queue: O(n^2) walks, but chaos
 * mode is for tests, and it needs no memory (so it cannot fail). */
void soon__chaos_shuffle(soon_loop *loop, soon_queue *q) {
  unsigned n = 0;
  for (soon_queue *e = q->next; e != q; e = e->next)
    n++;
  soon_queue out;
  soon__queue_init(&out);
  for (; n > 0; n--) {
    soon_queue *e = q->next;
    for (unsigned k = soon__chaos_below(loop, n); k > 0; k--)
      e = e->next;
    soon__queue_remove(e);
    soon__queue_insert_tail(&out, e);
  }
  soon__queue_move(&out, q);
}

/* What the poll phase runs right after the wait: one call here, from
 * soon_run, keeps the dispatch functions free of checks. Each queue holds
 * one entry per handle (a watcher's fd, a stream's feed), so a shuffle
 * reorders handles, never one handle's own callbacks. */
void soon__chaos_after_wait(soon_loop *loop) {
  soon__chaos_shuffle(loop, &loop->feed_queue);
  soon__chaos_shuffle(loop, &loop->ready_io);
  soon__op_chaos_shuffle(loop);
}
