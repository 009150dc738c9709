/* test_udp.c: UDP handles on loopback: datagrams both ways, IPv4 and IPv6, flow
 * of 10,000 with none lost, truncation, queued sends and close, options. */
/* cmocka.h needs these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <arpa/inet.h>
#include <soon.h>
#include <stdio.h>

#include "helpers.h"

/* One udp handle and what it saw. The handle comes first so a soon_udp *
 * is also a peer *. */
typedef struct peer {
  soon_udp udp;
  char buf[65536];
  size_t alloc_len; /* what alloc_cb hands out; 0 means the whole buf */
  struct sockaddr_storage addr; /* the bound address */
  int datagrams, handbacks, errors, last_error;
  ssize_t last_n;
  unsigned last_flags;
  struct sockaddr_storage last_from;
  void (*on_datagram)(struct peer *p, ssize_t n, unsigned flags);
  int closed;
} peer;

static int in_call; /* set while a soon_udp_* call that takes a cb runs */

static void on_alloc(soon_handle *h, size_t suggested, soon_buf *buf) {
  peer *p = (peer *)h;
  assert_int_equal(suggested, 65536);
  buf->base = p->buf;
  buf->len = p->alloc_len ? p->alloc_len : sizeof p->buf;
}

static void on_recv(soon_udp *udp, ssize_t nread, const soon_buf *buf,
                    const struct sockaddr *addr, unsigned flags) {
  peer *p = (peer *)udp;
  assert_ptr_equal(buf->base, p->buf);
  if (nread < 0) {
    assert_null(addr);
    p->errors++;
    p->last_error = (int)nread;
    return;
  }
  if (!addr) {
    assert_int_equal(nread, 0);
    assert_int_equal(flags, 0);
    p->handbacks++;
    return;
  }
  p->datagrams++;
  p->last_n = nread;
  p->last_flags = flags;
  memset(&p->last_from, 0, sizeof p->last_from);
  if (addr->sa_family == AF_INET)
    memcpy(&p->last_from, addr, sizeof(struct sockaddr_in));
  else if (addr->sa_family == AF_INET6)
    memcpy(&p->last_from, addr, sizeof(struct sockaddr_in6));
  if (p->on_datagram)
    p->on_datagram(p, nread, flags);
}

static void on_close(soon_handle *h) { ((peer *)h)->closed++; }

static peer *peer_new(soon_loop *loop) {
  peer *p = calloc(1, sizeof *p);
  assert_non_null(p);
  assert_int_equal(soon_udp_init(loop, &p->udp), 0);
  return p;
}

/* Bind to ip:0 and learn the port; nonzero on failure (IPv6 may be off). */
static int peer_bind(peer *p, const char *ip, unsigned flags) {
  struct sockaddr_storage ss;
  int err = strchr(ip, ':') ? soon_ip6_addr(ip, 0, (struct sockaddr_in6 *)&ss)
                            : soon_ip4_addr(ip, 0, (struct sockaddr_in *)&ss);
  assert_int_equal(err, 0);
  err = soon_udp_bind(&p->udp, (struct sockaddr *)&ss, flags);
  if (err)
    return err;
  int len = sizeof p->addr;
  assert_int_equal(
      soon_udp_getsockname(&p->udp, (struct sockaddr *)&p->addr, &len), 0);
  assert_true(len > 0);
  return 0;
}

static int port_of(const struct sockaddr_storage *ss) {
  return ss->ss_family == AF_INET
             ? ntohs(((const struct sockaddr_in *)ss)->sin_port)
             : ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static void peer_close(peer *p) {
  assert_int_equal(soon_close((soon_handle *)&p->udp, on_close), 0);
}

static void recv_start(peer *p) {
  assert_int_equal(soon_udp_recv_start(&p->udp, on_alloc, on_recv), 0);
}

/* A send request with a count of its callbacks. */
typedef struct {
  soon_udp_send_req req;
  int calls;
  int status;
  int order; /* position among all send callbacks, from 1 */
} sendr;

static int send_calls; /* every send callback of the test */

static void on_send(soon_udp_send_req *req, int status) {
  sendr *s = (sendr *)req;
  assert_false(in_call); /* never from inside soon_udp_send */
  assert_int_equal(req->type, SOON_UDP_SEND);
  s->calls++;
  s->status = status;
  s->order = ++send_calls;
}

static void send_to(peer *from, sendr *s, const void *bytes, size_t len,
                    const struct sockaddr_storage *to) {
  soon_buf b = {(char *)bytes, len};
  memset(s, 0, sizeof *s);
  in_call = 1;
  assert_int_equal(soon_udp_send(&s->req, &from->udp, &b, 1,
                                 (const struct sockaddr *)to, on_send),
                   0);
  in_call = 0;
  assert_int_equal(s->calls, 0);
}

static int setup(void **state) {
  (void)state;
  in_call = 0;
  send_calls = 0;
  return 0;
}

/* ------------------------------------------------------------ one datagram */

static peer *closer_other;
static void close_both(peer *p, ssize_t n, unsigned flags) {
  (void)n;
  (void)flags;
  peer_close(p);
  peer_close(closer_other);
}

/* The sender is left unbound: its socket is made by the send, with the
 * family of the destination. */
static void one_datagram(const char *ip) {
  soon_loop loop;
  soon_timer guard;
  loop_init_checked(&loop);
  peer *rx = peer_new(&loop), *tx = peer_new(&loop);
  if (peer_bind(rx, ip, 0) != 0) {
    peer_close(rx);
    peer_close(tx);
    assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
    loop_close_checked(&loop);
    free(rx);
    free(tx);
    skip(); /* this host has no such loopback address */
  }
  guard_start(&loop, &guard);
  recv_start(rx);
  rx->on_datagram = close_both;
  closer_other = tx;
  sendr s;
  send_to(tx, &s, "hello", 5, &rx->addr);
  struct sockaddr_storage txaddr;
  int len = sizeof txaddr;
  assert_int_equal(
      soon_udp_getsockname(&tx->udp, (struct sockaddr *)&txaddr, &len), 0);
  assert_int_equal(txaddr.ss_family, rx->addr.ss_family);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.status, 0);
  assert_int_equal(rx->datagrams, 1);
  assert_int_equal(rx->last_n, 5);
  assert_int_equal(rx->last_flags, 0);
  assert_memory_equal(rx->buf, "hello", 5);
  assert_int_equal(rx->last_from.ss_family, rx->addr.ss_family);
  assert_int_equal(port_of(&rx->last_from), port_of(&txaddr));
  assert_int_equal(rx->closed, 1);
  assert_int_equal(tx->closed, 1);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
  free(rx);
  free(tx);
}

