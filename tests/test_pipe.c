/* test_pipe.c: soon_pipe on pipe(2) ends, socketpairs and Unix sockets (path,
 * abstract): data, EOF, EPIPE without SIGPIPE, names and errors. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <soon.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "helpers.h"

/* ------------------------------------------------------------ data */

#define FNV_INIT 0xcbf29ce484222325ull

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

static void prng_fill(uint64_t *state, char *buf, size_t n) {
  for (size_t i = 0; i < n; i += 8) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    uint64_t v = x * 0x2545f4914f6cdd1dull;
    memcpy(buf + i, &v, n - i < 8 ? n - i : 8);
  }
}

static void alloc_malloc(soon_handle *h, size_t size, soon_buf *buf) {
  (void)h;
  buf->base = malloc(size);
  buf->len = buf->base ? size : 0;
}

/* The temporary directory of the running test, removed by the teardown
 * even when the test failed half-way. */
static char dir[64];
static char paths[4][128];

static void make_dir(void) {
  strcpy(dir, "/tmp/soon-pipe-XXXXXX");
  assert_non_null(mkdtemp(dir));
}

static const char *dir_path(int i, const char *name) {
  snprintf(paths[i], sizeof paths[i], "%s/%s", dir, name);
  return paths[i];
}

static int cleanup(void **state) {
  (void)state;
  for (int i = 0; i < 4; i++) {
    if (paths[i][0])
      unlink(paths[i]);
    paths[i][0] = '\0';
  }
  if (dir[0])
    rmdir(dir);
  dir[0] = '\0';
  return 0;
}

/* ------------------------------------------------------------ endpoints */

/* A stream that records what it reads, and what happened to its requests;
 * first in the struct, so a soon_stream * is an end *. */
typedef struct end end;
struct end {
  soon_pipe p;
  char in[256];
  size_t in_len;
  uint64_t in_total, in_hash;
  bool eof;
  int read_err;
  int connect_status, connect_calls;
  int write_status, write_calls;
  int shut_status, shut_calls;
  int close_calls;
  soon_connect_req creq;
  soon_write_req wreq;
  soon_shutdown_req sreq;
  char out[64];
  void (*on_eof)(end *e);   /* NULL: close at EOF */
  void (*on_write)(end *e); /* after each write callback */
  void *data;
};

static void end_init(soon_loop *loop, end *e) {
  memset(e, 0, sizeof *e);
  e->in_hash = FNV_INIT;
  e->connect_status = e->write_status = e->shut_status = 1; /* not called */
  assert_int_equal(soon_pipe_init(loop, &e->p), 0);
}

static void end_closed(soon_handle *h) { ((end *)h)->close_calls++; }

static void end_close(end *e) {
  if (!soon_is_closing((soon_handle *)&e->p))
    assert_int_equal(soon_close((soon_handle *)&e->p, end_closed), 0);
}

static void end_read(soon_stream *s, ssize_t nread, const soon_buf *buf) {
  end *e = (end *)s;
  assert_false(soon_is_closing((soon_handle *)s));
  if (nread > 0) {
    size_t room = sizeof e->in - e->in_len;
    size_t k = (size_t)nread < room ? (size_t)nread : room;
    memcpy(e->in + e->in_len, buf->base, k);
    e->in_len += k;
    e->in_total += (uint64_t)nread;
    e->in_hash = fnv1a(e->in_hash, buf->base, (size_t)nread);
  }
  free(buf->base);
  if (nread == SOON_EOF) {
    e->eof = true;
    if (e->on_eof)
      e->on_eof(e);
    else
      end_close(e);
  } else if (nread < 0) {
    e->read_err = (int)nread;
    end_close(e);
  }
}

static void end_read_start(end *e) {
  assert_int_equal(
      soon_read_start((soon_stream *)&e->p, alloc_malloc, end_read), 0);
}

