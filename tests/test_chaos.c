/* test_chaos.c: chaos mode: the seed (option, $SOON_CHAOS), replay by seed
 * (same seed, same callback sequence), and the orders it must keep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <semaphore.h>
#include <soon.h>

#include "helpers.h"

enum { NIO = 8, ROUNDS = 4, NTIMERS = 6, MAXEV = 256 };

/* The program run under a seed: NIO watchers made ready together, ROUNDS
 * times, then NTIMERS timers due at once. What the trace saw, as
 * (phase, type, index of the handle) triples. */
typedef struct prog {
  soon_loop loop;
  soon_io io[NIO];
  int fds[NIO][2];
  soon_timer timers[NTIMERS];
  int fired[NTIMERS], nfired;
  int ev[MAXEV][3];
  int nev;
} prog;

static int index_of(const prog *p, const void *ptr) {
  for (int i = 0; i < NIO; i++)
    if (ptr == &p->io[i])
      return i;
  for (int i = 0; i < NTIMERS; i++)
    if (ptr == &p->timers[i])
      return NIO + i;
  return -1;
}

static void record(const soon_trace_event *ev, void *arg) {
  prog *p = arg;
  assert_true(p->nev < MAXEV);
  int *e = p->ev[p->nev++];
  e[0] = (int)ev->phase;
  e[1] = (int)ev->handle_type;
  e[2] = index_of(p, ev->ptr);
}

/* Take the byte that made it ready, and stop: one callback per round. */
static void on_ready(soon_io *io, int status, int events) {
  assert_int_equal(status, 0);
  assert_true(events & SOON_READABLE);
  char c;
  assert_int_equal(read(io->fd, &c, 1), 1);
  assert_int_equal(soon_io_stop(io), 0);
}

static void on_timer(soon_timer *t) {
  prog *p = t->loop->data;
  p->fired[p->nfired++] = (int)((soon_timer *)t - p->timers);
}

