/* soon.h: the whole public API of soon, an asynchronous callback framework.
 * Every type the caller embeds and every function it calls is declared here.
 *
 * It uses POSIX types (struct addrinfo, sockaddr_storage, ssize_t): compile
 * with -std=gnu11, or -std=c11 with _POSIX_C_SOURCE=200809L or _GNU_SOURCE. */
#ifndef SOON_H
#define SOON_H

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SOON_BUILDING) && defined(__GNUC__)
#define SOON_EXTERN __attribute__((visibility("default")))
#else
#define SOON_EXTERN
#endif

/* ------------------------------------------------------------------ errors */

/* Errors are negative errno values. SOON_EOF marks the end of a stream; it is
 * outside the errno range so it cannot be mistaken for one.
 *
 * A NULL pointer argument gets -EINVAL from every call that returns an
 * error, and nothing is done; where NULL means something instead, the call
 * says so. The calls with no error to give take NULL quietly: the void ones
 * do nothing, the queries answer 0 (soon_backend_name: NULL). */
#define SOON_EOF (-4095)

/* A human sentence for err ("No such file or directory"). Never NULL. */
SOON_EXTERN const char *soon_strerror(int err);
/* The symbolic name of err ("ENOENT"). Never NULL. */
SOON_EXTERN const char *soon_err_name(int err);

/* ------------------------------------------------------------------ basics */

typedef struct soon_loop soon_loop;
typedef struct soon_handle soon_handle;
typedef struct soon_timer soon_timer;
typedef struct soon_idle soon_idle;
typedef struct soon_prepare soon_prepare;
typedef struct soon_check soon_check;
typedef struct soon_io soon_io;
typedef struct soon_async soon_async;

typedef struct soon_buf {
  char *base;
  size_t len;
} soon_buf;

/* The private fields of the structs below, one SOON_*_PRIVATE_FIELDS macro
 * per type: the caller owns the memory, but reads and writes only the fields
 * this file names. */
#include "soon/private.h"

typedef enum soon_handle_type {
  SOON_UNKNOWN_HANDLE = 0,
  SOON_TIMER,
  SOON_IDLE,
  SOON_PREPARE,
  SOON_CHECK,
  SOON_IO,
  SOON_ASYNC,
  SOON_TCP,
  SOON_PIPE,
  SOON_UDP,
  SOON_SIGNAL,
  SOON_PROCESS,
  SOON_TTY,
  SOON_HANDLE_TYPE_MAX
} soon_handle_type;

typedef void (*soon_close_cb)(soon_handle *handle);

/* The fields every handle starts with, so a handle of any type can be passed
 * as a soon_handle *. `data` is the caller's, `loop` is read-only. */
#define SOON_HANDLE_FIELDS                                                     \
  void *data;                                                                  \
  soon_loop *loop;                                                             \
  SOON_HANDLE_PRIVATE_FIELDS

struct soon_handle {
  SOON_HANDLE_FIELDS
};

/* ------------------------------------------------------------------ loop */

typedef enum soon_run_mode {
  /* Run until no referenced active handle or request remains, or soon_stop. */
  SOON_RUN_DEFAULT = 0,
  /* One iteration; wait for I/O if there is nothing to do yet. */
  SOON_RUN_ONCE,
  /* One iteration; never wait. */
  SOON_RUN_NOWAIT
} soon_run_mode;

/* Loop flags for soon_loop_options.flags. */
enum {
  /* Time stands still until soon_loop_advance(): timers are driven by the
   * caller, so timer logic can be tested without sleeping. */
  SOON_LOOP_MANUAL_CLOCK = 1u << 0,
  /* Measure time: idle in the backend, in callbacks, timer lag, pool queue
   * wait (soon_metrics_get). Two clock reads per callback; off by default. */
  SOON_LOOP_METRICS = 1u << 1
};

typedef struct soon_loop_options {
  /* "select", "poll", "epoll" or "uring"; NULL means $SOON_BACKEND, else
   * the best that initialises (uring, else epoll; docs/uring.md). */
  const char *backend;
  unsigned flags;
  /* A pool made with soon_pool_new to share; NULL: the loop makes its own
   * on first use, sized by $SOON_THREADPOOL_SIZE (else 4). */
  struct soon_pool *pool;
  /* Chaos mode's seed; 0 means $SOON_CHAOS (a number, or "random": init
   * answers -EINVAL for anything else), and off if that is unset or 0.
   * See soon_loop_chaos_seed. */
  uint64_t chaos_seed;
} soon_loop_options;

/* Initialise a loop with default options. Returns 0 or a negative errno:
 * -EINVAL for an unknown backend name (argument or $SOON_BACKEND), -ENOSYS for
 * a backend this build or kernel does not have. */
SOON_EXTERN int soon_loop_init(soon_loop *loop);
/* Same, with options (opts may be NULL). */
SOON_EXTERN int soon_loop_init_ex(soon_loop *loop,
                                  const soon_loop_options *opts);
/* Chaos mode's seed, 0 when off. With a seed (soon_loop_options.chaos_seed
 * or $SOON_CHAOS), the loop varies what it promises no order for: callbacks
 * that became ready in the same iteration (fds, completions, the pending
 * queue, thread-pool results) run in a random order, pool results come
 * back up to 3 iterations late, reads and writes on every stream move a
 * random prefix, reads see spurious EAGAIN (a read callback with 0), and
 * some iterations wake with no event. A documented
 * order is never broken. The same seed and inputs give the same callback
 * sequence; the first chaos loop of a process prints its seed on stderr.
 * docs/guide/event-loop.md. */
SOON_EXTERN uint64_t soon_loop_chaos_seed(const soon_loop *loop);
/* Release the loop's resources. -EBUSY while any handle is not fully closed
 * (its close callback not yet run) or any request is in flight (its
 * callback not yet run); the loop is then left usable. Once closed, and
 * after a failed init, every call that takes the loop answers -EINVAL until
 * it is initialised again: soon_stop and soon_update_time do nothing,
 * soon_loop_alive says 0 and soon_backend_name NULL. */
SOON_EXTERN int soon_loop_close(soon_loop *loop);

/* Run the loop; see docs/guide/event-loop.md for the phases. Returns
 * soon_loop_alive() (nonzero if referenced handles or requests remain), or
 * a negative errno if the backend's wait failed. -EINVAL for bad args.
 * A loop belongs to the first thread that runs it, on every backend: from
 * any other thread, -EEXIST. From inside one of the loop's callbacks (a
 * nested run, under soon_run or soon_loop_advance), -EBUSY. Either way
 * nothing is run. A signal that interrupts the wait does not end it early.
 * On a manual clock, timers not yet due cannot fire without
 * soon_loop_advance: with nothing else alive, soon_run returns at once, in
 * every mode, nonzero (those timers are alive). */
SOON_EXTERN int soon_run(soon_loop *loop, soon_run_mode mode);
/* Make soon_run return after the current iteration. */
SOON_EXTERN void soon_stop(soon_loop *loop);
/* Nonzero while referenced active handles, requests or closing handles remain.
 */
