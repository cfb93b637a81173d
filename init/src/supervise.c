/*
 * supervise DIR: starts DIR/run and restarts it when it exits, as daemontools 0.76's supervise:
 * supervise/control (u d o p c h a i t k x), supervise/ok, supervise/lock, the `down` file, the status
 * record written to status.new and renamed, one second between starts.
 *
 * What svinit adds:
 *   - DIR/finish, when executable, runs after run exits, as `./finish CODE SIGNAL` (CODE is run's exit
 *     code, or 256 when a signal killed it; SIGNAL is that signal or 0); it gets FINISH_TIMEOUT_MS, then
 *     KILL. The next start waits for it.
 *   - SIGTERM to supervise means "stop the service, then exit": it never orphans its service.
 *   - a missing or non-executable run is reported once and retried every second without forking.
 *   - run and finish start in a session of their own, so a terminal's signals reach only what asks.
 *   - control letters q (QUIT), 1 (USR1), 2 (USR2), w (WINCH), as daemontools-encore.
 *   - DIR/down-signal, as s6: the signal `d` sends instead of TERM (a name such as SIGHUP, or a number),
 *     for services such as an interactive shell, which ignores TERM. Read at each `d`.
 *   - a run left behind by a supervise that was SIGKILLed (the pid in supervise/status, alive, a session
 *     leader whose working directory is DIR) is stopped before run starts again: down-signal (or TERM)
 *     and CONT to its process group, KILL after ORPHAN_GRACE_MS. So a service never runs twice, and a
 *     logger's orphan does not keep log/main/lock.
 *
 * As djb's, `u` or `o` while run is down starts it even when `x` follows (`svc -ox` runs once, then
 * supervise exits); letters after an `x` that finds the service down are not read.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sv.h"

#define RESTART_MS 1000
#define FINISH_TIMEOUT_MS 5000
#define ORPHAN_GRACE_MS 1000  /* from the down-signal to KILL, for a run a killed supervise left */
#define ORPHAN_NAP_MS 10      /* between checks that it is gone */

static const char *dir;
static int fdcontrol = -1;

static pid_t pid;            /* run, 0 when down */
static pid_t finpid;         /* finish, 0 when not running */
static int64_t fin_deadline;
static int paused;
static int want = 'u';       /* 'u', 'd', or 0 for "once" */
static int start_pending;    /* `u` or `o` arrived while run was down: start it even if `x` follows */
static int flagexit;
static int broken;           /* errno of the last failed start of run, 0 when none */
static int64_t last_start = -RESTART_MS;
static uint32_t lastwait = 0xffffffffu;
static struct tai64n changed;

static volatile sig_atomic_t got_chld, got_term;
static void on_signal(int s) { if (s == SIGCHLD) got_chld = 1; else got_term = 1; }

static void announce(void)
{
  unsigned char buf[SV_STATUS_LEN];
  struct sv_status st = {
    .sec = changed.sec, .nano = changed.nano, .pid = (uint32_t)pid,
    .paused = (unsigned char)(pid ? paused : 0), .want = (unsigned char)want,
    .lastwait = lastwait,
  };
  if (pid) st.state = SV_STATE_RUN;
  else if (finpid) st.state = SV_STATE_FINISH;
  else if (broken) st.state = SV_STATE_BROKEN;
  else if (want == 'u' || start_pending) st.state = SV_STATE_WAIT;
  else st.state = SV_STATE_DOWN;
  sv_status_pack(buf, &st);
  if (sv_replace_file(SV_STATUS, SV_STATUS_NEW, buf, sizeof buf) == -1)
    sv_warnsys("unable to write %s/%s", dir, SV_STATUS);
}

static void pidchange(pid_t p)
{
  pid = p;
  tai64n_now(&changed);
}

/*
 * sv_spawn in a new session. Returns the child's pid, or 0 with errno set when PROG could not be started
 * (the exec's errno: a run that cannot start is seen at once), or -1 when no process could be made.
 */
static pid_t spawn(const char *prog, char *const argv[])
{
  pid_t child;
  int err = sv_spawn(&child, prog, argv, -1, -1, NULL, 0);
  if (!err) return child;
  errno = err;
  return err == EAGAIN || err == ENOMEM ? -1 : 0;
}

