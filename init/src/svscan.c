/*
 * svscan [DIR]: runs one supervise per subdirectory of DIR, as daemontools 0.76's svscan: subdirectories
 * not starting with '.', `supervise` found through $PATH (a wrapper earlier in PATH runs instead), for
 * s/log a pipe from s to s/log whose both ends svscan keeps, at most MAX_SERVICES services, a rescan every
 * RESCAN_MS. Like djb's, `supervise NAME` runs in DIR and `supervise log` in DIR/NAME.
 *
 * What svinit adds, because it runs as process 1:
 *   - it reaps every child, orphans included, when SIGCHLD arrives; when it is not process 1 it makes
 *     itself a child subreaper, so orphans of its services come back to it all the same;
 *   - it restarts a supervise that exited at once, but at most once per RESTART_MS for each;
 *   - diverted signals: on SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGPWR, SIGWINCH or SIGALRM
 *     it runs DIR/.svscan/SIGNAME when that is executable, without waiting for it (one at a time per
 *     signal; a signal that arrives while its hook runs runs it once more afterwards). Without a hook,
 *     SIGHUP and SIGALRM rescan, and SIGTERM, when svscan is not process 1, stops (below) and exits 0.
 *     Signals that were blocked and pending when svscan was exec'd are acted on as if they came later;
 *   - DIR/.svscan/control, a FIFO: 'a' or 'h' rescan now; digits set the exit code (0 to 255);
 *     'x' ends svscan now; 't' stops every service and logger, then ends svscan; 'f' freezes it: from
 *     then on it starts no supervise, and restarts none that exits (svinit's shutdown stops them itself,
 *     and wants no restarted supervise in its way). Other bytes are ignored;
 *   - the stop: `dx` to every service's supervise; after STOP_GRACE_MS `kx`. As soon as a service's
 *     supervise is gone, its logger's turn: what services left behind (svscan's children it did not
 *     start) gets SIGTERM, svscan closes its end of the log pipe, so the logger reads to end of file and
 *     exits, and `x` goes to the logger's supervise; after STOP_GRACE_MS `dx` (and SIGKILL to what was
 *     left behind), then `kx`. No log line is lost, with any logger;
 *   - the end (after 'x', or once the stop is over): exec DIR/.svscan/finish CODE, still as the same
 *     process, when it is executable, else exit with CODE. When finish cannot be exec'd, that is said
 *     once; then process 1 execs DIR/.svscan/crash, else /bin/sh -i on the console; else svscan exits
 *     with CODE when exiting is harmless (not process 1, or process 1 of a container's PID namespace),
 *     else it tries it all again every END_RETRY_MS: process 1 of a machine never exits;
 *   - its own messages never block it: when its stderr is a FIFO or pipe (as process 1, the one its
 *     logger reads), it writes them through a second, non-blocking open of it; what a full log cannot
 *     take is counted and reported later in one line;
 *   - as process 1 it disables the kernel's Ctrl-Alt-Del (it arrives as SIGINT) and asks the console for
 *     kbrequest (SIGWINCH); both fail harmlessly in a container;
 *   - it never dies: when it cannot enter DIR as process 1, it execs DIR/.svscan/crash, else /bin/sh,
 *     else it waits and tries again. Every other error is reported and retried.
 *
 * Signal handlers and control bytes only set flags; main's loop acts on them, in one place each.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sv.h"

#define MAX_SERVICES 1000
#define RESCAN_MS 5000
#define RESTART_MS 1000
#define STOP_GRACE_MS 5000
#define END_RETRY_MS 1000
#ifndef KDSIGACCEPT
#define KDSIGACCEPT 0x4B4E
#endif

extern char **environ;

struct service {
  dev_t dev;
  ino_t ino;
  char *name;
  int active;              /* seen by the last scan */
  int pipe[2];             /* service to logger, -1 without log */
  pid_t pid, pidlog;       /* their supervise, 0 when not running */
  int64_t start, startlog; /* when each was last started */
  int step[2];             /* the stop: steps done for the service [0] and its logger [1] */
  int64_t next[2];         /* the stop: when each takes its next step */
};

static struct service *sv;
static size_t nsv, capsv;
static size_t refused, refused_reported;
static const char *dir = ".";
static int pid1;
static int fdcontrol = -1;
static int exitcode;
static int64_t next_scan;
static int stopping;        /* the stop has begun; nothing starts any more */
static int frozen;          /* 'f' came: nothing starts any more, nothing is stopped */
static int end_tries;       /* the end was tried and failed this many times */
static int64_t end_retry;

