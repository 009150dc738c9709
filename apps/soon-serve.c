/* soon-serve.c: a static file server on soon's HTTP server (soon/http.h).
 * soon-serve --root DIR [--port N] [--bind ADDR] [--threads N] [--quiet] */
#include <soon.h>
#include <soon/http.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Requests in flight at a SIGINT or SIGTERM get this long to finish. */
#define GRACE_MS 10000

typedef struct serve {
  char *root_real; /* for the fallback without openat2 */
  int root_fd;
  bool quiet;
  /* No openat2 (a kernel before 5.6, or $SOON_SERVE_NO_OPENAT2 for the
   * tests): realpath and a prefix check instead. Set by any thread. */
  atomic_bool no_openat2;
  /* No RESOLVE_CACHED (before 5.12): every lookup on the pool. */
  atomic_bool no_cached;
  soon_http_server *server;
  soon_signal sigint, sigterm;
} serve;

/* ------------------------------------------------------------ responses */

static const struct {
  const char *ext, *type;
} content_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"svg", "image/svg+xml"},
    {"ico", "image/vnd.microsoft.icon"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"xml", "application/xml"},
    {"mp4", "video/mp4"},
    {"webp", "image/webp"},
    {"woff2", "font/woff2"},
};

static const char *content_type(const char *name) {
  const char *slash = strrchr(name, '/');
  const char *dot = strrchr(slash ? slash + 1 : name, '.');
  if (dot)
    for (size_t i = 0; i < sizeof content_types / sizeof *content_types; i++)
      if (strcasecmp(dot + 1, content_types[i].ext) == 0)
        return content_types[i].type;
  return "application/octet-stream";
}

static soon_http_header header(const char *name, const char *value) {
  return (soon_http_header){{name, strlen(name)}, {value, strlen(value)}};
}

/* Common Log Format, one line per request, written when the request is
 * over (the server's on_done): the status and body size the response
 * really had (a 304, a 206), and the client's address, which the handler
 * asked for while the connection was open; requests the server refused
 * itself too (a 400, a 408: on_done while their connection is open). One
 * fputs per line: stdio
 * locks the stream, so the lines of several server threads never
 * interleave. */
static void log_request(soon_http_req *req, int status, uint64_t bytes) {
  char date[40], target[1024], addr[INET6_ADDRSTRLEN] = "-";
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (soon_http_req_peername(req, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET)
      inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr,
                sizeof addr);
    else if (ss.ss_family == AF_INET6)
      inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr,
                sizeof addr);
  }
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(date, sizeof date, "%d/%b/%Y:%H:%M:%S +0000", &tm);
  /* The parser let no control byte, space or non-ASCII byte into the
   * target; quotes and backslashes are escaped so a line stays one entry. */
  size_t n = 0;
  for (size_t i = 0; i < req->target.len && n + 5 < sizeof target; i++) {
    char c = req->target.base[i];
    if (c == '"' || c == '\\')
      n += (size_t)snprintf(target + n, 5, "\\x%02x", (unsigned char)c);
    else
      target[n++] = c;
  }
  target[n] = '\0';
  char line[1400];
  if (!req->method.len) /* refused before its request line was whole */
    snprintf(line, sizeof line, "%s - - [%s] \"-\" %d %" PRIu64 "\n", addr,
             date, status, bytes);
  else
    snprintf(line, sizeof line,
             "%s - - [%s] \"%.*s %s HTTP/1.%u\" %d %" PRIu64 "\n", addr, date,
             (int)req->method.len, req->method.base, target, req->version_minor,
             status, bytes);
  fputs(line, stdout);
}

static bool is_head(const soon_http_req *req) {
  return req->method.len == 4 && memcmp(req->method.base, "HEAD", 4) == 0;
}

/* A short text page: errors and the redirect. */
static void respond_text(soon_http_req *req, int status, const char *text,
                         const char *location) {
  soon_http_header h[3] = {header("Content-Type", "text/plain; charset=utf-8")};
  unsigned n = 1;
  if (status == 405)
    h[n++] = header("Allow", "GET, HEAD");
  if (location)
    h[n++] = header("Location", location);
  soon_http_respond(req, status, h, n, text, strlen(text));
}

