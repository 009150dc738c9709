/* test_trace.c: the callback trace: the exact sequence of a small program on a
 * manual clock, SOON_TRACE's lines on stderr, and requests traced once. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <soon.h>

#include "helpers.h"

static soon_trace_event evs[32];
static int nevs;

static void record(const soon_trace_event *ev, void *arg) {
  assert_ptr_equal(arg, &nevs);
  assert_true(nevs < 32);
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sequence), cmocka_unit_test(test_off),
      cmocka_unit_test(test_names),    cmocka_unit_test(test_env),
      cmocka_unit_test(test_requests),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
