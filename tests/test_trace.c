/* test_trace.c: the callback trace: the exact sequence of a small program on a
 * manual clock, SOON_TRACE's lines on stderr, requests traced once, and each
 * kind of handle callback (alloc, read, udp, signal, exit) traced once. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>

#include <soon.h>

#include "helpers.h"

static soon_trace_event evs[64];
static int nevs;

static void record(const soon_trace_event *ev, void *arg) {
  assert_ptr_equal(arg, &nevs);
  assert_true(nevs < 64);
  evs[nevs++] = *ev;
}

/* One expected event: a handle's (req 0) or a request's (handle 0). */
static void expect(int i, uint64_t iteration, soon_phase phase,
                   soon_handle_type handle, int req, const void *ptr,
                   int has_status, int status) {
  assert_true(i < nevs);
  assert_int_equal(evs[i].iteration, iteration);
  assert_int_equal(evs[i].phase, phase);
  assert_int_equal(evs[i].handle_type, handle);
  assert_int_equal(evs[i].req_type, req);
  assert_ptr_equal(evs[i].ptr, ptr);
  assert_int_equal(evs[i].has_status, has_status);
  assert_int_equal(evs[i].status, status);
}

static soon_timer t1, t2;
static soon_idle idle;
static soon_check check;

static void timer_cb(soon_timer *t) { (void)t; }
static void idle_cb(soon_idle *h) { (void)h; }
static void close_cb(soon_handle *h) { (void)h; }

/* Closes everything, so the iteration ends with three close callbacks. */
static void check_cb(soon_check *h) {
  (void)h;
  assert_int_equal(soon_close((soon_handle *)&t1, close_cb), 0);
  assert_int_equal(soon_close((soon_handle *)&idle, close_cb), 0);
  assert_int_equal(soon_close((soon_handle *)&check, close_cb), 0);
}

