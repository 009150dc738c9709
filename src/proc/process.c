/* process.c: child processes: soon_spawn (posix_spawn, or fork + exec), stdio,
 * and reaping by a pidfd watch or, where there is none, by SIGCHLD. */
/* Streams are net's: a CREATE_PIPE end goes in through the public
 * soon_pipe_open, and their fds are read with soon_stream_fileno. */
#include "proc.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* posix_spawn can do everything but setuid/setgid with these (glibc 2.29
 * for addchdir_np, 2.26 for SETSID); without them, fork + exec does it. */
#if defined(POSIX_SPAWN_SETSID) && defined(__GLIBC__) &&                       \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))
#define HAVE_FULL_POSIX_SPAWN 1
#else
#define HAVE_FULL_POSIX_SPAWN 0
#endif

/* A process's state (its handle's state byte), which also says which arm
 * of p->watch is in use. Only PIDFD, SIGCHLD and DETACHED know the pid to be
 * the child's still: once soon has reaped it, the kernel may give it to
 * anyone. */
enum {
  PROC_PIDFD = 1, /* running, its exit watched on its pidfd: watch.io */
  PROC_SIGCHLD,   /* running, no pidfd: watch.sigchld */
  PROC_REAPED,    /* reaped (or lost), exit_cb owed: watch.reaped */
  PROC_EXITED,    /* reaped and told, or closed while REAPED */
  PROC_DETACHED   /* closed before its exit: never reaped by soon */
};

#define KNOWN_FLAGS                                                            \
  (SOON_PROCESS_SETUID | SOON_PROCESS_SETGID | SOON_PROCESS_DETACHED)
#define STDIO_KINDS (SOON_CREATE_PIPE | SOON_INHERIT_FD | SOON_INHERIT_STREAM)

static bool running(const soon_process *p) {
  return p->state == PROC_PIDFD || p->state == PROC_SIGCHLD;
}

/* Stop whichever watch the state says is in use. */
static void unwatch(soon_process *p) {
  if (p->state == PROC_PIDFD) {
    soon_io_stop(&p->watch.io); /* before close: the backend forgets the fd */
    close(p->watch.io.fd);
  } else if (p->state == PROC_SIGCHLD) {
    soon_signal_stop(&p->watch.sigchld);
  } else if (p->state == PROC_REAPED) {
    soon__queue_remove(&p->watch.reaped.pending.queue);
  }
}

static void process_close(soon_handle *h) {
  soon_process *p = (soon_process *)h;
  if (running(p) || p->state == PROC_REAPED) {
    unwatch(p);
    p->state = running(p) ? PROC_DETACHED : PROC_EXITED;
  }
  soon__handle_stop(h);
}
static const soon__handle_ops process_ops = {.close = process_close};

/* The child is gone: the handle stops being active before exit_cb, so a
 * loop with nothing else to do ends after it. */
static void reaped(soon_process *p, int wstatus, int lost) {
  unwatch(p);
  p->state = PROC_EXITED;
  soon__handle_stop((soon_handle *)p);
  int64_t status = 0;
  int sig = 0;
  if (lost)
    status = -ECHILD;
  else if (WIFEXITED(wstatus))
    status = WEXITSTATUS(wstatus);
  else if (WIFSIGNALED(wstatus))
    sig = WTERMSIG(wstatus);
  if (p->exit_cb)
    SOON__TELL(p->loop, SOON__PHASE_LOOP, SOON_PROCESS, p,
               soon__status_of(status), p->exit_cb(p, status, sig));
}

/* Only p->pid, never -1: children that are not soon's are not soon's to
 * reap. 1 if reaped (status in *wstatus, or lost), 0 if still running. */
static int try_reap(soon_process *p, int *wstatus, int *lost) {
  pid_t r;
  do
    r = waitpid(p->pid, wstatus, WNOHANG);
  while (r < 0 && errno == EINTR);
  *lost = r < 0; /* ECHILD: someone else reaped it */
  return r != 0;
}

