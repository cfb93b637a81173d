/*
 * svscan [DIR]: runs one supervise per subdirectory of DIR, as daemontools 0.76's svscan: subdirectories
 * not starting with '.', `supervise` found through $PATH (a wrapper earlier in PATH runs instead), for
 * s/log a pipe from s to s/log whose both ends svscan keeps, at most MAX_SERVICES services, a rescan every
 * RESCAN_MS. Like djb's, `supervise NAME` runs in DIR and `supervise log` in DIR/NAME.
 *
 * What svinit adds, because it runs as process 1:
 *   - it reaps every child, orphans included, when SIGCHLD arrives;
 *   - it restarts a supervise that exited at once, but at most once per RESTART_MS for each;
 *   - diverted signals: on SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGPWR, SIGWINCH or SIGALRM
 *     it runs DIR/.svscan/SIGNAME when that is executable, without waiting for it (one at a time per
 *     signal; a signal that arrives while its hook runs runs it once more afterwards). Without a hook,
 *     SIGHUP and SIGALRM rescan, and SIGTERM, when svscan is not process 1, stops (below) and exits 0;
 *   - DIR/.svscan/control, a FIFO: 'a' or 'h' rescan now; digits set the exit code (0 to 255);
 *     'x' ends svscan now; 't' stops every service, then every logger, then ends svscan. Ending svscan
 *     means: exec DIR/.svscan/finish CODE, still as the same process, when it is executable, else exit
 *     with CODE. Other bytes are ignored;
 *   - the stop: `dx` to every service's supervise; after STOP_GRACE_MS `k`. Once they are gone, svscan
 *     closes its end of each log pipe, so each logger reads to end of file and exits, and sends `x` to
 *     each logger's supervise; after STOP_GRACE_MS `dx`, then `k`. No log line is lost, with any logger;
 *   - as process 1 it disables the kernel's Ctrl-Alt-Del (it arrives as SIGINT) and asks the console for
 *     kbrequest (SIGWINCH); both fail harmlessly in a container;
 *   - it never dies: when it cannot enter DIR as process 1, it execs DIR/.svscan/crash, else /bin/sh,
 *     else it waits and tries again. Every other error is reported and retried.
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
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sv.h"

#define MAX_SERVICES 1000
#define RESCAN_MS 5000
#define RESTART_MS 1000
#define STOP_GRACE_MS 5000
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
};

static struct service *sv;
static size_t nsv, capsv;
static size_t refused, refused_reported;
static const char *dir = ".";
static int pid1;
static int fdcontrol = -1;
static int exitcode;
static int64_t next_scan;

/* The stop: 0 none, 1 services, 2 loggers; each phase escalates at its deadlines. */
static int stopping;
static int stop_level;
static int64_t stop_deadline;

static const struct { int sig; const char *name; } hooks[] = {
  { SIGTERM, "SIGTERM" }, { SIGINT, "SIGINT" }, { SIGHUP, "SIGHUP" }, { SIGQUIT, "SIGQUIT" },
  { SIGUSR1, "SIGUSR1" }, { SIGUSR2, "SIGUSR2" }, { SIGPWR, "SIGPWR" }, { SIGWINCH, "SIGWINCH" },
  { SIGALRM, "SIGALRM" },
};
#define NHOOKS (sizeof hooks / sizeof hooks[0])
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

/* Forks a child in a session of its own, with fd 0 or 1 from IN and OUT (-1 to keep), in SUBDIR. */
static pid_t spawn(const char *prog, char *const argv[], int in, int out, const char *subdir, int path)
{
  pid_t child = fork();
  if (child != 0) return child;
  setsid();
  sv_child_signals();
  if (in != -1 && dup2(in, 0) == -1) sv_diesys(EXIT_TEMP, "unable to set up descriptors for %s", prog);
  if (out != -1 && dup2(out, 1) == -1) sv_diesys(EXIT_TEMP, "unable to set up descriptors for %s", prog);
  if (subdir && chdir(subdir) == -1) sv_diesys(EXIT_TEMP, "unable to switch to %s", subdir);
  if (path) execvp(prog, argv);
  else execve(prog, argv, environ);
  sv_diesys(EXIT_TEMP, "unable to start %s%s%s", subdir ? subdir : "", subdir ? "/" : "", argv[1] ? argv[1] : prog);
}