SOON_EXTERN int soon_loop_alive(const soon_loop *loop);

/* The loop's cached time in milliseconds, taken at the start of the iteration
 * (or set by soon_loop_advance under a manual clock). Arbitrary origin. */
SOON_EXTERN uint64_t soon_now(const soon_loop *loop);
/* Refresh the cached time from the monotonic clock (no-op, manual clock). */
SOON_EXTERN void soon_update_time(soon_loop *loop);
/* Monotonic time in nanoseconds, arbitrary origin, not cached. */
SOON_EXTERN uint64_t soon_hrtime(void);
/* Move a manual clock forward by ms, firing due timers in deadline order with
 * soon_now() equal to each deadline in turn. -EINVAL on a real clock;
 * -EEXIST and -EBUSY as for soon_run (it runs callbacks too). A
 * timer that restarts itself with a zero timeout from its callback makes
 * this run forever, as it would keep a real loop busy. */
SOON_EXTERN int soon_loop_advance(soon_loop *loop, uint64_t ms);
/* "select", "poll", "epoll" or "uring": the backend the loop runs on; NULL
 * for a closed loop, or one whose init failed. */
SOON_EXTERN const char *soon_backend_name(const soon_loop *loop);

/* ------------------------------------------------------------------ trace */

/* The phases of one iteration (docs/guide/event-loop.md), in order. */
typedef enum soon_phase {
  SOON_PHASE_TIMERS = 0,
  SOON_PHASE_PENDING,
  SOON_PHASE_IDLE,
  SOON_PHASE_PREPARE,
  SOON_PHASE_POLL,
  SOON_PHASE_CHECK,
  SOON_PHASE_CLOSING
} soon_phase;

/* One callback soon is about to run. A handle's callback has handle_type
 * set and req_type SOON_UNKNOWN_REQ (0); a request's, the other way round
 * (a soon_req_type, declared below with the requests). */
typedef struct soon_trace_event {
  uint64_t iteration;           /* soon_metrics.iterations so far */
  soon_phase phase;             /* the phase running it */
  soon_handle_type handle_type; /* or SOON_UNKNOWN_HANDLE for a request */
  int req_type;                 /* a soon_req_type, or 0 for a handle */
  const void *ptr;              /* the handle or request */
  int has_status;               /* whether the callback gets a status */
  int status;                   /* that status (0 when has_status is 0) */
} soon_trace_event;

/* Called just before each callback soon runs for the user, on the loop's
 * thread; it must not run the loop. */
typedef void (*soon_trace_cb)(const soon_trace_event *ev, void *arg);

/* Report each callback the loop runs to fn (with arg); fn NULL turns it
 * off. Replaces what $SOON_TRACE=1 (read by soon_loop_init) set up: one
 * line per callback on stderr. Every callback soon runs for the user is
 * reported, once: timers, idle, prepare, check, io, async, close, pool
 * after-work, fs, stream and udp alloc, read, write, connect, shutdown and
 * connection callbacks, udp sends and receives, signals, process exits,
 * getaddrinfo and getnameinfo. 0, -EINVAL, or -ENOMEM (the first call
 * allocates the loop's record). */
SOON_EXTERN int soon_loop_set_trace(soon_loop *loop, soon_trace_cb fn,
                                    void *arg);
/* "timers", "pending", "idle", "prepare", "poll", "check", "closing". */
SOON_EXTERN const char *soon_phase_name(soon_phase phase);
/* "timer", "tcp"..., "unknown" for a type out of range. */
SOON_EXTERN const char *soon_handle_type_name(soon_handle_type type);
/* "work", "fs", "write"..., "unknown" for a type out of range. */
SOON_EXTERN const char *soon_req_type_name(int type);

/* ------------------------------------------------------------------ metrics
 */

/* Percentiles are upper bounds of power-of-two buckets (at most twice the
 * true value, never above max). */
typedef struct soon_metrics {
  /* Always counted. */
  uint64_t iterations; /* loop iterations run */
  uint64_t events;     /* ready fds and completions the backend reported */
  /* With SOON_LOOP_METRICS, else 0. */
  uint64_t idle_ns;             /* waiting in the backend */
  uint64_t callbacks;           /* callbacks run (those the trace sees) */
  uint64_t callback_ns;         /* time in them */
  uint64_t longest_callback_ns; /* the longest one, and its type: */
  soon_handle_type longest_handle_type;
  int longest_req_type;
  uint64_t timers;                             /* timer callbacks run */
  uint64_t lag_p50_ns, lag_p99_ns, lag_max_ns; /* past their deadline */
  uint64_t pool_jobs;                          /* work started by a worker */
  uint64_t pool_wait_p50_ns, pool_wait_p99_ns; /* queued until started */
} soon_metrics;

/* Fill m with the loop's metrics since init. 0, or -EINVAL. */
SOON_EXTERN int soon_metrics_get(const soon_loop *loop, soon_metrics *m);
/* Nanoseconds the loop has waited in its backend (SOON_LOOP_METRICS; else
 * 0). Unlike the rest, safe to call from any thread, as libuv's
 * uv_metrics_idle_time. */
SOON_EXTERN uint64_t soon_metrics_idle_time(const soon_loop *loop);

/* ------------------------------------------------------------------ handles */

/* Close any handle. It is stopped at once; close_cb (may be NULL) runs in the
 * next close phase of the loop, even when closed from inside its own callback.
 * Only then may its memory be reused. -EINVAL if already closing. */
SOON_EXTERN int soon_close(soon_handle *handle, soon_close_cb close_cb);
/* A referenced active handle keeps soon_run(DEFAULT) going; handles start
 * referenced. Both are idempotent. */
SOON_EXTERN void soon_ref(soon_handle *handle);
SOON_EXTERN void soon_unref(soon_handle *handle);
SOON_EXTERN int soon_has_ref(const soon_handle *handle);
SOON_EXTERN int soon_is_active(const soon_handle *handle);
SOON_EXTERN int soon_is_closing(const soon_handle *handle);

/* ------------------------------------------------------------------ timers */

typedef void (*soon_timer_cb)(soon_timer *timer);

struct soon_timer {
  SOON_HANDLE_FIELDS
  SOON_TIMER_PRIVATE_FIELDS
};

SOON_EXTERN int soon_timer_init(soon_loop *loop, soon_timer *timer);
/* Fire cb after timeout ms, then every repeat ms if repeat is nonzero. A
 * started timer is restarted. -EINVAL if cb is NULL or the timer is closing;
 * -ENOMEM if the loop's timer heap could not grow (the timer is stopped). */
SOON_EXTERN int soon_timer_start(soon_timer *timer, soon_timer_cb cb,
                                 uint64_t timeout, uint64_t repeat);
SOON_EXTERN int soon_timer_stop(soon_timer *timer);
/* Restart a repeating timer with its repeat as timeout; a stopped
 * non-repeating one stays stopped. -EINVAL if it was never started. */
