/* server.c: the HTTP/1.1 server object (soon/http.h, "server"): listening,
 * accepting within the limits, worker threads, graceful close. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Out of memory with no connection to free some: try accepting again. */
#define ACCEPT_RETRY_MS 100
#define MAX_THREADS 1024

/* ------------------------------------------------------------ lists */

static void list_add(soon_http_server *s, conn *c) {
  c->prev = NULL;
  c->next = s->conns;
  if (s->conns)
    s->conns->prev = c;
  s->conns = c;
}

void soon__http_unlist(soon_http_server *s, conn *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
}

static void on_defer(soon_idle *idle);

/* Work a call cannot do inside itself (a callback, the next request): in
 * the next idle phase, never re-entrantly. */
void soon__http_owe(conn *c) {
  soon_http_server *s = c->server;
  if (c->owed)
    return;
  c->owed = true;
  c->owed_next = NULL;
  c->owed_prev = s->owed_tail;
  if (s->owed_tail)
    s->owed_tail->owed_next = c;
  else
    s->owed_head = c;
  s->owed_tail = c;
  s->nowed++;
  if (!soon_is_active((soon_handle *)&s->defer))
    soon_idle_start(&s->defer, on_defer);
}

void soon__http_unowe(conn *c) {
  soon_http_server *s = c->server;
  if (!c->owed)
    return;
  c->owed = false;
  if (c->owed_prev)
    c->owed_prev->owed_next = c->owed_next;
  else
    s->owed_head = c->owed_next;
  if (c->owed_next)
    c->owed_next->owed_prev = c->owed_prev;
  else
    s->owed_tail = c->owed_prev;
  s->nowed--;
}

static void on_defer(soon_idle *idle) {
  soon_http_server *s = idle->data;
  /* What this turn's work owes anew waits for the next turn. */
  for (unsigned n = s->nowed; n && s->owed_head; n--) {
    conn *c = s->owed_head;
    soon__http_unowe(c);
    soon__http_enter(c);
    soon__http_run_owed(c);
    soon__http_leave(c);
  }
  if (!s->owed_head)
    soon_idle_stop(&s->defer);
  soon__http_server_check(s);
}

/* ------------------------------------------------------------ accepting */

static void accept_one(soon_http_server *s);

void soon__http_resume_accept(soon_http_server *s) {
  if (s->paused && !s->closing && s->listener &&
      s->nconns < s->o.max_connections) {
    s->paused = false;
    accept_one(s);
  }
}

static void free_unaccepted(soon_handle *h) { free(h); }

static void on_retry(soon_timer *t) {
  soon_http_server *s = t->data;
  soon__http_resume_accept(s);
}

/* Take one waiting connection. Out of memory, it waits in the listener
 * (soon_accept not called pauses accepting) until a connection closes or
 * a retry. */
static void accept_one(soon_http_server *s) {
  conn *c = soon__http_conn_new(s);
  if (!c) {
    s->paused = true;
    if (!s->nconns)
      soon_timer_start(&s->timer, on_retry, ACCEPT_RETRY_MS, 0);
    return;
  }
  any_stream *st = c->stream;
  int err = s->is_unix ? soon_pipe_init(s->loop, &st->pipe)
                       : soon_tcp_init(s->loop, &st->tcp);
  if (!err)
    err = soon_accept(&s->listener->s, &st->s);
  if (err) {
    c->stream = NULL;
    soon_close(&st->h, free_unaccepted);
    free(c);
    if (err != -EAGAIN) {
      s->paused = true;
      if (!s->nconns)
        soon_timer_start(&s->timer, on_retry, ACCEPT_RETRY_MS, 0);
    }
    return;
  }
  list_add(s, c);
  s->nconns++;
  s->nopen++;
  soon__http_conn_start(c);
}

static void on_connection(soon_stream *l, int status) {
  soon_http_server *s = l->data;
  /* Out of fds (EMFILE): soon has shed the connection already. */
  if (status < 0 || s->closing)
    return;
  if (s->nconns >= s->o.max_connections) {
    s->paused = true; /* it waits in the listener; the rest in the backlog */
    return;
  }
  accept_one(s);
}

/* ------------------------------------------------------------ threads */

/* threads > 1: N - 1 more loops, each in its thread with its own server on
 * the same port (SO_REUSEPORT: the kernel spreads the connections), or on
 * a dup of the Unix listener. Started by listen, stopped by close through
 * their async handles; each tells the parent's when its loop has ended. */
