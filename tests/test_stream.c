/* test_stream.c: stream behaviour every backend keeps, in the ring or by
 * readiness: read stop/start, buffers, deferred accepts, close, threads. */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <soon.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>

#include "helpers.h"

/* ------------------------------------------------------------ common */

typedef enum { K_TCP, K_UNIX } kind;

/* Any stream, seen as what the test needs at the moment. */
typedef union any_stream {
  soon_handle h;
  soon_stream s;
  soon_tcp tcp;
  soon_pipe pipe;
} any_stream;

static void stream_init(soon_loop *loop, any_stream *a, kind k) {
  if (k == K_UNIX)
    assert_int_equal(soon_pipe_init(loop, &a->pipe), 0);
  else
    assert_int_equal(soon_tcp_init(loop, &a->tcp), 0);
}

/* A stream on fd, adopted the way an accepted one would be. */
static void stream_adopt(soon_loop *loop, any_stream *a, kind k, int fd) {
  stream_init(loop, a, k);
  if (k == K_UNIX)
    assert_int_equal(soon_pipe_open(&a->pipe, fd), 0);
  else
    assert_int_equal(soon_tcp_open(&a->tcp, fd), 0);
}

/* Two connected sockets: over 127.0.0.1, or a unix socketpair. */
static void make_pair(kind k, int fds[2]) {
  if (k == K_UNIX) {
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds),
                     0);
    return;
  }
  tcp_pair(fds);
}

/* Bytes no dropped, repeated or reordered chunk can pass for (xorshift64*). */
static char *pattern_new(size_t n) {
  char *p = malloc(n);
  assert_non_null(p);
  uint64_t x = 0x9e3779b97f4a7c15ull ^ n;
  for (size_t i = 0; i < n; i += 8) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    uint64_t v = x * 0x2545f4914f6cdd1dull;
    memcpy(p + i, &v, n - i < 8 ? n - i : 8);
  }
  return p;
}

/* The unix socket directory of the running test, removed by the teardown
 * even when the test failed half-way. */
static char live_dir[64], live_path[128];

static int cleanup_paths(void **state) {
  (void)state;
  if (live_path[0])
    unlink(live_path);
  if (live_dir[0])
    rmdir(live_dir);
  live_dir[0] = live_path[0] = '\0';
  return 0;
}

/* Bind l to 127.0.0.1 (port 0) or a fresh socket path; *addr is what a tcp
 * client connects to. */
static void listener_bind(any_stream *l, kind k, struct sockaddr_in *addr) {
  if (k == K_UNIX) {
    strcpy(live_dir, "/tmp/soon-stream-XXXXXX");
    assert_non_null(mkdtemp(live_dir));
    snprintf(live_path, sizeof live_path, "%s/sock", live_dir);
    assert_int_equal(soon_pipe_bind(&l->pipe, live_path, 0), 0);
    return;
  }
  assert_int_equal(soon_ip4_addr("127.0.0.1", 0, addr), 0);
  assert_int_equal(soon_tcp_bind(&l->tcp, (struct sockaddr *)addr, 0), 0);
  int len = sizeof *addr;
  assert_int_equal(soon_tcp_getsockname(&l->tcp, (struct sockaddr *)addr, &len),
                   0);
  assert_int_not_equal(addr->sin_port, 0);
}

static int connect_to(soon_connect_req *req, any_stream *c, kind k,
                      const struct sockaddr_in *addr, soon_connect_cb cb) {
  if (k == K_UNIX)
    return soon_pipe_connect(req, &c->pipe, live_path, 0, cb);
  return soon_tcp_connect(req, &c->tcp, (const struct sockaddr *)addr, cb);
}

/* ------------------------------------------------------------ one flow */

/* A writer sends total pattern bytes and shuts down; the reader checks each
 * byte against the pattern at its offset, with the buffers and the stops
 * that the test chooses. */
typedef enum {
  STOP_NEVER,
  STOP_TIMER,  /* read_stop after each read callback, restart from a timer */
  STOP_PACED,  /* ... from a timer 1 ms later, as a proxy slows a fast peer */
  STOP_IDLE,   /* ... from an idle handle */
  STOP_CHECK,  /* ... from a check handle */
  STOP_INLINE, /* ... from the read callback itself, right after the stop */
  STOP_CLOSE   /* read_stop after the first callback, then close it all */
} stop_mode;

typedef enum {
  ALLOC_VARIED, /* sizes below, above and across the backends' chunks */
  ALLOC_SEVEN,
  ALLOC_WHOLE,      /* all of f->buf (WHOLE_CAP), every time */
  ALLOC_EMPTY_FIRST /* NOBUF_N empty buffers, then ALLOC_VARIED */
} alloc_mode;

/* BUF_CAP: the most ALLOC_VARIED lends, as large as the backends' chunks;
 * ALLOC_WHOLE lends all of WHOLE_CAP, so a paced reader takes many chunks a
 * callback and a long stream in few (timer-paced) cycles. */
enum { NOBUF_N = 3, BUF_CAP = 65536, WHOLE_CAP = 256 << 10 };

typedef struct flow {
  soon_loop loop;
  soon_timer guard;
  any_stream rd, wr;
  soon_timer timer;
  soon_idle idle;
  soon_check check;
  /* Unreferenced hooks around the wait: read callbacks come between them,
   * in the poll phase, on every backend (a check handle that restarts
   * reading relies on it: the wait before it must not block). */
  soon_prepare before_wait;
  soon_check after_wait;
  bool in_poll;
  stop_mode stop;
  alloc_mode alloc;
  char *src;
  size_t total, got;
  char buf[WHOLE_CAP];
  bool lent;     /* a buffer from alloc_cb not yet handed back */
  bool reading;  /* between our read_start and read_stop (or the end) */
  bool starting; /* inside soon_read_start */
  unsigned allocs, reads, empties, nobufs, eofs, restarts;
  soon_write_req wreq;
  soon_shutdown_req sreq;
  int write_calls, write_status, shut_calls, shut_status;
  int closes;
  long heap_base; /* the heap held when the run started */
} flow;

static void flow_alloc(soon_handle *h, size_t suggested, soon_buf *buf) {
  static const size_t sizes[] = {4099, BUF_CAP, 1, 16385, 700};
  flow *f = h->data;
  assert_true(suggested > 0);
  assert_true(f->reading);
  assert_false(f->lent); /* each buffer comes back before the next is asked */
  f->lent = true;
  f->allocs++;
  buf->base = f->buf;
  if (f->alloc == ALLOC_EMPTY_FIRST && f->allocs <= NOBUF_N) {
    /* Both ways of giving nothing: no base, or a base with no room. */
    buf->base = f->allocs % 2 ? NULL : f->buf;
    buf->len = 0;
  } else if (f->alloc == ALLOC_SEVEN) {
    buf->len = 7;
  } else if (f->alloc == ALLOC_WHOLE) {
    buf->len = WHOLE_CAP;
  } else {
    buf->len = sizes[f->allocs % (sizeof sizes / sizeof *sizes)];
  }
}

static void flow_read(soon_stream *s, ssize_t n, const soon_buf *buf);

static void flow_start(flow *f) {
  f->reading = true;
  f->starting = true;
  assert_int_equal(soon_read_start(&f->rd.s, flow_alloc, flow_read), 0);
  f->starting = false;
}

static void flow_closed(soon_handle *h) { ((flow *)h->data)->closes++; }

static void flow_close_all(flow *f) {
  soon_handle *hs[] = {&f->rd.h,
                       &f->wr.h,
                       (soon_handle *)&f->timer,
                       (soon_handle *)&f->idle,
                       (soon_handle *)&f->check,
                       (soon_handle *)&f->before_wait,
                       (soon_handle *)&f->after_wait};
  for (size_t i = 0; i < sizeof hs / sizeof *hs; i++)
    assert_int_equal(soon_close(hs[i], flow_closed), 0);
}

static void flow_timer(soon_timer *t) {
  flow *f = t->data;
  if (f->stop == STOP_CLOSE) {
    flow_close_all(f);
    return;
  }
  f->restarts++;
  flow_start(f);
}

static void flow_idle(soon_idle *i) {
  flow *f = i->data;
  assert_int_equal(soon_idle_stop(i), 0);
  f->restarts++;
  flow_start(f);
}

static void flow_check(soon_check *c) {
  flow *f = c->data;
  assert_int_equal(soon_check_stop(c), 0);
  f->restarts++;
  flow_start(f);
}

static void flow_before_wait(soon_prepare *p) {
  ((flow *)p->data)->in_poll = true;
}

static void flow_after_wait(soon_check *c) {
  ((flow *)c->data)->in_poll = false;
}