static void trystart(void)
{
  char *argv[] = { "./" SV_RUN, NULL };
  struct stat st;
  pid_t child;
  int err = 0;

  last_start = sv_now_ms();
  start_pending = 0;
  if (stat(SV_RUN, &st) == -1) err = errno;
  else if (!S_ISREG(st.st_mode) || !(st.st_mode & 0111)) err = EACCES;
  else {
    child = spawn(argv[0], argv);
    if (child > 0) {
      if (broken) sv_info("%s/%s started after the error was fixed", dir, SV_RUN);
      broken = 0;
      paused = 0;
      pidchange(child);
      announce();
      return;
    }
    err = errno;
    if (child == -1) {
      sv_warnsys("unable to fork for %s, trying again in 1 second", dir);
      announce();
      return;
    }
  }
  if (err != broken)
    sv_warn("unable to start %s/%s: %s; trying again every second", dir, SV_RUN, sv_strerror(err));
  broken = err;
  announce();
}

static void startfinish(int wstat)
{
  char code[16], sig[16];
  char *argv[] = { "./" SV_FINISH, code, sig, NULL };
  struct stat st;
  pid_t child;
  if (stat(SV_FINISH, &st) == -1 || !S_ISREG(st.st_mode) || !(st.st_mode & 0111)) return;
  snprintf(code, sizeof code, "%d", WIFEXITED(wstat) ? WEXITSTATUS(wstat) : 256);
  snprintf(sig, sizeof sig, "%d", WIFSIGNALED(wstat) ? WTERMSIG(wstat) : 0);
  child = spawn(argv[0], argv);
  if (child <= 0) {
    sv_warnsys("unable to start %s/%s", dir, SV_FINISH);
    return;
  }
  finpid = child;
  fin_deadline = sv_now_ms() + FINISH_TIMEOUT_MS;
}

static void reap(void)
{
  int wstat;
  pid_t r;
  while ((r = waitpid(-1, &wstat, WNOHANG)) > 0) {
    if (r == pid) {
      lastwait = (uint32_t)wstat;
      pidchange(0);
      startfinish(wstat);
      announce();
    } else if (r == finpid) {
      finpid = 0;
      announce();
    }
  }
}

static void sendsig(int sig)
{
  if (pid) kill(pid, sig);
}

/* The signal `d` sends: DIR/down-signal when it names one, else SIGTERM. */
static int downsignal(void)
{
  static const struct { const char *name; int sig; } names[] = {
    { "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "KILL", SIGKILL }, { "USR1", SIGUSR1 },
    { "USR2", SIGUSR2 }, { "ALRM", SIGALRM }, { "TERM", SIGTERM }, { "WINCH", SIGWINCH }, { "PWR", SIGPWR },
  };
  char buf[32] = "";
  char *p = buf;
  int fd = open("down-signal", O_RDONLY | O_CLOEXEC);
  ssize_t r;
  if (fd == -1) return SIGTERM;
  r = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (r <= 0) return SIGTERM;
  buf[r] = 0;
  buf[strcspn(buf, " \t\r\n")] = 0;
  if (!strncmp(p, "SIG", 3)) p += 3;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i)
    if (!strcmp(p, names[i].name)) return names[i].sig;
  if (*p >= '1' && *p <= '9') {
    int n = atoi(p);
    if (n > 0 && n < NSIG) return n;
  }
  sv_warn("%s/down-signal: unknown signal %s: sending SIGTERM", dir, buf);
  return SIGTERM;
}

