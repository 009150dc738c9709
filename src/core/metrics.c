/* metrics.c: the callback trace (SOON_TRACE, soon_loop_set_trace) and the
 * loop metrics (soon_metrics_get): what SOON__TELL reports to when on. */
#include "core.h"

#include <stdatomic.h>
#include <stdio.h>

/* Power-of-two buckets: bucket 0 holds 0, bucket i holds [2^(i-1), 2^i).
 * Recording is a count and a clz, so no allocation or sort on the loop. */
typedef struct hist {
  uint64_t count, max;
  uint64_t bucket[65];
} hist;

struct soon__observer {
  soon_trace_cb trace;
  void *arg;
  uint64_t callbacks, callback_ns, longest_ns;
  int longest_kind;
  hist lag, pool_wait;
};

static void hist_add(hist *h, uint64_t v) {
  h->bucket[v ? 64 - __builtin_clzll(v) : 0]++;
  h->count++;
  if (v > h->max)
    h->max = v;
}

/* The upper bound of the bucket holding the p-th percentile, capped by max. */
static uint64_t hist_pct(const hist *h, unsigned p) {
  if (!h->count)
    return 0;
  uint64_t rank = (h->count * p + 99) / 100, seen = 0;
  for (unsigned i = 0; i < 65; i++) {
    seen += h->bucket[i];
    if (seen >= rank) {
      uint64_t top = i == 0 ? 0 : i == 64 ? UINT64_MAX : (1ull << i) - 1;
      return top < h->max ? top : h->max;
    }
  }
  return h->max;
}

/* The callback being timed on this thread, between begin and end. A
 * callback that runs another loop inside it is not timed: the inner loop's
 * callbacks take the record over. */
static _Thread_local struct {
  struct soon__observer *observer; /* NULL: none being timed */
  int kind;
  uint64_t t0;
} timing;

static const char *const phase_names[] = {
    "timers", "pending", "idle", "prepare", "poll", "check", "closing"};
static const char *const handle_names[] = {
    "unknown", "timer", "idle", "prepare", "check",   "io", "async",
    "tcp",     "pipe",  "udp",  "signal",  "process", "tty"};
static const char *const req_names[] = {
    "unknown",  "work",     "fs",          "write",      "connect",
    "shutdown", "udp_send", "getaddrinfo", "getnameinfo"};
_Static_assert(sizeof handle_names / sizeof *handle_names ==
                       SOON_HANDLE_TYPE_MAX &&
                   sizeof req_names / sizeof *req_names == SOON_REQ_TYPE_MAX,
               "a type without a name");

const char *soon_phase_name(soon_phase phase) {
  return (unsigned)phase < 7 ? phase_names[phase] : "unknown";
}

const char *soon_handle_type_name(soon_handle_type type) {
  return (unsigned)type < SOON_HANDLE_TYPE_MAX ? handle_names[type] : "unknown";
}

const char *soon_req_type_name(int type) {
  return (unsigned)type < SOON_REQ_TYPE_MAX ? req_names[type] : "unknown";
}

/* What SOON_TRACE=1 installs: one line per callback, stderr unbuffered so
 * it interleaves with the program's own output in the order things ran. */
static void trace_stderr(const soon_trace_event *ev, void *arg) {
  (void)arg;
  const char *type = ev->req_type ? soon_req_type_name(ev->req_type)
                                  : soon_handle_type_name(ev->handle_type);
  if (ev->has_status)
    fprintf(stderr, "soon: trace %llu %s %s %p status %d\n",
            (unsigned long long)ev->iteration, soon_phase_name(ev->phase), type,
            ev->ptr, ev->status);
  else
    fprintf(stderr, "soon: trace %llu %s %s %p\n",
            (unsigned long long)ev->iteration, soon_phase_name(ev->phase), type,
            ev->ptr);
}

static int observer_get(soon_loop *loop) {
  if (loop->observer)
    return 0;
  return (loop->observer = calloc(1, sizeof *loop->observer)) ? 0 : -ENOMEM;
}

int soon__observe_init(soon_loop *loop) {
  const char *env = getenv("SOON_TRACE");
  bool trace = env && *env && strcmp(env, "0") != 0;
  if (!trace && !(loop->flags & SOON_LOOP_METRICS))
    return 0;
  int err = observer_get(loop);
  if (err)
    return err;
  if (trace) {
    loop->observer->trace = trace_stderr;
    loop->observe |= SOON__OBSERVE_TRACE;
  }
  if (loop->flags & SOON_LOOP_METRICS)
    loop->observe |= SOON__OBSERVE_METRICS;
  return 0;
}

