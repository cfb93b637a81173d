/*
 * svkillall [-g MS] [-x PID]... [-s SID]... [-S DIR]... [-n NAME]... [SIGNAL]: sends SIGNAL (default TERM), then
 * CONT, to every process of the PID namespace except:
 *   - itself and its ancestors (the shutdown that runs it, svscan, and whatever init is above svinit:
 *     `docker run --init` makes tini process 1 and svscan its child);
 *   - kernel threads (on a VM) and zombies;
 *   - each PID given with -x, every process of each session SID given with -s (a logger and whatever
 *     it runs), every process whose name (comm) is NAME given with -n; for each service DIR given with
 *     -S that is up (its supervise runs, its status names a pid): that pid and its session, as -x PID
 *     -s PID (a logger and whatever it runs; svinit's supervise makes run a session leader, djb's not).
 * With -g MS it then waits, at most MS milliseconds, for those it signalled to be gone (looking again
 * after 1, 2, 4, 8, then every 10 ms), sends KILL to what is left and waits at most 1 s more. Nothing
 * is assumed of pid 2.
 * Exit: 0 when every process it signalled is gone (at once without -g), 1 when some are left (named on
 * stderr), 100 for a usage error.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <limits.h>
#include "sv.h"

#define PF_KTHREAD 0x00200000u
#define MAXLIST 1024

struct proc { pid_t pid, ppid, sid; char state; unsigned flags; char comm[32]; };

static pid_t spare_pid[MAXLIST], spare_sid[MAXLIST];
static const char *spare_name[MAXLIST];
static size_t npid, nsid, nname;

/* The pid of the service DIR when it is up (its supervise holds supervise/ok open, its status names a
   pid), as svstat's "up (pid N)"; 0 otherwise. */
static pid_t up_pid(const char *dir)
{
  char path[PATH_MAX];
  unsigned char buf[SV_STATUS_LEN];
  struct sv_status st;
  ssize_t r;
  int fd;
  if (snprintf(path, sizeof path, "%s/%s", dir, SV_OK) >= (int)sizeof path) return 0;
  fd = open(path, O_WRONLY | O_NDELAY | O_CLOEXEC);
  if (fd == -1) return 0;
  close(fd);
  snprintf(path, sizeof path, "%s/%s", dir, SV_STATUS);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) return 0;
  do r = read(fd, buf, sizeof buf); while (r == -1 && errno == EINTR);
  close(fd);
  if (r < SV_STATUS_DJB || sv_status_unpack(buf, (size_t)r, &st) < SV_STATUS_DJB) return 0;
  return st.pid > (uint32_t)INT_MAX ? 0 : (pid_t)st.pid;
}

/* Reads /proc/PID/stat; -1 when the process is gone. */
static int readproc(pid_t pid, struct proc *p)
{
  char path[64], buf[1024], *open_paren, *close_paren;
  int fd, n;
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) return -1;
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  open_paren = strchr(buf, '(');
  close_paren = strrchr(buf, ')');
  if (!open_paren || !close_paren || close_paren < open_paren) return -1;
  memset(p, 0, sizeof *p);
  p->pid = pid;
  n = (int)(close_paren - open_paren - 1);
  if (n >= (int)sizeof p->comm) n = sizeof p->comm - 1;
  memcpy(p->comm, open_paren + 1, (size_t)n);
  /* after "(comm)": state ppid pgrp session tty_nr tpgid flags */
  /* (strtol, not sscanf: scanf's float parsing would be most of this program's size) */
  char *s = close_paren + 1, *end;
  long f[6];
  while (*s == ' ') ++s;
  if (!*s) return -1;
  p->state = *s++;
  for (int i = 0; i < 6; ++i, s = end) {
    f[i] = strtol(s, &end, 10);
    if (end == s) return -1;
  }
  p->ppid = (pid_t)f[0];
  p->sid = (pid_t)f[2];
  p->flags = (unsigned)f[5];
  return 0;
}

static int is_ancestor(pid_t pid)
{
  pid_t a = getpid();
  struct proc p;
  for (int depth = 0; a > 0 && depth < 4096; ++depth) {
    if (a == pid) return 1;
    if (readproc(a, &p) == -1) return 0;
    a = p.ppid;
  }
  return 0;
}

