/* test_fs.c: every file request's success and error paths, vectored I/O and
 * file positions, directories, 10,000 requests in flight, and cancellation. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <soon.h>

#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "helpers.h"

/* ------------------------------------------------------------ fixtures */

static char tmpdir[64];
static pthread_t loop_thread;
static int done_calls; /* callbacks since the last go(): 0 between requests */

static int setup(void **state) {
  (void)state;
  strcpy(tmpdir, "/tmp/soon-fs-XXXXXX");
  if (!mkdtemp(tmpdir))
    return -1;
  loop_thread = pthread_self();
  done_calls = 0;
  return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int teardown(void **state) {
  (void)state;
  /* Some tests take permissions away; give them back so removal works. */
  chmod(tmpdir, 0700);
  return nftw(tmpdir, rm_entry, 64, FTW_DEPTH | FTW_PHYS);
}

/* tmpdir/name, in one of a few rotating buffers so that a call may take
 * several paths. */
static const char *P(const char *name) {
  static char bufs[4][PATH_MAX];
  static unsigned next;
  char *b = bufs[next++ % 4];
  snprintf(b, PATH_MAX, "%s/%s", tmpdir, name);
  return b;
}

static void write_file(const char *path, const void *data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, len), (ssize_t)len);
  close_fd(fd);
}

/* The whole file, NUL-terminated; *len its length. Caller frees. */
static char *slurp(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
  char *buf = malloc((size_t)st.st_size + 1);
  assert_non_null(buf);
  assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
  buf[st.st_size] = '\0';
  close_fd(fd);
  if (len)
    *len = (size_t)st.st_size;
  return buf;
}

static int open_checked(const char *path, int flags) {
  int fd = open(path, flags | O_CLOEXEC, 0644);
  assert_true(fd >= 0);
  return fd;
}

/* A closed fd number that stays closed: far above the lowest free number,
 * which the loop and pool take for their own fds as they need them. */
static int closed_fd(void) {
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  int high = fcntl(fd, F_DUPFD_CLOEXEC, 900);
  assert_true(high >= 900);
  close_fd(fd);
  close_fd(high);
  return high;
}

static void on_fs(soon_fs_req *req) {
  assert_true(pthread_equal(pthread_self(), loop_thread));
  assert_int_equal(req->type, SOON_FS);
  done_calls++;
}

/* Run the loop for one request the call just started: it returned 0, its
 * callback had not run yet (never from inside the call), then ran once. */
