/* sizes/uv.c: what a handle or request costs in memory on libuv: sizeof
 * uv_timer_t, uv_tcp_t, uv_poll_t (its fd watcher), uv_udp_t, uv_process_t,
 * uv_fs_t and uv_write_t. */
#include "common.h"
#include <uv.h>

int main(void) {
  bench_result("sizeof-timer", "libuv", sizeof(uv_timer_t), "bytes");
  bench_result("sizeof-tcp", "libuv", sizeof(uv_tcp_t), "bytes");
  bench_result("sizeof-io", "libuv", sizeof(uv_poll_t), "bytes");
  bench_result("sizeof-udp", "libuv", sizeof(uv_udp_t), "bytes");
  bench_result("sizeof-process", "libuv", sizeof(uv_process_t), "bytes");
  bench_result("sizeof-fs-req", "libuv", sizeof(uv_fs_t), "bytes");
  bench_result("sizeof-write-req", "libuv", sizeof(uv_write_t), "bytes");
  return 0;
}
