/* test_tty.c: soon_tty on a pseudo-terminal's slave: init checks, raw and
 * binary modes and reset, window size, bytes both ways through the stream. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <poll.h>
#include <soon.h>
#include <sys/ioctl.h>
#include <termios.h>

#include "helpers.h"

typedef struct pty {
  int master, slave;
} pty;

/* NULL with p open, or the step that failed (errno set): a minimal
 * container may have no /dev/ptmx, or no /dev/pts behind it. */
static const char *pty_try_open(pty *p) {
  p->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (p->master < 0)
    return "posix_openpt";
  const char *step = NULL, *name = NULL;
  if (grantpt(p->master) < 0)
    step = "grantpt";
  else if (unlockpt(p->master) < 0)
    step = "unlockpt";
  else if (!(name = ptsname(p->master)))
    step = "ptsname";
  else if ((p->slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0)
    step = name;
  if (step) {
    int err = errno;
    close(p->master);
    errno = err;
  }
  return step;
}

/* Call before anything else of the test is made: a skip leaves at once. */
static void pty_open(pty *p) {
  const char *step = pty_try_open(p);
  if (step) {
    print_message("no pseudo-terminal here (%s: %s): skipped\n", step,
                  strerror(errno));
    skip();
  }
}

static void pty_close(pty *p) {
  close_fd(p->slave);
  close_fd(p->master);
}

static tcflag_t lflag(int fd) {
  struct termios t;
  assert_int_equal(tcgetattr(fd, &t), 0);
  return t.c_lflag;
}

static void close_run(soon_loop *loop, soon_handle *h) {
  assert_int_equal(soon_close(h, NULL), 0);
  assert_int_equal(soon_run(loop, SOON_RUN_DEFAULT), 0);
}

static void test_init(void **state) {
  (void)state;
  soon_loop loop;
  soon_tty tty;
  pty p;
  pty_open(&p);
  loop_init_checked(&loop);
  assert_int_equal(soon_tty_init(&loop, &tty, p.slave), 0);
  /* soon works on its own open file: the caller's stays blocking. */
  assert_false(fcntl(p.slave, F_GETFL) & O_NONBLOCK);
  close_run(&loop, (soon_handle *)&tty);
  /* ...and the caller's fd is still open and usable after the close. */
  assert_int_equal(write(p.slave, "x", 1), 1);
  assert_int_equal(soon_tty_init(NULL, &tty, p.slave), -EINVAL);
  pty_close(&p);
  loop_close_checked(&loop);
}

/* Needs no pty, so it runs where the others skip. */
static void test_init_not_a_tty(void **state) {
  (void)state;
  soon_loop loop;
  soon_tty tty;
  int fds[2], w, h;
  loop_init_checked(&loop);
  assert_int_equal(soon_tty_set_mode(NULL, SOON_TTY_MODE_RAW), -EINVAL);
  assert_int_equal(soon_tty_get_winsize(NULL, &w, &h), -EINVAL);
  assert_int_equal(pipe(fds), 0);
  assert_int_equal(soon_tty_init(&loop, &tty, fds[0]), -EINVAL);
  assert_int_equal(soon_tty_init(&loop, &tty, -1), -EINVAL);
  close_fd(fds[0]);
  close_fd(fds[1]);
  assert_int_equal(soon_tty_init(&loop, &tty, fds[0]), -EBADF);
  loop_close_checked(&loop);
}

static void test_modes(void **state) {
  (void)state;
  soon_loop loop;
  soon_tty tty;
  pty p;
  struct termios t;
  pty_open(&p);
  loop_init_checked(&loop);
  assert_int_equal(soon_tty_init(&loop, &tty, p.slave), 0);
  assert_true(lflag(p.slave) & ICANON);
  assert_int_equal(soon_tty_set_mode(&tty, (soon_tty_mode)7), -EINVAL);

  assert_int_equal(soon_tty_set_mode(&tty, SOON_TTY_MODE_RAW), 0);
  assert_false(lflag(p.slave) & (ICANON | ECHO | ISIG));
  assert_int_equal(soon_tty_reset_mode(), 0);
  assert_true(lflag(p.slave) & ICANON);
  assert_true(lflag(p.slave) & ECHO);

  /* RAW to IO to NORMAL: NORMAL is the mode from before the first change. */
  assert_int_equal(soon_tty_set_mode(&tty, SOON_TTY_MODE_RAW), 0);
  assert_int_equal(soon_tty_set_mode(&tty, SOON_TTY_MODE_IO), 0);
  assert_int_equal(tcgetattr(p.slave, &t), 0);
  assert_false(t.c_oflag & OPOST); /* binary-safe: no output processing */
  assert_false(t.c_lflag & ICANON);
  assert_int_equal(soon_tty_set_mode(&tty, SOON_TTY_MODE_NORMAL), 0);
  assert_true(lflag(p.slave) & ICANON);
  assert_int_equal(tcgetattr(p.slave, &t), 0);
  assert_true(t.c_oflag & OPOST);
  /* Nothing is out of NORMAL now: reset has nothing to do. */
  assert_int_equal(soon_tty_reset_mode(), 0);

  /* Closing a tty in raw mode puts its mode back. */
  assert_int_equal(soon_tty_set_mode(&tty, SOON_TTY_MODE_RAW), 0);
  assert_false(lflag(p.slave) & ICANON);
  close_run(&loop, (soon_handle *)&tty);
  assert_true(lflag(p.slave) & ICANON);
  pty_close(&p);
  loop_close_checked(&loop);
}

static void test_winsize(void **state) {
  (void)state;
  soon_loop loop;
  soon_tty tty;
  pty p;
  int w = 0, h = 0;
  pty_open(&p);
  loop_init_checked(&loop);
  struct winsize ws = {.ws_row = 33, .ws_col = 111};
  assert_int_equal(ioctl(p.master, TIOCSWINSZ, &ws), 0);
  assert_int_equal(soon_tty_init(&loop, &tty, p.slave), 0);
  assert_int_equal(soon_tty_get_winsize(&tty, &w, &h), 0);
  assert_int_equal(w, 111);
  assert_int_equal(h, 33);
  assert_int_equal(soon_tty_get_winsize(&tty, NULL, &h), -EINVAL);
  close_run(&loop, (soon_handle *)&tty);
  pty_close(&p);
  loop_close_checked(&loop);
}

typedef struct reader {
  soon_tty tty;
  char got[256];
  size_t len;
  const char *want;
  char space[1024];
} reader;

static void on_alloc(soon_handle *h, size_t size, soon_buf *buf) {
  (void)size;
  reader *r = (reader *)h;
  buf->base = r->space;
  buf->len = sizeof r->space;
}

static void on_read(soon_stream *s, ssize_t n, const soon_buf *buf) {
  reader *r = (reader *)s;
  assert_true(n >= 0);
  assert_true(r->len + (size_t)n < sizeof r->got);
  memcpy(r->got + r->len, buf->base, (size_t)n);
  r->len += (size_t)n;
  r->got[r->len] = '\0';
  if (strcmp(r->got, r->want) == 0)
    soon_close((soon_handle *)s, NULL);
}

/* Canonical mode hands over a line once it is complete; raw mode every
 * byte at once, with no newline needed. */
static void read_in_mode(soon_tty_mode mode, const char *send,
                         const char *want) {
  soon_loop loop;
  soon_timer guard;
  reader r;
  pty p;
  pty_open(&p);
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  memset(&r, 0, sizeof r);
  r.want = want;
  assert_int_equal(soon_tty_init(&loop, &r.tty, p.slave), 0);
  assert_int_equal(soon_tty_set_mode(&r.tty, mode), 0);
  assert_int_equal(soon_read_start((soon_stream *)&r.tty, on_alloc, on_read),
                   0);
  assert_int_equal(write(p.master, send, strlen(send)), (ssize_t)strlen(send));
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_string_equal(r.got, want);
  guard_close(&loop, &guard);
  pty_close(&p);
  loop_close_checked(&loop);
}

static void test_read_normal(void **state) {
  (void)state;
  read_in_mode(SOON_TTY_MODE_NORMAL, "hello\n", "hello\n");
}

static void test_read_raw(void **state) {
  (void)state;
  read_in_mode(SOON_TTY_MODE_RAW, "abc", "abc");
}

static int written;
static void on_write(soon_write_req *req, int status) {
  (void)req;
  assert_int_equal(status, 0);
  written = 1;
}

/* Output goes through the terminal's processing: \n becomes \r\n. */
static void test_write(void **state) {
  (void)state;
  soon_loop loop;
  soon_tty tty;
  soon_write_req req;
  pty p;
  char buf[64];
  pty_open(&p);
  loop_init_checked(&loop);
  assert_int_equal(soon_tty_init(&loop, &tty, p.slave), 0);
  soon_buf b = {"out\n", 4};
  written = 0;
  assert_int_equal(soon_write(&req, (soon_stream *)&tty, &b, 1, on_write), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_true(written);
  /* Written, but a pty hands it on through a kernel work queue, so the
   * master may see it in pieces: read until all of it came. */
  size_t got = 0;
  while (got < 5) {
    struct pollfd pfd = {.fd = p.master, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, GUARD_MS), 1);
    ssize_t n = read(p.master, buf + got, sizeof buf - 1 - got);
    assert_true(n > 0);
    got += (size_t)n;
  }
  buf[got] = '\0';
  assert_string_equal(buf, "out\r\n");
  close_run(&loop, (soon_handle *)&tty);
  pty_close(&p);
  loop_close_checked(&loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_init),        cmocka_unit_test(test_init_not_a_tty),
      cmocka_unit_test(test_modes),       cmocka_unit_test(test_winsize),
      cmocka_unit_test(test_read_normal), cmocka_unit_test(test_read_raw),
      cmocka_unit_test(test_write),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
