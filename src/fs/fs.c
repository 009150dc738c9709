/* fs.c: file-system requests: in the ring where the backend runs them natively,
 * else a blocking syscall on the thread pool. The loop thread calls back. */
#include "../core/core.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

/* One kernel call moves at most this much (Linux's own limit per call). */
#define MAX_CHUNK ((size_t)0x7ffff000)

/* A scandir's entries, sorted, in req->ptr. */
typedef struct fs_scan {
  size_t n, cap;
  soon_dirent *ents;
} fs_scan;

/* An opendir's stream: the public soon_dir first, so req->ptr and dir->priv
 * both lead here. names are the last readdir's, freed by the next one. */
typedef struct fs_dir {
  soon_dir pub;
  DIR *dir;
  char **names;
  size_t nnames;
} fs_dir;

static int64_t neg_errno(void) { return errno ? -errno : -EIO; }

/* ------------------------------------------------------------ helpers */

static soon_dirent_type dirent_type(DIR *d, const struct dirent *e) {
  unsigned char t = e->d_type;
  if (t == DT_UNKNOWN) { /* some file systems (xfs v4, nfs) leave it to stat */
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
      return SOON_DIRENT_UNKNOWN;
    switch (st.st_mode & S_IFMT) {
    case S_IFREG:
      return SOON_DIRENT_FILE;
    case S_IFDIR:
      return SOON_DIRENT_DIR;
    case S_IFLNK:
      return SOON_DIRENT_LINK;
    case S_IFIFO:
      return SOON_DIRENT_FIFO;
    case S_IFSOCK:
      return SOON_DIRENT_SOCKET;
    case S_IFCHR:
      return SOON_DIRENT_CHAR;
    case S_IFBLK:
      return SOON_DIRENT_BLOCK;
    default:
      return SOON_DIRENT_UNKNOWN;
    }
  }
  switch (t) {
  case DT_REG:
    return SOON_DIRENT_FILE;
  case DT_DIR:
    return SOON_DIRENT_DIR;
  case DT_LNK:
    return SOON_DIRENT_LINK;
  case DT_FIFO:
    return SOON_DIRENT_FIFO;
  case DT_SOCK:
    return SOON_DIRENT_SOCKET;
  case DT_CHR:
    return SOON_DIRENT_CHAR;
  case DT_BLK:
    return SOON_DIRENT_BLOCK;
  default:
    return SOON_DIRENT_UNKNOWN;
  }
}

static int is_dot(const char *name) {
  return name[0] == '.' &&
         (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

static void to_stat(soon_stat *out, const struct stat *st) {
  out->dev = st->st_dev;
  out->ino = st->st_ino;
  out->mode = st->st_mode;
  out->nlink = st->st_nlink;
  out->uid = st->st_uid;
  out->gid = st->st_gid;
  out->rdev = st->st_rdev;
  out->size = (uint64_t)st->st_size;
  out->blksize = (uint64_t)st->st_blksize;
  out->blocks = (uint64_t)st->st_blocks;
  out->atim = (soon_timespec){st->st_atim.tv_sec, st->st_atim.tv_nsec};
  out->mtim = (soon_timespec){st->st_mtim.tv_sec, st->st_mtim.tv_nsec};
  out->ctim = (soon_timespec){st->st_ctim.tv_sec, st->st_ctim.tv_nsec};
}

/* NaN and infinities fail both comparisons; the bounds keep the cast to
 * int64_t below defined. */
static int valid_time(double t) { return t > -4e18 && t < 4e18; }

/* floor by hand: libsoon does not link libm for one call. */
static struct timespec to_timespec(double t) {
  double sec = (double)(int64_t)t;
  if (sec > t)
    sec -= 1;
  /* Rounded, so that 1.7 is not 1 s + 699999999 ns. */
  long nsec = (long)((t - sec) * 1e9 + 0.5);
  if (nsec >= 1000000000) {
    sec += 1;
    nsec -= 1000000000;
  }
  return (struct timespec){(time_t)sec, nsec};
}

static void free_scan(fs_scan *s) {
  if (!s)
    return;
  for (size_t i = 0; i < s->n; i++)
    free((char *)s->ents[i].name);
  free(s->ents);
  free(s);
}

static void free_dir_names(fs_dir *d) {
  for (size_t i = 0; i < d->nnames; i++)
    free(d->names[i]);
  free(d->names);
  d->names = NULL;
  d->nnames = 0;
}

/* ------------------------------------------------------------ workers */

static int64_t do_read(soon_fs_req *req) {
  struct iovec *iov = (struct iovec *)req->bufs;
  int n = req->nbufs > IOV_MAX ? IOV_MAX : (int)req->nbufs;
  ssize_t r;
  do
    r = req->off < 0 ? readv(req->file, iov, n)
                     : preadv(req->file, iov, n, (off_t)req->off);
  while (r < 0 && errno == EINTR);
  return r < 0 ? neg_errno() : r;
}

/* A short write is continued until every byte is written or an error stops
 * it; bytes already written are then reported rather than the error, which
 * the next write will meet again. req->bufs is our copy, so it is consumed. */
static int64_t do_write(soon_fs_req *req) {
  soon_buf *b = req->bufs;
  unsigned left = req->nbufs;
  int64_t total = 0;
  while (left > 0 && b->len == 0) {
    b++;
    left--;
  }
  while (left > 0) {
    int n = left > IOV_MAX ? IOV_MAX : (int)left;
    struct iovec *iov = (struct iovec *)b;
    ssize_t r = req->off < 0
                    ? writev(req->file, iov, n)
                    : pwritev(req->file, iov, n, (off_t)(req->off + total));
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return total > 0 ? total : neg_errno();
    }
    if (r == 0)
      break;
    total += r;
    soon__bufs_advance(&b, &left, (size_t)r);
  }
  return total;
}

/* Through a bounce buffer, where sendfile(2) refuses the pair of files. */
static int64_t sendfile_copy(int out, int in, int64_t *off, uint64_t len) {
  char buf[64 * 1024];
  int64_t total = 0;
  while ((uint64_t)total < len) {
    size_t want = sizeof buf;
    if (len - (uint64_t)total < want)
      want = (size_t)(len - (uint64_t)total);
    ssize_t r;
    do
      r = *off >= 0 ? pread(in, buf, want, (off_t)*off) : read(in, buf, want);
    while (r < 0 && errno == EINTR);
    if (r < 0)
      return total > 0 ? total : neg_errno();
    if (r == 0)
      break;
    size_t put = 0;
    while (put < (size_t)r) {
      ssize_t w = write(out, buf + put, (size_t)r - put);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        return total > 0 ? total : (w < 0 ? neg_errno() : -EIO);
      put += (size_t)w;
      total += w;
      if (*off >= 0)
        *off += w;
    }
  }
  return total;
}

static int64_t do_sendfile(soon_fs_req *req) {
  int out = req->out_fd, in = req->file;
  int64_t off = req->in_off; /* < 0: the file position, which sendfile moves */
  int64_t total = 0;
  while ((uint64_t)total < req->count) {
    uint64_t rest = req->count - (uint64_t)total;
    size_t want = rest > MAX_CHUNK ? MAX_CHUNK : (size_t)rest;
    off_t o = (off_t)off;
    ssize_t r = sendfile(out, in, off >= 0 ? &o : NULL, want);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      if (total == 0 && (errno == EINVAL || errno == ENOSYS || errno == EXDEV ||
                         errno == EOPNOTSUPP))
        return sendfile_copy(out, in, &off, req->count);
      return total > 0 ? total : neg_errno();
    }
    if (r == 0)
      break;
    total += r;
    if (off >= 0)
      off += r;
  }
  return total;
}