static void test_sequence(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_manual(&loop);
  nevs = 0;
  assert_int_equal(soon_loop_set_trace(&loop, record, &nevs), 0);
  assert_int_equal(soon_timer_init(&loop, &t1), 0);
  assert_int_equal(soon_timer_init(&loop, &t2), 0);
  assert_int_equal(soon_idle_init(&loop, &idle), 0);
  assert_int_equal(soon_check_init(&loop, &check), 0);
  /* t2 fires from soon_loop_advance, before any iteration. */
  assert_int_equal(soon_timer_start(&t2, timer_cb, 5, 0), 0);
  assert_int_equal(soon_loop_advance(&loop, 5), 0);
  assert_int_equal(soon_close((soon_handle *)&t2, NULL), 0);
  /* Then one iteration: t1 (due now), idle, check, three closes. */
  assert_int_equal(soon_timer_start(&t1, timer_cb, 0, 0), 0);
  assert_int_equal(soon_idle_start(&idle, idle_cb), 0);
  assert_int_equal(soon_check_start(&check, check_cb), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(nevs, 7);
  expect(0, 0, SOON_PHASE_TIMERS, SOON_TIMER, 0, &t2, 0, 0);
  /* t2's close has no callback: nothing to trace. */
  expect(1, 1, SOON_PHASE_TIMERS, SOON_TIMER, 0, &t1, 0, 0);
  expect(2, 1, SOON_PHASE_IDLE, SOON_IDLE, 0, &idle, 0, 0);
  expect(3, 1, SOON_PHASE_CHECK, SOON_CHECK, 0, &check, 0, 0);
  expect(4, 1, SOON_PHASE_CLOSING, SOON_TIMER, 0, &t1, 0, 0);
  expect(5, 1, SOON_PHASE_CLOSING, SOON_IDLE, 0, &idle, 0, 0);
  expect(6, 1, SOON_PHASE_CLOSING, SOON_CHECK, 0, &check, 0, 0);
  loop_close_checked(&loop);
}

/* fn NULL turns it off; a loop not initialised is refused. */
static void test_off(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_manual(&loop);
  nevs = 0;
  assert_int_equal(soon_loop_set_trace(&loop, record, &nevs), 0);
  assert_int_equal(soon_loop_set_trace(&loop, NULL, NULL), 0);
  assert_int_equal(soon_timer_init(&loop, &t1), 0);
  assert_int_equal(soon_timer_start(&t1, timer_cb, 0, 0), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(soon_close((soon_handle *)&t1, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(nevs, 0);
  loop_close_checked(&loop);
  assert_int_equal(soon_loop_set_trace(&loop, record, NULL), -EINVAL);
  assert_int_equal(soon_loop_set_trace(NULL, record, NULL), -EINVAL);
}

static void test_names(void **state) {
  (void)state;
  assert_string_equal(soon_phase_name(SOON_PHASE_TIMERS), "timers");
  assert_string_equal(soon_phase_name(SOON_PHASE_CLOSING), "closing");
  assert_string_equal(soon_phase_name((soon_phase)99), "unknown");
  assert_string_equal(soon_handle_type_name(SOON_TCP), "tcp");
  assert_string_equal(soon_handle_type_name(SOON_HANDLE_TYPE_MAX), "unknown");
  assert_string_equal(soon_req_type_name(SOON_FS), "fs");
  assert_string_equal(soon_req_type_name(SOON_GETNAMEINFO), "getnameinfo");
  assert_string_equal(soon_req_type_name(-1), "unknown");
}

/* SOON_TRACE=1 at init: one line per callback on stderr. */
static void test_env(void **state) {
  (void)state;
  char path[] = "/tmp/soon-trace-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  unlink(path);
  fflush(stderr);
  int saved = dup(2);
  assert_true(saved >= 0);
  assert_int_equal(dup2(fd, 2), 2);
  assert_int_equal(setenv("SOON_TRACE", "1", 1), 0);
  soon_loop loop;
  loop_init_manual(&loop);
  assert_int_equal(unsetenv("SOON_TRACE"), 0);
  assert_int_equal(soon_timer_init(&loop, &t1), 0);
  assert_int_equal(soon_timer_start(&t1, timer_cb, 0, 0), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(soon_close((soon_handle *)&t1, close_cb), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
  fflush(stderr);
  assert_int_equal(dup2(saved, 2), 2);
  close_fd(saved);
  char buf[512], want[512];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  close_fd(fd);
  assert_true(n > 0);
  buf[n] = '\0';
  snprintf(want, sizeof want,
           "soon: trace 1 timers timer %p\nsoon: trace 2 closing timer %p\n",
           (void *)&t1, (void *)&t1);
  assert_string_equal(buf, want);
}

static soon_fs_req fs_req;
static soon_work_req work_req;
static int fs_done, work_done;

static void fs_cb(soon_fs_req *req) {
  assert_int_equal(req->result, 0);
  fs_done++;
  soon_fs_req_cleanup(req);
}
static void work_cb(soon_work_req *w) { (void)w; }
static void after_cb(soon_work_req *w, int status) {
  (void)w;
  assert_int_equal(status, 0);
  work_done++;
}

/* A request that runs on the pool (or the ring) is traced once, as itself:
 * the pool's hand-back does not show for fs. */
static void test_requests(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_checked(&loop);
  nevs = 0;
  assert_int_equal(soon_loop_set_trace(&loop, record, &nevs), 0);
  assert_int_equal(soon_fs_stat(&loop, &fs_req, ".", fs_cb), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(fs_done, 1);
  assert_int_equal(nevs, 1);
  expect(0, evs[0].iteration, SOON_PHASE_POLL, SOON_UNKNOWN_HANDLE, SOON_FS,
         &fs_req, 1, 0);
  nevs = 0;
  assert_int_equal(soon_work(&loop, &work_req, work_cb, after_cb), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(work_done, 1);
  assert_int_equal(nevs, 1);
  expect(0, evs[0].iteration, SOON_PHASE_POLL, SOON_UNKNOWN_HANDLE, SOON_WORK,
         &work_req, 1, 0);
  loop_close_checked(&loop);
}

/* The events of one handle or request, in order, less any alloc callback
 * whose buffer came straight back unused (nread 0): chaos mode's spurious
 * EAGAIN, or a wake-up with nothing to read, may add such pairs. */
static int events_of(const void *ptr, soon_trace_event *out, int max) {
  int n = 0;
  for (int i = 0; i < nevs; i++) {
    if (evs[i].ptr != ptr)
      continue;
    int j = i + 1;
    while (j < nevs && evs[j].ptr != ptr)
      j++;
    if (!evs[i].has_status && evs[i].phase == SOON_PHASE_POLL && j < nevs &&
        evs[j].has_status && evs[j].status == 0) {
      i = j; /* an alloc and its buffer handed back */
      continue;
    }
    assert_true(n < max);
    out[n++] = evs[i];
  }
  return n;
}

static void expect_ev(const soon_trace_event *ev, soon_phase phase,
                      soon_handle_type handle, int req, const void *ptr,
                      int has_status, int status) {
  assert_int_equal(ev->phase, phase);
  assert_int_equal(ev->handle_type, handle);
  assert_int_equal(ev->req_type, req);
  assert_ptr_equal(ev->ptr, ptr);
  assert_int_equal(ev->has_status, has_status);
  assert_int_equal(ev->status, status);
}

static char rbuf[64];
static int nread_total;

static void alloc_cb(soon_handle *h, size_t size, soon_buf *buf) {
  (void)h;
  (void)size;
  *buf = (soon_buf){rbuf, sizeof rbuf};
}

static soon_pipe rd;

static void read_cb(soon_stream *s, ssize_t n, const soon_buf *buf) {
  (void)buf;
  assert_true(n >= 0);
  if (n > 0) {
    nread_total += (int)n;
    assert_int_equal(soon_close((soon_handle *)s, close_cb), 0);
  }
}

/* A stream's alloc callback is traced, without a status, just before the
 * read callback it feeds; each once for one byte. */
static void test_stream_alloc(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_checked(&loop);
  int fds[2];
  make_socketpair(fds);
  write_byte(fds[1]);
  nevs = 0;
  nread_total = 0;
  assert_int_equal(soon_loop_set_trace(&loop, record, &nevs), 0);
  assert_int_equal(soon_pipe_init(&loop, &rd), 0);
  assert_int_equal(soon_pipe_open(&rd, fds[0]), 0);
  assert_int_equal(soon_read_start((soon_stream *)&rd, alloc_cb, read_cb), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(nread_total, 1);
  soon_trace_event got[8];
  assert_int_equal(events_of(&rd, got, 8), 3);
  expect_ev(&got[0], SOON_PHASE_POLL, SOON_PIPE, 0, &rd, 0, 0);
  expect_ev(&got[1], SOON_PHASE_POLL, SOON_PIPE, 0, &rd, 1, 1);
  expect_ev(&got[2], SOON_PHASE_CLOSING, SOON_PIPE, 0, &rd, 0, 0);
  close_fd(fds[1]);
  loop_close_checked(&loop);
}

static soon_udp ua, ub;
static soon_udp_send_req send_req;
static int sent, received;

static void send_cb(soon_udp_send_req *req, int status) {
  assert_ptr_equal(req, &send_req);
  assert_int_equal(status, 0);
  sent++;
  if (received)
    assert_int_equal(soon_close((soon_handle *)&ua, close_cb), 0);
}

static void recv_cb(soon_udp *u, ssize_t n, const soon_buf *buf,
                    const struct sockaddr *addr, unsigned flags) {
  (void)buf;
  (void)addr;
  assert_int_equal(flags, 0);
  assert_true(n >= 0);
  if (n == 0 && !addr)
    return; /* a buffer handed back */
  assert_int_equal(n, 1);
  received++;
  assert_int_equal(soon_close((soon_handle *)u, close_cb), 0);
  if (sent)
    assert_int_equal(soon_close((soon_handle *)&ua, close_cb), 0);
}

/* A datagram's way: the send callback (a request, in pending: the kernel
 * took it at once), the receiver's alloc and receive callbacks; once each. */
static void test_udp(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_checked(&loop);
  nevs = 0;
  sent = received = 0;
  struct sockaddr_storage addr;
  int len = sizeof addr;
  assert_int_equal(soon_ip4_addr("127.0.0.1", 0, (struct sockaddr_in *)&addr),
                   0);
  assert_int_equal(soon_udp_init(&loop, &ua), 0);
  assert_int_equal(soon_udp_init(&loop, &ub), 0);
  assert_int_equal(soon_udp_bind(&ub, (struct sockaddr *)&addr, 0), 0);
  assert_int_equal(soon_udp_getsockname(&ub, (struct sockaddr *)&addr, &len),
                   0);
  assert_int_equal(soon_udp_recv_start(&ub, alloc_cb, recv_cb), 0);
  assert_int_equal(soon_loop_set_trace(&loop, record, &nevs), 0);
  soon_buf b = {"x", 1};
  assert_int_equal(
      soon_udp_send(&send_req, &ua, &b, 1, (struct sockaddr *)&addr, send_cb),
      0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(sent, 1);
  assert_int_equal(received, 1);
  soon_trace_event got[8];
  assert_int_equal(events_of(&send_req, got, 8), 1);
  expect_ev(&got[0], SOON_PHASE_PENDING, SOON_UNKNOWN_HANDLE, SOON_UDP_SEND,
            &send_req, 1, 0);
  assert_int_equal(events_of(&ub, got, 8), 3);
  expect_ev(&got[0], SOON_PHASE_POLL, SOON_UDP, 0, &ub, 0, 0);
  expect_ev(&got[1], SOON_PHASE_POLL, SOON_UDP, 0, &ub, 1, 1);
  expect_ev(&got[2], SOON_PHASE_CLOSING, SOON_UDP, 0, &ub, 0, 0);
  assert_int_equal(events_of(&ua, got, 8), 1);
  expect_ev(&got[0], SOON_PHASE_CLOSING, SOON_UDP, 0, &ua, 0, 0);
  loop_close_checked(&loop);
}

static soon_signal sig;
static int signals;

static void signal_cb(soon_signal *h, int signum) {
  assert_int_equal(signum, SIGUSR1);
  signals++;
  assert_int_equal(soon_close((soon_handle *)h, close_cb), 0);
}

/* A signal callback: in poll, once, as the signal handle (its number is not
 * a status); the loop's own wake-up for it does not show. */
static void test_signal(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_checked(&loop);
  nevs = 0;
  signals = 0;
  assert_int_equal(soon_loop_set_trace(&loop, record, &nevs), 0);
  assert_int_equal(soon_signal_init(&loop, &sig), 0);
  assert_int_equal(soon_signal_start(&sig, signal_cb, SIGUSR1), 0);
  assert_int_equal(raise(SIGUSR1), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(signals, 1);
  assert_int_equal(nevs, 2);
  expect_ev(&evs[0], SOON_PHASE_POLL, SOON_SIGNAL, 0, &sig, 0, 0);
  expect_ev(&evs[1], SOON_PHASE_CLOSING, SOON_SIGNAL, 0, &sig, 0, 0);
  loop_close_checked(&loop);
}

static soon_process proc;
static int exits;

static void exit_cb(soon_process *p, int64_t status, int term) {
  assert_int_equal(status, 0);
  assert_int_equal(term, SIGTERM);
  exits++;
  assert_int_equal(soon_close((soon_handle *)p, close_cb), 0);
}

/* A process's exit callback: once, in poll (the child is killed after
 * soon_spawn, so it is never found gone at spawn and told in pending), with
 * the exit status; the SIGCHLD watcher or pidfd behind it does not show. */
static void test_process(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_checked(&loop);
  nevs = 0;
  exits = 0;
  assert_int_equal(soon_loop_set_trace(&loop, record, &nevs), 0);
  char *args[] = {"sleep", "10", NULL};
  soon_process_options o = {.exit_cb = exit_cb, .file = "sleep", .args = args};
  assert_int_equal(soon_spawn(&loop, &proc, &o), 0);
  assert_int_equal(soon_process_kill(&proc, SIGTERM), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(exits, 1);
  assert_int_equal(nevs, 2);
  expect_ev(&evs[0], SOON_PHASE_POLL, SOON_PROCESS, 0, &proc, 1, 0);
  expect_ev(&evs[1], SOON_PHASE_CLOSING, SOON_PROCESS, 0, &proc, 0, 0);
  loop_close_checked(&loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sequence), cmocka_unit_test(test_off),
      cmocka_unit_test(test_names),    cmocka_unit_test(test_env),
      cmocka_unit_test(test_requests), cmocka_unit_test(test_stream_alloc),
      cmocka_unit_test(test_udp),      cmocka_unit_test(test_signal),
      cmocka_unit_test(test_process),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
