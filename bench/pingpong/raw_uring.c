/* pingpong/raw_uring.c: the limit row on io_uring: the ping-pong with one
 * liburing ring and nothing else; what soon's uring backend can at best
 * approach. */
#include "common.h"

#ifdef BENCH_NO_URING
int main(void) { bench_skip("built without liburing"); }
#else
#include <liburing.h>

#define PING "PING\n"
#define PING_LEN 5
#define SEND_BIT (1ull << 32) /* user_data: index, and this bit for sends */

#define BUF_SIZE 1024

/* Index i < nconns is client i, nconns + i its server. Each fd has one
 * multishot receive, which takes buffers from one provided-buffer ring (as
 * soon's backend does: the fastest way we know to read many sockets); a
 * server's echo goes from its own send buffer, which only one ping in
 * flight per connection keeps from being overwritten before the kernel
 * copied it. */
typedef struct fdst {
  int fd, wlen, done;
  char wbuf[BUF_SIZE];
} fdst;

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static char *bufs;
static unsigned nbufs, returned;
static fdst *st;
static uint64_t *sent, *recvd;
static int nconns, nclosed, nsrvclosed, stopping;
static uint64_t quota = UINT64_MAX;
static uint64_t pings, pongs, pongs_at_stop, echoed;

static struct io_uring_sqe *sqe_get(void) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
  if (!sqe) { /* full: hand what is there to the kernel and go on */
    BENCH_OK(io_uring_submit(&ring));
    sqe = io_uring_get_sqe(&ring);
    BENCH_CHECK(sqe);
  }
  return sqe;
}