SOON_EXTERN int soon_timer_again(soon_timer *timer);
/* Takes effect at the next (re)scheduling, as in libuv. */
SOON_EXTERN void soon_timer_set_repeat(soon_timer *timer, uint64_t repeat);
SOON_EXTERN uint64_t soon_timer_get_repeat(const soon_timer *timer);
/* Loop time at which the timer fires next (valid while active). */
SOON_EXTERN uint64_t soon_timer_get_due(const soon_timer *timer);
/* Milliseconds until it fires, 0 if due or inactive. */
SOON_EXTERN uint64_t soon_timer_get_due_in(const soon_timer *timer);

/* ------------------------------------------------- idle, prepare, check */

/* Idle handles run every iteration and keep the backend from blocking;
 * prepare handles run just before the wait, check handles just after.
 * Starting an active one again only replaces its callback. */
typedef void (*soon_idle_cb)(soon_idle *idle);
typedef void (*soon_prepare_cb)(soon_prepare *prepare);
typedef void (*soon_check_cb)(soon_check *check);

struct soon_idle {
  SOON_HANDLE_FIELDS
  SOON_HOOK_PRIVATE_FIELDS(soon_idle_cb)
};
struct soon_prepare {
  SOON_HANDLE_FIELDS
  SOON_HOOK_PRIVATE_FIELDS(soon_prepare_cb)
};
struct soon_check {
  SOON_HANDLE_FIELDS
  SOON_HOOK_PRIVATE_FIELDS(soon_check_cb)
};

SOON_EXTERN int soon_idle_init(soon_loop *loop, soon_idle *idle);
SOON_EXTERN int soon_idle_start(soon_idle *idle, soon_idle_cb cb);
SOON_EXTERN int soon_idle_stop(soon_idle *idle);
SOON_EXTERN int soon_prepare_init(soon_loop *loop, soon_prepare *prepare);
SOON_EXTERN int soon_prepare_start(soon_prepare *prepare, soon_prepare_cb cb);
SOON_EXTERN int soon_prepare_stop(soon_prepare *prepare);
SOON_EXTERN int soon_check_init(soon_loop *loop, soon_check *check);
SOON_EXTERN int soon_check_start(soon_check *check, soon_check_cb cb);
SOON_EXTERN int soon_check_stop(soon_check *check);

/* ------------------------------------------------------------------ fd watcher
 */

/* Event bits for soon_io. */
enum {
  SOON_READABLE = 1,
  SOON_WRITABLE = 2,
  /* The peer hung up (socket shut down, pipe writer gone). On select it is
   * reported only while SOON_READABLE is watched too. */
  SOON_DISCONNECT = 4
};

/* status is 0, or a negative errno (-EBADF: the fd was closed behind the
 * watcher's back, seen by select and poll only: epoll and uring keep a
 * closed fd's file registered and say nothing, so always stop a watcher
 * before closing its fd); events holds the bits that fired, among those
 * watched. An error condition on the fd fires the watched READABLE/WRITABLE
 * bits so the next read or write reports it. */
typedef void (*soon_io_cb)(soon_io *io, int status, int events);

struct soon_io {
  SOON_HANDLE_FIELDS
  SOON_IO_PRIVATE_FIELDS
};

/* Watch fd (a socket, pipe, tty, eventfd ...; not a regular file) for
 * readiness. The fd stays the caller's: soon never changes or closes it. At
 * most one active watcher per fd and loop, and none on a stream's fd (tcp,
 * pipe, tty), which the stream holds from open to close: soon_io_start
 * gives -EEXIST otherwise. */
SOON_EXTERN int soon_io_init(soon_loop *loop, soon_io *io, int fd);
/* Start, or change the event mask of, a watcher. -EINVAL for a NULL cb, no
 * known event bit, or (select) an fd at or over FD_SETSIZE; -EPERM for an fd
 * the backend cannot watch (epoll and regular files). */
SOON_EXTERN int soon_io_start(soon_io *io, int events, soon_io_cb cb);
SOON_EXTERN int soon_io_stop(soon_io *io);

/* ------------------------------------------------------------------ async */

typedef void (*soon_async_cb)(soon_async *async);

struct soon_async {
  SOON_HANDLE_FIELDS
  SOON_ASYNC_PRIVATE_FIELDS
};

/* An async handle is active from init until closed. */
SOON_EXTERN int soon_async_init(soon_loop *loop, soon_async *async,
                                soon_async_cb cb);
/* Wake the loop and have cb called on its thread. Safe from any thread and
 * from a signal handler. Sends before the callback runs coalesce into one
 * call; a send while the callback runs causes another. Never lost. 0 (or
 * -EINVAL for NULL), even on a closing or closed handle, whose cb is then
 * never called: a send may race with soon_close from another thread.
 * soon_close waits for the sends under way when it is called; any that may
 * start later must be over before the handle's memory is reused. */
SOON_EXTERN int soon_async_send(soon_async *async);

/* ------------------------------------------------------------------ requests
 */

typedef enum soon_req_type {
  SOON_UNKNOWN_REQ = 0,
  SOON_WORK,
  SOON_FS,
  SOON_WRITE,
  SOON_CONNECT,
  SOON_SHUTDOWN,
  SOON_UDP_SEND,
  SOON_GETADDRINFO,
  SOON_GETNAMEINFO,
  SOON_REQ_TYPE_MAX
} soon_req_type;

/* The fields every request starts with. Only `data` is the caller's. */
#define SOON_REQ_FIELDS                                                        \
  void *data;                                                                  \
  soon_loop *loop;                                                             \
  soon_req_type type;

typedef struct soon_req {
  SOON_REQ_FIELDS
} soon_req;

/* Cancel a request that has not started (or, run in io_uring, is still
 * waiting in the kernel): its callback then gets -ECANCELED (for fs
 * requests, in req->result). -EBUSY once it is running or finished (it
 * completes normally), -EINVAL for a request that cannot be cancelled. */
SOON_EXTERN int soon_cancel(soon_req *req);

/* ------------------------------------------------------------------ thread
 * pool */

/* A set of worker threads that run blocking work off the loop thread. A loop
 * makes its own on first use; several loops may share one the caller made
 * (soon_loop_options.pool), which must then outlive them. */
typedef struct soon_pool soon_pool;

typedef struct soon_pool_options {
  /* Worker threads, 1..1024. 0 means $SOON_THREADPOOL_SIZE, else 4. */
  unsigned size;
} soon_pool_options;

/* Start a pool (opts may be NULL: the default size). -EINVAL for a size (or
 * $SOON_THREADPOOL_SIZE) outside 1..1024, or a failure to start threads as
 * a negative errno (-EAGAIN). */
SOON_EXTERN int soon_pool_new(soon_pool **pool, const soon_pool_options *opts);
/* Join the workers and free the pool. -EBUSY while work is queued or
 * running on it. */
SOON_EXTERN int soon_pool_free(soon_pool *pool);
SOON_EXTERN unsigned soon_pool_size(const soon_pool *pool);

typedef struct soon_work_req soon_work_req;
typedef void (*soon_work_cb)(soon_work_req *req);
/* status is 0, or -ECANCELED when soon_cancel won. */
typedef void (*soon_after_work_cb)(soon_work_req *req, int status);

