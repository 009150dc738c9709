/* test_process.c: soon_spawn on each spawn and reaping path: stdio modes, 1 MiB
 * through pipes, exits and signals, no zombies, errors, cwd, env, uid. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <soon.h>
#include <stdio.h>
#include <sys/wait.h>

#include "helpers.h"

/* ------------------------------------------------------------ helpers */

/* A child and what it said: the exit, and its stdout/stderr if piped. */
typedef struct child {
  soon_process proc;
  int exited;
  int64_t status;
  int signal;
} child;

typedef struct sink {
  soon_pipe pipe;
  char *data;
  size_t len, cap;
  int eof;
  char space[65536];
} sink;

static void on_exit_close(soon_process *p, int64_t status, int sig) {
  child *c = (child *)p;
  assert_false(soon_is_active((soon_handle *)p)); /* not active from here */
  c->exited++;
  c->status = status;
  c->signal = sig;
  soon_close((soon_handle *)p, NULL);
}

static void sink_alloc(soon_handle *h, size_t size, soon_buf *buf) {
  (void)size;
  sink *s = (sink *)h;
  buf->base = s->space;
  buf->len = sizeof s->space;
}

static void sink_read(soon_stream *st, ssize_t n, const soon_buf *buf) {
  sink *s = (sink *)st;
  if (n > 0) {
    if (s->len + (size_t)n + 1 > s->cap) {
      s->cap = (s->len + (size_t)n + 1) * 2;
      s->data = realloc(s->data, s->cap);
      assert_non_null(s->data);
    }
    memcpy(s->data + s->len, buf->base, (size_t)n);
    s->len += (size_t)n;
    s->data[s->len] = '\0';
  } else if (n < 0) {
    assert_int_equal(n, SOON_EOF);
    s->eof = 1;
    soon_close((soon_handle *)st, NULL);
  }
}

static void sink_init(soon_loop *loop, sink *s) {
  memset(s, 0, sizeof *s);
  assert_int_equal(soon_pipe_init(loop, &s->pipe), 0);
}

static void sink_start(sink *s) {
  assert_int_equal(
      soon_read_start((soon_stream *)&s->pipe, sink_alloc, sink_read), 0);
}

static const char *sink_str(const sink *s) { return s->data ? s->data : ""; }

static soon_stdio_container ignore(void) {
  return (soon_stdio_container){.flags = SOON_IGNORE};
}
static soon_stdio_container to_sink(sink *s) {
  return (soon_stdio_container){.flags = SOON_CREATE_PIPE | SOON_WRITABLE_PIPE,
                                .data.stream = (soon_stream *)&s->pipe};
}

static int spawn_sh(soon_loop *loop, child *c, const char *script,
                    soon_stdio_container *stdio, int n) {
  static char *args[4];
  args[0] = "sh";
  args[1] = "-c";
  args[2] = (char *)script;
  args[3] = NULL;
  memset(c, 0, sizeof *c);
  soon_process_options o = {.exit_cb = on_exit_close,
                            .file = "/bin/sh",
                            .args = args,
                            .stdio_count = n,
                            .stdio = stdio};
  return soon_spawn(loop, &c->proc, &o);
}

/* Zombies of this process: /proc/<pid>/stat with our pid as ppid, state Z.
 * The command name is in parentheses and may hold anything: parse after
 * the last ')'. */
static int count_zombies(void) {
  DIR *d = opendir("/proc");
  assert_non_null(d);
  int zombies = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9')
      continue;
    char path[300], buf[1024];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f)
      continue; /* gone meanwhile */
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *rp = strrchr(buf, ')');
    char st;
    int ppid;
    if (rp && sscanf(rp + 1, " %c %d", &st, &ppid) == 2 && ppid == getpid() &&
        st == 'Z')
      zombies++;
  }
  closedir(d);
  return zombies;
}

typedef struct env {
  soon_loop loop;
  soon_timer guard;
} env;

static void env_init(env *e) {
  loop_init_checked(&e->loop);
  guard_start(&e->loop, &e->guard);
}

static void env_done(env *e) {
  guard_close(&e->loop, &e->guard);
  loop_close_checked(&e->loop);
  assert_int_equal(count_zombies(), 0);
}

/* Each test runs on the default paths (posix_spawn, pidfd) and on the
 * others: SOON_SPAWN_FORK=1 (fork + exec), SOON_NO_PIDFD=1 (SIGCHLD). */