static void test_ipv4(void **state) {
  (void)state;
  one_datagram("127.0.0.1");
}

static void test_ipv6(void **state) {
  (void)state;
  one_datagram("::1");
}

/* ------------------------------------------------------------ many */

/* 10,000 numbered datagrams with at most WINDOW in flight: loopback UDP
 * drops when the receiver's buffer overflows, and a window keeps it from
 * overflowing, so every one must arrive exactly once. */
enum { MANY = 10000, WINDOW = 64, NREQ = 2 * WINDOW };

typedef struct {
  sendr s;
  uint32_t payload[1 + 64];
  int busy;
} many_req;

static struct {
  peer *rx, *tx;
  many_req reqs[NREQ];
  unsigned char seen[MANY];
  int sent, received, send_ok;
} many;

static size_t payload_words(uint32_t seq) { return 1 + seq % 64; }

static void many_pump(void);

static void many_on_send(soon_udp_send_req *req, int status) {
  many_req *m = (many_req *)req;
  assert_false(in_call);
  assert_int_equal(status, 0);
  assert_true(m->busy);
  m->busy = 0;
  many.send_ok++;
  many_pump();
}

static void many_pump(void) {
  for (int i = 0;
       i < NREQ && many.sent < MANY && many.sent - many.received < WINDOW;
       i++) {
    many_req *m = &many.reqs[i];
    if (m->busy)
      continue;
    uint32_t seq = (uint32_t)many.sent++;
    size_t words = payload_words(seq);
    m->payload[0] = seq;
    for (size_t w = 1; w < words; w++)
      m->payload[w] = seq * 2654435761u + (uint32_t)w;
    soon_buf b = {(char *)m->payload, words * sizeof(uint32_t)};
    m->busy = 1;
    in_call = 1;
    assert_int_equal(soon_udp_send(&m->s.req, &many.tx->udp, &b, 1,
                                   (const struct sockaddr *)&many.rx->addr,
                                   many_on_send),
                     0);
    in_call = 0;
  }
}

static void many_on_datagram(peer *p, ssize_t n, unsigned flags) {
  assert_int_equal(flags, 0);
  assert_true(n >= 4 && n % 4 == 0);
  uint32_t words[65];
  memcpy(words, p->buf, (size_t)n);
  uint32_t seq = words[0];
  assert_true(seq < MANY);
  assert_int_equal((size_t)n, payload_words(seq) * sizeof(uint32_t));
  for (size_t w = 1; w < (size_t)n / 4; w++)
    assert_int_equal(words[w], seq * 2654435761u + (uint32_t)w);
  assert_false(many.seen[seq]);
  many.seen[seq] = 1;
  many.received++;
  if (many.received == MANY) {
    peer_close(many.rx);
    peer_close(many.tx);
  } else {
    many_pump();
  }
}

static void test_many(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  memset(&many, 0, sizeof many);
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  many.rx = peer_new(&loop);
  many.tx = peer_new(&loop);
  assert_int_equal(peer_bind(many.rx, "127.0.0.1", 0), 0);
  assert_int_equal(peer_bind(many.tx, "127.0.0.1", 0), 0);
  many.rx->on_datagram = many_on_datagram;
  recv_start(many.rx);
  many_pump();
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(many.received, MANY);
  assert_int_equal(many.sent, MANY);
  assert_int_equal(many.send_ok, MANY);
  assert_int_equal(many.rx->datagrams, MANY);
  assert_int_equal(many.rx->errors, 0);
  for (int i = 0; i < MANY; i++)
    assert_true(many.seen[i]);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
  free(many.rx);
  free(many.tx);
}

/* ------------------------------------------------------------ try_send */

