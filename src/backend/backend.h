/* backend.h: the one contract between the loop and the ways it waits on the
 * kernel. A backend fills soon__backend_ops; it reports back only through
 * soon__io_ready and soon__op_complete (and claims the loop's thread with
 * soon__loop_bind). */
#ifndef SOON_BACKEND_H
#define SOON_BACKEND_H

#include "../core/grow.h"
#include "soon/op.h"

struct soon_loop; /* the loop is opaque here: backends call it back only */

/* Interest and readiness bits, the same values as SOON_READABLE etc. in
 * soon.h; SOON__IO_BADFD is reported alone when the fd is no longer open. */
enum {
  SOON__IO_READ = 1,
  SOON__IO_WRITE = 2,
  SOON__IO_HUP = 4,
  SOON__IO_BADFD = 8
};

/* The loop's fd table (loop->watchers, src/core/io.c) says which watcher has
 * each fd and what it wants; the backends never read it (they see only this
 * header), and keep per fd only what their kernel interface needs beside it:
 * - select: the two fd_sets select(2) takes, and a mask per fd for the
 *   interest those sets cannot hold (HUP) and for the fds to probe after an
 *   EBADF; fixed arrays of FD_SETSIZE.
 * - poll: the dense pollfd array poll(2) takes, and an fd -> slot map so
 *   that a change or a removal is O(1), not a search.
 * - epoll: nothing: the kernel holds the interest, each registration carries
 *   its own mask for wait to filter by, and old picks ADD or MOD.
 * - uring: per fd the one-shot poll in flight (its mask and a generation, to
 *   drop reports of polls removed since) and the interest to re-arm with
 *   when it fires, from inside wait. */
typedef struct soon__backend_ops {
  const char *name;
  /* Create the backend's state for loop; 0 or a negative errno. */
  int (*init)(struct soon_loop *loop, void **state);
  void (*close)(void *state);
  /* Set fd's interest to events (nonzero), from old: the interest the loop
   * last set for fd, 0 if none (then the fd is not watched here). Called
   * only when it changes. 0 or a negative errno (-EINVAL for an fd the
   * backend cannot represent); on an error the loop keeps old. */
  int (*watch)(void *state, int fd, int old, int events);
  /* Forget a watched fd. Must not fail: the fd may already be closed. */
  void (*unwatch)(void *state, int fd);
  /* Wait up to timeout_ms (-1 forever, 0 not at all), calling soon__io_ready
   * for each ready fd. Returns the number reported or a negative errno;
   * an interrupted wait (EINTR) is 0, not an error. */
  int (*wait)(void *state, int timeout_ms);
  /* Completion part, NULL in readiness-only backends. */
  /* Nonzero if submit runs ops of this code natively on this kernel. The
   * socket ops (RECV, SEND, ACCEPT, CONNECT) come all or none. */
  int (*can)(void *state, int code);
  /* Start op natively, with the arguments in the arm that op->code names
   * (soon/op.h): 0, or -ENOTSUP for an op this kernel cannot run (the
   * caller then uses readiness or the thread pool), or another negative
   * errno. A started op is reported through soon__op_complete, from wait:
   * once, or for a multishot op (RECV, ACCEPT) until a report with
   * more == 0. */
  int (*submit)(void *state, soon__op *op);
  /* Stop a started op early (called only while its last report is still
   * to come: op.c answers for the others). 0: it is stopped and its last
   * report says -ECANCELED; -EBUSY: it is running or done and reports as
   * usual. Either way its reports still arrive, so its memory stays the
   * caller's until the last one. */
  int (*cancel)(void *state, soon__op *op);
} soon__backend_ops;

extern const soon__backend_ops soon__backend_select;
extern const soon__backend_ops soon__backend_poll;
extern const soon__backend_ops soon__backend_epoll;
#ifdef SOON_HAVE_URING
extern const soon__backend_ops soon__backend_uring;
#endif

/* How a backend hands readiness to the loop: queues the fd's watcher for
 * dispatch after wait returns. Cheap; never calls user code. */
void soon__io_ready(struct soon_loop *loop, int fd, int events);
/* How a completion backend hands a result of op to the loop: queued, op's
 * done callback runs after wait returns with res, data and more set. data
 * must stay valid until then. -ENOSPC when the loop's queue is full: keep
 * the result for the next wait. */
int soon__op_complete(struct soon_loop *loop, soon__op *op, int64_t res,
                      void *data, unsigned more);
/* How a backend that binds itself to a thread (uring) claims the loop for
 * the calling thread: 0, or -EEXIST if another thread owns it (the loop
 * belongs to the first thread that runs it). */
int soon__loop_bind(struct soon_loop *loop);

#endif
