/* soon/private.h: the layouts behind soon.h's public structs, one macro of
 * private fields per type (as libuv's uv/unix.h), so that soon.h reads as
 * the API. Included by soon.h, never alone. Nothing here is API: the caller
 * embeds the structs and touches none of these fields, which change
 * between versions. */
#ifndef SOON_PRIVATE_H
#define SOON_PRIVATE_H

#ifndef SOON_H
#error "include <soon.h>, not <soon/private.h>"
#endif

/* ------------------------------------------------------------------ types */

/* An intrusive circular doubly linked list node (src/core/core.h). */
typedef struct soon_queue {
  struct soon_queue *next;
  struct soon_queue *prev;
} soon_queue;

/* A slot of the loop's timer heap (src/core/heap.c). */
typedef struct soon__heap_slot soon__heap_slot;

/* Work deferred to the next iteration's pending phase, or fed to its poll
 * phase (src/core/core.h). */
typedef struct soon__deferred {
  soon_queue queue;
  void (*cb)(struct soon__deferred *p);
} soon__deferred;

/* The op a completion backend runs natively, and its codes. */
#include "soon/op.h"

/* ------------------------------------------------------------------ core */

/* 44 bytes with data and loop, the last 4 of them type, flags and state: a
 * type's first 4-byte field comes next, in what would be padding. */
#define SOON_HANDLE_PRIVATE_FIELDS                                             \
  const struct soon__handle_ops *ops; /* what its type does on close */        \
  union {                                                                      \
    struct {                                                                   \
      soon_close_cb close_cb;                                                  \
      soon_handle *next_closing; /* the loop's close queue */                  \
    };                                                                         \
    /* Its type's own until soon_close: a timer's link (src/core/timer.c). */  \
    soon_queue open_node;                                                      \
  };                                                                           \
  uint16_t flags; /* SOON__ACTIVE... (src/core/core.h) */                      \
  uint8_t type;   /* a soon_handle_type */                                     \
  uint8_t state;  /* the type's own: a process's, a signal's, a timer's */

#define SOON_TIMER_PRIVATE_FIELDS                                              \
  /* With the handle's state byte, repeat's 40 bits (src/core/timer.c). */     \
  uint32_t repeat_lo;                                                          \
  soon_timer_cb cb;                                                            \
  union {                                                                      \
    uint64_t due;        /* unless it heads a group of the heap */             \
    unsigned heap_index; /* while it does: its slot, which holds its due */    \
  } at;

/* Idle, prepare and check handles: a callback on their loop's list. */
#define SOON_HOOK_PRIVATE_FIELDS(cb_type)                                      \
  cb_type cb;                                                                  \
  soon_queue hook_queue;

#define SOON_IO_PRIVATE_FIELDS                                                 \
  int fd;                                                                      \
  soon_io_cb cb;                                                               \
  int events;  /* watched */                                                   \
  int revents; /* fired, not yet dispatched */                                 \
  soon_queue ready_queue;

#define SOON_ASYNC_PRIVATE_FIELDS                                              \
  _Atomic int sent;                                                            \
  soon_async_cb cb;                                                            \
  soon_queue async_queue;                                                      \
  _Atomic int senders;

/* ------------------------------------------------------------------ pool */

#define SOON_WORK_PRIVATE_FIELDS                                               \
  soon_work_cb work_cb;                                                        \
  soon_after_work_cb after_work_cb;                                            \
  soon_queue wq;                                                               \
  int status;           /* 0, or -ECANCELED */                                 \
  unsigned char slow;   /* on the slow lane (SOON_WORK_SLOW) */                \
  unsigned char queued; /* in its lane, where soon_cancel can take it back */  \
  unsigned char inner;  /* fs's or dns's: they trace their own callback */     \
  uint64_t queued_ns;   /* SOON_LOOP_METRICS: when queued, when started */     \
  uint64_t started_ns;

/* First in every request run on the pool, so soon_cancel finds it without
 * knowing the request's type. */
#define SOON_POOL_REQ_PRIVATE_FIELDS soon_work_req work;

/* ------------------------------------------------------------------ files */

/* Each field has one meaning; those of one operation share a union. A stat
 * that io_uring runs has the kernel write its struct statx (256 B) over
 * statbuf and the 128 B that follow it, converted in place (src/fs/fs.c):
 * so those hold nothing a stat needs once submitted, and the op comes
 * after them. */
