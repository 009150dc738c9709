/* sizes/event.c: struct event is libevent's timer and fd watcher; its
 * stream (struct bufferevent) is opaque, so it has no size here. */
#include "common.h"
#include <event2/event_struct.h>

int main(void) {
  bench_result("sizeof-timer", "libevent", sizeof(struct event), "bytes");
  printf("NA sizeof-tcp libevent struct bufferevent is opaque (heap-allocated "
         "by libevent)\n");
  bench_result("sizeof-io", "libevent", sizeof(struct event), "bytes");
  return 0;
}