static void pending_cb(soon__deferred *pend) {
  soon_process *p =
      soon__container_of(pend, soon_process, watch.reaped.pending);
  int wstatus = p->watch.reaped.wstatus;
  reaped(p, wstatus, wstatus < 0);
}

/* Reaped where no callback may run yet: exit_cb in the pending phase.
 * wstatus -1: lost. The watch in use is stopped already. */
static void owe_exit(soon_process *p, int wstatus) {
  p->state = PROC_REAPED;
  soon__queue_init(&p->watch.reaped.pending.queue);
  p->watch.reaped.pending.cb = pending_cb;
  p->watch.reaped.wstatus = wstatus;
  soon__pending_push(p->loop, &p->watch.reaped.pending);
}

static void sigchld_cb(soon_signal *s, int signum) {
  (void)signum;
  soon_process *p = soon__container_of(s, soon_process, watch.sigchld);
  int ws = 0, lost;
  if (try_reap(p, &ws, &lost))
    reaped(p, ws, lost);
}

/* Exits after the handler is installed raise SIGCHLD; one before it is
 * found by the waitpid right after, and told in the pending phase. */
static int watch_sigchld(soon_process *p) {
  soon__signal_init_internal(p->loop, &p->watch.sigchld);
  int err = soon_signal_start(&p->watch.sigchld, sigchld_cb, SIGCHLD);
  if (err)
    return err;
  p->state = PROC_SIGCHLD;
  int ws = 0, lost;
  if (try_reap(p, &ws, &lost)) {
    soon_signal_stop(&p->watch.sigchld);
    owe_exit(p, lost ? -1 : ws);
  }
  return 0;
}

static void pidfd_cb(soon_io *io, int status, int events) {
  (void)events;
  soon_process *p = soon__container_of(io, soon_process, watch.io);
  int ws = 0, lost;
  if (try_reap(p, &ws, &lost)) {
    reaped(p, ws, lost);
  } else if (status < 0) { /* the pidfd was closed behind our back */
    p->state = 0; /* its watcher is stopped, and the fd not ours to close */
    if (watch_sigchld(p) < 0) /* nothing can tell us any more: give up */
      owe_exit(p, -1);
  }
}

static int no_pidfd(void) {
  const char *v = getenv("SOON_NO_PIDFD");
  return v && *v && strcmp(v, "0") != 0;
}

/* A pidfd turns readable when the child exits: the exit is one more fd
 * event, with no signal handler and no process-wide state. */
static int watch_pidfd(soon_process *p) {
#ifdef SYS_pidfd_open
  if (no_pidfd())
    return -ENOSYS;
  int fd = (int)syscall(SYS_pidfd_open, p->pid, 0); /* close-on-exec */
  if (fd < 0)
    return -errno;
  soon__io_init_internal(p->loop, &p->watch.io, fd);
  int err = soon_io_start(&p->watch.io, SOON_READABLE, pidfd_cb);
  if (err) /* select and an fd over FD_SETSIZE, say */
    close(fd);
  else
    p->state = PROC_PIDFD;
  return err;
#else
  (void)p;
  return -ENOSYS;
#endif
}

/* ------------------------------------------------------------ stdio */

/* What the child's fds 0..n-1 are made of. Every fd here is close-on-exec
 * in the parent and numbered n or more, so the child's dup2(src[i], i) never
 * overwrites a source it still needs, whatever the order; src[i] == i is an
 * inherited fd kept in place (the dup2 then only clears close-on-exec). */
typedef struct soon__stdio_plan {
  int n;
  int *src;    /* the child's fd i is a copy of src[i] */
  int *owned;  /* src[i] was made for this spawn: closed after it */
  int *parent; /* the caller's end of a CREATE_PIPE, else -1 */
  int devnull;
} soon__stdio_plan;

/* fd itself if it is at least n, else a close-on-exec copy that is. */
static int fd_above(int fd, int n, int *made) {
  *made = 0;
  if (fd >= n)
    return fd;
  int c = fcntl(fd, F_DUPFD_CLOEXEC, n);
  if (c < 0)
    return -errno;
  *made = 1;
  return c;
}

