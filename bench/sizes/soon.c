/* sizes/soon.c: what a handle costs in memory on soon: sizeof the timer, tcp
 * and fd watcher structs the caller embeds (the same on every backend). */
#include "../soon_util.h"

int main(void) {
  bench_result("sizeof-timer", "soon", sizeof(soon_timer), "bytes");
  bench_result("sizeof-tcp", "soon", sizeof(soon_tcp), "bytes");
  bench_result("sizeof-io", "soon", sizeof(soon_io), "bytes");
  return 0;
}
