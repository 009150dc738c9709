/* main.c: the smallest program using an installed soon; exits 0 if a timer
 * fired. Built by cmake/install-test.cmake through find_package and through
 * pkg-config. */
#include <soon.h>

static int fired;

static void on_timer(soon_timer *t) {
  fired = 1;
  soon_close((soon_handle *)t, NULL);
}

int main(void) {
  soon_loop loop;
  soon_timer t;
  if (soon_loop_init(&loop) || soon_timer_init(&loop, &t) ||
      soon_timer_start(&t, on_timer, 1, 0))
    return 1;
  soon_run(&loop, SOON_RUN_DEFAULT);
  return !(fired && soon_loop_close(&loop) == 0);
}