static void plan_free(soon__stdio_plan *pl, int close_parent) {
  for (int i = 0; i < pl->n; i++) {
    if (pl->owned[i] && pl->src[i] >= 0)
      close(pl->src[i]);
    if (close_parent && pl->parent[i] >= 0)
      close(pl->parent[i]);
  }
  if (pl->devnull >= 0)
    close(pl->devnull);
  free(pl->src);
}

static int check_stdio(const soon_process_options *o) {
  for (int i = 0; i < o->stdio_count; i++) {
    const soon_stdio_container *c = &o->stdio[i];
    int kind = c->flags & STDIO_KINDS;
    if (c->flags & ~(STDIO_KINDS | SOON_READABLE_PIPE | SOON_WRITABLE_PIPE))
      return -EINVAL;
    if (kind != 0 && kind != SOON_CREATE_PIPE && kind != SOON_INHERIT_FD &&
        kind != SOON_INHERIT_STREAM)
      return -EINVAL; /* more than one kind */
    if ((c->flags & (SOON_READABLE_PIPE | SOON_WRITABLE_PIPE)) &&
        kind != SOON_CREATE_PIPE)
      return -EINVAL;
    soon_stream *s = c->data.stream;
    int fd;
    if (kind == SOON_CREATE_PIPE &&
        (!s || s->type != SOON_PIPE || soon__closing((soon_handle *)s) ||
         soon_stream_fileno(s, &fd) == 0))
      return -EINVAL;
    if (kind == SOON_INHERIT_STREAM && soon_stream_fileno(s, &fd) != 0)
      return -EINVAL;
    if (kind == SOON_INHERIT_FD && c->data.fd < 0)
      return -EINVAL;
    for (int j = 0; kind == SOON_CREATE_PIPE && j < i; j++)
      if ((o->stdio[j].flags & STDIO_KINDS) == SOON_CREATE_PIPE &&
          o->stdio[j].data.stream == s)
        return -EINVAL; /* one stream cannot take two socket ends */
  }
  return 0;
}

/* Sets pl->src[i] (and what goes with it) for the child's fd i. */
static int plan_slot(soon__stdio_plan *pl, const soon_process_options *o,
                     int i) {
  int kind = i < o->stdio_count ? o->stdio[i].flags & STDIO_KINDS : 0;
  int fd, made;
  if (kind == SOON_INHERIT_FD || kind == SOON_INHERIT_STREAM) {
    if (kind == SOON_INHERIT_FD)
      fd = o->stdio[i].data.fd;
    else if (soon_stream_fileno(o->stdio[i].data.stream, &fd) != 0)
      return -EINVAL;
    if (fd == i) { /* kept in place */
      pl->src[i] = fd;
      return fcntl(fd, F_GETFD) < 0 ? -errno : 0;
    }
    fd = fd_above(fd, pl->n, &made);
    if (fd < 0)
      return fd;
    pl->src[i] = fd;
    pl->owned[i] = made;
    return 0;
  }
  if (kind == SOON_CREATE_PIPE) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
      return -errno;
    pl->parent[i] = sv[0];
    fd = fd_above(sv[1], pl->n, &made);
    if (fd < 0 || made)
      close(sv[1]);
    if (fd < 0)
      return fd;
    pl->src[i] = fd;
    pl->owned[i] = 1;
    /* Now: nothing may fail after the spawn. */
    return soon__io_reserve(o->stdio[i].data.stream->loop, sv[0]);
  }
  if (pl->devnull < 0) { /* one /dev/null for every ignored fd */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
      return -errno;
    fd = fd_above(null, pl->n, &made);
    if (fd < 0 || made)
      close(null);
    if (fd < 0)
      return fd;
    pl->devnull = fd;
  }
  pl->src[i] = pl->devnull;
  return 0;
}

