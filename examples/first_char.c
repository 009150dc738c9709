/* first_char.c: the seed article's first program (section 2.2.1) made
 * asynchronous: open a file, read its first line in chained callbacks, and
 * compute result2 meanwhile. */
#include <soon.h>

#include <ctype.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The file it reads when given none; its first character is a vowel. */
static const char default_text[] =
    "Asynchronous code asks for the data and carries on.\n"
    "The callback does the rest once the data is there.\n";

/* One request, reused along the chain: open, then read, then close. */
typedef struct program {
  soon_fs_req req;
  const char *path;
  int fd;
  char line[256]; /* the first line, cut at this size if longer */
  double result1;
  int status; /* the exit status */
} program;

static uint64_t t0;

/* Timestamps show the order things happened in, which is the whole point. */
static void trace(const char *fmt, ...) {
  va_list ap;
  printf("[%8.3f ms] ", (double)(soon_hrtime() - t0) / 1e6);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
}

/* The article's calculateResult1. */
static double calculate_result1(char first_char) {
  if (strchr("aeiou", tolower((unsigned char)first_char)))
    return pow(2, 1 / 3.0);
  return pow(2, 1 / 2.0);
}

static void on_close(soon_fs_req *req) {
  program *p = req->data;
  if (req->result < 0) {
    fprintf(stderr, "first_char: close: %s\n", soon_strerror((int)req->result));
    p->status = 1;
  } else {
    trace("file closed");
  }
  soon_fs_req_cleanup(req);
}

/* Success or not, the fd is given back before the loop may end. */
static void close_file(program *p, soon_loop *loop) {
  int err = soon_fs_close(loop, &p->req, p->fd, on_close);
  if (err) {
    fprintf(stderr, "first_char: close: %s\n", soon_strerror(err));
    p->status = 1;
  }
}

/* The article's `lambda first_line: calculateResult1(first_line[0])`. */
static void on_read(soon_fs_req *req) {
  program *p = req->data;
  soon_loop *loop = req->loop;
  int64_t n = req->result;
  soon_fs_req_cleanup(req);
  if (n < 0) {
    fprintf(stderr, "first_char: cannot read %s: %s\n", p->path,
            soon_strerror((int)n));
    p->status = 1;
  } else if (n == 0) {
    fprintf(stderr, "first_char: %s is empty: no first character\n", p->path);
    p->status = 1;
  } else {
    p->line[n] = '\0';
    p->line[strcspn(p->line, "\n")] = '\0';
    trace("first line read: \"%s\"", p->line);
    p->result1 = calculate_result1(p->line[0]);
    trace("result1 = %.6f ('%c' is %sa vowel)", p->result1, p->line[0],
          strchr("aeiou", tolower((unsigned char)p->line[0])) ? "" : "not ");
    p->status = 0;
  }
  close_file(p, loop);
}

/* The article's `lambda f: f.readline(...)`: read from the start of the
 * file; one read is enough for a first line that fits the buffer. */
static void on_open(soon_fs_req *req) {
  program *p = req->data;
  soon_loop *loop = req->loop;
  int64_t fd = req->result;
  soon_fs_req_cleanup(req);
  if (fd < 0) {
    fprintf(stderr, "first_char: cannot open %s: %s\n", p->path,
            soon_strerror((int)fd));
    p->status = 1;
    return;
  }
  p->fd = (int)fd;
  trace("open done (fd %d), reading the first line", p->fd);
  soon_buf buf = {p->line, sizeof p->line - 1};
  int err = soon_fs_read(loop, &p->req, p->fd, &buf, 1, 0, on_read);
  if (err) {
    fprintf(stderr, "first_char: read: %s\n", soon_strerror(err));
    p->status = 1;
    close_file(p, loop);
  }
}

/* Writing the default file is set-up, not the demonstration: plain stdio. */
static int write_default(char *path) {
  int fd = mkstemp(path);
  if (fd < 0)
    return -1;
  FILE *f = fdopen(fd, "w");
  if (!f) {
    close(fd);
    unlink(path);
    return -1;
  }
  int ok = fputs(default_text, f) >= 0;
  if (fclose(f) != 0 || !ok) {
    unlink(path);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  char tmp[] = "/tmp/first_char-XXXXXX";
  program p = {.fd = -1, .status = 1};
  soon_loop loop;
  int err;

  /* Line by line even into a pipe, so that with SOON_TRACE=1 (soon's lines
   * on stderr) the two interleave in the order things ran. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc > 2) {
    fprintf(stderr, "usage: %s [file]\n", argv[0]);
    return 2;
  }
  if (argc == 2) {
    p.path = argv[1];
  } else {
    if (write_default(tmp) != 0) {
      perror("first_char: cannot write a temporary file");
      return 1;
    }
    p.path = tmp;
  }
  if ((err = soon_loop_init(&loop)) != 0) {
    fprintf(stderr, "first_char: soon_loop_init: %s\n", soon_strerror(err));
    if (p.path == tmp)
      unlink(tmp);
    return 1;
  }

  t0 = soon_hrtime();
  p.req.data = &p;
  trace("open requested: %s", p.path);
  err = soon_fs_open(&loop, &p.req, p.path, O_RDONLY, 0, on_open);
  if (err) {
    fprintf(stderr, "first_char: open: %s\n", soon_strerror(err));
  } else {
    /* The article's line 11: it does not wait for the file. No callback can
     * have run yet: they run only inside soon_run below. */
    double result2 = pow(3, 2);
    trace("result2 = %g computed (the file read is still in flight)", result2);
    soon_run(&loop, SOON_RUN_DEFAULT);
    trace("loop done: nothing left in flight");
    if (p.status == 0)
      printf("result1 = %.6f, result2 = %g\n", p.result1, result2);
  }

  if (soon_loop_close(&loop) != 0)
    p.status = 1;
  if (p.path == tmp)
    unlink(tmp);
  return err ? 1 : p.status;
}