static void control(char c)
{
  switch (c) {
  case 'u': want = 'u'; if (!pid) start_pending = 1; announce(); break;
  case 'd':
    want = 'd';
    start_pending = 0;
    if (pid) { kill(pid, downsignal()); kill(pid, SIGCONT); paused = 0; }
    announce();
    break;
  case 'o': want = 0; if (!pid) start_pending = 1; announce(); break;
  case 'p': paused = 1; announce(); sendsig(SIGSTOP); break;
  case 'c': paused = 0; announce(); sendsig(SIGCONT); break;
  case 'x': flagexit = 1; announce(); break;
  case 'h': sendsig(SIGHUP); break;
  case 'a': sendsig(SIGALRM); break;
  case 'i': sendsig(SIGINT); break;
  case 't': sendsig(SIGTERM); break;
  case 'k': sendsig(SIGKILL); break;
  case 'q': sendsig(SIGQUIT); break;
  case '1': sendsig(SIGUSR1); break;
  case '2': sendsig(SIGUSR2); break;
  case 'w': sendsig(SIGWINCH); break;
  default: break; /* anything else on the FIFO is ignored */
  }
}

/* x took effect: the service is down, finish is done, and no `u` or `o` waits to start it. */
static int done(void)
{
  return flagexit && !pid && !finpid && !start_pending;
}

/*
 * Whether P is a run that a previous supervise of this directory left: alive, a session leader (spawn
 * gives run a session of its own) and working in this directory. The last two guard against a stale
 * status whose pid now belongs to another process (after a container restart, say). A zombie has no
 * working directory, so it counts as gone.
 */
static int left_here(pid_t p)
{
  char path[32];
  struct stat here, there;
  if (p <= 1 || p == getpid() || getsid(p) != p) return 0;
  snprintf(path, sizeof path, "/proc/%d/cwd", (int)p);
  if (stat(path, &there) == -1) return 0;
  if (stat(".", &here) == -1) return 0;
  return here.st_dev == there.st_dev && here.st_ino == there.st_ino;
}

/* The pid in supervise/status when it names a run left here; 0 otherwise. */
static pid_t orphan(void)
{
  unsigned char buf[SV_STATUS_LEN];
  struct sv_status st;
  ssize_t r;
  int fd = open(SV_STATUS, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    if (errno != ENOENT) sv_warnsys("unable to read %s/%s", dir, SV_STATUS);
    return 0;
  }
  while ((r = read(fd, buf, sizeof buf)) == -1 && errno == EINTR) {}
  if (r == -1) sv_warnsys("unable to read %s/%s", dir, SV_STATUS);
  close(fd);
  if (r < SV_STATUS_DJB) return 0;
  sv_status_unpack(buf, (size_t)r, &st);
  if (st.pid > (uint32_t)INT32_MAX || !left_here((pid_t)st.pid)) return 0;
  return (pid_t)st.pid;
}

/*
 * Stops a run that a SIGKILLed supervise left (svscan has started us in its place): the down-signal and
 * CONT to its process group, KILL after ORPHAN_GRACE_MS, and waits until it is gone. Otherwise run would
 * run twice, or a logger's orphan would keep log/main/lock and the new multilog fail for good.
 */
static void stop_orphan(void)
{
  pid_t p = orphan();
  int64_t deadline;
  int killed = 0;
  if (!p) return;
  sv_warn("%s: stopping orphaned run (pid %d) left by a previous supervise", dir, (int)p);
  if (kill(-p, downsignal()) == -1 && errno != ESRCH) sv_warnsys("unable to signal pid %d", (int)p);
  if (kill(-p, SIGCONT) == -1 && errno != ESRCH) sv_warnsys("unable to signal pid %d", (int)p);
  deadline = sv_now_ms() + ORPHAN_GRACE_MS;
  while (left_here(p)) {
    if (!killed && sv_now_ms() >= deadline) {
      if (kill(-p, SIGKILL) == -1 && errno != ESRCH) sv_warnsys("unable to kill pid %d", (int)p);
      killed = 1;
    }
    poll(NULL, 0, ORPHAN_NAP_MS);
  }
}