/* What signals and control bytes ask for; main's loop acts on it. */
static int wantreap, wantscan = 1, wantstop, wantend;

static const struct { int sig; const char *name; } hooks[] = {
  { SIGTERM, "SIGTERM" }, { SIGINT, "SIGINT" }, { SIGHUP, "SIGHUP" }, { SIGQUIT, "SIGQUIT" },
  { SIGUSR1, "SIGUSR1" }, { SIGUSR2, "SIGUSR2" }, { SIGPWR, "SIGPWR" }, { SIGWINCH, "SIGWINCH" },
  { SIGALRM, "SIGALRM" },
};
#define NHOOKS (sizeof hooks / sizeof hooks[0])
static int hookwant[NHOOKS];  /* its signal came */
static pid_t hookpid[NHOOKS];
static int hookagain[NHOOKS];

static volatile sig_atomic_t pending[NSIG];
static void on_signal(int s) { pending[s] = 1; }

/* Catches SIGCHLD and the diverted signals, blocked except while svscan waits in ppoll. */
static void catch_signals(void)
{
  struct sigaction sa;
  sigset_t block;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&block);
  sigaddset(&block, SIGCHLD);
  for (size_t h = 0; h < NHOOKS; ++h) sigaddset(&block, hooks[h].sig);
  sigprocmask(SIG_BLOCK, &block, NULL);
  sigaction(SIGCHLD, &sa, NULL);
  for (size_t h = 0; h < NHOOKS; ++h) sigaction(hooks[h].sig, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

/* sv_spawn; returns the child's pid, or -1 with errno set. */
static pid_t spawn(const char *prog, char *const argv[], int in, int out, const char *subdir, int path)
{
  pid_t child;
  int err = sv_spawn(&child, prog, argv, in, out, subdir, path);
  if (err) { errno = err; return -1; }
  return child;
}

static void start(struct service *s, int64_t now)
{
  if (stopping || frozen || !s->active) return;
  if (!s->pid && now - s->start >= RESTART_MS) {
    char *argv[] = { "supervise", s->name, NULL };
    pid_t p = spawn("supervise", argv, -1, s->pipe[1], NULL, 1);
    if (p == -1) sv_warnsys("unable to start supervise %s", s->name);
    else s->pid = p;
    s->start = now;
  }
  if (s->pipe[0] != -1 && !s->pidlog && now - s->startlog >= RESTART_MS) {
    char *argv[] = { "supervise", SV_LOGDIR, NULL };
    pid_t p = spawn("supervise", argv, s->pipe[0], -1, s->name, 1);
    if (p == -1) sv_warnsys("unable to start supervise %s/%s", s->name, SV_LOGDIR);
    else s->pidlog = p;
    s->startlog = now;
  }
}

/* Adds the service NAME found as ST; returns it, or NULL (reported) when it cannot be added. */
static struct service *add(const char *name, const struct stat *st)
{
  struct service *s;
  struct stat lst;
  char log[4096];

  if (nsv >= MAX_SERVICES) {
    ++refused;
    if (refused > refused_reported)
      sv_warn("unable to start %s: running too many services (the limit is %d)", name, MAX_SERVICES);
    return NULL;
  }
  if (nsv == capsv) {
    size_t cap = capsv ? capsv * 2 : 16;
    struct service *n = realloc(sv, cap * sizeof *sv);
    if (!n) { sv_warn("unable to start %s: out of memory; trying again at the next scan", name); return NULL; }
    sv = n;
    capsv = cap;
  }
  s = &sv[nsv];
  memset(s, 0, sizeof *s);
  s->dev = st->st_dev;
  s->ino = st->st_ino;
  s->pipe[0] = s->pipe[1] = -1;
  s->start = s->startlog = -RESTART_MS;
  if (snprintf(log, sizeof log, "%s/%s", name, SV_LOGDIR) < (int)sizeof log && stat(log, &lst) == 0
      && S_ISDIR(lst.st_mode) && pipe2(s->pipe, O_CLOEXEC) == -1) {
    sv_warnsys("unable to create pipe for %s; trying again at the next scan", name);
    return NULL;
  }
  s->name = strdup(name);
  if (!s->name) {
    sv_warn("unable to start %s: out of memory; trying again at the next scan", name);
    if (s->pipe[0] != -1) { close(s->pipe[0]); close(s->pipe[1]); }
    return NULL;
  }
  ++nsv;
  return s;
}

static void scan(int64_t now)
{
  DIR *d;
  struct dirent *e;
  size_t i;

  wantscan = 0;
  next_scan = now + RESCAN_MS;
  if (stopping) return;
  d = opendir(".");
  if (!d) { sv_warnsys("unable to read directory %s", dir); return; }
  for (i = 0; i < nsv; ++i) sv[i].active = 0;
  refused = 0;
  for (;;) {
    struct stat st;
    struct service *s = NULL;
    errno = 0;
    if (!(e = readdir(d))) break;
    if (e->d_name[0] == '.') continue;
    if (stat(e->d_name, &st) == -1) { sv_warnsys("unable to stat %s", e->d_name); continue; }
    if (!S_ISDIR(st.st_mode)) continue;
    for (i = 0; i < nsv; ++i)
      if (sv[i].ino == st.st_ino && sv[i].dev == st.st_dev) { s = &sv[i]; break; }
    if (!s) s = add(e->d_name, &st);
    if (!s) continue;
    s->active = 1;
    start(s, now);
  }
  if (errno) sv_warnsys("unable to read directory %s", dir);
  closedir(d);
  refused_reported = refused;

  /* Forget what left the directory once its supervise processes are gone, as djb's. */
  for (i = 0; i < nsv;) {
    struct service *s = &sv[i];
    if (s->active || s->pid || s->pidlog) { ++i; continue; }
    if (s->pipe[0] != -1) { close(s->pipe[0]); close(s->pipe[1]); }
    free(s->name);
    sv[i] = sv[--nsv];
  }
}

static void reap(void)
{
  pid_t r;
  int wstat;
  wantreap = 0;
  while ((r = waitpid(-1, &wstat, WNOHANG)) > 0) {
    for (size_t i = 0; i < nsv; ++i) {
      if (sv[i].pid == r) { sv[i].pid = 0; break; }
      if (sv[i].pidlog == r) { sv[i].pidlog = 0; break; }
    }
    for (size_t h = 0; h < NHOOKS; ++h) if (hookpid[h] == r) hookpid[h] = 0;
  }
  if (r == -1 && errno != ECHILD) sv_warnsys("unable to wait for children");
}

static int pidcmp(const void *a, const void *b)
{
  pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
  return (x > y) - (x < y);
}

/* The children svscan started, supervise and hooks, sorted into OUT; returns how many. */
static size_t ours(pid_t out[])
{
  size_t n = 0;
  for (size_t i = 0; i < nsv; ++i) {
    if (sv[i].pid) out[n++] = sv[i].pid;
    if (sv[i].pidlog) out[n++] = sv[i].pidlog;
  }
  for (size_t h = 0; h < NHOOKS; ++h) if (hookpid[h]) out[n++] = hookpid[h];
  qsort(out, n, sizeof *out, pidcmp);
  return n;
}

/* Sends SIG, then SIGCONT, to svscan's children that it did not start: what stopped services left behind,
   re-parented to svscan (process 1 or subreaper), which may hold a logger's pipe open. They are read from
   /proc/thread-self/children, only when /proc is that of svscan's own PID namespace. */
static void kill_leftovers(int sig)
{
  static char buf[65536];
  static pid_t known[2 * MAX_SERVICES + NHOOKS];
  static int said;
  char self[32];
  size_t len = 0, nknown;
  ssize_t r;
  int fd;

  r = readlink("/proc/self", self, sizeof self - 1);
  if (r <= 0) { if (!said++) sv_warnsys("unable to find what services left behind: /proc/self"); return; }
  self[r] = 0;
  if (atol(self) != (long)getpid()) return; /* another namespace's /proc: its pids are not ours */
  fd = open("/proc/thread-self/children", O_RDONLY | O_CLOEXEC);
  if (fd == -1) { if (!said++) sv_warnsys("unable to find what services left behind: /proc/thread-self/children"); return; }
  while (len < sizeof buf - 1 && (r = read(fd, buf + len, sizeof buf - 1 - len)) > 0) len += (size_t)r;
  if (r == -1 && !said++) sv_warnsys("unable to read /proc/thread-self/children");
  close(fd);
  buf[len] = 0;
  nknown = ours(known);
  /* "PID PID ... ": a pid not followed by its space may be cut short by a full buffer */
  for (char *p = buf, *end; *p; p = end) {
    pid_t pid = (pid_t)strtol(p, &end, 10);
    if (end == p || *end != ' ') break;
    if (pid > 0 && !bsearch(&pid, known, nknown, sizeof *known, pidcmp)) { kill(pid, sig); kill(pid, SIGCONT); }
  }
}

/* Writes LETTERS to NAME[/log]/supervise/control; returns -1 when no supervise reads it. */
static int tell(const struct service *s, int log, const char *letters)
{
  char path[4096];
  int fd, r;
  snprintf(path, sizeof path, "%s%s%s", s->name, log ? "/" SV_LOGDIR "/" : "/", SV_CONTROL);
  fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd == -1) return -1;
  r = sv_write_all(fd, letters, strlen(letters));
  close(fd);
  return r;
}