static void start(struct service *s, int64_t now)
{
  if (stopping || !s->active) return;
  if (!s->pid && now - s->start >= RESTART_MS) {
    char *argv[] = { "supervise", s->name, NULL };
    pid_t p = spawn("supervise", argv, -1, s->pipe[1], NULL, 1);
    if (p == -1) sv_warnsys("unable to fork for %s", s->name);
    else s->pid = p;
    s->start = now;
  }
  if (s->pipe[0] != -1 && !s->pidlog && now - s->startlog >= RESTART_MS) {
    char *argv[] = { "supervise", SV_LOGDIR, NULL };
    pid_t p = spawn("supervise", argv, s->pipe[0], -1, s->name, 1);
    if (p == -1) sv_warnsys("unable to fork for %s/%s", s->name, SV_LOGDIR);
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
  while ((r = waitpid(-1, &wstat, WNOHANG)) > 0) {
    for (size_t i = 0; i < nsv; ++i) {
      if (sv[i].pid == r) { sv[i].pid = 0; break; }
      if (sv[i].pidlog == r) { sv[i].pidlog = 0; break; }
    }
    for (size_t h = 0; h < NHOOKS; ++h) if (hookpid[h] == r) hookpid[h] = 0;
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

/* Ends svscan: exec .svscan/finish CODE, or exit with CODE. */
static void finish(void)
{
  char code[8];
  char *argv[] = { SVSCAN_FINISH, code, NULL };
  snprintf(code, sizeof code, "%d", exitcode);
  if (access(SVSCAN_FINISH, X_OK) == 0) {
    sv_child_signals();
    execve(SVSCAN_FINISH, argv, environ);
    sv_warnsys("unable to exec %s/%s", dir, SVSCAN_FINISH);
    catch_signals();
    if (pid1) return; /* process 1 stays; the caller may try again */
  }
  exit(exitcode);
}

static void stop_begin(int64_t now)
{
  if (stopping) return;
  stopping = 1;
  stop_level = 0;
  stop_deadline = now;
  sv_info("stopping every service, then every logger");
}

/* One step of the stop; called after every wake while stopping. */
static void stop_step(int64_t now)
{
  size_t i, left = 0;
  static const char *const svc_steps[] = { "dx", "kx" };
  static const char *const log_steps[] = { "x", "dx", "kx" };

  for (i = 0; i < nsv; ++i) left += stopping == 1 ? sv[i].pid != 0 : sv[i].pidlog != 0;
  if (!left) {
    if (stopping == 2) { finish(); return; }
    /* Every service is gone and the loggers' only writer left is svscan. Tell each logger's supervise
       to exit once its logger is down, then close svscan's end: each logger reads to the end, exits. */
    stopping = 2;
    stop_level = 0;
    stop_deadline = now;
    stop_step(now);
    for (i = 0; i < nsv; ++i)
      if (sv[i].pipe[1] != -1) { close(sv[i].pipe[1]); sv[i].pipe[1] = -1; }
    return;
  }
  if (now < stop_deadline) return;
  {
    const char *const *steps = stopping == 1 ? svc_steps : log_steps;
    int nsteps = stopping == 1 ? 2 : 3;
    for (i = 0; i < nsv; ++i) {
      struct service *s = &sv[i];
      pid_t p = stopping == 1 ? s->pid : s->pidlog;
      if (!p) continue;
      if (stop_level < nsteps) {
        if (tell(s, stopping == 2, steps[stop_level]) == -1) kill(p, SIGTERM);
      } else {
        sv_warn("supervise for %s%s does not exit: killing it", s->name, stopping == 2 ? "/log" : "");
        kill(p, SIGKILL);
      }
    }
    ++stop_level;
    stop_deadline = now + STOP_GRACE_MS;
  }
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
  if (p == -1) sv_warnsys("unable to fork for %s/%s", dir, path);
  else hookpid[h] = p;
}

static void divert(size_t h, int64_t now)
{
  char path[64];
  struct stat st;
  int sig = hooks[h].sig;
  snprintf(path, sizeof path, "%s/%s", SVSCAN_DIR, hooks[h].name);
  if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111)) { run_hook(h); return; }
  if (sig == SIGHUP || sig == SIGALRM) scan(now);
  else if (sig == SIGTERM && !pid1) stop_begin(now);
  else sv_info("%s ignored: %s/%s is not an executable file", hooks[h].name, dir, path);
}

static void control(char c, int64_t now)
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
  case 'a': case 'h': scan(now); break;
  case 't': stop_begin(now); break;
  case 'x': finish(); break;
  default: break;
  }
}

