/* test_nomem.c: every allocation the library makes, failed in turn. A small
 * workload (files, a tcp echo, udp, a child process, dns, work, a timer) runs
 * on a fresh loop with its 1st, 2nd, ... allocation failing, until a run
 * fails none: no crash, no leak, no hang, every callback owed told once. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <soon.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>

#include "helpers.h"

/* Far more than the workload allocates: reaching it means the count never
 * settles (an allocation per iteration, say), not a big workload. */
#define MAX_RUNS 1000

/* ------------------------------------------------------------ operations */

/* The calls watched: each that owes a callback (closes too), and each that
 * starts something (bind, listen, read_start ...) with only a return. */
#define OPS(X)                                                                 \
  X(MKDTEMP)                                                                   \
  X(RMDIR)                                                                     \
  X(OPEN)                                                                      \
  X(WRITE)                                                                     \
  X(READ)                                                                      \
  X(CLOSE)                                                                     \
  X(STAT)                                                                      \
  X(SYMLINK)                                                                   \
  X(READLINK)                                                                  \
  X(REALPATH)                                                                  \
  X(SCANDIR)                                                                   \
  X(OPENDIR)                                                                   \
  X(READDIR)                                                                   \
  X(READDIR2)                                                                  \
  X(READDIR3)                                                                  \
  X(READDIR4)                                                                  \
  X(CLOSEDIR)                                                                  \
  X(READ_FILE)                                                                 \
  X(STATFS)                                                                    \
  X(UNLINK_LINK)                                                               \
  X(UNLINK_FILE)                                                               \
  X(BIND)                                                                      \
  X(LISTEN)                                                                    \
  X(ACCEPT)                                                                    \
  X(CONNECT)                                                                   \
  X(CLIENT_WRITE)                                                              \
  X(CLIENT_READ)                                                               \
  X(CONN_READ)                                                                 \
  X(ECHO)                                                                      \
  X(CLOSE_SERVER)                                                              \
  X(CLOSE_CLIENT)                                                              \
  X(CLOSE_CONN)                                                                \
  X(PIPE_OPEN_W)                                                               \
  X(PIPE_OPEN_R)                                                               \
  X(PIPE_WRITE)                                                                \
  X(PIPE_DRAIN)                                                                \
  X(CLOSE_PIPE_W)                                                              \
  X(CLOSE_PIPE_R)                                                              \
  X(UDP_RECV)                                                                  \
  X(UDP_SEND)                                                                  \
  X(CLOSE_UDP_RECV)                                                            \
  X(CLOSE_UDP_SEND)                                                            \
  X(SPAWN)                                                                     \
  X(PIPE_READ)                                                                 \
  X(CLOSE_PROC)                                                                \
  X(CLOSE_PIPE)                                                                \
  X(SPAWN_PIDFD)                                                               \
  X(CLOSE_PROC_PIDFD)                                                          \
  X(GETADDRINFO)                                                               \
  X(WORK)                                                                      \
  X(TIMER)                                                                     \
  X(CLOSE_TIMER)

#define AS_ENUM(name) OP_##name,
#define AS_NAME(name) #name,
enum {
  OPS(AS_ENUM) OP_COUNT,
  OP_FS_FIRST = OP_MKDTEMP,
  OP_FS_LAST = OP_UNLINK_FILE
};
static const char *const op_names[] = {OPS(AS_NAME)};

/* What a call returned and how often its callback ran. Calls that start
 * something with no single callback (listen, read_start, recv_start) only
 * have their return checked. */
typedef struct op {
  bool started;
  bool in_call; /* a callback now would be a re-entrant one */
  bool once;    /* a callback is owed exactly once if ret is 0 */
  int ret;
  int calls;
  int64_t status; /* the last callback's */
} op;

static op ops[OP_COUNT];
static long run_n; /* the allocation failed in this run, for messages */

