/* reqq.c: running the owed callbacks of a closed handle's request queue
 * (stream writes, UDP sends); the queue and its hot run are in net.h. */
#include "net.h"

void soon__reqq_run_closed(soon__reqq *q, void (*tell)(soon__qnode *n)) {
  while (soon__reqq_owed(q)) {
    soon_queue *n = q->all.next;
    soon__queue_remove(n);
    tell(soon__container_of(n, soon__qnode, queue));
  }
}