static void flow_read(soon_stream *s, ssize_t n, const soon_buf *buf) {
  flow *f = s->data;
  assert_false(f->starting); /* never from inside soon_read_start */
  assert_true(f->in_poll);
  assert_true(f->reading); /* never while stopped, nothing after the end */
  /* The buffer lent comes back, but the end may come with none at all
   * (as in libuv), when no alloc_cb preceded it. */
  if (n != SOON_EOF || buf->base)
    assert_true(f->lent);
  f->lent = false;
  f->reads++;
  if (n == -ENOBUFS) {
    assert_int_equal(f->alloc, ALLOC_EMPTY_FIRST);
    assert_int_equal(buf->len, 0);
    f->nobufs++;
    return; /* still reading: the bytes wait for the next buffer */
  }
  if (n == SOON_EOF) {
    f->eofs++;
    f->reading = false;
    assert_int_equal(f->got, f->total);
    flow_close_all(f);
    return;
  }
  assert_true(n >= 0);
  if (n == 0) {
    f->empties++;
  } else {
    assert_ptr_equal(buf->base, f->buf);
    assert_true((size_t)n <= buf->len);
    assert_true(f->got + (size_t)n <= f->total);
    assert_memory_equal(buf->base, f->src + f->got, (size_t)n);
    f->got += (size_t)n;
  }
  if (f->stop == STOP_NEVER)
    return;
  assert_int_equal(soon_read_stop(s), 0);
  f->reading = false;
  switch (f->stop) {
  case STOP_TIMER:
  case STOP_CLOSE:
    assert_int_equal(soon_timer_start(&f->timer, flow_timer, 0, 0), 0);
    break;
  case STOP_PACED:
    assert_int_equal(soon_timer_start(&f->timer, flow_timer, 1, 0), 0);
    break;
  case STOP_IDLE:
    assert_int_equal(soon_idle_start(&f->idle, flow_idle), 0);
    break;
  case STOP_CHECK:
    assert_int_equal(soon_check_start(&f->check, flow_check), 0);
    break;
  case STOP_INLINE:
    f->restarts++;
    flow_start(f);
    break;
  default:
    fail();
  }
}

static void flow_written(soon_write_req *req, int status) {
  flow *f = req->data;
  f->write_calls++;
  f->write_status = status;
}

static void flow_shut(soon_shutdown_req *req, int status) {
  flow *f = req->data;
  f->shut_calls++;
  f->shut_status = status;
}

/* Set up f (on the heap: it holds a loop and a 256 KiB buffer) and run it to
 * the end. The caller checks what it needs, then calls flow_free. */