void soon__observe_free(soon_loop *loop) {
  free(loop->observer);
  loop->observer = NULL;
  loop->observe = 0;
}

int soon_loop_set_trace(soon_loop *loop, soon_trace_cb fn, void *arg) {
  if (!soon__loop_usable(loop))
    return -EINVAL;
  if (!fn) {
    loop->observe &= ~SOON__OBSERVE_TRACE;
    return 0;
  }
  int err = observer_get(loop);
  if (err)
    return err;
  loop->observer->trace = fn;
  loop->observer->arg = arg;
  loop->observe |= SOON__OBSERVE_TRACE;
  return 0;
}

/* The library's own callbacks (KIND_NONE) leave the observer as it is:
 * the user callback they run reports itself, begin and end. */
void soon__observe_begin(soon_loop *loop, int phase, int kind, const void *ptr,
                         int status) {
  if (kind == SOON__KIND_NONE)
    return;
  if (loop->observe & SOON__OBSERVE_TRACE) {
    bool req = kind & SOON__KIND_REQ;
    soon_trace_event ev = {
        .iteration = loop->iterations,
        .phase = (soon_phase)(phase == SOON__PHASE_LOOP ? loop->phase : phase),
        .handle_type = req ? SOON_UNKNOWN_HANDLE : (soon_handle_type)kind,
        .req_type = req ? kind & ~SOON__KIND_REQ : 0,
        .ptr = ptr,
        .has_status = status != SOON__NO_STATUS,
        .status = status != SOON__NO_STATUS ? status : 0,
    };
    loop->observer->trace(&ev, loop->observer->arg);
  }
  if (loop->observe & SOON__OBSERVE_METRICS) {
    timing.observer = loop->observer;
    timing.kind = kind;
    timing.t0 = soon_hrtime();
  }
}

void soon__observe_end(void) {
  struct soon__observer *o = timing.observer;
  /* Nothing begun: the library's own callback, or trace only. */
  if (!o)
    return;
  timing.observer = NULL;
  int kind = timing.kind;
  uint64_t ns = soon_hrtime() - timing.t0;
  o->callbacks++;
  o->callback_ns += ns;
  if (ns >= o->longest_ns) {
    o->longest_ns = ns;
    o->longest_kind = kind;
  }
}

/* Lateness against the loop's clock: the monotonic clock in ns, or under a
 * manual clock its own time (each timer then runs at its deadline). */
void soon__metrics_lag(soon_loop *loop, uint64_t due_ms) {
  uint64_t now = (loop->flags & SOON_LOOP_MANUAL_CLOCK) ? loop->time * 1000000u
                                                        : soon_hrtime();
  uint64_t due =
      due_ms > UINT64_MAX / 1000000u ? UINT64_MAX : due_ms * 1000000u;
  hist_add(&loop->observer->lag, now > due ? now - due : 0);
}

void soon__metrics_pool_wait(soon_loop *loop, uint64_t ns) {
  hist_add(&loop->observer->pool_wait, ns);
}

int soon_metrics_get(const soon_loop *loop, soon_metrics *m) {
  if (!soon__loop_usable(loop) || !m)
    return -EINVAL;
  *m = (soon_metrics){.iterations = loop->iterations, .events = loop->events};
  const struct soon__observer *o = loop->observer;
  if (!(loop->observe & SOON__OBSERVE_METRICS) || !o)
    return 0;
  m->idle_ns = atomic_load_explicit(&loop->idle_ns, memory_order_relaxed);
  m->callbacks = o->callbacks;
  m->callback_ns = o->callback_ns;
  m->longest_callback_ns = o->longest_ns;
  if (o->longest_kind & SOON__KIND_REQ)
    m->longest_req_type = o->longest_kind & ~SOON__KIND_REQ;
  else
    m->longest_handle_type = (soon_handle_type)o->longest_kind;
  m->timers = o->lag.count;
  m->lag_p50_ns = hist_pct(&o->lag, 50);
  m->lag_p99_ns = hist_pct(&o->lag, 99);
  m->lag_max_ns = o->lag.max;
  m->pool_jobs = o->pool_wait.count;
  m->pool_wait_p50_ns = hist_pct(&o->pool_wait, 50);
  m->pool_wait_p99_ns = hist_pct(&o->pool_wait, 99);
  return 0;
}

uint64_t soon_metrics_idle_time(const soon_loop *loop) {
  return loop ? atomic_load_explicit(&loop->idle_ns, memory_order_relaxed) : 0;
}
