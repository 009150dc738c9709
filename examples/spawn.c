/* spawn.c: runs a command, its stdout and stderr piped back through callbacks
 * line by line with a prefix; exits with the child's status. */
#include <soon.h>
#include <stdio.h>
#include <unistd.h>

typedef struct output {
  soon_pipe pipe; /* first: the read callback gets &pipe as the stream */
  const char *prefix;
  int at_line_start;
  char space[65536];
} output;

static int64_t exit_status = -1;
static int term_signal;

static void on_alloc(soon_handle *h, size_t suggested, soon_buf *buf) {
  (void)suggested;
  output *out = (output *)h;
  buf->base = out->space;
  buf->len = sizeof out->space;
}

/* Called whenever the child wrote something: no thread waits for it. */
static void on_read(soon_stream *stream, ssize_t n, const soon_buf *buf) {
  output *out = (output *)stream;
  for (ssize_t i = 0; i < n; i++) {
    if (out->at_line_start)
      fputs(out->prefix, stdout);
    putchar(buf->base[i]);
    out->at_line_start = buf->base[i] == '\n';
  }
  if (n < 0) { /* SOON_EOF: the child closed its end (or exited) */
    if (!out->at_line_start)
      putchar('\n');
    soon_close((soon_handle *)stream, NULL);
  }
}

static void on_child_exit(soon_process *proc, int64_t status, int signal) {
  exit_status = status;
  term_signal = signal;
  soon_close((soon_handle *)proc, NULL);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s program [args...]\n", argv[0]);
    return 2;
  }
  soon_loop loop;
  soon_process proc;
  output out = {.prefix = "[out] ", .at_line_start = 1};
  output err = {.prefix = "[err] ", .at_line_start = 1};
  int r = soon_loop_init(&loop);
  if (r) {
    fprintf(stderr, "soon_loop_init: %s\n", soon_strerror(r));
    return 1;
  }
  soon_pipe_init(&loop, &out.pipe);
  soon_pipe_init(&loop, &err.pipe);

  soon_stdio_container stdio[3] = {
      {.flags = SOON_INHERIT_FD, .data.fd = STDIN_FILENO},
      {.flags = SOON_CREATE_PIPE | SOON_WRITABLE_PIPE,
       .data.stream = (soon_stream *)&out.pipe},
      {.flags = SOON_CREATE_PIPE | SOON_WRITABLE_PIPE,
       .data.stream = (soon_stream *)&err.pipe},
  };
  soon_process_options opts = {.exit_cb = on_child_exit,
                               .file = argv[1],
                               .args = argv + 1,
                               .stdio_count = 3,
                               .stdio = stdio};
  r = soon_spawn(&loop, &proc, &opts);
  if (r) { /* -ENOENT and friends come from here, not from a dead child */
    fprintf(stderr, "cannot run %s: %s\n", argv[1], soon_strerror(r));
    soon_close((soon_handle *)&out.pipe, NULL);
    soon_close((soon_handle *)&err.pipe, NULL);
    soon_run(&loop, SOON_RUN_DEFAULT);
    soon_loop_close(&loop);
    return 127;
  }
  printf("started %s, pid %d\n", argv[1], soon_process_get_pid(&proc));
  soon_read_start((soon_stream *)&out.pipe, on_alloc, on_read);
  soon_read_start((soon_stream *)&err.pipe, on_alloc, on_read);

  /* Ends when the child has exited and both pipes reached EOF. */
  soon_run(&loop, SOON_RUN_DEFAULT);
  printf("exit status %lld, signal %d\n", (long long)exit_status, term_signal);
  if (soon_loop_close(&loop) != 0)
    return 1;
  return term_signal ? 128 + term_signal : (int)exit_status;
}
