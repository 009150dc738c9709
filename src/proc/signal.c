/* signal.c: signal handles. A process-wide handler counts each arrival for
 * every loop that watches the signal and wakes it; the loop calls handles. */
#include "proc.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* The handler may only touch lock-free atomics and call write(2). */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_POINTER_LOCK_FREE == 2,
               "the signal handler needs lock-free atomics");

/* One per loop that has active signal handles. The handler reaches it
 * through the registry list without a lock, so it is freed only after it is
 * unlinked and no handler is still walking the list (see group_release). */
typedef struct soon__signal_loop {
  _Atomic(struct soon__signal_loop *) next;
  soon_loop *loop;
  soon_async async;   /* the loop's eventfd wakeup, sent from the handler */
  soon_queue handles; /* this loop's active handles, any signal */
  unsigned nhandles;
  int telling; /* set while tell_arrivals runs: freeing waits for its end */
  atomic_uint watch[NSIG];   /* active handles per signal, for the handler */
  atomic_uint arrived[NSIG]; /* arrivals the loop has not told yet */
} soon__signal_loop;

/* Start and stop (on any loop's thread) serialise on reg_lock; the handler
 * never takes it, it only reads reg_head and the groups' atomics. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(soon__signal_loop *) reg_head;
static atomic_int in_handler;    /* handlers walking the list right now */
static unsigned sig_users[NSIG]; /* active handles, all loops */
static struct sigaction sig_saved[NSIG]; /* disposition before the first */

/* A handle's state: started with soon_signal_start_oneshot. */
enum { SIGNAL_ONESHOT = 1 };

static void signal_close(soon_handle *h) { soon_signal_stop((soon_signal *)h); }
static const soon__handle_ops signal_ops = {.close = signal_close};

/* Async-signal-safe: atomics, and soon_async_send's write(2) to an eventfd.
 * errno is preserved by soon_async_send. */
static void on_signal(int signum) {
  atomic_fetch_add(&in_handler, 1);
  for (soon__signal_loop *g = atomic_load(&reg_head); g;
       g = atomic_load(&g->next)) {
    if (atomic_load(&g->watch[signum]) > 0) {
      atomic_fetch_add(&g->arrived[signum], 1);
      soon_async_send(&g->async);
    }
  }
  atomic_fetch_sub(&in_handler, 1);
}

static void tell_arrivals(soon_async *a);

/* Under reg_lock. */
static soon__signal_loop *group_find(soon_loop *loop) {
  for (soon__signal_loop *g = atomic_load(&reg_head); g;
       g = atomic_load(&g->next))
    if (g->loop == loop)
      return g;
  return NULL;
}

/* Under reg_lock. Published only once complete: the handler may see it at
 * once. */
static int group_get(soon_loop *loop, soon__signal_loop **out) {
  soon__signal_loop *g = group_find(loop);
  if (!g) {
    g = calloc(1, sizeof *g);
    if (!g)
      return -ENOMEM;
    int err = soon__async_init_internal(loop, &g->async, tell_arrivals);
    if (err) {
      free(g);
      return err;
    }
    g->loop = loop;
    soon__queue_init(&g->handles);
    for (int i = 0; i < NSIG; i++) {
      atomic_init(&g->watch[i], 0);
      atomic_init(&g->arrived[i], 0);
    }
    atomic_init(&g->next, atomic_load(&reg_head));
    atomic_store(&reg_head, g);
  }
  *out = g;
  return 0;
}

/* Under reg_lock. Once unlinked, a handler that starts later cannot find g,
 * and one that started earlier has finished when in_handler reads 0 (both
 * seq_cst), so nothing can touch g or write its loop's eventfd afterwards. */
static void group_release(soon__signal_loop *g) {
  _Atomic(soon__signal_loop *) *link = &reg_head;
  while (atomic_load(link) != g)
    link = &atomic_load(link)->next;
  atomic_store(link, atomic_load(&g->next));
  while (atomic_load(&in_handler))
    sched_yield();
  soon__async_close(&g->async);
  free(g);
}

