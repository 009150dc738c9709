/* http/raw_epoll.c: the http workload's limit row: a hello server on one
 * epoll fd and plain read/write, no library; what any epoll server can at best
 * do here.
 *
 * It parses nothing but the end of each request head ("\r\n\r\n"), and
 * answers every head, pipelined ones included, with the same bytes as
 * http/soon.c (the Date fixed at start-up), all of one read's answers in one
 * write. Prints `listening on http://127.0.0.1:PORT/` once it listens, and
 * `SERVED n` when SIGTERM or SIGINT stops it. */
#include "raw.h"
#include <sys/epoll.h>

/* Level-triggered, one read per readiness: a rest left in the socket makes
 * the next epoll_wait report it again. The answers of a whole read go out
 * in one write; wrk keeps at most 16 requests in flight per connection, so
 * that write (under 2 KiB) never meets a full send buffer, and a short one
 * fails the run loudly rather than lose responses. */
static void on_conn(int fd) {
  char buf[16384];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n < 0 && errno == EAGAIN)
    return;
  if (n <= 0) { /* EOF, or a reset as wrk stops: the connection is done */
    close(fd);  /* also leaves the epoll set: nothing else holds it */
    return;
  }
  size_t heads = count_heads(fd, buf, (size_t)n);
  while (heads > 0) {
    size_t k = heads < BATCH ? heads : BATCH, len = k * resp_len;
    ssize_t w = write(fd, resp, len);
    if (w < 0 && (errno == EPIPE || errno == ECONNRESET)) {
      close(fd);
      return;
    }
    if (w != (ssize_t)len)
      bench_fail("short write (%zd of %zu): %s", w, len, strerror(errno));
    heads -= k;
  }
}

int main(void) {
  build_response();
  signal(SIGPIPE, SIG_IGN); /* a client gone mid-response: EPIPE, not death */
  int sfd = stop_signalfd();

  struct sockaddr_in addr;
  int lfd = bench_listen(&addr);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  BENCH_CHECK(ep >= 0 && lfd < MAX_FDS && sfd < MAX_FDS);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  BENCH_OK(epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev));
  ev.data.fd = sfd;
  BENCH_OK(epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev));
  printf("listening on http://127.0.0.1:%d/\n", ntohs(addr.sin_port));
  fflush(stdout);

  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0 && errno != EINTR)
      bench_fail("epoll_wait: %s", strerror(errno));
    for (int k = 0; k < n; k++) {
      int fd = evs[k].data.fd;
      if (fd == sfd)
        goto stopped;
      if (fd != lfd) {
        on_conn(fd);
        continue;
      }
      int c;
      while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >=
             0) {
        if (c >= MAX_FDS)
          bench_fail("fd %d over %d", c, MAX_FDS);
        bench_nodelay(c);
        matched[c] = 0;
        struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
        BENCH_OK(epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev));
      }
      if (errno != EAGAIN && errno != ECONNABORTED)
        bench_fail("accept: %s", strerror(errno));
    }
  }
stopped:
  printf("SERVED %llu\n", (unsigned long long)served);
  return 0;
}
