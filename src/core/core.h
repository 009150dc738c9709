/* core.h: what the core's files share with each other and with the layers
 * above. Intrusive queue, handle lifecycle, timers heap and the loop's internal
 * hooks. */
#ifndef SOON_CORE_H
#define SOON_CORE_H

#include "../backend/backend.h"
#include "grow.h"
#include "soon.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

/* A small helper on the path of every event, which the compiler must
 * inline whatever its budget says (the Ir counts: docs/performance.md). */
#define SOON__INLINE static inline __attribute__((always_inline))

#define soon__container_of(ptr, type, member)                                  \
  ((type *)((char *)(ptr)-offsetof(type, member)))

/* ------------------------------------------------------------ queue */

static inline void soon__queue_init(soon_queue *q) { q->next = q->prev = q; }
static inline bool soon__queue_empty(const soon_queue *q) {
  return q->next == q;
}
static inline void soon__queue_insert_tail(soon_queue *h, soon_queue *q) {
  q->next = h;
  q->prev = h->prev;
  h->prev->next = q;
  h->prev = q;
}
static inline void soon__queue_remove(soon_queue *q) {
  q->prev->next = q->next;
  q->next->prev = q->prev;
  q->next = q->prev = q;
}
/* Move every node of h to the (empty) head n, leaving h empty. */
static inline void soon__queue_move(soon_queue *h, soon_queue *n) {
  if (soon__queue_empty(h)) {
    soon__queue_init(n);
    return;
  }
  n->next = h->next;
  n->prev = h->prev;
  n->next->prev = n;
  n->prev->next = n;
  soon__queue_init(h);
}

/* ------------------------------------------------------------ buffers */

/* Buffer lists go to the kernel as they are (readv, sendmsg, io_uring). */
_Static_assert(sizeof(soon_buf) == sizeof(struct iovec) &&
                   offsetof(soon_buf, base) ==
                       offsetof(struct iovec, iov_base) &&
                   offsetof(soon_buf, len) == offsetof(struct iovec, iov_len),
               "soon_buf must match struct iovec");

/* A request's copy of the caller's buffer list: its own inline array of
 * ninline when they fit, else a malloc. The copy, or NULL without memory;
 * give it back with soon__bufs_free. *size (unless NULL): the bytes, summed
 * in the same pass (a stream write needs both, 20 Ir a round trip). */
static inline soon_buf *soon__bufs_copy(soon_buf *inline_bufs, unsigned ninline,
                                        const soon_buf *bufs, unsigned nbufs,
                                        size_t *size) {
  soon_buf *b =
      nbufs <= ninline ? inline_bufs : malloc((size_t)nbufs * sizeof *b);
  size_t n = 0;
  if (b) /* usually one or two: a loop, not a memcpy call */
    for (unsigned i = 0; i < nbufs; i++) {
      b[i] = bufs[i];
      n += bufs[i].len;
    }
  if (size)
    *size = n;
  return b;
}

static inline void soon__bufs_free(soon_buf *copy,
                                   const soon_buf *inline_bufs) {
  if (copy != inline_bufs)
    free(copy);
}

static inline size_t soon__bufs_size(const soon_buf *bufs, unsigned nbufs) {
  size_t n = 0;
  for (unsigned i = 0; i < nbufs; i++)
    n += bufs[i].len;
  return n;
}

/* Drop the first done bytes of a buffer list after a partial write: whole
 * buffers are skipped, the next one is trimmed in place. */
static inline void soon__bufs_advance(soon_buf **bufs, unsigned *nbufs,
                                      size_t done) {
  while (*nbufs && done >= (*bufs)->len) {
    done -= (*bufs)->len;
    ++*bufs;
    --*nbufs;
  }
  if (*nbufs) {
    (*bufs)->base += done;
    (*bufs)->len -= done;
  }
}

/* ------------------------------------------------------------ checks */

/* An invariant that a bug would break silently (a request count gone wrong
 * hangs the loop or ends it early): checked where the tests are built
 * (CMake's SOON_ASSERTS), compiled out elsewhere. */