#define SOON_FS_REQ_PRIVATE_FIELDS                                             \
  int file;             /* the fd of an operation on an fd */                  \
  const char *new_path; /* rename, link, symlink (the link), copyfile */       \
  union {                                                                      \
    struct { /* read, write */                                                 \
      soon_buf *bufs;                                                          \
      unsigned nbufs;                                                          \
      int64_t off;      /* -1: the file position */                            \
      uint64_t written; /* in io_uring: bytes written so far */                \
      soon_buf bufsml[4];                                                      \
    };                                                                         \
    struct { /* open; mode also for mkdir, chmod, fchmod */                    \
      int open_flags;                                                          \
      int mode;                                                                \
    };                                                                         \
    int access_mode; /* access: F_OK or R_OK | W_OK | X_OK */                  \
    struct {         /* sendfile: from file to out_fd */                       \
      int out_fd;                                                              \
      int64_t in_off; /* -1: file's position */                                \
      uint64_t count;                                                          \
    };                                                                         \
    int64_t length; /* ftruncate */                                            \
    struct {        /* chown, fchown */                                        \
      uint32_t uid, gid;                                                       \
    };                                                                         \
    struct { /* utime, futime */                                               \
      double atime, mtime;                                                     \
    };                                                                         \
    int copy_flags; /* copyfile: SOON_FS_COPYFILE_* */                         \
    struct {        /* scandir */                                              \
      size_t scan_pos;                                                         \
      /* Set on the loop thread once the callback is due: what                 \
       * soon_fs_scandir_next checks, a field the worker never writes. */      \
      unsigned char scan_done;                                                 \
    };                                                                         \
    uint64_t max_size;       /* read_file */                                   \
    uint64_t statx_rest[14]; /* with file and new_path: 128 B */               \
  };                                                                           \
  soon__op op; /* when the backend runs it natively (io_uring) */

/* ------------------------------------------------------------------ net */

/* A handle's requests in order (stream writes, UDP sends; src/net/net.h):
 * the done ones first, their callbacks owed, then those still waiting. */
typedef struct soon__reqq {
  soon_queue all;
  soon_queue *waiting; /* the first not done, or &all */
} soon__reqq;

/* A request's place in its handle's soon__reqq, and once done its status. */
typedef struct soon__qnode {
  soon_queue queue;
  int status;
} soon__qnode;

#define SOON_STREAM_PRIVATE_FIELDS                                             \
  soon_io io;                                                                  \
  soon_alloc_cb alloc_cb;                                                      \
  union { /* a stream reads or listens, never both */                          \
    soon_read_cb read_cb;                                                      \
    soon_connection_cb connection_cb;                                          \
  };                                                                           \
  soon__reqq writes;                                                           \
  size_t write_queue_size; /* bytes of the waiting writes */                   \
  soon_connect_req *connect_req;                                               \
  soon_shutdown_req *shutdown_req;                                             \
  soon__deferred pending;                                                      \
  int accepted_fd; /* a listener's, until soon_accept takes it */              \
  unsigned stream_flags;                                                       \
  struct soon__transport *transport; /* src/net/net.h */

#define SOON_WRITE_PRIVATE_FIELDS                                              \
  soon__qnode node;                                                            \
  soon_buf *bufs; /* what is left to write, within copy */                     \
  unsigned nbufs;                                                              \
  int file;       /* soon_write_file's file, else -1 */                        \
  soon_buf *copy; /* the caller's list: bufsml, or a malloc */                 \
  union {                                                                      \
    soon_buf bufsml[4];                                                        \
    struct { /* soon_write_file: what is left of the range */                  \
      int64_t file_off;                                                        \
      size_t file_left;                                                        \
    };                                                                         \
  };

#define SOON_CONNECT_PRIVATE_FIELDS int status;

#define SOON_SHUTDOWN_PRIVATE_FIELDS int status;

#define SOON_TTY_PRIVATE_FIELDS                                                \
  int mode;                                                                    \
  /* The struct termios from before the first mode change, kept opaque so      \
   * that soon.h does not pour <termios.h>'s macros into every program. */     \
  union {                                                                      \
    unsigned char bytes[64];                                                   \
    long long align;                                                           \
  } orig_termios;

#define SOON_UDP_PRIVATE_FIELDS                                                \
  soon_io io;                                                                  \
  soon_alloc_cb alloc_cb;                                                      \
  soon_udp_recv_cb recv_cb;                                                    \
  soon__reqq sends;                                                            \
  size_t send_queue_size; /* bytes of the waiting sends */                     \
  soon__deferred pending;