/* The next step of the stop for S's service (LOG 0) or logger (LOG 1): the letters, then SIGKILL. */
static void stop_one(struct service *s, int log, int64_t now)
{
  static const char *const steps[2][4] = { { "dx", "kx", NULL }, { "x", "dx", "kx", NULL } };
  const char *letters = steps[log][s->step[log]];
  pid_t p = log ? s->pidlog : s->pid;
  if (letters) ++s->step[log];
  s->next[log] = now + STOP_GRACE_MS;
  if (!p) return;
  if (letters) {
    if (tell(s, log, letters) == -1) kill(p, SIGTERM);
  } else {
    sv_warn("supervise for %s%s does not exit: killing it", s->name, log ? "/" SV_LOGDIR : "");
    kill(p, SIGKILL);
  }
}

/* The stop, every service and logger whose next step is due; returns 0 once every one is gone. */
static int stop_step(int64_t now)
{
  size_t i;
  int left = 0, freed = 0, late = 0;

  for (i = 0; i < nsv; ++i) {
    struct service *s = &sv[i];
    if (s->pid) {
      left = 1;
      if (now >= s->next[0]) stop_one(s, 0, now);
    } else if (!s->step[1]) {
      freed = 1; /* the service is gone: its logger's turn */
    } else if (s->pidlog) {
      left = 1;
      if (now >= s->next[1]) { stop_one(s, 1, now); late = 1; }
    }
  }
  if (late) kill_leftovers(SIGKILL);
  if (!freed) return left;
  /* What the gone services left behind may hold their loggers' pipes: it goes first. Then each such logger
     is told to exit once it is down, and svscan closes its end: the logger reads to the end, exits. */
  kill_leftovers(SIGTERM);
  for (i = 0; i < nsv; ++i) {
    struct service *s = &sv[i];
    if (s->pid || s->step[1]) continue;
    stop_one(s, 1, now);
    if (s->pipe[1] != -1) { close(s->pipe[1]); s->pipe[1] = -1; }
    if (s->pidlog) left = 1;
  }
  return left;
}