static int plan_make(soon__stdio_plan *pl, const soon_process_options *o) {
  int n = o->stdio_count > 3 ? o->stdio_count : 3;
  pl->n = n;
  pl->devnull = -1;
  pl->src = malloc(3 * (size_t)n * sizeof *pl->src);
  if (!pl->src)
    return -ENOMEM;
  pl->owned = pl->src + n;
  pl->parent = pl->src + 2 * n;
  for (int i = 0; i < n; i++) {
    pl->src[i] = pl->parent[i] = -1;
    pl->owned[i] = 0;
  }
  int err = 0;
  for (int i = 0; i < n && !err; i++)
    err = plan_slot(pl, o, i);
  if (err)
    plan_free(pl, 1);
  return err;
}

/* The caller's ends into their CREATE_PIPE streams, once nothing else can
 * fail: check_stdio found each stream without an fd, and plan_slot made room
 * for each end in its loop's fd table, so no open fails here and none ever
 * has to be taken back. */
static void open_parents(const soon_process_options *o,
                         const soon__stdio_plan *pl) {
  for (int i = 0; i < o->stdio_count; i++) {
    if (pl->parent[i] < 0)
      continue;
    int err =
        soon_pipe_open((soon_pipe *)o->stdio[i].data.stream, pl->parent[i]);
    SOON_ASSERT(err == 0);
    (void)err;
  }
}

/* ------------------------------------------------------------ spawning */

#if HAVE_FULL_POSIX_SPAWN
/* glibc runs the child with clone(CLONE_VM | CLONE_VFORK): no page tables
 * copied, and the exec's errno comes back as the return value (the failed
 * child already reaped by glibc). */
static int spawn_posix(const soon_process_options *o, char **args, char **env,
                       const soon__stdio_plan *pl, pid_t *pid) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  int err = posix_spawn_file_actions_init(&fa);
  if (err)
    return -err;
  err = posix_spawnattr_init(&at);
  if (err) {
    posix_spawn_file_actions_destroy(&fa);
    return -err;
  }
  if (o->cwd)
    err = posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
  /* dup2 of an fd onto itself clears its close-on-exec (glibc 2.29). */
  for (int i = 0; i < pl->n && !err; i++)
    err = posix_spawn_file_actions_adddup2(&fa, pl->src[i], i);
  /* The child starts as exec would start it from a fresh shell: default
   * dispositions (ours would not survive exec anyway, ignored ones would),
   * nothing blocked. */
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (o->flags & SOON_PROCESS_DETACHED)
    flags |= POSIX_SPAWN_SETSID;
  if (!err)
    err = posix_spawnattr_setsigdefault(&at, &all);
  if (!err)
    err = posix_spawnattr_setsigmask(&at, &none);
  if (!err)
    err = posix_spawnattr_setflags(&at, flags);
  if (!err)
    err = posix_spawnp(pid, o->file, &fa, &at, args, env);
  posix_spawnattr_destroy(&at);
  posix_spawn_file_actions_destroy(&fa);
  return -err;
}
#endif

/* After fork, only async-signal-safe calls: another thread may have held
 * malloc's lock. Any failure is sent to the parent as an errno on the
 * close-on-exec pipe, which a successful exec closes with nothing written. */
static void child_exec(const soon_process_options *o, char **args, char **env,
                       const soon__stdio_plan *pl, int errfd) {
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; s++)
    if (s != SIGKILL && s != SIGSTOP)
      sigaction(s, &dfl, NULL); /* the C library's own signals refuse */
  int err = 0;
  if ((o->flags & SOON_PROCESS_DETACHED) && setsid() < 0)
    err = errno;
  for (int i = 0; i < pl->n && !err; i++) {
    if (pl->src[i] == i ? fcntl(i, F_SETFD, 0) < 0 : dup2(pl->src[i], i) < 0)
      err = errno;
  }
  if (!err && o->cwd && chdir(o->cwd) < 0)
    err = errno;
  if (!err && (o->flags & (SOON_PROCESS_SETUID | SOON_PROCESS_SETGID)))
    (void)setgroups(0, NULL); /* EPERM shows in setgid/setuid below */
  if (!err && (o->flags & SOON_PROCESS_SETGID) && setgid(o->gid) < 0)
    err = errno;
  if (!err && (o->flags & SOON_PROCESS_SETUID) && setuid(o->uid) < 0)
    err = errno;
  if (!err) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execvpe(o->file, args, env);
    err = errno;
  }
  ssize_t r;
  do
    r = write(errfd, &err, sizeof err);
  while (r < 0 && errno == EINTR);
  _exit(127);
}