static void test_try_send(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  peer *rx = peer_new(&loop), *tx = peer_new(&loop);
  assert_int_equal(peer_bind(rx, "127.0.0.1", 0), 0);
  assert_int_equal(peer_bind(tx, "127.0.0.1", 0), 0);
  soon_buf bufs[2] = {{"try", 3}, {"send", 4}};
  assert_int_equal(
      soon_udp_try_send(&tx->udp, bufs, 2, (struct sockaddr *)&rx->addr), 7);
  recv_start(rx);
  rx->on_datagram = close_both;
  closer_other = tx;
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(rx->datagrams, 1);
  assert_int_equal(rx->last_n, 7);
  assert_memory_equal(rx->buf, "trysend", 7);
  assert_int_equal(port_of(&rx->last_from), port_of(&tx->addr));
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
  free(rx);
  free(tx);
}

/* ------------------------------------------------------------ zero length */

static void close_after_two(peer *p, ssize_t n, unsigned flags) {
  assert_int_equal(n, 0);
  assert_int_equal(flags, 0);
  if (p->datagrams == 2)
    close_both(p, n, flags);
}

static void test_zero_length(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  peer *rx = peer_new(&loop), *tx = peer_new(&loop);
  assert_int_equal(peer_bind(rx, "127.0.0.1", 0), 0);
  assert_int_equal(peer_bind(tx, "127.0.0.1", 0), 0);
  recv_start(rx);
  rx->on_datagram = close_after_two;
  closer_other = tx;
  sendr a, b;
  memset(&a, 0, sizeof a);
  in_call = 1; /* no buffers at all */
  assert_int_equal(soon_udp_send(&a.req, &tx->udp, NULL, 0,
                                 (struct sockaddr *)&rx->addr, on_send),
                   0);
  in_call = 0;
  send_to(tx, &b, "", 0, &rx->addr); /* one empty buffer */
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(rx->datagrams, 2);
  assert_int_equal(port_of(&rx->last_from), port_of(&tx->addr));
  assert_int_equal(a.calls, 1);
  assert_int_equal(a.status, 0);
  assert_int_equal(b.calls, 1);
  assert_int_equal(b.status, 0);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
  free(rx);
  free(tx);
}

/* ------------------------------------------------------------ partial */

static int partial_seen, whole_seen;
static void check_partial(peer *p, ssize_t n, unsigned flags) {
  assert_int_equal(n, 4);
  if (memcmp(p->buf, "AAAA", 4) == 0) {
    assert_int_equal(flags, SOON_UDP_PARTIAL);
    partial_seen++;
  } else {
    assert_memory_equal(p->buf, "BBBB", 4);
    assert_int_equal(flags, 0); /* fits exactly: not cut */
    whole_seen++;
  }
  if (p->datagrams == 2)
    close_both(p, n, flags);
}

static void test_partial(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  char big[100];
  memset(big, 'A', sizeof big);
  partial_seen = whole_seen = 0;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  peer *rx = peer_new(&loop), *tx = peer_new(&loop);
  assert_int_equal(peer_bind(rx, "127.0.0.1", 0), 0);
  rx->alloc_len = 4;
  recv_start(rx);
  rx->on_datagram = check_partial;
  closer_other = tx;
  sendr a, b;
  send_to(tx, &a, big, sizeof big, &rx->addr);
  send_to(tx, &b, "BBBB", 4, &rx->addr);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(partial_seen, 1);
  assert_int_equal(whole_seen, 1);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
  free(rx);
  free(tx);
}

/* ------------------------------------------------------------ no buffer */

static void zero_alloc(soon_handle *h, size_t suggested, soon_buf *buf) {
  (void)h;
  (void)suggested;
  buf->base = NULL;
  buf->len = 0;
}

static void on_recv_nobufs(soon_udp *udp, ssize_t nread, const soon_buf *buf,
                           const struct sockaddr *addr, unsigned flags) {
  (void)buf;
  peer *p = (peer *)udp;
  assert_int_equal(nread, -ENOBUFS);
  assert_null(addr);
  assert_int_equal(flags, 0);
  p->errors++;
  assert_int_equal(soon_udp_recv_stop(udp), 0);
}

static void test_nobufs(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  peer *rx = peer_new(&loop), *tx = peer_new(&loop);
  assert_int_equal(peer_bind(rx, "127.0.0.1", 0), 0);
  assert_int_equal(soon_udp_recv_start(&rx->udp, zero_alloc, on_recv_nobufs),
                   0);
  sendr a;
  send_to(tx, &a, "x", 1, &rx->addr);
  /* Stopping from the callback ends the run: nothing else is active. */
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(rx->errors, 1);
  assert_int_equal(a.calls, 1);
  peer_close(rx);
  peer_close(tx);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
  free(rx);
  free(tx);
}

/* ------------------------------------------------------------ recv_stop */

static void stop_on_first(peer *p, ssize_t n, unsigned flags) {
  (void)n;
  (void)flags;
  assert_int_equal(soon_udp_recv_stop(&p->udp), 0);
  assert_false(soon_is_active((soon_handle *)&p->udp));
}

/* Both datagrams are in the receiver's queue before the loop runs (loopback
 * sends complete in the call), so only recv_stop keeps the second back. */
