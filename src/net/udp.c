/* udp.c: UDP sockets: datagram receive on readiness, a send queue that is only
 * used when the kernel is full, multicast and socket options, IPv4 and IPv6. */
#include "net.h"

#include <arpa/inet.h>
#include <limits.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define RECV_SIZE 65536    /* the largest datagram IPv4 can carry, rounded */
#define RECVS_PER_EVENT 32 /* then give other fds their turn */

static void udp_io_cb(soon_io *io, int status, int events);
static void udp_pending_cb(soon__deferred *p);
static void udp_close(soon_handle *h);
static void udp_finish(soon_handle *h);
static const soon__handle_ops udp_ops = {.close = udp_close,
                                         .finish = udp_finish};

static bool udp_usable(const soon_udp *udp) {
  return udp && udp->type == SOON_UDP && !soon__closing((soon_handle *)udp);
}

static bool receiving(const soon_udp *udp) { return udp->recv_cb != NULL; }

int soon_udp_init(soon_loop *loop, soon_udp *udp) {
  if (!soon__loop_usable(loop) || !udp)
    return -EINVAL;
  soon__handle_init(loop, (soon_handle *)udp, SOON_UDP, &udp_ops);
  soon__io_init_internal(loop, &udp->io, -1);
  udp->alloc_cb = NULL;
  udp->recv_cb = NULL;
  soon__reqq_init(&udp->sends);
  udp->send_queue_size = 0;
  soon__queue_init(&udp->pending.queue);
  udp->pending.cb = udp_pending_cb;
  return 0;
}

/* The watcher and the handle's active state follow what the handle does:
 * readable while receiving, writable while sends wait for room. */
static int udp_update(soon_udp *udp) {
  int events = 0;
  if (receiving(udp))
    events |= SOON_READABLE;
  if (soon__reqq_head(&udp->sends))
    events |= SOON_WRITABLE;
  if (events)
    soon__handle_start((soon_handle *)udp);
  else
    soon__handle_stop((soon_handle *)udp);
  if (udp->io.fd < 0)
    return 0;
  if (!events)
    return soon_io_stop(&udp->io);
  if (events == udp->io.events)
    return 0;
  return soon_io_start(&udp->io, events, udp_io_cb);
}

/* The socket is made on first need, once the address family is known. */
static int udp_socket(soon_udp *udp, int family) {
  if (udp->io.fd >= 0)
    return 0;
  int fd = soon__socket(family, SOCK_DGRAM, 0);
  if (fd < 0)
    return fd;
  udp->io.fd = fd;
  return 0;
}