/* A target that fills the buffer may be truncated: again, with more room. */
static int64_t do_readlink(soon_fs_req *req) {
  char *buf = NULL;
  size_t cap = 0;
  for (;;) {
    char *more = soon__grow(buf, &cap, cap + 1, 1, 256);
    if (!more) {
      free(buf);
      return -ENOMEM;
    }
    buf = more;
    ssize_t n = readlink(req->path, buf, cap);
    if (n < 0) {
      int64_t err = neg_errno();
      free(buf);
      return err;
    }
    if ((size_t)n < cap) {
      buf[n] = '\0';
      req->ptr = buf;
      return 0;
    }
  }
}

static int64_t do_statfs(soon_fs_req *req) {
  struct statfs sf;
  if (statfs(req->path, &sf) != 0)
    return neg_errno();
  soon_statfs *out = malloc(sizeof *out);
  if (!out)
    return -ENOMEM;
  *out = (soon_statfs){(uint64_t)sf.f_type,   (uint64_t)sf.f_bsize,
                       (uint64_t)sf.f_blocks, (uint64_t)sf.f_bfree,
                       (uint64_t)sf.f_bavail, (uint64_t)sf.f_files,
                       (uint64_t)sf.f_ffree};
  req->ptr = out;
  return 0;
}

/* copy_file_range first (reflinks, in-kernel copies), then read/write to
 * EOF: that also finishes files whose st_size is not their length (/proc),
 * for which copy_file_range stops early. */
static int copy_fd(int in, int out) {
  for (;;) {
    ssize_t r = copy_file_range(in, NULL, out, NULL, MAX_CHUNK, 0);
    if (r > 0)
      continue;
    if (r == 0)
      break;
    if (errno == EINTR)
      continue;
    if (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
        errno == EOPNOTSUPP || errno == EBADF || errno == EPERM)
      break; /* not for this pair of files: copy by hand */
    return -errno;
  }
  char buf[64 * 1024];
  for (;;) {
    ssize_t r = read(in, buf, sizeof buf);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -errno;
    if (r == 0)
      return 0;
    for (ssize_t put = 0; put < r;) {
      ssize_t w = write(out, buf + put, (size_t)(r - put));
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        return -errno;
      put += w;
    }
  }
}

static int64_t do_copyfile(soon_fs_req *req) {
  int in = open(req->path, O_RDONLY | O_CLOEXEC);
  if (in < 0)
    return neg_errno();
  struct stat sst, dst;
  if (fstat(in, &sst) != 0) {
    int64_t err = neg_errno();
    close(in);
    return err;
  }
  if (S_ISDIR(sst.st_mode)) {
    close(in);
    return -EISDIR;
  }
  /* Not O_TRUNC yet: if new_path is path itself, truncating it would
   * destroy the source before we could notice. */
  int oflags = O_WRONLY | O_CREAT | O_CLOEXEC;
  if (req->copy_flags & SOON_FS_COPYFILE_EXCL)
    oflags |= O_EXCL;
  int out = open(req->new_path, oflags, (mode_t)(sst.st_mode & 07777));
  if (out < 0) { /* never made by us (EEXIST with EXCL): nothing to remove */
    int64_t err = neg_errno();
    close(in);
    return err;
  }
  int err = 0;
  if (fstat(out, &dst) != 0)
    err = -errno;
  else if (dst.st_dev == sst.st_dev && dst.st_ino == sst.st_ino) {
    close(out); /* copying a file onto itself: it is already there */
    close(in);
    return 0;
  }
  if (!err && ftruncate(out, 0) != 0)
    err = -errno;
  if (!err)
    err = copy_fd(in, out);
  if (!err && fchmod(out, (mode_t)(sst.st_mode & 07777)) != 0)
    err = -errno;
  if (close(out) != 0 && !err && errno != EINTR)
    err = -errno; /* NFS reports a failed write-back here */
  close(in);
  if (err) {
    unlink(req->new_path);
    return err;
  }
  return 0;
}

