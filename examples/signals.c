/* signals.c: a SIGINT counter beside a ticking timer; the third ^C ends it.
 * With --self-test the timer raises the SIGINTs itself: it runs unattended. */
#include <signal.h>
#include <soon.h>
#include <stdio.h>
#include <string.h>

enum { QUIT_AFTER = 3 };

typedef struct app {
  soon_signal sigint;
  soon_timer ticker;
  int self_test;
  int interrupts;
  int ticks;
} app;

/* On the loop thread, as an ordinary callback: it may print, allocate, close
 * handles. The real signal handler (inside soon) only noted the arrival. */
static void on_sigint(soon_signal *sig, int signum) {
  app *a = sig->data;
  a->interrupts++;
  printf("%s %d of %d\n", signum == SIGINT ? "SIGINT" : "signal", a->interrupts,
         QUIT_AFTER);
  if (a->interrupts == QUIT_AFTER) {
    /* Nothing left to wait for: soon_run returns, and SIGINT is back to
     * what it was before (here: kill the process). */
    soon_close((soon_handle *)&a->sigint, NULL);
    soon_close((soon_handle *)&a->ticker, NULL);
  }
}

static void on_tick(soon_timer *t) {
  app *a = t->data;
  a->ticks++;
  printf("tick %d\n", a->ticks);
  fflush(stdout);
  if (a->self_test) {
    if (a->ticks > 100) { /* a lost signal: fail rather than hang */
      fprintf(stderr, "SIGINT never arrived\n");
      soon_stop(t->loop);
      return;
    }
    raise(SIGINT); /* as if the user had pressed ^C */
  }
}

int main(int argc, char **argv) {
  app a = {0};
  soon_loop loop;
  a.self_test = argc > 1 && strcmp(argv[1], "--self-test") == 0;
  if (soon_loop_init(&loop) != 0)
    return 1;

  soon_signal_init(&loop, &a.sigint);
  a.sigint.data = &a;
  soon_signal_start(&a.sigint, on_sigint, SIGINT);

  soon_timer_init(&loop, &a.ticker);
  a.ticker.data = &a;
  soon_timer_start(&a.ticker, on_tick, a.self_test ? 10 : 500,
                   a.self_test ? 10 : 500);

  if (!a.self_test)
    printf("press ^C %d times to quit\n", QUIT_AFTER);
  soon_run(&loop, SOON_RUN_DEFAULT);
  printf("%d interrupts, %d ticks: bye\n", a.interrupts, a.ticks);
  if (a.interrupts != QUIT_AFTER) { /* only the self-test's failure */
    soon_close((soon_handle *)&a.sigint, NULL);
    soon_close((soon_handle *)&a.ticker, NULL);
    soon_run(&loop, SOON_RUN_DEFAULT);
  }
  int ok = soon_loop_close(&loop) == 0 && a.interrupts == QUIT_AFTER;
  return ok ? 0 : 1;
}
