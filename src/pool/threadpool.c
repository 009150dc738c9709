/* threadpool.c: worker threads that run blocking work, and the hand-back of
 * results to loops. Each loop has a done queue drained by one internal async
 * handle: many completions, one wakeup. */
#include "../core/core.h"

#include <pthread.h>
#include <stdlib.h>

struct soon_pool {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  soon_queue fast, slow; /* queued jobs, FIFO per lane */
  unsigned size;
  unsigned slow_running, slow_max;
  unsigned jobs; /* queued or running */
  int stop;
  pthread_t *threads;
};

/* A loop's side of the hand-back. The worker posts under mu and sends the
 * async while still holding it, so once the loop has taken mu at close no
 * worker can touch this struct again. */
struct soon__loop_pool {
  pthread_mutex_t mu;
  soon_queue done;
  soon_async async;
  /* Chaos only: completions held back, held[i] due i + 1 drains later. */
  soon_queue held[3];
};

static void post_done(soon_work_req *w) {
  struct soon__loop_pool *link = w->loop->pool_link;
  pthread_mutex_lock(&link->mu);
  bool was_empty = soon__queue_empty(&link->done);
  soon__queue_insert_tail(&link->done, &w->wq);
  if (was_empty) /* the loop drains everything at once: one wakeup */
    soon_async_send(&link->async);
  pthread_mutex_unlock(&link->mu);
}

/* Slow jobs may hold at most slow_max workers; the others stay free for
 * fast ones. A worker prefers fast jobs. */
static soon_queue *next_job(struct soon_pool *p) {
  if (!soon__queue_empty(&p->fast))
    return p->fast.next;
  if (!soon__queue_empty(&p->slow) && p->slow_running < p->slow_max)
    return p->slow.next;
  return NULL;
}

static void *worker(void *arg) {
  struct soon_pool *p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    soon_queue *q;
    while (!(q = next_job(p)) && !p->stop)
      pthread_cond_wait(&p->cond, &p->mu);
    if (!q)
      break;
    soon_work_req *w = soon__container_of(q, soon_work_req, wq);
    soon__queue_remove(q);
    w->queued = 0;
    bool slow = w->slow;
    p->slow_running += slow;
    pthread_mutex_unlock(&p->mu);

    if (w->queued_ns) /* its loop measures the queue wait */
      w->started_ns = soon_hrtime();

    w->work_cb(w);

    /* Count the job finished before posting it: once posted, its loop may
     * run the after callback, close, and free a shared pool at once. */
    pthread_mutex_lock(&p->mu);
    p->jobs--;
    if (slow) {
      p->slow_running--;
      if (!soon__queue_empty(&p->slow)) /* a waiting slow job may go now */
        pthread_cond_signal(&p->cond);
    }
    pthread_mutex_unlock(&p->mu);
    post_done(w);
    pthread_mutex_lock(&p->mu);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static void pool_join(struct soon_pool *p, unsigned n) {
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->mu);
  for (unsigned i = 0; i < n; i++)
    pthread_join(p->threads[i], NULL);
  pthread_cond_destroy(&p->cond);
  pthread_mutex_destroy(&p->mu);
  free(p->threads);
  free(p);
}

int soon_pool_new(soon_pool **out, const soon_pool_options *opts) {
  if (!out)
    return -EINVAL;
  unsigned size = opts ? opts->size : 0;
  if (size > 1024)
    return -EINVAL;
  if (size == 0 && soon__env_pool_size(4, &size) != 0)
    return -EINVAL;
  struct soon_pool *p = calloc(1, sizeof *p);
  if (!p || !(p->threads = calloc(size, sizeof *p->threads))) {
    free(p);
    return -ENOMEM;
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cond, NULL);
  soon__queue_init(&p->fast);
  soon__queue_init(&p->slow);
  p->size = size;
  p->slow_max = size / 2 ? size / 2 : 1;

  /* Small stacks: work callbacks are blocking syscalls, not deep recursion,
   * and 1,024 workers at 8 MiB each would reserve 8 GiB of address space. */
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  for (unsigned i = 0; i < size; i++) {
    int err = pthread_create(&p->threads[i], &attr, worker, p);
    if (err) {
      pthread_attr_destroy(&attr);
      pool_join(p, i);
      return -err;
    }
  }
  pthread_attr_destroy(&attr);
  *out = p;
  return 0;
}