static int udp_family(const soon_udp *udp) {
  int domain = AF_UNSPEC;
  socklen_t len = sizeof domain;
  if (getsockopt(udp->io.fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
    return -errno;
  return domain;
}

int soon_udp_open(soon_udp *udp, int fd) {
  if (!udp_usable(udp) || fd < 0)
    return -EINVAL;
  if (udp->io.fd >= 0)
    return -EBUSY;
  int type = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
    return -errno;
  if (type != SOCK_DGRAM)
    return -EINVAL;
  int err = soon__nonblock(fd);
  if (err)
    return err;
  udp->io.fd = fd;
  return 0;
}

int soon_udp_bind(soon_udp *udp, const struct sockaddr *addr, unsigned flags) {
  unsigned len = soon__addr_len(addr);
  if (!udp_usable(udp) || !len ||
      (flags & ~(unsigned)(SOON_UDP_IPV6ONLY | SOON_UDP_REUSEADDR)) ||
      ((flags & SOON_UDP_IPV6ONLY) && addr->sa_family != AF_INET6))
    return -EINVAL;
  bool made = udp->io.fd < 0;
  int err = udp_socket(udp, addr->sa_family);
  if (err)
    return err;
  int fd = udp->io.fd;
  if (flags & SOON_UDP_REUSEADDR)
    err = soon__set_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
  if (!err && (flags & SOON_UDP_REUSEADDR))
    err = soon__set_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
  if (!err && (flags & SOON_UDP_IPV6ONLY))
    err = soon__set_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
  if (!err && bind(fd, addr, len) < 0)
    err = -errno;
  if (err && made) { /* a failed bind leaves the handle as it found it */
    close(fd);
    udp->io.fd = -1;
  }
  return err;
}

int soon_udp_connect(soon_udp *udp, const struct sockaddr *addr) {
  if (!udp_usable(udp))
    return -EINVAL;
  struct sockaddr_storage peer;
  socklen_t plen = sizeof peer;
  bool connected =
      udp->io.fd >= 0 &&
      getpeername(udp->io.fd, (struct sockaddr *)&peer, &plen) == 0;
  if (!addr) {
    if (!connected)
      return -ENOTCONN;
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    /* Linux may report EAFNOSUPPORT while still dissolving the association. */
    if (connect(udp->io.fd, &unspec, sizeof unspec) < 0 &&
        errno != EAFNOSUPPORT)
      return -errno;
    return 0;
  }
  unsigned len = soon__addr_len(addr);
  if (!len)
    return -EINVAL;
  if (connected)
    return -EISCONN;
  int err = udp_socket(udp, addr->sa_family);
  if (err)
    return err;
  int r;
  do
    r = connect(udp->io.fd, addr, len);
  while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : 0;
}

/* ------------------------------------------------------------ receiving */

int soon_udp_recv_start(soon_udp *udp, soon_alloc_cb alloc_cb,
                        soon_udp_recv_cb recv_cb) {
  if (!udp_usable(udp) || !alloc_cb || !recv_cb)
    return -EINVAL;
  if (udp->io.fd < 0)
    return -EBADF; /* bind (or send) first: the family is not known yet */
  if (receiving(udp))
    return -EALREADY;
  udp->alloc_cb = alloc_cb;
  udp->recv_cb = recv_cb;
  int err = udp_update(udp);
  if (err) {
    udp->alloc_cb = NULL;
    udp->recv_cb = NULL;
    udp_update(udp);
  }
  return err;
}

int soon_udp_recv_stop(soon_udp *udp) {
  if (!udp || udp->type != SOON_UDP)
    return -EINVAL;
  if (!receiving(udp))
    return 0;
  udp->alloc_cb = NULL;
  udp->recv_cb = NULL;
  return udp_update(udp);
}

/* recv_cb as read before the alloc callback ran, which may have cleared
 * udp->recv_cb: the buffer it handed out still goes back to the user. */
static void tell_recv(soon_udp *udp, soon_udp_recv_cb recv_cb, ssize_t n,
                      const soon_buf *buf, const struct sockaddr *from,
                      unsigned flags) {
  SOON__TELL(udp->loop, SOON__PHASE_LOOP, SOON_UDP, udp, soon__status_of(n),
             recv_cb(udp, n, buf, from, flags));
}

/* Each datagram gets a fresh buffer from alloc_cb; recvmsg's MSG_TRUNC tells
 * when it did not fit. The loop ends early if a callback stops or closes. */
static void do_recv(soon_udp *udp) {
  for (int i = 0; i < RECVS_PER_EVENT && receiving(udp); i++) {
    soon_udp_recv_cb recv_cb = udp->recv_cb;
    soon_buf buf = {NULL, 0};
    /* A user callback like any other: traced, with no status to give. */
    SOON__TELL(udp->loop, SOON__PHASE_LOOP, SOON_UDP, udp, SOON__NO_STATUS,
               udp->alloc_cb((soon_handle *)udp, RECV_SIZE, &buf));
    if (!receiving(udp)) { /* the alloc callback stopped or closed us */
      if (buf.base)        /* the buffer is the caller's */
        tell_recv(udp, recv_cb, 0, &buf, NULL, 0);
      return;
    }
    if (!buf.base || !buf.len) {
      tell_recv(udp, recv_cb, -ENOBUFS, &buf, NULL, 0);
      return;
    }
    struct sockaddr_storage peer;
    struct iovec iov = {.iov_base = buf.base, .iov_len = buf.len};
    struct msghdr msg = {.msg_name = &peer,
                         .msg_namelen = sizeof peer,
                         .msg_iov = &iov,
                         .msg_iovlen = 1};
    ssize_t n;
    do
      n = recvmsg(udp->io.fd, &msg, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        tell_recv(udp, recv_cb, 0, &buf, NULL, 0); /* hand the buffer back */
      else /* e.g. ECONNREFUSED from an ICMP error: receiving goes on */
        tell_recv(udp, recv_cb, -errno, &buf, NULL, 0);
      return;
    }
    unsigned flags = (msg.msg_flags & MSG_TRUNC) ? SOON_UDP_PARTIAL : 0;
    /* An unconnected socket always names the sender; a connected one may
     * not, and then there is no address to give. */
    const struct sockaddr *from =
        msg.msg_namelen > 0 ? (const struct sockaddr *)&peer : NULL;
    if (!from) {
      static const struct sockaddr_storage none = {.ss_family = AF_UNSPEC};
      from = (const struct sockaddr *)&none; /* addr NULL would mean "none" */
    }
    tell_recv(udp, recv_cb, n, &buf, from, flags);
  }
}

/* ------------------------------------------------------------ sending */

static ssize_t send_bufs(int fd, const soon_buf *bufs, unsigned nbufs,
                         const void *addr, unsigned addrlen) {
  struct msghdr msg = {.msg_name = (void *)addr,
                       .msg_namelen = addrlen,
                       .msg_iov = (struct iovec *)bufs,
                       .msg_iovlen = nbufs};
  ssize_t n;
  do
    n = sendmsg(fd, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  return n;
}

/* 0 or the send's error; -EAGAIN when the kernel has no room. A datagram is
 * sent whole or not at all, so there is no partial progress to track. */
static int send_req(soon_udp *udp, soon_udp_send_req *req) {
  ssize_t n = send_bufs(udp->io.fd, req->bufs, req->nbufs,
                        req->addrlen ? &req->addr : NULL, req->addrlen);
  return n < 0 ? (int)n : 0;
}

/* Send waiting datagrams in order until the kernel is full. */
static void flush(soon_udp *udp) {
  soon__qnode *n;
  while ((n = soon__reqq_head(&udp->sends))) {
    soon_udp_send_req *req = soon__container_of(n, soon_udp_send_req, node);
    int r = send_req(udp, req);
    if (r == -EAGAIN)
      break;
    udp->send_queue_size -= soon__bufs_size(req->bufs, req->nbufs);
    soon__reqq_finish(&udp->sends, r);
  }
  udp_update(udp);
}

static void tell_send(soon__qnode *n) {
  soon_udp_send_req *req = soon__container_of(n, soon_udp_send_req, node);
  soon__bufs_free(req->bufs, req->bufsml);
  req->bufs = NULL;
  soon__req_done((soon_req *)req);
  SOON__TELL(req->loop, SOON__PHASE_LOOP, SOON__KIND_REQ | SOON_UDP_SEND, req,
             n->status, req->cb(req, n->status));
}

/* In rounds, as stream writes; a callback may close the handle, and the rest
 * is then owed by udp_finish, in the close phase (soon__reqq_run). */
static void run_send_done(soon_udp *udp) {
  soon__reqq_run(&udp->sends, (soon_handle *)udp, tell_send);
}

/* What soon_udp_send and soon_udp_try_send check before sending: the
 * arguments, a destination, and a socket of the destination's family. */
static int send_prepare(soon_udp *udp, const soon_buf bufs[], unsigned nbufs,
                        const struct sockaddr *addr, unsigned *addrlen) {
  *addrlen = soon__addr_len(addr);
  if (!udp_usable(udp) || (!bufs && nbufs) || nbufs > IOV_MAX ||
      (addr && !*addrlen))
    return -EINVAL;
  if (!addr && udp->io.fd < 0)
    return -EDESTADDRREQ;
  return addr ? udp_socket(udp, addr->sa_family) : 0;
}

int soon_udp_send(soon_udp_send_req *req, soon_udp *udp, const soon_buf bufs[],
                  unsigned nbufs, const struct sockaddr *addr,
                  soon_udp_send_cb cb) {
  unsigned addrlen;
  if (!req || !cb)
    return -EINVAL;
  int err = send_prepare(udp, bufs, nbufs, addr, &addrlen);
  if (err)
    return err;
  req->bufs = soon__bufs_copy(
      req->bufsml, sizeof req->bufsml / sizeof *req->bufsml, bufs, nbufs, NULL);
  if (!req->bufs)
    return -ENOMEM;
  req->nbufs = nbufs;
  req->addrlen = addrlen;
  if (addrlen)
    memcpy(&req->addr, addr, addrlen);
  soon__req_start((soon_req *)req, udp->loop, SOON_UDP_SEND);
  req->handle = udp;
  req->cb = cb;
  /* Most sends complete here; only a full kernel buffer makes one wait,
   * and then everything after it waits too, to keep datagrams in order. */
  bool first = !soon__reqq_head(&udp->sends);
  soon__reqq_push(&udp->sends, &req->node);
  int r = first ? send_req(udp, req) : -EAGAIN;
  if (r != -EAGAIN) {
    soon__reqq_finish(&udp->sends, r);
    soon__pending_push(udp->loop, &udp->pending);
    return 0;
  }
  udp->send_queue_size += soon__bufs_size(req->bufs, nbufs);
  err = udp_update(udp);
  if (err) { /* the fd cannot be watched: nothing would ever send it */
    soon__reqq_remove(&udp->sends, &req->node);
    udp->send_queue_size -= soon__bufs_size(req->bufs, nbufs);
    soon__req_done((soon_req *)req);
    soon__bufs_free(req->bufs, req->bufsml);
    req->bufs = NULL;
    udp_update(udp);
    return err;
  }
  return 0;
}

ssize_t soon_udp_try_send(soon_udp *udp, const soon_buf bufs[], unsigned nbufs,
                          const struct sockaddr *addr) {
  unsigned addrlen;
  int err = send_prepare(udp, bufs, nbufs, addr, &addrlen);
  if (err)
    return err;
  if (soon__reqq_head(&udp->sends))
    return -EAGAIN; /* jumping the queue would reorder datagrams */
  return send_bufs(udp->io.fd, bufs, nbufs, addr, addrlen);
}

size_t soon_udp_send_queue_size(const soon_udp *udp) {
  return udp ? udp->send_queue_size : 0;
}

/* ------------------------------------------------------------ options */

static int set_opt(soon_udp *udp, int level, int name, int value) {
  if (!udp_usable(udp))
    return -EINVAL;
  return soon__set_opt(udp->io.fd, level, name, value);
}

/* The IPv4 or the IPv6 flavour of an option, by the socket's family. */
static int set_opt_by_family(soon_udp *udp, int name4, int name6, int value) {
  if (!udp_usable(udp))
    return -EINVAL;
  if (udp->io.fd < 0)
    return -EBADF;
  int family = udp_family(udp);
  if (family == AF_INET)
    return set_opt(udp, IPPROTO_IP, name4, value);
  if (family == AF_INET6)
    return set_opt(udp, IPPROTO_IPV6, name6, value);
  return family < 0 ? family : -EINVAL;
}

int soon_udp_set_broadcast(soon_udp *udp, int on) {
  return set_opt(udp, SOL_SOCKET, SO_BROADCAST, !!on);
}

int soon_udp_set_ttl(soon_udp *udp, int ttl) {
  if (ttl < 1 || ttl > 255)
    return -EINVAL;
  return set_opt_by_family(udp, IP_TTL, IPV6_UNICAST_HOPS, ttl);
}

/* 0 is valid here: it keeps multicast on this host. */
int soon_udp_set_multicast_ttl(soon_udp *udp, int ttl) {
  if (ttl < 0 || ttl > 255)
    return -EINVAL;
  return set_opt_by_family(udp, IP_MULTICAST_TTL, IPV6_MULTICAST_HOPS, ttl);
}

int soon_udp_set_multicast_loop(soon_udp *udp, int on) {
  return set_opt_by_family(udp, IP_MULTICAST_LOOP, IPV6_MULTICAST_LOOP, !!on);
}

/* "addr%scope" for IPv6: the scope (an interface name or index) picks the
 * interface, as in libuv; the address itself only has to parse. */
static int parse_ip6_interface(const char *s, unsigned *index) {
  char tmp[INET6_ADDRSTRLEN + IF_NAMESIZE + 1];
  size_t len = strlen(s);
  if (len >= sizeof tmp)
    return -EINVAL;
  memcpy(tmp, s, len + 1);
  char *scope = strchr(tmp, '%');
  *index = 0;
  if (scope) {
    *scope++ = '\0';
    char *end;
    unsigned long n = strtoul(scope, &end, 10);
    if (*scope && !*end && n <= UINT_MAX)
      *index = (unsigned)n;
    else if (!(*index = if_nametoindex(scope)))
      return -EINVAL;
  }
  struct in6_addr a;
  return inet_pton(AF_INET6, tmp, &a) == 1 ? 0 : -EINVAL;
}

int soon_udp_set_multicast_interface(soon_udp *udp,
                                     const char *interface_addr) {
  if (!udp_usable(udp))
    return -EINVAL;
  if (udp->io.fd < 0)
    return -EBADF;
  int family = udp_family(udp), err;
  if (family == AF_INET) {
    struct in_addr a = {.s_addr = htonl(INADDR_ANY)};
    if (interface_addr && inet_pton(AF_INET, interface_addr, &a) != 1)
      return -EINVAL;
    if (setsockopt(udp->io.fd, IPPROTO_IP, IP_MULTICAST_IF, &a, sizeof a) < 0)
      return -errno;
    return 0;
  }
  if (family == AF_INET6) {
    unsigned index = 0;
    if (interface_addr && (err = parse_ip6_interface(interface_addr, &index)))
      return err;
    if (setsockopt(udp->io.fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &index,
                   sizeof index) < 0)
      return -errno;
    return 0;
  }
  return family < 0 ? family : -EINVAL;
}

int soon_udp_set_membership(soon_udp *udp, const char *multicast_addr,
                            const char *interface_addr,
                            soon_membership membership) {
  if (!udp_usable(udp) || !multicast_addr ||
      (membership != SOON_JOIN_GROUP && membership != SOON_LEAVE_GROUP))
    return -EINVAL;
  bool join = membership == SOON_JOIN_GROUP;
  struct ip_mreq m4;
  struct ipv6_mreq m6;
  memset(&m4, 0, sizeof m4);
  memset(&m6, 0, sizeof m6);
  int err;
  if (inet_pton(AF_INET, multicast_addr, &m4.imr_multiaddr) == 1) {
    m4.imr_interface.s_addr = htonl(INADDR_ANY);
    if (interface_addr &&
        inet_pton(AF_INET, interface_addr, &m4.imr_interface) != 1)
      return -EINVAL;
    if ((err = udp_socket(udp, AF_INET)))
      return err;
    if (setsockopt(udp->io.fd, IPPROTO_IP,
                   join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &m4,
                   sizeof m4) < 0)
      return -errno;
    return 0;
  }
  if (inet_pton(AF_INET6, multicast_addr, &m6.ipv6mr_multiaddr) == 1) {
    unsigned index = 0;
    if (interface_addr && (err = parse_ip6_interface(interface_addr, &index)))
      return err;
    m6.ipv6mr_interface = index;
    if ((err = udp_socket(udp, AF_INET6)))
      return err;
    if (setsockopt(udp->io.fd, IPPROTO_IPV6,
                   join ? IPV6_ADD_MEMBERSHIP : IPV6_DROP_MEMBERSHIP, &m6,
                   sizeof m6) < 0)
      return -errno;
    return 0;
  }
  return -EINVAL;
}

static int udp_name(const soon_udp *udp, struct sockaddr *name, int *namelen,
                    int (*get)(int, struct sockaddr *, socklen_t *)) {
  if (!udp || udp->type != SOON_UDP)
    return -EINVAL;
  return soon__sock_name(udp->io.fd, name, namelen, get);
}

int soon_udp_getsockname(const soon_udp *udp, struct sockaddr *name,
                         int *namelen) {
  return udp_name(udp, name, namelen, getsockname);
}

int soon_udp_getpeername(const soon_udp *udp, struct sockaddr *name,
                         int *namelen) {
  return udp_name(udp, name, namelen, getpeername);
}

/* ------------------------------------------------------------ dispatch */

static void udp_io_cb(soon_io *io, int status, int events) {
  soon_udp *udp = soon__container_of(io, soon_udp, io);
  if (status < 0) {
    /* The fd was closed behind our back and the watcher is stopped: stop
     * receiving, fail what waits to be sent, and say so once. */
    soon_udp_recv_cb recv_cb = udp->recv_cb;
    udp->alloc_cb = NULL;
    udp->recv_cb = NULL;
    soon__reqq_finish_all(&udp->sends, status);
    udp->send_queue_size = 0;
    udp_update(udp);
    udp->io.fd = -1; /* its number may be reused already: never close it */
    if (recv_cb) {
      soon_buf none = {NULL, 0};
      tell_recv(udp, recv_cb, status, &none, NULL, 0);
    }
    run_send_done(udp);
    return;
  }
  if ((events & SOON_READABLE) && receiving(udp))
    do_recv(udp);
  if ((events & SOON_WRITABLE) && udp->io.fd >= 0 &&
      soon__reqq_head(&udp->sends))
    flush(udp);
  run_send_done(udp);
}

/* Completions of sends that finished inside soon_udp_send. */
static void udp_pending_cb(soon__deferred *p) {
  run_send_done(soon__container_of(p, soon_udp, pending));
}

/* ------------------------------------------------------------ closing */

static void udp_close(soon_handle *h) {
  soon_udp *udp = (soon_udp *)h;
  soon_io_stop(&udp->io);
  if (udp->io.fd >= 0)
    close(udp->io.fd);
  udp->io.fd = -1;
  udp->alloc_cb = NULL;
  udp->recv_cb = NULL;
  soon__handle_stop(h);
  /* Every owed callback runs in udp_finish, before the close callback. */
  soon__queue_remove(&udp->pending.queue);
  soon__reqq_finish_all(&udp->sends, -ECANCELED);
  udp->send_queue_size = 0;
}

static void udp_finish(soon_handle *h) {
  soon__reqq_run_closed(&((soon_udp *)h)->sends, tell_send);
}
