/* http/raw.h: what the two hand-written hello servers share (raw_epoll.c,
 * raw_uring.c): their prebuilt answers, the count of request heads, the stop.
 */
#ifndef BENCH_HTTP_RAW_H
#define BENCH_HTTP_RAW_H

#include "../common.h"
#include <signal.h>
#include <sys/signalfd.h>

#define MAX_FDS 65536
#define BATCH 64 /* answers sent by one write at most */

static char resp[BATCH * 128];
static size_t resp_len;
/* Per fd: how many bytes of "\r\n\r\n" the last read ended with, so a head
 * split across reads still counts once. */
static unsigned char matched[MAX_FDS];
static uint64_t served;

/* soon's response (status, Date, Content-Length, Content-Type, body), BATCH
 * times back to back: n answers are the first n * resp_len bytes. */
static inline void build_response(void) {
  char date[64];
  time_t now = time(NULL);
  struct tm tm;
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&now, &tm));
  int n = snprintf(resp, sizeof resp,
                   "HTTP/1.1 200 OK\r\nDate: %s\r\nContent-Length: 13\r\n"
                   "Content-Type: text/plain\r\n\r\nhello, world!",
                   date);
  BENCH_CHECK(n > 0 && (size_t)n * BATCH <= sizeof resp);
  resp_len = (size_t)n;
  for (int i = 1; i < BATCH; i++)
    memcpy(resp + (size_t)i * resp_len, resp, resp_len);
}

/* The request heads that end in buf[0..n), fd's next bytes; counted as
 * served. Nothing else of a request is looked at. */
static inline size_t count_heads(int fd, const char *buf, size_t n) {
  static const char end[] = "\r\n\r\n";
  unsigned m = matched[fd];
  size_t heads = 0;
  for (size_t i = 0; i < n; i++) {
    if (buf[i] == end[m])
      m++;
    else
      m = buf[i] == '\r'; /* the only restart: the end's one repeated byte */
    if (m == 4) {
      heads++;
      m = 0;
    }
  }
  matched[fd] = (unsigned char)m;
  served += heads;
  return heads;
}

/* SIGTERM and SIGINT as a readable fd: the server stops and says what it
 * served once this reads. */
static inline int stop_signalfd(void) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  BENCH_OK(sigprocmask(SIG_BLOCK, &stop, NULL));
  int sfd = signalfd(-1, &stop, SFD_NONBLOCK | SFD_CLOEXEC);
  BENCH_CHECK(sfd >= 0);
  return sfd;
}

#endif
