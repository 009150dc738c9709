/* pipe.c: Unix domain stream sockets (paths and Linux abstract names), and any
 * other stream fd, such as stdin or a pipe(2) end, adopted as a soon stream. */
#include "net.h"

#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int soon_pipe_init(soon_loop *loop, soon_pipe *pipe) {
  if (!soon__loop_usable(loop) || !pipe)
    return -EINVAL;
  soon__stream_init(loop, (soon_stream *)pipe, SOON_PIPE);
  return 0;
}

int soon_pipe_open(soon_pipe *pipe, int fd) {
  if (!pipe || fd < 0 || soon__closing((soon_handle *)pipe))
    return -EINVAL;
  struct stat st;
  if (fstat(fd, &st) < 0)
    return -errno;
  /* A regular file is always "ready": read it with soon_fs_read instead. */
  if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
    return -EINVAL;
  int err = soon__nonblock(fd);
  return err ? err : soon__stream_open((soon_stream *)pipe, fd);
}

/* An abstract name (name[0] == '\0') is exactly len bytes; a path is
 * NUL-terminated in sun_path. */
static int unix_addr(const char *name, size_t len, struct sockaddr_un *sun,
                     socklen_t *sunlen) {
  if (!name)
    return -EINVAL;
  bool abstract = name[0] == '\0';
  if (abstract ? len < 1 : (len = len ? len : strlen(name)) == 0)
    return -EINVAL;
  if (len + !abstract > sizeof sun->sun_path)
    return -ENAMETOOLONG;
  memset(sun, 0, sizeof *sun);
  sun->sun_family = AF_UNIX;
  memcpy(sun->sun_path, name, len);
  *sunlen =
      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + !abstract);
  return 0;
}

int soon_pipe_bind(soon_pipe *pipe, const char *name, size_t len) {
  struct sockaddr_un sun;
  socklen_t sunlen;
  if (!pipe || soon__closing((soon_handle *)pipe))
    return -EINVAL;
  int err = unix_addr(name, len, &sun, &sunlen);
  if (err || (err = soon__stream_socket((soon_stream *)pipe, AF_UNIX)))
    return err;
  return bind(pipe->io.fd, (struct sockaddr *)&sun, sunlen) < 0 ? -errno : 0;
}

int soon_pipe_connect(soon_connect_req *req, soon_pipe *pipe, const char *name,
                      size_t len, soon_connect_cb cb) {
  struct sockaddr_un sun;
  socklen_t sunlen;
  if (!req || !pipe || !cb || soon__closing((soon_handle *)pipe))
    return -EINVAL;
  if (pipe->connect_req)
    return -EALREADY;
  int err = unix_addr(name, len, &sun, &sunlen);
  if (err || (err = soon__stream_socket((soon_stream *)pipe, AF_UNIX)))
    return err;
  /* Unix sockets answer at once (connect(2), never the ring). EAGAIN (the
   * listener's backlog is full) started nothing: waiting for writability
   * would report a connection that does not exist, so it goes to the
   * callback as an error, as in libuv. */
  return soon__stream_connect_to(req, (soon_stream *)pipe,
                                 (struct sockaddr *)&sun, sunlen, cb);
}

static int pipe_name(const soon_pipe *pipe, char *buf, size_t *len,
                     int (*get)(int, struct sockaddr *, socklen_t *)) {
  if (!pipe || !buf || !len)
    return -EINVAL;
  if (pipe->io.fd < 0)
    return -EBADF;
  struct sockaddr_un sun;
  socklen_t sunlen = sizeof sun;
  memset(&sun, 0, sizeof sun);
  if (get(pipe->io.fd, (struct sockaddr *)&sun, &sunlen) < 0)
    return -errno;
  size_t n = sunlen > offsetof(struct sockaddr_un, sun_path)
                 ? sunlen - offsetof(struct sockaddr_un, sun_path)
                 : 0;
  if (n && sun.sun_path[0] != '\0')
    n = strnlen(sun.sun_path, n); /* a path: without its NUL */
  if (n + 1 > *len) {
    *len = n + 1;
    return -ENOBUFS;
  }
  memcpy(buf, sun.sun_path, n);
  buf[n] = '\0';
  *len = n;
  return 0;
}

int soon_pipe_getsockname(const soon_pipe *pipe, char *buf, size_t *len) {
  return pipe_name(pipe, buf, len, getsockname);
}

int soon_pipe_getpeername(const soon_pipe *pipe, char *buf, size_t *len) {
  return pipe_name(pipe, buf, len, getpeername);
}