static void test_recv_stop(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  peer *rx = peer_new(&loop), *tx = peer_new(&loop);
  assert_int_equal(peer_bind(rx, "127.0.0.1", 0), 0);
  sendr a, b;
  send_to(tx, &a, "one", 3, &rx->addr);
  send_to(tx, &b, "two", 3, &rx->addr);
  recv_start(rx);
  assert_true(soon_is_active((soon_handle *)&rx->udp));
  assert_int_equal(soon_udp_recv_start(&rx->udp, on_alloc, on_recv), -EALREADY);
  rx->on_datagram = stop_on_first;
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(rx->datagrams, 1);
  assert_memory_equal(rx->buf, "one", 3);
  assert_int_equal(a.calls + b.calls, 2);
  /* The second is still there for the next receiver. */
  rx->on_datagram = close_both;
  closer_other = tx;
  recv_start(rx);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(rx->datagrams, 2);
  assert_memory_equal(rx->buf, "two", 3);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
  free(rx);
  free(tx);
}

/* ------------------------------------------------------------ queued sends */

/* UDP over loopback never pushes back on the sender (the receiver drops
 * instead), so the send queue is filled on a datagram socketpair, whose
 * sender gets EAGAIN once the receiver's queue is full. */
enum { QMAX = 4096, QEXTRA = 5 };
static sendr qreqs[QMAX];
static char qpayload[QMAX][12]; /* 8 bytes are sent: 7 digits, NUL */
static int qsent, qqueued_from;

static void fill_queue(peer *tx) {
  qsent = 0;
  qqueued_from = -1;
  while (qsent < QMAX) {
    snprintf(qpayload[qsent], sizeof qpayload[qsent], "%07d", qsent);
    soon_buf b = {qpayload[qsent], 8};
    memset(&qreqs[qsent], 0, sizeof qreqs[qsent]);
    in_call = 1;
    assert_int_equal(
        soon_udp_send(&qreqs[qsent].req, &tx->udp, &b, 1, NULL, on_send), 0);
    in_call = 0;
    qsent++;
    if (qqueued_from < 0 && soon_udp_send_queue_size(&tx->udp) > 0)
      qqueued_from = qsent - 1;
    if (qqueued_from >= 0 && qsent - qqueued_from == QEXTRA)
      break;
  }
  assert_true(qqueued_from >= 0); /* the kernel pushed back at some point */
  assert_int_equal(soon_udp_send_queue_size(&tx->udp), 8 * QEXTRA);
  for (int i = 0; i < qsent; i++)
    assert_int_equal(qreqs[i].calls, 0);
}

static peer *q_tx;
static void check_sends_before_close(soon_handle *h) {
  /* Every send was told before the close callback, exactly once. */
  for (int i = 0; i < qsent; i++)
    assert_int_equal(qreqs[i].calls, 1);
  on_close(h);
}

static void test_close_cancels_queued(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  int fds[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, fds), 0);
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  peer *tx = peer_new(&loop);
  assert_int_equal(soon_udp_open(&tx->udp, fds[0]), 0);
  assert_int_equal(soon_udp_open(&tx->udp, fds[0]), -EBUSY);
  fill_queue(tx);
  assert_true(soon_is_active((soon_handle *)&tx->udp));
  soon_buf b = {"late", 4};
  assert_int_equal(soon_udp_try_send(&tx->udp, &b, 1, NULL), -EAGAIN);
  in_call = 1; /* nothing is told from inside soon_close */
  assert_int_equal(
      soon_close((soon_handle *)&tx->udp, check_sends_before_close), 0);
  in_call = 0;
  for (int i = 0; i < qsent; i++)
    assert_int_equal(qreqs[i].calls, 0);
  assert_int_equal(soon_udp_send_queue_size(&tx->udp), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(tx->closed, 1);
  for (int i = 0; i < qsent; i++) {
    assert_int_equal(qreqs[i].calls, 1);
    assert_int_equal(qreqs[i].status, i < qqueued_from ? 0 : -ECANCELED);
    assert_int_equal(qreqs[i].order, i + 1); /* in the order sent */
  }
  close_fd(fds[1]);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
  free(tx);
}

/* The queued sends go out, in order, once the receiver makes room. */
static int q_next;
static peer *q_rx;
static void q_on_datagram(peer *p, ssize_t n, unsigned flags) {
  assert_int_equal(n, 8);
  assert_int_equal(flags, 0);
  assert_memory_equal(p->buf, qpayload[q_next], 8);
  q_next++;
  if (q_next == qsent) {
    peer_close(q_rx);
    peer_close(q_tx);
  }
}

static void test_queued_sends_flush(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  int fds[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, fds), 0);
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  q_tx = peer_new(&loop);
  q_rx = peer_new(&loop);
  assert_int_equal(soon_udp_open(&q_tx->udp, fds[0]), 0);
  assert_int_equal(soon_udp_open(&q_rx->udp, fds[1]), 0);
  fill_queue(q_tx);
  q_next = 0;
  q_rx->on_datagram = q_on_datagram;
  recv_start(q_rx);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(q_next, qsent);
  assert_int_equal(q_rx->closed, 1);
  assert_int_equal(q_tx->closed, 1);
  for (int i = 0; i < qsent; i++) {
    assert_int_equal(qreqs[i].calls, 1);
    assert_int_equal(qreqs[i].status, 0);
    assert_int_equal(qreqs[i].order, i + 1);
  }
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
  free(q_tx);
  free(q_rx);
}

/* A sender that sends again from its send callback, each datagram sent at
 * once, gets a bounded number of callbacks per loop iteration, as a stream
 * writer does (test_stream.c): the rest of the loop gets its turn. */
enum { CHAIN = 200, CHAIN_BOUND = 8 };