#ifdef SOON_DEBUG
#define SOON_ASSERT(x)                                                         \
  ((x) ? (void)0 : soon__assert_fail(#x, __FILE__, __LINE__))
_Noreturn void soon__assert_fail(const char *what, const char *file, int line);
#else
#define SOON_ASSERT(x) ((void)0)
#endif

/* ------------------------------------------------------------ loop */

/* Whether loop can take work: initialised, and not closed since. A failed
 * soon_loop_init_ex and soon_loop_close leave backend NULL, so every entry
 * point that takes a loop answers -EINVAL instead of reaching a backend or
 * a pool that is not there. */
static inline bool soon__loop_usable(const soon_loop *loop) {
  return loop && loop->backend && loop->backend_state;
}

/* Start running the loop's callbacks (soon_run, soon_loop_advance): 0, or
 * -EEXIST from a thread that does not own the loop, or -EBUSY if already
 * running them. The caller clears loop->running when done. */
int soon__loop_enter(soon_loop *loop);

/* ------------------------------------------------------------ handles */

/* A handle's flags (16 bits). */
enum {
  SOON__ACTIVE = 1u << 0,
  SOON__REF = 1u << 1,
  SOON__CLOSING = 1u << 2,
  SOON__CLOSED = 1u << 3,
  SOON__INTERNAL = 1u << 4,   /* the loop's own: soon_loop_close ignores it */
  SOON__HELD = 1u << 5,       /* closed, but the kernel still has its memory */
  SOON__TIMER_DUE = 1u << 6,  /* a timer collected as due, its callback owed */
  SOON__IO_CLAIMED = 1u << 7, /* an io holding its fd's slot while stopped */
};

/* What a handle type does when closed: close stops it at once (from
 * soon_close); finish, if any, runs in the close phase just before the close
 * callback, for callbacks the closing owes (failed writes...). Each handle
 * type's module has one, so the core never needs to know the types above it. */
typedef struct soon__handle_ops {
  void (*close)(soon_handle *h);
  void (*finish)(soon_handle *h);
} soon__handle_ops;

/* A user handle counts for soon_loop_close (-EBUSY) from here until its
 * close callback has run. */
void soon__handle_init(soon_loop *loop, soon_handle *h, soon_handle_type type,
                       const soon__handle_ops *ops);
/* Take back soon__handle_init of a handle whose init failed after it (never
 * started, never closed): it no longer counts. */
void soon__handle_uninit(soon_handle *h);
/* A handle owned by the library: not listed (soon_loop_close ignores it),
 * never referenced, never closed through soon_close. */
void soon__handle_init_internal(soon_loop *loop, soon_handle *h,
                                soon_handle_type type,
                                const soon__handle_ops *ops);
void soon__handle_start(soon_handle *h);
void soon__handle_stop(soon_handle *h);
static inline bool soon__handle_active(const soon_handle *h) {
  return (h->flags & SOON__ACTIVE) != 0;
}
/* soon_is_closing for the library's own checks: inline, and h not NULL. */
static inline bool soon__closing(const soon_handle *h) {
  return (h->flags & (SOON__CLOSING | SOON__CLOSED)) != 0;
}
void soon__run_closing(soon_loop *loop);
/* Called from a close op: the handle's close callback waits until
 * soon__handle_release, because the kernel still owns some of its memory
 * (ops in the ring). The loop stays alive meanwhile. */
void soon__handle_hold(soon_handle *h);
void soon__handle_release(soon_handle *h);

/* ------------------------------------------------------------ phases */

void soon__run_timers(soon_loop *loop);
/* Milliseconds until the next timer, -1 if none (or a manual clock). */
int soon__next_timeout(const soon_loop *loop);

void soon__run_idle(soon_loop *loop);
void soon__run_prepare(soon_loop *loop);
void soon__run_check(soon_loop *loop);

/* Run the callbacks of the watchers the wait made ready: below, inline,
 * as soon_run is its one caller and runs it each iteration. */
static inline void soon__io_dispatch(soon_loop *loop);
/* An io watcher owned by the library (not a user handle). */
void soon__io_init_internal(soon_loop *loop, soon_io *io, int fd);
void soon__io_free_table(soon_loop *loop);
/* Hold fd's slot in the loop's fd table for io, watched or not (a stream,
 * from open to close): soon_io on it is -EEXIST. 0, -EEXIST or -ENOMEM. */
int soon__io_claim(soon_io *io, int fd);
/* Stop io and give its fd's slot back; io->fd stays set. */
void soon__io_release(soon_io *io);
/* Make room for fd in the loop's fd table, and check that no watcher has
 * it: 0, -EEXIST or -ENOMEM. A claim of fd that follows cannot fail then. */
int soon__io_reserve(soon_loop *loop, int fd);

/* Whether the loop's backend runs ops of this code natively. */
int soon__op_can(soon_loop *loop, int code);
/* Run op natively if the backend can (0), else -ENOTSUP: use the pool. */
int soon__op_submit(soon_loop *loop, soon__op *op);
/* Stop a started op: 0 if its last report will say -ECANCELED, else -EBUSY
 * (see backend.h). */
int soon__op_cancel(soon_loop *loop, soon__op *op);
void soon__op_dispatch(soon_loop *loop);
void soon__op_free(soon_loop *loop);

void soon__async_close(soon_async *a);
/* An async handle owned by the library: not listed, never keeps the loop
 * alive. Close it with soon__async_close. */
int soon__async_init_internal(soon_loop *loop, soon_async *a, soon_async_cb cb);
/* Wake a loop blocked in its backend; safe from any thread. */
void soon__loop_wake(soon_loop *loop);
/* Lazily create the eventfd behind soon__loop_wake. */
int soon__wake_init(soon_loop *loop);
void soon__wake_close(soon_loop *loop);

/* ------------------------------------------------------------ requests */

/* What every request run on the pool starts with: soon_cancel finds its
 * work request through this without knowing the request's type. */
typedef struct soon__pool_req {
  SOON_POOL_REQ_FIELDS
} soon__pool_req;

/* soon_cancel by request type (threadpool.c): the pool's part for one that
 * waits in a lane, fs.c's for an fs request, which may run in the backend. */
int soon__work_cancel(soon_work_req *w);
/* soon_work for the library's own requests (fs, dns): inner, the pool does
 * not trace their after callback, which traces the request's own. */
int soon__work_submit(soon_loop *loop, soon_work_req *w, soon_work_cb work_cb,
                      soon_after_work_cb after_cb, soon_work_kind kind,
                      bool inner);
int soon__fs_cancel(soon_fs_req *req);

/* Fill a request's header. A request counted by another (a DNS lookup, by
 * its work request) needs only this. */
static inline void soon__req_init(soon_req *req, soon_loop *loop,
                                  soon_req_type type) {
  req->loop = loop;
  req->type = type;
}

/* A request starts: its header filled, and the loop kept alive until the
 * one soon__req_done that every start has, just before its callback. */
static inline void soon__req_start(soon_req *req, soon_loop *loop,
                                   soon_req_type type) {
  soon__req_init(req, loop, type);
  loop->active_reqs++;
}

static inline void soon__req_done(soon_req *req) {
  SOON_ASSERT(req->loop->active_reqs > 0);
  req->loop->active_reqs--;
}

/* Queue p->cb for the next pending phase (which makes the wait non-blocking).
 * Once: a p already queued stays where it is. */
static inline void soon__pending_push(soon_loop *loop, soon__deferred *p) {
  if (soon__queue_empty(&p->queue))
    soon__queue_insert_tail(&loop->pending_queue, &p->queue);
}

/* Tell p->cb in the next poll phase, before what its wait brings, and keep
 * that wait from blocking: for completions already at hand (bytes a stream
 * took in while stopped), told where readiness would tell them, so a check
 * handle still runs right after them. */
static inline void soon__feed_push(soon_loop *loop, soon__deferred *p) {
  if (soon__queue_empty(&p->queue))
    soon__queue_insert_tail(&loop->feed_queue, &p->queue);
}

/* ------------------------------------------------------------ heap */

/* The waiting timers, earliest (then first started) first. Insert fails
 * only with -ENOMEM; remove leaves the deadline in t->at.due. */
int soon__heap_insert(soon_loop *loop, soon_timer *t, uint64_t due);
void soon__heap_remove(soon_loop *loop, soon_timer *t);
/* The first timer to fire, and its deadline in *due; NULL if none waits. */
soon_timer *soon__heap_min(const soon_loop *loop, uint64_t *due);
/* A timer's deadline, in whatever state (src/core/heap.c: t->at). */
uint64_t soon__heap_due(const soon_loop *loop, const soon_timer *t);
/* Whether any timer waits: the loop's inline test before it asks the heap. */
static inline bool soon__timers_waiting(const soon_loop *loop) {
  return loop->timer_heap.count != 0;
}
void soon__heap_free(soon_loop *loop);

/* ------------------------------------------------------------ clock */

/* The monotonic clock in ms, for the loop's cached time: inline, since
 * soon_run reads it every iteration and a call costs more than the vDSO's
 * clock_gettime behind it. */
static inline uint64_t soon__clock_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ------------------------------------------------------------ observe */

/* loop->observe: who watches callbacks (src/core/metrics.c). */
enum { SOON__OBSERVE_TRACE = 1, SOON__OBSERVE_METRICS = 2 };

/* What a told callback is, for the trace: a soon_handle_type, or a
 * soon_req_type plus SOON__KIND_REQ; SOON__KIND_NONE for the library's
 * own (a stream's fd watcher), whose user callbacks report themselves. */
enum { SOON__KIND_REQ = 0x100, SOON__KIND_NONE = 0x200 };
/* The status of a callback that gets none. */
#define SOON__NO_STATUS INT32_MIN

/* A byte count or error as the trace's int status, clamped. */
static inline int soon__status_of(int64_t n) {
  return n > INT32_MAX ? INT32_MAX : n < INT32_MIN + 1 ? INT32_MIN + 1 : (int)n;
}

/* The phase a callback runs in, where its call site knows it; the others
 * (net, fs: pending, poll or closing) read it from loop->phase, which
 * soon_run sets only at those three phases. */
#define SOON__PHASE_LOOP (-1)

/* Report a callback about to run; soon__observe_end once it returned. What
 * begin measures waits in a per-thread record (a loop runs on one thread),
 * not on the caller's stack: the call sites keep nothing alive across the
 * call for it, so their code without observers is what it was. */
void soon__observe_begin(soon_loop *loop, int phase, int kind, const void *ptr,
                         int status);
void soon__observe_end(void);

/* Run `call`, a user's callback, with trace and metrics watching if the
 * loop has either: when it has neither, one predictable branch is all it
 * costs. loop is read before the call, which may free what holds it. */
#define SOON__TELL(loop, phase, kind, ptr, status, call)                       \
  do {                                                                         \
    soon_loop *tell_loop_ = (loop);                                            \
    if (__builtin_expect(tell_loop_->observe != 0, 0)) {                       \
      soon__observe_begin(tell_loop_, (phase), (kind), (ptr), (status));       \
      call;                                                                    \
      soon__observe_end();                                                     \
    } else {                                                                   \
      call;                                                                    \
    }                                                                          \
  } while (0)

/* Metrics of the loop's timers and pool, recorded when SOON_LOOP_METRICS. */
void soon__metrics_lag(soon_loop *loop, uint64_t due_ms);
void soon__metrics_pool_wait(soon_loop *loop, uint64_t ns);
/* Set up trace and metrics from the options and $SOON_TRACE; free them. */
int soon__observe_init(soon_loop *loop);
void soon__observe_free(soon_loop *loop);

/* ------------------------------------------------------------ chaos */

/* Chaos mode (src/core/chaos.c) varies only what soon promises no order
 * for. Off, each place costs this one predictable branch. */
#define SOON__CHAOS(loop) __builtin_expect((loop)->chaos_seed != 0, 0)
/* The seed from the options, else $SOON_CHAOS: 0 or -EINVAL. */
int soon__chaos_init(soon_loop *loop, uint64_t seed);
/* The loop's PRNG: a draw, and a draw in 0..n-1 (0 for n 0). */
uint64_t soon__chaos_next(soon_loop *loop);
unsigned soon__chaos_below(soon_loop *loop, unsigned n);
/* Put q's elements in a random order. */
void soon__chaos_shuffle(soon_loop *loop, soon_queue *q);
/* Shuffle what the wait brought, before the poll phase runs any of it. */
void soon__chaos_after_wait(soon_loop *loop);
/* The wait's op reports in a random order, each op's own kept in order
 * (op.c, which owns them). */
void soon__op_chaos_shuffle(soon_loop *loop);

/* ------------------------------------------------------------ io dispatch */

/* A watcher whose fd was closed behind its back is stopped before its
 * callback gets -EBADF: level-triggered backends would report it forever.
 * A stream's or the loop's own watcher (SOON__INTERNAL) is told as
 * SOON__KIND_NONE: their user callbacks, if any, report themselves. */
static inline void soon__io_dispatch(soon_loop *loop) {
  while (!soon__queue_empty(&loop->ready_io)) {
    soon_io *io = soon__container_of(loop->ready_io.next, soon_io, ready_queue);
    int events = io->revents;
    io->revents = 0;
    soon__queue_remove(&io->ready_queue);
    /* An expression, not a variable: only an observed call computes it. */
#define SOON__IO_KIND ((io->flags & SOON__INTERNAL) ? SOON__KIND_NONE : SOON_IO)
    if (__builtin_expect(events & SOON__IO_BADFD, 0)) {
      soon_io_stop(io);
      SOON__TELL(loop, SOON_PHASE_POLL, SOON__IO_KIND, io, -EBADF,
                 io->cb(io, -EBADF, 0));
    } else {
      SOON__TELL(loop, SOON_PHASE_POLL, SOON__IO_KIND, io, 0,
                 io->cb(io, 0, events));
    }
#undef SOON__IO_KIND
  }
}

/* ------------------------------------------------------------ errors */

/* The SOON_EAI_* code for getaddrinfo's result r (0 stays 0); EAI_SYSTEM's
 * reason is read from errno, so call it on the thread that got r. In
 * error.c, beside the table soon_strerror reads. */
int soon__eai_error(int r);

/* ------------------------------------------------------------ env */

/* $SOON_THREADPOOL_SIZE: 0 and *size = fallback if unset, else 0 and the
 * value if it is an integer in 1..1024, else -EINVAL. */
int soon__env_pool_size(unsigned fallback, unsigned *size);

#endif