static void stop_begin(int64_t now)
{
  wantstop = 0;
  if (stopping) return;
  stopping = 1;
  for (size_t i = 0; i < nsv; ++i) { sv[i].step[0] = sv[i].step[1] = 0; sv[i].next[0] = now; }
  sv_info("stopping every service, and each logger once its service is down");
}

/* Process 1 gives the console to .svscan/crash, or else to /bin/sh -i; returns only if neither runs,
   having said so when SAY. */
static void crash(int say)
{
  char path[4096];
  char *argv[] = { path, NULL };
  char *sh[] = { "/bin/sh", "-i", NULL };
  /* The shell talks to the terminal on fd 0, or else to the console. */
  int fd = isatty(0) ? dup(0) : open("/dev/console", O_RDWR | O_NOCTTY);
  if (fd != -1) {
    dup2(fd, 0); dup2(fd, 1); dup2(fd, 2);
    if (fd > 2) close(fd);
    sv_msgfd = 2;
  }
  sv_child_signals();
  snprintf(path, sizeof path, "%s/%s", dir, SVSCAN_CRASH);
  execve(path, argv, environ);
  if (say) sv_warn("unable to exec %s: %s; starting /bin/sh", path, sv_strerror(errno));
  execve(sh[0], sh, environ);
  if (say) sv_warn("unable to exec /bin/sh: %s", sv_strerror(errno));
  catch_signals();
}

/* Ends svscan: exec .svscan/finish CODE, or exit with CODE. When finish cannot run, that is said once;
   then process 1 tries crash, and what cannot exit tries it all again after END_RETRY_MS. */
