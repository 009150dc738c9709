/* sizes/uv.c: what a handle costs in memory on libuv: sizeof uv_timer_t,
 * uv_tcp_t and uv_poll_t (its fd watcher). */
#include "common.h"
#include <uv.h>

int main(void) {
  bench_result("sizeof-timer", "libuv", sizeof(uv_timer_t), "bytes");
  bench_result("sizeof-tcp", "libuv", sizeof(uv_tcp_t), "bytes");
  bench_result("sizeof-io", "libuv", sizeof(uv_poll_t), "bytes");
  return 0;
}
