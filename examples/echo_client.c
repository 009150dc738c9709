/* echo_client.c: sends its argument (or stdin) to an echo server and prints
 * the echo; exits 0 iff it matches. Usage in usage() below. */
#include <soon.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct client {
  union { /* first, so the stream pointer of a callback is the client */
    soon_stream stream;
    soon_tcp tcp;
    soon_pipe pipe;
  } h;
  soon_connect_req connect;
  soon_write_req write;
  soon_shutdown_req shutdown;
  const char *msg; /* what we send: it must stay valid until on_written */
  size_t msg_len;
  char *got; /* what came back so far */
  size_t got_len, got_cap;
  int failed;
} client;

static void fail(client *c, const char *what, int err) {
  fprintf(stderr, "echo_client: %s: %s\n", what, soon_strerror(err));
  c->failed = 1;
  if (!soon_is_closing((soon_handle *)c))
    soon_close((soon_handle *)c, NULL);
}

static void on_alloc(soon_handle *handle, size_t suggested, soon_buf *buf) {
  client *c = (client *)handle;
  /* Read straight into the reply buffer, grown to make room. */
  if (c->got_cap - c->got_len < suggested) {
    char *p = realloc(c->got, c->got_len + suggested);
    if (!p) {
      buf->len = 0; /* the read callback then gets -ENOBUFS */
      return;
    }
    c->got = p;
    c->got_cap = c->got_len + suggested;
  }
  buf->base = c->got + c->got_len;
  buf->len = c->got_cap - c->got_len;
}

static void on_read(soon_stream *stream, ssize_t nread, const soon_buf *buf) {
  client *c = (client *)stream;
  (void)buf;
  if (nread > 0) {
    c->got_len += (size_t)nread;
  } else if (nread == SOON_EOF) {
    /* The server echoed everything and closed its side: we are done. */
    soon_close((soon_handle *)c, NULL);
  } else if (nread < 0) {
    fail(c, "read", (int)nread);
  }
}

static void on_written(soon_write_req *req, int status) {
  if (status < 0)
    fail(req->data, "write", status);
}

static void on_shutdown(soon_shutdown_req *req, int status) {
  if (status < 0)
    fail(req->data, "shutdown", status);
}

static void on_connect(soon_connect_req *req, int status) {
  client *c = req->data;
  if (status < 0) {
    fail(c, "connect", status);
    return;
  }
  int err = soon_read_start(&c->h.stream, on_alloc, on_read);
  if (err) {
    fail(c, "read", err);
    return;
  }
  if (c->msg_len) {
    soon_buf buf = {(char *)c->msg, c->msg_len};
    c->write.data = c;
    if ((err = soon_write(&c->write, &c->h.stream, &buf, 1, on_written))) {
      fail(c, "write", err);
      return;
    }
  }
  /* Queued behind the write: the server sees EOF once it has everything,
   * and that is what makes it finish its echo. */
  c->shutdown.data = c;
  if ((err = soon_shutdown(&c->shutdown, &c->h.stream, on_shutdown)))
    fail(c, "shutdown", err);
}

/* The whole of stdin, read up front: the message must be kept whole anyway
 * to compare it with the echo, and this example is about the socket. */
static char *read_stdin(size_t *len) {
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    n += fread(buf + n, 1, cap - n, stdin);
    if (n < cap)
      break;
    char *p = realloc(buf, cap *= 2);
    if (!p)
      free(buf);
    buf = p;
  }
  if (buf && ferror(stdin)) {
    free(buf);
    buf = NULL;
  }
  *len = n;
  return buf;
}

static int usage(void) {
  fprintf(stderr, "usage: echo_client [tcp HOST PORT | unix PATH] [MESSAGE]\n"
                  "       without MESSAGE, stdin is sent\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1", *path = NULL;
  int port = 7000, i = 1;
  if (i < argc && strcmp(argv[i], "tcp") == 0) {
    if (i + 2 >= argc)
      return usage();
    host = argv[i + 1];
    port = atoi(argv[i + 2]);
    i += 3;
  } else if (i < argc && strcmp(argv[i], "unix") == 0) {
    if (i + 1 >= argc)
      return usage();
    path = argv[i + 1];
    i += 2;
  }
  if (argc - i > 1)
    return usage();

  client c;
  memset(&c, 0, sizeof c);
  char *from_stdin = NULL;
  if (i < argc) {
    c.msg = argv[i];
    c.msg_len = strlen(argv[i]);
  } else {
    if (!(from_stdin = read_stdin(&c.msg_len))) {
      fprintf(stderr, "echo_client: cannot read stdin\n");
      return 1;
    }
    c.msg = from_stdin;
  }

  soon_loop loop;
  int err = soon_loop_init(&loop);
  if (err) {
    fprintf(stderr, "echo_client: loop: %s\n", soon_strerror(err));
    return 1;
  }
  c.connect.data = &c;
  if (path) {
    soon_pipe_init(&loop, &c.h.pipe);
    err = soon_pipe_connect(&c.connect, &c.h.pipe, path, 0, on_connect);
  } else {
    struct sockaddr_storage ss;
    soon_tcp_init(&loop, &c.h.tcp);
    err = soon_ip4_addr(host, port, (struct sockaddr_in *)&ss);
    if (err)
      err = soon_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
    if (!err)
      err = soon_tcp_connect(&c.connect, &c.h.tcp, (struct sockaddr *)&ss,
                             on_connect);
  }
  if (err)
    fail(&c, "connect", err);

  soon_run(&loop, SOON_RUN_DEFAULT);
  soon_loop_close(&loop);

  fwrite(c.got, 1, c.got_len, stdout);
  int same = !c.failed && c.got_len == c.msg_len &&
             (c.msg_len == 0 || memcmp(c.got, c.msg, c.msg_len) == 0);
  if (!c.failed && !same)
    fprintf(stderr,
            "echo_client: the echo differs (%zu bytes sent, %zu back)\n",
            c.msg_len, c.got_len);
  free(c.got);
  free(from_stdin);
  return same ? 0 : 1;
}
