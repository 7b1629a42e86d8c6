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

/* Stages: 1 sandbox, 2 script, 3 output files, 4 exec (0: the spawner's own fork or pipe). */
static void child_fail(int errfd, int stage) {
  int e[2] = {errno, stage};
  ssize_t r = write(errfd, e, sizeof e);
  (void)r;
  _exit(127);
}

static int open_out(const char *p) {
  return open(*p ? p : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
}

static void launch(char *id, char *cwd, char *so, char *se, char *sp, char *st, char **argv, char **env) {
  int ep[2];
  if (pipe2(ep, O_CLOEXEC) < 0) {
    emit("F %ld %ld %ld\n", atol(id), errno, 0);
    return;
  }
  pid_t pid = fork();
  if (pid < 0) {
    emit("F %ld %ld %ld\n", atol(id), errno, 0);
    close(ep[0]);
    close(ep[1]);
    return;
  }
  if (pid == 0) {
    close(ep[0]);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    setsid();
    if (mkdir(cwd, 0755) < 0 && errno != EEXIST) child_fail(ep[1], 1);
    if (chdir(cwd) < 0) child_fail(ep[1], 1);
    if (*sp) {
      int fd = open(sp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0700);
      if (fd < 0) child_fail(ep[1], 2);
      size_t len = strlen(st), off = 0;
      while (off < len) {
        ssize_t n = write(fd, st + off, len - off);
        if (n < 0) child_fail(ep[1], 2);
        off += (size_t)n;
      }
      close(fd);
    }
    int i0 = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int o = open_out(so);
    int e = open_out(se);
    if (i0 < 0 || o < 0 || e < 0) child_fail(ep[1], 3);
    if (dup2(i0, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) child_fail(ep[1], 3);
    for (char **v = env; *v; v++) putenv(*v);
    execvp(argv[0], argv);
    child_fail(ep[1], 4);
  }
  close(ep[1]);
  int err[2] = {0, 0};
  ssize_t n;
  do n = read(ep[0], err, sizeof err);
  while (n < 0 && errno == EINTR);
  close(ep[0]);
  if (n == (ssize_t)sizeof err) {
    /* It never ran: reaped here, so its exit is not reported as a unit's end. */
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    emit("F %ld %ld %ld\n", atol(id), err[0], err[1]);
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
