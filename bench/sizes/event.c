/* sizes/event.c: struct event is libevent's timer and fd watcher; its
 * stream (struct bufferevent) is opaque, so it has no size here, and it has
 * no datagram, process or file request type. */
#include "common.h"
#include <event2/event_struct.h>

int main(void) {
  bench_result("sizeof-timer", "libevent", sizeof(struct event), "bytes");
  printf("NA sizeof-tcp libevent struct bufferevent is opaque (heap-allocated "
         "by libevent)\n");
  bench_result("sizeof-io", "libevent", sizeof(struct event), "bytes");
  printf("NA sizeof-udp libevent has no datagram type\n");
  printf("NA sizeof-process libevent has no process type\n");
  printf("NA sizeof-fs-req libevent has no file requests\n");
  printf("NA sizeof-write-req libevent writes through the opaque "
         "bufferevent\n");
  return 0;
}
