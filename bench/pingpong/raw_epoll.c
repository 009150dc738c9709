/* pingpong/raw_epoll.c: the limit row: the ping-pong on one epoll fd and
 * plain read/write, no library; what a loop library can at best approach. */
#include "common.h"
#include <sys/epoll.h>

#define PING "PING\n"
#define PING_LEN 5

/* fds[i] for i < nconns are the clients, nconns + i their servers; the
 * epoll data is that index, so dispatch is one array lookup. */
static int *fds;
static uint64_t *sent, *recvd;
static int nconns, nclosed, nsrvclosed, stopping;
static uint64_t quota = UINT64_MAX;
static uint64_t pings, pongs, pongs_at_stop, echoed;

/* A 5-byte write into an empty socket buffer is never short; if it were,
 * the run would fail loudly rather than lose bytes. */
static void write_all(int fd, const char *p, size_t n) {
  ssize_t w = write(fd, p, n);
  if (w != (ssize_t)n)
    bench_fail("short write (%zd of %zu): %s", w, n, strerror(errno));
}

static void send_ping(int i) {
  pings++;
  sent[i] += PING_LEN;
  write_all(fds[i], PING, PING_LEN);
}

/* Level-triggered, one read per readiness: a message is 5 bytes, and any
 * rest makes the next epoll_wait report the fd again. */
static void on_server(int i) {
  char buf[1024];
  ssize_t n = read(fds[i], buf, sizeof buf);
  if (n > 0) {
    echoed += (uint64_t)n;
    write_all(fds[i], buf, (size_t)n);
  } else if (n == 0) {
    close(fds[i]); /* also leaves the epoll set: nothing else holds it */
    nsrvclosed++;
  } else if (errno != EAGAIN) {
    bench_fail("server read: %s", strerror(errno));
  }
}

static void on_client(int i) {
  char buf[1024];
  ssize_t n = read(fds[i], buf, sizeof buf);
  if (n < 0 && errno == EAGAIN)
    return;
  if (n <= 0)
    bench_fail("client read: %s", n == 0 ? "EOF" : strerror(errno));
  for (ssize_t k = 0; k < n; k++)
    if (buf[k] != PING[(recvd[i] + (uint64_t)k) % PING_LEN])
      bench_fail("pong corrupted");
  recvd[i] += (uint64_t)n;
  if (recvd[i] > sent[i])
    bench_fail("more pong than ping");
  if (recvd[i] < sent[i])
    return;
  pongs++;
  if (!stopping && pings < quota)
    send_ping(i);
  else if (close(fds[i]) == 0)
    nclosed++;
}

int main(int argc, char **argv) {
  char name[64];
  nconns = (int)bench_arg(argc, argv, "conns", 1);
  double duration = bench_arg(argc, argv, "duration", 0.5);
  double rt = bench_arg(argc, argv, "rt", 0); /* count mode, for callgrind */
  if (rt > 0)
    quota = (uint64_t)rt;
  snprintf(name, sizeof name, "pingpong-%d", nconns);
  bench_nofile(2 * (unsigned long)nconns + 64);
  fds = calloc(2 * (size_t)nconns, sizeof *fds);
  sent = calloc((size_t)nconns, sizeof *sent);
  recvd = calloc((size_t)nconns, sizeof *recvd);
  BENCH_CHECK(fds && sent && recvd);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  BENCH_CHECK(ep >= 0);

  /* Set-up, not measured: every client connected and accepted before the
   * clock starts (the backlog holds them all until the accepts). */
  struct sockaddr_in addr;
  int lfd = bench_listen(&addr);
  for (int i = 0; i < nconns; i++) {
    fds[i] = bench_connect(&addr);
    int s = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (s < 0)
      bench_fail("accept: %s", strerror(errno));
    fds[nconns + i] = s;
  }
  close(lfd);
  for (int i = 0; i < 2 * nconns; i++) {
    bench_nodelay(fds[i]);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    BENCH_OK(epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev));
  }

  uint64_t t_start = bench_ns(), t_stop = 0;
  uint64_t deadline = t_start + (uint64_t)(duration * 1e9);
  for (int i = 0; i < nconns; i++)
    if (pings < quota)
      send_ping(i);
  struct epoll_event evs[256];
  while (nclosed < nconns || nsrvclosed < nconns) {
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0 && errno != EINTR)
      bench_fail("epoll_wait: %s", strerror(errno));
    for (int k = 0; k < n; k++) {
      int i = (int)evs[k].data.u32;
      if (i < nconns)
        on_client(i);
      else
        on_server(i);
    }
    /* One clock read per wait: a pong is always in flight until the stop,
     * so the wait never sleeps past it by more than a round trip. */
    if (!stopping && quota == UINT64_MAX && bench_ns() >= deadline) {
      stopping = 1;
      t_stop = bench_ns();
      pongs_at_stop = pongs;
    }
  }
  uint64_t t_end = bench_ns();

  /* Self-check: every ping answered, every byte echoed, everything closed. */
  BENCH_CHECK(pongs == pings && pings > 0);
  uint64_t total = 0;
  for (int i = 0; i < nconns; i++) {
    BENCH_CHECK(recvd[i] == sent[i]);
    total += sent[i];
  }
  BENCH_CHECK(echoed == total);
  close(ep);
  double rate = quota == UINT64_MAX
                    ? (double)pongs_at_stop / ((double)(t_stop - t_start) / 1e9)
                    : (double)pongs / ((double)(t_end - t_start) / 1e9);
  bench_result(name, "raw-epoll", rate, "rt/s");
  free(fds);
  free(sent);
  free(recvd);
  return 0;
}
