/* poll.c: the readiness backend with no fd limit and no kernel-side state.
 * A dense pollfd array plus an fd -> slot map keeps watch and unwatch O(1). */
#include "backend.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct poll_state {
  struct soon_loop *loop;
  struct pollfd *fds; /* dense: slots [0, nfds) are all in use */
  size_t nfds, cap;
  unsigned *slot; /* slot[fd] - 1 is fd's index in fds; 0: not watched */
  size_t nslot;
} poll_state;

static int poll_init(struct soon_loop *loop, void **state) {
  poll_state *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return -ENOMEM;
  s->loop = loop;
  *state = s;
  return 0;
}

static void poll_close(void *state) {
  poll_state *s = state;
  free(s->fds);
  free(s->slot);
  free(s);
}

static void poll_unwatch(void *state, int fd) {
  poll_state *s = state;
  if (fd < 0 || (size_t)fd >= s->nslot || !s->slot[fd])
    return;
  unsigned i = s->slot[fd] - 1;
  struct pollfd last = s->fds[--s->nfds];
  s->fds[i] = last;
  s->slot[last.fd] = i + 1;
  s->slot[fd] = 0;
}

static int poll_watch(void *state, int fd, int old, int events) {
  poll_state *s = state;
  (void)old; /* the slot map says whether fd has a slot */
  if (fd < 0)
    return -EINVAL;
  short want = 0;
  if (events & SOON__IO_READ)
    want |= POLLIN;
  if (events & SOON__IO_WRITE)
    want |= POLLOUT;
  if (events & SOON__IO_HUP)
    want |= POLLRDHUP;
  if (want == 0) {
    poll_unwatch(s, fd);
    return 0;
  }

  /* fds are small and dense in practice, so a map indexed by fd costs
   * little; both arrays grow by doubling (amortised O(1)). */
  unsigned *slot =
      soon__grow(s->slot, &s->nslot, (size_t)fd + 1, sizeof *slot, 64);
  if (!slot)
    return -ENOMEM;
  s->slot = slot;
  if (!slot[fd]) {
    struct pollfd *fds =
        soon__grow(s->fds, &s->cap, s->nfds + 1, sizeof *fds, 64);
    if (!fds)
      return -ENOMEM;
    s->fds = fds;
    fds[s->nfds] = (struct pollfd){.fd = fd};
    slot[fd] = (unsigned)++s->nfds;
  }
  s->fds[slot[fd] - 1].events = want;
  return 0;
}

static int poll_wait(void *state, int timeout_ms) {
  poll_state *s = state;
  int n = poll(s->fds, (nfds_t)s->nfds, timeout_ms);
  if (n < 0)
    return errno == EINTR ? 0 : -errno;

  /* soon__io_ready only queues, so the array cannot change under us. */
  int count = 0;
  for (size_t i = 0; i < s->nfds && n > 0; i++) {
    short re = s->fds[i].revents, want = s->fds[i].events;
    if (re == 0)
      continue;
    n--;
    int ev = 0;
    if (re & POLLNVAL) {
      ev = SOON__IO_BADFD;
    } else {
      if ((re & POLLIN) && (want & POLLIN))
        ev |= SOON__IO_READ;
      if ((re & POLLOUT) && (want & POLLOUT))
        ev |= SOON__IO_WRITE;
      if ((re & (POLLRDHUP | POLLHUP)) && (want & POLLRDHUP))
        ev |= SOON__IO_HUP;
      /* Errors and hang-ups surface through the next read or write (a
       * reader sees its EOF), so wake both; else a level-triggered wait
       * would spin on an event nobody is told about. */
      if (re & (POLLERR | POLLHUP))
        ev |= (want & POLLIN ? SOON__IO_READ : 0) |
              (want & POLLOUT ? SOON__IO_WRITE : 0);
    }
    if (ev) {
      soon__io_ready(s->loop, s->fds[i].fd, ev);
      count++;
    }
  }
  return count;
}

const soon__backend_ops soon__backend_poll = {
    .name = "poll",
    .init = poll_init,
    .close = poll_close,
    .watch = poll_watch,
    .unwatch = poll_unwatch,
    .wait = poll_wait,
};