static void respond_error(soon_http_req *req, int status) {
  const char *text = status == 400   ? "400 Bad Request\n"
                     : status == 403 ? "403 Forbidden\n"
                     : status == 404 ? "404 Not Found\n"
                     : status == 405 ? "405 Method Not Allowed\n"
                     : status == 503 ? "503 Service Unavailable\n"
                                     : "500 Internal Server Error\n";
  respond_text(req, status, text, NULL);
}

/* ------------------------------------------------------------ the path */

static int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* The path of an absolute-form target ("http://host/x" -> "/x"). */
static soon_http_span origin_path(soon_http_span p) {
  if (p.len > 0 && p.base[0] == '/')
    return p;
  const char *sep = p.len > 3 ? memmem(p.base, p.len, "://", 3) : NULL;
  if (!sep)
    return (soon_http_span){NULL, 0};
  const char *auth = sep + 3, *end = p.base + p.len;
  const char *slash = memchr(auth, '/', (size_t)(end - auth));
  return slash ? (soon_http_span){slash, (size_t)(end - slash)}
               : (soon_http_span){"/", 1};
}

/* The request path as a path under the root: percent-escapes decoded
 * first, so "%2e%2e" and "%2f" are seen for what they are, then split into
 * segments; empty and "." segments dropped. *rel is malloc'd, "" for the
 * root itself; *dir_form says the path ended with '/'. 0, or the status to
 * answer: 400 for a malformed escape or %00 (no file name holds a NUL),
 * 403 for a ".." segment (the resolution below would refuse any that
 * climbs out, but none has a use worth the doubt). */
static int decode_path(soon_http_span target_path, char **rel, bool *dir_form) {
  soon_http_span path = origin_path(target_path);
  if (!path.base)
    return 400;
  char *dec = malloc(path.len + 1), *out = malloc(path.len + 1);
  if (!dec || !out) {
    free(dec);
    free(out);
    return 503;
  }
  size_t n = 0, o = 0;
  int status = 0;
  for (size_t i = 0; i < path.len && !status; i++) {
    char c = path.base[i];
    if (c == '%') {
      int hi = i + 2 < path.len ? hex_value(path.base[i + 1]) : -1;
      int lo = hi >= 0 ? hex_value(path.base[i + 2]) : -1;
      if (lo < 0 || (hi | lo) == 0) {
        status = 400;
        break;
      }
      c = (char)(hi << 4 | lo);
      i += 2;
    }
    dec[n++] = c;
  }
  *dir_form = n > 0 && dec[n - 1] == '/';
  for (size_t i = 0; i < n && !status;) {
    size_t j = i;
    while (j < n && dec[j] != '/')
      j++;
    size_t seg = j - i;
    if (seg == 2 && dec[i] == '.' && dec[i + 1] == '.')
      status = 403;
    else if (seg > 0 && !(seg == 1 && dec[i] == '.')) {
      if (o > 0)
        out[o++] = '/';
      memcpy(out + o, dec + i, seg);
      o += seg;
    }
    i = j + 1;
  }
  free(dec);
  out[o] = '\0';
  if (status)
    free(out);
  else
    *rel = out;
  return status;
}

/* "/" + rel + "/", percent-encoded but for unreserved bytes and '/': a
 * Location built from the cleaned path, never from the raw target, whose
 * "//host" would send a browser to another site. */
static char *dir_location(const char *rel) {
  size_t len = strlen(rel);
  char *loc = malloc(len * 3 + 3), *p = loc;
  if (!loc)
    return NULL;
  *p++ = '/';
  for (const unsigned char *c = (const unsigned char *)rel; *c; c++) {
    if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
        (*c >= '0' && *c <= '9') || strchr("-._~/", *c))
      *p++ = (char)*c;
    else
      p += sprintf(p, "%%%02X", *c);
  }
  if (len > 0)
    *p++ = '/';
  *p = '\0';
  return loc;
}

/* ------------------------------------------------------------ opening */