static void end(int64_t now)
{
  char code[8];
  char *argv[] = { SVSCAN_FINISH, code, NULL };
  int say = !end_tries;

  if (now < end_retry) return;
  snprintf(code, sizeof code, "%d", exitcode);
  if (access(SVSCAN_FINISH, X_OK) == 0) {
    sv_child_signals();
    execve(SVSCAN_FINISH, argv, environ);
    if (say) sv_warnsys("unable to exec %s/%s", dir, SVSCAN_FINISH);
    catch_signals();
  } else {
    int e = errno;
    if (sv_exit_harmless()) exit(exitcode); /* no finish: the usual end */
    errno = e;
    if (say) sv_warnsys("unable to end with %s/%s", dir, SVSCAN_FINISH);
  }
  ++end_tries;
  if (pid1) crash(say);
  if (sv_exit_harmless()) exit(exitcode);
  if (say) sv_warn("process 1 of this machine cannot exit: trying to end again every second");
  end_retry = now + END_RETRY_MS;
}

static void run_hook(size_t h)
{
  char path[64];
  char *argv[] = { path, NULL };
  pid_t p;
  if (hookpid[h]) { hookagain[h] = 1; return; }
  hookagain[h] = 0;
  snprintf(path, sizeof path, "%s/%s", SVSCAN_DIR, hooks[h].name);
  p = spawn(path, argv, -1, -1, NULL, 0);
  if (p == -1) sv_warnsys("unable to start %s/%s", dir, path);
  else hookpid[h] = p;
}

/* A diverted signal came: its hook runs; without one, what svscan does by default. */
static void divert(size_t h)
{
  char path[64];
  struct stat st;
  int sig = hooks[h].sig;
  hookwant[h] = 0;
  snprintf(path, sizeof path, "%s/%s", SVSCAN_DIR, hooks[h].name);
  if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111)) { run_hook(h); return; }
  if (sig == SIGHUP || sig == SIGALRM) wantscan = 1;
  else if (sig == SIGTERM && !pid1) wantstop = 1;
  else sv_info("%s ignored: %s/%s is not an executable file", hooks[h].name, dir, path);
}

/* The signals that came, as flags for the loop. */
static void take_signals(void)
{
  if (pending[SIGCHLD]) { pending[SIGCHLD] = 0; wantreap = 1; }
  for (size_t h = 0; h < NHOOKS; ++h)
    if (pending[hooks[h].sig]) { pending[hooks[h].sig] = 0; hookwant[h] = 1; }
}

/* One byte from .svscan/control, as flags for the loop. */
static void control(char c)
{
  static int digits;
  if (c >= '0' && c <= '9') {
    if (!digits) exitcode = 0;
    exitcode = exitcode * 10 + (c - '0');
    if (exitcode > 255) exitcode = 255;
    digits = 1;
    return;
  }
  digits = 0;
  switch (c) {
  case 'a': case 'h': wantscan = 1; break;
  case 't': wantstop = 1; break;
  case 'f': frozen = 1; break;
  case 'x': wantend = 1; break;
  default: break;
  }
}

static void take_control(void)
{
  char buf[64];
  ssize_t r = read(fdcontrol, buf, sizeof buf);
  if (r == -1 && errno != EAGAIN && errno != EINTR) sv_warnsys("unable to read %s/%s", dir, SVSCAN_CONTROL);
  for (ssize_t i = 0; i < r; ++i) control(buf[i]);
}

/* Opens .svscan/control, made when missing; -1 (errno set) when it is not a FIFO svscan can read. */
static int try_control(void)
{
  if (mkdir(SVSCAN_DIR, 0755) == -1 && errno != EEXIST) return -1;
  if (sv_fifo_make(SVSCAN_CONTROL, 0600) == -1) return -1;
  fdcontrol = open(SVSCAN_CONTROL, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fdcontrol == -1) return -1;
  if (open(SVSCAN_CONTROL, O_WRONLY | O_NONBLOCK | O_CLOEXEC) == -1) return -1;
  return 0;
}

/*
 * Without its control svscan could not be told to stop, and a container would never end: what is in
 * the way (a file, or a link to another's FIFO left by an earlier boot) is removed, once, and the FIFO
 * made again.
 */
