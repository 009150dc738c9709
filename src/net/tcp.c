/* tcp.c: TCP streams over IPv4 and IPv6: bind, connect, socket options,
 * addresses. The socket is made lazily, by bind or connect, once the address
 * family is known. */
#include "net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

int soon_tcp_init(soon_loop *loop, soon_tcp *tcp) {
  if (!soon__loop_usable(loop) || !tcp)
    return -EINVAL;
  soon__stream_init(loop, (soon_stream *)tcp, SOON_TCP);
  return 0;
}

static int tcp_socket(soon_tcp *tcp, int family) {
  if (tcp->io.fd >= 0)
    return 0;
  int fd = soon__socket(family, SOCK_STREAM, 0);
  if (fd < 0)
    return fd;
  int err = soon__stream_open((soon_stream *)tcp, fd);
  if (err)
    close(fd);
  return err;
}

int soon_tcp_open(soon_tcp *tcp, int fd) {
  if (!tcp || fd < 0 || soon_is_closing((soon_handle *)tcp))
    return -EINVAL;
  int err = soon__nonblock(fd);
  return err ? err : soon__stream_open((soon_stream *)tcp, fd);
}

int soon_tcp_bind(soon_tcp *tcp, const struct sockaddr *addr, unsigned flags) {
  unsigned len = soon__addr_len(addr);
  if (!tcp || !len || (flags & ~(SOON_TCP_IPV6ONLY | SOON_TCP_REUSEPORT)) ||
      ((flags & SOON_TCP_IPV6ONLY) && addr->sa_family != AF_INET6) ||
      soon_is_closing((soon_handle *)tcp))
    return -EINVAL;
  int err = tcp_socket(tcp, addr->sa_family);
  if (err)
    return err;
  int fd = tcp->io.fd, on = 1;
  /* Restarting a server must not wait out TIME_WAIT connections. */
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0)
    return -errno;
  if ((flags & SOON_TCP_REUSEPORT) &&
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0)
    return -errno;
  if ((flags & SOON_TCP_IPV6ONLY) &&
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) < 0)
    return -errno;
  if (bind(fd, addr, len) < 0)
    return -errno;
  return 0;
}

int soon_tcp_connect(soon_connect_req *req, soon_tcp *tcp,
                     const struct sockaddr *addr, soon_connect_cb cb) {
  unsigned len = soon__addr_len(addr);
  if (!req || !tcp || !len || !cb || soon_is_closing((soon_handle *)tcp))
    return -EINVAL;
  if (tcp->connect_req)
    return -EALREADY;
  int err = tcp_socket(tcp, addr->sa_family);
  if (err)
    return err;
  return soon__stream_connect_to(req, (soon_stream *)tcp, addr, len, cb);
}

static int set_opt(const soon_tcp *tcp, int level, int name, int value) {
  if (!tcp)
    return -EINVAL;
  if (tcp->io.fd < 0)
    return -EBADF;
  if (setsockopt(tcp->io.fd, level, name, &value, sizeof value) < 0)
    return -errno;
  return 0;
}

int soon_tcp_nodelay(soon_tcp *tcp, int enable) {
  return set_opt(tcp, IPPROTO_TCP, TCP_NODELAY, !!enable);
}

int soon_tcp_keepalive(soon_tcp *tcp, int enable, unsigned delay) {
  if (enable && (delay < 1 || delay > INT32_MAX))
    return -EINVAL;
  int err = set_opt(tcp, SOL_SOCKET, SO_KEEPALIVE, !!enable);
  if (err || !enable)
    return err;
  return set_opt(tcp, IPPROTO_TCP, TCP_KEEPIDLE, (int)delay);
}

static int tcp_name(const soon_tcp *tcp, struct sockaddr *name, int *namelen,
                    int (*get)(int, struct sockaddr *, socklen_t *)) {
  if (!tcp || !name || !namelen || *namelen <= 0)
    return -EINVAL;
  if (tcp->io.fd < 0)
    return -EBADF;
  socklen_t len = (socklen_t)*namelen;
  if (get(tcp->io.fd, name, &len) < 0)
    return -errno;
  *namelen = (int)len;
  return 0;
}

int soon_tcp_getsockname(const soon_tcp *tcp, struct sockaddr *name,
                         int *namelen) {
  return tcp_name(tcp, name, namelen, getsockname);
}

int soon_tcp_getpeername(const soon_tcp *tcp, struct sockaddr *name,
                         int *namelen) {
  return tcp_name(tcp, name, namelen, getpeername);
}

int soon_ip4_addr(const char *ip, int port, struct sockaddr_in *addr) {
  if (!ip || !addr || port < 0 || port > 65535)
    return -EINVAL;
  memset(addr, 0, sizeof *addr);
  addr->sin_family = AF_INET;
  addr->sin_port = htons((uint16_t)port);
  return inet_pton(AF_INET, ip, &addr->sin_addr) == 1 ? 0 : -EINVAL;
}

int soon_ip6_addr(const char *ip, int port, struct sockaddr_in6 *addr) {
  if (!ip || !addr || port < 0 || port > 65535)
    return -EINVAL;
  memset(addr, 0, sizeof *addr);
  addr->sin6_family = AF_INET6;
  addr->sin6_port = htons((uint16_t)port);
  return inet_pton(AF_INET6, ip, &addr->sin6_addr) == 1 ? 0 : -EINVAL;
}

int soon_ip_name(const struct sockaddr *addr, char *dst, size_t size) {
  if (!addr || !dst || !size)
    return -EINVAL;
  const void *src;
  if (addr->sa_family == AF_INET)
    src = &((const struct sockaddr_in *)addr)->sin_addr;
  else if (addr->sa_family == AF_INET6)
    src = &((const struct sockaddr_in6 *)addr)->sin6_addr;
  else
    return -EINVAL;
  if (size > INT32_MAX)
    size = INT32_MAX;
  return inet_ntop(addr->sa_family, src, dst, (socklen_t)size) ? 0 : -ENOSPC;
}
