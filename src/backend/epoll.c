/* epoll.c: the Linux readiness backend; a wait costs O(ready), not O(fds).
 * The kernel keeps the interest set; a per-fd mirror skips no-op calls. */
#include "backend.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

enum { MAX_EVENTS = 1024 };

typedef struct epoll_state {
  struct soon_loop *loop;
  int epfd;
  unsigned char *mask; /* interest registered in the kernel; 0 = none */
  size_t nmask;
  struct epoll_event events[MAX_EVENTS];
} epoll_state;

static int ep_init(struct soon_loop *loop, void **state) {
  epoll_state *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return -ENOMEM;
  s->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (s->epfd < 0) {
    int err = -errno;
    free(s);
    return err;
  }
  s->loop = loop;
  *state = s;
  return 0;
}

static void ep_close(void *state) {
  epoll_state *s = state;
  close(s->epfd);
  free(s->mask);
  free(s);
}

static int grow_mask(epoll_state *s, int fd) {
  size_t need = (size_t)fd + 1, n = s->nmask ? s->nmask : 64;
  if (need <= s->nmask)
    return 0;
  while (n < need)
    n *= 2;
  unsigned char *p = realloc(s->mask, n);
  if (p == NULL)
    return -ENOMEM;
  for (size_t i = s->nmask; i < n; i++)
    p[i] = 0;
  s->mask = p;
  s->nmask = n;
  return 0;
}

static void ep_unwatch(void *state, int fd) {
  epoll_state *s = state;
  if (fd < 0 || (size_t)fd >= s->nmask || s->mask[fd] == 0)
    return;
  /* The fd may be closed already, which removed it from the set (EBADF) or
   * left a stale registration we cannot reach; either way nothing to do. */
  struct epoll_event ev = {0};
  epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, &ev);
  s->mask[fd] = 0;
}

static int ep_watch(void *state, int fd, int events) {
  epoll_state *s = state;
  if (fd < 0)
    return -EINVAL;
  events &= SOON__IO_READ | SOON__IO_WRITE | SOON__IO_HUP;
  if (events == 0) {
    ep_unwatch(s, fd);
    return 0;
  }
  int err = grow_mask(s, fd);
  if (err)
    return err;
  if (s->mask[fd] == events)
    return 0;

  struct epoll_event ev = {0};
  if (events & SOON__IO_READ)
    ev.events |= EPOLLIN;
  if (events & SOON__IO_WRITE)
    ev.events |= EPOLLOUT;
  if (events & SOON__IO_HUP)
    ev.events |= EPOLLRDHUP;
  ev.data.fd = fd;

  /* Our mirror can be wrong if the user closed and reopened the fd number,
   * so let the kernel's answer pick between ADD and MOD. */
  int op = s->mask[fd] ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  int r = epoll_ctl(s->epfd, op, fd, &ev);
  if (r < 0 && op == EPOLL_CTL_ADD && errno == EEXIST)
    r = epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &ev);
  else if (r < 0 && op == EPOLL_CTL_MOD && errno == ENOENT)
    r = epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
  if (r < 0)
    return -errno; /* EPERM: regular files and directories cannot be polled */
  s->mask[fd] = (unsigned char)events;
  return 0;
}

static int ep_wait(void *state, int timeout_ms) {
  epoll_state *s = state;
  int n = epoll_wait(s->epfd, s->events, MAX_EVENTS, timeout_ms);
  if (n < 0)
    return errno == EINTR ? 0 : -errno;

  int count = 0;
  for (int i = 0; i < n; i++) {
    uint32_t re = s->events[i].events;
    int fd = s->events[i].data.fd;
    /* EPOLLHUP and EPOLLERR arrive unasked, so filter by what was asked. */
    int want = (size_t)fd < s->nmask ? s->mask[fd] : 0, ev = 0;
    if (re & EPOLLIN)
      ev |= SOON__IO_READ;
    if (re & EPOLLOUT)
      ev |= SOON__IO_WRITE;
    if (re & (EPOLLRDHUP | EPOLLHUP))
      ev |= SOON__IO_HUP;
    /* Errors and hang-ups surface through the next read or write (a reader
     * sees its EOF), so wake both; else level-triggering would spin. */
    if (re & (EPOLLERR | EPOLLHUP))
      ev |= SOON__IO_READ | SOON__IO_WRITE;
    ev &= want;
    if (ev) {
      soon__io_ready(s->loop, fd, ev);
      count++;
    }
  }
  return count;
}

const soon__backend_ops soon__backend_epoll = {
    .name = "epoll",
    .init = ep_init,
    .close = ep_close,
    .watch = ep_watch,
    .unwatch = ep_unwatch,
    .wait = ep_wait,
};
