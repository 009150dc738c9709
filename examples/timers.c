/* timers.c: the event loop in one screen. Three timers and an idle-free loop:
 * a ticker repeats, a one-shot stops it, and the program ends when nothing is
 * left. */
#include <soon.h>
#include <stdio.h>

static uint64_t start;

static void say(soon_loop *loop, const char *what) {
  printf("[%4llu ms] %s\n", (unsigned long long)(soon_now(loop) - start), what);
}

static void on_tick(soon_timer *ticker) {
  int *ticks = ticker->data;
  ++*ticks;
  say(ticker->loop, "tick");
}

static void on_done(soon_timer *done) {
  soon_timer *ticker = done->data;
  say(done->loop, "done: stopping the ticker");
  /* Closing is asynchronous too: the handles are released in the close phase.
   */
  soon_close((soon_handle *)ticker, NULL);
  soon_close((soon_handle *)done, NULL);
}

static void on_first(soon_timer *first) {
  say(first->loop, "a one-shot timer fired");
  soon_close((soon_handle *)first, NULL);
}

int main(void) {
  soon_loop loop;
  soon_timer ticker, done, first;
  int ticks = 0, err;

  if ((err = soon_loop_init(&loop)) != 0) {
    fprintf(stderr, "soon_loop_init: %s\n", soon_strerror(err));
    return 1;
  }
  start = soon_now(&loop);
  printf("backend: %s\n", soon_backend_name(&loop));

  soon_timer_init(&loop, &ticker);
  ticker.data = &ticks;
  soon_timer_start(&ticker, on_tick, 20, 20); /* every 20 ms */

  soon_timer_init(&loop, &first);
  soon_timer_start(&first, on_first, 30, 0);

  soon_timer_init(&loop, &done);
  done.data = &ticker;
  soon_timer_start(&done, on_done, 110, 0);

  say(&loop, "before running the loop");
  soon_run(&loop, SOON_RUN_DEFAULT); /* returns when no handle is left */
  say(&loop, "after the loop: nothing left to wait for");

  printf("%d ticks\n", ticks);
  return soon_loop_close(&loop) == 0 && ticks >= 4 ? 0 : 1;
}
