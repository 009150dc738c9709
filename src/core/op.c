/* op.c: completions of operations a completion backend (io_uring) ran natively.
 * Queued by the backend during its wait, dispatched by the loop right after it.
 */
#include "core.h"

void soon__op_complete(soon_loop *loop, soon__op *op) {
  op->next = NULL;
  if (loop->done_tail)
    loop->done_tail->next = op;
  else
    loop->done_head = op;
  loop->done_tail = op;
}

/* Ops completed by these callbacks (none can: completions only arrive in
 * wait) would wait for the next iteration. */
void soon__op_dispatch(soon_loop *loop) {
  soon__op *op = loop->done_head;
  loop->done_head = loop->done_tail = NULL;
  while (op) {
    soon__op *next = op->next;
    op->done(op);
    op = next;
  }
}

int soon__op_submit(soon_loop *loop, soon__op *op) {
  if (!loop->backend->submit)
    return -ENOTSUP;
  return loop->backend->submit(loop->backend_state, op);
}