static int64_t go(soon_loop *loop, soon_fs_req *req, int rc) {
  assert_int_equal(rc, 0);
  assert_int_equal(done_calls, 0);
  assert_int_equal(soon_run(loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(done_calls, 1);
  done_calls = 0;
  return req->result;
}

/* go() for requests that leave nothing to look at but the result. */
static int64_t res(soon_loop *loop, soon_fs_req *req, int rc) {
  int64_t r = go(loop, req, rc);
  soon_fs_req_cleanup(req);
  return r;
}

/* ------------------------------------------------------------ open, close */

static void test_open_close(void **state) {
  (void)state;
  soon_loop loop;
  soon_fs_req req;
  int token;
  memset(&req, 0, sizeof req);
  loop_init_checked(&loop);
  write_file(P("f"), "x", 1);

  req.data = &token;
  int64_t fd =
      go(&loop, &req, soon_fs_open(&loop, &req, P("f"), O_RDONLY, 0, on_fs));
  assert_true(fd >= 0);
  assert_ptr_equal(req.data, &token); /* the caller's, kept by the call */
  assert_int_equal(req.fs_type, SOON_FS_OPEN);
  assert_string_equal(req.path, P("f"));
  assert_true(fcntl((int)fd, F_GETFD) & FD_CLOEXEC);
  soon_fs_req_cleanup(&req);
  assert_null(req.path);
  soon_fs_req_cleanup(&req); /* idempotent */

  assert_int_equal(res(&loop, &req, soon_fs_close(&loop, &req, (int)fd, on_fs)),
                   0);
  assert_int_equal(fcntl((int)fd, F_GETFD), -1); /* really closed */
  assert_int_equal(res(&loop, &req, soon_fs_close(&loop, &req, (int)fd, on_fs)),
                   -EBADF);

  assert_int_equal(
      res(&loop, &req,
          soon_fs_open(&loop, &req, P("none"), O_RDONLY, 0, on_fs)),
      -ENOENT);
  assert_int_equal(res(&loop, &req,
                       soon_fs_open(&loop, &req, P("f"),
                                    O_WRONLY | O_CREAT | O_EXCL, 0644, on_fs)),
                   -EEXIST);
  fd = go(&loop, &req,
          soon_fs_open(&loop, &req, P("new"), O_WRONLY | O_CREAT, 0600, on_fs));
  assert_true(fd >= 0);
  soon_fs_req_cleanup(&req);
  struct stat st;
  assert_int_equal(stat(P("new"), &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  close_fd((int)fd);

  /* Bad arguments: an error from the call, and no callback ever. */
  assert_int_equal(soon_fs_open(&loop, &req, P("f"), O_RDONLY, 0, NULL),
                   -EINVAL);
  assert_int_equal(soon_fs_open(&loop, &req, NULL, O_RDONLY, 0, on_fs),
                   -EINVAL);
  assert_int_equal(soon_fs_open(NULL, &req, P("f"), O_RDONLY, 0, on_fs),
                   -EINVAL);
  assert_int_equal(soon_fs_open(&loop, NULL, P("f"), O_RDONLY, 0, on_fs),
                   -EINVAL);
  assert_int_equal(soon_fs_close(&loop, &req, -1, on_fs), -EINVAL);
  assert_int_equal(soon_fs_close(&loop, &req, 0, NULL), -EINVAL);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(done_calls, 0);
  soon_fs_req_cleanup(NULL);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ read, write */

static off_t pos(int fd) { return lseek(fd, 0, SEEK_CUR); }

static void test_read_write(void **state) {
  (void)state;
  soon_loop loop;
  soon_fs_req req;
  memset(&req, 0, sizeof req);
  loop_init_checked(&loop);
  int fd = open_checked(P("rw"), O_RDWR | O_CREAT);

  /* Vectored write at an offset: the position does not move. */
  char hello[] = "hello ", world[] = "world";
  soon_buf w2[] = {{hello, 6}, {world, 5}};
  assert_int_equal(
      res(&loop, &req, soon_fs_write(&loop, &req, fd, w2, 2, 0, on_fs)), 11);
  assert_int_equal(pos(fd), 0);
  /* At the current position: it moves. */
  char abc[] = "ABC";
  soon_buf w1[] = {{abc, 3}};
  assert_int_equal(
      res(&loop, &req, soon_fs_write(&loop, &req, fd, w1, 1, -1, on_fs)), 3);
  assert_int_equal(pos(fd), 3);
  char *all = slurp(P("rw"), NULL);
  assert_string_equal(all, "ABClo world");
  free(all);

  /* Vectored read at an offset into 3 + 4 bytes: the position stays. */
  char a[3], b[4];
  soon_buf r2[] = {{a, sizeof a}, {b, sizeof b}};
  assert_int_equal(
      res(&loop, &req, soon_fs_read(&loop, &req, fd, r2, 2, 4, on_fs)), 7);
  assert_memory_equal(a, "o w", 3);
  assert_memory_equal(b, "orld", 4);
  assert_int_equal(pos(fd), 3);
  /* At the current position (3): it moves by what was read. */
  assert_int_equal(
      res(&loop, &req, soon_fs_read(&loop, &req, fd, r2, 2, -1, on_fs)), 7);
  assert_memory_equal(a, "lo ", 3);
  assert_memory_equal(b, "worl", 4);
  assert_int_equal(pos(fd), 10);
  /* Short read at the end, then 0 at EOF. */
  assert_int_equal(
      res(&loop, &req, soon_fs_read(&loop, &req, fd, r2, 2, -1, on_fs)), 1);
  assert_int_equal(a[0], 'd');
  assert_int_equal(
      res(&loop, &req, soon_fs_read(&loop, &req, fd, r2, 2, -1, on_fs)), 0);
  assert_int_equal(
      res(&loop, &req, soon_fs_read(&loop, &req, fd, r2, 2, 100, on_fs)), 0);

  /* More buffers than fit in the request (copied to the heap), and more
   * than IOV_MAX (written in several calls). */
  enum { NB = 2000 };
  soon_buf *many = calloc(NB, sizeof *many);
  char *src = malloc(NB * 3), *dst = calloc(NB * 3, 1);
  for (int i = 0; i < NB * 3; i++)
    src[i] = (char)('a' + i % 26);
  for (int i = 0; i < NB; i++)
    many[i] = (soon_buf){src + 3 * i, 3};
  assert_int_equal(
      res(&loop, &req, soon_fs_write(&loop, &req, fd, many, NB, 0, on_fs)),
      NB * 3);
  for (int i = 0; i < 6; i++)
    many[i] = (soon_buf){dst + 3 * i, 3};
  assert_int_equal(
      res(&loop, &req, soon_fs_read(&loop, &req, fd, many, 6, 0, on_fs)), 18);
  assert_memory_equal(dst, src, 18);
  all = slurp(P("rw"), NULL);
  assert_memory_equal(all, src, NB * 3);
  free(all);
  free(many);
  free(src);
  free(dst);

  /* Errors: a closed fd in the result; bad arguments from the call. */
  int bad = closed_fd();
  assert_int_equal(
      res(&loop, &req, soon_fs_read(&loop, &req, bad, r2, 2, -1, on_fs)),
      -EBADF);
  assert_int_equal(
      res(&loop, &req, soon_fs_write(&loop, &req, bad, w1, 1, 0, on_fs)),
      -EBADF);
  assert_int_equal(soon_fs_read(&loop, &req, fd, NULL, 1, 0, on_fs), -EINVAL);
  assert_int_equal(soon_fs_read(&loop, &req, fd, r2, 0, 0, on_fs), -EINVAL);
  assert_int_equal(soon_fs_read(&loop, &req, -1, r2, 2, 0, on_fs), -EINVAL);
  assert_int_equal(soon_fs_read(&loop, &req, fd, r2, 2, 0, NULL), -EINVAL);
  assert_int_equal(soon_fs_write(&loop, &req, fd, NULL, 1, 0, on_fs), -EINVAL);
  assert_int_equal(soon_fs_write(&loop, &req, fd, w1, 0, 0, on_fs), -EINVAL);
  assert_int_equal(soon_fs_write(&loop, &req, -1, w1, 1, 0, on_fs), -EINVAL);
  assert_int_equal(soon_fs_write(&loop, &req, fd, w1, 1, 0, NULL), -EINVAL);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(done_calls, 0);
  close_fd(fd);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ sendfile */

static void test_sendfile(void **state) {
  (void)state;
  enum { SIZE = 200000 };
  soon_loop loop;
  soon_fs_req req;
  memset(&req, 0, sizeof req);
  loop_init_checked(&loop);
  char *data = malloc(SIZE);
  for (int i = 0; i < SIZE; i++)
    data[i] = (char)(i * 7 + i / 251);
  write_file(P("src"), data, SIZE);
  int in = open_checked(P("src"), O_RDONLY);
  int out = open_checked(P("dst"), O_WRONLY | O_CREAT | O_TRUNC);

  /* From an offset: the input's position does not move. */
  assert_int_equal(
      res(&loop, &req,
          soon_fs_sendfile(&loop, &req, out, in, 10, 50000, on_fs)),
      50000);
  assert_int_equal(pos(in), 0);
  assert_int_equal(pos(out), 50000);
  /* From the position, asking for more than there is: up to EOF. */
  assert_int_equal(lseek(in, 100, SEEK_SET), 100);
  assert_int_equal(
      res(&loop, &req,
          soon_fs_sendfile(&loop, &req, out, in, -1, UINT64_MAX, on_fs)),
      SIZE - 100);
  assert_int_equal(pos(in), SIZE);
  assert_int_equal(
      res(&loop, &req, soon_fs_sendfile(&loop, &req, out, in, -1, 100, on_fs)),
      0);
  size_t len;
  char *got = slurp(P("dst"), &len);
  assert_int_equal(len, 50000 + SIZE - 100);
  assert_memory_equal(got, data + 10, 50000);
  assert_memory_equal(got + 50000, data + 100, SIZE - 100);
  free(got);

  /* Into a pipe, the classic use. */
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  assert_int_equal(
      res(&loop, &req, soon_fs_sendfile(&loop, &req, fds[1], in, 5, 4, on_fs)),
      4);
  char four[4];
  assert_int_equal(read(fds[0], four, 4), 4);
  assert_memory_equal(four, data + 5, 4);
  close_fd(fds[0]);
  close_fd(fds[1]);

  int bad = closed_fd();
  assert_int_equal(
      res(&loop, &req, soon_fs_sendfile(&loop, &req, out, bad, 0, 10, on_fs)),
      -EBADF);
  assert_int_equal(
      res(&loop, &req, soon_fs_sendfile(&loop, &req, bad, in, 0, 10, on_fs)),
      -EBADF);
  assert_int_equal(soon_fs_sendfile(&loop, &req, -1, in, 0, 1, on_fs), -EINVAL);
  assert_int_equal(soon_fs_sendfile(&loop, &req, out, -1, 0, 1, on_fs),
                   -EINVAL);
  assert_int_equal(soon_fs_sendfile(&loop, &req, out, in, 0, 1, NULL), -EINVAL);
  close_fd(in);
  close_fd(out);
  free(data);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ stat */

static void test_stat(void **state) {
  (void)state;
  soon_loop loop;
  soon_fs_req req;
  memset(&req, 0, sizeof req);
  loop_init_checked(&loop);
  write_file(P("f"), "12345", 5);
  assert_int_equal(symlink("f", P("l")), 0);
  struct stat st;
  assert_int_equal(stat(P("f"), &st), 0);

  assert_int_equal(res(&loop, &req, soon_fs_stat(&loop, &req, P("f"), on_fs)),
                   0);
  assert_int_equal(req.statbuf.size, 5);
  assert_true(S_ISREG(req.statbuf.mode));
  assert_int_equal(req.statbuf.ino, st.st_ino);
  assert_int_equal(req.statbuf.dev, st.st_dev);
  assert_int_equal(req.statbuf.uid, st.st_uid);
  assert_int_equal(req.statbuf.nlink, 1);
  assert_int_equal(req.statbuf.mtim.sec, st.st_mtim.tv_sec);
  assert_int_equal(req.statbuf.mtim.nsec, st.st_mtim.tv_nsec);
  /* stat follows the link, lstat does not. */
  assert_int_equal(res(&loop, &req, soon_fs_stat(&loop, &req, P("l"), on_fs)),
                   0);
  assert_true(S_ISREG(req.statbuf.mode));
  assert_int_equal(req.statbuf.ino, st.st_ino);
  assert_int_equal(res(&loop, &req, soon_fs_lstat(&loop, &req, P("l"), on_fs)),
                   0);
  assert_true(S_ISLNK(req.statbuf.mode));
  assert_int_equal(req.statbuf.size, 1); /* the target's name, "f" */

  int fd = open_checked(P("f"), O_RDONLY);
  assert_int_equal(res(&loop, &req, soon_fs_fstat(&loop, &req, fd, on_fs)), 0);
  assert_int_equal(req.statbuf.ino, st.st_ino);
  assert_int_equal(req.statbuf.size, 5);
  close_fd(fd);

  assert_int_equal(go(&loop, &req, soon_fs_statfs(&loop, &req, tmpdir, on_fs)),
                   0);
  soon_statfs *sf = req.ptr;
  assert_non_null(sf);
  assert_true(sf->bsize > 0);
  assert_true(sf->blocks >= sf->bfree);
  soon_fs_req_cleanup(&req);
  assert_null(req.ptr);

  assert_int_equal(
      res(&loop, &req, soon_fs_stat(&loop, &req, P("none"), on_fs)), -ENOENT);
  assert_int_equal(
      res(&loop, &req, soon_fs_lstat(&loop, &req, P("none"), on_fs)), -ENOENT);
  assert_int_equal(
      res(&loop, &req, soon_fs_statfs(&loop, &req, P("none"), on_fs)), -ENOENT);
  assert_null(req.ptr);
  assert_int_equal(
      res(&loop, &req, soon_fs_fstat(&loop, &req, closed_fd(), on_fs)), -EBADF);
  assert_int_equal(soon_fs_stat(&loop, &req, NULL, on_fs), -EINVAL);
  assert_int_equal(soon_fs_lstat(&loop, &req, NULL, on_fs), -EINVAL);
  assert_int_equal(soon_fs_statfs(&loop, &req, NULL, on_fs), -EINVAL);
  assert_int_equal(soon_fs_stat(&loop, &req, P("f"), NULL), -EINVAL);
  assert_int_equal(soon_fs_fstat(&loop, &req, -1, on_fs), -EINVAL);
  loop_close_checked(&loop);
}

/* ------------------------------------------------ fsync, ftruncate */

static void test_sync_truncate(void **state) {
  (void)state;
  soon_loop loop;
  soon_fs_req req;
  memset(&req, 0, sizeof req);
  loop_init_checked(&loop);
  write_file(P("f"), "0123456789", 10);
  int fd = open_checked(P("f"), O_RDWR);
  assert_int_equal(res(&loop, &req, soon_fs_fsync(&loop, &req, fd, on_fs)), 0);
  assert_int_equal(res(&loop, &req, soon_fs_fdatasync(&loop, &req, fd, on_fs)),
                   0);
  assert_int_equal(
      res(&loop, &req, soon_fs_ftruncate(&loop, &req, fd, 3, on_fs)), 0);
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
  assert_int_equal(st.st_size, 3);
  assert_int_equal(
      res(&loop, &req, soon_fs_ftruncate(&loop, &req, fd, 5000, on_fs)), 0);
  assert_int_equal(fstat(fd, &st), 0);
  assert_int_equal(st.st_size, 5000);
  close_fd(fd);

  int bad = closed_fd();
  assert_int_equal(res(&loop, &req, soon_fs_fsync(&loop, &req, bad, on_fs)),
                   -EBADF);
  assert_int_equal(res(&loop, &req, soon_fs_fdatasync(&loop, &req, bad, on_fs)),
                   -EBADF);
  assert_int_equal(
      res(&loop, &req, soon_fs_ftruncate(&loop, &req, bad, 0, on_fs)), -EBADF);
  assert_int_equal(soon_fs_fsync(&loop, &req, -1, on_fs), -EINVAL);
  assert_int_equal(soon_fs_fdatasync(&loop, &req, 0, NULL), -EINVAL);
  assert_int_equal(soon_fs_ftruncate(&loop, &req, 0, -1, on_fs), -EINVAL);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ directories */

static void test_mkdir_rmdir_mkdtemp(void **state) {
  (void)state;
  soon_loop loop;
  soon_fs_req req;
  memset(&req, 0, sizeof req);
  loop_init_checked(&loop);
  struct stat st;

  assert_int_equal(
      res(&loop, &req, soon_fs_mkdir(&loop, &req, P("d"), 0750, on_fs)), 0);
  assert_int_equal(stat(P("d"), &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(
      res(&loop, &req, soon_fs_mkdir(&loop, &req, P("d"), 0750, on_fs)),
      -EEXIST);
  assert_int_equal(
      res(&loop, &req, soon_fs_mkdir(&loop, &req, P("no/d"), 0750, on_fs)),
      -ENOENT);

  write_file(P("d/f"), "x", 1);
  assert_int_equal(res(&loop, &req, soon_fs_rmdir(&loop, &req, P("d"), on_fs)),
                   -ENOTEMPTY);
  assert_int_equal(unlink(P("d/f")), 0);
  assert_int_equal(res(&loop, &req, soon_fs_rmdir(&loop, &req, P("d"), on_fs)),
                   0);
  assert_int_equal(stat(P("d"), &st), -1);
  assert_int_equal(res(&loop, &req, soon_fs_rmdir(&loop, &req, P("d"), on_fs)),
                   -ENOENT);
  write_file(P("f"), "x", 1);
  assert_int_equal(res(&loop, &req, soon_fs_rmdir(&loop, &req, P("f"), on_fs)),
                   -ENOTDIR);

  /* mkdtemp: req->path becomes the directory made. */
  char tpl[PATH_MAX];
  snprintf(tpl, sizeof tpl, "%s", P("t-XXXXXX"));
  assert_int_equal(go(&loop, &req, soon_fs_mkdtemp(&loop, &req, tpl, on_fs)),
                   0);
  assert_string_not_equal(req.path, tpl);
  assert_int_equal(strlen(req.path), strlen(tpl));
  assert_memory_equal(req.path, tpl, strlen(tpl) - 6);
  assert_int_equal(stat(req.path, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(st.st_mode & 0777, 0700);
  assert_string_equal(tpl + strlen(tpl) - 6, "XXXXXX"); /* ours untouched */
  soon_fs_req_cleanup(&req);
  assert_int_equal(
      res(&loop, &req, soon_fs_mkdtemp(&loop, &req, P("bad-template"), on_fs)),
      -EINVAL);
  assert_int_equal(
      res(&loop, &req, soon_fs_mkdtemp(&loop, &req, P("no/t-XXXXXX"), on_fs)),
      -ENOENT);

  assert_int_equal(soon_fs_mkdir(&loop, &req, NULL, 0700, on_fs), -EINVAL);
  assert_int_equal(soon_fs_mkdir(&loop, &req, P("x"), 0700, NULL), -EINVAL);
  assert_int_equal(soon_fs_rmdir(&loop, &req, NULL, on_fs), -EINVAL);
  assert_int_equal(soon_fs_mkdtemp(&loop, &req, NULL, on_fs), -EINVAL);
  assert_int_equal(soon_fs_mkdtemp(&loop, &req, tpl, NULL), -EINVAL);
  loop_close_checked(&loop);
}

/* --------------------------------------------- links, rename, unlink */

static void test_links_rename_unlink(void **state) {
  (void)state;
  soon_loop loop;
  soon_fs_req req;
  memset(&req, 0, sizeof req);
  loop_init_checked(&loop);
  write_file(P("a"), "data", 4);
  struct stat st;

  assert_int_equal(
      res(&loop, &req, soon_fs_rename(&loop, &req, P("a"), P("b"), on_fs)), 0);
  assert_int_equal(stat(P("a"), &st), -1);
  assert_int_equal(stat(P("b"), &st), 0);
  assert_int_equal(
      res(&loop, &req, soon_fs_rename(&loop, &req, P("a"), P("c"), on_fs)),
      -ENOENT);

  assert_int_equal(
      res(&loop, &req, soon_fs_link(&loop, &req, P("b"), P("h"), on_fs)), 0);
  assert_int_equal(stat(P("b"), &st), 0);
  assert_int_equal(st.st_nlink, 2);
  assert_int_equal(
      res(&loop, &req, soon_fs_link(&loop, &req, P("b"), P("h"), on_fs)),
      -EEXIST);
  assert_int_equal(
      res(&loop, &req, soon_fs_link(&loop, &req, P("none"), P("h2"), on_fs)),
      -ENOENT);

  assert_int_equal(
      res(&loop, &req, soon_fs_symlink(&loop, &req, "b", P("s"), on_fs)), 0);
  assert_int_equal(lstat(P("s"), &st), 0);
  assert_true(S_ISLNK(st.st_mode));
  assert_int_equal(
      res(&loop, &req, soon_fs_symlink(&loop, &req, "b", P("s"), on_fs)),
      -EEXIST);
  assert_int_equal(
      go(&loop, &req, soon_fs_readlink(&loop, &req, P("s"), on_fs)), 0);
  assert_string_equal(req.ptr, "b");
  soon_fs_req_cleanup(&req);
  /* A target longer than readlink's first guess. */
  char longname[600];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  assert_int_equal(symlink(longname, P("long")), 0);
  assert_int_equal(
      go(&loop, &req, soon_fs_readlink(&loop, &req, P("long"), on_fs)), 0);
  assert_string_equal(req.ptr, longname);
  soon_fs_req_cleanup(&req);
  assert_int_equal(
      res(&loop, &req, soon_fs_readlink(&loop, &req, P("b"), on_fs)), -EINVAL);
  /* On an error there is no text, before the cleanup too. */
  assert_int_equal(
      go(&loop, &req, soon_fs_readlink(&loop, &req, P("none"), on_fs)),
      -ENOENT);
  assert_null(req.ptr);
  soon_fs_req_cleanup(&req);
  assert_null(req.ptr);

  assert_int_equal(
      go(&loop, &req, soon_fs_realpath(&loop, &req, P("s"), on_fs)), 0);
  char *expect = realpath(P("b"), NULL);
  assert_non_null(expect);
  assert_string_equal(req.ptr, expect);
  free(expect);
  soon_fs_req_cleanup(&req);
  assert_int_equal(
      res(&loop, &req, soon_fs_realpath(&loop, &req, P("none"), on_fs)),
      -ENOENT);

  assert_int_equal(res(&loop, &req, soon_fs_unlink(&loop, &req, P("h"), on_fs)),
                   0);
  assert_int_equal(stat(P("h"), &st), -1);
  assert_int_equal(res(&loop, &req, soon_fs_unlink(&loop, &req, P("h"), on_fs)),
                   -ENOENT);
  assert_int_equal(unlink(P("long")), 0);

  assert_int_equal(soon_fs_rename(&loop, &req, P("b"), NULL, on_fs), -EINVAL);
  assert_int_equal(soon_fs_rename(&loop, &req, NULL, P("b"), on_fs), -EINVAL);
  assert_int_equal(soon_fs_link(&loop, &req, P("b"), NULL, on_fs), -EINVAL);
  assert_int_equal(soon_fs_symlink(&loop, &req, NULL, P("x"), on_fs), -EINVAL);
  assert_int_equal(soon_fs_symlink(&loop, &req, "b", P("x"), NULL), -EINVAL);
  assert_int_equal(soon_fs_readlink(&loop, &req, NULL, on_fs), -EINVAL);
  assert_int_equal(soon_fs_realpath(&loop, &req, NULL, on_fs), -EINVAL);
  assert_int_equal(soon_fs_unlink(&loop, &req, NULL, on_fs), -EINVAL);
  assert_int_equal(soon_fs_unlink(&loop, &req, P("b"), NULL), -EINVAL);
  loop_close_checked(&loop);
}

/* ------------------------------------- chmod, chown, utime, access */

static void test_modes_owners_times(void **state) {
  (void)state;
  soon_loop loop;
  soon_fs_req req;
  memset(&req, 0, sizeof req);
  loop_init_checked(&loop);
  write_file(P("f"), "x", 1);
  struct stat st;
  int bad = closed_fd();

  assert_int_equal(
      res(&loop, &req, soon_fs_chmod(&loop, &req, P("f"), 0604, on_fs)), 0);
  assert_int_equal(stat(P("f"), &st), 0);
  assert_int_equal(st.st_mode & 07777, 0604);
  assert_int_equal(
      res(&loop, &req, soon_fs_chmod(&loop, &req, P("none"), 0600, on_fs)),
      -ENOENT);
  int fd = open_checked(P("f"), O_RDONLY);
  assert_int_equal(
      res(&loop, &req, soon_fs_fchmod(&loop, &req, fd, 0640, on_fs)), 0);
  assert_int_equal(stat(P("f"), &st), 0);
  assert_int_equal(st.st_mode & 07777, 0640);
  assert_int_equal(
      res(&loop, &req, soon_fs_fchmod(&loop, &req, bad, 0640, on_fs)), -EBADF);

  /* To one's own ids (allowed to anyone), and -1: leave as is. */
  assert_int_equal(
      res(&loop, &req,
          soon_fs_chown(&loop, &req, P("f"), getuid(), getgid(), on_fs)),
      0);
  assert_int_equal(
      res(&loop, &req,
          soon_fs_fchown(&loop, &req, fd, UINT32_MAX, UINT32_MAX, on_fs)),
      0);
  assert_int_equal(
      res(&loop, &req,
          soon_fs_chown(&loop, &req, P("none"), getuid(), getgid(), on_fs)),
      -ENOENT);
  assert_int_equal(
      res(&loop, &req, soon_fs_fchown(&loop, &req, bad, 0, 0, on_fs)), -EBADF);

  /* Fractions of seconds survive (the file system keeps nanoseconds). */
  assert_int_equal(res(&loop, &req,
                       soon_fs_utime(&loop, &req, P("f"), 1000000000.5,
                                     1234567890.25, on_fs)),
                   0);
  assert_int_equal(stat(P("f"), &st), 0);
  assert_int_equal(st.st_atim.tv_sec, 1000000000);
  assert_int_equal(st.st_atim.tv_nsec, 500000000);
  assert_int_equal(st.st_mtim.tv_sec, 1234567890);
  assert_int_equal(st.st_mtim.tv_nsec, 250000000);
  assert_int_equal(
      res(&loop, &req, soon_fs_futime(&loop, &req, fd, 42.7, -1.5, on_fs)), 0);
  assert_int_equal(fstat(fd, &st), 0);
  assert_int_equal(st.st_atim.tv_sec, 42);
  assert_int_equal(st.st_atim.tv_nsec, 700000000); /* rounded, not cut */
  assert_int_equal(st.st_mtim.tv_sec, -2);         /* -1.5 is -2 + 0.5 */
  assert_int_equal(st.st_mtim.tv_nsec, 500000000);
  assert_int_equal(
      res(&loop, &req, soon_fs_utime(&loop, &req, P("none"), 1, 1, on_fs)),
      -ENOENT);
  assert_int_equal(
      res(&loop, &req, soon_fs_futime(&loop, &req, bad, 1, 1, on_fs)), -EBADF);
  close_fd(fd);

  assert_int_equal(
      res(&loop, &req, soon_fs_access(&loop, &req, P("f"), F_OK, on_fs)), 0);
  assert_int_equal(
      res(&loop, &req, soon_fs_access(&loop, &req, P("f"), R_OK | W_OK, on_fs)),
      0);
  assert_int_equal(
      res(&loop, &req, soon_fs_access(&loop, &req, P("none"), F_OK, on_fs)),
      -ENOENT);
  if (geteuid() != 0) { /* root may do anything */
    assert_int_equal(chmod(P("f"), 0400), 0);
    assert_int_equal(
        res(&loop, &req, soon_fs_access(&loop, &req, P("f"), W_OK, on_fs)),
        -EACCES);
  }

  assert_int_equal(soon_fs_chmod(&loop, &req, NULL, 0600, on_fs), -EINVAL);
  assert_int_equal(soon_fs_fchmod(&loop, &req, -1, 0600, on_fs), -EINVAL);
  assert_int_equal(soon_fs_chown(&loop, &req, NULL, 0, 0, on_fs), -EINVAL);
  assert_int_equal(soon_fs_fchown(&loop, &req, -1, 0, 0, on_fs), -EINVAL);
  assert_int_equal(soon_fs_utime(&loop, &req, NULL, 1, 1, on_fs), -EINVAL);
  double nan = 0.0 / 0.0;
  assert_int_equal(soon_fs_utime(&loop, &req, P("f"), nan, 1, on_fs), -EINVAL);
  assert_int_equal(soon_fs_futime(&loop, &req, 0, 1, 1e300, on_fs), -EINVAL);
  assert_int_equal(soon_fs_futime(&loop, &req, -1, 1, 1, on_fs), -EINVAL);
  assert_int_equal(soon_fs_access(&loop, &req, NULL, F_OK, on_fs), -EINVAL);
  assert_int_equal(soon_fs_access(&loop, &req, P("f"), F_OK, NULL), -EINVAL);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ copyfile */

static void test_copyfile(void **state) {
  (void)state;
  enum { SIZE = 1 << 20 };
  soon_loop loop;
  soon_fs_req req;
  memset(&req, 0, sizeof req);
  loop_init_checked(&loop);
  char *data = malloc(SIZE);
  for (int i = 0; i < SIZE; i++)
    data[i] = (char)(i ^ (i >> 9));
  write_file(P("src"), data, SIZE);
  assert_int_equal(chmod(P("src"), 0751), 0);
  struct stat st;

  assert_int_equal(
      res(&loop, &req,
          soon_fs_copyfile(&loop, &req, P("src"), P("dst"), 0, on_fs)),
      0);
  size_t len;
  char *got = slurp(P("dst"), &len);
  assert_int_equal(len, SIZE);
  assert_memory_equal(got, data, SIZE);
  free(got);
  assert_int_equal(stat(P("dst"), &st), 0);
  assert_int_equal(st.st_mode & 07777, 0751);

  /* EXCL onto an existing file: -EEXIST, and that file is left alone. */
  write_file(P("old"), "keep me", 7);
  assert_int_equal(res(&loop, &req,
                       soon_fs_copyfile(&loop, &req, P("src"), P("old"),
                                        SOON_FS_COPYFILE_EXCL, on_fs)),
                   -EEXIST);
  got = slurp(P("old"), NULL);
  assert_string_equal(got, "keep me");
  free(got);
  /* Without EXCL it is replaced, longer or shorter. */
  write_file(P("small"), "tiny", 4);
  assert_int_equal(
      res(&loop, &req,
          soon_fs_copyfile(&loop, &req, P("small"), P("old"), 0, on_fs)),
      0);
  got = slurp(P("old"), NULL);
  assert_string_equal(got, "tiny");
  free(got);
  /* Onto itself: nothing lost. */
  assert_int_equal(
      res(&loop, &req,
          soon_fs_copyfile(&loop, &req, P("small"), P("small"), 0, on_fs)),
      0);
  got = slurp(P("small"), NULL);
  assert_string_equal(got, "tiny");
  free(got);
  /* A file whose size stat does not tell. */
  assert_int_equal(res(&loop, &req,
                       soon_fs_copyfile(&loop, &req, "/proc/self/status",
                                        P("status"), 0, on_fs)),
                   0);
  got = slurp(P("status"), &len);
  assert_true(len > 0);
  assert_non_null(strstr(got, "Name:"));
  free(got);

  assert_int_equal(
      res(&loop, &req,
          soon_fs_copyfile(&loop, &req, P("none"), P("dst2"), 0, on_fs)),
      -ENOENT);
  assert_int_equal(stat(P("dst2"), &st), -1); /* nothing made */
  assert_int_equal(
      res(&loop, &req,
          soon_fs_copyfile(&loop, &req, P("src"), P("no/dst"), 0, on_fs)),
      -ENOENT);
  assert_int_equal(mkdir(P("dir"), 0700), 0);
  assert_int_equal(
      res(&loop, &req,
          soon_fs_copyfile(&loop, &req, P("dir"), P("dst3"), 0, on_fs)),
      -EISDIR);
  assert_int_equal(stat(P("dst3"), &st), -1);

  assert_int_equal(soon_fs_copyfile(&loop, &req, NULL, P("x"), 0, on_fs),
                   -EINVAL);
  assert_int_equal(soon_fs_copyfile(&loop, &req, P("src"), NULL, 0, on_fs),
                   -EINVAL);
  assert_int_equal(soon_fs_copyfile(&loop, &req, P("src"), P("x"), 0, NULL),
                   -EINVAL);
  assert_int_equal(soon_fs_copyfile(&loop, &req, P("src"), P("x"), 8, on_fs),
                   -EINVAL);
  free(data);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ scandir */

static void test_scandir(void **state) {
  (void)state;
  soon_loop loop;
  soon_fs_req req;
  soon_dirent ent;
  memset(&req, 0, sizeof req);
  loop_init_checked(&loop);
  assert_int_equal(mkdir(P("s"), 0700), 0);
  write_file(P("s/b"), "", 0);
  write_file(P("s/a"), "", 0);
  assert_int_equal(mkdir(P("s/d"), 0700), 0);
  assert_int_equal(symlink("a", P("s/c")), 0);
  assert_int_equal(mkfifo(P("s/e"), 0600), 0);

  /* Before it finished (and on a request of another kind): -EINVAL. */
  assert_int_equal(soon_fs_scandir_next(&req, &ent), -EINVAL);
  assert_int_equal(soon_fs_scandir(&loop, &req, P("s"), on_fs), 0);
  assert_int_equal(soon_fs_scandir_next(&req, &ent), -EINVAL);
  assert_int_equal(go(&loop, &req, 0), 5);
  const char *names[] = {"a", "b", "c", "d", "e"};
  soon_dirent_type types[] = {SOON_DIRENT_FILE, SOON_DIRENT_FILE,
                              SOON_DIRENT_LINK, SOON_DIRENT_DIR,
                              SOON_DIRENT_FIFO};
  for (int i = 0; i < 5; i++) {
    assert_int_equal(soon_fs_scandir_next(&req, &ent), 0);
    assert_string_equal(ent.name, names[i]);
    assert_int_equal(ent.type, types[i]);
  }
  assert_int_equal(soon_fs_scandir_next(&req, &ent), SOON_EOF);
  assert_int_equal(soon_fs_scandir_next(&req, &ent), SOON_EOF);
  assert_int_equal(soon_fs_scandir_next(&req, NULL), -EINVAL);
  assert_int_equal(soon_fs_scandir_next(NULL, &ent), -EINVAL);
  soon_fs_req_cleanup(&req);
  assert_int_equal(soon_fs_scandir_next(&req, &ent), -EINVAL);

  /* An empty directory. */
  assert_int_equal(
      go(&loop, &req, soon_fs_scandir(&loop, &req, P("s/d"), on_fs)), 0);
  assert_int_equal(soon_fs_scandir_next(&req, &ent), SOON_EOF);
  soon_fs_req_cleanup(&req);

  /* Errors: in the result, and again from scandir_next. */
  assert_int_equal(
      go(&loop, &req, soon_fs_scandir(&loop, &req, P("none"), on_fs)), -ENOENT);
  assert_int_equal(soon_fs_scandir_next(&req, &ent), -ENOENT);
  soon_fs_req_cleanup(&req);
  assert_int_equal(
      res(&loop, &req, soon_fs_scandir(&loop, &req, P("s/a"), on_fs)),
      -ENOTDIR);

  assert_int_equal(res(&loop, &req, soon_fs_stat(&loop, &req, P("s"), on_fs)),
                   0);
  assert_int_equal(soon_fs_scandir_next(&req, &ent), -EINVAL);
  assert_int_equal(soon_fs_scandir(&loop, &req, NULL, on_fs), -EINVAL);
  assert_int_equal(soon_fs_scandir(&loop, &req, P("s"), NULL), -EINVAL);
  loop_close_checked(&loop);
}

/* ------------------------------------------------ opendir, readdir */

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void test_opendir_readdir(void **state) {
  (void)state;
  soon_loop loop;
  soon_fs_req req, rreq;
  memset(&req, 0, sizeof req);
  memset(&rreq, 0, sizeof rreq);
  loop_init_checked(&loop);
  assert_int_equal(mkdir(P("d"), 0700), 0);
  write_file(P("d/one"), "", 0);
  write_file(P("d/two"), "", 0);
  write_file(P("d/three"), "", 0);
  assert_int_equal(mkdir(P("d/four"), 0700), 0);
  assert_int_equal(symlink("one", P("d/five")), 0);

  assert_int_equal(go(&loop, &req, soon_fs_opendir(&loop, &req, P("d"), on_fs)),
                   0);
  soon_dir *dir = req.ptr;
  assert_non_null(dir);
  /* The stream is closedir's to free, not the opendir request's. */
  soon_fs_req_cleanup(&req);

  soon_dirent ents[2];
  assert_int_equal(soon_fs_readdir(&loop, &rreq, dir, on_fs), -EINVAL);
  dir->dirents = ents;
  assert_int_equal(soon_fs_readdir(&loop, &rreq, dir, on_fs), -EINVAL);
  dir->nentries = 2;
  assert_int_equal(soon_fs_readdir(&loop, &rreq, dir, NULL), -EINVAL);
  assert_int_equal(soon_fs_readdir(&loop, &rreq, NULL, on_fs), -EINVAL);

  char *seen[5];
  int nseen = 0, batches[4], nb = 0;
  for (;;) {
    int64_t n = res(&loop, &rreq, soon_fs_readdir(&loop, &rreq, dir, on_fs));
    assert_true(n >= 0 && n <= 2);
    batches[nb++] = (int)n;
    if (n == 0)
      break;
    for (int i = 0; i < n; i++) {
      assert_true(nseen < 5);
      seen[nseen++] = strdup(ents[i].name);
      soon_dirent_type t = ents[i].type;
      if (!strcmp(ents[i].name, "four"))
        assert_int_equal(t, SOON_DIRENT_DIR);
      else if (!strcmp(ents[i].name, "five"))
        assert_int_equal(t, SOON_DIRENT_LINK);
      else
        assert_int_equal(t, SOON_DIRENT_FILE);
    }
  }
  assert_int_equal(nb, 4);
  assert_int_equal(batches[0], 2);
  assert_int_equal(batches[1], 2);
  assert_int_equal(batches[2], 1);
  assert_int_equal(batches[3], 0);
  qsort(seen, 5, sizeof *seen, cmp_str);
  const char *expect[] = {"five", "four", "one", "three", "two"};
  for (int i = 0; i < 5; i++) {
    assert_string_equal(seen[i], expect[i]);
    free(seen[i]);
  }
  /* Past the end it stays at the end. */
  assert_int_equal(res(&loop, &rreq, soon_fs_readdir(&loop, &rreq, dir, on_fs)),
                   0);

  assert_int_equal(soon_fs_closedir(&loop, &rreq, NULL, on_fs), -EINVAL);
  assert_int_equal(soon_fs_closedir(&loop, &rreq, dir, NULL), -EINVAL);
  assert_int_equal(
      res(&loop, &rreq, soon_fs_closedir(&loop, &rreq, dir, on_fs)), 0);

  /* A stream closed early, with names of a batch still held. */
  assert_int_equal(go(&loop, &req, soon_fs_opendir(&loop, &req, P("d"), on_fs)),
                   0);
  dir = req.ptr;
  dir->dirents = ents;
  dir->nentries = 2;
  assert_int_equal(res(&loop, &rreq, soon_fs_readdir(&loop, &rreq, dir, on_fs)),
                   2);
  assert_int_equal(
      res(&loop, &rreq, soon_fs_closedir(&loop, &rreq, dir, on_fs)), 0);
  soon_fs_req_cleanup(&req);

  assert_int_equal(
      res(&loop, &req, soon_fs_opendir(&loop, &req, P("none"), on_fs)),
      -ENOENT);
  assert_null(req.ptr);
  assert_int_equal(
      res(&loop, &req, soon_fs_opendir(&loop, &req, P("d/one"), on_fs)),
      -ENOTDIR);
  assert_int_equal(soon_fs_opendir(&loop, &req, NULL, on_fs), -EINVAL);
  assert_int_equal(soon_fs_opendir(&loop, &req, P("d"), NULL), -EINVAL);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ read_file */

static void test_read_file(void **state) {
  (void)state;
  soon_loop loop;
  soon_fs_req req;
  memset(&req, 0, sizeof req);
  loop_init_checked(&loop);
  const char content[] = "line one\nline\0two\n"; /* with a NUL inside */
  size_t clen = sizeof content - 1;
  write_file(P("f"), content, clen);

  assert_int_equal(
      go(&loop, &req, soon_fs_read_file(&loop, &req, P("f"), 1 << 20, on_fs)),
      clen);
  assert_memory_equal(req.ptr, content, clen);
  assert_int_equal(((char *)req.ptr)[clen], '\0');
  soon_fs_req_cleanup(&req);
  assert_null(req.ptr);
  /* Exactly max_size is fine; one byte over is not. */
  assert_int_equal(
      go(&loop, &req, soon_fs_read_file(&loop, &req, P("f"), clen, on_fs)),
      clen);
  assert_memory_equal(req.ptr, content, clen);
  soon_fs_req_cleanup(&req);
  assert_int_equal(
      go(&loop, &req, soon_fs_read_file(&loop, &req, P("f"), clen - 1, on_fs)),
      -EFBIG);
  assert_null(req.ptr);
  soon_fs_req_cleanup(&req);

  write_file(P("empty"), "", 0);
  assert_int_equal(
      go(&loop, &req, soon_fs_read_file(&loop, &req, P("empty"), 0, on_fs)), 0);
  assert_string_equal(req.ptr, "");
  soon_fs_req_cleanup(&req);

  /* /proc files say st_size 0: read to EOF, and bounded all the same. */
  int64_t n =
      go(&loop, &req,
         soon_fs_read_file(&loop, &req, "/proc/self/status", 1 << 20, on_fs));
  assert_true(n > 0);
  assert_int_equal(strlen(req.ptr), n);
  assert_non_null(strstr(req.ptr, "Name:"));
  soon_fs_req_cleanup(&req);
  assert_int_equal(
      res(&loop, &req,
          soon_fs_read_file(&loop, &req, "/proc/self/status", 10, on_fs)),
      -EFBIG);
  /* Bigger than the first chunk of 4 KiB. */
  n = go(&loop, &req,
         soon_fs_read_file(&loop, &req, "/proc/self/maps", 1 << 24, on_fs));
  assert_true(n > 0);
  assert_int_equal(strlen(req.ptr), n);
  soon_fs_req_cleanup(&req);

  assert_int_equal(
      res(&loop, &req, soon_fs_read_file(&loop, &req, P("none"), 100, on_fs)),
      -ENOENT);
  assert_int_equal(
      res(&loop, &req, soon_fs_read_file(&loop, &req, tmpdir, 100, on_fs)),
      -EISDIR);
  assert_int_equal(soon_fs_read_file(&loop, &req, NULL, 100, on_fs), -EINVAL);
  assert_int_equal(soon_fs_read_file(&loop, &req, P("f"), 100, NULL), -EINVAL);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ many */

enum { NFILES = 10000 };

/* File i's content: distinct for every i, and of varying length. */
static size_t file_content(int i, char *buf, size_t size) {
  int n = snprintf(buf, size, "file %05d:", i);
  for (int k = 0; k < i % 97; k++)
    n += snprintf(buf + n, size - (size_t)n, "%c", 'a' + (i + k) % 26);
  return (size_t)n;
}

/* The 10,000 files, made once for the tests that share them (making them
 * is most of those tests' time). */
static char manydir[64];

static const char *many_path(int i) {
  static char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s/f%05d", manydir, i);
  return buf;
}

static int group_setup(void **state) {
  (void)state;
  char buf[160];
  strcpy(manydir, "/tmp/soon-fs-many-XXXXXX");
  if (!mkdtemp(manydir))
    return -1;
  for (int i = 0; i < NFILES; i++) {
    int fd = open(many_path(i), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    size_t len = file_content(i, buf, sizeof buf);
    if (fd < 0 || write(fd, buf, len) != (ssize_t)len || close(fd) != 0)
      return -1;
  }
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  return manydir[0] ? nftw(manydir, rm_entry, 64, FTW_DEPTH | FTW_PHYS) : 0;
}

/* Lift the soft fd limit to the hard one; the soft limit after. */
static rlim_t raise_nofile(void) {
  struct rlimit rl;
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
  }
  return rl.rlim_cur;
}

typedef struct {
  soon_fs_req req;
  int index;
  int calls;
} read_job;

static void on_read_file(soon_fs_req *req) {
  read_job *j = (read_job *)req;
  char buf[160];
  size_t len = file_content(j->index, buf, sizeof buf);
  j->calls++;
  assert_int_equal(req->result, len);
  assert_memory_equal(req->ptr, buf, len);
  assert_int_equal(((char *)req->ptr)[len], '\0');
  soon_fs_req_cleanup(req);
}

/* All 10,000 requests are in flight at once: read_file holds an fd only
 * while a worker runs it, so the fd limit does not bound the number. */
static void test_many_read_file(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_checked(&loop);
  read_job *jobs = calloc(NFILES, sizeof *jobs);
  assert_non_null(jobs);
  for (int i = 0; i < NFILES; i++) {
    jobs[i].index = i;
    assert_int_equal(soon_fs_read_file(&loop, &jobs[i].req, many_path(i), 4096,
                                       on_read_file),
                     0);
  }
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  for (int i = 0; i < NFILES; i++)
    assert_int_equal(jobs[i].calls, 1);
  free(jobs);
  loop_close_checked(&loop);
}

/* open -> read -> close chains, each holding one fd, as many at once as
 * the fd limit allows up to 1,000; each chain takes the next file when done. */
typedef struct chain {
  soon_fs_req req;
  int index, fd;
  char buf[160];
  struct chains *all;
} chain;

typedef struct chains {
  int next, done;
  int *reads; /* per file */
} chains;

static void chain_start(chain *c);

static void chain_closed(soon_fs_req *req) {
  chain *c = (chain *)req;
  assert_int_equal(req->result, 0);
  soon_fs_req_cleanup(req);
  c->all->done++;
  chain_start(c);
}

static void chain_read(soon_fs_req *req) {
  chain *c = (chain *)req;
  char expect[160];
  size_t len = file_content(c->index, expect, sizeof expect);
  assert_int_equal(req->result, len);
  assert_memory_equal(c->buf, expect, len);
  c->all->reads[c->index]++;
  soon_fs_req_cleanup(req);
  assert_int_equal(soon_fs_close(req->loop, req, c->fd, chain_closed), 0);
}

static void chain_opened(soon_fs_req *req) {
  chain *c = (chain *)req;
  assert_true(req->result >= 0);
  c->fd = (int)req->result;
  soon_fs_req_cleanup(req);
  soon_buf b = {c->buf, sizeof c->buf};
  assert_int_equal(soon_fs_read(req->loop, req, c->fd, &b, 1, 0, chain_read),
                   0);
}

static void chain_start(chain *c) {
  if (c->all->next == NFILES)
    return;
  c->index = c->all->next++;
  assert_int_equal(soon_fs_open(c->req.loop, &c->req, many_path(c->index),
                                O_RDONLY, 0, chain_opened),
                   0);
}

static void test_many_open_read_close(void **state) {
  (void)state;
  soon_loop loop;
  rlim_t limit = raise_nofile();
  int width = limit > 1000 + 100 ? 1000 : (int)limit - 100;
  assert_true(width >= 100);
  loop_init_checked(&loop);
  chains all = {0, 0, calloc(NFILES, sizeof(int))};
  chain *cs = calloc((size_t)width, sizeof *cs);
  for (int i = 0; i < width; i++) {
    cs[i].all = &all;
    cs[i].req.loop = &loop;
    chain_start(&cs[i]);
  }
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(all.done, NFILES);
  for (int i = 0; i < NFILES; i++)
    assert_int_equal(all.reads[i], 1);
  free(all.reads);
  free(cs);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ cancel */

/* A gate that holds the pool's only worker until the loop thread opens it,
 * so the requests queued behind it are certainly not started. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_open, gate_held;

static void gate_work(soon_work_req *w) {
  (void)w;
  pthread_mutex_lock(&gate_mu);
  gate_held = 1;
  pthread_cond_broadcast(&gate_cond);
  while (!gate_open)
    pthread_cond_wait(&gate_cond, &gate_mu);
  pthread_mutex_unlock(&gate_mu);
}

static void gate_after(soon_work_req *w, int status) {
  (void)w;
  assert_int_equal(status, 0);
}

static void gate_set(int open) {
  pthread_mutex_lock(&gate_mu);
  gate_open = open;
  pthread_cond_broadcast(&gate_cond);
  pthread_mutex_unlock(&gate_mu);
}

/* Close the gate and return once the worker waits at it: whatever is queued
 * next waits behind it, in whatever order the pool takes jobs (chaos mode
 * hands them out at random). */
static void gate_hold(soon_loop *loop, soon_work_req *gate) {
  gate_set(0);
  pthread_mutex_lock(&gate_mu);
  gate_held = 0;
  pthread_mutex_unlock(&gate_mu);
  assert_int_equal(soon_work(loop, gate, gate_work, gate_after), 0);
  pthread_mutex_lock(&gate_mu);
  while (!gate_held)
    pthread_cond_wait(&gate_cond, &gate_mu);
  pthread_mutex_unlock(&gate_mu);
}

typedef struct {
  soon_fs_req req;
  int calls;
  int cancel; /* what soon_cancel said */
} cancel_job;

static void on_cancel_job(soon_fs_req *req) {
  cancel_job *j = (cancel_job *)req;
  j->calls++;
  assert_int_equal(req->result == -ECANCELED, j->cancel == 0);
  if (req->result != -ECANCELED) {
    if (req->fs_type == SOON_FS_ACCESS)
      assert_int_equal(req->result, 0);
    else
      assert_int_equal(req->result, 3); /* read_file of "abc" */
  }
  assert_true(req->fs_type == SOON_FS_READ_FILE || req->ptr == NULL);
  soon_fs_req_cleanup(req);
}

/* A loop on a pool of its own with one worker, which a gate can hold; the
 * caller frees the pool after closing the loop. */
static soon_pool *one_worker_loop(soon_loop *loop) {
  soon_pool *pool;
  soon_pool_options po = {.size = 1};
  assert_int_equal(soon_pool_new(&pool, &po), 0);
  soon_loop_options lo = {.pool = pool};
  memset(loop, 0, sizeof *loop);
  assert_int_equal(soon_loop_init_ex(loop, &lo), 0);
  return pool;
}

/* 1,000 requests on a one-worker pool, all cancelled right away: half while
 * the worker is held (each cancel must win), half racing it. */
static void test_cancel(void **state) {
  (void)state;
  enum { N = 1000 };
  soon_loop loop;
  soon_pool *pool = one_worker_loop(&loop);
  write_file(P("f"), "abc", 3);

  soon_work_req gate;
  gate_hold(&loop, &gate);
  cancel_job *jobs = calloc(N, sizeof *jobs);
  for (int i = 0; i < N; i++) {
    jobs[i].cancel = 1;
    int rc =
        i % 3 == 0
            ? soon_fs_read_file(&loop, &jobs[i].req, P("f"), 100, on_cancel_job)
            /* access runs on the pool on every backend (stat may not) */
            : soon_fs_access(&loop, &jobs[i].req, P("f"), F_OK, on_cancel_job);
    assert_int_equal(rc, 0);
  }
  int cancelled = 0;
  for (int i = 0; i < N; i += 2) {
    jobs[i].cancel = soon_cancel((soon_req *)&jobs[i].req);
    assert_int_equal(jobs[i].cancel, 0);
    cancelled++;
  }
  gate_set(1);
  for (int i = 1; i < N; i += 2) {
    jobs[i].cancel = soon_cancel((soon_req *)&jobs[i].req);
    assert_true(jobs[i].cancel == 0 || jobs[i].cancel == -EBUSY);
    cancelled += jobs[i].cancel == 0;
  }
  for (int i = 0; i < N; i++)
    assert_int_equal(jobs[i].calls, 0); /* never from inside soon_cancel */
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  int got_cancelled = 0;
  for (int i = 0; i < N; i++) {
    assert_int_equal(jobs[i].calls, 1);
    got_cancelled += jobs[i].req.result == -ECANCELED;
    /* Finished, cancelled or not: too late to cancel. */
    assert_int_equal(soon_cancel((soon_req *)&jobs[i].req), -EBUSY);
  }
  assert_int_equal(got_cancelled, cancelled);
  assert_true(cancelled >= N / 2);
  free(jobs);
  assert_int_equal(soon_loop_close(&loop), 0);
  assert_int_equal(soon_pool_free(pool), 0);
}

/* A cancelled closedir leaves the stream open: it can be closed again. */
/* On io_uring a stat runs in the ring, not on the pool: it completes while
 * the pool's only worker is held at the gate (and its completion is what
 * opens the gate), and it cannot be cancelled. Elsewhere it waits in the
 * pool's queue, where soon_cancel wins. */
static int native_result;

static void on_native_stat(soon_fs_req *req) {
  native_result = (int)req->result;
  if (req->result == 0)
    assert_int_equal(req->statbuf.size, 3);
  gate_set(1);
  soon_fs_req_cleanup(req);
}

static int native_cancelled;

static void on_native_cancelled(soon_fs_req *req) {
  native_cancelled = (int)req->result;
  soon_fs_req_cleanup(req);
}

/* On uring a stat runs in the ring, so it completes while the pool's only
 * worker is held; and a request cancelled before the ring took it reports
 * -ECANCELED. Elsewhere the stat waits behind the gate: cancelled there. */
static void test_native_ops(void **state) {
  (void)state;
  soon_loop loop;
  soon_pool *pool = one_worker_loop(&loop);
  int native = strcmp(soon_backend_name(&loop), "uring") == 0;
  write_file(P("f"), "abc", 3);
  soon_work_req gate;
  soon_fs_req req, req2;
  gate_hold(&loop, &gate);
  assert_int_equal(soon_fs_stat(&loop, &req, P("f"), on_native_stat), 0);
  assert_int_equal(soon_fs_stat(&loop, &req2, P("f"), on_native_cancelled), 0);
  assert_int_equal(soon_cancel((soon_req *)&req2), 0);
  if (!native)
    assert_int_equal(soon_cancel((soon_req *)&req), 0);
  native_result = native_cancelled = 1;
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(native_result, native ? 0 : -ECANCELED);
  assert_int_equal(native_cancelled, -ECANCELED);
  assert_int_equal(soon_cancel((soon_req *)&req2), -EBUSY); /* finished */
  assert_int_equal(soon_loop_close(&loop), 0);
  assert_int_equal(soon_pool_free(pool), 0);
}

static int pipe_read_calls;

static void on_pipe_read(soon_fs_req *req) {
  native_result = (int)req->result;
  pipe_read_calls++;
  soon_fs_req_cleanup(req);
}

/* A read of an empty pipe waits in the kernel (uring) or blocks a worker.
 * Cancelled: on uring it must stop (0, -ECANCELED); elsewhere it may have
 * started (-EBUSY), and a byte then finishes it. Either way the callback
 * runs once, and says -ECANCELED exactly when soon_cancel said 0. */
static void test_cancel_waiting_read(void **state) {
  (void)state;
  soon_loop loop;
  assert_int_equal(soon_loop_init(&loop), 0);
  int native = strcmp(soon_backend_name(&loop), "uring") == 0;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  char byte;
  soon_buf buf = {&byte, 1};
  soon_fs_req req;
  pipe_read_calls = 0;
  assert_int_equal(soon_fs_read(&loop, &req, fds[0], &buf, 1, -1, on_pipe_read),
                   0);
  assert_int_equal(soon_run(&loop, SOON_RUN_NOWAIT), 1); /* now in flight */
  assert_int_equal(pipe_read_calls, 0);
  int c = soon_cancel((soon_req *)&req);
  if (native)
    assert_int_equal(c, 0);
  else
    assert_true(c == 0 || c == -EBUSY);
  if (c != 0)
    assert_int_equal(write(fds[1], "x", 1), 1);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(pipe_read_calls, 1);
  assert_int_equal(native_result, c == 0 ? -ECANCELED : 1);
  close(fds[0]);
  close(fds[1]);
  assert_int_equal(soon_loop_close(&loop), 0);
}

static void test_cancel_closedir(void **state) {
  (void)state;
  soon_loop loop;
  soon_pool *pool = one_worker_loop(&loop);
  soon_fs_req req;
  memset(&req, 0, sizeof req);
  assert_int_equal(go(&loop, &req, soon_fs_opendir(&loop, &req, tmpdir, on_fs)),
                   0);
  soon_dir *dir = req.ptr;
  soon_fs_req_cleanup(&req); /* the path; the stream stays */

  soon_work_req gate;
  gate_hold(&loop, &gate);
  assert_int_equal(soon_fs_closedir(&loop, &req, dir, on_fs), 0);
  assert_int_equal(soon_cancel((soon_req *)&req), 0);
  gate_set(1);
  assert_int_equal(go(&loop, &req, 0), -ECANCELED);
  assert_ptr_equal(req.ptr, dir);
  assert_int_equal(res(&loop, &req, soon_fs_closedir(&loop, &req, dir, on_fs)),
                   0);
  assert_null(req.ptr);
  assert_int_equal(soon_loop_close(&loop), 0);
  assert_int_equal(soon_pool_free(pool), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_open_close, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_write, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sendfile, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stat, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sync_truncate, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mkdir_rmdir_mkdtemp, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_links_rename_unlink, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_modes_owners_times, setup, teardown),
      cmocka_unit_test_setup_teardown(test_copyfile, setup, teardown),
      cmocka_unit_test_setup_teardown(test_scandir, setup, teardown),
      cmocka_unit_test_setup_teardown(test_opendir_readdir, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_many_read_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_many_open_read_close, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_native_ops, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_waiting_read, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_cancel_closedir, setup, teardown),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