/* How long a job is expected to take. Slow jobs (DNS, whole files) may use
 * at most half the workers, so fast ones are never starved by them. */
typedef enum soon_work_kind {
  SOON_WORK_FAST = 0,
  SOON_WORK_SLOW
} soon_work_kind;

struct soon_work_req {
  SOON_REQ_FIELDS
  SOON_WORK_PRIVATE_FIELDS
};

/* Run work_cb on a worker, then after_work_cb on the loop thread (always
 * from soon_run, even when cancelled). -EINVAL for a NULL argument; the
 * pool's start-up error if the loop's own pool could not be made. */
SOON_EXTERN int soon_work(soon_loop *loop, soon_work_req *req,
                          soon_work_cb work_cb,
                          soon_after_work_cb after_work_cb);
/* The same, marking the job slow (see soon_work_kind). */
SOON_EXTERN int soon_work_slow(soon_loop *loop, soon_work_req *req,
                               soon_work_cb work_cb,
                               soon_after_work_cb after_work_cb);

/* The fields every request run on the pool starts with. */
#define SOON_POOL_REQ_FIELDS                                                   \
  SOON_REQ_FIELDS                                                              \
  SOON_POOL_REQ_PRIVATE_FIELDS

/* ------------------------------------------------------------------ files */

typedef enum soon_fs_type {
  SOON_FS_UNKNOWN = 0,
  SOON_FS_OPEN,
  SOON_FS_CLOSE,
  SOON_FS_READ,
  SOON_FS_WRITE,
  SOON_FS_SENDFILE,
  SOON_FS_STAT,
  SOON_FS_LSTAT,
  SOON_FS_FSTAT,
  SOON_FS_STATFS,
  SOON_FS_FSYNC,
  SOON_FS_FDATASYNC,
  SOON_FS_FTRUNCATE,
  SOON_FS_UNLINK,
  SOON_FS_MKDIR,
  SOON_FS_MKDTEMP,
  SOON_FS_RMDIR,
  SOON_FS_RENAME,
  SOON_FS_LINK,
  SOON_FS_SYMLINK,
  SOON_FS_READLINK,
  SOON_FS_REALPATH,
  SOON_FS_CHMOD,
  SOON_FS_FCHMOD,
  SOON_FS_CHOWN,
  SOON_FS_FCHOWN,
  SOON_FS_UTIME,
  SOON_FS_FUTIME,
  SOON_FS_ACCESS,
  SOON_FS_COPYFILE,
  SOON_FS_SCANDIR,
  SOON_FS_OPENDIR,
  SOON_FS_READDIR,
  SOON_FS_CLOSEDIR,
  SOON_FS_READ_FILE
} soon_fs_type;

typedef struct soon_timespec {
  int64_t sec;
  int64_t nsec;
} soon_timespec;

typedef struct soon_stat {
  uint64_t dev, ino, mode, nlink, uid, gid, rdev, size, blksize, blocks;
  soon_timespec atim, mtim, ctim;
} soon_stat;

typedef struct soon_statfs {
  uint64_t type, bsize, blocks, bfree, bavail, files, ffree;
} soon_statfs;

typedef enum soon_dirent_type {
  SOON_DIRENT_UNKNOWN = 0,
  SOON_DIRENT_FILE,
  SOON_DIRENT_DIR,
  SOON_DIRENT_LINK,
  SOON_DIRENT_FIFO,
  SOON_DIRENT_SOCKET,
  SOON_DIRENT_CHAR,
  SOON_DIRENT_BLOCK
} soon_dirent_type;

typedef struct soon_dirent {
  const char *name;
  soon_dirent_type type;
} soon_dirent;

/* A directory stream for soon_fs_opendir/readdir/closedir. The caller points
 * dirents at an array of nentries; each readdir fills up to that many. */
typedef struct soon_dir {
  soon_dirent *dirents;
  size_t nentries;
  void *priv; /* private */
} soon_dir;

typedef struct soon_fs_req soon_fs_req;
typedef void (*soon_fs_cb)(soon_fs_req *req);

/* soon_fs_copyfile flags. */
enum { SOON_FS_COPYFILE_EXCL = 1 };

struct soon_fs_req {
  SOON_POOL_REQ_FIELDS
  soon_fs_type fs_type;
  soon_fs_cb cb;
  /* >= 0 on success (an fd, a byte count, an entry count, 0), else a
   * negative errno (-ECANCELED if cancelled). */
  int64_t result;
  /* readlink, realpath: the string; read_file: the bytes (NUL-terminated);
   * statfs: a soon_statfs; opendir (and readdir, closedir): the soon_dir.
   * Freed by cleanup, except the soon_dir: soon_fs_closedir frees that. */
  void *ptr;
  /* The path (a copy), or for mkdtemp the directory made. */
  const char *path;
  soon_stat statbuf; /* stat, lstat, fstat */
  SOON_FS_REQ_PRIVATE_FIELDS
};

/* Every soon_fs_* call takes a caller-owned req and a callback (never NULL:
 * -EINVAL), returns 0 and calls cb exactly once with req->result set, or
 * returns a negative errno and never calls it. Paths are copied; fds
 * are opened close-on-exec. Each call resets the request but for `data`,
 * so clean up before reusing one. After the callback, soon_fs_req_cleanup
 * frees what the request allocated (idempotent). */
SOON_EXTERN void soon_fs_req_cleanup(soon_fs_req *req);

SOON_EXTERN int soon_fs_open(soon_loop *loop, soon_fs_req *req,
                             const char *path, int flags, int mode,
                             soon_fs_cb cb);
SOON_EXTERN int soon_fs_close(soon_loop *loop, soon_fs_req *req, int file,
                              soon_fs_cb cb);
/* offset < 0 reads (writes) at the file's current position and moves it.
 * A read's result is what one read(2) gives (0 at the end); a write goes on
 * after a short write, and reports the bytes written if an error stops it
 * after some. */
SOON_EXTERN int soon_fs_read(soon_loop *loop, soon_fs_req *req, int file,
                             const soon_buf bufs[], unsigned nbufs,
                             int64_t offset, soon_fs_cb cb);
SOON_EXTERN int soon_fs_write(soon_loop *loop, soon_fs_req *req, int file,
                              const soon_buf bufs[], unsigned nbufs,
                              int64_t offset, soon_fs_cb cb);
SOON_EXTERN int soon_fs_sendfile(soon_loop *loop, soon_fs_req *req, int out_fd,
                                 int in_fd, int64_t in_offset, uint64_t length,
                                 soon_fs_cb cb);
SOON_EXTERN int soon_fs_stat(soon_loop *loop, soon_fs_req *req,
                             const char *path, soon_fs_cb cb);
SOON_EXTERN int soon_fs_lstat(soon_loop *loop, soon_fs_req *req,
                              const char *path, soon_fs_cb cb);
SOON_EXTERN int soon_fs_fstat(soon_loop *loop, soon_fs_req *req, int file,
                              soon_fs_cb cb);
SOON_EXTERN int soon_fs_statfs(soon_loop *loop, soon_fs_req *req,
                               const char *path, soon_fs_cb cb);
