/* sizes/ev.c: what a watcher costs in memory on libev: sizeof ev_timer, ev_io
 * and ev_child (its process watcher); libev has no stream, datagram or file
 * request type. */
#include "common.h"
#include <ev.h>

int main(void) {
  bench_result("sizeof-timer", "libev", sizeof(ev_timer), "bytes");
  printf("NA sizeof-tcp libev has no stream type\n");
  bench_result("sizeof-io", "libev", sizeof(ev_io), "bytes");
  printf("NA sizeof-udp libev has no datagram type\n");
  bench_result("sizeof-process", "libev", sizeof(ev_child), "bytes");
  printf("NA sizeof-fs-req libev has no file requests\n");
  printf("NA sizeof-write-req libev has no stream writes\n");
  return 0;
}
