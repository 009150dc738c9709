/* sizes/soon.c: what a handle or request costs in memory on soon: sizeof each
 * struct the caller embeds that has a peer row (the same on every backend). */
#include "../soon_util.h"

int main(void) {
  bench_result("sizeof-timer", "soon", sizeof(soon_timer), "bytes");
  bench_result("sizeof-tcp", "soon", sizeof(soon_tcp), "bytes");
  bench_result("sizeof-io", "soon", sizeof(soon_io), "bytes");
  bench_result("sizeof-udp", "soon", sizeof(soon_udp), "bytes");
  bench_result("sizeof-process", "soon", sizeof(soon_process), "bytes");
  bench_result("sizeof-fs-req", "soon", sizeof(soon_fs_req), "bytes");
  bench_result("sizeof-write-req", "soon", sizeof(soon_write_req), "bytes");
  return 0;
}