typedef struct worker {
  workers *group;
  pthread_t thread;
  soon_loop loop;
  soon_http_server *srv;
  soon_async stop;
  uint64_t grace;
  int fd; /* a Unix listener's dup, or -1 */
  int result;
  bool ready;
} worker;

struct workers {
  soon_http_server *parent;
  soon_async done;
  _Atomic unsigned ndone;
  unsigned n; /* threads started, all joined at the end */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char ip[64];
  int port;
  worker w[];
};

static int listen_tcp(soon_http_server *s, const char *ip, int port,
                      unsigned flags);
static int listen_fd(soon_http_server *s, int fd);

static void on_worker_stop(soon_async *a) {
  worker *w = a->data;
  soon_http_server_close(w->srv, w->grace, NULL);
  soon_close((soon_handle *)a, NULL);
}

static int worker_setup(worker *w) {
  workers *g = w->group;
  soon_http_server *p = g->parent;
  soon_http_server_options o = p->o;
  o.threads = 1;
  int err = soon_http_server_new(&w->loop, &o, p->handler, &w->srv);
  if (err)
    return err;
  if (w->fd >= 0) {
    err = listen_fd(w->srv, w->fd);
    if (!err)
      w->fd = -1; /* the listener's now */
  } else {
    err = listen_tcp(w->srv, g->ip, g->port, SOON_TCP_REUSEPORT);
  }
  if (!err) {
    w->stop.data = w;
    err = soon_async_init(&w->loop, &w->stop, on_worker_stop);
  }
  if (err)
    soon_http_server_close(w->srv, 0, NULL);
  return err;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  workers *g = w->group;
  int err = soon_loop_init(&w->loop);
  bool loop_ok = !err;
  if (!err)
    err = worker_setup(w);
  if (w->fd >= 0)
    close(w->fd);
  pthread_mutex_lock(&g->mu);
  w->result = err;
  w->ready = true;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
  if (loop_ok) { /* serves until stopped, or just closes what setup made */
    soon_run(&w->loop, SOON_RUN_DEFAULT);
    soon_loop_close(&w->loop);
  }
  atomic_fetch_add(&g->ndone, 1);
  soon_async_send(&g->done);
  return NULL;
}

static void free_handle_data(soon_handle *h) { free(h->data); }

static void join_workers(workers *g) {
  for (unsigned i = 0; i < g->n; i++)
    pthread_join(g->w[i].thread, NULL);
  pthread_mutex_destroy(&g->mu);
  pthread_cond_destroy(&g->cv);
}

static void on_workers_done(soon_async *a) {
  workers *g = a->data;
  if (atomic_load(&g->ndone) < g->n)
    return;
  soon_http_server *s = g->parent;
  join_workers(g); /* their loops have ended: only returns are left */
  s->workers = NULL;
  soon_close((soon_handle *)a, free_handle_data);
  soon__http_server_check(s);
}

static void stop_workers(workers *g, uint64_t grace) {
  for (unsigned i = 0; i < g->n; i++) {
    worker *w = &g->w[i];
    if (w->result)
      continue; /* it stopped by itself */
    w->grace = grace;
    soon_async_send(&w->stop);
  }
}

/* Start them one by one, each listening before the next: a failure stops
 * those started (waiting for them here, at listen time) and is returned. */
