/* common.h: what every benchmark program shares, whatever it measures:
 * name=value options, one RESULT line, failures exit 1, skips exit 77. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Exit status of a run that cannot happen here (a backend this kernel lacks,
 * select above FD_SETSIZE): the driver reports it as n/a, not as a failure. */
#define BENCH_SKIP_STATUS 77

static inline uint64_t bench_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU seconds (user + system) the process has used so far. */
static inline double bench_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* Peak resident set of this process, in MiB (ru_maxrss is in KiB on Linux).
 * Meaningful only in a process that bench_fresh_child made: see there. */
static inline double bench_maxrss_mib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_maxrss / 1024.0;
}

__attribute__((format(printf, 1, 2), noreturn)) static inline void
bench_fail(const char *fmt, ...);

/* Go on in a new child process; this one waits and exits with its status.
 * Why: Linux carries ru_maxrss across execve, so a program the driver
 * started reports at least the driver's own RSS (python, ~16 MiB). A child
 * forked here starts from this small program's RSS and its ru_maxrss is the
 * workload's own peak. */
static inline void bench_fresh_child(void) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0)
    bench_fail("fork: %s", strerror(errno));
  if (pid == 0)
    return;
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      bench_fail("waitpid: %s", strerror(errno));
  if (WIFEXITED(status))
    exit(WEXITSTATUS(status));
  bench_fail("workload process killed by signal %d", WTERMSIG(status));
}

/* The value of option name=value among argv, else def. */
static inline double bench_arg(int argc, char **argv, const char *name,
                               double def) {
  size_t n = strlen(name);
  for (int i = 1; i < argc; i++)
    if (strncmp(argv[i], name, n) == 0 && argv[i][n] == '=')
      return strtod(argv[i] + n + 1, NULL);
  return def;
}

static inline const char *bench_arg_str(int argc, char **argv, const char *name,
                                        const char *def) {
  size_t n = strlen(name);
  for (int i = 1; i < argc; i++)
    if (strncmp(argv[i], name, n) == 0 && argv[i][n] == '=')
      return argv[i] + n + 1;
  return def;
}

static inline void bench_result(const char *workload, const char *impl,
                                double value, const char *unit) {
  printf("RESULT %s %s %.6g %s\n", workload, impl, value, unit);
  fflush(stdout);
}

__attribute__((format(printf, 1, 2), noreturn)) static inline void
bench_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("FAILED: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

__attribute__((format(printf, 1, 2), noreturn)) static inline void
bench_skip(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("SKIP ", stdout);
  vprintf(fmt, ap);
  fputc('\n', stdout);
  va_end(ap);
  fflush(stdout);
  exit(BENCH_SKIP_STATUS);
}

#define BENCH_CHECK(cond)                                                      \
  do {                                                                         \
    if (!(cond))                                                               \
      bench_fail("%s:%d: check failed: %s", __FILE__, __LINE__, #cond);        \
  } while (0)

/* For calls that return 0 on success and a negative errno (soon, libuv) or
 * -1 (libevent) on failure. */
#define BENCH_OK(call)                                                         \
  do {                                                                         \
    long bench_r_ = (long)(call);                                              \
    if (bench_r_ < 0)                                                          \
      bench_fail("%s:%d: %s returned %ld (%s)", __FILE__, __LINE__, #call,     \
                 bench_r_, strerror(bench_r_ == -1 ? errno : (int)-bench_r_)); \
  } while (0)

/* Make room for need fds; as root the hard limit may be raised too. Skips
 * (n/a) where the system will not allow it. */
static inline void bench_nofile(unsigned long need) {
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur >= need)
    return;
  if (rl.rlim_max < need)
    rl.rlim_max = need;
  rl.rlim_cur = need;
  if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
    bench_skip("cannot raise RLIMIT_NOFILE to %lu: %s", need, strerror(errno));
}

/* ---------------------------------------------- raw sockets (libevent, libev)
 */

static inline void bench_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  BENCH_CHECK(fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0);
}

static inline void bench_nodelay(int fd) {
  int on = 1;
  BENCH_OK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on));
}

/* Close with RST instead of FIN: no TIME_WAIT left behind, so connection
 * churn cannot exhaust the ports other programs on this machine need. */
static inline void bench_linger0(int fd) {
  struct linger l = {1, 0};
  BENCH_OK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l));
}

static inline struct sockaddr_in bench_loopback(int port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

/* A non-blocking listening socket on 127.0.0.1 and a port the kernel picks
 * (so concurrent runs never collide); *addr gets its address. */
static inline int bench_listen(struct sockaddr_in *addr) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  BENCH_CHECK(fd >= 0);
  *addr = bench_loopback(0);
  BENCH_OK(bind(fd, (struct sockaddr *)addr, sizeof *addr));
  BENCH_OK(listen(fd, 1024));
  socklen_t len = sizeof *addr;
  BENCH_OK(getsockname(fd, (struct sockaddr *)addr, &len));
  return fd;
}

/* A non-blocking socket connecting to addr; the connect may be in progress. */
static inline int bench_connect_start(const struct sockaddr_in *addr) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  BENCH_CHECK(fd >= 0);
  if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) < 0 &&
      errno != EINPROGRESS)
    bench_fail("connect: %s", strerror(errno));
  return fd;
}

/* A connected, non-blocking socket (the connect is done before returning:
 * for set-up that is not measured). */
static inline int bench_connect(const struct sockaddr_in *addr) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  BENCH_CHECK(fd >= 0);
  BENCH_OK(connect(fd, (const struct sockaddr *)addr, sizeof *addr));
  bench_nonblock(fd);
  return fd;
}

/* The byte at offset off of the stream a pump or ping-pong sender writes. */
static inline unsigned char bench_pattern(uint64_t off) {
  return (unsigned char)(off % 251);
}

/* A pump's end: every byte sent arrived, and some before the stop (else
 * nothing was measured). The numbers say which, should it ever fail. */
static inline void bench_pump_check(uint64_t sent, uint64_t received,
                                    uint64_t received_at_stop) {
  if (sent != received || received_at_stop == 0)
    bench_fail("sent %llu, received %llu, %llu of them by the stop",
               (unsigned long long)sent, (unsigned long long)received,
               (unsigned long long)received_at_stop);
}

#endif