typedef struct chain {
  peer *tx;
  const struct sockaddr_storage *to;
  soon_udp_send_req req;
  soon_prepare tick;
  unsigned sent, this_iteration, most;
} chain;

static void chain_tick(soon_prepare *p) {
  ((chain *)p->data)->this_iteration = 0;
}

static void chain_sent(soon_udp_send_req *req, int status) {
  chain *c = req->data;
  assert_int_equal(status, 0);
  if (++c->this_iteration > c->most)
    c->most = c->this_iteration;
  if (++c->sent == CHAIN) {
    peer_close(c->tx);
    return;
  }
  soon_buf b = {(char *)"x", 1};
  assert_int_equal(soon_udp_send(req, &c->tx->udp, &b, 1,
                                 (const struct sockaddr *)c->to, chain_sent),
                   0);
}

static void test_send_chain_bounded(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  peer *rx = peer_new(&loop), *tx = peer_new(&loop);
  assert_int_equal(peer_bind(rx, "127.0.0.1", 0), 0);
  recv_start(rx); /* keeps the receive buffer from filling */
  chain c = {.tx = tx, .to = &rx->addr};
  c.req.data = c.tick.data = &c;
  assert_int_equal(soon_prepare_init(&loop, &c.tick), 0);
  assert_int_equal(soon_prepare_start(&c.tick, chain_tick), 0);
  soon_unref((soon_handle *)&c.tick);
  soon_buf b = {(char *)"x", 1};
  assert_int_equal(soon_udp_send(&c.req, &tx->udp, &b, 1,
                                 (const struct sockaddr *)&rx->addr,
                                 chain_sent),
                   0);
  soon_unref((soon_handle *)&rx->udp);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(c.sent, CHAIN);
  assert_true(c.most <= CHAIN_BOUND);
  assert_int_equal(tx->closed, 1);
  peer_close(rx);
  assert_int_equal(soon_close((soon_handle *)&c.tick, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
  free(rx);
  free(tx);
}

/* ------------------------------------------------------------ connect */

static void test_connect(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  peer *rx = peer_new(&loop), *tx = peer_new(&loop);
  assert_int_equal(peer_bind(rx, "127.0.0.1", 0), 0);
  sendr s, t;
  memset(&s, 0, sizeof s);
  soon_buf b = {"conn", 4};
  assert_int_equal(soon_udp_send(&s.req, &tx->udp, &b, 1, NULL, on_send),
                   -EDESTADDRREQ);
  assert_int_equal(soon_udp_connect(&tx->udp, NULL), -ENOTCONN);
  assert_int_equal(soon_udp_connect(&tx->udp, (struct sockaddr *)&rx->addr), 0);
  assert_int_equal(soon_udp_connect(&tx->udp, (struct sockaddr *)&rx->addr),
                   -EISCONN);
  struct sockaddr_storage peer_addr;
  int len = sizeof peer_addr;
  assert_int_equal(
      soon_udp_getpeername(&tx->udp, (struct sockaddr *)&peer_addr, &len), 0);
  assert_int_equal(port_of(&peer_addr), port_of(&rx->addr));
  in_call = 1;
  assert_int_equal(soon_udp_send(&s.req, &tx->udp, &b, 1, NULL, on_send), 0);
  in_call = 0;
  recv_start(rx);
  rx->on_datagram = NULL;
  while (rx->datagrams == 0)
    assert_true(soon_run(&loop, SOON_RUN_ONCE) >= 0);
  assert_memory_equal(rx->buf, "conn", 4);
  assert_int_equal(soon_udp_connect(&tx->udp, NULL), 0);
  len = sizeof peer_addr;
  assert_int_equal(
      soon_udp_getpeername(&tx->udp, (struct sockaddr *)&peer_addr, &len),
      -ENOTCONN);
  /* Disconnected, a send without an address fails in its callback. */
  memset(&t, 0, sizeof t);
  in_call = 1;
  assert_int_equal(soon_udp_send(&t.req, &tx->udp, &b, 1, NULL, on_send), 0);
  in_call = 0;
  peer_close(rx);
  peer_close(tx);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.status, 0);
  assert_int_equal(t.calls, 1);
  assert_int_equal(t.status, -EDESTADDRREQ);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
  free(rx);
  free(tx);
}

/* ------------------------------------------------------------ options */

static void check_setters(soon_udp *u) {
  assert_int_equal(soon_udp_set_broadcast(u, 1), 0);
  assert_int_equal(soon_udp_set_broadcast(u, 0), 0);
  assert_int_equal(soon_udp_set_ttl(u, 1), 0);
  assert_int_equal(soon_udp_set_ttl(u, 64), 0);
  assert_int_equal(soon_udp_set_ttl(u, 255), 0);
  assert_int_equal(soon_udp_set_ttl(u, 0), -EINVAL);
  assert_int_equal(soon_udp_set_ttl(u, 256), -EINVAL);
  assert_int_equal(soon_udp_set_ttl(u, -1), -EINVAL);
  assert_int_equal(soon_udp_set_multicast_ttl(u, 0), 0);
  assert_int_equal(soon_udp_set_multicast_ttl(u, 255), 0);
  assert_int_equal(soon_udp_set_multicast_ttl(u, -1), -EINVAL);
  assert_int_equal(soon_udp_set_multicast_ttl(u, 256), -EINVAL);
  assert_int_equal(soon_udp_set_multicast_loop(u, 1), 0);
  assert_int_equal(soon_udp_set_multicast_loop(u, 0), 0);
  assert_int_equal(soon_udp_set_multicast_interface(u, NULL), 0);
  assert_int_equal(soon_udp_set_multicast_interface(u, "not an address"),
                   -EINVAL);
}

static void test_options(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_checked(&loop);
  peer *p4 = peer_new(&loop), *p6 = peer_new(&loop);
  /* Before the socket exists there is nothing to set. */
  assert_int_equal(soon_udp_set_broadcast(&p4->udp, 1), -EBADF);
  assert_int_equal(soon_udp_set_ttl(&p4->udp, 64), -EBADF);
  assert_int_equal(soon_udp_set_multicast_ttl(&p4->udp, 1), -EBADF);
  assert_int_equal(soon_udp_set_multicast_loop(&p4->udp, 1), -EBADF);
  assert_int_equal(soon_udp_set_multicast_interface(&p4->udp, NULL), -EBADF);
  assert_int_equal(peer_bind(p4, "127.0.0.1", SOON_UDP_REUSEADDR), 0);
  check_setters(&p4->udp);
  assert_int_equal(soon_udp_set_multicast_interface(&p4->udp, "127.0.0.1"), 0);
  int v6 = peer_bind(p6, "::1", SOON_UDP_IPV6ONLY) == 0;
  if (v6) {
    check_setters(&p6->udp);
    assert_int_equal(soon_udp_set_multicast_interface(&p6->udp, "::1%1"), 0);
    assert_int_equal(
        soon_udp_set_multicast_interface(&p6->udp, "::1%no-such-if0"), -EINVAL);
  }
  peer_close(p4);
  peer_close(p6);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
  free(p4);
  free(p6);
}

static void test_getsockname(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_checked(&loop);
  peer *p = peer_new(&loop);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  assert_int_equal(soon_udp_getsockname(&p->udp, (struct sockaddr *)&ss, &len),
                   -EBADF);
  assert_int_equal(peer_bind(p, "127.0.0.1", 0), 0);
  len = sizeof ss;
  assert_int_equal(soon_udp_getsockname(&p->udp, (struct sockaddr *)&ss, &len),
                   0);
  assert_int_equal(len, sizeof(struct sockaddr_in));
  assert_int_equal(ss.ss_family, AF_INET);
  assert_int_not_equal(port_of(&ss), 0);
  assert_int_equal(port_of(&ss), port_of(&p->addr));
  char ip[INET6_ADDRSTRLEN];
  assert_int_equal(soon_ip_name((struct sockaddr *)&ss, ip, sizeof ip), 0);
  assert_string_equal(ip, "127.0.0.1");
  len = 0;
  assert_int_equal(soon_udp_getsockname(&p->udp, (struct sockaddr *)&ss, &len),
                   -EINVAL);
  /* A second bind of a bound socket is the kernel's -EINVAL. */
  assert_int_equal(soon_udp_bind(&p->udp, (struct sockaddr *)&p->addr, 0),
                   -EINVAL);
  /* Without SOON_UDP_REUSEADDR the port is taken; the failed bind leaves
   * the handle without a socket, as it was. */
  peer *q = peer_new(&loop);
  assert_int_equal(soon_udp_bind(&q->udp, (struct sockaddr *)&p->addr, 0),
                   -EADDRINUSE);
  len = sizeof ss;
  assert_int_equal(soon_udp_getsockname(&q->udp, (struct sockaddr *)&ss, &len),
                   -EBADF);
  peer_close(p);
  peer_close(q);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
  free(p);
  free(q);
}

static void test_reuseaddr(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_checked(&loop);
  peer *p = peer_new(&loop), *q = peer_new(&loop);
  assert_int_equal(peer_bind(p, "127.0.0.1", SOON_UDP_REUSEADDR), 0);
  assert_int_equal(
      soon_udp_bind(&q->udp, (struct sockaddr *)&p->addr, SOON_UDP_REUSEADDR),
      0);
  peer_close(p);
  peer_close(q);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
  free(p);
  free(q);
}

/* ------------------------------------------------------------ multicast */

static void test_multicast(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  loop_init_checked(&loop);
  peer *rx = peer_new(&loop), *tx = peer_new(&loop);
  /* Bound to the group, the member hears only the group, not the host. */
  assert_int_equal(peer_bind(rx, "239.255.0.1", SOON_UDP_REUSEADDR), 0);
  int err = soon_udp_set_membership(&rx->udp, "239.255.0.1", "127.0.0.1",
                                    SOON_JOIN_GROUP);
  if (err) {
    peer_close(rx);
    peer_close(tx);
    assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
    loop_close_checked(&loop);
    free(rx);
    free(tx);
    print_message("multicast on loopback refused here: %s\n",
                  soon_err_name(err));
    skip();
  }
  assert_int_equal(soon_udp_set_membership(&rx->udp, "239.255.0.1", "127.0.0.1",
                                           SOON_LEAVE_GROUP),
                   0);
  assert_true(soon_udp_set_membership(&rx->udp, "239.255.0.1", "127.0.0.1",
                                      SOON_LEAVE_GROUP) < 0);
  assert_int_equal(soon_udp_set_membership(&rx->udp, "239.255.0.1", "127.0.0.1",
                                           SOON_JOIN_GROUP),
                   0);
  assert_int_equal(
      soon_udp_set_membership(&rx->udp, "not.a.group", NULL, SOON_JOIN_GROUP),
      -EINVAL);
  assert_int_equal(soon_udp_set_membership(&rx->udp, "239.255.0.1", "bogus",
                                           SOON_JOIN_GROUP),
                   -EINVAL);
  assert_int_equal(peer_bind(tx, "127.0.0.1", 0), 0);
  assert_int_equal(soon_udp_set_multicast_interface(&tx->udp, "127.0.0.1"), 0);
  assert_int_equal(soon_udp_set_multicast_loop(&tx->udp, 1), 0);
  assert_int_equal(soon_udp_set_multicast_ttl(&tx->udp, 1), 0);
  guard_start(&loop, &guard);
  recv_start(rx);
  rx->on_datagram = close_both;
  closer_other = tx;
  sendr s;
  struct sockaddr_storage group;
  assert_int_equal(soon_ip4_addr("239.255.0.1", port_of(&rx->addr),
                                 (struct sockaddr_in *)&group),
                   0);
  send_to(tx, &s, "group", 5, &group);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(rx->datagrams, 1);
  assert_memory_equal(rx->buf, "group", 5);
  assert_int_equal(port_of(&rx->last_from), port_of(&tx->addr));
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.status, 0);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
  free(rx);
  free(tx);
}

