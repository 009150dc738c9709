/* xhr.c: the seed article's second program (section 2.2.2), its
 * XMLHttpRequest with onload and onerror, line for line in C on soon's client.
 *
 * xhr        serve a page from this process and request it: exit 0
 * xhr URL    request URL: exit 0 when a response came (any status, as
 *            onload), 1 for "Connection Error" (onerror), 2 for bad usage
 */
#include <soon.h>
#include <soon/http.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* What the server serves with no argument: ASCII, so the bytes C counts
 * are the characters JavaScript's responseText.length would. */
static const char page[] =
    "<!doctype html>\n"
    "<html lang=\"en\">\n"
    "<head><meta charset=\"utf-8\"><title>soon</title></head>\n"
    "<body>\n"
    "<h1>Served by soon</h1>\n"
    "<p>This page came from a soon HTTP server running in the same process\n"
    "and the same loop as the request that fetched it. The request was\n"
    "sent, the program carried on and printed its next line, and only then,\n"
    "from the loop, did the onload callback count these characters.</p>\n"
    "</body>\n"
    "</html>\n";

typedef struct program {
  soon_http_server *server; /* NULL when given a URL */
  soon_http_client *client;
  soon_xhr request;
  int status; /* the exit status */
} program;

/* ------------------------------------------------------------ the server */

static int span_is(soon_http_span s, const char *text) {
  return s.len == strlen(text) && memcmp(s.base, text, s.len) == 0;
}

static soon_http_header header(const char *name, const char *value) {
  return (soon_http_header){{name, strlen(name)}, {value, strlen(value)}};
}

/* The page at "/", a 404 for anything else. */
static int serve(soon_http_req *req) {
  if (span_is(req->path, "/")) {
    soon_http_header type = header("Content-Type", "text/html; charset=utf-8");
    return soon_http_respond(req, 200, &type, 1, page, sizeof page - 1);
  }
  soon_http_header type = header("Content-Type", "text/plain; charset=utf-8");
  static const char missing[] = "no such page\n";
  return soon_http_respond(req, 404, &type, 1, missing, sizeof missing - 1);
}

/* Port 0: the kernel picks a free one, so two runs never collide. */
static int start_server(program *p, soon_loop *loop, char *url, size_t size) {
  int err = soon_http_server_new(loop, NULL, serve, &p->server);
  if (err)
    return err;
  err = soon_http_server_listen(p->server, "127.0.0.1", 0);
  if (err)
    return err;
  int port = soon_http_server_port(p->server);
  if (port < 0)
    return port;
  snprintf(url, size, "http://127.0.0.1:%d/", port);
  return 0;
}

/* ------------------------------------------------------------ the request */

/* The browser keeps its network stack running after a page's request; a C
 * program owns its client and server, and the loop runs while they are
 * open. So the one callback that runs closes them, and soon_run returns. */
static void finish(program *p, int status) {
  p->status = status;
  if (soon_http_client_close(p->client, NULL) != 0)
    p->status = 1;
  /* The response is in: the one connection is idle or about to be, and
   * closes at once; the grace is only an upper bound. */
  if (p->server && soon_http_server_close(p->server, 1000, NULL) != 0)
    p->status = 1;
}

/* request.onload = function() { ... }: any HTTP response, a 404 included. */
static void onload(soon_xhr *request) {
  /* if (request.status >= 200 && request.status < 400) { */
  if (request->status >= 200 && request->status < 400) {
    /* console.log("Success! " + request.responseText.length
     *             + " characters received"); */
    printf("Success! %zu characters received\n", request->response_len);
  } else {
    /* console.log("Server returned error " + request.status); */
    printf("Server returned error %d\n", request->status);
  }
  finish(request->data, 0);
}

/* request.onerror = function() { ... }: no response at all. */
static void onerror(soon_xhr *request, int err) {
  /* console.log("Connection Error"); */
  puts("Connection Error");
  /* The browser hides why; a C program may say so, on stderr. */
  fprintf(stderr, "xhr: %s (%s)\n", soon_strerror(err), soon_err_name(err));
  finish(request->data, 1);
}

/* The article's program. Nothing it registers runs before soon_run: both
 * lines print before any callback, whatever the network does. */
static int run_article(program *p, soon_loop *loop, const char *url) {
  /* var request = new XMLHttpRequest(); */
  int err = soon_xhr_init(&p->request, p->client);
  if (err)
    return err;
  p->request.data = p;
  /* request.open('GET', url, true);  (true: asynchronous, as soon always is) */
  if ((err = soon_xhr_open(&p->request, "GET", url)) != 0)
    return err;
  /* request.onload = function() { ... }; */
  p->request.onload = onload;
  /* request.onerror = function() { ... }; */
  p->request.onerror = onerror; /* with no ontimeout, a timeout comes here */
  /* console.log("before making the call"); */
  puts("before making the call");
  /* request.send(); */
  if ((err = soon_xhr_send(&p->request, NULL, 0)) != 0)
    return err;
  /* console.log("after making the call"); */
  puts("after making the call");
  /* What the browser does after the script's last line, without being
   * asked: run the event loop, which calls onload or onerror. */
  err = soon_run(loop, SOON_RUN_DEFAULT);
  return err < 0 ? err : 0;
}

int main(int argc, char **argv) {
  program p = {.status = 1};
  soon_loop loop;
  char url[64];
  int err;

  /* Line by line even into a pipe, so that with SOON_TRACE=1 (soon's lines
   * on stderr) the two interleave in the order things ran. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
    fprintf(stderr, "usage: %s [http://host[:port]/path]\n", argv[0]);
    return 2;
  }
  if ((err = soon_loop_init(&loop)) != 0) {
    fprintf(stderr, "xhr: soon_loop_init: %s\n", soon_strerror(err));
    return 1;
  }
  if (argc == 1)
    err = start_server(&p, &loop, url, sizeof url);
  if (!err)
    err = soon_http_client_new(&loop, NULL, &p.client);
  if (!err)
    err = run_article(&p, &loop, argc == 2 ? argv[1] : url);
  if (err) {
    fprintf(stderr, "xhr: %s: %s\n", argc == 2 ? argv[1] : "serving the page",
            soon_strerror(err));
    p.status = err == -EINVAL ? 2 : 1;
    /* Nothing was sent, or nothing will be told: close what was opened
     * and let the loop run their close callbacks. */
    if (p.client)
      soon_http_client_close(p.client, NULL);
    if (p.server)
      soon_http_server_close(p.server, 0, NULL);
    soon_run(&loop, SOON_RUN_DEFAULT);
  }
  soon_xhr_cleanup(&p.request);
  if (soon_loop_close(&loop) != 0)
    p.status = 1;
  return p.status;
}