static int set_fork(void **state) {
  (void)state;
  return setenv("SOON_SPAWN_FORK", "1", 1);
}
static int set_sigchld(void **state) {
  (void)state;
  return setenv("SOON_NO_PIDFD", "1", 1);
}
static int set_default(void **state) {
  (void)state;
  unsetenv("SOON_SPAWN_FORK");
  unsetenv("SOON_NO_PIDFD");
  return 0;
}

/* ------------------------------------------------------------ tests */

static void test_exit_code(void **state) {
  (void)state;
  env e;
  child c;
  env_init(&e);
  assert_int_equal(spawn_sh(&e.loop, &c, "exit 7", NULL, 0), 0);
  assert_true(soon_is_active((soon_handle *)&c.proc));
  assert_true(soon_process_get_pid(&c.proc) > 0);
  assert_int_equal(c.exited, 0); /* never from inside soon_spawn */
  assert_int_equal(soon_run(&e.loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(c.exited, 1);
  assert_int_equal(c.status, 7);
  assert_int_equal(c.signal, 0);
  env_done(&e);
}

static void test_kill_sigterm(void **state) {
  (void)state;
  env e;
  child c;
  env_init(&e);
  assert_int_equal(spawn_sh(&e.loop, &c, "exec sleep 1000", NULL, 0), 0);
  assert_int_equal(soon_process_kill(&c.proc, 0), 0); /* alive */
  assert_int_equal(soon_process_kill(&c.proc, SIGTERM), 0);
  assert_int_equal(soon_run(&e.loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(c.exited, 1);
  assert_int_equal(c.signal, SIGTERM);
  assert_int_equal(c.status, 0);
  env_done(&e);
}

/* A process the exit callback does not close: soon_process_kill now says
 * -ESRCH rather than signal whoever has the pid since. */
static void on_exit_keep(soon_process *p, int64_t status, int sig) {
  child *c = (child *)p;
  c->exited++;
  c->status = status;
  c->signal = sig;
}

/* A `true` child spawned and run until its exit was told. */
static void run_true(env *e, child *c) {
  char *args[] = {"true", NULL};
  env_init(e);
  memset(c, 0, sizeof *c);
  soon_process_options o = {
      .exit_cb = on_exit_keep, .file = "true", .args = args};
  assert_int_equal(soon_spawn(&e->loop, &c->proc, &o), 0);
  assert_int_equal(soon_run(&e->loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(c->exited, 1);
}

static void test_kill_after_exit(void **state) {
  (void)state;
  env e;
  child c;
  run_true(&e, &c);
  assert_int_equal(c.status, 0);
  assert_int_equal(soon_process_kill(&c.proc, SIGTERM), -ESRCH);
  assert_int_equal(soon_kill(INT_MAX, 0), -ESRCH); /* over any pid_max */
  assert_int_equal(soon_kill(getpid(), 0), 0);
  assert_int_equal(soon_close((soon_handle *)&c.proc, NULL), 0);
  env_done(&e);
}

/* Closing after the exit must not forget it: the pid is reaped and may be
 * anyone's, during the close and after the close callback alike. A kill(2)
 * of a free pid says -ESRCH by itself, so the test stands in for the
 * kernel's recycling by pointing pid at a live process (this one, signal 0):
 * only a kill that never reaches kill(2) passes. */
static void test_kill_after_exit_and_close(void **state) {
  (void)state;
  env e;
  child c;
  run_true(&e, &c);
  c.proc.pid = getpid(); /* the pid, recycled */
  /* Exited, then closing, then closed: */
  assert_int_equal(soon_process_kill(&c.proc, 0), -ESRCH);
  assert_int_equal(soon_close((soon_handle *)&c.proc, NULL), 0);
  assert_int_equal(soon_process_kill(&c.proc, 0), -ESRCH);
  assert_int_equal(soon_run(&e.loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(soon_process_kill(&c.proc, 0), -ESRCH);
  assert_int_equal(soon_process_kill(NULL, 0), -EINVAL);
  assert_int_equal(soon_process_get_pid(NULL), 0);
  env_done(&e);
}

static void test_stdio_ignore(void **state) {
  (void)state;
  env e;
  child c;
  sink err;
  env_init(&e);
  sink_init(&e.loop, &err);
  soon_stdio_container stdio[3] = {ignore(), ignore(), to_sink(&err)};
  assert_int_equal(spawn_sh(&e.loop, &c,
                            "echo hidden; read x; echo \"[$x]\" >&2;"
                            "a=$(readlink /proc/$$/fd/0);"
                            "b=$(readlink /proc/$$/fd/1); echo $a $b >&2",
                            stdio, 3),
                   0);
  sink_start(&err);
  assert_int_equal(soon_run(&e.loop, SOON_RUN_DEFAULT), 0);
  assert_string_equal(sink_str(&err), "[]\n/dev/null /dev/null\n");
  assert_int_equal(c.status, 0);
  free(err.data);
  env_done(&e);
}

/* stdio_count 0: fds 0..2 are /dev/null too, and none of soon's fds (its
 * eventfd, epoll fd, pidfds, sockets) leaks into the child. */
static void test_stdio_default_null(void **state) {
  (void)state;
  env e;
  child c;
  env_init(&e);
  assert_int_equal(
      spawn_sh(&e.loop, &c,
               "for f in 0 1 2; do "
               "[ \"$(readlink /proc/$$/fd/$f)\" = /dev/null ] || exit 1; done;"
               "for f in /proc/$$/fd/*; do case $(readlink $f) in "
               "*anon_inode*|socket:*) exit 2;; esac; done",
               NULL, 0),
      0);
  assert_int_equal(soon_run(&e.loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(c.status, 0);
  env_done(&e);
}

static void read_all(int fd, char *buf, size_t size) {
  size_t len = 0;
  for (;;) {
    ssize_t n = read(fd, buf + len, size - 1 - len);
    assert_true(n >= 0);
    if (n == 0)
      break;
    len += (size_t)n;
  }
  buf[len] = '\0';
}

/* INHERIT_FD: the child writes straight into a pipe(2) of the test; the
 * same fd may serve two of the child's fds. */
static void test_stdio_inherit_fd(void **state) {
  (void)state;
  env e;
  child c;
  int fds[2];
  char buf[256];
  env_init(&e);
  assert_int_equal(pipe(fds), 0);
  soon_stdio_container stdio[3] = {
      ignore(),
      {.flags = SOON_INHERIT_FD, .data.fd = fds[1]},
      {.flags = SOON_INHERIT_FD, .data.fd = fds[1]},
  };
  assert_int_equal(
      spawn_sh(&e.loop, &c, "echo to-out; echo to-err >&2", stdio, 3), 0);
  assert_int_equal(soon_run(&e.loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(c.status, 0);
  close_fd(fds[1]); /* ours: the child's copies are gone */
  read_all(fds[0], buf, sizeof buf);
  assert_string_equal(buf, "to-out\nto-err\n");
  close_fd(fds[0]);
  env_done(&e);
}

/* INHERIT_FD of the child's own number (fd 2 as 2): kept in place. And a
 * fd beyond 2: stdio_count 5 gives the child fd 4. */
static void test_stdio_inherit_in_place(void **state) {
  (void)state;
  env e;
  child c;
  int fds[2];
  char buf[256];
  env_init(&e);
  assert_int_equal(pipe(fds), 0);
  soon_stdio_container stdio[5] = {
      ignore(),
      ignore(),
      {.flags = SOON_INHERIT_FD, .data.fd = 2},
      ignore(),
      {.flags = SOON_INHERIT_FD, .data.fd = fds[1]}};
  assert_int_equal(spawn_sh(&e.loop, &c,
                            "[ -e /proc/$$/fd/2 ] || exit 3; echo four >&4",
                            stdio, 5),
                   0);
  assert_int_equal(soon_run(&e.loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(c.status, 0);
  close_fd(fds[1]);
  read_all(fds[0], buf, sizeof buf);
  assert_string_equal(buf, "four\n");
  close_fd(fds[0]);
  env_done(&e);
}

/* Two inherited fds that trade places among the child's low fds: each
 * dup2 must read its source before another dup2 overwrites it. The child
 * tells what its fds are, as /proc shows them. */
static void test_stdio_swapped(void **state) {
  (void)state;
  env e;
  child c;
  sink err;
  int pa[2], pb[2];
  char script[96], want[160], la[64], lb[64], path[64];
  env_init(&e);
  sink_init(&e.loop, &err);
  assert_int_equal(pipe(pa), 0);
  assert_int_equal(pipe(pb), 0);
  int fa = pa[1], fb = pb[1], n = fb + 1;
  soon_stdio_container *stdio = calloc((size_t)n, sizeof *stdio);
  assert_non_null(stdio);
  for (int i = 0; i < n; i++)
    stdio[i] = ignore();
  stdio[2] = to_sink(&err);
  stdio[fa] = (soon_stdio_container){.flags = SOON_INHERIT_FD, .data.fd = fb};
  stdio[fb] = (soon_stdio_container){.flags = SOON_INHERIT_FD, .data.fd = fa};
  snprintf(script, sizeof script,
           "a=$(readlink /proc/$$/fd/%d); b=$(readlink /proc/$$/fd/%d);"
           "echo $a $b >&2",
           fa, fb);
  assert_int_equal(spawn_sh(&e.loop, &c, script, stdio, n), 0);
  sink_start(&err);
  assert_int_equal(soon_run(&e.loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(c.status, 0);
  snprintf(path, sizeof path, "/proc/self/fd/%d", fa);
  ssize_t na = readlink(path, la, sizeof la - 1);
  snprintf(path, sizeof path, "/proc/self/fd/%d", fb);
  ssize_t nb = readlink(path, lb, sizeof lb - 1);
  assert_true(na > 0 && nb > 0);
  la[na] = lb[nb] = '\0';
  snprintf(want, sizeof want, "%s %s\n", lb, la);
  assert_string_equal(sink_str(&err), want);
  free(err.data);
  free(stdio);
  close_fd(pa[0]);
  close_fd(pa[1]);
  close_fd(pb[0]);
  close_fd(pb[1]);
  env_done(&e);
}

/* With the parent's fds 0 and 1 closed, the fds soon makes for the child
 * (socketpair, /dev/null, the fork path's error pipe) get those numbers:
 * they must still land where they belong. 0 and 1 are given back only once
 * the loop is closed, so that no fd of soon's is overwritten. */
static void test_parent_stdio_closed(void **state) {
  (void)state;
  env e;
  child c;
  sink out;
  int saved0 = dup(0), saved1 = dup(1), saved2 = dup(2);
  assert_true(saved0 > 2 && saved1 > 2 && saved2 > 2);
  env_init(&e);
  sink_init(&e.loop, &out);
  close_fd(0);
  close_fd(1);
  /* All three closed: the error pipe would be fds 0 and 1, where the child
   * puts /dev/null; the exec's error must still come back. */
  close_fd(2);
  char *args[] = {"soon-test-no-such-program", NULL};
  soon_process_options o = {.file = args[0], .args = args};
  int missing = soon_spawn(&e.loop, &c.proc, &o);
  assert_int_equal(dup2(saved2, 2), 2);
  close_fd(saved2);
  assert_int_equal(missing, -ENOENT);
  soon_stdio_container stdio[3] = {ignore(), to_sink(&out), ignore()};
  int r = spawn_sh(&e.loop, &c, "read x; echo \"[$x]\"; exit 6", stdio, 3);
  if (r == 0)
    sink_start(&out);
  else
    soon_close((soon_handle *)&out.pipe, NULL);
  int alive = soon_run(&e.loop, SOON_RUN_DEFAULT);
  soon_close((soon_handle *)&e.guard, NULL);
  soon_run(&e.loop, SOON_RUN_DEFAULT);
  int closed = soon_loop_close(&e.loop);
  assert_int_equal(dup2(saved0, 0), 0);
  assert_int_equal(dup2(saved1, 1), 1);
  close_fd(saved0);
  close_fd(saved1);
  assert_int_equal(r, 0);
  assert_int_equal(alive, 0);
  assert_int_equal(closed, 0);
  assert_string_equal(sink_str(&out), "[]\n");
  assert_int_equal(c.status, 6);
  free(out.data);
  assert_int_equal(count_zombies(), 0);
}

/* INHERIT_STREAM: the child gets the fd of an open soon stream. */
static void test_stdio_inherit_stream(void **state) {
  (void)state;
  env e;
  child c;
  soon_pipe p;
  int sv[2];
  char buf[256];
  env_init(&e);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  assert_int_equal(soon_pipe_init(&e.loop, &p), 0);
  assert_int_equal(soon_pipe_open(&p, sv[0]), 0);
  soon_stdio_container stdio[2] = {
      ignore(),
      {.flags = SOON_INHERIT_STREAM, .data.stream = (soon_stream *)&p}};
  assert_int_equal(spawn_sh(&e.loop, &c, "echo via-stream", stdio, 2), 0);
  assert_int_equal(soon_run(&e.loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(c.status, 0);
  assert_int_equal(soon_close((soon_handle *)&p, NULL), 0); /* closes sv[0] */
  read_all(sv[1], buf, sizeof buf);
  assert_string_equal(buf, "via-stream\n");
  close_fd(sv[1]);
  env_done(&e);
}

/* 1 MiB into cat's stdin, back from its stdout, compared by hash; the
 * write end is shut down to give cat its EOF. */
enum { BIG = 1 << 20 };
typedef struct hashing {
  soon_pipe pipe;
  uint64_t hash;
  size_t len;
  int eof;
  char space[65536];
} hashing;

static uint64_t fnv1a(uint64_t h, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
  return h;
}

static void hashing_alloc(soon_handle *h, size_t size, soon_buf *buf) {
  (void)size;
  hashing *s = (hashing *)h;
  buf->base = s->space;
  buf->len = sizeof s->space;
}

static void hashing_read(soon_stream *st, ssize_t n, const soon_buf *buf) {
  hashing *s = (hashing *)st;
  if (n > 0) {
    s->hash = fnv1a(s->hash, buf->base, (size_t)n);
    s->len += (size_t)n;
  } else if (n < 0) {
    assert_int_equal(n, SOON_EOF);
    s->eof = 1;
    soon_close((soon_handle *)st, NULL);
  }
}

static int wrote, shut;
static void on_written(soon_write_req *req, int status) {
  assert_int_equal(status, 0);
  wrote = 1;
  (void)req;
}
static void on_shut(soon_shutdown_req *req, int status) {
  assert_int_equal(status, 0);
  shut = 1;
  soon_close((soon_handle *)req->handle, NULL);
}

static void test_pipes_both_ways(void **state) {
  (void)state;
  env e;
  child c;
  soon_pipe in;
  hashing out;
  soon_write_req wreq;
  soon_shutdown_req sreq;
  char *data = malloc(BIG);
  assert_non_null(data);
  uint64_t x = 88172645463325252ull; /* xorshift: not compressible, not text */
  for (size_t i = 0; i < BIG; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    data[i] = (char)x;
  }
  uint64_t want = fnv1a(0xcbf29ce484222325ull, data, BIG);
  env_init(&e);
  memset(&out, 0, sizeof out);
  out.hash = 0xcbf29ce484222325ull;
  assert_int_equal(soon_pipe_init(&e.loop, &in), 0);
  assert_int_equal(soon_pipe_init(&e.loop, &out.pipe), 0);
  soon_stdio_container stdio[3] = {
      {.flags = SOON_CREATE_PIPE | SOON_READABLE_PIPE,
       .data.stream = (soon_stream *)&in},
      {.flags = SOON_CREATE_PIPE | SOON_WRITABLE_PIPE,
       .data.stream = (soon_stream *)&out.pipe},
      ignore()};
  char *args[] = {"cat", NULL};
  memset(&c, 0, sizeof c);
  soon_process_options o = {.exit_cb = on_exit_close,
                            .file = "cat",
                            .args = args,
                            .stdio_count = 3,
                            .stdio = stdio};
  assert_int_equal(soon_spawn(&e.loop, &c.proc, &o), 0);
  soon_buf b = {data, BIG};
  wrote = shut = 0;
  assert_int_equal(soon_write(&wreq, (soon_stream *)&in, &b, 1, on_written), 0);
  assert_int_equal(soon_shutdown(&sreq, (soon_stream *)&in, on_shut), 0);
  assert_int_equal(
      soon_read_start((soon_stream *)&out.pipe, hashing_alloc, hashing_read),
      0);
  assert_int_equal(soon_run(&e.loop, SOON_RUN_DEFAULT), 0);
  assert_true(wrote && shut && out.eof);
  assert_int_equal(out.len, BIG);
  assert_true(out.hash == want);
  assert_int_equal(c.status, 0);
  assert_int_equal(c.signal, 0);
  free(data);
  env_done(&e);
}

/* 100 children at once, every one reaped and told, no zombie left. */
static void test_many_children(void **state) {
  (void)state;
  enum { N = 100 };
  env e;
  child *c = calloc(N, sizeof *c);
  char scripts[N][32];
  assert_non_null(c);
  env_init(&e);
  for (int i = 0; i < N; i++) {
    snprintf(scripts[i], sizeof scripts[i], "exit %d", i);
    assert_int_equal(spawn_sh(&e.loop, &c[i], scripts[i], NULL, 0), 0);
  }
  assert_int_equal(soon_run(&e.loop, SOON_RUN_DEFAULT), 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(c[i].exited, 1);
    assert_int_equal(c[i].status, i);
  }
  env_done(&e); /* counts zombies */
  free(c);
}

/* A program that cannot run fails soon_spawn itself: no handle, no zombie,
 * no stream opened. */
static void test_missing_program(void **state) {
  (void)state;
  env e;
  child c;
  sink out;
  env_init(&e);
  sink_init(&e.loop, &out);
  soon_stdio_container stdio[2] = {ignore(), to_sink(&out)};
  const char *files[] = {"/nonexistent/soon-test-program",
                         "soon-test-no-such-program"};
  for (int i = 0; i < 2; i++) {
    char *args[] = {(char *)files[i], NULL};
    soon_process_options o = {.exit_cb = on_exit_close,
                              .file = files[i],
                              .args = args,
                              .stdio_count = 2,
                              .stdio = stdio};
    memset(&c, 0, sizeof c);
    assert_int_equal(soon_spawn(&e.loop, &c.proc, &o), -ENOENT);
    assert_int_equal(count_zombies(), 0);
    /* The pipe was not opened: it can still be used for another spawn. */
    assert_int_equal(
        soon_read_start((soon_stream *)&out.pipe, sink_alloc, sink_read),
        -ENOTCONN);
  }
  assert_int_equal(spawn_sh(&e.loop, &c, "echo second try", stdio, 2), 0);
  sink_start(&out);
  assert_int_equal(soon_run(&e.loop, SOON_RUN_DEFAULT), 0);
  assert_string_equal(sink_str(&out), "second try\n");
  free(out.data);
  /* Not a program: a directory. */
  char *dargs[] = {"/", NULL};
  soon_process_options o = {.file = "/", .args = dargs};
  assert_int_equal(soon_spawn(&e.loop, &c.proc, &o), -EACCES);
  env_done(&e);
}

static void test_invalid_options(void **state) {
  (void)state;
  env e;
  child c;
  soon_pipe open_pipe, fresh;
  int sv[2];
  env_init(&e);
  char *args[] = {"true", NULL};
  soon_process_options o = {.file = "true", .args = args};
  assert_int_equal(soon_spawn(NULL, &c.proc, &o), -EINVAL);
  assert_int_equal(soon_spawn(&e.loop, NULL, &o), -EINVAL);
  assert_int_equal(soon_spawn(&e.loop, &c.proc, NULL), -EINVAL);
  o.file = NULL;
  assert_int_equal(soon_spawn(&e.loop, &c.proc, &o), -EINVAL);
  o.file = "";
  assert_int_equal(soon_spawn(&e.loop, &c.proc, &o), -EINVAL);
  o.file = "true";
  o.flags = 1u << 10;
  assert_int_equal(soon_spawn(&e.loop, &c.proc, &o), -EINVAL);
  o.flags = 0;
  o.stdio_count = 1;
  assert_int_equal(soon_spawn(&e.loop, &c.proc, &o), -EINVAL); /* no stdio */
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  assert_int_equal(soon_pipe_init(&e.loop, &open_pipe), 0);
  assert_int_equal(soon_pipe_open(&open_pipe, sv[0]), 0);
  assert_int_equal(soon_pipe_init(&e.loop, &fresh), 0);
  soon_stdio_container bad[] = {
      {.flags = SOON_CREATE_PIPE, .data.stream = NULL},
      {.flags = SOON_CREATE_PIPE, .data.stream = (soon_stream *)&open_pipe},
      {.flags = SOON_INHERIT_STREAM, .data.stream = (soon_stream *)&fresh},
      {.flags = SOON_INHERIT_FD, .data.fd = -1},
      {.flags = SOON_INHERIT_FD | SOON_CREATE_PIPE,
       .data.stream = (soon_stream *)&fresh},
      {.flags = SOON_READABLE_PIPE, .data.fd = 0},
      {.flags = 0x4000},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    o.stdio = &bad[i];
    assert_int_equal(soon_spawn(&e.loop, &c.proc, &o), -EINVAL);
  }
  /* One stream for two pipes. */
  soon_stdio_container twice[2] = {
      {.flags = SOON_CREATE_PIPE, .data.stream = (soon_stream *)&fresh},
      {.flags = SOON_CREATE_PIPE, .data.stream = (soon_stream *)&fresh}};
  o.stdio = twice;
  o.stdio_count = 2;
  assert_int_equal(soon_spawn(&e.loop, &c.proc, &o), -EINVAL);
  o.stdio_count = 1;
  /* An fd that is not open: the spawn's error, nothing left behind. */
  soon_stdio_container closed = {.flags = SOON_INHERIT_FD, .data.fd = 1000};
  o.stdio = &closed;
  assert_int_equal(soon_spawn(&e.loop, &c.proc, &o), -EBADF);
  soon_close((soon_handle *)&open_pipe, NULL);
  soon_close((soon_handle *)&fresh, NULL);
  close_fd(sv[1]);
  env_done(&e); /* closes the loop: no process handle was left listed */
}

static void test_cwd_env(void **state) {
  (void)state;
  env e;
  child c;
  sink out;
  char tpl[] = "/tmp/soon-process-XXXXXX", real[PATH_MAX], want[PATH_MAX + 64];
  assert_non_null(mkdtemp(tpl));
  assert_non_null(realpath(tpl, real));
  env_init(&e);
  sink_init(&e.loop, &out);
  soon_stdio_container stdio[2] = {ignore(), to_sink(&out)};
  char *args[] = {"sh", "-c", "pwd -P; echo \"$SOON_TEST_VAR\"; echo \"$HOME\"",
                  NULL};
  char *envp[] = {"SOON_TEST_VAR=hello from env", "PATH=/usr/bin:/bin", NULL};
  memset(&c, 0, sizeof c);
  soon_process_options o = {.exit_cb = on_exit_close,
                            .file = "sh",
                            .args = args,
                            .env = envp,
                            .cwd = real,
                            .stdio_count = 2,
                            .stdio = stdio};
  assert_int_equal(soon_spawn(&e.loop, &c.proc, &o), 0);
  sink_start(&out);
  assert_int_equal(soon_run(&e.loop, SOON_RUN_DEFAULT), 0);
  snprintf(want, sizeof want, "%s\nhello from env\n\n", real);
  assert_string_equal(sink_str(&out), want);
  free(out.data);
  /* A cwd that does not exist is soon_spawn's error. */
  o.cwd = "/nonexistent/soon-dir";
  o.stdio_count = 0;
  assert_int_equal(soon_spawn(&e.loop, &c.proc, &o), -ENOENT);
  assert_int_equal(rmdir(real), 0);
  env_done(&e);
}

/* A new session: the child leads it. It waits for its stdin to close, so it
 * is still running when its session is asked for. */
static void test_detached(void **state) {
  (void)state;
  env e;
  child c;
  soon_pipe in;
  char *args[] = {"sh", "-c", "read x; exit 0", NULL};
  env_init(&e);
  assert_int_equal(soon_pipe_init(&e.loop, &in), 0);
  soon_stdio_container stdio[1] = {
      {.flags = SOON_CREATE_PIPE | SOON_READABLE_PIPE,
       .data.stream = (soon_stream *)&in}};
  memset(&c, 0, sizeof c);
  soon_process_options o = {.exit_cb = on_exit_close,
                            .file = "sh",
                            .args = args,
                            .flags = SOON_PROCESS_DETACHED,
                            .stdio_count = 1,
                            .stdio = stdio};
  assert_int_equal(soon_spawn(&e.loop, &c.proc, &o), 0);
  int pid = soon_process_get_pid(&c.proc);
  assert_int_equal(getsid(pid), pid);
  /* The reaping path is the one asked for: a SIGCHLD handler only without
   * pidfds. */
  struct sigaction now;
  assert_int_equal(sigaction(SIGCHLD, NULL, &now), 0);
  assert_int_equal(now.sa_handler != SIG_DFL, getenv("SOON_NO_PIDFD") != NULL);
  assert_int_equal(soon_close((soon_handle *)&in, NULL), 0);
  assert_int_equal(soon_run(&e.loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(c.exited, 1);
  assert_int_equal(c.status, 0);
  env_done(&e);
}

static void test_uid_gid(void **state) {
  (void)state;
  env e;
  child c;
  sink out;
  char *args[] = {"sh", "-c", "id -u; id -g", NULL};
  env_init(&e);
  sink_init(&e.loop, &out);
  soon_stdio_container stdio[2] = {ignore(), to_sink(&out)};
  memset(&c, 0, sizeof c);
  soon_process_options o = {.exit_cb = on_exit_close,
                            .file = "sh",
                            .args = args,
                            .stdio_count = 2,
                            .stdio = stdio,
                            .flags = SOON_PROCESS_SETUID | SOON_PROCESS_SETGID,
                            .uid = 65534,
                            .gid = 65534};
  if (geteuid() != 0) {
    assert_int_equal(soon_spawn(&e.loop, &c.proc, &o), -EPERM);
    soon_close((soon_handle *)&out.pipe, NULL);
  } else {
    assert_int_equal(soon_spawn(&e.loop, &c.proc, &o), 0);
    sink_start(&out);
    assert_int_equal(soon_run(&e.loop, SOON_RUN_DEFAULT), 0);
    assert_string_equal(sink_str(&out), "65534\n65534\n");
    free(out.data);
  }
  env_done(&e);
}

/* Closing the handle before the exit: no callback; the child is the
 * caller's to reap from then on. */
static void test_close_before_exit(void **state) {
  (void)state;
  env e;
  child c;
  soon_pipe in;
  env_init(&e);
  assert_int_equal(soon_pipe_init(&e.loop, &in), 0);
  soon_stdio_container stdio[1] = {
      {.flags = SOON_CREATE_PIPE | SOON_READABLE_PIPE,
       .data.stream = (soon_stream *)&in}};
  assert_int_equal(spawn_sh(&e.loop, &c, "read x; exit 4", stdio, 1), 0);
  int pid = soon_process_get_pid(&c.proc);
  assert_int_equal(soon_close((soon_handle *)&c.proc, NULL), 0);
  assert_int_equal(soon_close((soon_handle *)&in, NULL), 0); /* its EOF */
  assert_int_equal(soon_run(&e.loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(c.exited, 0);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  env_done(&e);
}

/* On SIGCHLD soon waits for its own pids only: a child forked outside soon
 * is still there for its owner to reap, with its status. */
static void test_sigchld_spares_others(void **state) {
  (void)state;
  env e;
  child c[10];
  pid_t outside = fork();
  assert_true(outside >= 0);
  if (outside == 0)
    _exit(42);
  siginfo_t si;
  /* Exited, not reaped: a waitpid(-1) anywhere would take it now. */
  assert_int_equal(waitid(P_PID, (id_t)outside, &si, WEXITED | WNOWAIT), 0);
  env_init(&e);
  for (int i = 0; i < 10; i++)
    assert_int_equal(spawn_sh(&e.loop, &c[i], "exit 5", NULL, 0), 0);
  assert_int_equal(soon_run(&e.loop, SOON_RUN_DEFAULT), 0);
  for (int i = 0; i < 10; i++) {
    assert_int_equal(c[i].exited, 1);
    assert_int_equal(c[i].status, 5);
  }
  int st;
  assert_int_equal(waitpid(outside, &st, 0), outside);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 42);
  env_done(&e);
  /* The SIGCHLD watch is gone with the last process: default again. */
  struct sigaction now;
  assert_int_equal(sigaction(SIGCHLD, NULL, &now), 0);
  assert_ptr_equal(now.sa_handler, SIG_DFL);
}

#define ON_ALL_PATHS(t)                                                        \
  cmocka_unit_test_setup_teardown(t, set_default, set_default),                \
      cmocka_unit_test_setup_teardown(t, set_fork, set_default),               \
      cmocka_unit_test_setup_teardown(t, set_sigchld, set_default)

int main(void) {
  const struct CMUnitTest tests[] = {
      ON_ALL_PATHS(test_exit_code),
      ON_ALL_PATHS(test_kill_sigterm),
      ON_ALL_PATHS(test_kill_after_exit),
      ON_ALL_PATHS(test_kill_after_exit_and_close),
      ON_ALL_PATHS(test_stdio_ignore),
      ON_ALL_PATHS(test_stdio_default_null),
      ON_ALL_PATHS(test_stdio_inherit_fd),
      ON_ALL_PATHS(test_stdio_inherit_in_place),
      ON_ALL_PATHS(test_stdio_swapped),
      ON_ALL_PATHS(test_parent_stdio_closed),
      ON_ALL_PATHS(test_stdio_inherit_stream),
      ON_ALL_PATHS(test_pipes_both_ways),
      ON_ALL_PATHS(test_many_children),
      ON_ALL_PATHS(test_missing_program),
      ON_ALL_PATHS(test_invalid_options),
      ON_ALL_PATHS(test_cwd_env),
      ON_ALL_PATHS(test_detached),
      ON_ALL_PATHS(test_close_before_exit),
      ON_ALL_PATHS(test_sigchld_spares_others),
      cmocka_unit_test_setup_teardown(test_uid_gid, set_default, set_default),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