/* O_NONBLOCK: a FIFO put in the root must not hang the opener (it is then
 * refused as not a regular file). */
#define OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)

static bool beneath(const char *path, const char *root) {
  size_t n = strlen(root);
  if (n == 1) /* the root is "/" */
    return path[0] == '/';
  return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Without openat2: the path's real location must be under the root's.
 * Racy: a directory on the way swapped for a symlink between the check and
 * the open is followed (O_NOFOLLOW covers the last component only), which
 * is why openat2 comes first. */
static int open_by_realpath(const serve *s, const char *rel) {
  char full[PATH_MAX];
  if (snprintf(full, sizeof full, "%s/%s", s->root_real, rel) >=
      (int)sizeof full)
    return -ENAMETOOLONG;
  char *real = realpath(full, NULL);
  if (!real)
    return -errno;
  int fd = beneath(real, s->root_real) ? open(real, OPEN_FLAGS | O_NOFOLLOW)
                                       : (errno = EXDEV, -1);
  int err = errno;
  free(real);
  return fd >= 0 ? fd : -err;
}

/* rel opened under the root, with the kernel refusing any step out of it
 * (RESOLVE_BENEATH: "..", absolute symlinks, symlinks that climb out).
 * cached: only from the kernel's lookup cache (RESOLVE_CACHED), so that it
 * cannot wait for a disk; -EAGAIN when it would. */
static int open_beneath(serve *s, const char *rel, bool cached) {
  if (!*rel)
    rel = ".";
  if (!atomic_load(&s->no_openat2)) {
    struct open_how how = {.flags = OPEN_FLAGS,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS |
                                      (cached ? RESOLVE_CACHED : 0)};
    long fd = syscall(SYS_openat2, s->root_fd, rel, &how, sizeof how);
    if (fd >= 0)
      return (int)fd;
    if (cached && errno == EINVAL) /* a kernel without RESOLVE_CACHED */
      atomic_store(&s->no_cached, true);
    if (cached && (errno == EINVAL || errno == ENOSYS))
      return -EAGAIN;
    if (errno != ENOSYS)
      return -errno;
    atomic_store(&s->no_openat2, true);
  }
  return cached ? -EAGAIN : open_by_realpath(s, rel);
}

static int status_of_errno(int err) {
  switch (err) {
  case -ENOENT:
  case -ENOTDIR:
  case -ENAMETOOLONG:
    return 404;
  case -EXDEV: /* out of the root */
  case -ELOOP:
  case -EACCES:
  case -EPERM:
    return 403;
  case -EMFILE:
  case -ENFILE:
  case -ENOMEM:
    return 503;
  default:
    return 500;
  }
}

/* A request's lookup: on the loop's thread when every step of the path is
 * in the kernel's lookup cache (an open that cannot wait for a disk, and
 * fstat of an open file, which does not either), else on the thread pool,
 * and the loop serves other connections meanwhile. The pool's round trip
 * (two thread wake-ups) costs more than a cached lookup: on the loop, a
 * 13-byte file is served 1.3-1.5x as fast (wrk, 50 connections, epoll);
 * 1 MiB files are not faster, the copy to the socket dominates. */
typedef struct lookup {
  soon_work_req work; /* first: the work request is the lookup */
  serve *serve;
  soon_http_req *req;
  char *rel;
  bool dir_form;
  bool cached; /* on the loop's thread: open from the cache only */
  /* results */
  int status; /* 0: serve fd */
  int fd;
  const char *type;
  char *location; /* 301 */
} lookup;

/* A directory's index.html, under the same rule as any file. */
static int open_index(lookup *l) {
  size_t n = strlen(l->rel);
  char *index = malloc(n + sizeof "/index.html");
  if (!index)
    return -ENOMEM;
  sprintf(index, "%s%sindex.html", l->rel, n ? "/" : "");
  int fd = open_beneath(l->serve, index, l->cached);
  free(index);
  return fd;
}

static void lookup_work(soon_work_req *w) {
  lookup *l = (lookup *)w;
  struct stat st;
  int fd = open_beneath(l->serve, l->rel, l->cached);
  l->type = content_type(l->rel);
  if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    close(fd);
    if (!l->dir_form) {
      l->location = dir_location(l->rel);
      l->status = l->location ? 301 : 503;
      return;
    }
    fd = open_index(l);
    l->type = content_type("index.html");
    if (fd >= 0 && fstat(fd, &st) < 0)
      st.st_mode = 0;
  }
  if (fd < 0) {
    l->status = fd == -EAGAIN && l->cached ? -EAGAIN : status_of_errno(fd);
    return;
  }
  if (!S_ISREG(st.st_mode)) { /* a FIFO, a device, a socket */
    close(fd);
    l->status = 404;
    return;
  }
  l->fd = fd;
}

