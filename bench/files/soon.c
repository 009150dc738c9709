/* files/soon.c: n= files of 4 KiB in dir=, 64 at a time, each opened,
 * read, checked and closed with soon_fs_*; files per second. */
#include "../soon_util.h"

#include <fcntl.h>

#define FILESZ 4096
#define INFLIGHT 64

typedef struct slot {
  soon_fs_req req;
  int fd, file;
  char buf[FILESZ + 1];
} slot;

static soon_loop loop;
static const char *dir;
static int nfiles, next_file, done;
static slot slots[INFLIGHT];

static void start_next(slot *s);

static void on_close(soon_fs_req *req) {
  slot *s = req->data;
  if (req->result < 0)
    bench_fail("close: %s", soon_strerror((int)req->result));
  soon_fs_req_cleanup(req);
  done++;
  start_next(s);
}

static void on_read(soon_fs_req *req) {
  slot *s = req->data;
  if (req->result != FILESZ)
    bench_fail("read file %d: %lld", s->file, (long long)req->result);
  unsigned char want = bench_pattern((uint64_t)s->file);
  if ((unsigned char)s->buf[0] != want ||
      (unsigned char)s->buf[FILESZ - 1] != want)
    bench_fail("file %d: wrong content", s->file);
  soon_fs_req_cleanup(req);
  BENCH_OK(soon_fs_close(&loop, req, s->fd, on_close));
}

static void on_open(soon_fs_req *req) {
  slot *s = req->data;
  if (req->result < 0)
    bench_fail("open file %d: %s", s->file, soon_strerror((int)req->result));
  s->fd = (int)req->result;
  soon_fs_req_cleanup(req);
  /* One byte more than the file: a longer file would show in the count. */
  soon_buf b = {s->buf, sizeof s->buf};
  BENCH_OK(soon_fs_read(&loop, req, s->fd, &b, 1, 0, on_read));
}

static void start_next(slot *s) {
  if (next_file >= nfiles)
    return;
  char path[4096];
  s->file = next_file++;
  snprintf(path, sizeof path, "%s/f%06d", dir, s->file);
  s->req.data = s;
  BENCH_OK(soon_fs_open(&loop, &s->req, path, O_RDONLY, 0, on_open));
}

int main(int argc, char **argv) {
  char impl[64];
  dir = bench_arg_str(argc, argv, "dir", NULL);
  nfiles = (int)bench_arg(argc, argv, "n", 10000);
  if (!dir)
    bench_fail("usage: files-soon dir=DIR n=N (the driver makes the files)");
  soon_bench_loop(&loop, impl, sizeof impl);

  uint64_t t0 = bench_ns();
  for (int i = 0; i < INFLIGHT; i++)
    start_next(&slots[i]);
  BENCH_OK(soon_run(&loop, SOON_RUN_DEFAULT));
  uint64_t t1 = bench_ns();
  BENCH_CHECK(done == nfiles); /* every file opened, read, checked, closed */
  BENCH_OK(soon_loop_close(&loop));
  bench_result("files", impl, (double)nfiles / ((double)(t1 - t0) / 1e9),
               "files/s");
  return 0;
}