static int scan_cmp(const void *a, const void *b) {
  return strcmp(((const soon_dirent *)a)->name, ((const soon_dirent *)b)->name);
}

static int64_t do_scandir(soon_fs_req *req) {
  DIR *d = opendir(req->path);
  if (!d)
    return neg_errno();
  fs_scan *s = calloc(1, sizeof *s);
  int64_t err = 0;
  if (!s)
    err = -ENOMEM;
  while (!err) {
    errno = 0;
    struct dirent *e = readdir(d);
    if (!e) {
      if (errno)
        err = -errno;
      break;
    }
    if (is_dot(e->d_name))
      continue;
    soon_dirent *ents =
        soon__grow(s->ents, &s->cap, s->n + 1, sizeof *ents, 16);
    if (!ents) {
      err = -ENOMEM;
      break;
    }
    s->ents = ents;
    char *name = strdup(e->d_name);
    if (!name) {
      err = -ENOMEM;
      break;
    }
    s->ents[s->n++] = (soon_dirent){name, dirent_type(d, e)};
  }
  closedir(d);
  if (err) {
    free_scan(s);
    return err;
  }
  if (s->n > 1)
    qsort(s->ents, s->n, sizeof *s->ents, scan_cmp);
  req->ptr = s;
  return (int64_t)s->n;
}

static int64_t do_opendir(soon_fs_req *req) {
  fs_dir *fd = calloc(1, sizeof *fd);
  if (!fd)
    return -ENOMEM;
  if (!(fd->dir = opendir(req->path))) {
    int64_t err = neg_errno();
    free(fd);
    return err;
  }
  fd->pub.priv = fd;
  req->ptr = &fd->pub;
  return 0;
}

static int64_t do_readdir(soon_fs_req *req) {
  soon_dir *dir = req->ptr;
  fs_dir *fd = dir->priv;
  free_dir_names(fd);
  if (!(fd->names = calloc(dir->nentries, sizeof *fd->names)))
    return -ENOMEM;
  size_t n = 0;
  while (n < dir->nentries) {
    long pos = telldir(fd->dir);
    errno = 0;
    struct dirent *e = readdir(fd->dir);
    if (!e) {
      if (errno && n == 0)
        return -errno;
      break; /* an error after entries: reported by the next readdir */
    }
    if (is_dot(e->d_name))
      continue;
    char *name = strdup(e->d_name);
    if (!name) { /* the stream has moved past e: back, or e is lost */
      seekdir(fd->dir, pos);
      return n > 0 ? (int64_t)n : -ENOMEM;
    }
    fd->names[fd->nnames++] = name;
    dir->dirents[n++] = (soon_dirent){name, dirent_type(fd->dir, e)};
  }
  return (int64_t)n;
}

static int64_t do_closedir(soon_fs_req *req) {
  soon_dir *dir = req->ptr;
  fs_dir *fd = dir->priv;
  free_dir_names(fd);
  int r = closedir(fd->dir);
  int64_t err = r != 0 ? neg_errno() : 0;
  free(fd);
  return err;
}

/* A regular file is read into a buffer sized by fstat; /proc-like files
 * (st_size 0) and files growing meanwhile are read in growing chunks, and
 * -EFBIG as soon as they pass max_size (req->len). */
static int64_t read_all(int fd, uint64_t max_size, char **out) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    return neg_errno();
  if (S_ISDIR(st.st_mode))
    return -EISDIR;
  if (st.st_size > 0 && (uint64_t)st.st_size > max_size)
    return -EFBIG;
  /* limit: the most of the buffer ever used, the byte for NUL included */
  size_t limit = max_size < SIZE_MAX - 1 ? (size_t)max_size + 1 : SIZE_MAX;
  size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096;
  if (cap > limit)
    cap = limit;
  char *buf = malloc(cap);
  if (!buf)
    return -ENOMEM;
  size_t len = 0;
  for (;;) {
    size_t room = cap < limit ? cap : limit; /* cap doubles past limit */
    ssize_t r;
    if (len + 1 == room) {
      /* Full: one byte more says EOF (the usual case, sized by fstat) or
       * growth, without reallocating for nothing. */
      char probe;
      do
        r = read(fd, &probe, 1);
      while (r < 0 && errno == EINTR);
      if (r == 0)
        break;
      if (r < 0 || len >= max_size) {
        int64_t err = r < 0 ? neg_errno() : -EFBIG;
        free(buf);
        return err;
      }
      char *more = soon__grow(buf, &cap, cap + 1, 1, 0);
      if (!more) {
        free(buf);
        return -ENOMEM;
      }
      buf = more;
      buf[len++] = probe;
      continue;
    }
    size_t want = room - 1 - len;
    if (want > MAX_CHUNK)
      want = MAX_CHUNK;
    do
      r = read(fd, buf + len, want);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      int64_t err = neg_errno();
      free(buf);
      return err;
    }
    if (r == 0)
      break;
    len += (size_t)r;
  }
  buf[len] = '\0';
  *out = buf;
  return (int64_t)len;
}