SOON_EXTERN int soon_fs_fsync(soon_loop *loop, soon_fs_req *req, int file,
                              soon_fs_cb cb);
SOON_EXTERN int soon_fs_fdatasync(soon_loop *loop, soon_fs_req *req, int file,
                                  soon_fs_cb cb);
SOON_EXTERN int soon_fs_ftruncate(soon_loop *loop, soon_fs_req *req, int file,
                                  int64_t length, soon_fs_cb cb);
SOON_EXTERN int soon_fs_unlink(soon_loop *loop, soon_fs_req *req,
                               const char *path, soon_fs_cb cb);
SOON_EXTERN int soon_fs_mkdir(soon_loop *loop, soon_fs_req *req,
                              const char *path, int mode, soon_fs_cb cb);
/* tpl ends in "XXXXXX"; req->path is the directory made. */
SOON_EXTERN int soon_fs_mkdtemp(soon_loop *loop, soon_fs_req *req,
                                const char *tpl, soon_fs_cb cb);
SOON_EXTERN int soon_fs_rmdir(soon_loop *loop, soon_fs_req *req,
                              const char *path, soon_fs_cb cb);
SOON_EXTERN int soon_fs_rename(soon_loop *loop, soon_fs_req *req,
                               const char *path, const char *new_path,
                               soon_fs_cb cb);
SOON_EXTERN int soon_fs_link(soon_loop *loop, soon_fs_req *req,
                             const char *path, const char *new_path,
                             soon_fs_cb cb);
SOON_EXTERN int soon_fs_symlink(soon_loop *loop, soon_fs_req *req,
                                const char *target, const char *link_path,
                                soon_fs_cb cb);
/* result is 0 and req->ptr the link's contents (the target as stored, not
 * resolved) as a NUL-terminated string, freed by soon_fs_req_cleanup; on an
 * error ptr is NULL. */
SOON_EXTERN int soon_fs_readlink(soon_loop *loop, soon_fs_req *req,
                                 const char *path, soon_fs_cb cb);
SOON_EXTERN int soon_fs_realpath(soon_loop *loop, soon_fs_req *req,
                                 const char *path, soon_fs_cb cb);
SOON_EXTERN int soon_fs_chmod(soon_loop *loop, soon_fs_req *req,
                              const char *path, int mode, soon_fs_cb cb);
SOON_EXTERN int soon_fs_fchmod(soon_loop *loop, soon_fs_req *req, int file,
                               int mode, soon_fs_cb cb);
SOON_EXTERN int soon_fs_chown(soon_loop *loop, soon_fs_req *req,
                              const char *path, uint32_t uid, uint32_t gid,
                              soon_fs_cb cb);
SOON_EXTERN int soon_fs_fchown(soon_loop *loop, soon_fs_req *req, int file,
                               uint32_t uid, uint32_t gid, soon_fs_cb cb);
/* Times in seconds since the epoch, with fractions; -EINVAL for NaN or an
 * infinite time. */
SOON_EXTERN int soon_fs_utime(soon_loop *loop, soon_fs_req *req,
                              const char *path, double atime, double mtime,
                              soon_fs_cb cb);
SOON_EXTERN int soon_fs_futime(soon_loop *loop, soon_fs_req *req, int file,
                               double atime, double mtime, soon_fs_cb cb);
/* mode as for access(2): F_OK, or R_OK | W_OK | X_OK. */
SOON_EXTERN int soon_fs_access(soon_loop *loop, soon_fs_req *req,
                               const char *path, int mode, soon_fs_cb cb);
/* Copy a regular file (mode bits too); SOON_FS_COPYFILE_EXCL fails with
 * -EEXIST if new_path exists. A failed copy leaves no partial new_path. */
SOON_EXTERN int soon_fs_copyfile(soon_loop *loop, soon_fs_req *req,
                                 const char *path, const char *new_path,
                                 int flags, soon_fs_cb cb);
/* result is the number of entries (without "." and ".."), sorted by name;
 * walk them with soon_fs_scandir_next. */
SOON_EXTERN int soon_fs_scandir(soon_loop *loop, soon_fs_req *req,
                                const char *path, soon_fs_cb cb);
/* The next entry of a finished scandir: 0, or SOON_EOF after the last; the
 * scandir's error if it failed; -EINVAL for a request that is not a
 * finished (and not cleaned up) scandir. */
SOON_EXTERN int soon_fs_scandir_next(soon_fs_req *req, soon_dirent *ent);
/* req->ptr is a soon_dir; set its dirents and nentries before readdir. It
 * belongs to the stream: soon_fs_closedir frees it, cleanup of this request
 * does not. */
SOON_EXTERN int soon_fs_opendir(soon_loop *loop, soon_fs_req *req,
                                const char *path, soon_fs_cb cb);
/* result is the number of entries filled (0 at the end). The names stay
 * valid until the next readdir or closedir of dir. -EINVAL from the call if
 * dir->dirents is NULL or dir->nentries is 0. */
SOON_EXTERN int soon_fs_readdir(soon_loop *loop, soon_fs_req *req,
                                soon_dir *dir, soon_fs_cb cb);
SOON_EXTERN int soon_fs_closedir(soon_loop *loop, soon_fs_req *req,
                                 soon_dir *dir, soon_fs_cb cb);
/* The whole file into req->ptr (NUL-terminated, result = its length), on
 * the pool's slow lane. -EFBIG in result if it is longer than max_size. */
SOON_EXTERN int soon_fs_read_file(soon_loop *loop, soon_fs_req *req,
                                  const char *path, size_t max_size,
                                  soon_fs_cb cb);

/* ------------------------------------------------------------------ streams */

/* A stream is a tcp, pipe or tty handle seen through what they share:
 * reads, queued writes, shutdown, listen and accept. */
typedef struct soon_stream soon_stream;
typedef struct soon_write_req soon_write_req;
typedef struct soon_connect_req soon_connect_req;
typedef struct soon_shutdown_req soon_shutdown_req;

/* Give the reader a buffer; suggested_size is a hint. For streams and UDP
 * alike, no buffer (base NULL or len 0) makes the read (recv) callback get
 * -ENOBUFS with nothing read: reading stays started, the bytes (the
 * datagram) wait, and alloc_cb is asked again in a later iteration. */
typedef void (*soon_alloc_cb)(soon_handle *handle, size_t suggested_size,
                              soon_buf *buf);
/* nread > 0: bytes in buf; SOON_EOF: the peer finished sending; < 0: an
 * error (-ECONNRESET ...); 0: nothing read, buf is only handed back. The
 * buffer is the caller's again in every case. */
typedef void (*soon_read_cb)(soon_stream *stream, ssize_t nread,
                             const soon_buf *buf);
typedef void (*soon_write_cb)(soon_write_req *req, int status);
typedef void (*soon_connect_cb)(soon_connect_req *req, int status);
typedef void (*soon_shutdown_cb)(soon_shutdown_req *req, int status);
/* A connection is waiting: call soon_accept (from here or later). */
typedef void (*soon_connection_cb)(soon_stream *server, int status);

