/* metrics.c: a TCP echo server on 127.0.0.1 that prints the loop's metrics
 * (soon_metrics_get) once a second; --self-test echoes with itself and exits.
 */
#include <soon.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ROUNDS = 200, MSG = 64, JOBS = 8 };

typedef struct conn {
  soon_tcp tcp;
  struct conn *next, **prev; /* every open connection, to close at the end */
} conn;

typedef struct echo {
  soon_write_req req;
  char *base; /* the read buffer, handed to the write */
} echo;

static soon_loop loop;
static soon_tcp listener, client;
static soon_timer ticker;
static conn *conns;
static int seconds = 10, ticks, status = 1;

/* Client side of --self-test. */
static soon_connect_req connect_req;
static soon_write_req client_write;
static soon_work_req jobs[JOBS];
static char out[MSG], in[MSG];
static size_t got;
static int rounds;

static void print_metrics(const char *when) {
  soon_metrics m;
  if (soon_metrics_get(&loop, &m) != 0)
    return;
  const char *longest = m.longest_req_type
                            ? soon_req_type_name(m.longest_req_type)
                            : soon_handle_type_name(m.longest_handle_type);
  printf("%s: %llu iterations, %llu events, %llu callbacks; idle %.3f ms, "
         "in callbacks %.3f ms, longest %.1f us (%s)\n",
         when, (unsigned long long)m.iterations, (unsigned long long)m.events,
         (unsigned long long)m.callbacks, m.idle_ns / 1e6, m.callback_ns / 1e6,
         m.longest_callback_ns / 1e3, longest);
  printf("%s: timer lag p50 %.1f us, p99 %.1f us, max %.1f us (%llu timers); "
         "pool wait p50 %.1f us, p99 %.1f us (%llu jobs)\n",
         when, m.lag_p50_ns / 1e3, m.lag_p99_ns / 1e3, m.lag_max_ns / 1e3,
         (unsigned long long)m.timers, m.pool_wait_p50_ns / 1e3,
         m.pool_wait_p99_ns / 1e3, (unsigned long long)m.pool_jobs);
}

static void on_alloc(soon_handle *h, size_t size, soon_buf *buf) {
  (void)h;
  buf->base = malloc(size);
  buf->len = buf->base ? size : 0;
}

static void on_conn_closed(soon_handle *h) { free(h); }

static void conn_close(conn *c) {
  if (soon_is_closing((soon_handle *)c))
    return;
  if ((*c->prev = c->next))
    c->next->prev = c->prev;
  soon_close((soon_handle *)c, on_conn_closed);
}

/* Everything closes; soon_run then returns by itself. */
static void stop(void) {
  if (soon_is_closing((soon_handle *)&ticker))
    return;
  soon_close((soon_handle *)&ticker, NULL);
  soon_close((soon_handle *)&listener, NULL);
  while (conns)
    conn_close(conns);
}

static void on_echoed(soon_write_req *req, int st) {
  echo *e = (echo *)req;
  free(e->base);
  free(e);
  if (st < 0)
    fprintf(stderr, "metrics: write: %s\n", soon_strerror(st));
}

/* The server's side: each read goes back as it came. */
static void on_read(soon_stream *s, ssize_t n, const soon_buf *buf) {
  echo *e = n > 0 ? malloc(sizeof *e) : NULL;
  if (e) {
    e->base = buf->base;
    soon_buf b = {buf->base, (size_t)n};
    if (soon_write(&e->req, s, &b, 1, on_echoed) == 0)
      return;
    free(e);
  }
  free(buf->base);
  if (n < 0 || (n > 0 && !e))
    conn_close((conn *)s);
}

static void on_connection(soon_stream *l, int st) {
  conn *c = st == 0 ? malloc(sizeof *c) : NULL;
  if (!c)
    return;
  soon_tcp_init(&loop, &c->tcp);
  if ((c->next = conns))
    conns->prev = &c->next;
  c->prev = &conns;
  conns = c;
  if (soon_accept(l, (soon_stream *)c) != 0 ||
      soon_read_start((soon_stream *)c, on_alloc, on_read) != 0)
    conn_close(c);
}

static void on_tick(soon_timer *t) {
  (void)t;
  char when[32];
  snprintf(when, sizeof when, "%ds", ++ticks);
  print_metrics(when);
  if (ticks >= seconds)
    stop();
}

