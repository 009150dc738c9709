/* sizes/ev.c: what a watcher costs in memory on libev: sizeof ev_timer and
 * ev_io; libev has no stream type, so no tcp size. */
#include "common.h"
#include <ev.h>

int main(void) {
  bench_result("sizeof-timer", "libev", sizeof(ev_timer), "bytes");
  printf("NA sizeof-tcp libev has no stream type\n");
  bench_result("sizeof-io", "libev", sizeof(ev_io), "bytes");
  return 0;
}