#define SOON_STREAM_FIELDS                                                     \
  SOON_HANDLE_FIELDS                                                           \
  SOON_STREAM_PRIVATE_FIELDS

struct soon_stream {
  SOON_STREAM_FIELDS
};

struct soon_write_req {
  SOON_REQ_FIELDS
  soon_write_cb cb;
  soon_stream *handle;
  SOON_WRITE_PRIVATE_FIELDS
};

struct soon_connect_req {
  SOON_REQ_FIELDS
  soon_connect_cb cb;
  soon_stream *handle;
  SOON_CONNECT_PRIVATE_FIELDS
};

struct soon_shutdown_req {
  SOON_REQ_FIELDS
  soon_shutdown_cb cb;
  soon_stream *handle;
  SOON_SHUTDOWN_PRIVATE_FIELDS
};

/* -EINVAL for NULL callbacks, -EALREADY if already reading, -ENOTCONN on a
 * stream with no fd. */
SOON_EXTERN int soon_read_start(soon_stream *stream, soon_alloc_cb alloc_cb,
                                soon_read_cb read_cb);
SOON_EXTERN int soon_read_stop(soon_stream *stream);
/* Queue bufs for writing, after earlier writes; cb gets 0 once all bytes are
 * written, or an error (-EPIPE after the peer closed, -ECANCELED if the
 * stream is closed first, then before the close callback). The bufs array
 * is copied, not the bytes: they must stay valid until cb. Never raises
 * SIGPIPE. */
SOON_EXTERN int soon_write(soon_write_req *req, soon_stream *stream,
                           const soon_buf bufs[], unsigned nbufs,
                           soon_write_cb cb);
/* Queue len bytes of file, from offset, for writing after earlier writes,
 * by sendfile(2): the bytes go from the page cache to the stream with no
 * copy through the caller. The file must stay open until cb, which is told
 * as for soon_write, or -ENODATA if the file ends before offset + len (it
 * shrank), or sendfile's error (-EINVAL: a file it cannot read from). The
 * file is read on the loop's thread, as nginx does without aio: a file not
 * in the page cache makes the loop wait for the disk. -EINVAL for a
 * negative file or offset. */
SOON_EXTERN int soon_write_file(soon_write_req *req, soon_stream *stream,
                                int file, int64_t offset, size_t len,
                                soon_write_cb cb);
/* Write what the kernel takes now, without queueing: the byte count, or
 * -EAGAIN if nothing could be written or writes are queued. */
SOON_EXTERN ssize_t soon_try_write(soon_stream *stream, const soon_buf bufs[],
                                   unsigned nbufs);
/* Half-close (shutdown(SHUT_WR)) once the queued writes are written. cb
 * gets -ECANCELED if the stream is closed before that, before the close
 * callback. */
SOON_EXTERN int soon_shutdown(soon_shutdown_req *req, soon_stream *stream,
                              soon_shutdown_cb cb);
/* Bytes queued and not yet written: the measure for backpressure. */
SOON_EXTERN size_t soon_stream_write_queue_size(const soon_stream *stream);
/* The stream's fd in *fd: 0, -EBADF if it has none (not open yet, or
 * closing), -EINVAL for a NULL argument. The fd stays the stream's. */
SOON_EXTERN int soon_stream_fileno(const soon_stream *stream, int *fd);
/* Listen on a bound tcp or pipe; cb for each incoming connection. */
SOON_EXTERN int soon_listen(soon_stream *stream, int backlog,
                            soon_connection_cb cb);
/* Take the waiting connection into client (an initialised tcp or pipe of the
 * server's kind). -EAGAIN if none is waiting; -ENOMEM if the loop's fd
 * table could not grow for it (the connection waits for a retry). */
SOON_EXTERN int soon_accept(soon_stream *server, soon_stream *client);

/* ------------------------------------------------------------------ tcp */

typedef struct soon_tcp {
  SOON_STREAM_FIELDS
} soon_tcp;

/* soon_tcp_bind flags. SO_REUSEADDR is always set. */
enum {
  SOON_TCP_IPV6ONLY = 1,
  /* SO_REUSEPORT: several sockets (one loop per thread) share the port. */
  SOON_TCP_REUSEPORT = 2
};

SOON_EXTERN int soon_tcp_init(soon_loop *loop, soon_tcp *tcp);
/* Adopt an existing socket fd (made non-blocking); soon closes it on close.
 * -EEXIST if a soon_io or another stream of the loop has fd; -ENOMEM if the
 * loop's fd table could not grow for it. */
SOON_EXTERN int soon_tcp_open(soon_tcp *tcp, int fd);
SOON_EXTERN int soon_tcp_bind(soon_tcp *tcp, const struct sockaddr *addr,
                              unsigned flags);
/* -ECONNREFUSED and friends arrive in cb, never from the call. Closing the
 * handle before cb has run makes it -ECANCELED (even for a connection made
 * but not yet told), before the close callback; so for soon_pipe_connect. */
SOON_EXTERN int soon_tcp_connect(soon_connect_req *req, soon_tcp *tcp,
                                 const struct sockaddr *addr,
                                 soon_connect_cb cb);
SOON_EXTERN int soon_tcp_set_nodelay(soon_tcp *tcp, int enable);
/* delay: seconds of idleness before the first probe (enable only). */
SOON_EXTERN int soon_tcp_set_keepalive(soon_tcp *tcp, int enable,
                                       unsigned delay);
/* *namelen is the size of name on entry, the address length on return. */
SOON_EXTERN int soon_tcp_getsockname(const soon_tcp *tcp, struct sockaddr *name,
                                     int *namelen);
SOON_EXTERN int soon_tcp_getpeername(const soon_tcp *tcp, struct sockaddr *name,
                                     int *namelen);

/* Parse a numeric address: -EINVAL if ip does not parse. */
SOON_EXTERN int soon_ip4_addr(const char *ip, int port,
                              struct sockaddr_in *addr);
SOON_EXTERN int soon_ip6_addr(const char *ip, int port,
                              struct sockaddr_in6 *addr);
/* The numeric host of addr into dst: -EINVAL, -ENOSPC. */
SOON_EXTERN int soon_ip_name(const struct sockaddr *addr, char *dst,
                             size_t size);

/* ------------------------------------------------------------------ pipes */

/* Unix domain stream sockets, and any other stream fd (stdin, a pipe(2)
 * end) opened as a soon stream. */
typedef struct soon_pipe {
  SOON_STREAM_FIELDS
} soon_pipe;

SOON_EXTERN int soon_pipe_init(soon_loop *loop, soon_pipe *pipe);
/* Adopt fd (a socket, a pipe end, a tty ...), made non-blocking. Closing
 * the handle closes fd, except for fds 0, 1 and 2. -EEXIST and -ENOMEM as
 * for soon_tcp_open. */
SOON_EXTERN int soon_pipe_open(soon_pipe *pipe, int fd);
/* name is a path, or on Linux an abstract name when name[0] == '\0' (then
 * len counts its bytes; else len may be 0 for strlen). -ENAMETOOLONG. */