static int64_t do_read_file(soon_fs_req *req) {
  int fd = open(req->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return neg_errno();
  char *buf = NULL;
  int64_t r = read_all(fd, req->max_size, &buf);
  close(fd);
  if (r >= 0)
    req->ptr = buf;
  return r;
}

static int64_t zero_or_errno(int r) { return r == 0 ? 0 : neg_errno(); }

/* On a worker: touches nothing but the request (no loop, no user data). */
static void fs_work(soon_work_req *w) {
  soon_fs_req *req = soon__container_of(w, soon_fs_req, work);
  struct stat st;
  int64_t r;
  switch (req->fs_type) {
  case SOON_FS_OPEN:
    do
      r = open(req->path, req->open_flags | O_CLOEXEC, (mode_t)req->mode);
    while (r < 0 && errno == EINTR);
    r = r < 0 ? neg_errno() : r;
    break;
  case SOON_FS_CLOSE:
    /* Linux frees the fd even when close is interrupted: never retry. */
    r = close(req->file) == 0 || errno == EINTR || errno == EINPROGRESS
            ? 0
            : neg_errno();
    break;
  case SOON_FS_READ:
    r = do_read(req);
    break;
  case SOON_FS_WRITE:
    r = do_write(req);
    break;
  case SOON_FS_SENDFILE:
    r = do_sendfile(req);
    break;
  case SOON_FS_STAT:
  case SOON_FS_LSTAT:
  case SOON_FS_FSTAT:
    if (req->fs_type == SOON_FS_STAT)
      r = stat(req->path, &st);
    else if (req->fs_type == SOON_FS_LSTAT)
      r = lstat(req->path, &st);
    else
      r = fstat(req->file, &st);
    if (r == 0)
      to_stat(&req->statbuf, &st);
    r = r == 0 ? 0 : neg_errno();
    break;
  case SOON_FS_STATFS:
    r = do_statfs(req);
    break;
  case SOON_FS_FSYNC:
    r = zero_or_errno(fsync(req->file));
    break;
  case SOON_FS_FDATASYNC:
    r = zero_or_errno(fdatasync(req->file));
    break;
  case SOON_FS_FTRUNCATE:
    r = zero_or_errno(ftruncate(req->file, (off_t)req->length));
    break;
  case SOON_FS_UNLINK:
    r = zero_or_errno(unlink(req->path));
    break;
  case SOON_FS_MKDIR:
    r = zero_or_errno(mkdir(req->path, (mode_t)req->mode));
    break;
  case SOON_FS_MKDTEMP: /* the copy is ours: mkdtemp fills in its XXXXXX */
    r = mkdtemp((char *)req->path) ? 0 : neg_errno();
    break;
  case SOON_FS_RMDIR:
    r = zero_or_errno(rmdir(req->path));
    break;
  case SOON_FS_RENAME:
    r = zero_or_errno(rename(req->path, req->new_path));
    break;
  case SOON_FS_LINK:
    r = zero_or_errno(link(req->path, req->new_path));
    break;
  case SOON_FS_SYMLINK:
    r = zero_or_errno(symlink(req->path, req->new_path));
    break;
  case SOON_FS_READLINK:
    r = do_readlink(req);
    break;
  case SOON_FS_REALPATH:
    req->ptr = realpath(req->path, NULL);
    r = req->ptr ? 0 : neg_errno();
    break;
  case SOON_FS_CHMOD:
    r = zero_or_errno(chmod(req->path, (mode_t)req->mode));
    break;
  case SOON_FS_FCHMOD:
    r = zero_or_errno(fchmod(req->file, (mode_t)req->mode));
    break;
  case SOON_FS_CHOWN:
    r = zero_or_errno(chown(req->path, (uid_t)req->uid, (gid_t)req->gid));
    break;
  case SOON_FS_FCHOWN:
    r = zero_or_errno(fchown(req->file, (uid_t)req->uid, (gid_t)req->gid));
    break;
  case SOON_FS_UTIME:
  case SOON_FS_FUTIME: {
    struct timespec ts[2] = {to_timespec(req->atime), to_timespec(req->mtime)};
    r = zero_or_errno(req->fs_type == SOON_FS_UTIME
                          ? utimensat(AT_FDCWD, req->path, ts, 0)
                          : futimens(req->file, ts));
    break;
  }
  case SOON_FS_ACCESS:
    r = zero_or_errno(access(req->path, req->access_mode));
    break;
  case SOON_FS_COPYFILE:
    r = do_copyfile(req);
    break;
  case SOON_FS_SCANDIR:
    r = do_scandir(req);
    break;
  case SOON_FS_OPENDIR:
    r = do_opendir(req);
    break;
  case SOON_FS_READDIR:
    r = do_readdir(req);
    break;
  case SOON_FS_CLOSEDIR:
    r = do_closedir(req);
    break;
  case SOON_FS_READ_FILE:
    r = do_read_file(req);
    break;
  default:
    r = -ENOSYS;
    break;
  }
  req->result = r;
}

/* A read's or a write's copy of the buffer list is spent once it has run (a
 * write consumes it): freed then, so a caller who never cleans up leaks
 * nothing. Other operations keep other fields in its place. */
static void free_bufs(soon_fs_req *req) {
  if (req->fs_type != SOON_FS_READ && req->fs_type != SOON_FS_WRITE)
    return;
  soon__bufs_free(req->bufs, req->bufsml);
  req->bufs = NULL;
  req->nbufs = 0;
}

/* On the loop thread, from the pool's hand-back (or native_done). */
static void fs_done(soon_work_req *w, int status) {
  soon_fs_req *req = soon__container_of(w, soon_fs_req, work);
  if (status == -ECANCELED)
    req->result = -ECANCELED;
  free_bufs(req);
  switch (req->fs_type) {
  case SOON_FS_SCANDIR:
    req->scan_pos = 0;
    req->scan_done = 1;
    break;
  case SOON_FS_CLOSEDIR:
    if (status != -ECANCELED)
      req->ptr = NULL; /* freed by the worker, even when closedir failed */
    break;
  default:
    break;
  }
  SOON__TELL(req->loop, SOON__PHASE_LOOP, SOON__KIND_REQ | SOON_FS, req,
             soon__status_of(req->result), req->cb(req));
}

/* ------------------------------------------------------------ requests */

/* Fill req for a new operation; the caller's data survives. */
static void fs_init(soon_loop *loop, soon_fs_req *req, soon_fs_type type,
                    soon_fs_cb cb) {
  void *data = req->data;
  memset(req, 0, sizeof *req);
  req->data = data;
  soon__req_init((soon_req *)req, loop, SOON_FS);
  req->fs_type = type;
  req->cb = cb;
}

static int fs_copy_paths(soon_fs_req *req, const char *path,
                         const char *new_path) {
  if (path && !(req->path = strdup(path)))
    return -ENOMEM;
  if (new_path && !(req->new_path = strdup(new_path))) {
    free((char *)req->path);
    req->path = NULL;
    return -ENOMEM;
  }
  return 0;
}

/* ------------------------------------------------------------ native ops */

static void statx_to_stat(soon_stat *st, const struct statx *x) {
  st->dev = makedev(x->stx_dev_major, x->stx_dev_minor);
  st->ino = x->stx_ino;
  st->mode = x->stx_mode;
  st->nlink = x->stx_nlink;
  st->uid = x->stx_uid;
  st->gid = x->stx_gid;
  st->rdev = makedev(x->stx_rdev_major, x->stx_rdev_minor);
  st->size = x->stx_size;
  st->blksize = x->stx_blksize;
  st->blocks = x->stx_blocks;
  st->atim = (soon_timespec){x->stx_atime.tv_sec, x->stx_atime.tv_nsec};
  st->mtim = (soon_timespec){x->stx_mtime.tv_sec, x->stx_mtime.tv_nsec};
  st->ctim = (soon_timespec){x->stx_ctime.tv_sec, x->stx_ctime.tv_nsec};
}

/* A native stat has the kernel write its struct statx over statbuf and the
 * private fields after it, which hold nothing the stat needs once submitted
 * (SOON_FS_REQ_PRIVATE_FIELDS): 256 B a request need not carry beside a
 * 128 B soon_stat. */
_Static_assert(offsetof(soon_fs_req, op) - offsetof(soon_fs_req, statbuf) >=
                   sizeof(struct statx),
               "a native stat's struct statx would reach the op");

/* Converted in place, and those private fields left as fs_init made them. */
static void stat_in_place(soon_fs_req *req) {
  char *room = (char *)req + offsetof(soon_fs_req, statbuf);
  struct statx x;
  memcpy(&x, room, sizeof x);
  memset(room, 0, sizeof x);
  statx_to_stat(&req->statbuf, &x);
}

/* On the loop thread. A short write is continued, as the pool's do_write
 * does, so both paths report the whole count or an error. */
static void native_done(soon__op *op) {
  soon_fs_req *req = soon__container_of(op, soon_fs_req, op);
  if (req->fs_type == SOON_FS_WRITE && op->res > 0) {
    /* op->rw.iov walks req->bufs, which stays the array to free. */
    soon_buf *b = (soon_buf *)op->rw.iov;
    req->written += (uint64_t)op->res;
    soon__bufs_advance(&b, &op->rw.niov, (size_t)op->res);
    if (op->rw.niov) {
      op->rw.iov = b;
      op->rw.off = req->off < 0 ? -1 : req->off + (int64_t)req->written;
      if (soon__op_submit(req->loop, op) == 0)
        return;
    }
    op->res = (int64_t)req->written;
  }
  if (req->fs_type == SOON_FS_WRITE && op->res <= 0 && req->written &&
      op->res != -ECANCELED)
    op->res = (int64_t)req->written; /* an error after progress: the progress */
  if (op->code == SOON__OP_STATX && op->res == 0)
    stat_in_place(req);
  req->result = op->res;
  soon__req_done((soon_req *)req);
  fs_done(&req->work, 0);
}

/* Hand req to a completion backend (io_uring) in place of the pool: 0 if it
 * took it, else the pool runs it. op.code stays set only in the first case:
 * it is how soon_cancel knows whom to ask. */
static int fs_native(soon_fs_req *req) {
  soon__op *op = &req->op;
  switch (req->fs_type) {
  case SOON_FS_OPEN:
    op->code = SOON__OP_OPENAT;
    op->open.path = req->path;
    op->open.flags = req->open_flags | O_CLOEXEC;
    op->open.mode = (unsigned)req->mode;
    break;
  case SOON_FS_CLOSE:
    op->code = SOON__OP_CLOSE;
    op->fd.fd = req->file;
    break;
  case SOON_FS_READ:
  case SOON_FS_WRITE:
    if (req->nbufs > IOV_MAX)
      return -ENOTSUP;
    op->code = req->fs_type == SOON_FS_READ ? SOON__OP_READ : SOON__OP_WRITE;
    op->rw.fd = req->file;
    op->rw.iov = req->bufs;
    op->rw.niov = req->nbufs;
    op->rw.off = req->off;
    break;
  case SOON_FS_STAT:
  case SOON_FS_LSTAT:
  case SOON_FS_FSTAT:
    op->code = SOON__OP_STATX;
    op->statx.path = req->path; /* NULL for fstat: of the fd */
    op->statx.fd = req->file;
    op->statx.flags = req->fs_type == SOON_FS_LSTAT ? AT_SYMLINK_NOFOLLOW : 0;
    op->statx.buf = &req->statbuf; /* and beyond: see stat_in_place */
    break;
  case SOON_FS_FSYNC:
  case SOON_FS_FDATASYNC:
    op->code = SOON__OP_FSYNC;
    op->fsync.fd = req->file;
    op->fsync.datasync = req->fs_type == SOON_FS_FDATASYNC;
    break;
  case SOON_FS_FTRUNCATE:
    op->code = SOON__OP_FTRUNCATE;
    op->ftruncate.fd = req->file;
    op->ftruncate.length = req->length;
    break;
  case SOON_FS_UNLINK:
  case SOON_FS_RMDIR:
    op->code = SOON__OP_UNLINKAT;
    op->unlink.path = req->path;
    op->unlink.flags = req->fs_type == SOON_FS_RMDIR ? AT_REMOVEDIR : 0;
    break;
  case SOON_FS_MKDIR:
    op->code = SOON__OP_MKDIRAT;
    op->mkdir.path = req->path;
    op->mkdir.mode = (unsigned)req->mode;
    break;
  case SOON_FS_RENAME:
  case SOON_FS_LINK:
  case SOON_FS_SYMLINK:
    op->code = req->fs_type == SOON_FS_RENAME ? SOON__OP_RENAMEAT
               : req->fs_type == SOON_FS_LINK ? SOON__OP_LINKAT
                                              : SOON__OP_SYMLINKAT;
    op->path2.path = req->path;
    op->path2.path2 = req->new_path;
    break;
  default:
    return -ENOTSUP;
  }
  op->done = native_done;
  int err = soon__op_submit(req->loop, op);
  if (err) {
    op->code = 0;
    return err;
  }
  soon__req_start((soon_req *)req, req->loop, SOON_FS);
  return 0;
}

/* soon_cancel of an fs request: the backend's to stop if it went native,
 * else the pool's. */
int soon__fs_cancel(soon_fs_req *req) {
  if (req->op.code)
    return soon__op_cancel(req->loop, &req->op) == 0 ? 0 : -EBUSY;
  return soon__work_cancel(&req->work);
}

static int fs_submit(soon_fs_req *req, soon_work_kind kind) {
  if (fs_native(req) == 0)
    return 0;
  int err =
      soon__work_submit(req->loop, &req->work, fs_work, fs_done, kind, true);
  if (err) {
    void *data = req->data;
    soon_fs_req_cleanup(req);
    req->data = data;
  }
  return err;
}

/* Every entry point starts with one of these two (they validate and reset
 * req; readdir and closedir, on a soon_dir, do it by hand), sets its own
 * fields, and ends with fs_submit. */

/* An operation on path, and on new_path for the four that take two. */
static int fs_path_op(soon_loop *loop, soon_fs_req *req, soon_fs_type type,
                      const char *path, const char *new_path, soon_fs_cb cb) {
  bool two = type == SOON_FS_RENAME || type == SOON_FS_LINK ||
             type == SOON_FS_SYMLINK || type == SOON_FS_COPYFILE;
  if (!soon__loop_usable(loop) || !req || !cb || !path || (two && !new_path))
    return -EINVAL;
  fs_init(loop, req, type, cb);
  return fs_copy_paths(req, path, new_path);
}

static int fs_fd_op(soon_loop *loop, soon_fs_req *req, soon_fs_type type,
                    int file, soon_fs_cb cb) {
  if (!soon__loop_usable(loop) || !req || !cb || file < 0)
    return -EINVAL;
  fs_init(loop, req, type, cb);
  req->file = file;
  return 0;
}

void soon_fs_req_cleanup(soon_fs_req *req) {
  if (!req)
    return;
  free((char *)req->path);
  free((char *)req->new_path);
  req->path = req->new_path = NULL;
  switch (req->fs_type) {
  case SOON_FS_OPENDIR:
  case SOON_FS_READDIR:
  case SOON_FS_CLOSEDIR:
    break; /* the soon_dir is the stream's, freed by closedir */
  case SOON_FS_SCANDIR:
    free_scan(req->ptr);
    req->scan_done = 0;
    req->scan_pos = 0;
    break;
  default:
    free(req->ptr);
    break;
  }
  req->ptr = NULL;
  free_bufs(req);
}

int soon_fs_open(soon_loop *loop, soon_fs_req *req, const char *path, int flags,
                 int mode, soon_fs_cb cb) {
  int err = fs_path_op(loop, req, SOON_FS_OPEN, path, NULL, cb);
  if (err)
    return err;
  req->open_flags = flags;
  req->mode = mode;
  return fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_close(soon_loop *loop, soon_fs_req *req, int file, soon_fs_cb cb) {
  int err = fs_fd_op(loop, req, SOON_FS_CLOSE, file, cb);
  return err ? err : fs_submit(req, SOON_WORK_FAST);
}

static int fs_rw(soon_loop *loop, soon_fs_req *req, soon_fs_type type, int file,
                 const soon_buf bufs[], unsigned nbufs, int64_t offset,
                 soon_fs_cb cb) {
  if (!bufs || nbufs == 0)
    return -EINVAL;
  int err = fs_fd_op(loop, req, type, file, cb);
  if (err)
    return err;
  req->off = offset < 0 ? -1 : offset;
  req->bufs =
      soon__bufs_copy(req->bufsml, sizeof req->bufsml / sizeof req->bufsml[0],
                      bufs, nbufs, NULL);
  if (!req->bufs)
    return -ENOMEM;
  req->nbufs = nbufs;
  return fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_read(soon_loop *loop, soon_fs_req *req, int file,
                 const soon_buf bufs[], unsigned nbufs, int64_t offset,
                 soon_fs_cb cb) {
  return fs_rw(loop, req, SOON_FS_READ, file, bufs, nbufs, offset, cb);
}

int soon_fs_write(soon_loop *loop, soon_fs_req *req, int file,
                  const soon_buf bufs[], unsigned nbufs, int64_t offset,
                  soon_fs_cb cb) {
  return fs_rw(loop, req, SOON_FS_WRITE, file, bufs, nbufs, offset, cb);
}

int soon_fs_sendfile(soon_loop *loop, soon_fs_req *req, int out_fd, int in_fd,
                     int64_t in_offset, uint64_t length, soon_fs_cb cb) {
  if (out_fd < 0)
    return -EINVAL;
  int err = fs_fd_op(loop, req, SOON_FS_SENDFILE, in_fd, cb);
  if (err)
    return err;
  req->out_fd = out_fd;
  req->in_off = in_offset < 0 ? -1 : in_offset;
  req->count = length;
  return fs_submit(req, SOON_WORK_SLOW);
}

int soon_fs_stat(soon_loop *loop, soon_fs_req *req, const char *path,
                 soon_fs_cb cb) {
  int err = fs_path_op(loop, req, SOON_FS_STAT, path, NULL, cb);
  return err ? err : fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_lstat(soon_loop *loop, soon_fs_req *req, const char *path,
                  soon_fs_cb cb) {
  int err = fs_path_op(loop, req, SOON_FS_LSTAT, path, NULL, cb);
  return err ? err : fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_fstat(soon_loop *loop, soon_fs_req *req, int file, soon_fs_cb cb) {
  int err = fs_fd_op(loop, req, SOON_FS_FSTAT, file, cb);
  return err ? err : fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_statfs(soon_loop *loop, soon_fs_req *req, const char *path,
                   soon_fs_cb cb) {
  int err = fs_path_op(loop, req, SOON_FS_STATFS, path, NULL, cb);
  return err ? err : fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_fsync(soon_loop *loop, soon_fs_req *req, int file, soon_fs_cb cb) {
  int err = fs_fd_op(loop, req, SOON_FS_FSYNC, file, cb);
  return err ? err : fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_fdatasync(soon_loop *loop, soon_fs_req *req, int file,
                      soon_fs_cb cb) {
  int err = fs_fd_op(loop, req, SOON_FS_FDATASYNC, file, cb);
  return err ? err : fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_ftruncate(soon_loop *loop, soon_fs_req *req, int file,
                      int64_t length, soon_fs_cb cb) {
  if (length < 0)
    return -EINVAL;
  int err = fs_fd_op(loop, req, SOON_FS_FTRUNCATE, file, cb);
  if (err)
    return err;
  req->length = length;
  return fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_unlink(soon_loop *loop, soon_fs_req *req, const char *path,
                   soon_fs_cb cb) {
  int err = fs_path_op(loop, req, SOON_FS_UNLINK, path, NULL, cb);
  return err ? err : fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_mkdir(soon_loop *loop, soon_fs_req *req, const char *path, int mode,
                  soon_fs_cb cb) {
  int err = fs_path_op(loop, req, SOON_FS_MKDIR, path, NULL, cb);
  if (err)
    return err;
  req->mode = mode;
  return fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_mkdtemp(soon_loop *loop, soon_fs_req *req, const char *tpl,
                    soon_fs_cb cb) {
  int err = fs_path_op(loop, req, SOON_FS_MKDTEMP, tpl, NULL, cb);
  return err ? err : fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_rmdir(soon_loop *loop, soon_fs_req *req, const char *path,
                  soon_fs_cb cb) {
  int err = fs_path_op(loop, req, SOON_FS_RMDIR, path, NULL, cb);
  return err ? err : fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_rename(soon_loop *loop, soon_fs_req *req, const char *path,
                   const char *new_path, soon_fs_cb cb) {
  int err = fs_path_op(loop, req, SOON_FS_RENAME, path, new_path, cb);
  return err ? err : fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_link(soon_loop *loop, soon_fs_req *req, const char *path,
                 const char *new_path, soon_fs_cb cb) {
  int err = fs_path_op(loop, req, SOON_FS_LINK, path, new_path, cb);
  return err ? err : fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_symlink(soon_loop *loop, soon_fs_req *req, const char *target,
                    const char *link_path, soon_fs_cb cb) {
  int err = fs_path_op(loop, req, SOON_FS_SYMLINK, target, link_path, cb);
  return err ? err : fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_readlink(soon_loop *loop, soon_fs_req *req, const char *path,
                     soon_fs_cb cb) {
  int err = fs_path_op(loop, req, SOON_FS_READLINK, path, NULL, cb);
  return err ? err : fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_realpath(soon_loop *loop, soon_fs_req *req, const char *path,
                     soon_fs_cb cb) {
  int err = fs_path_op(loop, req, SOON_FS_REALPATH, path, NULL, cb);
  return err ? err : fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_chmod(soon_loop *loop, soon_fs_req *req, const char *path, int mode,
                  soon_fs_cb cb) {
  int err = fs_path_op(loop, req, SOON_FS_CHMOD, path, NULL, cb);
  if (err)
    return err;
  req->mode = mode;
  return fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_fchmod(soon_loop *loop, soon_fs_req *req, int file, int mode,
                   soon_fs_cb cb) {
  int err = fs_fd_op(loop, req, SOON_FS_FCHMOD, file, cb);
  if (err)
    return err;
  req->mode = mode;
  return fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_chown(soon_loop *loop, soon_fs_req *req, const char *path,
                  uint32_t uid, uint32_t gid, soon_fs_cb cb) {
  int err = fs_path_op(loop, req, SOON_FS_CHOWN, path, NULL, cb);
  if (err)
    return err;
  req->uid = uid;
  req->gid = gid;
  return fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_fchown(soon_loop *loop, soon_fs_req *req, int file, uint32_t uid,
                   uint32_t gid, soon_fs_cb cb) {
  int err = fs_fd_op(loop, req, SOON_FS_FCHOWN, file, cb);
  if (err)
    return err;
  req->uid = uid;
  req->gid = gid;
  return fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_utime(soon_loop *loop, soon_fs_req *req, const char *path,
                  double atime, double mtime, soon_fs_cb cb) {
  if (!valid_time(atime) || !valid_time(mtime))
    return -EINVAL;
  int err = fs_path_op(loop, req, SOON_FS_UTIME, path, NULL, cb);
  if (err)
    return err;
  req->atime = atime;
  req->mtime = mtime;
  return fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_futime(soon_loop *loop, soon_fs_req *req, int file, double atime,
                   double mtime, soon_fs_cb cb) {
  if (!valid_time(atime) || !valid_time(mtime))
    return -EINVAL;
  int err = fs_fd_op(loop, req, SOON_FS_FUTIME, file, cb);
  if (err)
    return err;
  req->atime = atime;
  req->mtime = mtime;
  return fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_access(soon_loop *loop, soon_fs_req *req, const char *path,
                   int mode, soon_fs_cb cb) {
  int err = fs_path_op(loop, req, SOON_FS_ACCESS, path, NULL, cb);
  if (err)
    return err;
  req->access_mode = mode;
  return fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_copyfile(soon_loop *loop, soon_fs_req *req, const char *path,
                     const char *new_path, int flags, soon_fs_cb cb) {
  if (flags & ~SOON_FS_COPYFILE_EXCL)
    return -EINVAL;
  int err = fs_path_op(loop, req, SOON_FS_COPYFILE, path, new_path, cb);
  if (err)
    return err;
  req->copy_flags = flags;
  return fs_submit(req, SOON_WORK_SLOW);
}

int soon_fs_scandir(soon_loop *loop, soon_fs_req *req, const char *path,
                    soon_fs_cb cb) {
  int err = fs_path_op(loop, req, SOON_FS_SCANDIR, path, NULL, cb);
  return err ? err : fs_submit(req, SOON_WORK_SLOW);
}

int soon_fs_scandir_next(soon_fs_req *req, soon_dirent *ent) {
  if (!req || !ent || req->type != SOON_FS || req->fs_type != SOON_FS_SCANDIR ||
      !req->scan_done)
    return -EINVAL;
  if (req->result < 0)
    return (int)req->result;
  fs_scan *s = req->ptr;
  if (!s || req->scan_pos >= s->n)
    return SOON_EOF;
  *ent = s->ents[req->scan_pos++];
  return 0;
}

int soon_fs_opendir(soon_loop *loop, soon_fs_req *req, const char *path,
                    soon_fs_cb cb) {
  int err = fs_path_op(loop, req, SOON_FS_OPENDIR, path, NULL, cb);
  return err ? err : fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_readdir(soon_loop *loop, soon_fs_req *req, soon_dir *dir,
                    soon_fs_cb cb) {
  if (!soon__loop_usable(loop) || !req || !cb || !dir || !dir->priv ||
      !dir->dirents || dir->nentries == 0)
    return -EINVAL;
  fs_init(loop, req, SOON_FS_READDIR, cb);
  req->ptr = dir;
  return fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_closedir(soon_loop *loop, soon_fs_req *req, soon_dir *dir,
                     soon_fs_cb cb) {
  if (!soon__loop_usable(loop) || !req || !cb || !dir || !dir->priv)
    return -EINVAL;
  fs_init(loop, req, SOON_FS_CLOSEDIR, cb);
  req->ptr = dir;
  return fs_submit(req, SOON_WORK_FAST);
}

int soon_fs_read_file(soon_loop *loop, soon_fs_req *req, const char *path,
                      size_t max_size, soon_fs_cb cb) {
  int err = fs_path_op(loop, req, SOON_FS_READ_FILE, path, NULL, cb);
  if (err)
    return err;
  req->max_size = max_size;
  return fs_submit(req, SOON_WORK_SLOW);
}