/* --self-test: ROUNDS messages of MSG bytes, each sent once the last one
 * came back; then the metrics, and everything closes. */
static void send_round(void);

static void on_client_read(soon_stream *s, ssize_t n, const soon_buf *buf) {
  if (n > 0 && got + (size_t)n <= MSG) {
    memcpy(in + got, buf->base, (size_t)n);
    got += (size_t)n;
  }
  free(buf->base);
  if (n < 0 || got > MSG) {
    fprintf(stderr, "metrics: client read: %s\n", soon_strerror((int)n));
    soon_close((soon_handle *)s, NULL);
    stop();
    return;
  }
  if (got < MSG)
    return;
  if (memcmp(in, out, MSG) != 0) {
    fprintf(stderr, "metrics: the echo differs\n");
    soon_close((soon_handle *)s, NULL);
    stop();
    return;
  }
  if (++rounds < ROUNDS) {
    send_round();
    return;
  }
  print_metrics("self-test");
  status = 0;
  soon_close((soon_handle *)s, NULL);
  stop();
}

static void on_client_written(soon_write_req *req, int st) {
  (void)req;
  if (st < 0)
    fprintf(stderr, "metrics: client write: %s\n", soon_strerror(st));
}

static void send_round(void) {
  memset(out, 'a' + rounds % 26, MSG);
  got = 0;
  soon_buf b = {out, MSG};
  soon_write(&client_write, (soon_stream *)&client, &b, 1, on_client_written);
}

static void on_connected(soon_connect_req *req, int st) {
  (void)req;
  if (st < 0 ||
      soon_read_start((soon_stream *)&client, on_alloc, on_client_read) != 0) {
    fprintf(stderr, "metrics: connect: %s\n", soon_strerror(st));
    soon_close((soon_handle *)&client, NULL);
    stop();
    return;
  }
  send_round();
}

/* Pool jobs, so that the pool's queue wait has something to show. */
static void job(soon_work_req *w) { (void)w; }
static void job_done(soon_work_req *w, int st) {
  (void)w;
  (void)st;
}

int main(int argc, char **argv) {
  int self_test = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--self-test") == 0) {
      self_test = 1;
    } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      seconds = atoi(argv[++i]);
    } else {
      fprintf(stderr, "usage: %s [--seconds N] [--self-test]\n", argv[0]);
      return 2;
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  soon_loop_options opts = {.flags = SOON_LOOP_METRICS};
  struct sockaddr_in addr;
  int len = sizeof addr, err;
  if ((err = soon_loop_init_ex(&loop, &opts)) ||
      (err = soon_tcp_init(&loop, &listener)) ||
      (err = soon_ip4_addr("127.0.0.1", 0, &addr)) ||
      (err = soon_tcp_bind(&listener, (struct sockaddr *)&addr, 0)) ||
      (err = soon_listen((soon_stream *)&listener, 64, on_connection)) ||
      (err = soon_tcp_getsockname(&listener, (struct sockaddr *)&addr, &len)) ||
      (err = soon_timer_init(&loop, &ticker)) ||
      (err = soon_timer_start(&ticker, on_tick, 1000, 1000))) {
    fprintf(stderr, "metrics: %s\n", soon_strerror(err));
    return 1;
  }
  printf("listening on 127.0.0.1:%d (backend %s)\n", ntohs(addr.sin_port),
         soon_backend_name(&loop));
  if (self_test) {
    for (int i = 0; i < JOBS; i++)
      soon_work(&loop, &jobs[i], job, job_done);
    if ((err = soon_tcp_init(&loop, &client)) ||
        (err = soon_tcp_connect(&connect_req, &client, (struct sockaddr *)&addr,
                                on_connected))) {
      fprintf(stderr, "metrics: connect: %s\n", soon_strerror(err));
      return 1;
    }
  } else {
    status = 0; /* serving until --seconds is up is the whole job */
  }
  if ((err = soon_run(&loop, SOON_RUN_DEFAULT)) < 0 ||
      (err = soon_loop_close(&loop)) < 0) {
    fprintf(stderr, "metrics: %s\n", soon_strerror(err));
    return 1;
  }
  return status;
}