#define expect(cond, ...)                                                      \
  do {                                                                         \
    if (!(cond))                                                               \
      fail_msg("run %ld (%s): %s", run_n, #cond, msg(__VA_ARGS__));            \
  } while (0)

static const char *msg(const char *fmt, ...) {
  static char buf[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

static void begin(int id, bool once) {
  ops[id].started = true;
  ops[id].in_call = true;
  ops[id].once = once;
  ops[id].calls = 0;
}

/* A failed allocation is the only failure this workload meets at a call. */
static int end(int id, int ret) {
  ops[id].in_call = false;
  ops[id].ret = ret;
  expect(ret == 0 || ret == -ENOMEM, "%s returned %d (%s)", op_names[id], ret,
         soon_err_name(ret));
  return ret;
}

/* CALL for a call that owes one callback, START for one that owes none. */
#define CALL(id, expr) (begin(id, true), end(id, (expr)))
#define START(id, expr) (begin(id, false), end(id, (expr)))

static void called(int id, int64_t status) {
  op *o = &ops[id];
  expect(o->started && o->once, "callback of %s, never started", op_names[id]);
  expect(!o->in_call, "callback of %s from inside its call", op_names[id]);
  expect(o->ret == 0, "callback of %s, whose call failed (%d)", op_names[id],
         o->ret);
  o->calls++;
  expect(o->calls == 1, "callback of %s called %d times", op_names[id],
         o->calls);
  o->status = status;
}

static void check_ops(bool none_failed) {
  for (int id = 0; id < OP_COUNT; id++) {
    const op *o = &ops[id];
    if (!o->started || !o->once)
      continue;
    expect(o->calls == (o->ret == 0 ? 1 : 0), "%s: returned %d, called %d",
           op_names[id], o->ret, o->calls);
  }
  if (!none_failed)
    return;
  /* Undisturbed, the workload runs whole and succeeds. One readdir reads
   * the directory, the next sees its end: the others are spares. */
  for (int id = 0; id < OP_COUNT; id++) {
    const op *o = &ops[id];
    if (id == OP_READDIR3 || id == OP_READDIR4)
      continue;
    expect(o->started && o->ret == 0 && (!o->once || o->status >= 0),
           "%s: started %d, returned %d, status %lld", op_names[id], o->started,
           o->ret, (long long)o->status);
  }
}

/* ------------------------------------------------------------ state */

static soon_loop loop;
static soon_timer guard;

static char base[64]; /* the test's own directory (mkdtemp(3)) */
static char path_file[96], path_link[96], path_tpl[96], made_dir[96];

static int fs_cur;
static soon_fs_req fsreq;
static int file;
static soon_dir *dirp;
static soon_dirent dirents[4];
static int64_t dir_seen; /* entries the readdirs gave so far */
static bool dir_more;    /* the last readdir gave some: read on */
static char wparts[5][3] = {"ab", "cd", "ef", "gh", "ij"};
static char rparts[5][2];
static bool fs_data_ok;

static soon_tcp server, client, conn;
static soon_connect_req creq;
static soon_write_req cwreq, ewreq;
static char cparts[6][3] = {"kl", "mn", "op", "qr", "st", "uv"};
static char crecv[32], erecv[32];
static size_t cgot, egot;
static bool tcp_data_ok;
/* The echo's callback may run after the client read the echo (soon orders
 * neither way; chaos mode shows it): the end waits for both. */
static bool echo_back;

static soon_udp urecv, usend;
static soon_udp_send_req usreq;
static char uparts[5][2] = {"1", "2", "3", "4", "5"};
static char ubuf[16];
static bool urecv_on, usend_done, udp_data_ok;

/* A pipe written faster than it is read: its write end sits at an fd past
 * the loop's fd tables (256 by then), as in a process with many files, so
 * the stream that gets it, and the write that fills the pipe, grow them. */
#define HIGH_FD 300
#define PIPE_BYTES 16384
static soon_pipe pw, pr;
static soon_write_req pwreq;
static char pipe_out[PIPE_BYTES], pipe_in[PIPE_BYTES];
static size_t pipe_got;
static bool pipe_data_ok;

static soon_process proc, proc2;
static soon_pipe out;
static char pbuf[64];

static soon_getaddrinfo_req gai;
static soon_work_req work;
static soon_timer timer;

/* Bytes the library freed that the C library allocated (realpath's string):
 * they never passed through the wrapped malloc, so they are added back. */
static long foreign_bytes;

static void reset_state(void) {
  memset(ops, 0, sizeof ops);
  made_dir[0] = '\0';
  file = -1;
  dirp = NULL;
  dir_seen = 0;
  dir_more = false;
  memset(rparts, 0, sizeof rparts);
  fs_data_ok = false;
  cgot = egot = 0;
  tcp_data_ok = echo_back = false;
  pipe_got = 0;
  pipe_data_ok = false;
  urecv_on = usend_done = udp_data_ok = false;
  foreign_bytes = 0;
}

/* ------------------------------------------------------------ files */

static void fs_next(void);

/* What a directory listing of base must hold now: no entry lost, none
 * made up, whatever failed on the way. */
static int64_t entries_expected(void) {
  struct stat st;
  return (lstat(path_file, &st) == 0) + (lstat(path_link, &st) == 0) +
         (made_dir[0] && lstat(made_dir, &st) == 0);
}

static void fs_cb(soon_fs_req *req) {
  int id = fs_cur;
  called(id, req->result);
  switch (id) {
  case OP_MKDTEMP:
    if (req->result == 0)
      snprintf(made_dir, sizeof made_dir, "%s", req->path);
    break;
  case OP_OPEN:
    if (req->result >= 0)
      file = (int)req->result;
    break;
  case OP_READ:
    fs_data_ok = req->result == 10 && memcmp(rparts, "abcdefghij", 10) == 0;
    break;
  case OP_CLOSE:
    file = -1; /* gone, even when close reports an error */
    break;
  case OP_REALPATH:
    if (req->ptr)
      foreign_bytes += (long)malloc_usable_size(req->ptr);
    break;
  case OP_SCANDIR: {
    soon_dirent ent;
    int64_t n = 0;
    while (soon_fs_scandir_next(req, &ent) == 0)
      n++;
    expect(req->result < 0 || n == req->result, "scandir walked %lld of %lld",
           (long long)n, (long long)req->result);
    expect(req->result < 0 || n == entries_expected(),
           "scandir gave %lld entries of %lld", (long long)n,
           (long long)entries_expected());
    break;
  }
  case OP_READDIR:
  case OP_READDIR2:
  case OP_READDIR3:
  case OP_READDIR4:
    dir_more = req->result > 0;
    if (req->result > 0)
      dir_seen += req->result;
    expect(req->result != 0 || dir_seen == entries_expected(),
           "readdir gave %lld entries of %lld", (long long)dir_seen,
           (long long)entries_expected());
    break;
  case OP_OPENDIR:
    if (req->result == 0) {
      dirp = req->ptr;
      dirp->dirents = dirents;
      dirp->nentries = sizeof dirents / sizeof *dirents;
    }
    break;
  case OP_CLOSEDIR:
    if (req->result != -ECANCELED)
      dirp = NULL; /* freed, even when closedir reports an error */
    break;
  default:
    break;
  }
  soon_fs_req_cleanup(req);
  fs_next();
}

/* A close that cannot be started is tried again, as a caller must: the fd
 * or directory stream would stay open otherwise. */
static int fs_start(int id) {
  soon_fs_req *r = &fsreq;
  soon_loop *l = &loop;
  soon_buf w[5], rd[5];
  for (int i = 0; i < 5; i++) {
    w[i] = (soon_buf){wparts[i], 2};
    rd[i] = (soon_buf){rparts[i], 2};
  }
  int ret;
  switch (id) {
  case OP_MKDTEMP:
    return CALL(id, soon_fs_mkdtemp(l, r, path_tpl, fs_cb));
  case OP_RMDIR:
    return made_dir[0] ? CALL(id, soon_fs_rmdir(l, r, made_dir, fs_cb)) : 1;
  case OP_OPEN:
    return CALL(id, soon_fs_open(l, r, path_file, O_CREAT | O_RDWR | O_TRUNC,
                                 0644, fs_cb));
  case OP_WRITE: /* five buffers: more than a request holds inline */
    return file >= 0 ? CALL(id, soon_fs_write(l, r, file, w, 5, 0, fs_cb)) : 1;
  case OP_READ:
    return file >= 0 ? CALL(id, soon_fs_read(l, r, file, rd, 5, 0, fs_cb)) : 1;
  case OP_CLOSE:
    if (file < 0)
      return 1;
    if ((ret = CALL(id, soon_fs_close(l, r, file, fs_cb))) == -ENOMEM)
      ret = CALL(id, soon_fs_close(l, r, file, fs_cb));
    return ret;
  case OP_STAT:
    return CALL(id, soon_fs_stat(l, r, path_file, fs_cb));
  case OP_SYMLINK:
    return CALL(id, soon_fs_symlink(l, r, "f", path_link, fs_cb));
  case OP_READLINK:
    return CALL(id, soon_fs_readlink(l, r, path_link, fs_cb));
  case OP_REALPATH:
    return CALL(id, soon_fs_realpath(l, r, path_link, fs_cb));
  case OP_SCANDIR:
    return CALL(id, soon_fs_scandir(l, r, base, fs_cb));
  case OP_OPENDIR:
    return CALL(id, soon_fs_opendir(l, r, base, fs_cb));
  case OP_READDIR:
    return dirp ? CALL(id, soon_fs_readdir(l, r, dirp, fs_cb)) : 1;
  case OP_READDIR2: /* on to the end of the directory */
  case OP_READDIR3:
  case OP_READDIR4:
    return dirp && dir_more ? CALL(id, soon_fs_readdir(l, r, dirp, fs_cb)) : 1;
  case OP_CLOSEDIR:
    if (!dirp)
      return 1;
    if ((ret = CALL(id, soon_fs_closedir(l, r, dirp, fs_cb))) == -ENOMEM)
      ret = CALL(id, soon_fs_closedir(l, r, dirp, fs_cb));
    return ret;
  case OP_READ_FILE:
    return CALL(id, soon_fs_read_file(l, r, path_file, 1 << 20, fs_cb));
  case OP_STATFS:
    return CALL(id, soon_fs_statfs(l, r, base, fs_cb));
  case OP_UNLINK_LINK:
    return CALL(id, soon_fs_unlink(l, r, path_link, fs_cb));
  case OP_UNLINK_FILE:
    return CALL(id, soon_fs_unlink(l, r, path_file, fs_cb));
  default:
    return 1;
  }
}

/* One request at a time, so the allocations come in the same order in every
 * run: each callback starts the next step that can start. */
static void fs_next(void) {
  while (++fs_cur <= OP_FS_LAST)
    if (fs_start(fs_cur) == 0)
      return;
}

static void phase_fs(void) {
  fs_cur = OP_FS_FIRST - 1;
  fs_next();
}

/* ------------------------------------------------------------ tcp echo */

static void close_cb(soon_handle *h) {
  int id = h == (soon_handle *)&server   ? OP_CLOSE_SERVER
           : h == (soon_handle *)&client ? OP_CLOSE_CLIENT
           : h == (soon_handle *)&conn   ? OP_CLOSE_CONN
           : h == (soon_handle *)&urecv  ? OP_CLOSE_UDP_RECV
           : h == (soon_handle *)&usend  ? OP_CLOSE_UDP_SEND
           : h == (soon_handle *)&pw     ? OP_CLOSE_PIPE_W
           : h == (soon_handle *)&pr     ? OP_CLOSE_PIPE_R
           : h == (soon_handle *)&proc   ? OP_CLOSE_PROC
           : h == (soon_handle *)&proc2  ? OP_CLOSE_PROC_PIDFD
           : h == (soon_handle *)&out    ? OP_CLOSE_PIPE
           : h == (soon_handle *)&timer  ? OP_CLOSE_TIMER
                                         : -1;
  expect(id >= 0, "close callback of a handle nobody closed");
  called(id, 0);
}

static void close_handle(void *h, int id) {
  if (!soon_is_closing(h))
    CALL(id, soon_close(h, close_cb));
}

/* The echo is over (done, or it cannot go on): everything closes. */
static void tcp_finish(void) {
  close_handle(&client, OP_CLOSE_CLIENT);
  close_handle(&conn, OP_CLOSE_CONN);
  close_handle(&server, OP_CLOSE_SERVER);
}

static void alloc_from(char *base_, size_t cap, size_t used, soon_buf *buf) {
  *buf = (soon_buf){base_ + used, cap - used};
}

static void conn_alloc(soon_handle *h, size_t size, soon_buf *buf) {
  (void)h;
  (void)size;
  alloc_from(erecv, sizeof erecv, egot, buf);
}

static void client_alloc(soon_handle *h, size_t size, soon_buf *buf) {
  (void)h;
  (void)size;
  alloc_from(crecv, sizeof crecv, cgot, buf);
}

static void echo_cb(soon_write_req *req, int status) {
  (void)req;
  called(OP_ECHO, status);
  if (status < 0)
    close_handle(&conn, OP_CLOSE_CONN);
  else if (echo_back)
    tcp_finish();
}

/* Echoed in one write once all 12 bytes are in: one request to track. */
static void conn_read(soon_stream *s, ssize_t n, const soon_buf *buf) {
  (void)s;
  (void)buf;
  if (n > 0) {
    egot += (size_t)n;
    if (egot == 12) {
      soon_buf b = {erecv, egot};
      if (CALL(OP_ECHO,
               soon_write(&ewreq, (soon_stream *)&conn, &b, 1, echo_cb)) != 0)
        close_handle(&conn, OP_CLOSE_CONN); /* the client sees the end */
    }
  } else if (n < 0) {
    close_handle(&conn, OP_CLOSE_CONN);
  }
}

static void on_connection(soon_stream *srv, int status) {
  if (status < 0 || soon_is_active((soon_handle *)&conn) ||
      soon_is_closing((soon_handle *)&conn)) {
    tcp_finish(); /* no echo is coming */
    return;
  }
  if (START(OP_ACCEPT, soon_accept(srv, (soon_stream *)&conn))) {
    tcp_finish();
    return;
  }
  if (START(OP_CONN_READ,
            soon_read_start((soon_stream *)&conn, conn_alloc, conn_read)))
    close_handle(&conn, OP_CLOSE_CONN);
}

static void client_read(soon_stream *s, ssize_t n, const soon_buf *buf) {
  (void)s;
  (void)buf;
  if (n > 0) {
    cgot += (size_t)n;
    if (cgot == 12) {
      tcp_data_ok = memcmp(crecv, "klmnopqrstuv", 12) == 0;
      echo_back = true;
      if (ops[OP_ECHO].calls)
        tcp_finish();
    }
  } else if (n < 0) {
    tcp_finish();
  }
}

static void client_write_cb(soon_write_req *req, int status) {
  (void)req;
  called(OP_CLIENT_WRITE, status);
  if (status < 0)
    tcp_finish();
}

static void on_connect(soon_connect_req *req, int status) {
  (void)req;
  called(OP_CONNECT, status);
  if (status < 0) {
    tcp_finish();
    return;
  }
  soon_buf b[6]; /* more than a write request holds inline */
  for (int i = 0; i < 6; i++)
    b[i] = (soon_buf){cparts[i], 2};
  if (CALL(OP_CLIENT_WRITE,
           soon_write(&cwreq, (soon_stream *)&client, b, 6, client_write_cb)) ||
      START(OP_CLIENT_READ,
            soon_read_start((soon_stream *)&client, client_alloc, client_read)))
    tcp_finish();
}

static void phase_tcp(void) {
  struct sockaddr_in addr;
  int len = sizeof addr;
  assert_int_equal(soon_tcp_init(&loop, &server), 0);
  assert_int_equal(soon_tcp_init(&loop, &client), 0);
  assert_int_equal(soon_tcp_init(&loop, &conn), 0);
  assert_int_equal(soon_ip4_addr("127.0.0.1", 0, &addr), 0);
  if (START(OP_BIND, soon_tcp_bind(&server, (struct sockaddr *)&addr, 0))) {
    tcp_finish();
    return;
  }
  assert_int_equal(
      soon_tcp_getsockname(&server, (struct sockaddr *)&addr, &len), 0);
  if (START(OP_LISTEN, soon_listen((soon_stream *)&server, 8, on_connection)) ||
      CALL(OP_CONNECT, soon_tcp_connect(&creq, &client,
                                        (struct sockaddr *)&addr, on_connect)))
    tcp_finish();
}

/* ------------------------------------------------------------ pipe */

static void pipe_write_cb(soon_write_req *req, int status) {
  (void)req;
  called(OP_PIPE_WRITE, status);
  close_handle(&pw, OP_CLOSE_PIPE_W); /* the reader then sees the end */
}

static void pr_alloc(soon_handle *h, size_t size, soon_buf *buf) {
  (void)h;
  (void)size;
  alloc_from(pipe_in, sizeof pipe_in, pipe_got, buf);
}

static void pr_read(soon_stream *s, ssize_t n, const soon_buf *buf) {
  (void)s;
  (void)buf;
  if (n > 0)
    pipe_got += (size_t)n;
  if (n < 0) {
    pipe_data_ok =
        pipe_got == PIPE_BYTES && memcmp(pipe_in, pipe_out, PIPE_BYTES) == 0;
    close_handle(&pr, OP_CLOSE_PIPE_R);
  }
}

static void phase_pipe(void) {
  int fds[2];
  assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
  /* The smallest pipe: the write cannot complete at once. */
  assert_true(fcntl(fds[1], F_SETPIPE_SZ, 4096) >= 4096);
  assert_true(fcntl(HIGH_FD, F_GETFD) < 0);
  assert_int_equal(dup3(fds[1], HIGH_FD, O_CLOEXEC), HIGH_FD);
  close_fd(fds[1]);
  assert_int_equal(soon_pipe_init(&loop, &pw), 0);
  assert_int_equal(soon_pipe_init(&loop, &pr), 0);
  /* An fd a stream could not take is still the caller's to close. */
  if (START(OP_PIPE_OPEN_W, soon_pipe_open(&pw, HIGH_FD)))
    close_fd(HIGH_FD);
  if (START(OP_PIPE_OPEN_R, soon_pipe_open(&pr, fds[0])))
    close_fd(fds[0]);
  soon_buf b = {pipe_out, sizeof pipe_out};
  if (ops[OP_PIPE_OPEN_W].ret ||
      CALL(OP_PIPE_WRITE,
           soon_write(&pwreq, (soon_stream *)&pw, &b, 1, pipe_write_cb)))
    close_handle(&pw, OP_CLOSE_PIPE_W);
  if (ops[OP_PIPE_OPEN_R].ret ||
      START(OP_PIPE_DRAIN,
            soon_read_start((soon_stream *)&pr, pr_alloc, pr_read)))
    close_handle(&pr, OP_CLOSE_PIPE_R); /* the writer then fails: EPIPE */
}

/* ------------------------------------------------------------ udp */

static void udp_finish(void) {
  close_handle(&urecv, OP_CLOSE_UDP_RECV);
  close_handle(&usend, OP_CLOSE_UDP_SEND);
}

/* Done once the send is told and the datagram is in, or cannot come. */
static void udp_maybe_finish(void) {
  if (usend_done && (udp_data_ok || !urecv_on || ops[OP_UDP_SEND].ret != 0 ||
                     ops[OP_UDP_SEND].status < 0))
    udp_finish();
}

static void udp_alloc(soon_handle *h, size_t size, soon_buf *buf) {
  (void)h;
  (void)size;
  *buf = (soon_buf){ubuf, sizeof ubuf};
}

static void udp_recv(soon_udp *u, ssize_t n, const soon_buf *buf,
                     const struct sockaddr *addr, unsigned flags) {
  (void)u;
  (void)buf;
  (void)flags;
  if (n == 0 && !addr)
    return; /* nothing read */
  if (n < 0)
    urecv_on = false; /* nothing more will come */
  else
    udp_data_ok = n == 5 && memcmp(ubuf, "12345", 5) == 0;
  udp_maybe_finish();
}

static void udp_send_cb(soon_udp_send_req *req, int status) {
  (void)req;
  called(OP_UDP_SEND, status);
  usend_done = true;
  udp_maybe_finish();
}

static void phase_udp(void) {
  struct sockaddr_in addr;
  int len = sizeof addr;
  assert_int_equal(soon_udp_init(&loop, &urecv), 0);
  assert_int_equal(soon_udp_init(&loop, &usend), 0);
  assert_int_equal(soon_ip4_addr("127.0.0.1", 0, &addr), 0);
  assert_int_equal(soon_udp_bind(&urecv, (struct sockaddr *)&addr, 0), 0);
  assert_int_equal(soon_udp_getsockname(&urecv, (struct sockaddr *)&addr, &len),
                   0);
  urecv_on =
      START(OP_UDP_RECV, soon_udp_recv_start(&urecv, udp_alloc, udp_recv)) == 0;
  soon_buf b[5]; /* more than a send request holds inline */
  for (int i = 0; i < 5; i++)
    b[i] = (soon_buf){uparts[i], 1};
  if (CALL(OP_UDP_SEND, soon_udp_send(&usreq, &usend, b, 5,
                                      (struct sockaddr *)&addr, udp_send_cb))) {
    usend_done = true;
    udp_maybe_finish();
  }
}

/* ------------------------------------------------------------ process */

static void on_exit_cb(soon_process *p, int64_t status, int sig) {
  (void)sig;
  bool first = p == &proc;
  called(first ? OP_SPAWN : OP_SPAWN_PIDFD, status);
  close_handle(p, first ? OP_CLOSE_PROC : OP_CLOSE_PROC_PIDFD);
}

static void pipe_alloc(soon_handle *h, size_t size, soon_buf *buf) {
  (void)h;
  (void)size;
  *buf = (soon_buf){pbuf, sizeof pbuf};
}

static void pipe_read(soon_stream *s, ssize_t n, const soon_buf *buf) {
  (void)s;
  (void)buf;
  if (n < 0) /* /bin/true writes nothing: its end, or an error */
    close_handle(&out, OP_CLOSE_PIPE);
}

/* Fds taken so that those a spawn makes (its socketpair, the pidfd) lie
 * past the loop's fd table, as in a process with many files open: they are
 * what grows it. */
#define CROWD_MAX 160
static int crowd[CROWD_MAX];
static int ncrowd;

static void crowd_fds(int below) {
  for (;;) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    if (fd >= below) {
      close_fd(fd);
      return;
    }
    crowd[ncrowd++] = fd;
  }
}

static void uncrowd_fds(void) {
  while (ncrowd > 0)
    close_fd(crowd[--ncrowd]);
}

/* Two children: one with a pipe for its stdout, watched by SIGCHLD (as
 * where the kernel has no pidfd), one by its pidfd. No other thread reads
 * the environment meanwhile: the pool is idle. */
static void phase_process(void) {
  static char *args[] = {"true", NULL};
  soon_stdio_container stdio[2] = {
      {.flags = SOON_IGNORE},
      {.flags = SOON_CREATE_PIPE | SOON_WRITABLE_PIPE,
       .data.stream = (soon_stream *)&out}};
  soon_process_options o = {.exit_cb = on_exit_cb,
                            .file = "/bin/true",
                            .args = args,
                            .stdio_count = 2,
                            .stdio = stdio};
  assert_int_equal(soon_pipe_init(&loop, &out), 0);
  crowd_fds(80);
  assert_int_equal(setenv("SOON_NO_PIDFD", "1", 1), 0);
  int r = CALL(OP_SPAWN, soon_spawn(&loop, &proc, &o));
  assert_int_equal(unsetenv("SOON_NO_PIDFD"), 0);
  if (r || START(OP_PIPE_READ,
                 soon_read_start((soon_stream *)&out, pipe_alloc, pipe_read)))
    close_handle(&out, OP_CLOSE_PIPE);
  soon_process_options o2 = {.exit_cb = on_exit_cb, .file = "/bin/true"};
  crowd_fds(140);
  CALL(OP_SPAWN_PIDFD, soon_spawn(&loop, &proc2, &o2));
  uncrowd_fds();
}

/* ------------------------------------------------------------ the rest */

static void gai_cb(soon_getaddrinfo_req *req, int status,
                   struct addrinfo *res) {
  (void)req;
  called(OP_GETADDRINFO, status);
  expect(status < 0 || res, "getaddrinfo: no result");
  soon_freeaddrinfo(res);
}

static void work_cb(soon_work_req *req) { (void)req; }

static void after_work_cb(soon_work_req *req, int status) {
  (void)req;
  called(OP_WORK, status);
}

static void timer_cb(soon_timer *t) {
  called(OP_TIMER, 0);
  close_handle(t, OP_CLOSE_TIMER);
}

static void phase_misc(void) {
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
  CALL(OP_GETADDRINFO,
       soon_getaddrinfo(&loop, &gai, gai_cb, "localhost", "7", &hints));
  CALL(OP_WORK, soon_work(&loop, &work, work_cb, after_work_cb));
  assert_int_equal(soon_timer_init(&loop, &timer), 0);
  if (CALL(OP_TIMER, soon_timer_start(&timer, timer_cb, 1, 0)))
    close_handle(&timer, OP_CLOSE_TIMER);
}

/* ------------------------------------------------------------ runs */

static void guard_fired_nomem(soon_timer *t) {
  (void)t;
  fail_msg("run %ld: the loop did not finish (a hang)", run_n);
}

/* Each phase runs to its end, one after the other, so every run makes the
 * same allocations in the same order. */
static void run_phase(void (*phase)(void)) {
  phase();
  expect(soon_run(&loop, SOON_RUN_DEFAULT) == 0, "soon_run");
}

/* Whatever the library could not tidy is the test's (a file it never got to
 * unlink), so the next run starts from the same empty directory. */
static void tidy_disk(void) {
  if (file >= 0)
    close(file);
  unlink(path_link);
  unlink(path_file);
  if (made_dir[0])
    rmdir(made_dir);
}

/* One run with the nth allocation failing: whether none failed (n is past
 * the workload's last allocation). */
static bool run_once(long n) {
  run_n = n;
  reset_state();
  long live = atomic_load(&soon_test_heap_live);
  atomic_store(&soon_test_alloc_fail_nth, n);

  memset(&loop, 0, sizeof loop);
  int r = soon_loop_init(&loop);
  if (r) {
    expect(r == -ENOMEM, "loop init: %s", soon_err_name(r));
  } else {
    /* The guard's heap slot is an allocation too: if it is the one that
     * fails, the next try has none left to fail. */
    assert_int_equal(soon_timer_init(&loop, &guard), 0);
    if (soon_timer_start(&guard, guard_fired_nomem, GUARD_MS, 0) == -ENOMEM)
      assert_int_equal(soon_timer_start(&guard, guard_fired_nomem, GUARD_MS, 0),
                       0);
    soon_unref((soon_handle *)&guard);
    run_phase(phase_fs);
    run_phase(phase_tcp);
    run_phase(phase_process);
    run_phase(phase_pipe);
    run_phase(phase_udp);
    run_phase(phase_misc);
    assert_int_equal(soon_close((soon_handle *)&guard, NULL), 0);
    assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
    expect(soon_loop_close(&loop) == 0, "loop close");
  }
  bool none_failed = atomic_load(&soon_test_alloc_fail_nth) > 0;
  atomic_store(&soon_test_alloc_fail_nth, 0);

  check_ops(none_failed && !r);
  if (none_failed)
    expect(fs_data_ok && tcp_data_ok && pipe_data_ok && udp_data_ok,
           "data: fs %d tcp %d pipe %d udp %d", fs_data_ok, tcp_data_ok,
           pipe_data_ok, udp_data_ok);
  tidy_disk();
  long now = atomic_load(&soon_test_heap_live) + foreign_bytes;
  expect(now == live, "%ld bytes held after the loop closed", now - live);
  return none_failed;
}

static void test_every_allocation(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof pipe_out; i++)
    pipe_out[i] = (char)(i * 7 + i / 251);
  long n = 1;
  while (n <= MAX_RUNS && !run_once(n))
    n++;
  assert_true(n <= MAX_RUNS);
  print_message("[ nomem    ] %ld allocations failed in turn on %s\n", n - 1,
                getenv("SOON_BACKEND") ? getenv("SOON_BACKEND") : "default");
}

static int setup(void **state) {
  (void)state;
  snprintf(base, sizeof base, "/tmp/soon-nomem-XXXXXX");
  if (!mkdtemp(base))
    return -1;
  snprintf(path_file, sizeof path_file, "%s/f", base);
  snprintf(path_link, sizeof path_link, "%s/l", base);
  snprintf(path_tpl, sizeof path_tpl, "%s/dXXXXXX", base);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  tidy_disk();
  return rmdir(base);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_every_allocation, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
