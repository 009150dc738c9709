/* heap.c: the loop's waiting timers, as groups of equal deadlines on a 4-ary
 * min-heap in one array; a slot holds a group's deadline and first timer. */
#include "core.h"

#include <stdlib.h>

/* Why an array and not links through the timers: a sift step compares
 * slots that sit side by side (four children in 96 bytes) and never touches
 * the timers, scattered in the caller's memory, except to note their new
 * index. Four children halve the depth of a binary heap.
 *
 * Why groups: timers started in the same millisecond with the same timeout
 * (a server's idle timeouts, restarted on every read) share a deadline. A
 * timer whose deadline is that of the timer started just before it joins
 * that timer's group, a ring in start order, in O(1); only a group's first
 * timer has a slot. Equal deadlines still fire in start order: a group only
 * grows while it holds the newest timer, so an older group of the same
 * deadline holds only older timers, and the slots order groups by when they
 * began (the loop's timer_seq then: no timer keeps a start number).
 *
 * Memory (issue 18): a timer keeps its deadline and its slot's index in one
 * union (t->at). A group's first timer needs only the index, its slot holds
 * the deadline; the others need only the deadline. The group ring and the
 * run phase's ready queue use the handle's open_node, free until
 * soon_close. */
struct soon__heap_slot {
  uint64_t due;      /* the group's */
  uint64_t seq;      /* when the group began */
  soon_timer *timer; /* the group's first timer */
};

static bool earlier(const soon__heap_slot *a, const soon__heap_slot *b) {
  return a->due != b->due ? a->due < b->due : a->seq < b->seq;
}

static void put(soon__heap_slot *h, unsigned i, soon__heap_slot s) {
  h[i] = s;
  s.timer->at.heap_index = i;
}

/* Whether t heads a group. Only a first timer sits in a slot, so a timer in
 * any other state fails the test whatever its at.due reads as an index. */
static bool heads(const soon_loop *loop, const soon_timer *t) {
  unsigned i = t->at.heap_index;
  return i < loop->timer_heap.count && loop->timer_heap.slots[i].timer == t;
}

uint64_t soon__heap_due(const soon_loop *loop, const soon_timer *t) {
  return heads(loop, t) ? loop->timer_heap.slots[t->at.heap_index].due
                        : t->at.due;
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

soon_timer *soon__heap_min(const soon_loop *loop, uint64_t *due) {
  if (!loop->timer_heap.count)
    return NULL;
  *due = loop->timer_heap.slots[0].due;
  return loop->timer_heap.slots[0].timer;
}

/* A new group grows the array by doubling: a start allocates only when the
 * count of groups passes a power of two, and a repeat's restart never does. */
int soon__heap_insert(soon_loop *loop, soon_timer *t, uint64_t due) {
  soon_timer *newest = loop->timer_heap.newest;
  if (newest && soon__heap_due(loop, newest) == due) {
    /* After the newest, which is its group's last: before the first. */
    t->at.due = due;
    soon__queue_insert_tail(newest->open_node.next, &t->open_node);
    loop->timer_heap.newest = t;
    return 0;
  }
  soon__heap_slot *h =
      soon__grow(loop->timer_heap.slots, &loop->timer_heap.cap,
                 (size_t)loop->timer_heap.count + 1, sizeof *h, 64);
  if (!h) {
    t->at.due = due;
    return -ENOMEM;
  }
  loop->timer_heap.slots = h;
  soon__queue_init(&t->open_node);
  sift_up(h, loop->timer_heap.count++,
          (soon__heap_slot){due, loop->timer_seq++, t});
  loop->timer_heap.newest = t;
  return 0;
}

void soon__heap_remove(soon_loop *loop, soon_timer *t) {
  soon__heap_slot *h = loop->timer_heap.slots;
  unsigned i = t->at.heap_index;
  if (loop->timer_heap.newest == t)
    loop->timer_heap.newest = NULL; /* the next start makes a new group */
  bool first = heads(loop, t);
  soon_queue *next = t->open_node.next;
  soon__queue_remove(&t->open_node);
  if (!first)
    return;             /* its at.due is its deadline */
  t->at.due = h[i].due; /* for soon_timer_get_due, and its callback */
  if (next != &t->open_node) {
    /* The next in start order heads the group: same deadline, and still
     * ahead of any newer group of that deadline, so the slot stays put. */
    h[i].timer = soon__container_of(next, soon_timer, open_node);
    h[i].timer->at.heap_index = i;
    return;
  }
  /* The group is gone: the last slot fills its hole, then moves up or down
   * to where it fits. */
  unsigned n = --loop->timer_heap.count;
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
  loop->timer_heap.newest = NULL;
  loop->timer_heap.cap = loop->timer_heap.count = 0;
}