static void open_control(void)
{
  if (mkdir(SVSCAN_DIR, 0755) == -1 && errno != EEXIST) goto fail;
  if (sv_fifo_make(SVSCAN_CONTROL, 0600) == -1) goto fail;
  fdcontrol = open(SVSCAN_CONTROL, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fdcontrol == -1) goto fail;
  if (open(SVSCAN_CONTROL, O_WRONLY | O_NONBLOCK | O_CLOEXEC) == -1) goto fail;
  return;
fail:
  sv_warnsys("unable to set up %s/%s: svscan runs without its control FIFO", dir, SVSCAN_CONTROL);
  if (fdcontrol != -1) close(fdcontrol);
  fdcontrol = -1;
}

/* Process 1 cannot enter DIR: give the console to .svscan/crash or a shell; return only if neither runs. */
static void crash(void)
{
  char path[4096];
  char *argv[] = { path, NULL };
  char *sh[] = { "/bin/sh", "-i", NULL };
  /* The shell talks to the terminal on fd 0, or else to the console. */
  int fd = isatty(0) ? dup(0) : open("/dev/console", O_RDWR | O_NOCTTY);
  if (fd != -1) { dup2(fd, 0); dup2(fd, 1); dup2(fd, 2); if (fd > 2) close(fd); }
  sv_child_signals();
  snprintf(path, sizeof path, "%s/%s", dir, SVSCAN_CRASH);
  execve(path, argv, environ);
  sv_warn("unable to exec %s: %s; starting /bin/sh", path, sv_strerror(errno));
  execve(sh[0], sh, environ);
  sv_warn("unable to exec /bin/sh: %s; trying again in 5 seconds", sv_strerror(errno));
  catch_signals();
}

static void setup_pid1(void)
{
  int fd;
  reboot(RB_DISABLE_CAD);
  fd = open("/dev/tty0", O_RDONLY | O_NOCTTY | O_CLOEXEC);
  if (fd != -1) { ioctl(fd, KDSIGACCEPT, SIGWINCH); close(fd); }
}

int main(int argc, char **argv)
{
  sigset_t none;

  sv_progname = "svscan";
  if (argc > 1) dir = argv[1];
  pid1 = getpid() == 1;
  catch_signals();
  sigemptyset(&none);

  while (chdir(dir) == -1) {
    if (!pid1) sv_diesys(EXIT_TEMP, "unable to chdir to %s", dir);
    sv_warnsys("unable to chdir to %s", dir);
    crash();
    sleep(5);
  }
  if (pid1) setup_pid1();
  open_control();

  for (;;) {
    struct pollfd pfd = { .fd = fdcontrol, .events = POLLIN };
    int64_t now = sv_now_ms(), wake = next_scan;
    struct timespec ts;

    if (now >= next_scan) scan(now);
    if (stopping) stop_step(now);
    wake = stopping ? stop_deadline : next_scan;
    for (size_t i = 0; i < nsv && !stopping; ++i) {
      struct service *s = &sv[i];
      if (!s->active) continue;
      start(s, now);
      if (!s->pid && s->start + RESTART_MS < wake) wake = s->start + RESTART_MS;
      if (s->pipe[0] != -1 && !s->pidlog && s->startlog + RESTART_MS < wake) wake = s->startlog + RESTART_MS;
    }
    wake -= now;
    if (wake < 1) wake = 1;
    ts.tv_sec = wake / 1000;
    ts.tv_nsec = (wake % 1000) * 1000000;
    pfd.revents = 0;
    ppoll(&pfd, fdcontrol != -1, &ts, &none);

    now = sv_now_ms();
    if (pending[SIGCHLD]) {
      pending[SIGCHLD] = 0;
      reap();
      for (size_t h = 0; h < NHOOKS; ++h)
        if (hookagain[h] && !hookpid[h]) run_hook(h);
    }
    for (size_t h = 0; h < NHOOKS; ++h)
      if (pending[hooks[h].sig]) { pending[hooks[h].sig] = 0; divert(h, now); }
    if (pfd.revents & POLLIN) {
      char buf[64];
      ssize_t r = read(fdcontrol, buf, sizeof buf);
      for (ssize_t i = 0; i < r; ++i) control(buf[i], now);
    }
  }
}
