/* soon/op.h: an operation a completion backend (io_uring) runs natively, and
 * its codes. Embedded in the requests and streams that use it (through
 * soon/private.h); the contract in src/backend/backend.h. Nothing here is API.
 */
#ifndef SOON_OP_H
#define SOON_OP_H

#include <stdint.h>

/* The ops a completion backend may run (soon__op.code); paths are relative
 * to the working directory (AT_FDCWD). */
enum {
  SOON__OP_READ = 1,
  SOON__OP_WRITE,
  SOON__OP_OPENAT,
  SOON__OP_CLOSE,
  SOON__OP_STATX,
  SOON__OP_FSYNC,
  SOON__OP_RENAMEAT,
  SOON__OP_UNLINKAT,
  SOON__OP_MKDIRAT,
  SOON__OP_LINKAT,
  SOON__OP_SYMLINKAT,
  SOON__OP_FTRUNCATE,
  SOON__OP_RECV,   /* multishot, each chunk in data (res bytes), 0 EOF */
  SOON__OP_SEND,   /* MSG_NOSIGNAL, all of it unless an error */
  SOON__OP_ACCEPT, /* multishot, res the new fd (non-blocking, cloexec) */
  SOON__OP_CONNECT
};

/* A head the loop fills on each report, and the arguments of one operation
 * in the arm that its code names. */
typedef struct soon__op {
  void (*done)(struct soon__op *op); /* on the loop thread, res set */
  int64_t res;                       /* >= 0, or a negative errno */
  void *data;              /* a received chunk, valid until done returns */
  int code;                /* SOON__OP_*: which arm below */
  unsigned char more;      /* nonzero: this op completes again (multishot) */
  unsigned char in_flight; /* submitted, its last report not yet run */
  union {
    struct { /* READ, WRITE (off -1: the file position); SEND (no off) */
      int fd;
      unsigned niov;
      const void *iov; /* struct iovec[] */
      int64_t off;
    } rw;
    struct { /* OPENAT */
      const char *path;
      int flags;
      unsigned mode;
    } open;
    struct { /* STATX: of path, or of fd if path is NULL */
      const char *path;
      int fd;
      int flags;
      void *buf; /* a struct statx */
    } statx;
    struct { /* FSYNC */
      int fd;
      int datasync;
    } fsync;
    struct { /* FTRUNCATE */
      int fd;
      int64_t length;
    } ftruncate;
    struct { /* UNLINKAT */
      const char *path;
      int flags; /* AT_REMOVEDIR for a directory */
    } unlink;
    struct { /* MKDIRAT */
      const char *path;
      unsigned mode;
    } mkdir;
    struct { /* RENAMEAT, LINKAT, SYMLINKAT (path the target) */
      const char *path;
      const char *path2;
    } path2;
    struct { /* CLOSE, RECV, ACCEPT */
      int fd;
    } fd;
    struct { /* CONNECT */
      int fd;
      unsigned addrlen;
      const void *addr; /* a struct sockaddr */
    } connect;
  };
} soon__op;

#endif
