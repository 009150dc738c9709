/* http/raw_uring.c: the http workload's limit row on io_uring: the hello
 * server of raw_epoll.c with one liburing ring and nothing else.
 *
 * A multishot accept, a multishot receive per connection into one
 * provided-buffer ring, sends whose completions are skipped (what soon's
 * uring backend does at best); the same bytes and protocol as raw_epoll.c. */
#include "../common.h"

#ifdef BENCH_NO_URING
int main(void) { bench_skip("built without liburing"); }
#else
#include "raw.h"
#include <liburing.h>
#include <poll.h>

#define BUF_SIZE 4096
#define NBUFS 256
/* user_data: the fd in the low 32 bits, the operation above it, and for a
 * send its length (to check the completion a failure posts). */
#define OP_ACCEPT (1ull << 32)
#define OP_RECV (2ull << 32)
#define OP_SEND (3ull << 32)
#define OP_SIGNAL (4ull << 32)
#define OP_MASK (7ull << 32)

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static char *bufs;
static unsigned returned;

static struct io_uring_sqe *sqe_get(void) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
  if (!sqe) { /* full: hand what is there to the kernel and go on */
    BENCH_OK(io_uring_submit(&ring));
    sqe = io_uring_get_sqe(&ring);
    BENCH_CHECK(sqe);
  }
  return sqe;
}

static void arm_accept(int lfd) {
  struct io_uring_sqe *sqe = sqe_get();
  io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, OP_ACCEPT | (uint64_t)lfd);
}

static void arm_recv(int fd) {
  struct io_uring_sqe *sqe = sqe_get();
  io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = 0;
  io_uring_sqe_set_data64(sqe, OP_RECV | (uint64_t)fd);
}

/* The responses go from the one read-only buffer, so nothing waits for a
 * send's completion. Sends are tried in submission order as they go in;
 * only a full send buffer (never with wrk's at most 16 requests in flight)
 * could let one pass another. */
static void send_answers(int fd, size_t heads) {
  while (heads > 0) {
    size_t k = heads < BATCH ? heads : BATCH, len = k * resp_len;
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_send(sqe, fd, resp, len, MSG_NOSIGNAL | MSG_WAITALL);
    io_uring_sqe_set_data64(sqe, OP_SEND | (uint64_t)len << 35 | (uint64_t)fd);
    if (ring.features & IORING_FEAT_CQE_SKIP)
      sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    heads -= k;
  }
}

static void on_recv(int fd, const char *buf, int n) {
  send_answers(fd, count_heads(fd, buf, (size_t)n));
}

int main(void) {
  build_response();
  int sfd = stop_signalfd();

  /* The flags soon's backend asks for (completions run in our own wait
   * only), falling back where refused. */
  struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER |
                                       IORING_SETUP_DEFER_TASKRUN};
  int r = io_uring_queue_init_params(512, &ring, &p);
  if (r == -EINVAL)
    r = io_uring_queue_init(512, &ring, 0);
  if (r == -ENOSYS || r == -EPERM)
    bench_skip("io_uring unavailable: %s", strerror(-r));
  BENCH_OK(r);
  bufs = malloc((size_t)NBUFS * BUF_SIZE);
  BENCH_CHECK(bufs);
  BENCH_CHECK(posix_memalign((void **)&br, 4096,
                             NBUFS * sizeof(struct io_uring_buf)) == 0);
  io_uring_buf_ring_init(br);
  struct io_uring_buf_reg reg = {
      .ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = NBUFS, .bgid = 0};
  r = io_uring_register_buf_ring(&ring, &reg, 0);
  if (r < 0)
    bench_skip("no provided buffer ring (Linux < 5.19): %s", strerror(-r));
  for (unsigned b = 0; b < NBUFS; b++)
    io_uring_buf_ring_add(br, bufs + (size_t)b * BUF_SIZE, BUF_SIZE,
                          (unsigned short)b, io_uring_buf_ring_mask(NBUFS),
                          (int)b);
  io_uring_buf_ring_advance(br, NBUFS);

  struct sockaddr_in addr;
  int lfd = bench_listen(&addr);
  arm_accept(lfd);
  struct io_uring_sqe *sqe = sqe_get();
  io_uring_prep_poll_add(sqe, sfd, POLLIN);
  io_uring_sqe_set_data64(sqe, OP_SIGNAL);
  printf("listening on http://127.0.0.1:%d/\n", ntohs(addr.sin_port));
  fflush(stdout);

  for (;;) {
    /* One io_uring_enter a turn: the last turn's sends go in, and it waits
     * for the next completion. */
    r = io_uring_submit_and_wait(&ring, 1);
    if (r < 0 && r != -EINTR)
      bench_fail("io_uring_submit_and_wait: %s", strerror(-r));
    unsigned head, seen = 0;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&ring, head, cqe) {
      uint64_t u = io_uring_cqe_get_data64(cqe);
      int fd = (int)(u & 0xffffffffu), res = cqe->res;
      seen++;
      switch (u & OP_MASK) {
      case OP_SIGNAL:
        goto stopped;
      case OP_ACCEPT:
        if (res == -EINVAL)
          bench_skip("no multishot accept (Linux < 5.19)");
        if (res >= 0) {
          if (res >= MAX_FDS)
            bench_fail("fd %d over %d", res, MAX_FDS);
          bench_nodelay(res);
          matched[res] = 0;
          arm_recv(res);
        }
        if (!(cqe->flags & IORING_CQE_F_MORE))
          arm_accept(lfd);
        break;
      case OP_SEND: /* only failures post: a client gone, or a short send */
        if (res != -EPIPE && res != -ECONNRESET)
          bench_fail("send: %d of %llu (%s)", res,
                     (unsigned long long)(u >> 35),
                     res < 0 ? strerror(-res) : "short");
        break;
      default: /* OP_RECV */
        if (res == -EINVAL)
          bench_skip("no multishot receive (Linux < 6.0)");
        if (res == -ENOBUFS) { /* every buffer out: armed again, nothing lost */
          arm_recv(fd);
          break;
        }
        if (res <= 0) { /* EOF or a reset: the receive has ended */
          /* Sends prepared this turn go first: a later one would find the
           * fd closed, or a new connection under its number. */
          BENCH_OK(io_uring_submit(&ring));
          close(fd);
          break;
        }
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        on_recv(fd, bufs + (size_t)bid * BUF_SIZE, res);
        io_uring_buf_ring_add(br, bufs + (size_t)bid * BUF_SIZE, BUF_SIZE,
                              (unsigned short)bid,
                              io_uring_buf_ring_mask(NBUFS), (int)returned++);
        if (!(cqe->flags & IORING_CQE_F_MORE))
          arm_recv(fd);
      }
    }
    io_uring_cq_advance(&ring, seen);
    io_uring_buf_ring_advance(br, (int)returned);
    returned = 0;
  }
stopped:
  printf("SERVED %llu\n", (unsigned long long)served);
  return 0;
}
#endif
