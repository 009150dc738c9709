/* echo_server.c: a TCP or Unix-socket server that sends back what it gets.
 * Usage: echo_server [tcp HOST PORT | unix PATH] [--max N] (exit after N). */
#include <soon.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A connection stops reading while more than this is queued for writing,
 * so a client that sends fast and reads slowly cannot grow our memory. */
#define HIGH_WATER (1u << 20)
#define LOW_WATER (256u << 10)

typedef struct server {
  union { /* the listener, as whichever kind it is */
    soon_stream stream;
    soon_tcp tcp;
    soon_pipe pipe;
  } h;
  int is_unix;
  long max;    /* exit after this many connections have closed (0: never) */
  long closed; /* connections closed so far */
} server;

typedef struct conn {
  union { /* first, so the stream pointer of a callback is the conn */
    soon_stream stream;
    soon_tcp tcp;
    soon_pipe pipe;
  } h;
  server *srv;
  int paused; /* reading stopped for backpressure */
  soon_shutdown_req shutdown;
} conn;

/* A write owns the buffer it sends: the read callback's buffer is passed on
 * as it is, without a copy, and freed when the write is done. */
typedef struct echo_write {
  soon_write_req req;
  char *base;
} echo_write;

static void on_alloc(soon_handle *handle, size_t suggested, soon_buf *buf) {
  (void)handle;
  buf->base = malloc(suggested);
  buf->len = buf->base ? suggested : 0; /* 0: the read callback gets ENOBUFS */
}

static void on_conn_closed(soon_handle *handle) {
  conn *c = (conn *)handle;
  server *srv = c->srv;
  free(c);
  srv->closed++;
  if (srv->max && srv->closed == srv->max) /* the last one: stop listening */
    soon_close((soon_handle *)&srv->h, NULL);
}

static void conn_close(conn *c) {
  if (!soon_is_closing((soon_handle *)c))
    soon_close((soon_handle *)c, on_conn_closed);
}

static void on_read(soon_stream *stream, ssize_t nread, const soon_buf *buf);

static void on_written(soon_write_req *req, int status) {
  echo_write *w = (echo_write *)req;
  conn *c = req->data;
  free(w->base);
  free(w);
  if (status < 0) { /* -ECANCELED after a close, -EPIPE, -ECONNRESET */
    conn_close(c);
    return;
  }
  if (c->paused && !soon_is_closing((soon_handle *)c) &&
      soon_stream_write_queue_size(&c->h.stream) <= LOW_WATER) {
    c->paused = 0;
    soon_read_start(&c->h.stream, on_alloc, on_read);
  }
}

static void on_shutdown(soon_shutdown_req *req, int status) {
  (void)status; /* done either way: the peer may have gone already */
  conn_close(req->data);
}

static void on_read(soon_stream *stream, ssize_t nread, const soon_buf *buf) {
  conn *c = (conn *)stream;
  if (nread > 0) {
    echo_write *w = malloc(sizeof *w);
    soon_buf out = {buf->base, (size_t)nread};
    if (!w) {
      free(buf->base);
      conn_close(c);
      return;
    }
    w->base = buf->base;
    w->req.data = c;
    if (soon_write(&w->req, stream, &out, 1, on_written) != 0) {
      free(w->base);
      free(w);
      conn_close(c);
      return;
    }
    if (soon_stream_write_queue_size(stream) > HIGH_WATER) {
      c->paused = 1;
      soon_read_stop(stream);
    }
    return;
  }
  free(buf->base);
  if (nread == 0) /* nothing read: only the buffer came back */
    return;
  if (nread == SOON_EOF) {
    /* The client is done sending: finish our direction once everything
     * queued has been written, then close. */
    c->shutdown.data = c;
    if (soon_shutdown(&c->shutdown, stream, on_shutdown) != 0)
      conn_close(c);
    return;
  }
  fprintf(stderr, "echo_server: read: %s\n", soon_strerror((int)nread));
  conn_close(c);
}

