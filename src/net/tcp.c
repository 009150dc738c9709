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

int soon_tcp_open(soon_tcp *tcp, int fd) {
  if (!tcp || fd < 0 || soon__closing((soon_handle *)tcp))
    return -EINVAL;
  int err = soon__nonblock(fd);
  return err ? err : soon__stream_open((soon_stream *)tcp, fd);
}

int soon_tcp_bind(soon_tcp *tcp, const struct sockaddr *addr, unsigned flags) {
  unsigned len = soon__addr_len(addr);
  if (!tcp || !len || (flags & ~(SOON_TCP_IPV6ONLY | SOON_TCP_REUSEPORT)) ||
      ((flags & SOON_TCP_IPV6ONLY) && addr->sa_family != AF_INET6) ||
      soon__closing((soon_handle *)tcp))
    return -EINVAL;
  int err = soon__stream_socket((soon_stream *)tcp, addr->sa_family);
  if (err)
    return err;
  int fd = tcp->io.fd;
  /* Restarting a server must not wait out TIME_WAIT connections. */
  err = soon__set_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
  if (!err && (flags & SOON_TCP_REUSEPORT))
    err = soon__set_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
  if (!err && (flags & SOON_TCP_IPV6ONLY))
    err = soon__set_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
  if (!err && bind(fd, addr, len) < 0)
    err = -errno;
  return err;
}

int soon_tcp_connect(soon_connect_req *req, soon_tcp *tcp,
                     const struct sockaddr *addr, soon_connect_cb cb) {
  unsigned len = soon__addr_len(addr);
  if (!req || !tcp || !len || !cb || soon__closing((soon_handle *)tcp))
    return -EINVAL;
  if (tcp->connect_req)
    return -EALREADY;
  int err = soon__stream_socket((soon_stream *)tcp, addr->sa_family);
  if (err)
    return err;
  return soon__stream_connect_to(req, (soon_stream *)tcp, addr, len, cb);
}

int soon_tcp_set_nodelay(soon_tcp *tcp, int enable) {
  if (!tcp)
    return -EINVAL;
  return soon__set_opt(tcp->io.fd, IPPROTO_TCP, TCP_NODELAY, !!enable);
}

int soon_tcp_set_keepalive(soon_tcp *tcp, int enable, unsigned delay) {
  if (!tcp || (enable && (delay < 1 || delay > INT32_MAX)))
    return -EINVAL;
  int err = soon__set_opt(tcp->io.fd, SOL_SOCKET, SO_KEEPALIVE, !!enable);
  if (err || !enable)
    return err;
  return soon__set_opt(tcp->io.fd, IPPROTO_TCP, TCP_KEEPIDLE, (int)delay);
}

int soon_tcp_getsockname(const soon_tcp *tcp, struct sockaddr *name,
                         int *namelen) {
  return tcp ? soon__sock_name(tcp->io.fd, name, namelen, getsockname)
             : -EINVAL;
}

int soon_tcp_getpeername(const soon_tcp *tcp, struct sockaddr *name,
                         int *namelen) {
  return tcp ? soon__sock_name(tcp->io.fd, name, namelen, getpeername)
             : -EINVAL;
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
