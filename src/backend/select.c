/* select.c: the portable readiness backend, limited to fds below FD_SETSIZE.
 * Larger fds are refused with -EINVAL, since FD_SET on them corrupts memory. */
#include "backend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/select.h>

typedef struct select_state {
  struct soon_loop *loop;
  fd_set rfds, wfds;              /* master sets, copied before each select */
  unsigned char mask[FD_SETSIZE]; /* interest per fd; 0 = not watched */
  int maxfd;                      /* highest watched fd, -1 when none */
} select_state;

static int select_init(struct soon_loop *loop, void **state) {
  select_state *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return -ENOMEM;
  s->loop = loop;
  FD_ZERO(&s->rfds);
  FD_ZERO(&s->wfds);
  s->maxfd = -1;
  *state = s;
  return 0;
}

static void select_close(void *state) { free(state); }

static void select_unwatch(void *state, int fd) {
  select_state *s = state;
  if (fd < 0 || fd >= FD_SETSIZE || s->mask[fd] == 0)
    return;
  FD_CLR(fd, &s->rfds);
  FD_CLR(fd, &s->wfds);
  s->mask[fd] = 0;
  while (s->maxfd >= 0 && s->mask[s->maxfd] == 0)
    s->maxfd--;
}

static int select_watch(void *state, int fd, int old, int events) {
  select_state *s = state;
  (void)old; /* setting a bit in a set is the same either way */
  if (fd < 0 || fd >= FD_SETSIZE)
    return -EINVAL;
  events &= SOON__IO_READ | SOON__IO_WRITE | SOON__IO_HUP;
  if (events == 0) {
    select_unwatch(s, fd);
    return 0;
  }
  /* select has no hangup set: end of stream shows up as readability, which
   * is only watched with READ; HUP alone would make an fd holding unread
   * data wake every wait with nothing to report. */
  if (events & SOON__IO_READ)
    FD_SET(fd, &s->rfds);
  else
    FD_CLR(fd, &s->rfds);
  if (events & SOON__IO_WRITE)
    FD_SET(fd, &s->wfds);
  else
    FD_CLR(fd, &s->wfds);
  s->mask[fd] = (unsigned char)events;
  if (fd > s->maxfd)
    s->maxfd = fd;
  return 0;
}

/* A readable fd with nothing to read is at end of stream (or holds an
 * error). FIONREAD fails on listening sockets, so they never look hung up. */
static int at_eof(int fd) {
  int n;
  return ioctl(fd, FIONREAD, &n) == 0 && n == 0;
}

/* select cannot say which fd is bad, so ask each one. Reporting them lets the
 * loop unwatch them; otherwise every later select would fail the same way. */
static int report_bad_fds(select_state *s) {
  int count = 0;
  for (int fd = 0; fd <= s->maxfd; fd++) {
    if (s->mask[fd] && fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
      soon__io_ready(s->loop, fd, SOON__IO_BADFD);
      count++;
    }
  }
  return count > 0 ? count : -EBADF;
}

static int select_wait(void *state, int timeout_ms) {
  select_state *s = state;
  fd_set rfds = s->rfds, wfds = s->wfds;
  struct timeval tv, *tvp = NULL;
  if (timeout_ms >= 0) {
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    tvp = &tv;
  }

  /* With nothing watched this is a plain sleep, as the contract requires. */
  int n = select(s->maxfd + 1, &rfds, &wfds, NULL, tvp);
  if (n < 0) {
    if (errno == EINTR)
      return 0;
    if (errno == EBADF)
      return report_bad_fds(s);
    return -errno;
  }

  int count = 0;
  for (int fd = 0; fd <= s->maxfd && n > 0; fd++) {
    int want = s->mask[fd], ev = 0;
    if (FD_ISSET(fd, &rfds)) {
      n--;
      if (want & SOON__IO_READ)
        ev |= SOON__IO_READ;
      if ((want & SOON__IO_HUP) && at_eof(fd))
        ev |= SOON__IO_HUP;
    }
    if (FD_ISSET(fd, &wfds)) {
      n--;
      ev |= SOON__IO_WRITE;
    }
    if (ev) {
      soon__io_ready(s->loop, fd, ev);
      count++;
    }
  }
  return count;
}

const soon__backend_ops soon__backend_select = {
    .name = "select",
    .init = select_init,
    .close = select_close,
    .watch = select_watch,
    .unwatch = select_unwatch,
    .wait = select_wait,
};