static int spawn_fork(const soon_process_options *o, char **args, char **env,
                      const soon__stdio_plan *pl, pid_t *pid) {
  int ep[2], made;
  if (pipe2(ep, O_CLOEXEC) < 0)
    return -errno;
  /* Out of the way of the child's dup2s, like every other fd it uses. */
  int w = fd_above(ep[1], pl->n, &made);
  if (w < 0 || made)
    close(ep[1]);
  if (w < 0) {
    close(ep[0]);
    return w;
  }
  ep[1] = w;
  /* Blocked across fork so no handler (soon's, which writes to eventfds the
   * child shares with us) runs in the child before it resets them. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t child = fork();
  if (child == 0)
    child_exec(o, args, env, pl, ep[1]);
  int err = child < 0 ? -errno : 0;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  close(ep[1]);
  if (child > 0) {
    int cerr;
    ssize_t r;
    do
      r = read(ep[0], &cerr, sizeof cerr);
    while (r < 0 && errno == EINTR);
    if (r == sizeof cerr) { /* it never ran: reap it now, no zombie */
      err = -cerr;
      while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
        ;
    }
  }
  close(ep[0]);
  *pid = child;
  return err;
}

/* Test hook: SOON_SPAWN_FORK=1 takes the fork path even when posix_spawn
 * could do the job, so both paths run the same tests. */
static int want_fork(const soon_process_options *o) {
  if (o->flags & (SOON_PROCESS_SETUID | SOON_PROCESS_SETGID))
    return 1;
  const char *v = getenv("SOON_SPAWN_FORK");
  return !HAVE_FULL_POSIX_SPAWN || (v && *v && strcmp(v, "0") != 0);
}

int soon_spawn(soon_loop *loop, soon_process *p,
               const soon_process_options *o) {
  if (!soon__loop_usable(loop) || !p || !o || !o->file || !*o->file ||
      o->stdio_count < 0 || (o->stdio_count && !o->stdio) ||
      (o->flags & ~KNOWN_FLAGS))
    return -EINVAL;
  int err = check_stdio(o);
  if (err)
    return err;
  char *argv0[] = {(char *)o->file, NULL};
  char **args = o->args ? o->args : argv0;
  char **env = o->env ? o->env : environ;
  soon__stdio_plan pl;
  if ((err = plan_make(&pl, o)))
    return err;

  pid_t pid = -1;
#if HAVE_FULL_POSIX_SPAWN
  if (!want_fork(o))
    err = spawn_posix(o, args, env, &pl, &pid);
  else
#endif
    err = spawn_fork(o, args, env, &pl, &pid);
  if (err) {
    plan_free(&pl, 1);
    return err;
  }

  /* From here the child runs: the handle must come out whole, or the child
   * is killed and reaped so the error leaves nothing behind. */
  soon__handle_init(loop, (soon_handle *)p, SOON_PROCESS, &process_ops);
  p->pid = pid;
  p->exit_cb = o->exit_cb;
  if (watch_pidfd(p) < 0 && (err = watch_sigchld(p)) < 0) {
    soon__handle_uninit((soon_handle *)p);
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
      ;
    plan_free(&pl, 1);
    return err;
  }
  open_parents(o, &pl);
  plan_free(&pl, 0);
  soon__handle_start((soon_handle *)p);
  return 0;
}

int soon_process_kill(soon_process *p, int signum) {
  if (!p || p->type != SOON_PROCESS)
    return -EINVAL;
  if (!running(p) && p->state != PROC_DETACHED)
    return -ESRCH; /* reaped: the pid may be someone else's by now */
  return soon_kill(p->pid, signum);
}

int soon_kill(int pid, int signum) {
  return kill(pid, signum) < 0 ? -errno : 0;
}

int soon_process_get_pid(const soon_process *p) { return p ? p->pid : 0; }