int soon_pool_free(soon_pool *p) {
  if (!p)
    return -EINVAL;
  pthread_mutex_lock(&p->mu);
  unsigned jobs = p->jobs;
  pthread_mutex_unlock(&p->mu);
  if (jobs)
    return -EBUSY;
  pool_join(p, p->size);
  return 0;
}

unsigned soon_pool_size(const soon_pool *p) { return p ? p->size : 0; }

/* Chaos: a finished job waits 0-3 more iterations, as if its worker had
 * been slow, and what is due runs in random order (workers promise no order
 * among themselves). While some wait, the async is sent again, so the next
 * iteration drains once more: one drain per iteration. */
static void chaos_hold(struct soon__loop_pool *link, soon_queue *todo) {
  soon_loop *loop = link->async.loop;
  soon_queue fresh;
  soon__queue_move(todo, &fresh);
  soon__queue_move(&link->held[0], todo);
  soon__queue_move(&link->held[1], &link->held[0]);
  soon__queue_move(&link->held[2], &link->held[1]);
  while (!soon__queue_empty(&fresh)) {
    soon_queue *q = fresh.next;
    unsigned k = soon__chaos_below(loop, 4);
    soon__queue_remove(q);
    soon__queue_insert_tail(k ? &link->held[k - 1] : todo, q);
  }
  soon__chaos_shuffle(loop, todo);
  for (int i = 0; i < 3; i++)
    if (!soon__queue_empty(&link->held[i])) {
      soon_async_send(&link->async);
      break;
    }
}

/* The loop thread: run the after callbacks of everything posted so far. */
static void drain_done(soon_async *a) {
  struct soon__loop_pool *link =
      soon__container_of(a, struct soon__loop_pool, async);
  soon_queue todo;
  pthread_mutex_lock(&link->mu);
  soon__queue_move(&link->done, &todo);
  pthread_mutex_unlock(&link->mu);
  if (SOON__CHAOS(a->loop))
    chaos_hold(link, &todo);
  while (!soon__queue_empty(&todo)) {
    soon_work_req *w = soon__container_of(todo.next, soon_work_req, wq);
    soon__queue_remove(&w->wq);
    soon__req_done((soon_req *)w);
    soon_loop *loop = w->loop;
    if (w->queued_ns && w->started_ns)
      soon__metrics_pool_wait(loop, w->started_ns - w->queued_ns);
    /* fs and dns trace their own callback, with their request's type. */
    SOON__TELL(loop, SOON_PHASE_POLL,
               w->inner ? SOON__KIND_NONE : SOON__KIND_REQ | SOON_WORK, w,
               w->status, w->after_work_cb(w, w->status));
  }
}

/* Called by soon_loop_close once no request is active, so every job of
 * this loop has been posted and its after callback has run. */
static void loop_pool_fini(soon_loop *loop) {
  struct soon__loop_pool *link = loop->pool_link;
  if (loop->owns_pool)
    pool_join(loop->pool, loop->pool->size);
  pthread_mutex_lock(&link->mu); /* wait out a worker still posting */
  pthread_mutex_unlock(&link->mu);
  soon__async_close(&link->async);
  pthread_mutex_destroy(&link->mu);
  free(link);
  loop->pool_link = NULL;
  loop->pool = NULL;
  loop->owns_pool = 0;
  loop->pool_fini = NULL;
}

/* Made on first use, so loops that never touch the pool start no thread. */
static int loop_pool_init(soon_loop *loop) {
  if (loop->pool_link)
    return 0;
  struct soon__loop_pool *link = calloc(1, sizeof *link);
  if (!link)
    return -ENOMEM;
  int err = soon__async_init_internal(loop, &link->async, drain_done);
  if (err) {
    free(link);
    return err;
  }
  if (!loop->pool) {
    err = soon_pool_new(&loop->pool, NULL);
    if (err) {
      soon__async_close(&link->async);
      free(link);
      return err;
    }
    loop->owns_pool = 1;
  }
  pthread_mutex_init(&link->mu, NULL);
  soon__queue_init(&link->done);
  for (int i = 0; i < 3; i++)
    soon__queue_init(&link->held[i]);
  loop->pool_link = link;
  loop->pool_fini = loop_pool_fini;
  return 0;
}