static void run_prog(prog *p, uint64_t seed) {
  memset(p, 0, sizeof *p);
  soon_loop_options opts = {.flags = SOON_LOOP_MANUAL_CLOCK,
                            .chaos_seed = seed};
  assert_int_equal(soon_loop_init_ex(&p->loop, &opts), 0);
  assert_int_equal(soon_loop_chaos_seed(&p->loop), seed);
  p->loop.data = p;
  assert_int_equal(soon_loop_set_trace(&p->loop, record, p), 0);
  for (int i = 0; i < NIO; i++) {
    make_socketpair(p->fds[i]);
    assert_int_equal(soon_io_init(&p->loop, &p->io[i], p->fds[i][0]), 0);
  }
  for (int r = 0; r < ROUNDS; r++) {
    for (int i = 0; i < NIO; i++) {
      write_byte(p->fds[i][1]);
      assert_int_equal(soon_io_start(&p->io[i], SOON_READABLE, on_ready), 0);
    }
    assert_int_equal(soon_run(&p->loop, SOON_RUN_DEFAULT), 0);
  }
  for (int i = 0; i < NTIMERS; i++) {
    assert_int_equal(soon_timer_init(&p->loop, &p->timers[i]), 0);
    assert_int_equal(soon_timer_start(&p->timers[i], on_timer, 10, 0), 0);
  }
  assert_int_equal(soon_loop_advance(&p->loop, 10), 0);
  for (int i = 0; i < NIO; i++) {
    assert_int_equal(soon_close((soon_handle *)&p->io[i], NULL), 0);
    close_fd(p->fds[i][0]);
    close_fd(p->fds[i][1]);
  }
  for (int i = 0; i < NTIMERS; i++)
    assert_int_equal(soon_close((soon_handle *)&p->timers[i], NULL), 0);
  assert_int_equal(soon_run(&p->loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&p->loop);
  assert_int_equal(p->nev, NIO * ROUNDS + NTIMERS);
}

static bool same_trace(const prog *a, const prog *b) {
  return a->nev == b->nev &&
         memcmp(a->ev, b->ev, (size_t)a->nev * sizeof a->ev[0]) == 0;
}

/* One seed, one sequence; another seed, another (for these seeds; 8
 * watchers ready at once have 8! orders per round). Equal-deadline timers
 * fire in start order whatever the seed. */
static void test_replay_by_seed(void **state) {
  (void)state;
  prog *a = malloc(sizeof *a), *b = malloc(sizeof *b);
  assert_non_null(a);
  assert_non_null(b);
  run_prog(a, 7);
  run_prog(b, 7);
  assert_true(same_trace(a, b));
  run_prog(b, 8);
  assert_false(same_trace(a, b));
  for (int i = 0; i < NTIMERS; i++) {
    assert_int_equal(a->fired[i], i);
    assert_int_equal(b->fired[i], i);
  }
  free(a);
  free(b);
}

/* ------------------------------------------------------------ streams */

enum { TOTAL = 1 << 18, NWRITES = 8 };

typedef struct flow {
  soon_loop loop;
  soon_pipe rd, wr;
  soon_write_req w[NWRITES];
  char *src;
  char buf[4096];
  size_t got;
  int written, closes;
} flow;

static void flow_alloc(soon_handle *h, size_t size, soon_buf *buf) {
  flow *f = h->data;
  (void)size;
  *buf = (soon_buf){f->buf, sizeof f->buf};
}

static void flow_closed(soon_handle *h) { ((flow *)h->data)->closes++; }

static void flow_read(soon_stream *s, ssize_t n, const soon_buf *buf) {
  flow *f = s->data;
  if (n == SOON_EOF) {
    assert_int_equal(f->got, TOTAL);
    assert_int_equal(soon_close((soon_handle *)s, flow_closed), 0);
    return;
  }
  assert_true(n >= 0);
  assert_true(f->got + (size_t)n <= TOTAL);
  assert_memory_equal(buf->base, f->src + f->got, (size_t)n);
  f->got += (size_t)n;
}

/* Write callbacks in the order of the writes, and all before the end. */
static void flow_written(soon_write_req *req, int status) {
  flow *f = req->data;
  assert_int_equal(status, 0);
  assert_ptr_equal(req, &f->w[f->written]);
  if (++f->written == NWRITES)
    assert_int_equal(soon_close((soon_handle *)&f->wr, flow_closed), 0);
}

/* A stream's bytes and its write callbacks keep their order under chaos,
 * which splits its reads and writes (sends and receives on io_uring). */
static void run_flow(uint64_t seed) {
  flow *f = calloc(1, sizeof *f);
  assert_non_null(f);
  f->src = malloc(TOTAL);
  assert_non_null(f->src);
  for (size_t i = 0; i < TOTAL; i++)
    f->src[i] = (char)(i * 7 + i / 251);
  soon_loop_options opts = {.chaos_seed = seed};
  assert_int_equal(soon_loop_init_ex(&f->loop, &opts), 0);
  int fds[2];
  make_socketpair(fds);
  assert_int_equal(soon_pipe_init(&f->loop, &f->rd), 0);
  assert_int_equal(soon_pipe_init(&f->loop, &f->wr), 0);
  assert_int_equal(soon_pipe_open(&f->rd, fds[0]), 0);
  assert_int_equal(soon_pipe_open(&f->wr, fds[1]), 0);
  f->rd.data = f->wr.data = f;
  assert_int_equal(
      soon_read_start((soon_stream *)&f->rd, flow_alloc, flow_read), 0);
  size_t part = TOTAL / NWRITES;
  for (int i = 0; i < NWRITES; i++) {
    soon_buf b = {f->src + i * part, part};
    f->w[i].data = f;
    assert_int_equal(
        soon_write(&f->w[i], (soon_stream *)&f->wr, &b, 1, flow_written), 0);
  }
  assert_int_equal(soon_run(&f->loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(f->got, TOTAL);
  assert_int_equal(f->written, NWRITES);
  assert_int_equal(f->closes, 2);
  loop_close_checked(&f->loop);
  free(f->src);
  free(f);
}

static void test_stream_order(void **state) {
  (void)state;
  for (uint64_t seed = 1; seed <= 5; seed++)
    run_flow(seed);
}

/* One write of a message, read under chaos: some seed splits it across
 * callbacks, on every transport (io_uring's receives included), and the
 * bytes stay in order. */
typedef struct split {
  soon_pipe rd;
  char buf[64], got[64];
  size_t len;
  int calls;
} split;

static void split_alloc(soon_handle *h, size_t size, soon_buf *buf) {
  split *t = h->data;
  (void)size;
  *buf = (soon_buf){t->buf, sizeof t->buf};
}

static void split_read(soon_stream *s, ssize_t n, const soon_buf *buf) {
  split *t = s->data;
  assert_true(n >= 0);
  if (n == 0)
    return;
  assert_true(t->len + (size_t)n <= sizeof t->got);
  memcpy(t->got + t->len, buf->base, (size_t)n);
  t->len += (size_t)n;
  t->calls++;
  if (t->len == sizeof t->got)
    assert_int_equal(soon_close((soon_handle *)s, NULL), 0);
}

static int read_message(uint64_t seed) {
  static const char msg[64] = "one write of sixty-four bytes, which chaos cuts";
  soon_loop loop;
  soon_loop_options opts = {.chaos_seed = seed};
  assert_int_equal(soon_loop_init_ex(&loop, &opts), 0);
  split t = {0};
  int fds[2];
  make_socketpair(fds);
  assert_int_equal(soon_pipe_init(&loop, &t.rd), 0);
  assert_int_equal(soon_pipe_open(&t.rd, fds[0]), 0);
  t.rd.data = &t;
  assert_int_equal(
      soon_read_start((soon_stream *)&t.rd, split_alloc, split_read), 0);
  assert_int_equal(write(fds[1], msg, sizeof msg), (ssize_t)sizeof msg);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(t.len, sizeof msg);
  assert_memory_equal(t.got, msg, sizeof msg);
  close_fd(fds[1]);
  loop_close_checked(&loop);
  return t.calls;
}

static void test_reads_split(void **state) {
  (void)state;
  int most = 0;
  for (uint64_t seed = 1; seed <= 3; seed++) {
    int calls = read_message(seed);
    most = calls > most ? calls : most;
  }
  assert_true(most > 1);
}

/* ------------------------------------------------------------ the pool */

/* Jobs all finished before the loop runs: without chaos, one drain runs
 * every after callback in the first iteration; chaos holds some back up to
 * 3 iterations. A pool of one worker runs the jobs in turn, so once the
 * last one's work has run, every earlier one is posted. */
enum { NJOBS = 16 };

typedef struct jobs {
  soon_loop loop;
  soon_work_req w[NJOBS + 1];
  sem_t last_ran;
  uint64_t ran_in[NJOBS];
  int after;
} jobs;

static void job_work(soon_work_req *w) { (void)w; }

static void last_work(soon_work_req *w) {
  jobs *j = w->data;
  assert_int_equal(sem_post(&j->last_ran), 0);
}

static void job_after(soon_work_req *w, int status) {
  jobs *j = w->data;
  assert_int_equal(status, 0);
  soon_metrics m;
  assert_int_equal(soon_metrics_get(&j->loop, &m), 0);
  if (w != &j->w[NJOBS])
    j->ran_in[w - j->w] = m.iterations;
  j->after++;
}

/* The number of iterations the first NJOBS after callbacks spread over. */
static uint64_t run_jobs(uint64_t seed, uint64_t *used_seed) {
  jobs *j = calloc(1, sizeof *j);
  assert_non_null(j);
  soon_pool *pool;
  soon_pool_options po = {.size = 1};
  assert_int_equal(soon_pool_new(&pool, &po), 0);
  soon_loop_options opts = {.pool = pool, .chaos_seed = seed};
  assert_int_equal(soon_loop_init_ex(&j->loop, &opts), 0);
  *used_seed = soon_loop_chaos_seed(&j->loop);
  assert_int_equal(sem_init(&j->last_ran, 0, 0), 0);
  for (int i = 0; i <= NJOBS; i++) {
    j->w[i].data = j;
    assert_int_equal(soon_work(&j->loop, &j->w[i],
                               i < NJOBS ? job_work : last_work, job_after),
                     0);
  }
  while (sem_wait(&j->last_ran) < 0)
    assert_int_equal(errno, EINTR);
  assert_int_equal(soon_run(&j->loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(j->after, NJOBS + 1);
  uint64_t lo = UINT64_MAX, hi = 0;
  for (int i = 0; i < NJOBS; i++) {
    lo = j->ran_in[i] < lo ? j->ran_in[i] : lo;
    hi = j->ran_in[i] > hi ? j->ran_in[i] : hi;
  }
  loop_close_checked(&j->loop);
  assert_int_equal(soon_pool_free(pool), 0);
  sem_destroy(&j->last_ran);
  free(j);
  return hi - lo + 1;
}

static void test_pool_held_back(void **state) {
  (void)state;
  uint64_t seed;
  uint64_t spread = run_jobs(0, &seed);
  if (seed == 0) /* else $SOON_CHAOS is set: this suite's chaos run */
    assert_int_equal(spread, 1);
  spread = run_jobs(11, &seed);
  assert_true(spread > 1);
}

/* ------------------------------------------------------------ the seed */

/* $SOON_CHAOS is read at init when the option gives no seed; "random"
 * picks one, a typo is refused. The option wins over it. */
static void test_env_seed(void **state) {
  (void)state;
  const char *was = getenv("SOON_CHAOS");
  char *saved = was ? strdup(was) : NULL;
  soon_loop loop;
  assert_int_equal(setenv("SOON_CHAOS", "42", 1), 0);
  loop_init_checked(&loop);
  assert_int_equal(soon_loop_chaos_seed(&loop), 42);
  loop_close_checked(&loop);
  soon_loop_options opts = {.chaos_seed = 5};
  assert_int_equal(soon_loop_init_ex(&loop, &opts), 0);
  assert_int_equal(soon_loop_chaos_seed(&loop), 5);
  loop_close_checked(&loop);
  assert_int_equal(setenv("SOON_CHAOS", "random", 1), 0);
  loop_init_checked(&loop);
  assert_true(soon_loop_chaos_seed(&loop) != 0);
  loop_close_checked(&loop);
  assert_int_equal(setenv("SOON_CHAOS", "4x", 1), 0);
  assert_int_equal(soon_loop_init(&loop), -EINVAL);
  assert_int_equal(soon_loop_chaos_seed(&loop), 0); /* refused: no loop */
  assert_int_equal(setenv("SOON_CHAOS", "0", 1), 0);
  loop_init_checked(&loop);
  assert_int_equal(soon_loop_chaos_seed(&loop), 0); /* 0 is off */
  loop_close_checked(&loop);
  if (saved)
    assert_int_equal(setenv("SOON_CHAOS", saved, 1), 0);
  else
    assert_int_equal(unsetenv("SOON_CHAOS"), 0);
  free(saved);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_replay_by_seed),
      cmocka_unit_test(test_stream_order),
      cmocka_unit_test(test_reads_split),
      cmocka_unit_test(test_pool_held_back),
      cmocka_unit_test(test_env_seed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