/* ------------------------------------------------------------ arguments */

static void never_send(soon_udp_send_req *req, int status) {
  (void)req;
  (void)status;
  fail_msg("callback of a rejected send");
}

static void test_invalid(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_checked(&loop);
  peer *p = peer_new(&loop);
  soon_udp_send_req req;
  struct sockaddr_in a4;
  struct sockaddr_in6 a6;
  struct sockaddr unspec = {.sa_family = AF_UNSPEC};
  soon_buf b = {"x", 1};
  int len = sizeof a4;

  assert_int_equal(soon_ip4_addr("999.1.1.1", 1, &a4), -EINVAL);
  assert_int_equal(soon_ip4_addr("127.0.0.1:80", 1, &a4), -EINVAL);
  assert_int_equal(soon_ip6_addr("zz::1", 1, &a6), -EINVAL);
  assert_int_equal(soon_ip4_addr("127.0.0.1", 0, &a4), 0);
  const struct sockaddr *sa = (const struct sockaddr *)&a4;

  assert_int_equal(soon_udp_init(NULL, &p->udp), -EINVAL);
  assert_int_equal(soon_udp_init(&loop, NULL), -EINVAL);
  assert_int_equal(soon_udp_open(NULL, 0), -EINVAL);
  assert_int_equal(soon_udp_open(&p->udp, -1), -EINVAL);
  int tcp = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(tcp >= 0);
  assert_int_equal(soon_udp_open(&p->udp, tcp), -EINVAL);
  close_fd(tcp);
  assert_int_equal(soon_udp_bind(NULL, sa, 0), -EINVAL);
  assert_int_equal(soon_udp_bind(&p->udp, NULL, 0), -EINVAL);
  assert_int_equal(soon_udp_bind(&p->udp, &unspec, 0), -EINVAL);
  assert_int_equal(soon_udp_bind(&p->udp, sa, 0x100), -EINVAL);
  assert_int_equal(soon_udp_bind(&p->udp, sa, SOON_UDP_IPV6ONLY), -EINVAL);
  assert_int_equal(soon_udp_send(NULL, &p->udp, &b, 1, sa, never_send),
                   -EINVAL);
  assert_int_equal(soon_udp_send(&req, NULL, &b, 1, sa, never_send), -EINVAL);
  assert_int_equal(soon_udp_send(&req, &p->udp, NULL, 1, sa, never_send),
                   -EINVAL);
  assert_int_equal(soon_udp_send(&req, &p->udp, &b, 1, sa, NULL), -EINVAL);
  assert_int_equal(soon_udp_send(&req, &p->udp, &b, 1, &unspec, never_send),
                   -EINVAL);
  assert_int_equal(soon_udp_try_send(NULL, &b, 1, sa), -EINVAL);
  assert_int_equal(soon_udp_try_send(&p->udp, NULL, 1, sa), -EINVAL);
  assert_int_equal(soon_udp_try_send(&p->udp, &b, 1, &unspec), -EINVAL);
  assert_int_equal(soon_udp_try_send(&p->udp, &b, 1, NULL), -EDESTADDRREQ);
  assert_int_equal(soon_udp_recv_start(NULL, on_alloc, on_recv), -EINVAL);
  assert_int_equal(soon_udp_recv_start(&p->udp, NULL, on_recv), -EINVAL);
  assert_int_equal(soon_udp_recv_start(&p->udp, on_alloc, NULL), -EINVAL);
  assert_int_equal(soon_udp_recv_start(&p->udp, on_alloc, on_recv), -EBADF);
  assert_int_equal(soon_udp_recv_stop(NULL), -EINVAL);
  assert_int_equal(soon_udp_recv_stop(&p->udp), 0);
  assert_int_equal(soon_udp_set_broadcast(NULL, 1), -EINVAL);
  assert_int_equal(soon_udp_set_ttl(NULL, 1), -EINVAL);
  assert_int_equal(soon_udp_set_multicast_ttl(NULL, 1), -EINVAL);
  assert_int_equal(soon_udp_set_multicast_loop(NULL, 1), -EINVAL);
  assert_int_equal(soon_udp_set_multicast_interface(NULL, NULL), -EINVAL);
  assert_int_equal(
      soon_udp_set_membership(NULL, "239.255.0.1", NULL, SOON_JOIN_GROUP),
      -EINVAL);
  assert_int_equal(
      soon_udp_set_membership(&p->udp, NULL, NULL, SOON_JOIN_GROUP), -EINVAL);
  assert_int_equal(
      soon_udp_set_membership(&p->udp, "239.255.0.1", NULL, (soon_membership)7),
      -EINVAL);
  assert_int_equal(soon_udp_getsockname(NULL, (struct sockaddr *)&a4, &len),
                   -EINVAL);
  assert_int_equal(soon_udp_getsockname(&p->udp, NULL, &len), -EINVAL);
  assert_int_equal(soon_udp_getsockname(&p->udp, (struct sockaddr *)&a4, NULL),
                   -EINVAL);
  assert_int_equal(soon_udp_getpeername(NULL, (struct sockaddr *)&a4, &len),
                   -EINVAL);
  assert_int_equal(soon_udp_connect(NULL, sa), -EINVAL);
  assert_int_equal(soon_udp_connect(&p->udp, &unspec), -EINVAL);
  assert_int_equal(soon_udp_send_queue_size(NULL), 0);
  assert_int_equal(soon_udp_send_queue_size(&p->udp), 0);

  /* A closing handle takes nothing new. */
  assert_int_equal(peer_bind(p, "127.0.0.1", 0), 0);
  peer_close(p);
  assert_int_equal(soon_udp_send(&req, &p->udp, &b, 1, sa, never_send),
                   -EINVAL);
  assert_int_equal(soon_udp_try_send(&p->udp, &b, 1, sa), -EINVAL);
  assert_int_equal(soon_udp_recv_start(&p->udp, on_alloc, on_recv), -EINVAL);
  assert_int_equal(soon_udp_bind(&p->udp, sa, 0), -EINVAL);
  assert_int_equal(soon_udp_set_ttl(&p->udp, 1), -EINVAL);
  assert_int_equal(soon_close((soon_handle *)&p->udp, NULL), -EINVAL);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(p->closed, 1);
  loop_close_checked(&loop);
  free(p);
}

