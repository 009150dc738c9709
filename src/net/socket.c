/* socket.c: small socket helpers the network handles share: sockets, options,
 * names, connect(2), and the reserve fd for a process out of fds. */
#include "net.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

int soon__socket(int domain, int type, int protocol) {
  int fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  return fd < 0 ? -errno : fd;
}

int soon__nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
    return -errno;
  int fdfl = fcntl(fd, F_GETFD);
  if (fdfl < 0 ||
      (!(fdfl & FD_CLOEXEC) && fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC) < 0))
    return -errno;
  return 0;
}

unsigned soon__addr_len(const struct sockaddr *addr) {
  switch (addr ? addr->sa_family : AF_UNSPEC) {
  case AF_INET:
    return sizeof(struct sockaddr_in);
  case AF_INET6:
    return sizeof(struct sockaddr_in6);
  default:
    return 0;
  }
}

int soon__set_opt(int fd, int level, int name, int value) {
  if (fd < 0)
    return -EBADF;
  if (setsockopt(fd, level, name, &value, sizeof value) < 0)
    return -errno;
  return 0;
}

int soon__sock_name(int fd, struct sockaddr *name, int *namelen,
                    int (*get)(int, struct sockaddr *, socklen_t *)) {
  if (!name || !namelen || *namelen <= 0)
    return -EINVAL;
  if (fd < 0)
    return -EBADF;
  socklen_t len = (socklen_t)*namelen;
  if (get(fd, name, &len) < 0)
    return -errno;
  *namelen = (int)len;
  return 0;
}

/* tcp and pipe make their socket the same way, by family. */
int soon__stream_socket(soon_stream *s, int domain) {
  if (s->io.fd >= 0)
    return 0;
  int fd = soon__socket(domain, SOCK_STREAM, 0);
  if (fd < 0)
    return fd;
  int err = soon__stream_open(s, fd);
  if (err)
    close(fd);
  return err;
}

/* An interrupted connect(2) goes on in the kernel, as one in progress. */
int soon__connect(int fd, const struct sockaddr *addr, unsigned len) {
  if (connect(fd, addr, len) == 0)
    return 0;
  return errno == EINTR ? -EINPROGRESS : -errno;
}

int soon__connect_result(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
    err = errno;
  return -err; /* a spurious wakeup: still EINPROGRESS */
}

/* ------------------------------------------------------------ out of fds */

/* One per process: whichever listener meets EMFILE first uses it. */
static _Atomic int reserve_fd = -1;

void soon__reserve_fd(void) {
  if (atomic_load(&reserve_fd) >= 0)
    return;
  int fd = open("/", O_RDONLY | O_CLOEXEC);
  int none = -1;
  if (fd >= 0 && !atomic_compare_exchange_strong(&reserve_fd, &none, fd))
    close(fd);
}

void soon__drop_connections(int listen_fd) {
  int fd = atomic_exchange(&reserve_fd, -1);
  if (fd < 0)
    return;
  close(fd);
  for (;;) {
    int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    close(c);
  }
  soon__reserve_fd();
}