static flow *flow_run(kind k, size_t total, stop_mode stop, alloc_mode alloc) {
  flow *f = calloc(1, sizeof *f);
  assert_non_null(f);
  f->stop = stop;
  f->alloc = alloc;
  f->total = total;
  f->src = pattern_new(total);
  f->write_status = f->shut_status = 1;
  loop_init_checked(&f->loop);
  guard_start(&f->loop, &f->guard);
  int fds[2];
  make_pair(k, fds);
  stream_adopt(&f->loop, &f->rd, k, fds[0]);
  stream_adopt(&f->loop, &f->wr, k, fds[1]);
  assert_int_equal(soon_timer_init(&f->loop, &f->timer), 0);
  assert_int_equal(soon_idle_init(&f->loop, &f->idle), 0);
  assert_int_equal(soon_check_init(&f->loop, &f->check), 0);
  assert_int_equal(soon_prepare_init(&f->loop, &f->before_wait), 0);
  assert_int_equal(soon_check_init(&f->loop, &f->after_wait), 0);
  assert_int_equal(soon_prepare_start(&f->before_wait, flow_before_wait), 0);
  assert_int_equal(soon_check_start(&f->after_wait, flow_after_wait), 0);
  soon_unref((soon_handle *)&f->before_wait);
  soon_unref((soon_handle *)&f->after_wait);
  f->before_wait.data = f->after_wait.data = f;
  f->rd.h.data = f->wr.h.data = f;
  f->timer.data = f->idle.data = f->check.data = f;
  f->wreq.data = f->sreq.data = f;
  flow_start(f);
  soon_buf b = {f->src, total};
  assert_int_equal(soon_write(&f->wreq, &f->wr.s, &b, 1, flow_written), 0);
  assert_int_equal(soon_shutdown(&f->sreq, &f->wr.s, flow_shut), 0);
  f->heap_base = soon_test_heap_live;
  soon_test_heap_peak = f->heap_base;
  assert_int_equal(soon_run(&f->loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(f->closes, 7);
  assert_false(f->lent);
  return f;
}

static void flow_free(flow *f) {
  guard_close(&f->loop, &f->guard);
  loop_close_checked(&f->loop);
  free(f->src);
  free(f);
}

/* The whole stream arrived, in order, then one EOF, and the writer's
 * callbacks said success. */
static void flow_check_complete(flow *f) {
  assert_int_equal(f->got, f->total);
  assert_int_equal(f->eofs, 1);
  assert_int_equal(f->write_calls, 1);
  assert_int_equal(f->write_status, 0);
  assert_int_equal(f->shut_calls, 1);
  assert_int_equal(f->shut_status, 0);
}

/* 1. read_stop after every read callback, read_start again a little later:
 * whatever the backend took in meanwhile (in the ring: received after the
 * stop, before its cancel landed) comes next, once, in order. */
static void run_stop_start(kind k, stop_mode stop) {
  size_t total = 1u << 20;
  flow *f = flow_run(k, total, stop, ALLOC_VARIED);
  flow_check_complete(f);
  /* Every callback but the EOF was followed by a restart. */
  assert_int_equal(f->restarts, f->reads - 1);
  assert_true(f->restarts >= total / BUF_CAP);
  flow_free(f);
}

static void test_stop_start_timer(void **state) {
  (void)state;
  run_stop_start(K_TCP, STOP_TIMER);
}

static void test_stop_start_idle(void **state) {
  (void)state;
  run_stop_start(K_TCP, STOP_IDLE);
}

static void test_stop_start_check(void **state) {
  (void)state;
  run_stop_start(K_TCP, STOP_CHECK);
}

static void test_stop_start_inline(void **state) {
  (void)state;
  run_stop_start(K_TCP, STOP_INLINE);
}

/* A reader that stops after every callback and restarts 1 ms later reads
 * far slower than the peer writes: the peer must be held back by the
 * kernel's socket buffers, not by soon buffering the stream. Before, on
 * uring each restart armed the receive again with bytes still stashed, so
 * the stash grew by up to the whole buffer ring a cycle (a 1 GiB stream
 * took ~1 GiB). The stash is now at most what one wait delivers after a
 * stop, the 4 MiB buffer ring (docs/uring.md); 8 MiB leaves room for that
 * and the loop's own small allocations, and a stash that grows with the
 * stream passes it within a few cycles. */
enum { PACED_HEAP_BOUND = 8 << 20 };

static void test_stop_start_paced_bounded(void **state) {
  (void)state;
  /* Sanitizer runs are several times slower; they set SOON_TEST_QUICK. */
  size_t total = getenv("SOON_TEST_QUICK") ? 32u << 20 : 256u << 20;
  flow *f = flow_run(K_TCP, total, STOP_PACED, ALLOC_WHOLE);
  flow_check_complete(f);
  assert_int_equal(f->restarts, f->reads - 1);
  long held = soon_test_heap_peak - f->heap_base;
  if (held >= PACED_HEAP_BOUND)
    fail_msg("soon held %ld bytes for one paced stream", held);
  flow_free(f);
}

static void test_unix_stop_start_timer(void **state) {
  (void)state;
  run_stop_start(K_UNIX, STOP_TIMER);
}

static void test_unix_stop_start_check(void **state) {
  (void)state;
  run_stop_start(K_UNIX, STOP_CHECK);
}

/* Stopped after the first callback with more on the way, then closed: no
 * callback after the stop, and (under ASan) nothing kept is leaked. */
static void run_stop_then_close(kind k) {
  flow *f = flow_run(k, 1u << 20, STOP_CLOSE, ALLOC_VARIED);
  assert_int_equal(f->reads, 1);
  assert_int_equal(f->eofs, 0);
  assert_int_equal(f->write_calls, 1);
  assert_int_equal(f->shut_calls, 1);
  flow_free(f);
}

static void test_stop_then_close(void **state) {
  (void)state;
  run_stop_then_close(K_TCP);
}

static void test_unix_stop_then_close(void **state) {
  (void)state;
  run_stop_then_close(K_UNIX);
}

/* 2. Buffers far smaller than what arrives at once. */
static void run_small_buffers(kind k) {
  size_t total = 100u << 10;
  flow *f = flow_run(k, total, STOP_NEVER, ALLOC_SEVEN);
  flow_check_complete(f);
  assert_true(f->reads - f->empties - 1 >= (total + 6) / 7);
  flow_free(f);
}

static void test_small_buffers(void **state) {
  (void)state;
  run_small_buffers(K_TCP);
}

static void test_unix_small_buffers(void **state) {
  (void)state;
  run_small_buffers(K_UNIX);
}

/* 3. Empty buffers: one -ENOBUFS each, the stream still reading, and the
 * bytes wait for the next buffer. */
static void run_empty_buffers(kind k) {
  flow *f = flow_run(k, 100u << 10, STOP_NEVER, ALLOC_EMPTY_FIRST);
  flow_check_complete(f);
  assert_int_equal(f->nobufs, NOBUF_N);
  assert_true(f->allocs > NOBUF_N);
  flow_free(f);
}

static void test_empty_buffers(void **state) {
  (void)state;
  run_empty_buffers(K_TCP);
}

static void test_unix_empty_buffers(void **state) {
  (void)state;
  run_empty_buffers(K_UNIX);
}

/* Bytes and the end kept while stopped (in the ring: they arrived in the
 * wait that delivered the first read), then read again with an empty
 * buffer; the -ENOBUFS callback closes the stream and the close callback
 * reuses its memory, as it may: the loop must not touch it again. */
typedef struct reuse {
  soon_loop loop;
  soon_timer guard, timer;
  soon_idle idle;
  soon_pipe *rd;
  char buf[10];
  int reads, nobufs, closes, spins;
} reuse;

static void reuse_alloc(soon_handle *h, size_t suggested, soon_buf *buf) {
  reuse *r = h->data;
  (void)suggested;
  buf->base = r->buf;
  buf->len = r->reads == 1 ? 0 : sizeof r->buf;
}

static void reuse_closed(soon_handle *h) {
  reuse *r = h->data;
  r->closes++;
  memset(h, 0xa5, sizeof(soon_pipe)); /* the memory is ours again */
}

static void reuse_timer(soon_timer *t);

static void reuse_read(soon_stream *s, ssize_t n, const soon_buf *buf) {
  reuse *r = s->data;
  (void)buf;
  if (n == 0)
    return; /* a read that found nothing yet (chaos mode makes them) */
  r->reads++;
  if (r->reads == 1) {
    /* The buffer's 10 at most: a read may take fewer (chaos mode). */
    assert_true(n > 0 && n <= 10);
    assert_int_equal(soon_read_stop(s), 0);
    assert_int_equal(soon_timer_start(&r->timer, reuse_timer, 0, 0), 0);
    return;
  }
  assert_int_equal(r->reads, 2);
  assert_int_equal(n, -ENOBUFS);
  r->nobufs++;
  assert_int_equal(soon_close((soon_handle *)s, reuse_closed), 0);
}

static void reuse_timer(soon_timer *t) {
  reuse *r = t->data;
  assert_int_equal(
      soon_read_start((soon_stream *)r->rd, reuse_alloc, reuse_read), 0);
}

static void reuse_spin(soon_idle *i) { /* a few more iterations */
  reuse *r = i->data;
  if (++r->spins == 5) {
    assert_int_equal(soon_close((soon_handle *)&r->timer, NULL), 0);
    assert_int_equal(soon_close((soon_handle *)i, NULL), 0);
  }
}

static void test_unix_close_on_nobufs_reuse(void **state) {
  (void)state;
  reuse *r = calloc(1, sizeof *r);
  assert_non_null(r);
  r->rd = malloc(sizeof *r->rd);
  assert_non_null(r->rd);
  loop_init_checked(&r->loop);
  guard_start(&r->loop, &r->guard);
  int fds[2];
  make_pair(K_UNIX, fds);
  assert_int_equal(soon_pipe_init(&r->loop, r->rd), 0);
  assert_int_equal(soon_pipe_open(r->rd, fds[0]), 0);
  assert_int_equal(soon_timer_init(&r->loop, &r->timer), 0);
  assert_int_equal(soon_idle_init(&r->loop, &r->idle), 0);
  r->rd->data = r->timer.data = r->idle.data = r;
  char data[100];
  memset(data, 'x', sizeof data);
  assert_int_equal(write(fds[1], data, sizeof data), sizeof data);
  assert_int_equal(shutdown(fds[1], SHUT_WR), 0);
  assert_int_equal(
      soon_read_start((soon_stream *)r->rd, reuse_alloc, reuse_read), 0);
  assert_int_equal(soon_idle_start(&r->idle, reuse_spin), 0);
  assert_int_equal(soon_run(&r->loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(r->reads, 2);
  assert_int_equal(r->nobufs, 1);
  assert_int_equal(r->closes, 1);
  close_fd(fds[1]);
  guard_close(&r->loop, &r->guard);
  loop_close_checked(&r->loop);
  free(r->rd);
  free(r);
}

/* ------------------------------------------------------------ accepting */

/* 4. NCONN clients connect, one after the other, and each sends its index;
 * the listener takes none of them until all are connected (more than the
 * ring keeps accepted behind accepted_fd, so the last ones wait in the
 * kernel), then takes them all: first from a timer until -EAGAIN, then from
 * each connection callback. */
enum { NCONN = 100 };

typedef struct acceptor {
  soon_loop loop;
  soon_timer guard;
  kind k;
  struct sockaddr_in addr;
  any_stream listener;
  soon_timer timer;
  any_stream clients[NCONN];
  soon_connect_req creqs[NCONN];
  soon_write_req wreqs[NCONN];
  char ids[NCONN];
  any_stream servers[NCONN + 1]; /* one spare, for the -EAGAIN at the end */
  bool inited[NCONN + 1];
  char rbufs[NCONN + 1][8];
  bool seen[NCONN];
  int connected, written, conn_cbs, conn_cbs_at_timer, accepted, nseen;
  bool accepting, timer_started;
  int closes;
} acceptor;

static void acc_alloc(soon_handle *h, size_t suggested, soon_buf *buf) {
  acceptor *a = h->data;
  (void)suggested;
  int i = (int)((any_stream *)h - a->servers);
  buf->base = a->rbufs[i];
  buf->len = sizeof a->rbufs[i];
}

static int acc_take(acceptor *a);

static void acc_closed(soon_handle *h) { ((acceptor *)h->data)->closes++; }

static void acc_close_all(acceptor *a) {
  /* Every connection was taken: none waits (this inits the spare). */
  assert_int_equal(a->accepted, NCONN);
  assert_int_equal(acc_take(a), -EAGAIN);
  assert_int_equal(soon_close(&a->listener.h, acc_closed), 0);
  assert_int_equal(soon_close((soon_handle *)&a->timer, acc_closed), 0);
  for (int i = 0; i < NCONN; i++)
    assert_int_equal(soon_close(&a->clients[i].h, acc_closed), 0);
  for (int i = 0; i <= NCONN; i++)
    if (a->inited[i])
      assert_int_equal(soon_close(&a->servers[i].h, acc_closed), 0);
}

static void acc_read(soon_stream *s, ssize_t n, const soon_buf *buf) {
  acceptor *a = s->data;
  if (n == 0)
    return;
  assert_int_equal(n, 1); /* one byte each, and no EOF: clients stay open */
  int id = (unsigned char)buf->base[0];
  assert_true(id < NCONN);
  assert_false(a->seen[id]);
  a->seen[id] = true;
  assert_int_equal(soon_read_stop(s), 0);
  if (++a->nseen == NCONN)
    acc_close_all(a);
}

/* soon_accept into the next server handle: 0 or its error. */
static int acc_take(acceptor *a) {
  assert_true(a->accepted <= NCONN);
  any_stream *srv = &a->servers[a->accepted];
  if (!a->inited[a->accepted]) {
    stream_init(&a->loop, srv, a->k);
    srv->h.data = a;
    a->inited[a->accepted] = true;
  }
  int r = soon_accept(&a->listener.s, &srv->s);
  if (r == 0) {
    a->accepted++;
    assert_int_equal(soon_read_start(&srv->s, acc_alloc, acc_read), 0);
  }
  return r;
}

static void acc_timer(soon_timer *t) {
  acceptor *a = t->data;
  /* One callback for the connection that waits; the others are not told
   * until it is taken. */
  a->conn_cbs_at_timer = a->conn_cbs;
  a->accepting = true;
  int r;
  while ((r = acc_take(a)) == 0)
    ;
  assert_int_equal(r, -EAGAIN);
  assert_true(a->accepted >= 1);
}

static void acc_maybe_start(acceptor *a) {
  if (a->connected == NCONN && a->conn_cbs > 0 && !a->timer_started) {
    a->timer_started = true;
    assert_int_equal(soon_timer_start(&a->timer, acc_timer, 0, 0), 0);
  }
}

static void acc_connection(soon_stream *server, int status) {
  acceptor *a = server->data;
  assert_int_equal(status, 0);
  a->conn_cbs++;
  assert_true(a->conn_cbs <= NCONN);
  if (a->accepting)
    assert_int_equal(acc_take(a), 0);
  else
    acc_maybe_start(a);
}

static void acc_written(soon_write_req *req, int status) {
  acceptor *a = req->data;
  assert_int_equal(status, 0);
  a->written++;
}

static void acc_connected(soon_connect_req *req, int status);

static void acc_connect(acceptor *a, int i) {
  a->ids[i] = (char)i;
  stream_init(&a->loop, &a->clients[i], a->k);
  a->clients[i].h.data = a->creqs[i].data = a;
  assert_int_equal(
      connect_to(&a->creqs[i], &a->clients[i], a->k, &a->addr, acc_connected),
      0);
}

static void acc_connected(soon_connect_req *req, int status) {
  acceptor *a = req->data;
  assert_int_equal(status, 0);
  int i = (int)(req - a->creqs);
  assert_int_equal(i, a->connected);
  a->connected++;
  soon_buf b = {&a->ids[i], 1};
  a->wreqs[i].data = a;
  assert_int_equal(
      soon_write(&a->wreqs[i], &a->clients[i].s, &b, 1, acc_written), 0);
  /* One at a time: the listener sees them across many iterations, not all
   * in one (where the ring would take them all at once). */
  if (a->connected < NCONN)
    acc_connect(a, a->connected);
  acc_maybe_start(a);
}

static void run_accept_later(kind k) {
  acceptor *a = calloc(1, sizeof *a);
  assert_non_null(a);
  a->k = k;
  loop_init_checked(&a->loop);
  guard_start(&a->loop, &a->guard);
  stream_init(&a->loop, &a->listener, k);
  listener_bind(&a->listener, k, &a->addr);
  assert_int_equal(soon_listen(&a->listener.s, 128, acc_connection), 0);
  a->listener.h.data = a;
  assert_int_equal(soon_timer_init(&a->loop, &a->timer), 0);
  a->timer.data = a;
  /* Nothing waits yet. */
  assert_int_equal(acc_take(a), -EAGAIN);
  acc_connect(a, 0);
  assert_int_equal(soon_run(&a->loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(a->connected, NCONN);
  assert_int_equal(a->written, NCONN);
  assert_int_equal(a->conn_cbs_at_timer, 1);
  assert_int_equal(a->conn_cbs, NCONN);
  assert_int_equal(a->accepted, NCONN);
  assert_int_equal(a->nseen, NCONN);
  for (int i = 0; i < NCONN; i++)
    assert_true(a->seen[i]);
  /* The listener, the timer, the clients and every server handle made. */
  assert_int_equal(a->closes, 2 + NCONN + NCONN + 1);
  guard_close(&a->loop, &a->guard);
  loop_close_checked(&a->loop);
  free(a);
}

static void test_accept_later(void **state) {
  (void)state;
  run_accept_later(K_TCP);
}

static void test_unix_accept_later(void **state) {
  (void)state;
  run_accept_later(K_UNIX);
}

/* ------------------------------------------------------------ close */

/* 5. Closed from its read callback, with a receive armed and a write the
 * peer will never read: the write callbacks run once each, -ECANCELED, in
 * order, before the close callback. */
enum { BIG_WRITE = 8 << 20 };

typedef struct closer {
  any_stream a;
  int peer;
  char *big;
  char rbuf[256];
  soon_write_req w[2];
  int wcalls[2], wstatus[2], worder[2], nw;
  int reads, closes, wcalls_at_close;
  size_t queued_at_close;
} closer;

static void closer_alloc(soon_handle *h, size_t suggested, soon_buf *buf) {
  closer *c = h->data;
  (void)suggested;
  buf->base = c->rbuf;
  buf->len = sizeof c->rbuf;
}

static void closer_closed(soon_handle *h) {
  closer *c = h->data;
  c->closes++;
  c->wcalls_at_close = c->nw;
}

static void closer_read(soon_stream *s, ssize_t n, const soon_buf *buf) {
  closer *c = s->data;
  (void)buf;
  if (n == 0)
    return;
  assert_int_equal(c->reads, 0); /* nothing after the close */
  c->reads++;
  assert_int_equal(n, 1);
  c->queued_at_close = soon_stream_write_queue_size(s);
  assert_int_equal(soon_close(&c->a.h, closer_closed), 0);
  assert_int_equal(c->nw, 0); /* the callbacks wait for the loop */
}

static void closer_written(soon_write_req *req, int status) {
  closer *c = req->data;
  int i = (int)(req - c->w);
  assert_int_equal(c->closes, 0);
  c->wcalls[i]++;
  c->wstatus[i] = status;
  c->worder[c->nw++] = i;
}

static void run_close_in_flight(kind k) {
  soon_loop loop;
  soon_timer guard;
  closer c;
  memset(&c, 0, sizeof c);
  c.big = calloc(1, BIG_WRITE);
  assert_non_null(c.big);
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  int fds[2];
  make_pair(k, fds);
  c.peer = fds[1];
  stream_adopt(&loop, &c.a, k, fds[0]);
  c.a.h.data = &c;
  assert_int_equal(soon_read_start(&c.a.s, closer_alloc, closer_read), 0);
  soon_buf big = {c.big, BIG_WRITE}, tail = {(char *)"tail", 4};
  c.w[0].data = c.w[1].data = &c;
  assert_int_equal(soon_write(&c.w[0], &c.a.s, &big, 1, closer_written), 0);
  assert_int_equal(soon_write(&c.w[1], &c.a.s, &tail, 1, closer_written), 0);
  write_byte(c.peer); /* what the read callback closes on */
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(c.reads, 1);
  /* The peer read nothing: the kernel cannot have taken 8 MiB. */
  assert_true(c.queued_at_close > 4);
  assert_int_equal(c.closes, 1);
  assert_int_equal(c.wcalls_at_close, 2);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(c.wcalls[i], 1);
    assert_int_equal(c.wstatus[i], -ECANCELED);
    assert_int_equal(c.worder[i], i);
  }
  close_fd(c.peer);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
  free(c.big);
}

static void test_close_in_flight(void **state) {
  (void)state;
  run_close_in_flight(K_TCP);
}

static void test_unix_close_in_flight(void **state) {
  (void)state;
  run_close_in_flight(K_UNIX);
}

/* 5b. Closed from a write callback while the next write's callback is owed
 * too (written at once by readiness; in the ring, cancelled by the close):
 * that one runs in the close phase, after the iteration's check handles and
 * before the close callback, never straight after soon_close. UDP sends keep
 * the same rule (test_udp.c). */
typedef struct owed {
  any_stream a;
  int peer;
  soon_write_req w[2];
  soon_check check;
  int checks, checks_at[2], status[2], calls, closes, calls_at_close;
} owed;

static void owed_check(soon_check *c) { ((owed *)c->data)->checks++; }

static void owed_closed(soon_handle *h) {
  owed *o = h->data;
  o->closes++;
  o->calls_at_close = o->calls;
}

static void owed_written(soon_write_req *req, int status) {
  owed *o = req->data;
  int i = (int)(req - o->w);
  o->checks_at[i] = o->checks;
  o->status[i] = status;
  o->calls++;
  if (i == 0)
    assert_int_equal(soon_close(&o->a.h, owed_closed), 0);
}

static void run_close_from_write(kind k) {
  soon_loop loop;
  soon_timer guard;
  owed o;
  memset(&o, 0, sizeof o);
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  int fds[2];
  make_pair(k, fds);
  o.peer = fds[1];
  stream_adopt(&loop, &o.a, k, fds[0]);
  o.a.h.data = o.w[0].data = o.w[1].data = o.check.data = &o;
  assert_int_equal(soon_check_init(&loop, &o.check), 0);
  assert_int_equal(soon_check_start(&o.check, owed_check), 0);
  soon_unref((soon_handle *)&o.check);
  soon_buf b = {(char *)"ab", 1}, c = {(char *)"ab" + 1, 1};
  assert_int_equal(soon_write(&o.w[0], &o.a.s, &b, 1, owed_written), 0);
  assert_int_equal(soon_write(&o.w[1], &o.a.s, &c, 1, owed_written), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(o.calls, 2);
  assert_int_equal(o.status[0], 0);
  assert_true(o.status[1] == 0 || o.status[1] == -ECANCELED);
  assert_true(o.checks_at[1] > o.checks_at[0]);
  assert_int_equal(o.closes, 1);
  assert_int_equal(o.calls_at_close, 2);
  assert_int_equal(soon_close((soon_handle *)&o.check, NULL), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  close_fd(o.peer);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

static void test_close_from_write(void **state) {
  (void)state;
  run_close_from_write(K_TCP);
}

static void test_unix_close_from_write(void **state) {
  (void)state;
  run_close_from_write(K_UNIX);
}

/* ------------------------------------------------------------ refilling */

/* 6. A writer that refills from its write callback (the normal way to
 * stream) gets a bounded number of callbacks per loop iteration, however
 * fast the kernel takes the bytes: the rest of the loop gets its turn. The
 * peer reads everything, in order. */
enum { REFILLS = 2000, REFILL_BOUND = 8 };

typedef struct refiller {
  any_stream a, peer;
  char rbuf[64];
  size_t got;
  soon_prepare tick;
  soon_write_req w;
  char byte;
  unsigned written, this_iteration, most;
} refiller;

static void refill_tick(soon_prepare *p) {
  refiller *r = p->data;
  r->this_iteration = 0;
}

static void refill_written(soon_write_req *req, int status);

static void refill_alloc(soon_handle *h, size_t suggested, soon_buf *buf) {
  refiller *r = h->data;
  (void)suggested;
  buf->base = r->rbuf;
  buf->len = sizeof r->rbuf;
}

/* The peer reads as the bytes come (a unix socket's buffer fills after a
 * few hundred one-byte writes), and checks their order. */
static void refill_read(soon_stream *s, ssize_t n, const soon_buf *buf) {
  refiller *r = s->data;
  if (n == SOON_EOF) {
    assert_int_equal(r->got, REFILLS);
    assert_int_equal(soon_close(&r->peer.h, NULL), 0);
    return;
  }
  assert_true(n >= 0);
  for (ssize_t i = 0; i < n; i++, r->got++)
    assert_int_equal((unsigned char)buf->base[i], r->got % 251);
}

static void refill_send(refiller *r) {
  r->byte = (char)(r->written % 251);
  soon_buf b = {&r->byte, 1};
  assert_int_equal(soon_write(&r->w, &r->a.s, &b, 1, refill_written), 0);
}

static void refill_written(soon_write_req *req, int status) {
  refiller *r = req->data;
  assert_int_equal(status, 0);
  r->written++;
  if (++r->this_iteration > r->most)
    r->most = r->this_iteration;
  if (r->written < REFILLS)
    refill_send(r);
  else
    assert_int_equal(soon_close(&r->a.h, NULL), 0);
}

static void run_refill(kind k) {
  soon_loop loop;
  soon_timer guard;
  refiller r;
  memset(&r, 0, sizeof r);
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  int fds[2];
  make_pair(k, fds);
  stream_adopt(&loop, &r.a, k, fds[0]);
  stream_adopt(&loop, &r.peer, k, fds[1]);
  r.a.h.data = r.peer.h.data = r.w.data = r.tick.data = &r;
  assert_int_equal(soon_read_start(&r.peer.s, refill_alloc, refill_read), 0);
  assert_int_equal(soon_prepare_init(&loop, &r.tick), 0);
  assert_int_equal(soon_prepare_start(&r.tick, refill_tick), 0);
  soon_unref((soon_handle *)&r.tick);
  refill_send(&r);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(r.written, REFILLS);
  assert_int_equal(r.got, REFILLS);
  assert_true(r.most >= 1 && r.most <= REFILL_BOUND);
  assert_int_equal(soon_close((soon_handle *)&r.tick, NULL), 0);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

static void test_refill_bounded(void **state) {
  (void)state;
  run_refill(K_TCP);
}

static void test_unix_refill_bounded(void **state) {
  (void)state;
  run_refill(K_UNIX);
}

/* Many writes queued at once, with every realloc failing meanwhile (the
 * ring gathers queued writes into one send in memory it grows): each write
 * still goes out whole, in order, and calls back once with 0. */
enum { QUEUED_N = 64, QUEUED_LEN = 3000 };

typedef struct queued {
  any_stream a, peer;
  char *src;
  char rbuf[4096];
  size_t got;
  soon_write_req w[QUEUED_N];
  int calls;
} queued;

static void queued_alloc(soon_handle *h, size_t suggested, soon_buf *buf) {
  queued *q = h->data;
  (void)suggested;
  buf->base = q->rbuf;
  buf->len = sizeof q->rbuf;
}

static void queued_read(soon_stream *s, ssize_t n, const soon_buf *buf) {
  queued *q = s->data;
  if (n == SOON_EOF) {
    assert_int_equal(q->got, (size_t)QUEUED_N * QUEUED_LEN);
    assert_int_equal(soon_close(&q->peer.h, NULL), 0);
    return;
  }
  assert_true(n >= 0);
  assert_memory_equal(buf->base, q->src + q->got, (size_t)n);
  q->got += (size_t)n;
}

static void queued_written(soon_write_req *req, int status) {
  queued *q = req->data;
  assert_int_equal(status, 0);
  assert_int_equal(req - q->w, q->calls); /* in order */
  if (++q->calls == QUEUED_N)
    assert_int_equal(soon_close(&q->a.h, NULL), 0);
}

static void run_queued_no_memory(kind k) {
  soon_loop loop;
  soon_timer guard;
  queued q;
  memset(&q, 0, sizeof q);
  q.src = pattern_new((size_t)QUEUED_N * QUEUED_LEN);
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  int fds[2];
  make_pair(k, fds);
  stream_adopt(&loop, &q.a, k, fds[0]);
  stream_adopt(&loop, &q.peer, k, fds[1]);
  q.a.h.data = q.peer.h.data = &q;
  assert_int_equal(soon_read_start(&q.peer.s, queued_alloc, queued_read), 0);
  soon_test_realloc_failures = 1 << 20;
  for (int i = 0; i < QUEUED_N; i++) {
    /* Two buffers a write: the gathered send mixes requests and pieces. */
    soon_buf b[2] = {
        {q.src + (size_t)i * QUEUED_LEN, 1000},
        {q.src + (size_t)i * QUEUED_LEN + 1000, QUEUED_LEN - 1000}};
    q.w[i].data = &q;
    assert_int_equal(soon_write(&q.w[i], &q.a.s, b, 2, queued_written), 0);
  }
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  soon_test_realloc_failures = 0;
  assert_int_equal(q.calls, QUEUED_N);
  assert_int_equal(q.got, (size_t)QUEUED_N * QUEUED_LEN);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
  free(q.src);
}

static void test_queued_no_memory(void **state) {
  (void)state;
  run_queued_no_memory(K_TCP);
}

static void test_unix_queued_no_memory(void **state) {
  (void)state;
  run_queued_no_memory(K_UNIX);
}

/* ------------------------------------------------------------ threads */

/* 7. A loop made in this thread and first run in another, where a tcp
 * echo of a few bytes happens. Handles are made here or there. cmocka
 * cannot fail from another thread: the first failed check there is kept
 * (its line) and asserted here after the join. */
#define ECHO_MSG "hello from another thread"
enum { ECHO_LEN = sizeof ECHO_MSG - 1 };

typedef struct tloop {
  soon_loop loop;
  soon_timer guard;
  soon_tcp listener, server, client;
  soon_connect_req creq;
  soon_write_req cw, sw[ECHO_LEN];
  int nsw, nwritten; /* writes made by the server; callbacks of all */
  bool closed;
  struct sockaddr_in addr;
  char rbuf[64];
  char echo[ECHO_LEN]; /* what the server got, written back from here */
  size_t nechoed;
  char got[ECHO_LEN];
  size_t ngot;
  pthread_t thread;
  bool setup_there;
  soon_io io; /* with watch_here: started and stopped here, closed there */
  int iofds[2];
  int fail_line;
  bool guard_fired;
  int closes, run_result, connect_status, conn_status;
} tloop;

#define TCHECK(t, cond)                                                        \
  do {                                                                         \
    if (!(cond) && !(t)->fail_line)                                            \
      (t)->fail_line = __LINE__;                                               \
  } while (0)

static void tl_on_thread(tloop *t) {
  TCHECK(t, pthread_equal(pthread_self(), t->thread));
}

static void tl_alloc(soon_handle *h, size_t suggested, soon_buf *buf) {
  tloop *t = h->data;
  (void)suggested;
  tl_on_thread(t);
  buf->base = t->rbuf;
  buf->len = sizeof t->rbuf;
}

static void tl_closed(soon_handle *h) {
  tloop *t = h->data;
  tl_on_thread(t);
  t->closes++;
}

static void tl_close_all(tloop *t) {
  TCHECK(t, soon_close((soon_handle *)&t->listener, tl_closed) == 0);
  TCHECK(t, soon_close((soon_handle *)&t->server, tl_closed) == 0);
  TCHECK(t, soon_close((soon_handle *)&t->client, tl_closed) == 0);
  TCHECK(t, soon_close((soon_handle *)&t->guard, tl_closed) == 0);
}

static void tl_guard(soon_timer *g) {
  tloop *t = g->data;
  t->guard_fired = true;
  soon_stop(&t->loop);
}

/* Once the echo is back and every write has called back: the last echo's
 * callback may run after the client read its bytes (soon orders neither
 * way; chaos mode shows it), and closing first would cancel it. */
static void tl_maybe_close(tloop *t) {
  if (!t->closed && t->ngot == ECHO_LEN && t->nwritten == t->nsw + 1) {
    t->closed = true;
    tl_close_all(t);
  }
}

static void tl_written(soon_write_req *req, int status) {
  tloop *t = req->data;
  tl_on_thread(t);
  TCHECK(t, status == 0);
  t->nwritten++;
  tl_maybe_close(t);
}

static void tl_server_read(soon_stream *s, ssize_t n, const soon_buf *buf) {
  tloop *t = s->data;
  tl_on_thread(t);
  if (n == 0)
    return;
  TCHECK(t,
         n > 0 && t->nechoed + (size_t)n <= ECHO_LEN && t->nsw < (int)ECHO_LEN);
  if (t->fail_line)
    return;
  memcpy(t->echo + t->nechoed, buf->base, (size_t)n);
  soon_buf b = {t->echo + t->nechoed, (size_t)n};
  t->nechoed += (size_t)n;
  t->sw[t->nsw].data = t;
  TCHECK(t, soon_write(&t->sw[t->nsw++], s, &b, 1, tl_written) == 0);
}

static void tl_client_read(soon_stream *s, ssize_t n, const soon_buf *buf) {
  tloop *t = s->data;
  tl_on_thread(t);
  if (n == 0)
    return;
  TCHECK(t, n > 0 && t->ngot + (size_t)n <= ECHO_LEN);
  if (t->fail_line)
    return;
  memcpy(t->got + t->ngot, buf->base, (size_t)n);
  t->ngot += (size_t)n;
  tl_maybe_close(t);
}

static void tl_connection(soon_stream *server, int status) {
  tloop *t = server->data;
  tl_on_thread(t);
  t->conn_status = status;
  TCHECK(t, status == 0);
  TCHECK(t, soon_accept(server, (soon_stream *)&t->server) == 0);
  TCHECK(t, soon_read_start((soon_stream *)&t->server, tl_alloc,
                            tl_server_read) == 0);
}

static void tl_connected(soon_connect_req *req, int status) {
  tloop *t = req->data;
  tl_on_thread(t);
  t->connect_status = status;
  TCHECK(t, status == 0);
  soon_stream *c = (soon_stream *)&t->client;
  TCHECK(t, soon_read_start(c, tl_alloc, tl_client_read) == 0);
  soon_buf b = {(char *)ECHO_MSG, ECHO_LEN};
  t->cw.data = t;
  TCHECK(t, soon_write(&t->cw, c, &b, 1, tl_written) == 0);
}

static void tl_setup(tloop *t) {
  soon_loop *loop = &t->loop;
  TCHECK(t, soon_timer_init(loop, &t->guard) == 0);
  t->guard.data = t;
  TCHECK(t, soon_timer_start(&t->guard, tl_guard, GUARD_MS, 0) == 0);
  soon_unref((soon_handle *)&t->guard);
  TCHECK(t, soon_tcp_init(loop, &t->listener) == 0);
  TCHECK(t, soon_tcp_init(loop, &t->server) == 0);
  TCHECK(t, soon_tcp_init(loop, &t->client) == 0);
  t->listener.data = t->server.data = t->client.data = t;
  TCHECK(t, soon_ip4_addr("127.0.0.1", 0, &t->addr) == 0);
  TCHECK(t, soon_tcp_bind(&t->listener, (struct sockaddr *)&t->addr, 0) == 0);
  int len = sizeof t->addr;
  TCHECK(t, soon_tcp_getsockname(&t->listener, (struct sockaddr *)&t->addr,
                                 &len) == 0);
  TCHECK(t, soon_listen((soon_stream *)&t->listener, 8, tl_connection) == 0);
  t->creq.data = t;
  TCHECK(t, soon_tcp_connect(&t->creq, &t->client, (struct sockaddr *)&t->addr,
                             tl_connected) == 0);
}

static void *tl_thread(void *arg) {
  tloop *t = arg;
  t->thread = pthread_self();
  if (t->setup_there)
    tl_setup(t);
  if (!t->fail_line)
    t->run_result = soon_run(&t->loop, SOON_RUN_DEFAULT);
  return NULL;
}

static void tl_io(soon_io *io, int status, int events) {
  (void)io;
  (void)status;
  (void)events;
}

static void run_thread_echo(bool setup_there, bool watch_here) {
  tloop *t = calloc(1, sizeof *t);
  assert_non_null(t);
  t->setup_there = setup_there;
  t->run_result = t->connect_status = t->conn_status = 1;
  loop_init_checked(&t->loop);
  if (!setup_there) {
    t->thread = pthread_self(); /* no callback runs here: tl_setup runs none */
    tl_setup(t);
    assert_int_equal(t->fail_line, 0);
  }
  if (watch_here) {
    /* A watcher that comes and goes before the loop first runs. */
    make_socketpair(t->iofds);
    assert_int_equal(soon_io_init(&t->loop, &t->io, t->iofds[0]), 0);
    assert_int_equal(soon_io_start(&t->io, SOON_READABLE, tl_io), 0);
    assert_int_equal(soon_io_stop(&t->io), 0);
    t->io.data = t;
    assert_int_equal(soon_close((soon_handle *)&t->io, tl_closed), 0);
  }
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, tl_thread, t), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_int_equal(t->fail_line, 0);
  assert_false(t->guard_fired);
  assert_int_equal(t->run_result, 0);
  assert_int_equal(t->connect_status, 0);
  assert_int_equal(t->conn_status, 0);
  assert_int_equal(t->ngot, ECHO_LEN);
  assert_memory_equal(t->got, ECHO_MSG, ECHO_LEN);
  assert_int_equal(t->closes, watch_here ? 5 : 4);
  if (watch_here) {
    close_fd(t->iofds[0]);
    close_fd(t->iofds[1]);
  }
  /* Closed here, where it was made, after its thread is gone. */
  loop_close_checked(&t->loop);
  free(t);
}

static void test_thread_echo_setup_here(void **state) {
  (void)state;
  run_thread_echo(false, false);
}

static void test_thread_echo_watcher_here(void **state) {
  (void)state;
  run_thread_echo(false, true);
}

static void test_thread_echo_setup_there(void **state) {
  (void)state;
  run_thread_echo(true, false);
}

/* ------------------------------------------------------------ file writes */

/* soon_write_file between soon_writes: a writer queues "head", a file range
 * larger than the kernel takes at once, "tail" and an empty range, then
 * closes; a reader in the same loop gets exactly those bytes, in order.
 * On a tcp or unix socket, and on a pipe(2) (sendfile into a pipe). */
typedef enum { FW_TCP, FW_UNIX, FW_PIPE } fw_kind;

typedef struct fw {
  any_stream w, r;
  soon_write_req req[4];
  char *got, buf[65536];
  size_t ngot, cap;
  int order[4], status[4], calls, eof, closes;
} fw;

#define FW_FILE_SIZE (12u << 20) /* loopback tcp takes 4 MiB at once */
#define FW_OFF 1000
#define FW_LEN (FW_FILE_SIZE - FW_OFF - 17)

/* A temporary file holding pattern_new(size)'s bytes: its fd, unlinked. */
static int fw_file(size_t size, char **pattern) {
  char path[] = "/tmp/soon-wfile-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  unlink(path);
  *pattern = pattern_new(size);
  assert_int_equal(write(fd, *pattern, size), (ssize_t)size);
  return fd;
}

static void fw_alloc(soon_handle *h, size_t size, soon_buf *buf) {
  (void)size;
  fw *f = h->data;
  *buf = (soon_buf){f->buf, sizeof f->buf};
}

static void fw_closed(soon_handle *h) { ((fw *)h->data)->closes++; }

static void fw_read(soon_stream *s, ssize_t n, const soon_buf *buf) {
  fw *f = s->data;
  if (n == SOON_EOF) {
    f->eof++;
    soon_close(&f->r.h, fw_closed);
    return;
  }
  assert_true(n >= 0);
  if (f->ngot + (size_t)n > f->cap) {
    f->cap = (f->ngot + (size_t)n) * 2;
    f->got = realloc(f->got, f->cap);
    assert_non_null(f->got);
  }
  memcpy(f->got + f->ngot, buf->base, (size_t)n);
  f->ngot += (size_t)n;
}

static void fw_written(soon_write_req *req, int status) {
  fw *f = req->data;
  int i = (int)(req - f->req);
  f->order[f->calls++] = i;
  f->status[i] = status;
  if (f->calls == 4)
    soon_close(&f->w.h, fw_closed);
}

static void fw_shut(soon_shutdown_req *req, int status) {
  (void)req;
  assert_int_equal(status, 0);
}

static void fw_open(soon_loop *loop, fw *f, fw_kind k) {
  int fds[2];
  if (k == FW_PIPE) {
    make_pipe(fds); /* fds[0] reads, fds[1] writes */
    assert_int_equal(soon_pipe_init(loop, &f->w.pipe), 0);
    assert_int_equal(soon_pipe_open(&f->w.pipe, fds[1]), 0);
    assert_int_equal(soon_pipe_init(loop, &f->r.pipe), 0);
    assert_int_equal(soon_pipe_open(&f->r.pipe, fds[0]), 0);
  } else {
    kind sk = k == FW_UNIX ? K_UNIX : K_TCP;
    make_pair(sk, fds);
    stream_adopt(loop, &f->w, sk, fds[0]);
    stream_adopt(loop, &f->r, sk, fds[1]);
  }
  f->w.h.data = f->r.h.data = f;
  for (int i = 0; i < 4; i++)
    f->req[i].data = f;
}

static void run_write_file(fw_kind k) {
  soon_loop loop;
  soon_timer guard;
  fw *f = calloc(1, sizeof *f);
  assert_non_null(f);
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  char *pattern;
  int file = fw_file(FW_FILE_SIZE, &pattern);
  fw_open(&loop, f, k);
  soon_buf head = {(char *)"head", 4}, tail = {(char *)"tail", 4};
  assert_int_equal(soon_write(&f->req[0], &f->w.s, &head, 1, fw_written), 0);
  assert_int_equal(
      soon_write_file(&f->req[1], &f->w.s, file, FW_OFF, FW_LEN, fw_written),
      0);
  assert_int_equal(soon_write(&f->req[2], &f->w.s, &tail, 1, fw_written), 0);
  assert_int_equal(soon_write_file(&f->req[3], &f->w.s, file, 0, 0, fw_written),
                   0);
  /* Nobody reads yet: the kernel cannot have taken 12 MiB, and what waits
   * is counted in the queue's size. */
  size_t queued = soon_stream_write_queue_size(&f->w.s);
  assert_true(queued > 0 && queued <= 8 + FW_LEN);
  assert_int_equal(soon_read_start(&f->r.s, fw_alloc, fw_read), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(f->calls, 4);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(f->order[i], i);
    assert_int_equal(f->status[i], 0);
  }
  assert_int_equal(f->eof, 1);
  assert_int_equal(f->closes, 2);
  assert_int_equal(f->ngot, 8 + FW_LEN);
  assert_memory_equal(f->got, "head", 4);
  assert_memory_equal(f->got + 4, pattern + FW_OFF, FW_LEN);
  assert_memory_equal(f->got + 4 + FW_LEN, "tail", 4);
  close_fd(file);
  free(pattern);
  free(f->got);
  free(f);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

static void test_write_file_tcp(void **state) {
  (void)state;
  run_write_file(FW_TCP);
}

static void test_write_file_unix(void **state) {
  (void)state;
  run_write_file(FW_UNIX);
}

static void test_write_file_pipe(void **state) {
  (void)state;
  run_write_file(FW_PIPE);
}

/* One file write, its status, and the stream closed from its callback. */
typedef struct fw1 {
  any_stream c;
  soon_connect_req creq;
  soon_write_req w;
  int status, calls, closes;
} fw1;

static void fw1_closed(soon_handle *h) { ((fw1 *)h->data)->closes++; }

static void fw1_written(soon_write_req *req, int status) {
  fw1 *t = req->data;
  t->status = status;
  t->calls++;
  soon_close(&t->c.h, fw1_closed);
}

static void fw1_connected(soon_connect_req *req, int status) {
  (void)req;
  assert_int_equal(status, 0);
}

/* Queued while connecting, the range counts in full in the queue's size
 * and goes once the connection is made; the peer gets exactly its bytes. */
static void test_write_file_connecting(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  fw1 t;
  memset(&t, 0, sizeof t);
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  char *pattern;
  int file = fw_file(4096, &pattern);
  struct sockaddr_in addr;
  int l = tcp_listener(&addr);
  assert_int_equal(soon_tcp_init(&loop, &t.c.tcp), 0);
  t.c.h.data = t.w.data = &t;
  assert_int_equal(soon_tcp_connect(&t.creq, &t.c.tcp, (struct sockaddr *)&addr,
                                    fw1_connected),
                   0);
  assert_int_equal(soon_write_file(&t.w, &t.c.s, file, 96, 4000, fw1_written),
                   0);
  assert_int_equal(soon_stream_write_queue_size(&t.c.s), 4000);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(t.calls, 1);
  assert_int_equal(t.status, 0);
  assert_int_equal(t.closes, 1);
  int peer = accept4(l, NULL, NULL, SOCK_CLOEXEC);
  assert_true(peer >= 0);
  char got[4001];
  size_t n = 0;
  ssize_t r;
  while ((r = read(peer, got + n, sizeof got - n)) > 0)
    n += (size_t)r;
  assert_int_equal(r, 0);
  assert_int_equal(n, 4000);
  assert_memory_equal(got, pattern + 96, 4000);
  close_fd(peer);
  close_fd(l);
  close_fd(file);
  free(pattern);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

/* A write on its own stream, closed from the callback: its status. */
static int write_file_status(kind k, int file, int64_t off, size_t len,
                             bool peer_gone, size_t *peer_got) {
  soon_loop loop;
  soon_timer guard;
  fw1 t;
  memset(&t, 0, sizeof t);
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  int fds[2];
  make_pair(k, fds);
  if (peer_gone)
    close_fd(fds[1]);
  stream_adopt(&loop, &t.c, k, fds[0]);
  t.c.h.data = t.w.data = &t;
  assert_int_equal(soon_write_file(&t.w, &t.c.s, file, off, len, fw1_written),
                   0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(t.calls, 1);
  assert_int_equal(t.closes, 1);
  if (!peer_gone) {
    char buf[4096];
    ssize_t n = read(fds[1], buf, sizeof buf);
    *peer_got = n > 0 ? (size_t)n : 0;
    close_fd(fds[1]);
  }
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
  return t.status;
}

/* The file ends before the range: what there was is sent, then -ENODATA.
 * A file sendfile cannot read from (a directory): its error. A peer gone:
 * -EPIPE (tcp: or -ECONNRESET), and no SIGPIPE (its default action would
 * end this process). */
static void test_write_file_errors(void **state) {
  (void)state;
  signal(SIGPIPE, SIG_DFL);
  char *pattern;
  int file = fw_file(100, &pattern);
  size_t got = 0;
  assert_int_equal(write_file_status(K_UNIX, file, 40, 200, false, &got),
                   -ENODATA);
  assert_int_equal(got, 60);
  assert_int_equal(write_file_status(K_TCP, file, 100, 1, false, &got),
                   -ENODATA);
  assert_int_equal(got, 0);
  int dir = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true(dir >= 0);
  assert_int_equal(write_file_status(K_TCP, dir, 0, 10, false, &got), -EINVAL);
  close_fd(dir);
  assert_int_equal(write_file_status(K_UNIX, file, 0, 100, true, NULL), -EPIPE);
  close_fd(file);
  free(pattern);
  /* tcp takes the first bytes after the peer closed; the rest fails. */
  file = fw_file(FW_FILE_SIZE, &pattern);
  int st = write_file_status(K_TCP, file, 0, FW_FILE_SIZE, true, NULL);
  assert_true(st == -EPIPE || st == -ECONNRESET);
  close_fd(file);
  free(pattern);
}

/* Bad arguments, a stream with no fd, a stream shut down. */
static void test_write_file_args(void **state) {
  (void)state;
  soon_loop loop;
  loop_init_checked(&loop);
  soon_tcp c;
  soon_write_req w;
  soon_shutdown_req shut;
  assert_int_equal(soon_tcp_init(&loop, &c), 0);
  soon_stream *s = (soon_stream *)&c;
  assert_int_equal(soon_write_file(&w, s, 0, 0, 1, fw_written), -EBADF);
  int fds[2];
  make_socketpair(fds);
  assert_int_equal(soon_tcp_open(&c, fds[0]), 0);
  assert_int_equal(soon_write_file(NULL, s, 0, 0, 1, fw_written), -EINVAL);
  assert_int_equal(soon_write_file(&w, NULL, 0, 0, 1, fw_written), -EINVAL);
  assert_int_equal(soon_write_file(&w, s, -1, 0, 1, fw_written), -EINVAL);
  assert_int_equal(soon_write_file(&w, s, 0, -1, 1, fw_written), -EINVAL);
  assert_int_equal(soon_write_file(&w, s, 0, INT64_MAX, 2, fw_written),
                   -EINVAL);
  assert_int_equal(soon_write_file(&w, s, 0, 0, 1, NULL), -EINVAL);
  assert_int_equal(soon_stream_write_queue_size(s), 0);
  assert_int_equal(soon_shutdown(&shut, s, fw_shut), 0);
  assert_int_equal(soon_write_file(&w, s, 0, 0, 1, fw_written), -EPIPE);
  assert_int_equal(soon_close((soon_handle *)&c, NULL), 0);
  assert_int_equal(soon_write_file(&w, s, 0, 0, 1, fw_written), -EINVAL);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  close_fd(fds[1]);
  loop_close_checked(&loop);
}

/* Closed while a range waits for a peer that never reads: the write is
 * cancelled, its callback before the close callback. */
typedef struct fwx {
  soon_pipe c;
  soon_write_req w;
  soon_timer t;
  int status, calls, closes, calls_at_close;
} fwx;

static void fwx_written(soon_write_req *req, int status) {
  fwx *x = req->data;
  x->status = status;
  x->calls++;
}

static void fwx_closed(soon_handle *h) {
  fwx *x = h->data;
  x->closes++;
  x->calls_at_close = x->calls;
}

static void fwx_timer(soon_timer *t) {
  fwx *x = t->data;
  soon_close((soon_handle *)&x->c, fwx_closed);
  soon_close((soon_handle *)&x->t, NULL);
}

static void test_write_file_close_waiting(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  fwx x;
  memset(&x, 0, sizeof x);
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  char *pattern;
  int file = fw_file(FW_FILE_SIZE, &pattern);
  int fds[2];
  make_pair(K_UNIX, fds); /* a unix socket holds far less than 3 MiB */
  stream_adopt(&loop, (any_stream *)&x.c, K_UNIX, fds[0]);
  x.c.data = x.w.data = x.t.data = &x;
  assert_int_equal(soon_write_file(&x.w, (soon_stream *)&x.c, file, 0,
                                   FW_FILE_SIZE, fwx_written),
                   0);
  assert_true(soon_stream_write_queue_size((soon_stream *)&x.c) > 0);
  assert_int_equal(soon_timer_init(&loop, &x.t), 0);
  assert_int_equal(soon_timer_start(&x.t, fwx_timer, 0, 0), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(x.calls, 1);
  assert_int_equal(x.status, -ECANCELED);
  assert_int_equal(x.closes, 1);
  assert_int_equal(x.calls_at_close, 1);
  close_fd(fds[1]);
  close_fd(file);
  free(pattern);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ bulk, then small
 */

/* A stream that carries bulk, then small messages, then bulk again: on
 * uring the reader moves from the ring to readiness (large receives) and
 * back (small ones), and the writer's large writes go by sendmsg(2) while
 * its small ones stay in the ring (docs/uring.md). Every byte arrives once,
 * in order, and each small message is read before the next is written, so
 * a reader left waiting on the wrong side of a switch hangs the test. */
enum { BS_BULK = 4 << 20, BS_CHUNK = 65536, BS_SMALL = 64, BS_ROUNDS = 2 };

typedef struct bulk_small {
  soon_loop loop;
  soon_timer guard;
  soon_tcp rd, wr;
  soon_write_req wreq[2], small[BS_SMALL];
  char *src; /* BS_ROUNDS * (BS_BULK + BS_SMALL * 5) pattern bytes */
  size_t total, sent, got, phase_end;
  int smalls, writes, written, closes;
  bool small_phase, bulk_due;
  char buf[BS_CHUNK];
} bulk_small;

static void bs_closed(soon_handle *h) { ((bulk_small *)h->data)->closes++; }

/* Done once every byte is read and every write told. */
static void bs_maybe_done(bulk_small *b) {
  if (b->got == b->total && b->written == b->writes) {
    soon_close((soon_handle *)&b->rd, bs_closed);
    soon_close((soon_handle *)&b->wr, bs_closed);
  }
}

static void bs_write(bulk_small *b, soon_write_req *req, size_t len);

/* The next bulk phase, once every write before it is told (its requests
 * are reused). */
static void bs_bulk_when_told(bulk_small *b) {
  if (!b->bulk_due || b->written != b->writes)
    return;
  b->bulk_due = false;
  b->small_phase = false;
  b->phase_end = b->got + BS_BULK;
  bs_write(b, &b->wreq[0], BS_CHUNK);
  bs_write(b, &b->wreq[1], BS_CHUNK);
}

/* In a bulk phase each write told sends the next chunk (two in flight);
 * a small message goes only once the last one was read. */
static void bs_written(soon_write_req *req, int status) {
  bulk_small *b = req->data;
  assert_int_equal(status, 0);
  b->written++;
  if (!b->small_phase && b->sent < b->phase_end)
    bs_write(b, req, BS_CHUNK);
  bs_bulk_when_told(b);
  bs_maybe_done(b);
}

static void bs_write(bulk_small *b, soon_write_req *req, size_t len) {
  soon_buf buf = {b->src + b->sent, len};
  b->sent += len;
  b->writes++;
  req->data = b;
  assert_int_equal(soon_write(req, (soon_stream *)&b->wr, &buf, 1, bs_written),
                   0);
}

static void bs_alloc(soon_handle *h, size_t suggested, soon_buf *buf) {
  (void)suggested;
  bulk_small *b = h->data;
  *buf = (soon_buf){b->buf, sizeof b->buf};
}

static void bs_read(soon_stream *s, ssize_t n, const soon_buf *buf) {
  bulk_small *b = s->data;
  assert_true(n >= 0); /* no EOF: the test closes first */
  assert_true(b->got + (size_t)n <= b->sent);
  assert_memory_equal(buf->base, b->src + b->got, (size_t)n);
  b->got += (size_t)n;
  if (b->got < b->phase_end)
    return;
  if (b->got == b->total) {
    bs_maybe_done(b);
    return;
  }
  /* A bulk phase or a small message read in full: what comes next. A
   * message may be read before its write is told: one request each. */
  if (!b->small_phase) {
    b->small_phase = true;
    b->smalls = 0;
  }
  if (b->smalls < BS_SMALL) {
    b->smalls++;
    b->phase_end = b->got + 5;
    bs_write(b, &b->small[b->smalls - 1], 5);
    return;
  }
  b->bulk_due = true; /* the next round's bulk */
  bs_bulk_when_told(b);
}

static void test_bulk_then_small(void **state) {
  (void)state;
  bulk_small *b = calloc(1, sizeof *b);
  assert_non_null(b);
  b->total = BS_ROUNDS * ((size_t)BS_BULK + BS_SMALL * 5);
  b->src = pattern_new(b->total);
  loop_init_checked(&b->loop);
  guard_start(&b->loop, &b->guard);
  int fds[2];
  tcp_pair(fds);
  assert_int_equal(soon_tcp_init(&b->loop, &b->rd), 0);
  assert_int_equal(soon_tcp_init(&b->loop, &b->wr), 0);
  assert_int_equal(soon_tcp_open(&b->rd, fds[0]), 0);
  assert_int_equal(soon_tcp_open(&b->wr, fds[1]), 0);
  b->rd.data = b->wr.data = b;
  assert_int_equal(soon_read_start((soon_stream *)&b->rd, bs_alloc, bs_read),
                   0);
  b->phase_end = BS_BULK;
  bs_write(b, &b->wreq[0], BS_CHUNK);
  bs_write(b, &b->wreq[1], BS_CHUNK);
  assert_int_equal(soon_run(&b->loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(b->got, b->total);
  assert_int_equal(b->written, b->writes);
  assert_int_equal(b->closes, 2);
  guard_close(&b->loop, &b->guard);
  loop_close_checked(&b->loop);
  free(b->src);
  free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stop_start_timer),
      cmocka_unit_test(test_bulk_then_small),
      cmocka_unit_test(test_stop_start_idle),
      cmocka_unit_test(test_stop_start_check),
      cmocka_unit_test(test_stop_start_inline),
      cmocka_unit_test(test_stop_start_paced_bounded),
      cmocka_unit_test(test_unix_stop_start_timer),
      cmocka_unit_test(test_unix_stop_start_check),
      cmocka_unit_test(test_stop_then_close),
      cmocka_unit_test(test_unix_stop_then_close),
      cmocka_unit_test(test_small_buffers),
      cmocka_unit_test(test_unix_small_buffers),
      cmocka_unit_test(test_empty_buffers),
      cmocka_unit_test(test_unix_empty_buffers),
      cmocka_unit_test(test_unix_close_on_nobufs_reuse),
      cmocka_unit_test_teardown(test_accept_later, cleanup_paths),
      cmocka_unit_test_teardown(test_unix_accept_later, cleanup_paths),
      cmocka_unit_test(test_close_in_flight),
      cmocka_unit_test(test_unix_close_in_flight),
      cmocka_unit_test(test_close_from_write),
      cmocka_unit_test(test_unix_close_from_write),
      cmocka_unit_test(test_refill_bounded),
      cmocka_unit_test(test_unix_refill_bounded),
      cmocka_unit_test(test_queued_no_memory),
      cmocka_unit_test(test_unix_queued_no_memory),
      cmocka_unit_test(test_write_file_tcp),
      cmocka_unit_test(test_write_file_unix),
      cmocka_unit_test(test_write_file_pipe),
      cmocka_unit_test(test_write_file_connecting),
      cmocka_unit_test(test_write_file_errors),
      cmocka_unit_test(test_write_file_args),
      cmocka_unit_test(test_write_file_close_waiting),
      cmocka_unit_test(test_thread_echo_setup_here),
      cmocka_unit_test(test_thread_echo_setup_there),
      cmocka_unit_test(test_thread_echo_watcher_here),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