static void open_control(void)
{
  int err;
  if (try_control() == 0) return;
  err = errno;
  if (fdcontrol != -1) close(fdcontrol);
  fdcontrol = -1;
  if (unlink(SVSCAN_CONTROL) == 0) {
    sv_warn("%s/%s was not a FIFO svscan could read: made it again", dir, SVSCAN_CONTROL);
    if (try_control() == 0) return;
    err = errno;
    if (fdcontrol != -1) close(fdcontrol);
    fdcontrol = -1;
  }
  errno = err;
  sv_warnsys("unable to set up %s/%s: svscan runs without its control FIFO", dir, SVSCAN_CONTROL);
}

/* svscan's messages go through a second open of its stderr, non-blocking, when that is a FIFO or pipe: its
   children keep the blocking one they inherit, and a full log costs messages, not process 1's life. A
   message is shorter than PIPE_BUF, so it is written whole or not at all. */
static void open_messages(void)
{
  struct stat st;
  int fd;
  if (fstat(2, &st) == -1 || !S_ISFIFO(st.st_mode)) return;
  fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd != -1 && fd < 3) {
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    fd = high;
  }
  if (fd == -1) { sv_warnsys("unable to open /proc/self/fd/2 non-blocking: a full log may stop svscan"); return; }
  sv_msgfd = fd;
}

/* Messages a full log could not take, said in one line as soon as it takes one. */
static void report_lost(void)
{
  unsigned long n = sv_msglost;
  if (!n) return;
  sv_msglost = 0;
  sv_warn("%lu messages lost: log full", n);
  if (sv_msglost) sv_msglost = n;
}

static void setup_pid1(void)
{
  int fd;
  reboot(RB_DISABLE_CAD);
  fd = open("/dev/tty0", O_RDONLY | O_NOCTTY | O_CLOEXEC);
  if (fd != -1) { ioctl(fd, KDSIGACCEPT, SIGWINCH); close(fd); }
}

/* Starts what is due; returns when the loop must next wake, at the latest. */
static int64_t start_due(int64_t now)
{
  int64_t wake = next_scan;
  for (size_t i = 0; i < nsv; ++i) {
    struct service *s = &sv[i];
    if (stopping) {
      if (s->pid && s->next[0] < wake) wake = s->next[0];
      if (s->pidlog && s->step[1] && s->next[1] < wake) wake = s->next[1];
      continue;
    }
    if (!s->active || frozen) continue;
    start(s, now);
    if (!s->pid && s->start + RESTART_MS < wake) wake = s->start + RESTART_MS;
    if (s->pipe[0] != -1 && !s->pidlog && s->startlog + RESTART_MS < wake) wake = s->startlog + RESTART_MS;
  }
  if (wantend && end_retry < wake) wake = end_retry;
  return wake;
}

/* Sleeps until a signal, a control byte or WAKE; turns what came into flags. */
static void wait_until(int64_t wake, int64_t now)
{
  struct pollfd pfd = { .fd = fdcontrol, .events = POLLIN };
  struct timespec ts;
  sigset_t none;
  int64_t ms = wake - now;
  if (ms < 1) ms = 1;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000;
  sigemptyset(&none);
  if (ppoll(&pfd, fdcontrol != -1, &ts, &none) == -1 && errno != EINTR) sv_warnsys("unable to poll");
  take_signals();
  if (fdcontrol != -1 && (pfd.revents & POLLIN)) take_control();
}

int svscan_main(int argc, char **argv)
{
  sv_progname = "svscan";
  if (argc > 1) dir = argv[1];
  pid1 = getpid() == 1;
  catch_signals();
  open_messages();

  while (chdir(dir) == -1) {
    if (!pid1) sv_diesys(EXIT_TEMP, "unable to chdir to %s", dir);
    sv_warnsys("unable to chdir to %s", dir);
    crash(1);
    sv_warn("trying again in 5 seconds");
    sleep(5);
  }
  if (pid1) setup_pid1();
  else if (prctl(PR_SET_CHILD_SUBREAPER, 1) == -1)
    sv_warnsys("unable to become a subreaper: orphans of services go to process 1");
  open_control();

  for (;;) {
    int64_t now = sv_now_ms();
    if (wantreap) reap();
    for (size_t h = 0; h < NHOOKS; ++h) {
      if (hookwant[h]) divert(h);
      else if (hookagain[h] && !hookpid[h]) run_hook(h);
    }
    if (wantscan || now >= next_scan) scan(now);
    if (wantstop) stop_begin(now);
    if (stopping && !stop_step(now)) wantend = 1;
    if (wantend) end(now);
    report_lost();
    wait_until(start_due(now), now);
  }
}
