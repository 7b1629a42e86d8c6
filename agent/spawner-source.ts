/**
 * The C source of the persistent spawner (see spawner.ts), compiled on the node when the agent starts: a
 * string here so that the one-file agent bundle carries it. Protocol and reasons in its header comment.
 */
export const SPAWNER_C = String.raw`/* Sortie's persistent spawner: one small process per node that starts the agent's units, so that the
 * agent's large heap never has to fork. Reads launch records from stdin, writes events to stdout.
 * Record (agent -> spawner): NUL-terminated fields
 *   id, cwd, stdout, stderr, script path, script text, argc, argv..., envc, env...
 * (empty stdout/stderr: /dev/null; empty script path: no script is written), or a kill: "K", pid, signal
 * (the signal goes to the unit's process group).
 * Events (spawner -> agent), one line each: "R pid" ready, "S id pid" started, "F id errno stage" not
 * started, "E pid code signal" ended (code -1 when killed by a signal). Each unit gets its own session
 * (so its process group is its pid), its directory made, its script written and its output files opened
 * in the child, before exec. With -k (a spawner on another node, started over SSH or srun) the units still
 * running when the agent's pipe closes (the agent died, or its connection did) are killed: nothing would
 * hear their end, and the pilot's end has already decided it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int sigpipe_fds[2];
static char *in;
static size_t in_len, in_cap;
static char out[65536];
static size_t out_len;
/* Started and not yet reaped (for -k). */
static pid_t *kids;
static size_t nkids, capkids;

static void flush_out(void) {
  size_t off = 0;
  while (off < out_len) {
    ssize_t n = write(1, out + off, out_len - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      _exit(3); /* the agent is gone */
    }
    off += (size_t)n;
  }
  out_len = 0;
}

static void emit(const char *fmt, long a, long b, long c) {
  if (out_len > sizeof(out) - 128) flush_out();
  out_len += (size_t)snprintf(out + out_len, sizeof(out) - out_len, fmt, a, b, c);
}

static void on_chld(int sig) {
  (void)sig;
  int e = errno;
  ssize_t r = write(sigpipe_fds[1], "c", 1);
  (void)r;
  errno = e;
}

/* The next NUL-terminated field at *pos, or NULL when the buffer ends first. */
static char *field(size_t *pos) {
  if (*pos >= in_len) return NULL;
  char *s = in + *pos;
  char *z = memchr(s, 0, in_len - *pos);
  if (!z) return NULL;
  *pos += (size_t)(z - s) + 1;
  return s;
}

/* Stages: 1 sandbox, 2 script, 3 output files, 4 exec (0: the spawner's own fork). */
/* Why a child did not exec, written by the child itself: vfork shares this memory with it. */
static volatile int child_errno, child_stage;
static void __attribute__((noreturn)) child_fail(int stage) {
  child_errno = errno;
  child_stage = stage;
  _exit(127);
}
static int open_out(const char *p) {
  return open(*p ? p : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
}
/* environ with the unit's variables on top (replacing those of the same name), built before the vfork. */
static char **__attribute__((noinline)) unit_env(char **env) {
  size_t n = 0, m = 0;
  while (environ[n]) n++;
  while (env[m]) m++;
  char **out = malloc((n + m + 1) * sizeof *out);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const char *eq = strchr(environ[i], '=');
    size_t len = eq ? (size_t)(eq - environ[i]) + 1 : strlen(environ[i]);
    int replaced = 0;
    for (size_t j = 0; j < m && !replaced; j++) replaced = strncmp(env[j], environ[i], len) == 0;
    if (!replaced) out[k++] = environ[i];
  }
  for (size_t j = 0; j < m; j++) out[k++] = env[j];
  out[k] = NULL;
  return out;
}
/* execvp's search, over the unit's own PATH (as execvp after the putenv calls the child used to make),
 * in the vfork child: no allocation (buf and shargv come from the parent). Returns only on failure. */
static void exec_search(char **argv, char **envp, char *buf, size_t cap, char **shargv) {
  const char *file = argv[0];
  const char *path = "/bin:/usr/bin";
  for (char **v = envp; *v; v++)
    if (strncmp(*v, "PATH=", 5) == 0) path = *v + 5;
  int seen_eacces = 0;
  for (const char *p = strchr(file, '/') ? "" : path;;) {
    const char *colon = strchr(p, ':');
    size_t dl = colon ? (size_t)(colon - p) : strlen(p);
    size_t fl = strlen(file);
    if (strchr(file, '/')) dl = 0;
    if (dl + fl + 2 <= cap) {
      memcpy(buf, p, dl);
      if (dl) buf[dl++] = '/';
      else if (!strchr(file, '/')) {
        buf[dl++] = '.';
        buf[dl++] = '/';
      }
      memcpy(buf + dl, file, fl + 1);
      execve(buf, argv, envp);
      if (errno == ENOEXEC) {
        /* No #! line: run it with sh, as execvp does. */
        size_t i = 0;
        shargv[0] = "/bin/sh";
        shargv[1] = buf;
        while (argv[i + 1]) {
          shargv[i + 2] = argv[i + 1];
          i++;
        }
        shargv[i + 2] = NULL;
        execve("/bin/sh", shargv, envp);
        return;
      }
      if (errno == EACCES) seen_eacces = 1;
      else if (errno != ENOENT && errno != ENOTDIR) return;
    }
    if (strchr(file, '/') || !colon) break;
    p = colon + 1;
  }
  if (seen_eacces) errno = EACCES;
}
/* The vfork child: system calls only, then exec (or child_fail). Its own function, so that nothing of
 * the parent's frame is written by it. */
static void __attribute__((noreturn, noinline))
child(char *cwd, char *so, char *se, char *sp, char *st, char **argv, char **envp, char *buf, size_t cap,
      char **shargv) {
  signal(SIGCHLD, SIG_DFL);
  signal(SIGPIPE, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  setsid();
  if (mkdir(cwd, 0755) < 0 && errno != EEXIST) child_fail(1);
  if (chdir(cwd) < 0) child_fail(1);
  if (*sp) {
    int fd = open(sp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0700);
    if (fd < 0) child_fail(2);
    size_t len = strlen(st), off = 0;
    while (off < len) {
      ssize_t n = write(fd, st + off, len - off);
      if (n < 0) child_fail(2);
      off += (size_t)n;
    }
    close(fd);
  }
  int i0 = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int o = open_out(so);
  int e = open_out(se);
  if (i0 < 0 || o < 0 || e < 0) child_fail(3);
  if (dup2(i0, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) child_fail(3);
  exec_search(argv, envp, buf, cap, shargv);
  child_fail(4);
}
static void launch(char *id, char *cwd, char *so, char *se, char *sp, char *st, char **argv, char **env) {
  /* vfork, not fork: the child borrows this process's memory until it execs, so no page tables are
   * copied (with fork the spawner started half as many null units per second here: ~250 vs ~530).
   * Everything it needs is allocated before; it only makes system calls and reports a failure through
   * child_errno/child_stage. Signals stay blocked around the vfork: no handler of ours runs in it. */
  char **volatile envp = unit_env(env);
  size_t argc = 0;
  while (argv[argc]) argc++;
  char **volatile shargv = malloc((argc + 2) * sizeof *shargv);
  size_t cap = strlen(argv[0]) + 4097;
  char *volatile buf = malloc(cap);
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &old);
  child_errno = 0;
  child_stage = 0;
  pid_t pid = vfork();
  if (pid == 0) child(cwd, so, se, sp, st, argv, envp, buf, cap, shargv);
  int fork_errno = errno;
  sigprocmask(SIG_SETMASK, &old, NULL);
  free(envp);
  free(shargv);
  free(buf);
  if (pid < 0) {
    emit("F %ld %ld %ld\n", atol(id), fork_errno, 0);
    return;
  }
  if (child_stage) {
    /* It never ran: reaped here, so its exit is not reported as a unit's end. */
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    emit("F %ld %ld %ld\n", atol(id), child_errno, child_stage);
  } else {
    if (nkids == capkids) kids = realloc(kids, (capkids = capkids ? capkids * 2 : 64) * sizeof *kids);
    kids[nkids++] = pid;
    emit("S %ld %ld\n", atol(id), (long)pid, 0);
  }
}

/* Launches every complete record in the buffer; keeps a partial one for the next read. */
static void drain(void) {
  size_t pos = 0;
  for (;;) {
    size_t p = pos;
    char *id = field(&p);
    if (!id) break;
    if (id[0] == 'K' && id[1] == 0) {
      char *kp = field(&p), *ks = kp ? field(&p) : NULL;
      if (!ks) break;
      long k = atol(kp);
      if (k > 1) kill(-(pid_t)k, atoi(ks));
      pos = p;
      continue;
    }
    char *cwd = field(&p), *so = field(&p), *se = field(&p), *sp = field(&p), *st = field(&p),
         *ac = field(&p);
    if (!ac) break;
    long argc = atol(ac);
    char **argv = calloc((size_t)argc + 1, sizeof *argv);
    int ok = 1;
    for (long i = 0; i < argc && ok; i++) ok = (argv[i] = field(&p)) != NULL;
    char *ec = ok ? field(&p) : NULL;
    char **env = NULL;
    if (ec) {
      long envc = atol(ec);
      env = calloc((size_t)envc + 1, sizeof *env);
      for (long i = 0; i < envc && ok; i++) ok = (env[i] = field(&p)) != NULL;
    }
    if (ok && ec && argc > 0) launch(id, cwd, so, se, sp, st, argv, env);
    else if (ok && ec) emit("F %ld %ld %ld\n", atol(id), (long)EINVAL, 0);
    free(argv);
    free(env);
    if (!ok || !ec) break;
    pos = p;
  }
  memmove(in, in + pos, in_len - pos);
  in_len -= pos;
}

static void reap(void) {
  int st;
  pid_t pid;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    for (size_t i = 0; i < nkids; i++)
      if (kids[i] == pid) {
        kids[i] = kids[--nkids];
        break;
      }
    if (WIFEXITED(st)) emit("E %ld %ld %ld\n", (long)pid, (long)WEXITSTATUS(st), 0);
    else if (WIFSIGNALED(st)) emit("E %ld %ld %ld\n", (long)pid, -1, (long)WTERMSIG(st));
  }
}

int main(int argc, char **argv) {
  int kill_on_eof = argc > 1 && strcmp(argv[1], "-k") == 0;
  if (pipe2(sigpipe_fds, O_CLOEXEC | O_NONBLOCK) < 0) return 2;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_chld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  /* A batch system's cancel sends SIGTERM to every process of the job: the agent then decides how its
   * units end (CANCELED when the user cancelled the pilot); the spawner must outlive that to report their
   * exits. It ends when the agent closes its pipe (or at the SIGKILL that follows). Units get SIGTERM back
   * (an ignored signal stays ignored across exec). */
  signal(SIGTERM, SIG_IGN);
  in_cap = 1 << 16;
  in = malloc(in_cap);
  emit("R %ld %ld %ld\n", (long)getpid(), 0, 0);
  flush_out();
  struct pollfd fds[2] = {{0, POLLIN, 0}, {sigpipe_fds[0], POLLIN, 0}};
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 2;
    }
    if (fds[1].revents & POLLIN) {
      char b[256];
      while (read(sigpipe_fds[0], b, sizeof b) > 0) {
      }
      reap();
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      if (in_cap - in_len < 4096) in = realloc(in, in_cap *= 2);
      ssize_t n = read(0, in + in_len, in_cap - in_len);
      if (n == 0) {
        /* The agent closed the pipe. On its own node its units run on (the agent's end decided them, and
         * the orphan sweep follows a crash); on another node, with -k, they die with the connection. */
        if (kill_on_eof)
          for (size_t i = 0; i < nkids; i++) kill(-kids[i], SIGKILL);
        return 0;
      }
      if (n > 0) {
        in_len += (size_t)n;
        drain();
      }
    }
    reap();
    flush_out();
  }
}
`;