static void setup(void)
{
  struct stat st;
  int fd;

  if (chdir(dir) == -1) sv_diesys(EXIT_TEMP, "unable to chdir to %s", dir);
  if (stat(SV_DOWN, &st) == 0) want = 'd';
  else if (errno != ENOENT) sv_diesys(EXIT_TEMP, "unable to stat %s/%s", dir, SV_DOWN);

  if (sv_mkdir_follow(SV_SUPERVISE_DIR, 0700) == -1)
    sv_diesys(EXIT_TEMP, "unable to create %s/%s", dir, SV_SUPERVISE_DIR);
  fd = open(SV_LOCK, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd == -1) sv_diesys(EXIT_TEMP, "unable to acquire %s/%s", dir, SV_LOCK);
  if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
    if (errno == EWOULDBLOCK)
      sv_die(EXIT_TEMP, "unable to acquire %s/%s: another supervise is already running for %s",
             dir, SV_LOCK, dir);
    sv_diesys(EXIT_TEMP, "unable to acquire %s/%s", dir, SV_LOCK);
  }
  stop_orphan(); /* before announce() overwrites the status that names it */

  if (sv_fifo_make(SV_CONTROL, 0600) == -1) sv_diesys(EXIT_TEMP, "unable to create %s/%s", dir, SV_CONTROL);
  fdcontrol = open(SV_CONTROL, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fdcontrol == -1) sv_diesys(EXIT_TEMP, "unable to read %s/%s", dir, SV_CONTROL);
  /* A writer of our own, so the FIFO never reports end of file. */
  if (open(SV_CONTROL, O_WRONLY | O_NONBLOCK | O_CLOEXEC) == -1)
    sv_diesys(EXIT_TEMP, "unable to write %s/%s", dir, SV_CONTROL);

  tai64n_now(&changed);
  /* A service that is to run starts before the first status is written: that status names run, one write
     fewer (a thousand services start faster). No reader relies on the status before ok, made next. */
  if (want == 'u') trystart();
  else announce();
  if (sv_fifo_make(SV_OK, 0600) == -1) sv_diesys(EXIT_TEMP, "unable to create %s/%s", dir, SV_OK);
  if (open(SV_OK, O_RDONLY | O_NONBLOCK | O_CLOEXEC) == -1)
    sv_diesys(EXIT_TEMP, "unable to read %s/%s", dir, SV_OK);
}

int supervise_main(int argc, char **argv)
{
  struct sigaction sa;
  sigset_t block, none;

  sv_progname = "supervise";
  if (argc != 2 || !argv[1][0]) sv_usage("supervise dir");
  dir = argv[1];

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&block);
  sigaddset(&block, SIGCHLD);
  sigaddset(&block, SIGTERM);
  sigprocmask(SIG_BLOCK, &block, NULL);
  sigaction(SIGCHLD, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigemptyset(&none);
  signal(SIGPIPE, SIG_IGN);

  setup();

  for (;;) {
    struct pollfd pfd = { .fd = fdcontrol, .events = POLLIN };
    struct timespec ts, *tsp = NULL;
    int64_t now = sv_now_ms(), wait_ms = -1;

    if (done()) break;
    if (finpid && now >= fin_deadline) {
      sv_warn("%s/%s ran longer than %d ms: killing it", dir, SV_FINISH, FINISH_TIMEOUT_MS);
      kill(finpid, SIGKILL);
      fin_deadline = now + FINISH_TIMEOUT_MS;
    }
    if (!pid && !finpid && (start_pending || (want == 'u' && !flagexit))) {
      if (now - last_start >= RESTART_MS) trystart();
      if (!pid) wait_ms = last_start + RESTART_MS - now;
    }
    if (finpid) {
      int64_t w = fin_deadline - now;
      if (wait_ms < 0 || w < wait_ms) wait_ms = w;
    }
    if (wait_ms >= 0) {
      if (wait_ms < 1) wait_ms = 1;
      ts.tv_sec = wait_ms / 1000;
      ts.tv_nsec = (wait_ms % 1000) * 1000000;
      tsp = &ts;
    }
    ppoll(&pfd, 1, tsp, &none);

    if (got_chld) { got_chld = 0; reap(); }
    if (got_term) {
      got_term = 0;
      flagexit = 1;
      control('d');
    }
    if (pfd.revents & POLLIN) {
      char buf[64];
      ssize_t r = read(fdcontrol, buf, sizeof buf);
      for (ssize_t i = 0; i < r && !done(); ++i) control(buf[i]);
    }
  }
  announce();
  return 0;
}
