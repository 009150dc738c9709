/* net.h: what the network files share: socket helpers and the stream internals
 * that tcp.c and pipe.c build on (stream.c implements them). */
#ifndef SOON_NET_H
#define SOON_NET_H

#include "../core/core.h"

#include <sys/socket.h>

/* A non-blocking, close-on-exec socket, or a negative errno. */
int soon__socket(int domain, int type, int protocol);
/* Make fd non-blocking (and close-on-exec); 0 or a negative errno. */
int soon__nonblock(int fd);
/* The length of addr by its family: sockaddr_in or sockaddr_in6, else 0. */
unsigned soon__addr_len(const struct sockaddr *addr);

/* ------------------------------------------------------------ streams */

/* stream_flags */
enum {
  SOON__STREAM_READING = 1u << 0,
  SOON__STREAM_LISTENING = 1u << 1,
  SOON__STREAM_SHUT = 1u << 2, /* shutdown(SHUT_WR) done */
  SOON__STREAM_EOF = 1u << 3,  /* the peer's EOF was delivered */
  SOON__STREAM_CONNECTING = 1u << 4,
  SOON__STREAM_SOCKET = 1u << 5, /* writes use send(MSG_NOSIGNAL) */
};

/* Initialise the stream part of a tcp or pipe handle (no fd yet). */
void soon__stream_init(soon_loop *loop, soon_stream *s, soon_handle_type type);
/* Give the stream its fd (non-blocking already). -EBUSY if it has one. */
int soon__stream_open(soon_stream *s, int fd);
/* Take back an open that nothing has used yet; fd stays open. */
void soon__stream_unopen(soon_stream *s);
/* The stream's handle ops, for types that wrap them (tty). */
void soon__stream_close(soon_handle *h);
void soon__stream_finish(soon_handle *h);
/* Recompute which events the stream's fd watcher needs. */
int soon__stream_update(soon_stream *s);
static inline int soon__stream_fd(const soon_stream *s) { return s->io.fd; }
/* Connect s to addr (len bytes) and tell cb: the whole connect, in the ring
 * or by connect(2) and readiness. */
int soon__stream_connect_to(soon_connect_req *req, soon_stream *s,
                            const struct sockaddr *addr, unsigned len,
                            soon_connect_cb cb);

#endif