static void arm_recv(int i) {
  struct io_uring_sqe *sqe = sqe_get();
  io_uring_prep_recv_multishot(sqe, st[i].fd, NULL, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = 0;
  io_uring_sqe_set_data64(sqe, (uint64_t)i);
}

/* A buffer back to the kernel; made visible once a turn, in one store. */
static void give_back(unsigned bid) {
  io_uring_buf_ring_add(br, bufs + (size_t)bid * BUF_SIZE, BUF_SIZE,
                        (unsigned short)bid, io_uring_buf_ring_mask(nbufs),
                        (int)returned++);
}

/* WAITALL makes a short send a failure, which posts a completion even with
 * CQE_SKIP_SUCCESS: every send completion that arrives is checked. */
static void send_from(int i, const char *p, int n) {
  struct io_uring_sqe *sqe = sqe_get();
  io_uring_prep_send(sqe, st[i].fd, p, (size_t)n, MSG_NOSIGNAL | MSG_WAITALL);
  io_uring_sqe_set_data64(sqe, SEND_BIT | (uint64_t)i);
  if (ring.features & IORING_FEAT_CQE_SKIP)
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  st[i].wlen = n;
}

static void send_ping(int i) {
  pings++;
  sent[i] += PING_LEN;
  send_from(i, PING, PING_LEN);
}

static void on_client(int i, const char *buf, int n) {
  if (n == 0 && st[i].done) { /* our own shutdown ended the receive */
    close(st[i].fd);
    nclosed++;
    return;
  }
  if (n <= 0)
    bench_fail("client recv: %s", n == 0 ? "EOF" : strerror(-n));
  for (int k = 0; k < n; k++)
    if (buf[k] != PING[(recvd[i] + (uint64_t)k) % PING_LEN])
      bench_fail("pong corrupted");
  recvd[i] += (uint64_t)n;
  if (recvd[i] > sent[i])
    bench_fail("more pong than ping");
  if (recvd[i] < sent[i])
    return; /* the rest of this pong is on its way */
  pongs++;
  if (!stopping && pings < quota) {
    send_ping(i);
    return;
  }
  /* A close would not end the receive (the ring holds the file): shutdown
   * does, and tells the server EOF; the fd is closed when the receive ends. */
  st[i].done = 1;
  BENCH_OK(shutdown(st[i].fd, SHUT_RDWR));
}

static void on_server(int i, const char *buf, int n) {
  if (n > 0) {
    echoed += (uint64_t)n;
    memcpy(st[i].wbuf, buf, (size_t)n);
    send_from(i, st[i].wbuf, n);
  } else if (n == 0) {
    close(st[i].fd);
    nsrvclosed++;
  } else {
    bench_fail("server recv: %s", strerror(-n));
  }
}

int main(int argc, char **argv) {
  char name[64];
  nconns = (int)bench_arg(argc, argv, "conns", 1);
  double duration = bench_arg(argc, argv, "duration", 0.5);
  double rt = bench_arg(argc, argv, "rt", 0); /* count mode, as the others */
  if (rt > 0)
    quota = (uint64_t)rt;
  snprintf(name, sizeof name, "pingpong-%d", nconns);
  bench_nofile(2 * (unsigned long)nconns + 64);
  st = calloc(2 * (size_t)nconns, sizeof *st);
  sent = calloc((size_t)nconns, sizeof *sent);
  recvd = calloc((size_t)nconns, sizeof *recvd);
  BENCH_CHECK(st && sent && recvd);

  /* Room for a receive and a send per fd; the flags soon's backend asks for
   * (completions run in our own wait only), falling back where refused. */
  unsigned entries = 64;
  while (entries < 4u * (unsigned)nconns)
    entries *= 2;
  struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER |
                                       IORING_SETUP_DEFER_TASKRUN};
  int r = io_uring_queue_init_params(entries, &ring, &p);
  if (r == -EINVAL)
    r = io_uring_queue_init(entries, &ring, 0);
  if (r == -ENOSYS || r == -EPERM)
    bench_skip("io_uring unavailable: %s", strerror(-r));
  BENCH_OK(r);
  nbufs = 64;
  while (nbufs < 2u * (unsigned)nconns)
    nbufs *= 2; /* each fd holds at most one buffer between two waits */
  bufs = malloc((size_t)nbufs * BUF_SIZE);
  BENCH_CHECK(bufs);
  BENCH_CHECK(posix_memalign((void **)&br, 4096,
                             nbufs * sizeof(struct io_uring_buf)) == 0);
  io_uring_buf_ring_init(br);
  struct io_uring_buf_reg reg = {
      .ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = nbufs, .bgid = 0};
  r = io_uring_register_buf_ring(&ring, &reg, 0);
  if (r < 0)
    bench_skip("no provided buffer ring (Linux < 5.19): %s", strerror(-r));
  for (unsigned b = 0; b < nbufs; b++)
    give_back(b);
  io_uring_buf_ring_advance(br, (int)returned);
  returned = 0;

  /* Set-up, not measured: every client connected and accepted before the
   * clock starts (the backlog holds them all until the accepts). */
  struct sockaddr_in addr;
  int lfd = bench_listen(&addr);
  for (int i = 0; i < nconns; i++) {
    st[i].fd = bench_connect(&addr);
    st[nconns + i].fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (st[nconns + i].fd < 0)
      bench_fail("accept: %s", strerror(errno));
  }
  close(lfd);
  for (int i = 0; i < 2 * nconns; i++)
    bench_nodelay(st[i].fd);

  uint64_t t_start = bench_ns(), t_stop = 0;
  uint64_t deadline = t_start + (uint64_t)(duration * 1e9);
  for (int i = 0; i < 2 * nconns; i++)
    arm_recv(i);
  for (int i = 0; i < nconns; i++)
    if (pings < quota)
      send_ping(i);
  while (nclosed < nconns || nsrvclosed < nconns) {
    /* One io_uring_enter a turn: what the last turn prepared goes in, and
     * it waits for the next completion. */
    r = io_uring_submit_and_wait(&ring, 1);
    if (r < 0 && r != -EINTR)
      bench_fail("io_uring_submit_and_wait: %s", strerror(-r));
    unsigned head, seen = 0;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&ring, head, cqe) {
      uint64_t u = io_uring_cqe_get_data64(cqe);
      int i = (int)(u & 0xffffffffu);
      seen++;
      if (u & SEND_BIT) {
        if (cqe->res != st[i].wlen)
          bench_fail("send: %d of %d (%s)", cqe->res, st[i].wlen,
                     cqe->res < 0 ? strerror(-cqe->res) : "short");
        continue;
      }
      if (cqe->res == -EINVAL)
        bench_skip("no multishot receive (Linux < 6.0)");
      /* -ENOBUFS (every buffer out) or an overflowing CQ ends a multishot
       * receive early: it is armed again, nothing is lost. */
      if (cqe->res == -ENOBUFS) {
        arm_recv(i);
        continue;
      }
      const char *buf = NULL;
      if (cqe->flags & IORING_CQE_F_BUFFER) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        buf = bufs + (size_t)bid * BUF_SIZE;
        give_back(bid); /* not reused before the next wait: read it first */
      }
      if (cqe->res > 0 && !(cqe->flags & IORING_CQE_F_MORE))
        arm_recv(i);
      if (i < nconns)
        on_client(i, buf, cqe->res);
      else
        on_server(i, buf, cqe->res);
    }
    io_uring_cq_advance(&ring, seen);
    io_uring_buf_ring_advance(br, (int)returned);
    returned = 0;
    /* One clock read a turn: a pong is always in flight until the stop, so
     * the wait never sleeps past it by more than a round trip. */
    if (!stopping && quota == UINT64_MAX && bench_ns() >= deadline) {
      stopping = 1;
      t_stop = bench_ns();
      pongs_at_stop = pongs;
    }
  }
  uint64_t t_end = bench_ns();

  /* Self-check: every ping answered, every byte echoed, everything closed. */
  BENCH_CHECK(pongs == pings && pings > 0);
  uint64_t total = 0;
  for (int i = 0; i < nconns; i++) {
    BENCH_CHECK(recvd[i] == sent[i]);
    total += sent[i];
  }
  BENCH_CHECK(echoed == total);
  io_uring_queue_exit(&ring);
  double rate = quota == UINT64_MAX
                    ? (double)pongs_at_stop / ((double)(t_stop - t_start) / 1e9)
                    : (double)pongs / ((double)(t_end - t_start) / 1e9);
  bench_result(name, "raw-uring", rate, "rt/s");
  free(st);
  free(bufs);
  free(br);
  free(sent);
  free(recvd);
  return 0;
}
#endif
