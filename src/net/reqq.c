/* reqq.c: running the owed callbacks of a handle's request queue (stream
 * writes, UDP sends); the queue itself is in net.h. */
#include "net.h"

void soon__reqq_run(soon__reqq *q, const soon_handle *h,
                    void (*tell)(soon__qnode *n)) {
  for (int round = 0;
       round < SOON__REQQ_ROUNDS && soon__reqq_owed(q) && !soon__closing(h);
       round++) {
    soon_queue *last = q->waiting->prev; /* this round's last */
    bool was_last;
    do {
      soon_queue *n = q->all.next;
      was_last = n == last;
      soon__queue_remove(n);
      tell(soon__container_of(n, soon__qnode, queue));
    } while (!was_last && !soon__closing(h));
  }
}

void soon__reqq_run_closed(soon__reqq *q, void (*tell)(soon__qnode *n)) {
  while (soon__reqq_owed(q)) {
    soon_queue *n = q->all.next;
    soon__queue_remove(n);
    tell(soon__container_of(n, soon__qnode, queue));
  }
}
