/* helpers.h: static inline helpers shared by the test programs: checked loop
 * set-up and teardown, a guard timer that bounds a run, fd pairs, threads. */
#ifndef SOON_TESTS_HELPERS_H
#define SOON_TESTS_HELPERS_H

/* Include after <cmocka.h> and <soon.h>. */
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* tests/alloc.c, linked into every test program with --wrap for malloc,
 * calloc, realloc, strdup and free, so the library's allocations (and the
 * test's own) pass through it:
 * - the next soon_test_realloc_failures realloc calls return NULL;
 * - with soon_test_alloc_fail_nth = N, the Nth allocation from then on
 *   (any kind) returns NULL, once; it counts down to 0;
 * - soon_test_alloc_count counts every allocation;
 * - soon_test_heap_live and soon_test_heap_peak are the bytes allocated and
 *   not freed, now and at most (set peak = live to start a measure). */
extern _Atomic int soon_test_realloc_failures;
extern _Atomic long soon_test_alloc_fail_nth;
extern _Atomic long soon_test_alloc_count;
extern _Atomic long soon_test_heap_live;
extern _Atomic long soon_test_heap_peak;

/* Ample for any test here to finish; reaching it means a hang, not slowness. */
#define GUARD_MS 30000

static inline void loop_init_checked(soon_loop *loop) {
  memset(loop, 0, sizeof *loop);
  assert_int_equal(soon_loop_init(loop), 0);
}

static inline void loop_init_manual(soon_loop *loop) {
  soon_loop_options opts = {.flags = SOON_LOOP_MANUAL_CLOCK};
  memset(loop, 0, sizeof *loop);
  assert_int_equal(soon_loop_init_ex(loop, &opts), 0);
}

/* The test's last word on a loop: 0 proves that no handle was leaked. */
static inline void loop_close_checked(soon_loop *loop) {
  assert_int_equal(soon_loop_close(loop), 0);
}

static inline void guard_fired(soon_timer *t) {
  (void)t;
  fail_msg("guard timer fired: the loop did not finish by itself");
}

/* An unreferenced timer that fails the test if the loop is still running
 * GUARD_MS later: it bounds a run without keeping it alive. */
static inline void guard_start(soon_loop *loop, soon_timer *guard) {
  assert_int_equal(soon_timer_init(loop, guard), 0);
  assert_int_equal(soon_timer_start(guard, guard_fired, GUARD_MS, 0), 0);
  soon_unref((soon_handle *)guard);
}

/* Close the guard and run the close phase, so the loop can be closed. */
static inline void guard_close(soon_loop *loop, soon_timer *guard) {
  assert_int_equal(soon_close((soon_handle *)guard, NULL), 0);
  assert_int_equal(soon_run(loop, SOON_RUN_DEFAULT), 0);
}

/* Where no loop timer can bound a run (a manual clock's timers never fire by
 * themselves), SIGALRM's default action ends the process instead of a hang. */
static inline void watchdog_arm(void) { alarm(GUARD_MS / 1000); }
static inline void watchdog_disarm(void) { alarm(0); }

static inline void set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  assert_true(fl >= 0);
  assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

static inline void make_pipe(int fds[2]) {
  assert_int_equal(pipe(fds), 0);
  set_nonblock(fds[0]);
  set_nonblock(fds[1]);
}

static inline void make_socketpair(int fds[2]) {
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  set_nonblock(fds[0]);
  set_nonblock(fds[1]);
}

static inline void write_byte(int fd) {
  assert_int_equal(write(fd, "x", 1), 1);
}

static inline void close_fd(int fd) { assert_int_equal(close(fd), 0); }

/* A (blocking) tcp listener on 127.0.0.1, a free port: its fd, and its
 * address in *a. */
static inline int tcp_listener(struct sockaddr_in *a) {
  socklen_t len = sizeof *a;
  assert_int_equal(soon_ip4_addr("127.0.0.1", 0, a), 0);
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(l >= 0);
  assert_int_equal(bind(l, (struct sockaddr *)a, sizeof *a), 0);
  assert_int_equal(listen(l, 1), 0);
  assert_int_equal(getsockname(l, (struct sockaddr *)a, &len), 0);
  return l;
}

/* Two connected (blocking) tcp sockets over 127.0.0.1. */
static inline void tcp_pair(int fds[2]) {
  struct sockaddr_in a;
  int l = tcp_listener(&a);
  fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fds[0] >= 0);
  assert_int_equal(connect(fds[0], (struct sockaddr *)&a, sizeof a), 0);
  fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
  assert_true(fds[1] >= 0);
  close_fd(l);
}

/* Spin (not sleep) until the monotonic clock has moved by at least ms. */
static inline void spin_ms(uint64_t ms) {
  uint64_t start = soon_hrtime();
  while (soon_hrtime() - start < ms * 1000000u)
    ;
}

static inline pid_t current_tid(void) { return (pid_t)syscall(SYS_gettid); }

/* Whether thread tid of this process is asleep ('S' in /proc), e.g. a loop
 * thread blocked in its backend. 1 when /proc cannot tell. */
static inline int thread_sleeping(pid_t tid) {
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
  FILE *f = fopen(path, "r");
  if (!f)
    return 1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *p = strrchr(buf, ')');
  return !p || (p[1] == ' ' && p[2] == 'S');
}

/* From another thread: wait (bounded, 10 s, then go on anyway) until thread
 * tid sleeps. Best effort, never needed for correctness. */
static inline void wait_until_sleeping(pid_t tid) {
  uint64_t start = soon_hrtime();
  while (!thread_sleeping(tid) && soon_hrtime() - start < 10000000000u)
    sched_yield();
}

#endif