static int start(soon_signal *h, soon_signal_cb cb, int signum, int oneshot) {
  if (!h || h->type != SOON_SIGNAL || !cb || soon__closing((soon_handle *)h))
    return -EINVAL;
  if (signum <= 0 || signum >= NSIG || signum == SIGKILL || signum == SIGSTOP)
    return -EINVAL;
  if (soon__handle_active((soon_handle *)h)) {
    if (h->signum == signum) {
      h->cb = cb;
      h->state = oneshot ? SIGNAL_ONESHOT : 0;
      return 0;
    }
    soon_signal_stop(h);
  }
  pthread_mutex_lock(&reg_lock);
  soon__signal_loop *g;
  int err = group_get(h->loop, &g);
  if (!err && sig_users[signum] == 0) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigfillset(&sa.sa_mask);  /* no nesting: the handler runs start to end */
    sa.sa_flags = SA_RESTART; /* the user's blocking calls carry on */
    if (sigaction(signum, &sa, &sig_saved[signum]) < 0) {
      err = -errno;
      if (g->nhandles == 0 && !g->telling)
        group_release(g);
    }
  }
  if (err) {
    pthread_mutex_unlock(&reg_lock);
    return err;
  }
  sig_users[signum]++;
  g->nhandles++;
  atomic_fetch_add(&g->watch[signum], 1);
  soon__queue_insert_tail(&g->handles, &h->signal_queue);
  pthread_mutex_unlock(&reg_lock);
  h->group = g;
  h->cb = cb;
  h->signum = signum;
  h->state = oneshot ? SIGNAL_ONESHOT : 0;
  soon__handle_start((soon_handle *)h);
  return 0;
}

static void signal_fields_init(soon_signal *h) {
  h->cb = NULL;
  h->signum = 0;
  h->state = 0;
  h->group = NULL;
  soon__queue_init(&h->signal_queue);
}

int soon_signal_init(soon_loop *loop, soon_signal *h) {
  if (!soon__loop_usable(loop) || !h)
    return -EINVAL;
  soon__handle_init(loop, (soon_handle *)h, SOON_SIGNAL, &signal_ops);
  signal_fields_init(h);
  return 0;
}

void soon__signal_init_internal(soon_loop *loop, soon_signal *h) {
  soon__handle_init_internal(loop, (soon_handle *)h, SOON_SIGNAL, &signal_ops);
  signal_fields_init(h);
}

int soon_signal_start(soon_signal *h, soon_signal_cb cb, int signum) {
  return start(h, cb, signum, 0);
}

int soon_signal_start_oneshot(soon_signal *h, soon_signal_cb cb, int signum) {
  return start(h, cb, signum, 1);
}

int soon_signal_stop(soon_signal *h) {
  if (!h || h->type != SOON_SIGNAL)
    return -EINVAL;
  if (!soon__handle_active((soon_handle *)h))
    return 0;
  soon__signal_loop *g = h->group;
  int signum = h->signum;
  pthread_mutex_lock(&reg_lock);
  soon__queue_remove(&h->signal_queue);
  g->nhandles--;
  /* Arrivals counted for handles that are all gone are not owed to a
   * handle started later. */
  if (atomic_fetch_sub(&g->watch[signum], 1) == 1)
    atomic_store(&g->arrived[signum], 0);
  if (--sig_users[signum] == 0)
    sigaction(signum, &sig_saved[signum], NULL);
  if (g->nhandles == 0 && !g->telling)
    group_release(g);
  pthread_mutex_unlock(&reg_lock);
  h->group = NULL;
  soon__handle_stop((soon_handle *)h);
  return 0;
}

/* Calls every handle of g watching signum once. Handles are moved back to
 * g->handles one by one before their callback, so a callback may stop,
 * close or start any handle: one stopped here is simply no longer in todo,
 * one started here waits for the next arrival. */
static void tell(soon__signal_loop *g, int signum) {
  soon_queue todo;
  soon__queue_move(&g->handles, &todo);
  while (!soon__queue_empty(&todo)) {
    soon_signal *h = soon__container_of(todo.next, soon_signal, signal_queue);
    soon__queue_remove(&h->signal_queue);
    soon__queue_insert_tail(&g->handles, &h->signal_queue);
    if (h->signum != signum)
      continue;
    if (h->state == SIGNAL_ONESHOT)
      soon_signal_stop(h);
    /* A process's SIGCHLD watcher is soon's own: its exit_cb reports
     * itself. The signal number is not a status: it is h->signum. */
    SOON__TELL(h->loop, SOON__PHASE_LOOP,
               (h->flags & SOON__INTERNAL) ? SOON__KIND_NONE : SOON_SIGNAL, h,
               SOON__NO_STATUS, h->cb(h, signum));
  }
}

/* On the loop thread, after the handler's async send. g stays allocated
 * while this runs even if a callback stops the loop's last handle. */
static void tell_arrivals(soon_async *a) {
  soon__signal_loop *g = soon__container_of(a, soon__signal_loop, async);
  g->telling = 1;
  for (int s = 1; s < NSIG; s++) {
    unsigned n = atomic_exchange(&g->arrived[s], 0);
    while (n-- > 0 && atomic_load(&g->watch[s]) > 0)
      tell(g, s);
  }
  g->telling = 0;
  if (g->nhandles == 0) {
    pthread_mutex_lock(&reg_lock);
    group_release(g);
    pthread_mutex_unlock(&reg_lock);
  }
}