static void end_written(soon_write_req *req, int status) {
  end *e = req->data;
  e->write_calls++;
  e->write_status = status;
  if (e->on_write)
    e->on_write(e);
}

static void end_write(end *e, const char *s) {
  size_t n = strlen(s);
  assert_true(n < sizeof e->out);
  memcpy(e->out, s, n);
  soon_buf b = {e->out, n};
  e->wreq.data = e;
  assert_int_equal(
      soon_write(&e->wreq, (soon_stream *)&e->p, &b, 1, end_written), 0);
}

static void end_shut(soon_shutdown_req *req, int status) {
  end *e = req->data;
  e->shut_calls++;
  e->shut_status = status;
}

static void end_shutdown(end *e) {
  e->sreq.data = e;
  assert_int_equal(soon_shutdown(&e->sreq, (soon_stream *)&e->p, end_shut), 0);
}

static void end_connected(soon_connect_req *req, int status) {
  end *e = req->data;
  e->connect_calls++;
  e->connect_status = status;
}

static void never_conn(soon_stream *s, int status) {
  (void)s;
  fail_msg("connection callback %d", status);
}

static void never_connect(soon_connect_req *req, int status) {
  (void)req;
  fail_msg("connect callback after a failed call (%d)", status);
}

static void run_checked(soon_loop *loop) {
  assert_int_equal(soon_run(loop, SOON_RUN_DEFAULT), 0);
}

/* ------------------------------------------------------------ pipe(2) */