static void lookup_done(soon_work_req *w, int status) {
  lookup *l = (lookup *)w;
  soon_http_req *req = l->req;
  if (status < 0 && l->status == 0) { /* never run (cancelled) */
    l->status = 503;
  }
  if (l->status == 0) {
    soon_http_header h = header("Content-Type", l->type);
    int err = soon_http_respond_file(req, 200, l->fd, &h, 1);
    if (err < 0 &&
        err != -EPIPE) /* -EPIPE: the client is gone, the request too */
      respond_error(req, 500);
  } else if (l->status == 301) {
    respond_text(req, 301, "301 Moved Permanently\n", l->location);
  } else {
    respond_error(req, l->status);
  }
  free(l->location);
  free(l->rel);
  free(l);
}

/* ------------------------------------------------------------ the handler */

static int handle(soon_http_req *req) {
  serve *s = soon_http_server_data(req->server);
  bool head = is_head(req);
  bool get = req->method.len == 3 && memcmp(req->method.base, "GET", 3) == 0;
  if (!s->quiet) { /* the log's address, kept by the connection from here */
    struct sockaddr_storage peer;
    int len = sizeof peer;
    soon_http_req_peername(req, (struct sockaddr *)&peer, &len);
  }
  if (!get && !head) {
    respond_error(req, 405);
    return 0;
  }
  char *rel;
  bool dir_form;
  int status = decode_path(req->path, &rel, &dir_form);
  if (status) {
    respond_error(req, status);
    return 0;
  }
  lookup *l = calloc(1, sizeof *l);
  if (!l) {
    free(rel);
    return -ENOMEM;
  }
  *l = (lookup){.serve = s,
                .req = req,
                .rel = rel,
                .dir_form = dir_form,
                .fd = -1,
                .cached = !atomic_load(&s->no_cached) &&
                          !atomic_load(&s->no_openat2)};
  if (l->cached) {
    lookup_work(&l->work);
    if (l->status != -EAGAIN) {
      lookup_done(&l->work, 0);
      return 0;
    }
    l->status = 0;
    l->cached = false;
  }
  int err = soon_work(req->loop, &l->work, lookup_work, lookup_done);
  if (err < 0) {
    free(rel);
    free(l);
    return err;
  }
  return 0;
}

/* ------------------------------------------------------------ main */

static void on_server_closed(soon_http_server *server) { (void)server; }

/* The first SIGINT or SIGTERM stops gracefully; the signal handles close
 * with it, so a second one has its default effect (ends the process). */
static void on_signal(soon_signal *sig, int signum) {
  serve *s = sig->data;
  (void)signum;
  soon_close((soon_handle *)&s->sigint, NULL);
  soon_close((soon_handle *)&s->sigterm, NULL);
  soon_http_server_close(s->server, GRACE_MS, on_server_closed);
}

static void usage(FILE *f) {
  fprintf(f, "usage: soon-serve --root DIR [--port N] [--bind ADDR] "
             "[--threads N] [--quiet]\n"
             "  --port N     TCP port, 0 for any free one (default 8080)\n"
             "  --bind ADDR  numeric IPv4 or IPv6 address (default "
             "127.0.0.1)\n"
             "  --threads N  loops on N threads sharing the port "
             "(default 1)\n"
             "  --quiet      no access log on stdout\n");
}

