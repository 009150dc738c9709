/* heap.c: the loop's timer heap, a 4-ary min-heap in one array of {deadline,
 * start order, timer} slots; each waiting timer knows its slot's index. */
#include "core.h"

#include <stdlib.h>

/* Why an array and not links through the timers: a sift step compares
 * slots that sit side by side (four children in 96 bytes) and never touches
 * the timers, scattered in the caller's memory, except to note their new
 * index. Four children halve the depth of a binary heap for the same
 * number of cache lines read per level. */
struct soon__heap_slot {
  uint64_t due;
  uint64_t start_id; /* equal deadlines: start order */
  soon_timer *timer;
};

static bool earlier(const soon__heap_slot *a, const soon__heap_slot *b) {
  return a->due != b->due ? a->due < b->due : a->start_id < b->start_id;
}

static void put(soon__heap_slot *h, unsigned i, soon__heap_slot s) {
  h[i] = s;
  s.timer->node.heap_index = i;
}

/* Put s at hole i or above it, moving later parents down. */
static void sift_up(soon__heap_slot *h, unsigned i, soon__heap_slot s) {
  while (i > 0 && earlier(&s, &h[(i - 1) / 4])) {
    put(h, i, h[(i - 1) / 4]);
    i = (i - 1) / 4;
  }
  put(h, i, s);
}

/* Put s at hole i or below it, moving earlier children up. */
static void sift_down(soon__heap_slot *h, unsigned n, unsigned i,
                      soon__heap_slot s) {
  for (;;) {
    unsigned first = 4 * i + 1, end = first + 4 < n ? first + 4 : n, min = i;
    const soon__heap_slot *best = &s;
    for (unsigned c = first; c < end; c++)
      if (earlier(&h[c], best))
        best = &h[min = c];
    if (min == i)
      break;
    put(h, i, h[min]);
    i = min;
  }
  put(h, i, s);
}

soon_timer *soon__heap_min(const soon_loop *loop) {
  return loop->timer_heap.count ? loop->timer_heap.slots[0].timer : NULL;
}

/* Grows by doubling: a start allocates only when the count of waiting
 * timers passes a power of two, and a repeat's restart never does. */
int soon__heap_insert(soon_loop *loop, soon_timer *t) {
  if (loop->timer_heap.count == loop->timer_heap.cap) {
    unsigned cap = loop->timer_heap.cap ? loop->timer_heap.cap * 2 : 64;
    soon__heap_slot *h = realloc(loop->timer_heap.slots, cap * sizeof *h);
    if (!h)
      return -ENOMEM;
    loop->timer_heap.slots = h;
    loop->timer_heap.cap = cap;
  }
  sift_up(loop->timer_heap.slots, loop->timer_heap.count++,
          (soon__heap_slot){t->due, t->start_id, t});
  return 0;
}

/* The last slot fills t's hole, then moves up or down to where it fits. */
void soon__heap_remove(soon_loop *loop, soon_timer *t) {
  soon__heap_slot *h = loop->timer_heap.slots;
  unsigned i = t->node.heap_index, n = --loop->timer_heap.count;
  if (i == n)
    return;
  soon__heap_slot last = h[n];
  if (i > 0 && earlier(&last, &h[(i - 1) / 4]))
    sift_up(h, i, last);
  else
    sift_down(h, n, i, last);
}

void soon__heap_free(soon_loop *loop) {
  free(loop->timer_heap.slots);
  loop->timer_heap.slots = NULL;
  loop->timer_heap.cap = loop->timer_heap.count = 0;
}
