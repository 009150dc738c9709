/* op.c: completions of operations a completion backend (io_uring) ran natively.
 * Queued by the backend during its wait, dispatched by the loop right after it.
 */
#include "core.h"

#include <stdlib.h>

/* One report of an op: a multishot op may have several in one wait, so the
 * report, not the op, is what is queued. */
struct soon__done {
  soon__op *op;
  int64_t res;
  void *data;
  unsigned more;
  unsigned seq; /* its place in the wait's order, for the chaos shuffle */
};

/* Bounds one iteration's completions; the backend keeps the rest for the
 * next wait, which then does not block. */
enum { DONE_MAX = 512 };

int soon__op_complete(soon_loop *loop, soon__op *op, int64_t res, void *data,
                      unsigned more) {
  if (!loop->done && !(loop->done = malloc(DONE_MAX * sizeof *loop->done)))
    return -ENOSPC;
  if (loop->ndone == DONE_MAX)
    return -ENOSPC;
  loop->done[loop->ndone++] = (struct soon__done){op, res, data, more, 0};
  return 0;
}

/* Chaos: a random order across ops, but each op's own reports (a
 * multishot receive's chunks) stay in the order they came. Fisher-Yates,
 * then each op's reports are put back in order over the slots they got. */
void soon__op_chaos_shuffle(soon_loop *loop) {
  struct soon__done *d = loop->done, t;
  unsigned n = loop->ndone;
  for (unsigned i = 0; i < n; i++)
    d[i].seq = i;
  for (unsigned i = n; i > 1; i--) {
    unsigned k = soon__chaos_below(loop, i);
    t = d[i - 1], d[i - 1] = d[k], d[k] = t;
  }
  for (unsigned i = 0; i < n; i++)
    for (unsigned j = i + 1; j < n; j++)
      if (d[j].op == d[i].op && d[j].seq < d[i].seq)
        t = d[i], d[i] = d[j], d[j] = t;
}

/* Only wait adds reports, so none arrive while these callbacks run. */
void soon__op_dispatch(soon_loop *loop) {
  for (unsigned i = 0; i < loop->ndone; i++) {
    soon__op *op = loop->done[i].op;
    op->res = loop->done[i].res;
    op->data = loop->done[i].data;
    op->more = loop->done[i].more != 0;
    op->in_flight = op->more; /* done may submit it again */
    op->done(op);
  }
  loop->ndone = 0;
}

void soon__op_free(soon_loop *loop) {
  free(loop->done);
  loop->done = NULL;
}

int soon__op_can(soon_loop *loop, int code) {
  return loop->backend->can && loop->backend->can(loop->backend_state, code);
}

int soon__op_submit(soon_loop *loop, soon__op *op) {
  if (!loop->backend->submit)
    return -ENOTSUP;
  int err = loop->backend->submit(loop->backend_state, op);
  if (err == 0)
    op->in_flight = 1;
  return err;
}

/* An op whose last report has run is answered here: its loop may be closed
 * since, and the backend would only search for it. */
int soon__op_cancel(soon_loop *loop, soon__op *op) {
  if (!op->in_flight || !loop->backend->cancel)
    return -EBUSY;
  return loop->backend->cancel(loop->backend_state, op);
}