static bool parse_uint(const char *arg, long max, long *out) {
  char *end;
  errno = 0;
  long v = arg ? strtol(arg, &end, 10) : -1;
  if (!arg || errno || *end || end == arg || v < 0 || v > max)
    return false;
  *out = v;
  return true;
}

typedef struct args {
  const char *root, *bind;
  long port, threads;
  bool quiet;
} args;

/* The options, each but --quiet and --help followed by its value. */
static int parse_args(int argc, char **argv, args *a) {
  *a = (args){.bind = "127.0.0.1", .port = 8080, .threads = 1};
  for (int i = 1; i < argc; i++) {
    const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
    bool ok;
    if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
      usage(stdout);
      exit(0);
    }
    if (strcmp(opt, "--quiet") == 0) {
      a->quiet = true;
      continue;
    }
    if (strcmp(opt, "--root") == 0)
      ok = (a->root = val) != NULL;
    else if (strcmp(opt, "--bind") == 0)
      ok = (a->bind = val) != NULL;
    else if (strcmp(opt, "--port") == 0)
      ok = parse_uint(val, 65535, &a->port);
    else if (strcmp(opt, "--threads") == 0)
      ok = parse_uint(val, 1024, &a->threads) && a->threads > 0;
    else
      ok = false;
    if (!ok) {
      fprintf(stderr, "soon-serve: bad or incomplete option '%s'\n", opt);
      return -1;
    }
    i++;
  }
  if (!a->root) {
    fprintf(stderr, "soon-serve: --root DIR is required\n");
    return -1;
  }
  return 0;
}

static int open_root(serve *s, const char *root) {
  s->root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  s->root_real = s->root_fd >= 0 ? realpath(root, NULL) : NULL;
  if (!s->root_real) {
    fprintf(stderr, "soon-serve: %s: %s\n", root, strerror(errno));
    return -1;
  }
  atomic_init(&s->no_openat2, getenv("SOON_SERVE_NO_OPENAT2") != NULL);
  atomic_init(&s->no_cached, false);
  return 0;
}

static int start(serve *s, soon_loop *loop, const args *a) {
  s->quiet = a->quiet;
  soon_http_server_options opts = {.threads = (unsigned)a->threads,
                                   .data = s,
                                   .on_done = a->quiet ? NULL : log_request};
  int err = soon_http_server_new(loop, &opts, handle, &s->server);
  if (err == 0)
    err = soon_http_server_listen(s->server, a->bind, (int)a->port);
  if (err < 0) {
    fprintf(stderr, "soon-serve: listen on %s port %ld: %s\n", a->bind, a->port,
            soon_strerror(err));
    return err;
  }
  /* The first line, flushed: scripts read the port from it (--port 0). */
  bool v6 = strchr(a->bind, ':') != NULL;
  printf("listening on http://%s%s%s:%d/\n", v6 ? "[" : "", a->bind,
         v6 ? "]" : "", soon_http_server_port(s->server));
  fflush(stdout);
  soon_signal_init(loop, &s->sigint);
  soon_signal_init(loop, &s->sigterm);
  s->sigint.data = s->sigterm.data = s;
  soon_signal_start(&s->sigint, on_signal, SIGINT);
  soon_signal_start(&s->sigterm, on_signal, SIGTERM);
  return 0;
}

int main(int argc, char **argv) {
  args a;
  serve s = {0};
  soon_loop loop;
  if (parse_args(argc, argv, &a) < 0) {
    usage(stderr);
    return 2;
  }
  if (open_root(&s, a.root) < 0)
    return 1;
  /* A log line per request goes out as it happens, even into a pipe. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  int err = soon_loop_init(&loop);
  if (err < 0) {
    fprintf(stderr, "soon-serve: %s\n", soon_strerror(err));
    return 1;
  }
  if (start(&s, &loop, &a) < 0)
    return 1;
  err = soon_run(&loop, SOON_RUN_DEFAULT);
  int closed = soon_loop_close(&loop);
  free(s.root_real);
  close(s.root_fd);
  if (err < 0 || closed < 0) {
    fprintf(stderr, "soon-serve: %s\n", soon_strerror(err < 0 ? err : closed));
    return 1;
  }
  return 0;
}