/* Is PID one to signal? */
static int target(pid_t pid, struct proc *p)
{
  if (readproc(pid, p) == -1) return 0;
  if (p->state == 'Z' || p->state == 'X' || (p->flags & PF_KTHREAD)) return 0;
  if (p->ppid == 0 && pid != 1) return 0; /* kthreadd, in the initial PID namespace */
  for (size_t i = 0; i < npid; ++i) if (spare_pid[i] == pid) return 0;
  for (size_t i = 0; i < nsid; ++i) if (spare_sid[i] == p->sid) return 0;
  for (size_t i = 0; i < nname; ++i) if (!strcmp(spare_name[i], p->comm)) return 0;
  return !is_ancestor(pid);
}

/* Signals every target with SIG (and CONT); returns how many there were. With SIG 0, only counts,
   naming them on stderr when NAME is set. */
static size_t sweep(int sig, int name)
{
  DIR *d = opendir("/proc");
  struct dirent *e;
  size_t n = 0;
  if (!d) sv_diesys(EXIT_TEMP, "unable to read /proc");
  while ((e = readdir(d))) {
    struct proc p;
    pid_t pid;
    if (!isdigit((unsigned char)e->d_name[0])) continue;
    pid = (pid_t)atoi(e->d_name);
    if (!target(pid, &p)) continue;
    ++n;
    if (sig) { kill(pid, sig); if (sig != SIGKILL) kill(pid, SIGCONT); }
    else if (name) sv_warn("still running: %d (%s)", (int)pid, p.comm);
  }
  closedir(d);
  return n;
}

/* Naps MS milliseconds. */
static void nap(long ms)
{
  struct timespec ts = { 0, ms * 1000000L };
  nanosleep(&ts, NULL);
}

/* Waits at most MS for the targets to be gone; returns how many are left. It looks again after 1 ms,
   then 2, 4, 8 and every 10 ms: most die within a few ms of their TERM. */
static size_t wait_gone(int64_t ms)
{
  int64_t end = sv_now_ms() + ms;
  size_t left;
  long step = 1;
  while ((left = sweep(0, 0)) && sv_now_ms() < end) {
    nap(step);
    step = step * 2 > 10 ? 10 : step * 2;
  }
  return left;
}

static int signum(const char *s)
{
  static const struct { const char *name; int sig; } names[] = {
    { "TERM", SIGTERM }, { "KILL", SIGKILL }, { "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT },
    { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "CONT", SIGCONT }, { "STOP", SIGSTOP }, { "ALRM", SIGALRM },
  };
  if (!strncmp(s, "SIG", 3)) s += 3;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i) if (!strcmp(s, names[i].name)) return names[i].sig;
  if (isdigit((unsigned char)*s)) { int n = atoi(s); if (n > 0 && n < NSIG) return n; }
  return -1;
}

#define USAGE "svkillall [-g ms] [-x pid]... [-s sid]... [-S dir]... [-n name]... [signal]"

int svkillall_main(int argc, char **argv)
{
  int opt, sig = SIGTERM;
  long grace = -1;
  size_t n;

  sv_progname = "svkillall";
  signal(SIGPIPE, SIG_IGN);
  while ((opt = getopt(argc, argv, "g:x:s:S:n:")) != -1) {
    switch (opt) {
    case 'g': grace = atol(optarg); if (grace < 0) sv_usage(USAGE); break;
    case 'x': if (npid == MAXLIST) sv_usage(USAGE); spare_pid[npid++] = (pid_t)atoi(optarg); break;
    case 's': if (nsid == MAXLIST) sv_usage(USAGE); spare_sid[nsid++] = (pid_t)atoi(optarg); break;
    case 'S': {
      pid_t p = up_pid(optarg);
      if (!p) break;
      if (npid == MAXLIST || nsid == MAXLIST) sv_usage(USAGE);
      spare_pid[npid++] = p;
      spare_sid[nsid++] = p;
      break;
    }
    case 'n': if (nname == MAXLIST) sv_usage(USAGE); spare_name[nname++] = optarg; break;
    default: sv_usage(USAGE);
    }
  }
  if (optind < argc && (sig = signum(argv[optind++])) == -1) sv_usage(USAGE);
  if (optind != argc) sv_usage(USAGE);

  n = sweep(sig, 0);
  if (grace < 0 || !n) return 0;
  if (!wait_gone(grace)) return 0;
  sweep(SIGKILL, 0);
  if (!wait_gone(1000)) return 0;
  sweep(0, 1);
  return 1;
}