SOON_EXTERN int soon_pipe_bind(soon_pipe *pipe, const char *name, size_t len);
SOON_EXTERN int soon_pipe_connect(soon_connect_req *req, soon_pipe *pipe,
                                  const char *name, size_t len,
                                  soon_connect_cb cb);
/* The bound (peer) name into buf; *len is buf's size, then the name's. */
SOON_EXTERN int soon_pipe_getsockname(const soon_pipe *pipe, char *buf,
                                      size_t *len);
SOON_EXTERN int soon_pipe_getpeername(const soon_pipe *pipe, char *buf,
                                      size_t *len);

/* ------------------------------------------------------------------ udp */

typedef struct soon_udp soon_udp;
typedef struct soon_udp_send_req soon_udp_send_req;

typedef void (*soon_udp_send_cb)(soon_udp_send_req *req, int status);
/* nread >= 0 bytes from addr (a zero-length datagram has addr set);
 * nread == 0 with addr NULL: nothing read, buf handed back; < 0 an error,
 * addr NULL (-ENOBUFS: alloc_cb gave no buffer, see soon_alloc_cb).
 * flags has SOON_UDP_PARTIAL if the datagram was cut to fit buf. */
typedef void (*soon_udp_recv_cb)(soon_udp *udp, ssize_t nread,
                                 const soon_buf *buf,
                                 const struct sockaddr *addr, unsigned flags);

enum {
  SOON_UDP_IPV6ONLY = 1,
  SOON_UDP_REUSEADDR = 4,
  SOON_UDP_PARTIAL = 8 /* recv flag */
};

typedef enum { SOON_LEAVE_GROUP = 0, SOON_JOIN_GROUP } soon_membership;

struct soon_udp {
  SOON_HANDLE_FIELDS
  SOON_UDP_PRIVATE_FIELDS
};

struct soon_udp_send_req {
  SOON_REQ_FIELDS
  soon_udp_send_cb cb;
  soon_udp *handle;
  SOON_UDP_SEND_PRIVATE_FIELDS
};

SOON_EXTERN int soon_udp_init(soon_loop *loop, soon_udp *udp);
SOON_EXTERN int soon_udp_open(soon_udp *udp, int fd);
SOON_EXTERN int soon_udp_bind(soon_udp *udp, const struct sockaddr *addr,
                              unsigned flags);
/* addr NULL sends on a connected socket; bufs may be NULL when nbufs is 0
 * (an empty datagram). The bytes stay the caller's until cb. A send still
 * queued when the handle is closed gets -ECANCELED, before the close
 * callback. */
SOON_EXTERN int soon_udp_send(soon_udp_send_req *req, soon_udp *udp,
                              const soon_buf bufs[], unsigned nbufs,
                              const struct sockaddr *addr, soon_udp_send_cb cb);
/* The byte count, or -EAGAIN if it would block or sends are queued. addr
 * and bufs as for soon_udp_send. */
SOON_EXTERN ssize_t soon_udp_try_send(soon_udp *udp, const soon_buf bufs[],
                                      unsigned nbufs,
                                      const struct sockaddr *addr);
/* -EBADF before the socket exists (bind, send or open first), -EALREADY if
 * already receiving. */
SOON_EXTERN int soon_udp_recv_start(soon_udp *udp, soon_alloc_cb alloc_cb,
                                    soon_udp_recv_cb recv_cb);
SOON_EXTERN int soon_udp_recv_stop(soon_udp *udp);
/* The setters need the socket (-EBADF before it exists); ttl is 1..255,
 * the multicast ttl 0..255, else -EINVAL. */
SOON_EXTERN int soon_udp_set_broadcast(soon_udp *udp, int on);
SOON_EXTERN int soon_udp_set_ttl(soon_udp *udp, int ttl);
SOON_EXTERN int soon_udp_set_multicast_ttl(soon_udp *udp, int ttl);
SOON_EXTERN int soon_udp_set_multicast_loop(soon_udp *udp, int on);
/* The interface multicast leaves by: an IPv4 address, or for IPv6
 * "addr%scope" with scope an interface name or index; NULL: the default. */
SOON_EXTERN int soon_udp_set_multicast_interface(soon_udp *udp,
                                                 const char *interface_addr);
/* interface_addr may be NULL (any); for IPv6 as above. */
SOON_EXTERN int soon_udp_set_membership(soon_udp *udp,
                                        const char *multicast_addr,
                                        const char *interface_addr,
                                        soon_membership membership);
SOON_EXTERN int soon_udp_getsockname(const soon_udp *udp, struct sockaddr *name,
                                     int *namelen);
/* Fix the peer (what a NULL addr in soon_udp_send sends to; only its
 * datagrams are received), or with addr NULL dissolve it. -EISCONN if
 * already connected, -ENOTCONN to dissolve what is not. */
SOON_EXTERN int soon_udp_connect(soon_udp *udp, const struct sockaddr *addr);
SOON_EXTERN int soon_udp_getpeername(const soon_udp *udp, struct sockaddr *name,
                                     int *namelen);
SOON_EXTERN size_t soon_udp_send_queue_size(const soon_udp *udp);

/* ------------------------------------------------------------------ dns */

/* getaddrinfo's EAI_* errors, as values outside the errno range.
 * EAI_SYSTEM becomes the errno itself. */
#define SOON_EAI_ADDRFAMILY (-3000)
#define SOON_EAI_AGAIN (-3001)
#define SOON_EAI_BADFLAGS (-3002)
#define SOON_EAI_FAIL (-3003)
#define SOON_EAI_FAMILY (-3004)
#define SOON_EAI_MEMORY (-3005)
#define SOON_EAI_NODATA (-3006)
#define SOON_EAI_NONAME (-3007)
#define SOON_EAI_OVERFLOW (-3008)
#define SOON_EAI_SERVICE (-3009)
#define SOON_EAI_SOCKTYPE (-3010)

typedef struct soon_getaddrinfo_req soon_getaddrinfo_req;
typedef struct soon_getnameinfo_req soon_getnameinfo_req;
/* res belongs to the caller: free it with soon_freeaddrinfo. */
typedef void (*soon_getaddrinfo_cb)(soon_getaddrinfo_req *req, int status,
                                    struct addrinfo *res);
typedef void (*soon_getnameinfo_cb)(soon_getnameinfo_req *req, int status,
                                    const char *host, const char *service);

struct soon_getaddrinfo_req {
  SOON_POOL_REQ_FIELDS
  soon_getaddrinfo_cb cb;
  SOON_GETADDRINFO_PRIVATE_FIELDS
};

struct soon_getnameinfo_req {
  SOON_POOL_REQ_FIELDS
  soon_getnameinfo_cb cb;
  SOON_GETNAMEINFO_PRIVATE_FIELDS
};

/* On the pool's slow lane; cancellable with soon_cancel (status
 * -ECANCELED). node or service may be NULL, not both; hints may be NULL. */
SOON_EXTERN int soon_getaddrinfo(soon_loop *loop, soon_getaddrinfo_req *req,
                                 soon_getaddrinfo_cb cb, const char *node,
                                 const char *service,
                                 const struct addrinfo *hints);
