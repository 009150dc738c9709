/* backend.h: the one contract between the loop and the ways it waits on the
 * kernel. A backend fills soon__backend_ops; it reports back only through
 * soon__io_ready and soon__op_complete (and claims the loop's thread with
 * soon__loop_bind). */
#ifndef SOON_BACKEND_H
#define SOON_BACKEND_H

#include "../core/grow.h"
#include "soon.h" /* for soon__op only */

/* Interest and readiness bits, the same values as SOON_READABLE etc. in
 * soon.h; SOON__IO_BADFD is reported alone when the fd is no longer open. */
enum {
  SOON__IO_READ = 1,
  SOON__IO_WRITE = 2,
  SOON__IO_HUP = 4,
  SOON__IO_BADFD = 8
};

typedef struct soon__backend_ops {
  const char *name;
  /* Create the backend's state for loop; 0 or a negative errno. */
  int (*init)(struct soon_loop *loop, void **state);
  void (*close)(void *state);
  /* Set fd's interest to events (nonzero). Called again with a new mask when
   * it changes; the fd may or may not be watched yet. 0 or a negative errno
   * (-EINVAL for an fd the backend cannot represent). */
  int (*watch)(void *state, int fd, int events);
  /* Forget fd. Must not fail: the fd may already be closed. */
  void (*unwatch)(void *state, int fd);
  /* Wait up to timeout_ms (-1 forever, 0 not at all), calling soon__io_ready
   * for each ready fd. Returns the number reported or a negative errno;
   * an interrupted wait (EINTR) is 0, not an error. */
  int (*wait)(void *state, int timeout_ms);
  /* Completion part, NULL in readiness-only backends. */
  /* Nonzero if submit runs ops of this code natively on this kernel. The
   * socket ops (RECV, SEND, ACCEPT, CONNECT) come all or none. */
  int (*can)(void *state, int code);
  /* Start op natively: 0, or -ENOTSUP for an op this kernel cannot run (the
   * caller then uses readiness or the thread pool), or another negative
   * errno. A started op is reported through soon__op_complete, from wait:
   * once, or for a multishot op (RECV, ACCEPT) until a report with
   * more == 0. */
  int (*submit)(void *state, soon__op *op);
  /* Stop a started op early. 0: it is stopped and its last report says
   * -ECANCELED; -EBUSY: it is running or done and reports as usual. Either
   * way its reports still arrive, so its memory stays the caller's until
   * the last one. */
  int (*cancel)(void *state, soon__op *op);
} soon__backend_ops;

/* The ops a completion backend may run (soon__op.code). */
enum {
  SOON__OP_READ = 1, /* fd, iov/niov, off (-1: the file position) */
  SOON__OP_WRITE,
  SOON__OP_OPENAT,    /* path, flags, mode; AT_FDCWD */
  SOON__OP_CLOSE,     /* fd */
  SOON__OP_STATX,     /* path or fd (path NULL), flags, statx */
  SOON__OP_FSYNC,     /* fd; flags 1: data only */
  SOON__OP_RENAMEAT,  /* path, path2 */
  SOON__OP_UNLINKAT,  /* path, flags (AT_REMOVEDIR) */
  SOON__OP_MKDIRAT,   /* path, mode */
  SOON__OP_LINKAT,    /* path, path2 */
  SOON__OP_SYMLINKAT, /* path (target), path2 (link) */
  SOON__OP_FTRUNCATE, /* fd, off (the length) */
  SOON__OP_RECV,      /* fd; multishot, each chunk in data (res bytes), 0 EOF */
  SOON__OP_SEND,   /* fd, iov/niov; MSG_NOSIGNAL, all of it unless an error */
  SOON__OP_ACCEPT, /* fd; multishot, res the new fd (non-blocking, cloexec) */
  SOON__OP_CONNECT /* fd, iov the sockaddr, niov its length */
};

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