static void test_pipe_read_end(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  end r;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  end_init(&loop, &r);
  assert_int_equal(soon_pipe_open(&r.p, fds[0]), 0); /* r owns fds[0] now */
  assert_int_equal(write(fds[1], "hello", 5), 5);
  close_fd(fds[1]); /* the reader sees EOF after the bytes */
  end_read_start(&r);
  run_checked(&loop);
  assert_int_equal(r.in_len, 5);
  assert_memory_equal(r.in, "hello", 5);
  assert_true(r.eof);
  assert_int_equal(r.close_calls, 1);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

/* One loop writes 1 MiB (far more than a pipe holds) into one end and reads
 * it from the other; the writer closes after its last callback. */
enum { PIPE_TOTAL = 1 << 20, PIPE_WRITES = 4 };

typedef struct pipe_xfer {
  char *data;
  soon_write_req reqs[PIPE_WRITES];
  int calls;
  bool in_write;
  end *w;
} pipe_xfer;

static void xfer_written(soon_write_req *req, int status) {
  pipe_xfer *x = req->data;
  assert_false(x->in_write);
  assert_int_equal(status, 0);
  assert_int_equal(req - x->reqs, x->calls); /* in order */
  if (++x->calls == PIPE_WRITES) {
    assert_int_equal(soon_stream_write_queue_size((soon_stream *)&x->w->p), 0);
    end_close(x->w); /* a pipe's half-close is closing the write end */
  }
}

static void test_pipe_write_end(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  end r, w;
  pipe_xfer x;
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  end_init(&loop, &r);
  end_init(&loop, &w);
  assert_int_equal(soon_pipe_open(&r.p, fds[0]), 0);
  assert_int_equal(soon_pipe_open(&w.p, fds[1]), 0);
  memset(&x, 0, sizeof x);
  x.w = &w;
  x.data = malloc(PIPE_TOTAL);
  assert_non_null(x.data);
  uint64_t seed = 7;
  prng_fill(&seed, x.data, PIPE_TOTAL);
  size_t part = PIPE_TOTAL / PIPE_WRITES;
  for (int i = 0; i < PIPE_WRITES; i++) {
    soon_buf b = {x.data + (size_t)i * part, part};
    x.reqs[i].data = &x;
    x.in_write = true;
    assert_int_equal(
        soon_write(&x.reqs[i], (soon_stream *)&w.p, &b, 1, xfer_written), 0);
    x.in_write = false;
  }
  assert_true(soon_stream_write_queue_size((soon_stream *)&w.p) > 0);
  end_read_start(&r);
  run_checked(&loop);
  assert_int_equal(x.calls, PIPE_WRITES);
  assert_int_equal(r.in_total, PIPE_TOTAL);
  assert_int_equal(r.in_hash, fnv1a(FNV_INIT, x.data, PIPE_TOTAL));
  assert_true(r.eof);
  assert_int_equal(r.close_calls, 1);
  assert_int_equal(w.close_calls, 1);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
  free(x.data);
}

/* Writing into a pipe nobody reads any more: -EPIPE in the callback (and
 * from soon_try_write), never SIGPIPE. No handler is installed: a SIGPIPE
 * would end this process. */
static void epipe_second(end *e) {
  if (e->write_calls == 1) {
    assert_int_equal(e->write_status, -EPIPE);
    end_write(e, "again");
  } else {
    assert_int_equal(e->write_status, -EPIPE);
    end_close(e);
  }
}

static void test_pipe_epipe(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  end w;
  int fds[2];
  /* SIGPIPE at its default (terminate) and unblocked, as in most programs. */
  signal(SIGPIPE, SIG_DFL);
  sigset_t none, mask;
  sigemptyset(&none);
  assert_int_equal(sigprocmask(SIG_SETMASK, &none, NULL), 0);
  assert_int_equal(pipe(fds), 0);
  close_fd(fds[0]);
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  end_init(&loop, &w);
  assert_int_equal(soon_pipe_open(&w.p, fds[1]), 0);
  soon_buf b = {"x", 1};
  assert_int_equal(soon_try_write((soon_stream *)&w.p, &b, 1), -EPIPE);
  w.on_write = epipe_second;
  end_write(&w, "hello");
  assert_int_equal(w.write_calls, 0);
  run_checked(&loop);
  assert_int_equal(w.write_calls, 2);
  assert_int_equal(w.close_calls, 1);
  /* Nothing left behind: no SIGPIPE pending, the mask as it was. */
  sigset_t pending;
  assert_int_equal(sigpending(&pending), 0);
  assert_false(sigismember(&pending, SIGPIPE));
  assert_int_equal(sigprocmask(SIG_SETMASK, NULL, &mask), 0);
  assert_false(sigismember(&mask, SIGPIPE));
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

static void test_pipe_open_errors(void **state) {
  (void)state;
  soon_loop loop;
  soon_pipe p;
  int fds[2];
  make_dir();
  loop_init_checked(&loop);
  assert_int_equal(soon_pipe_init(NULL, &p), -EINVAL);
  assert_int_equal(soon_pipe_init(&loop, NULL), -EINVAL);
  assert_int_equal(soon_pipe_init(&loop, &p), 0);

  /* A regular file is always "ready": it is not a stream. */
  int file = open(dir_path(0, "file"), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  assert_true(file >= 0);
  assert_int_equal(soon_pipe_open(&p, file), -EINVAL);
  close_fd(file);
  int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true(d >= 0);
  assert_int_equal(soon_pipe_open(&p, d), -EINVAL);
  close_fd(d);
  assert_int_equal(soon_pipe_open(&p, -1), -EINVAL);
  assert_int_equal(soon_pipe_open(NULL, 0), -EINVAL);
  /* A closed fd. */
  assert_int_equal(pipe(fds), 0);
  close_fd(fds[0]);
  close_fd(fds[1]);
  assert_int_equal(soon_pipe_open(&p, fds[0]), -EBADF);

  /* The handle is still usable after those failures. */
  assert_int_equal(pipe(fds), 0);
  assert_int_equal(soon_pipe_open(&p, fds[0]), 0);
  assert_int_equal(soon_pipe_open(&p, fds[1]), -EBUSY);
  close_fd(fds[1]);
  /* A pipe(2) end has no socket name. */
  char name[64];
  size_t len = sizeof name;
  assert_int_equal(soon_pipe_getsockname(&p, name, &len), -ENOTSOCK);
  assert_int_equal(soon_close((soon_handle *)&p, NULL), 0);
  run_checked(&loop);
  loop_close_checked(&loop);
}

/* A socketpair end is a socket: soon_shutdown half-closes it, and the other
 * end reads EOF while its own direction stays open. */
static void pair_reply(end *e) {
  assert_int_equal(e->in_len, 4);
  assert_memory_equal(e->in, "ping", 4);
  end_write(e, "pong");
  end_shutdown(e);
}

static void pair_done(end *e) {
  assert_int_equal(e->in_len, 4);
  assert_memory_equal(e->in, "pong", 4);
  end_close(e);
  end_close(e->data);
}

/* soon_stream_fileno: -EBADF before the open and once closing, the fd in
 * between, -EINVAL for NULL. */
static void test_fileno(void **state) {
  (void)state;
  soon_loop loop;
  soon_pipe p;
  int fds[2], fd = -7;
  loop_init_checked(&loop);
  make_socketpair(fds);
  assert_int_equal(soon_pipe_init(&loop, &p), 0);
  assert_int_equal(soon_stream_fileno((soon_stream *)&p, &fd), -EBADF);
  assert_int_equal(fd, -7);
  assert_int_equal(soon_pipe_open(&p, fds[0]), 0);
  assert_int_equal(soon_stream_fileno((soon_stream *)&p, &fd), 0);
  assert_int_equal(fd, fds[0]);
  assert_int_equal(soon_stream_fileno(NULL, &fd), -EINVAL);
  assert_int_equal(soon_stream_fileno((soon_stream *)&p, NULL), -EINVAL);
  assert_int_equal(soon_close((soon_handle *)&p, NULL), 0);
  assert_int_equal(soon_stream_fileno((soon_stream *)&p, &fd), -EBADF);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
  close_fd(fds[1]);
}

static void test_socketpair_half_close(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  end a, b;
  int fds[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  end_init(&loop, &a);
  end_init(&loop, &b);
  assert_int_equal(soon_pipe_open(&a.p, fds[0]), 0);
  assert_int_equal(soon_pipe_open(&b.p, fds[1]), 0);
  a.data = &b;
  b.data = &a;
  a.on_eof = pair_done;
  b.on_eof = pair_reply;
  end_read_start(&a);
  end_read_start(&b);
  end_write(&a, "ping");
  end_shutdown(&a);
  run_checked(&loop);
  assert_int_equal(a.shut_status, 0);
  assert_int_equal(b.shut_status, 0);
  assert_int_equal(a.write_status, 0);
  assert_int_equal(b.write_status, 0);
  assert_int_equal(a.close_calls, 1);
  assert_int_equal(b.close_calls, 1);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ unix sockets */

/* A listener that accepts one connection, which says "yo" and reads until
 * EOF; the client says "hi", shuts down and reads until EOF. */
typedef struct unix_pair {
  soon_loop loop;
  soon_timer guard;
  soon_pipe listener;
  soon_tcp wrong; /* closed in the loop: must outlive the callback */
  end server, client;
  int accepts;
  const char *name;
  size_t name_len;
} unix_pair;

static void pair_server_eof(end *e) {
  assert_int_equal(e->in_len, 2);
  assert_memory_equal(e->in, "hi", 2);
  /* Its own "yo" may not have called back yet: the client's end and the
   * server's write are unordered (chaos mode shows it), and closing now
   * would cancel the write. */
  if (e->write_calls)
    end_close(e);
  else
    e->on_write = end_close;
}

static void pair_connection(soon_stream *s, int status) {
  unix_pair *u = s->data;
  assert_int_equal(status, 0);
  u->accepts++;
  end_init(&u->loop, &u->server);
  /* A tcp handle cannot take a unix connection. */
  assert_int_equal(soon_tcp_init(&u->loop, &u->wrong), 0);
  assert_int_equal(soon_accept(s, (soon_stream *)&u->wrong), -EINVAL);
  assert_int_equal(soon_close((soon_handle *)&u->wrong, NULL), 0);
  assert_int_equal(soon_accept(s, (soon_stream *)&u->server.p), 0);
  u->server.on_eof = pair_server_eof;
  end_read_start(&u->server);
  end_write(&u->server, "yo");

  /* Names: the accepted end is bound to the listener's name, and its peer
   * (an unbound client) has an empty one. */
  char name[128];
  size_t len = sizeof name;
  assert_int_equal(soon_pipe_getsockname(&u->server.p, name, &len), 0);
  assert_int_equal(len, u->name_len);
  assert_memory_equal(name, u->name, len);
  len = sizeof name;
  assert_int_equal(soon_pipe_getpeername(&u->server.p, name, &len), 0);
  assert_int_equal(len, 0);
  assert_int_equal(soon_close((soon_handle *)&u->listener, NULL), 0);
}

static void run_unix_pair(const char *name, size_t name_len, size_t arg_len) {
  unix_pair u;
  memset(&u, 0, sizeof u);
  u.name = name;
  u.name_len = name_len;
  loop_init_checked(&u.loop);
  guard_start(&u.loop, &u.guard);
  assert_int_equal(soon_pipe_init(&u.loop, &u.listener), 0);
  assert_int_equal(soon_pipe_bind(&u.listener, name, arg_len), 0);
  u.listener.data = &u;
  assert_int_equal(soon_listen((soon_stream *)&u.listener, 8, pair_connection),
                   0);
  char got[128];
  size_t len = sizeof got;
  assert_int_equal(soon_pipe_getsockname(&u.listener, got, &len), 0);
  assert_int_equal(len, name_len);
  assert_memory_equal(got, name, len);
  if (name[0])
    assert_int_equal(got[len], '\0'); /* a path comes NUL-terminated */
  /* Too small a buffer: -ENOBUFS and the size needed. */
  len = 2;
  assert_int_equal(soon_pipe_getsockname(&u.listener, got, &len), -ENOBUFS);
  assert_true(len > name_len);
  /* Not connected: no peer. */
  len = sizeof got;
  assert_int_equal(soon_pipe_getpeername(&u.listener, got, &len), -ENOTCONN);

  end_init(&u.loop, &u.client);
  u.client.creq.data = &u.client;
  assert_int_equal(soon_pipe_connect(&u.client.creq, &u.client.p, name, arg_len,
                                     end_connected),
                   0);
  assert_int_equal(u.client.connect_calls, 0); /* never from the call */
  end_read_start(&u.client);
  end_write(&u.client, "hi");
  end_shutdown(&u.client);
  run_checked(&u.loop);
  assert_int_equal(u.accepts, 1);
  assert_int_equal(u.client.connect_status, 0);
  assert_int_equal(u.client.write_status, 0);
  assert_int_equal(u.client.shut_status, 0);
  assert_int_equal(u.client.in_len, 2);
  assert_memory_equal(u.client.in, "yo", 2);
  assert_true(u.client.eof);
  assert_true(u.server.eof);
  assert_int_equal(u.server.write_status, 0);
  assert_int_equal(u.client.close_calls, 1);
  assert_int_equal(u.server.close_calls, 1);
  guard_close(&u.loop, &u.guard);
  loop_close_checked(&u.loop);
}

static void test_unix_path(void **state) {
  (void)state;
  make_dir();
  const char *path = dir_path(0, "sock");
  run_unix_pair(path, strlen(path), 0);
}

static void test_unix_path_explicit_len(void **state) {
  (void)state;
  make_dir();
  const char *path = dir_path(0, "sock2");
  run_unix_pair(path, strlen(path), strlen(path));
}

static void test_unix_abstract(void **state) {
  (void)state;
  char name[64];
  /* Abstract names are global to the network namespace: make it unique. */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int n = snprintf(name, sizeof name, "%csoon-test-%d-%lx-%ld", '\0',
                   (int)getpid(), (unsigned long)random(), (long)ts.tv_nsec);
  run_unix_pair(name, (size_t)n, (size_t)n);
}

static void test_unix_name_errors(void **state) {
  (void)state;
  soon_loop loop;
  soon_pipe p;
  soon_connect_req req;
  char longname[200];
  make_dir();
  loop_init_checked(&loop);
  assert_int_equal(soon_pipe_init(&loop, &p), 0);

  memset(longname, 'a', sizeof longname);
  longname[0] = '/';
  longname[sizeof longname - 1] = '\0';
  assert_int_equal(soon_pipe_bind(&p, longname, 0), -ENAMETOOLONG);
  assert_int_equal(soon_pipe_connect(&req, &p, longname, 0, never_connect),
                   -ENAMETOOLONG);
  /* sun_path holds 108 bytes: a path of 108 has no room for its NUL. */
  longname[108] = '\0';
  assert_int_equal(soon_pipe_bind(&p, longname, 0), -ENAMETOOLONG);
  /* An abstract name has no NUL: 108 bytes fit, 109 do not. */
  char abs[109];
  memset(abs, 'b', sizeof abs);
  abs[0] = '\0';
  assert_int_equal(soon_pipe_bind(&p, abs, sizeof abs), -ENAMETOOLONG);
  assert_int_equal(soon_pipe_connect(&req, &p, abs, sizeof abs, never_connect),
                   -ENAMETOOLONG);

  assert_int_equal(soon_pipe_bind(&p, "", 0), -EINVAL);
  assert_int_equal(soon_pipe_bind(&p, NULL, 0), -EINVAL);
  assert_int_equal(soon_pipe_bind(&p, abs, 0), -EINVAL); /* empty abstract */
  assert_int_equal(soon_pipe_bind(NULL, "x", 0), -EINVAL);
  assert_int_equal(soon_pipe_connect(NULL, &p, "x", 0, never_connect), -EINVAL);
  assert_int_equal(soon_pipe_connect(&req, &p, "x", 0, NULL), -EINVAL);
  assert_int_equal(soon_pipe_connect(&req, NULL, "x", 0, never_connect),
                   -EINVAL);
  char buf[8];
  size_t len = sizeof buf;
  assert_int_equal(soon_pipe_getsockname(NULL, buf, &len), -EINVAL);
  assert_int_equal(soon_pipe_getsockname(&p, NULL, &len), -EINVAL);
  assert_int_equal(soon_pipe_getsockname(&p, buf, NULL), -EINVAL);
  /* Listening needs a bound socket. */
  soon_pipe unbound;
  assert_int_equal(soon_pipe_init(&loop, &unbound), 0);
  assert_int_equal(soon_listen((soon_stream *)&unbound, 8, never_conn),
                   -EINVAL);
  assert_int_equal(soon_pipe_getsockname(&unbound, buf, &len), -EBADF);
  assert_int_equal(soon_close((soon_handle *)&unbound, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&p, NULL), 0);
  run_checked(&loop);
  loop_close_checked(&loop);
}

/* Connecting where nobody listens fails in the callback, never the call:
 * -ENOENT for a missing path, -ECONNREFUSED for a socket file that no one
 * listens on. */
static void test_unix_connect_errors(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  end missing, stale;
  make_dir();
  const char *stale_path = dir_path(1, "stale");
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_un sun;
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  strcpy(sun.sun_path, stale_path);
  assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
  close_fd(fd); /* the file stays, nobody behind it */

  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  end_init(&loop, &missing);
  end_init(&loop, &stale);
  missing.creq.data = &missing;
  stale.creq.data = &stale;
  assert_int_equal(soon_pipe_connect(&missing.creq, &missing.p,
                                     dir_path(0, "nobody"), 0, end_connected),
                   0);
  assert_int_equal(
      soon_pipe_connect(&stale.creq, &stale.p, stale_path, 0, end_connected),
      0);
  assert_int_equal(missing.connect_calls + stale.connect_calls, 0);
  run_checked(&loop);
  assert_int_equal(missing.connect_calls, 1);
  assert_true(missing.connect_status == -ENOENT ||
              missing.connect_status == -ECONNREFUSED);
  assert_int_equal(stale.connect_calls, 1);
  assert_int_equal(stale.connect_status, -ECONNREFUSED);
  end_close(&missing);
  end_close(&stale);
  run_checked(&loop);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

/* A Unix listener's backlog full: a non-blocking connect(2) then fails with
 * EAGAIN and starts nothing, so waiting for writability cannot complete it.
 * Each connect must either really connect (it has a peer) or fail. */
enum { BACKLOG_CLIENTS = 4 };

typedef struct backlog {
  soon_pipe listener;
  end clients[BACKLOG_CLIENTS];
  int conn_cbs, done, ok, again;
} backlog;

static void backlog_connection(soon_stream *s, int status) {
  backlog *b = s->data;
  assert_int_equal(status, 0);
  b->conn_cbs++; /* not accepted: the kernel's queue stays full */
}

static void backlog_connected(soon_connect_req *req, int status) {
  end *e = req->data;
  backlog *b = e->data;
  e->connect_calls++;
  e->connect_status = status;
  if (status == 0) {
    char name[128];
    size_t len = sizeof name;
    assert_int_equal(soon_pipe_getpeername(&e->p, name, &len), 0);
    b->ok++;
  } else {
    assert_int_equal(status, -EAGAIN);
    b->again++;
  }
  if (++b->done == BACKLOG_CLIENTS) {
    assert_int_equal(soon_close((soon_handle *)&b->listener, NULL), 0);
    for (int i = 0; i < BACKLOG_CLIENTS; i++)
      end_close(&b->clients[i]);
  }
}

static void test_unix_backlog_full(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  backlog b;
  memset(&b, 0, sizeof b);
  make_dir();
  const char *path = dir_path(0, "full");
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  assert_int_equal(soon_pipe_init(&loop, &b.listener), 0);
  assert_int_equal(soon_pipe_bind(&b.listener, path, 0), 0);
  b.listener.data = &b;
  assert_int_equal(
      soon_listen((soon_stream *)&b.listener, 1, backlog_connection), 0);
  for (int i = 0; i < BACKLOG_CLIENTS; i++) {
    end *e = &b.clients[i];
    end_init(&loop, e);
    e->data = &b;
    e->creq.data = e;
    assert_int_equal(
        soon_pipe_connect(&e->creq, &e->p, path, 0, backlog_connected), 0);
  }
  run_checked(&loop);
  assert_int_equal(b.done, BACKLOG_CLIENTS);
  assert_true(b.ok >= 1);
  for (int i = 0; i < BACKLOG_CLIENTS; i++) {
    assert_int_equal(b.clients[i].connect_calls, 1);
    assert_int_equal(b.clients[i].close_calls, 1);
  }
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

int main(void) {
  srandom((unsigned)getpid() ^ (unsigned)time(NULL));
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pipe_read_end),
      cmocka_unit_test(test_pipe_write_end),
      cmocka_unit_test(test_pipe_epipe),
      cmocka_unit_test_teardown(test_pipe_open_errors, cleanup),
      cmocka_unit_test(test_fileno),
      cmocka_unit_test(test_socketpair_half_close),
      cmocka_unit_test_teardown(test_unix_path, cleanup),
      cmocka_unit_test_teardown(test_unix_path_explicit_len, cleanup),
      cmocka_unit_test(test_unix_abstract),
      cmocka_unit_test_teardown(test_unix_name_errors, cleanup),
      cmocka_unit_test_teardown(test_unix_connect_errors, cleanup),
      cmocka_unit_test_teardown(test_unix_backlog_full, cleanup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
