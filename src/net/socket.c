/* socket.c: small socket helpers the network handles share.
 * Every fd soon makes is non-blocking and close-on-exec from its first moment.
 */
#include "net.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

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