static void on_connection(soon_stream *listener, int status) {
  server *srv = listener->data;
  if (status < 0) { /* -EMFILE and friends: the server keeps listening */
    fprintf(stderr, "echo_server: accept: %s\n", soon_strerror(status));
    return;
  }
  conn *c = calloc(1, sizeof *c);
  if (!c) {
    /* An unaccepted connection pauses the listener for good: stop. */
    fprintf(stderr, "echo_server: out of memory\n");
    soon_close((soon_handle *)listener, NULL);
    return;
  }
  c->srv = srv;
  if (srv->is_unix)
    soon_pipe_init(listener->loop, &c->h.pipe);
  else
    soon_tcp_init(listener->loop, &c->h.tcp);
  int err = soon_accept(listener, &c->h.stream);
  if (err == 0)
    err = soon_read_start(&c->h.stream, on_alloc, on_read);
  if (err) {
    fprintf(stderr, "echo_server: accept: %s\n", soon_strerror(err));
    conn_close(c);
  }
}

static int usage(void) {
  fprintf(stderr, "usage: echo_server [tcp HOST PORT | unix PATH] [--max N]\n");
  return 2;
}

/* Bind the listener to HOST:PORT (IPv4 or IPv6) and print the address it
 * really got: with port 0 the kernel chooses, and the caller must learn it. */
static int bind_tcp(server *srv, const char *host, int port) {
  struct sockaddr_storage ss;
  int err = soon_ip4_addr(host, port, (struct sockaddr_in *)&ss);
  if (err)
    err = soon_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
  if (err) {
    fprintf(stderr, "echo_server: not a numeric address: %s\n", host);
    return err;
  }
  if ((err = soon_tcp_bind(&srv->h.tcp, (struct sockaddr *)&ss, 0)))
    return err;
  int len = sizeof ss;
  char name[64];
  if ((err = soon_tcp_getsockname(&srv->h.tcp, (struct sockaddr *)&ss, &len)) ||
      (err = soon_ip_name((struct sockaddr *)&ss, name, sizeof name)))
    return err;
  int real_port =
      ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
  if (ss.ss_family == AF_INET6)
    printf("listening on [%s]:%d\n", name, real_port);
  else
    printf("listening on %s:%d\n", name, real_port);
  return 0;
}

int main(int argc, char **argv) {
  const char *kind = "tcp", *host = "127.0.0.1", *path = NULL;
  int port = 7000;
  long max = 0;
  int i = 1;
  if (i < argc && strcmp(argv[i], "tcp") == 0) {
    if (i + 2 >= argc)
      return usage();
    host = argv[i + 1];
    port = atoi(argv[i + 2]);
    i += 3;
  } else if (i < argc && strcmp(argv[i], "unix") == 0) {
    if (i + 1 >= argc)
      return usage();
    kind = "unix";
    path = argv[i + 1];
    i += 2;
  }
  if (i < argc && strcmp(argv[i], "--max") == 0 && i + 1 < argc) {
    max = atol(argv[i + 1]);
    i += 2;
    if (max <= 0)
      return usage();
  }
  if (i != argc)
    return usage();

  soon_loop loop;
  server srv;
  memset(&srv, 0, sizeof srv);
  srv.max = max;
  srv.is_unix = strcmp(kind, "unix") == 0;
  int err = soon_loop_init(&loop);
  if (err) {
    fprintf(stderr, "echo_server: loop: %s\n", soon_strerror(err));
    return 1;
  }
  if (srv.is_unix) {
    soon_pipe_init(&loop, &srv.h.pipe);
    err = soon_pipe_bind(&srv.h.pipe, path, 0);
    if (!err)
      printf("listening on %s\n", path);
  } else {
    soon_tcp_init(&loop, &srv.h.tcp);
    err = bind_tcp(&srv, host, port);
  }
  srv.h.stream.data = &srv;
  if (!err)
    err = soon_listen(&srv.h.stream, 128, on_connection);
  if (err) {
    fprintf(stderr, "echo_server: %s\n", soon_strerror(err));
    soon_close((soon_handle *)&srv.h, NULL);
    soon_run(&loop, SOON_RUN_DEFAULT);
    soon_loop_close(&loop);
    return 1;
  }
  /* Whoever started us may be waiting for this line to learn the port. */
  fflush(stdout);

  soon_run(&loop, SOON_RUN_DEFAULT);
  if (srv.is_unix)
    unlink(path); /* the socket file outlives the socket */
  err = soon_loop_close(&loop);
  if (err)
    fprintf(stderr, "echo_server: loop close: %s\n", soon_strerror(err));
  return err ? 1 : 0;
}