SOON_EXTERN void soon_freeaddrinfo(struct addrinfo *ai);
SOON_EXTERN int soon_getnameinfo(soon_loop *loop, soon_getnameinfo_req *req,
                                 soon_getnameinfo_cb cb,
                                 const struct sockaddr *addr, int flags);

/* ------------------------------------------------------------------ signals */

typedef struct soon_signal soon_signal;
typedef void (*soon_signal_cb)(soon_signal *handle, int signum);

struct soon_signal {
  SOON_HANDLE_FIELDS
  int signum;
  soon_signal_cb cb;
  SOON_SIGNAL_PRIVATE_FIELDS
};

SOON_EXTERN int soon_signal_init(soon_loop *loop, soon_signal *handle);
/* Call cb on the loop thread each time signum arrives (the kernel merges
 * arrivals of a standard signal while it is pending: those count as one).
 * Any number of handles, in any number of loops, may watch one signal; each
 * is called once per arrival. The process's previous disposition is
 * restored when the last handle for signum stops, in whichever loop. A
 * started handle is active (keeps the loop alive); starting it again
 * changes its callback and signal. -EINVAL for SIGKILL, SIGSTOP, or a
 * number outside 1..NSIG-1; the sigaction(2) error for the signals the C
 * library keeps for itself. */
SOON_EXTERN int soon_signal_start(soon_signal *handle, soon_signal_cb cb,
                                  int signum);
/* The same, stopping itself just before its first callback. */
SOON_EXTERN int soon_signal_start_oneshot(soon_signal *handle,
                                          soon_signal_cb cb, int signum);
SOON_EXTERN int soon_signal_stop(soon_signal *handle);

/* ------------------------------------------------------------------ processes
 */

typedef struct soon_process soon_process;
/* exit_status is the exit code (0..255) if the child exited, term_signal
 * the signal that ended it (else 0). exit_status is -ECHILD when the child
 * was reaped behind soon's back (waitpid(-1) elsewhere, or SIGCHLD set to
 * SIG_IGN), so its status is lost. */
typedef void (*soon_exit_cb)(soon_process *process, int64_t exit_status,
                             int term_signal);

/* What a child's fd is connected to (soon_stdio_container.flags). */
enum {
  SOON_IGNORE = 0x00, /* /dev/null */
  /* A new socketpair; data.stream: a soon_pipe initialised and not yet
   * opened, which gets the caller's end (open only if soon_spawn succeeds) */
  SOON_CREATE_PIPE = 0x01,
  SOON_INHERIT_FD = 0x02,     /* data.fd, as it is */
  SOON_INHERIT_STREAM = 0x04, /* the fd of data.stream (an open stream) */
  SOON_READABLE_PIPE = 0x10,  /* with CREATE_PIPE: the child reads */
  SOON_WRITABLE_PIPE = 0x20   /* with CREATE_PIPE: the child writes */
};

typedef struct soon_stdio_container {
  int flags;
  union {
    soon_stream *stream;
    int fd;
  } data;
} soon_stdio_container;

/* soon_process_options.flags */
enum {
  /* Run as options.uid / options.gid (supplementary groups dropped). Needs
   * privilege: else -EPERM from soon_spawn. */
  SOON_PROCESS_SETUID = 1 << 0,
  SOON_PROCESS_SETGID = 1 << 1,
  /* New session: the child outlives the parent and its terminal. */
  SOON_PROCESS_DETACHED = 1 << 3
};

typedef struct soon_process_options {
  soon_exit_cb exit_cb;
  /* Looked up in the parent's PATH if it has no '/'; a relative path is
   * taken from cwd. */
  const char *file;
  /* NULL-terminated; args[0] is the program's name. NULL: just file. */
  char **args;
  char **env;      /* NULL: the parent's environment */
  const char *cwd; /* NULL: the parent's */
  unsigned flags;
  /* stdio[i] becomes the child's fd i; fds 0..2 not given are /dev/null.
   * The child gets no other fd of soon's (all are close-on-exec). */
  int stdio_count;
  soon_stdio_container *stdio;
  uint32_t uid, gid;
} soon_process_options;

struct soon_process {
  SOON_HANDLE_FIELDS
  int pid;
  soon_exit_cb exit_cb;
  SOON_PROCESS_PRIVATE_FIELDS
};

/* Start a child. -ENOENT (and the like) for a program that cannot be run,
 * from soon_spawn itself: no zombie, no half-made handle (the process is
 * not initialised and no CREATE_PIPE stream is opened); -EINVAL for bad
 * options. The handle is active until the child exits; exit_cb (may be NULL)
 * then runs on the loop thread, and the caller closes the handle. Closing
 * it before the exit stops watching: the child is then never reaped by
 * soon. */
SOON_EXTERN int soon_spawn(soon_loop *loop, soon_process *process,
                           const soon_process_options *options);
/* kill(2) the child: -ESRCH once soon has reaped it (from the exit
 * callback on, the handle closed or not), since its pid may be anyone's
 * then. A handle closed before the exit still signals the pid, which soon
 * then never reaps. */
SOON_EXTERN int soon_process_kill(soon_process *process, int signum);
/* kill(2): 0 or a negative errno. */
SOON_EXTERN int soon_kill(int pid, int signum);
SOON_EXTERN int soon_process_get_pid(const soon_process *process);

/* ------------------------------------------------------------------ tty */

typedef enum soon_tty_mode {
  SOON_TTY_MODE_NORMAL = 0,
  SOON_TTY_MODE_RAW,
  SOON_TTY_MODE_IO /* binary-safe raw, for pipes to other programs */
} soon_tty_mode;

typedef struct soon_tty {
  SOON_STREAM_FIELDS
  SOON_TTY_PRIVATE_FIELDS
} soon_tty;

/* A stream on the terminal that fd refers to. soon opens the terminal
 * again by its name and works on that new fd, so O_NONBLOCK does not leak
 * to other processes sharing fd (a shell, say); if it cannot, it works on
 * a dup of fd (then O_NONBLOCK is shared). Either way fd stays the
 * caller's, untouched. -EINVAL if fd is not a tty. */
SOON_EXTERN int soon_tty_init(soon_loop *loop, soon_tty *tty, int fd);
/* Switch the terminal's mode; the first switch away from NORMAL saves the
 * mode it had, and NORMAL (or closing the handle) puts that back. */
SOON_EXTERN int soon_tty_set_mode(soon_tty *tty, soon_tty_mode mode);
/* Restore the mode saved before the first change of the tty that is out of
 * NORMAL mode; safe from a signal handler and at exit. -EBUSY if another
 * thread is changing modes right now. */
SOON_EXTERN int soon_tty_reset_mode(void);
/* The terminal's size in columns and rows (TIOCGWINSZ). */
SOON_EXTERN int soon_tty_get_winsize(soon_tty *tty, int *width, int *height);

/* ------------------------------------------------------------------ the loop
 */

struct soon_loop {
  void *data;
  SOON_LOOP_PRIVATE_FIELDS
};

#ifdef __cplusplus
}
#endif
#endif /* SOON_H */