/* The job to queue a new one before: one of the lane's, or the lane's head
 * (its tail), each with equal chance. Under the pool's lock. */
static soon_queue *chaos_place(soon_loop *loop, soon_queue *lane) {
  unsigned n = 0;
  for (soon_queue *q = lane->next; q != lane; q = q->next)
    n++;
  soon_queue *at = lane->next;
  for (unsigned k = soon__chaos_below(loop, n + 1); k > 0; k--)
    at = at->next;
  return at;
}

int soon__work_submit(soon_loop *loop, soon_work_req *w, soon_work_cb work_cb,
                      soon_after_work_cb after_cb, soon_work_kind kind,
                      bool inner) {
  if (!soon__loop_usable(loop) || !w || !work_cb || !after_cb)
    return -EINVAL;
  int err = loop_pool_init(loop);
  if (err)
    return err;
  w->work_cb = work_cb;
  w->after_work_cb = after_cb;
  w->slow = kind == SOON_WORK_SLOW;
  w->status = 0;
  w->queued = 1;
  w->inner = inner;
  w->started_ns = 0;
  w->queued_ns = (loop->observe & SOON__OBSERVE_METRICS) ? soon_hrtime() : 0;
  soon__req_start((soon_req *)w, loop, SOON_WORK);
  struct soon_pool *p = loop->pool;
  soon_queue *lane = kind == SOON_WORK_SLOW ? &p->slow : &p->fast;
  pthread_mutex_lock(&p->mu);
  if (SOON__CHAOS(loop)) /* chaos: jobs reach workers in random order */
    lane = chaos_place(loop, lane);
  soon__queue_insert_tail(lane, &w->wq);
  p->jobs++;
  pthread_cond_signal(&p->cond);
  pthread_mutex_unlock(&p->mu);
  return 0;
}

int soon_work(soon_loop *loop, soon_work_req *req, soon_work_cb work_cb,
              soon_after_work_cb after_work_cb) {
  return soon__work_submit(loop, req, work_cb, after_work_cb, SOON_WORK_FAST,
                           false);
}

int soon_work_slow(soon_loop *loop, soon_work_req *req, soon_work_cb work_cb,
                   soon_after_work_cb after_work_cb) {
  return soon__work_submit(loop, req, work_cb, after_work_cb, SOON_WORK_SLOW,
                           false);
}

/* soon_cancel of a request the pool runs: only while it waits in a lane. */
int soon__work_cancel(soon_work_req *w) {
  if (!w->loop)
    return -EINVAL; /* never submitted */
  struct soon_pool *p = w->loop->pool;
  if (!p)
    return -EBUSY; /* finished, and the loop closed since */
  pthread_mutex_lock(&p->mu);
  bool queued = w->queued;
  if (queued) {
    soon__queue_remove(&w->wq);
    w->queued = 0;
    p->jobs--;
  }
  pthread_mutex_unlock(&p->mu);
  if (!queued)
    return -EBUSY;
  /* Through the done queue, so the callback runs from soon_run, never from
   * inside soon_cancel. */
  w->status = -ECANCELED;
  post_done(w);
  return 0;
}

/* By request type: an fs request may run in the backend instead (fs.c
 * knows); the others that can be cancelled start with a work request. */
int soon_cancel(soon_req *req) {
  if (!req)
    return -EINVAL;
  switch (req->type) {
  case SOON_WORK:
    return soon__work_cancel((soon_work_req *)req);
  case SOON_FS:
    return soon__fs_cancel((soon_fs_req *)req);
  case SOON_GETADDRINFO:
  case SOON_GETNAMEINFO:
    return soon__work_cancel(&((soon__pool_req *)req)->work);
  default:
    return -EINVAL;
  }
}
