/* tty.c: terminals as streams: soon's own open file of the terminal, modes
 * (normal, raw, binary), window size, and a signal-safe way back. */
#include "net.h"

#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

_Static_assert(sizeof(struct termios) <= sizeof(((soon_tty *)0)->orig_termios),
               "soon_tty.orig_termios must hold a struct termios");

/* What soon_tty_reset_mode restores: the mode of the first tty taken out of
 * NORMAL (while no other is out of it), and that tty's fd. A static copy, so
 * a signal handler needs no pointer into memory the caller may have freed;
 * guarded by a spin flag that the handler only ever tries (never waits on). */
static struct termios saved_mode;
static int saved_fd = -1;
static atomic_flag saved_lock = ATOMIC_FLAG_INIT;

static void lock(void) {
  while (atomic_flag_test_and_set(&saved_lock))
    sched_yield(); /* held by a reset in another thread, briefly */
}
static void unlock(void) { atomic_flag_clear(&saved_lock); }

static int restore(soon_tty *tty) {
  int fd = soon__stream_fd((soon_stream *)tty);
  int err = 0;
  if (tty->mode != SOON_TTY_MODE_NORMAL && fd >= 0) {
    struct termios orig;
    memcpy(&orig, tty->orig_termios.bytes, sizeof orig);
    if (tcsetattr(fd, TCSANOW, &orig) < 0)
      err = -errno;
  }
  lock();
  if (saved_fd == fd)
    saved_fd = -1;
  unlock();
  if (!err)
    tty->mode = SOON_TTY_MODE_NORMAL;
  return err;
}

/* A tty's close puts the mode back, then closes as a stream. */
static void tty_close(soon_handle *h) {
  restore((soon_tty *)h);
  soon__stream_close(h);
}

static const soon__handle_ops tty_ops = {.close = tty_close,
                                         .finish = soon__stream_finish};

/* A new open file of the same terminal, so O_NONBLOCK is ours alone; the
 * device check guards against a name that means another terminal here (a
 * /dev/pts of another mount namespace). Else a dup, sharing the flags. */
static int reopen(int fd) {
  char name[PATH_MAX];
  struct stat a, b;
  if (ttyname_r(fd, name, sizeof name) == 0 && fstat(fd, &a) == 0) {
    int r = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (r >= 0 && fstat(r, &b) == 0 && a.st_rdev == b.st_rdev)
      return r;
    if (r >= 0)
      close(r);
  }
  int r = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  return r < 0 ? -errno : r;
}

int soon_tty_init(soon_loop *loop, soon_tty *tty, int fd) {
  if (!soon__loop_usable(loop) || !tty || fd < 0)
    return -EINVAL;
  if (!isatty(fd))
    return errno == EBADF ? -EBADF : -EINVAL;
  int nfd = reopen(fd);
  if (nfd < 0)
    return nfd;
  int err = soon__nonblock(nfd);
  if (err) {
    close(nfd);
    return err;
  }
  soon__stream_init(loop, (soon_stream *)tty, SOON_TTY);
  tty->ops = &tty_ops;
  tty->mode = SOON_TTY_MODE_NORMAL;
  memset(&tty->orig_termios, 0, sizeof tty->orig_termios);
  /* A fresh fd, but the loop's fd table may have to grow for it. */
  err = soon__stream_open((soon_stream *)tty, nfd);
  if (err) { /* no handle made after all, and no fd kept */
    soon__handle_uninit((soon_handle *)tty);
    close(nfd);
  }
  return err;
}

int soon_tty_set_mode(soon_tty *tty, soon_tty_mode mode) {
  if (!tty || tty->type != SOON_TTY || mode < SOON_TTY_MODE_NORMAL ||
      mode > SOON_TTY_MODE_IO || soon__closing((soon_handle *)tty))
    return -EINVAL;
  if ((int)mode == tty->mode)
    return 0;
  if (mode == SOON_TTY_MODE_NORMAL)
    return restore(tty);
  int fd = soon__stream_fd((soon_stream *)tty);
  struct termios orig, t;
  int took = 0;
  if (tty->mode == SOON_TTY_MODE_NORMAL) {
    if (tcgetattr(fd, &orig) < 0)
      return -errno;
    memcpy(tty->orig_termios.bytes, &orig, sizeof orig);
    lock();
    if (saved_fd < 0) {
      saved_mode = orig;
      saved_fd = fd;
      took = 1;
    }
    unlock();
  } else {
    memcpy(&orig, tty->orig_termios.bytes, sizeof orig);
  }
  t = orig;
  if (mode == SOON_TTY_MODE_RAW) {
    /* As libuv: keys arrive one by one, unechoed, ^C as a byte; output
     * still turns \n into \r\n so printf keeps working. */
    t.c_iflag &= ~(tcflag_t)(BRKINT | ICRNL | INPCK | ISTRIP | IXON);
    t.c_oflag |= ONLCR;
    t.c_cflag |= CS8;
    t.c_lflag &= ~(tcflag_t)(ECHO | ICANON | IEXTEN | ISIG);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
  } else {
    cfmakeraw(&t); /* every byte through untouched, both ways */
  }
  /* TCSANOW, not TCSADRAIN: the loop thread must not wait for a terminal
   * that does not drain (flow control, nobody reading a pty master). */
  if (tcsetattr(fd, TCSANOW, &t) < 0) {
    int err = -errno;
    if (took) {
      lock();
      saved_fd = -1;
      unlock();
    }
    return err;
  }
  tty->mode = mode;
  return 0;
}

/* Async-signal-safe: an atomic flag, tcsetattr(2); errno preserved. */
int soon_tty_reset_mode(void) {
  int saved_errno = errno;
  if (atomic_flag_test_and_set(&saved_lock))
    return -EBUSY;
  int err = 0;
  if (saved_fd >= 0 && tcsetattr(saved_fd, TCSANOW, &saved_mode) < 0)
    err = -errno;
  unlock();
  errno = saved_errno;
  return err;
}

int soon_tty_get_winsize(soon_tty *tty, int *width, int *height) {
  if (!tty || tty->type != SOON_TTY || !width || !height)
    return -EINVAL;
  struct winsize ws;
  if (ioctl(soon__stream_fd((soon_stream *)tty), TIOCGWINSZ, &ws) < 0)
    return -errno;
  *width = ws.ws_col;
  *height = ws.ws_row;
  return 0;
}