static int start_workers(soon_http_server *s, const char *ip, int fd) {
  unsigned n = s->o.threads - 1;
  workers *g = calloc(1, sizeof *g + n * sizeof(worker));
  if (!g)
    return -ENOMEM;
  g->parent = s;
  g->port = s->port;
  if (ip)
    snprintf(g->ip, sizeof g->ip, "%s", ip);
  pthread_mutex_init(&g->mu, NULL);
  pthread_cond_init(&g->cv, NULL);
  g->done.data = g;
  int err = soon_async_init(s->loop, &g->done, on_workers_done);
  if (err) {
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
    return err;
  }
  for (unsigned i = 0; i < n && !err; i++) {
    worker *w = &g->w[i];
    w->group = g;
    w->fd = -1;
    if (fd >= 0 && (w->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
      err = -errno;
      break;
    }
    err = -pthread_create(&w->thread, NULL, worker_main, w);
    if (err) {
      if (w->fd >= 0)
        close(w->fd);
      break;
    }
    g->n++;
    pthread_mutex_lock(&g->mu);
    while (!w->ready)
      pthread_cond_wait(&g->cv, &g->mu);
    err = w->result;
    pthread_mutex_unlock(&g->mu);
  }
  if (err) {
    stop_workers(g, 0);
    join_workers(g);
    soon_close((soon_handle *)&g->done, free_handle_data);
    return err;
  }
  s->workers = g;
  return 0;
}

/* ------------------------------------------------------------ the server */

static void on_server_closed(soon_handle *h) {
  soon_http_server *s = h->data;
  if (--s->nclosing)
    return;
  s->closed = true;
  if (s->close_cb)
    s->close_cb(s);
  soon__http_maybe_free_server(s);
}

/* A request the handler never answered keeps its connection's struct, and
 * so the server's, until it is answered (the calls then say -EPIPE). */
void soon__http_maybe_free_server(soon_http_server *s) {
  if (s->closed && !s->conns)
    free(s);
}

/* Once closing and nothing is left open: the server's own handles, whose
 * close callbacks call the user's (so never from inside a call). */
void soon__http_server_check(soon_http_server *s) {
  if (!s->closing || s->finishing || s->listener || s->nopen || s->owed_head ||
      s->workers)
    return;
  s->finishing = true;
  s->nclosing = 2;
  soon_close((soon_handle *)&s->timer, on_server_closed);
  soon_close((soon_handle *)&s->defer, on_server_closed);
}

static void on_grace(soon_timer *t) {
  soon_http_server *s = t->data;
  for (conn *c = s->conns, *next; c; c = next) {
    next = c->next;
    if (c->rs == RS_CLOSED)
      continue;
    soon__http_enter(c);
    soon__http_conn_close(c, -ECANCELED);
    soon__http_leave(c);
  }
}

static int fill_options(soon_http_server_options *o) {
  if (o->backlog < 0 || o->threads > MAX_THREADS || o->max_headers > 65535 ||
      o->limits.max_head > (64u << 20) || o->max_connections > (1u << 24))
    return -EINVAL;
  if (!o->limits.max_head)
    o->limits.max_head = SOON_HTTP_MAX_HEAD;
  if (!o->limits.max_chunk_ext)
    o->limits.max_chunk_ext = SOON_HTTP_MAX_CHUNK_EXT;
  if (!o->limits.max_body)
    o->limits.max_body = SOON_HTTP_MAX_BODY;
  if (!o->max_headers)
    o->max_headers = SOON_HTTP_MAX_HEADERS;
  if (!o->max_connections)
    o->max_connections = 1024;
  if (!o->max_requests)
    o->max_requests = 1000;
  if (!o->header_timeout_ms)
    o->header_timeout_ms = 60000;
  if (!o->body_timeout_ms)
    o->body_timeout_ms = 60000;
  if (!o->keepalive_timeout_ms)
    o->keepalive_timeout_ms = 75000;
  if (!o->send_timeout_ms)
    o->send_timeout_ms = 60000;
  if (!o->backlog)
    o->backlog = 511;
  if (!o->threads)
    o->threads = 1;
  return 0;
}

int soon_http_server_new(soon_loop *loop, const soon_http_server_options *opts,
                         soon_http_handler handler, soon_http_server **out) {
  if (!loop || !handler || !out)
    return -EINVAL;
  soon_http_server_options o = {0};
  if (opts)
    o = *opts;
  int err = fill_options(&o);
  if (err)
    return err;
  soon_http_server *s = calloc(1, sizeof *s);
  if (!s)
    return -ENOMEM;
  s->loop = loop;
  s->o = o;
  s->handler = handler;
  const char *backend = soon_backend_name(loop);
  s->try_first = backend && strcmp(backend, "uring") != 0;
  s->timer.data = s;
  s->defer.data = s;
  err = soon_timer_init(loop, &s->timer);
  if (err) {
    free(s);
    return err;
  }
  err = soon_idle_init(loop, &s->defer);
  if (err) {
    soon_close((soon_handle *)&s->timer, free_handle_data);
    return err;
  }
  *out = s;
  return 0;
}

static int listen_tcp(soon_http_server *s, const char *ip, int port,
                      unsigned flags) {
  struct sockaddr_storage ss;
  if (soon_ip4_addr(ip, port, (struct sockaddr_in *)&ss) &&
      soon_ip6_addr(ip, port, (struct sockaddr_in6 *)&ss))
    return -EINVAL;
  any_stream *l = malloc(sizeof *l);
  if (!l)
    return -ENOMEM;
  int err = soon_tcp_init(s->loop, &l->tcp);
  if (err) {
    free(l);
    return err;
  }
  l->h.data = s;
  err = soon_tcp_bind(&l->tcp, (struct sockaddr *)&ss, flags);
  if (!err)
    err = soon_listen(&l->s, s->o.backlog, on_connection);
  struct sockaddr_storage name;
  int namelen = sizeof name;
  if (!err)
    err = soon_tcp_getsockname(&l->tcp, (struct sockaddr *)&name, &namelen);
  if (err) {
    soon_close(&l->h, free_unaccepted);
    return err;
  }
  s->port = ntohs(name.ss_family == AF_INET
                      ? ((struct sockaddr_in *)&name)->sin_port
                      : ((struct sockaddr_in6 *)&name)->sin6_port);
  s->listener = l;
  s->is_unix = false;
  s->listened = true;
  return 0;
}

/* A worker's Unix listener: its own stream on a dup of the parent's
 * socket (the kernel gives each connection to one of them). */
static int listen_fd(soon_http_server *s, int fd) {
  any_stream *l = malloc(sizeof *l);
  if (!l)
    return -ENOMEM;
  int err = soon_pipe_init(s->loop, &l->pipe);
  if (err) {
    free(l);
    return err;
  }
  l->h.data = s;
  err = soon_pipe_open(&l->pipe, fd);
  if (!err)
    err = soon_listen(&l->s, s->o.backlog, on_connection);
  if (err) {
    soon_close(&l->h, free_unaccepted);
    return err;
  }
  s->listener = l;
  s->is_unix = true;
  s->listened = true;
  return 0;
}

static void drop_listener(soon_http_server *s) {
  soon_close(&s->listener->h, free_unaccepted);
  s->listener = NULL;
}

int soon_http_server_listen(soon_http_server *s, const char *ip, int port) {
  if (!s || !ip || port < 0 || port > 65535)
    return -EINVAL;
  if (s->closing)
    return -EINVAL;
  if (s->listened)
    return -EALREADY;
  int err = listen_tcp(s, ip, port, s->o.threads > 1 ? SOON_TCP_REUSEPORT : 0);
  if (err)
    return err;
  if (s->o.threads > 1 && (err = start_workers(s, ip, -1))) {
    drop_listener(s);
    s->listened = false;
  }
  return err;
}

int soon_http_server_listen_unix(soon_http_server *s, const char *path) {
  if (!s || !path || !*path)
    return -EINVAL;
  if (s->closing)
    return -EINVAL;
  if (s->listened)
    return -EALREADY;
  any_stream *l = malloc(sizeof *l);
  if (!l)
    return -ENOMEM;
  int err = soon_pipe_init(s->loop, &l->pipe);
  if (err) {
    free(l);
    return err;
  }
  l->h.data = s;
  err = soon_pipe_bind(&l->pipe, path, 0);
  if (!err)
    err = soon_listen(&l->s, s->o.backlog, on_connection);
  if (err) {
    soon_close(&l->h, free_unaccepted);
    return err;
  }
  s->listener = l;
  s->is_unix = true;
  s->listened = true;
  int fd;
  if (s->o.threads > 1) {
    err = soon_stream_fileno(&l->s, &fd);
    if (!err)
      err = start_workers(s, NULL, fd);
    if (err) {
      drop_listener(s);
      s->listened = false;
    }
  }
  return err;
}

int soon_http_server_port(const soon_http_server *s) {
  if (!s)
    return -EINVAL;
  if (!s->listener)
    return -ENOTCONN;
  return s->is_unix ? -EINVAL : s->port;
}

void *soon_http_server_data(const soon_http_server *s) {
  return s ? s->o.data : NULL;
}

int soon_http_server_close(soon_http_server *s, uint64_t grace_ms,
                           soon_http_server_close_cb cb) {
  if (!s)
    return -EINVAL;
  if (s->closing)
    return -EALREADY;
  s->closing = true;
  s->close_cb = cb;
  s->grace = grace_ms;
  if (s->listener)
    drop_listener(s);
  soon_timer_stop(&s->timer);
  if (s->workers)
    stop_workers(s->workers, grace_ms);
  bool in_flight = false;
  for (conn *c = s->conns, *next; c; c = next) {
    next = c->next;
    if (c->rs == RS_CLOSED)
      continue;
    soon__http_enter(c);
    if (c->rs == RS_LINGER ||
        (c->rs == RS_HEAD && !c->nwriting && !c->out[c->fill].len)) {
      soon__http_conn_close(c, 0); /* idle: nothing of a request to finish */
    } else {
      c->close_after = true; /* answered with Connection: close */
      soon__http_owe(c);
      in_flight = true;
    }
    soon__http_leave(c);
  }
  if (in_flight)
    soon_timer_start(&s->timer, on_grace, grace_ms, 0);
  soon__http_server_check(s);
  return 0;
}