#define SOON_UDP_SEND_PRIVATE_FIELDS                                           \
  soon__qnode node;                                                            \
  struct sockaddr_in6 addr; /* or a sockaddr_in: the only families sent to */  \
  unsigned addrlen;                                                            \
  unsigned nbufs;                                                              \
  soon_buf *bufs; /* bufsml, or a malloc */                                    \
  soon_buf bufsml[4];

#define SOON_GETADDRINFO_PRIVATE_FIELDS                                        \
  char *node;                                                                  \
  char *service;                                                               \
  struct addrinfo hints;                                                       \
  int has_hints;                                                               \
  int status;                                                                  \
  struct addrinfo *res;

#define SOON_GETNAMEINFO_PRIVATE_FIELDS                                        \
  struct sockaddr_storage addr;                                                \
  int flags;                                                                   \
  int status;                                                                  \
  char host[1025];                                                             \
  char service[32];

/* ------------------------------------------------------------------ proc */

#define SOON_SIGNAL_PRIVATE_FIELDS                                             \
  soon_queue signal_queue;                                                     \
  struct soon__signal_loop *group; /* the loop's registry entry, if active */

/* One way at a time to hear of the child's exit, as the handle's state
 * says (src/proc/process.c). */
#define SOON_PROCESS_PRIVATE_FIELDS                                            \
  union {                                                                      \
    soon_io io;          /* its pidfd, where the kernel has them */            \
    soon_signal sigchld; /* else SIGCHLD */                                    \
    struct {                                                                   \
      soon__deferred pending;                                                  \
      int wstatus;                                                             \
    } reaped; /* reaped already: its exit_cb is owed */                        \
  } watch;

/* ------------------------------------------------------------------ loop */

#define SOON_LOOP_PRIVATE_FIELDS                                               \
  /* the backend, and what it reports into */                                  \
  const struct soon__backend_ops *backend;                                     \
  void *backend_state;                                                         \
  soon_io **watchers; /* the fd table: the watcher of each fd */               \
  size_t nwatchers;                                                            \
  struct soon__done *done; /* completions to dispatch, ndone of them */        \
  unsigned ndone;                                                              \
  /* running */                                                                \
  unsigned flags; /* soon_loop_options.flags */                                \
  int stop_flag;                                                               \
  int running;    /* inside soon_run: a nested call is refused */              \
  uint64_t owner; /* the thread that first ran it (0: none yet) */             \
  /* what keeps it alive, and what soon_loop_close waits for */                \
  unsigned live_handles;   /* user handles from init to close callback */      \
  unsigned active_handles; /* active and referenced */                         \
  unsigned active_timers;  /* of those, timers (manual clocks ignore them) */  \
  unsigned active_reqs;                                                        \
  /* time and timers */                                                        \
  uint64_t time;                                                               \
  uint64_t timer_seq; /* the next heap group's number (equal deadlines) */     \
  struct {                                                                     \
    soon__heap_slot *slots;                                                    \
    size_t count, cap;                                                         \
    soon_timer *newest; /* the last started, while it waits */                 \
  } timer_heap;                                                                \
  /* what each phase runs, in phase order */                                   \
  soon_queue pending_queue;                                                    \
  soon_queue idle_handles;                                                     \
  soon_queue prepare_handles;                                                  \
  soon_queue feed_queue;                                                       \
  soon_queue ready_io;                                                         \
  soon_queue check_handles;                                                    \
  soon_handle *closing_head;                                                   \
  soon_handle *closing_tail;                                                   \
  /* waking it from other threads */                                           \
  soon_queue async_handles;                                                    \
  soon_io wake_io; /* on the eventfd behind async sends (fd -1: none yet) */   \
  /* the thread pool */                                                        \
  struct soon_pool *pool; /* given in the options, or made on first use */     \
  struct soon__loop_pool *pool_link; /* the pool's per-loop state */           \
  void (*pool_fini)(soon_loop *);    /* set by the pool layer */               \
  int owns_pool;                                                               \
  /* trace and metrics (src/core/metrics.c) */                                 \
  unsigned char observe; /* SOON__OBSERVE_*: 0 keeps callbacks plain */        \
  unsigned char phase;   /* the soon_phase running */                          \
  uint64_t iterations;                                                         \
  uint64_t events;                                                             \
  struct soon__observer *observer; /* NULL until trace or metrics need it */   \
  _Atomic uint64_t idle_ns;                                                    \
  /* chaos mode (src/core/chaos.c): 0 is off */                                \
  uint64_t chaos_seed;                                                         \
  uint64_t chaos_state; /* the PRNG's, from the seed */

#endif /* SOON_PRIVATE_H */