/* No buffer (a zero length, or no base) is -ENOBUFS for this try only, as
 * for streams: the datagram stays in the socket and receiving goes on, so
 * the next alloc_cb that gives a buffer gets it whole. */
static int scarce_left;

static void alloc_scarce(soon_handle *h, size_t suggested, soon_buf *buf) {
  on_alloc(h, suggested, buf);
  if (scarce_left == 2)
    buf->len = 0;
  else if (scarce_left == 1)
    buf->base = NULL;
  if (scarce_left > 0)
    scarce_left--;
}

static void on_recv_scarce(soon_udp *udp, ssize_t nread, const soon_buf *buf,
                           const struct sockaddr *addr, unsigned flags) {
  peer *p = (peer *)udp;
  if (nread == -ENOBUFS) {
    assert_null(addr);
    assert_int_equal(flags, 0);
    p->errors++;
    return;
  }
  on_recv(udp, nread, buf, addr, flags);
  if (p->datagrams == 1)
    assert_int_equal(soon_udp_recv_stop(udp), 0);
}

static void test_nobufs_then_buffer(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  peer *rx = peer_new(&loop), *tx = peer_new(&loop);
  assert_int_equal(peer_bind(rx, "127.0.0.1", 0), 0);
  scarce_left = 2;
  assert_int_equal(soon_udp_recv_start(&rx->udp, alloc_scarce, on_recv_scarce),
                   0);
  sendr a;
  send_to(tx, &a, "hello", 5, &rx->addr);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(rx->errors, 2);
  assert_int_equal(rx->datagrams, 1);
  assert_int_equal(rx->last_n, 5);
  assert_memory_equal(rx->buf, "hello", 5);
  assert_int_equal(a.calls, 1);
  peer_close(rx);
  peer_close(tx);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
  free(rx);
  free(tx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_ipv4, setup),
      cmocka_unit_test_setup(test_ipv6, setup),
      cmocka_unit_test_setup(test_many, setup),
      cmocka_unit_test_setup(test_try_send, setup),
      cmocka_unit_test_setup(test_zero_length, setup),
      cmocka_unit_test_setup(test_partial, setup),
      cmocka_unit_test_setup(test_nobufs, setup),
      cmocka_unit_test_setup(test_recv_stop, setup),
      cmocka_unit_test_setup(test_close_cancels_queued, setup),
      cmocka_unit_test_setup(test_queued_sends_flush, setup),
      cmocka_unit_test_setup(test_send_chain_bounded, setup),
      cmocka_unit_test_setup(test_connect, setup),
      cmocka_unit_test_setup(test_options, setup),
      cmocka_unit_test_setup(test_getsockname, setup),
      cmocka_unit_test_setup(test_reuseaddr, setup),
      cmocka_unit_test_setup(test_multicast, setup),
      cmocka_unit_test_setup(test_invalid, setup),
      cmocka_unit_test_setup(test_nobufs_then_buffer, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
