/* epoll.c: the Linux readiness backend; a wait costs O(ready), not O(fds).
 * The kernel keeps the interest set, so this file keeps no per-fd table. */
#include "backend.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

enum { MAX_EVENTS = 1024 };

_Static_assert((int)EPOLLIN == (int)SOON__IO_READ &&
                   (int)EPOLLOUT >> 1 == (int)SOON__IO_WRITE,
               "ep_wait maps EPOLLIN and EPOLLOUT by shifting");

typedef struct epoll_state {
  struct soon_loop *loop;
  int epfd;
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
  free(s);
}

static void ep_unwatch(void *state, int fd) {
  epoll_state *s = state;
  /* The fd may be closed already, which removed it from the set (EBADF) or
   * left a stale registration we cannot reach; either way nothing to do. */
  struct epoll_event ev = {0};
  epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, &ev);
}

static int ep_watch(void *state, int fd, int old, int events) {
  epoll_state *s = state;
  if (fd < 0)
    return -EINVAL;
  events &= SOON__IO_READ | SOON__IO_WRITE | SOON__IO_HUP;
  if (events == 0) {
    ep_unwatch(s, fd);
    return 0;
  }

  /* The registration carries its own interest beside the fd: wait filters
   * by it without a table. */
  struct epoll_event ev = {0};
  if (events & SOON__IO_READ)
    ev.events |= EPOLLIN;
  if (events & SOON__IO_WRITE)
    ev.events |= EPOLLOUT;
  if (events & SOON__IO_HUP)
    ev.events |= EPOLLRDHUP;
  ev.data.u64 = (uint64_t)events << 32 | (uint32_t)fd;

  /* old can be wrong about the kernel if the user closed and reopened the
   * fd number, so let the kernel's answer pick between ADD and MOD. */
  int op = old ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  int r = epoll_ctl(s->epfd, op, fd, &ev);
  if (r < 0 && op == EPOLL_CTL_ADD && errno == EEXIST)
    r = epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &ev);
  else if (r < 0 && op == EPOLL_CTL_MOD && errno == ENOENT)
    r = epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
  return r < 0 ? -errno : 0; /* EPERM: regular files, directories */
}

static int ep_wait(void *state, int timeout_ms) {
  epoll_state *s = state;
  int n = epoll_wait(s->epfd, s->events, MAX_EVENTS, timeout_ms);
  if (n < 0)
    return errno == EINTR ? 0 : -errno;

  int count = 0;
  for (int i = 0; i < n; i++) {
    uint32_t re = s->events[i].events;
    int fd = (int)(uint32_t)s->events[i].data.u64;
    int want = (int)(s->events[i].data.u64 >> 32);
    /* The usual report, EPOLLIN or EPOLLOUT, by shifts: the bits line up. */
    int ev = (int)(re & EPOLLIN) | (int)((re & EPOLLOUT) >> 1);
    if (__builtin_expect(re & ~(uint32_t)(EPOLLIN | EPOLLOUT), 0)) {
      if (re & (EPOLLRDHUP | EPOLLHUP))
        ev |= SOON__IO_HUP;
      /* Errors and hang-ups surface through the next read or write (a
       * reader sees its EOF), so wake both; else level-triggering would
       * spin. They arrive unasked, so filter by what was asked. */
      if (re & (EPOLLERR | EPOLLHUP))
        ev |= SOON__IO_READ | SOON__IO_WRITE;
    }
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
