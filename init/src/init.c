/*
 * init [CMD [ARGS...]]: the first program of process 1 (/sbin/init). It closes the window in which a
 * signal to process 1 is lost (a process 1 drops every signal it has no handler for): its first act is
 * to block the signals a stop or a shutdown request arrives by. Then, as a story:
 *   1. it runs stage 1 ($SVINIT_LIB/stage1, POSIX sh: the one-time boot) as its child, with every signal
 *      at its default, reaps it and any orphan, and notes each request that arrives meanwhile;
 *   2. it execs svscan as this same process, with those signals still blocked and each noted one raised
 *      again, so svscan acts on it as soon as its handlers are in place: nothing is lost, from the
 *      first instruction on.
 * Stage 1 leaves in $SVINIT_RUN/svscan svscan's PATH, its scan directory and, on a third line, "hold"
 * (svinit's svscan takes the held signals) or "release" (another svscan, which would leave them blocked
 * for everything it starts: they are unblocked, and lost, as that svscan has no handler); then, when
 * given, the supervise to link as $SVINIT_RUN/wrap/supervise and what $SVINIT_RUN/console links to:
 * init makes those links and the FIFO $SVINIT_RUN/svscan.fifo itself (three or four processes fewer for
 * stage 1's sh: tens of ms under an emulated CPU). svscan gets only that PATH as its environment, stdin
 * /dev/null, and stdout and stderr on the FIFO, opened read-write (its logger may restart with nothing
 * lost).
 * When stage 1 fails, or svscan cannot be run: where process 1 may exit (a container, or not process 1)
 * init exits with stage 1's code (111 for its own failures); on a VM (the initial PID namespace, where
 * the kernel panics when process 1 exits) it gives a shell on the console and then tries again.
 * In an initramfs whose stage 1 leaves /.svinit-switch-root (the disk layout of a VM), init moves the
 * root it names over / and execs the init it names there instead (see switch_root).
 * Not process 1 (docker run --init, unshare without --fork): it makes itself a child subreaper, so the
 * orphans of what it runs come back to it, and to svscan after it.
 * svinit's state directory, $SVINIT_RUN, is chosen here once and passed on: as set, else /run/svinit;
 * for a user other than root who cannot make it there (docker run --user 1000: Docker's /run is root's),
 * /tmp/svinit-UID, made 0700 and refused when it is not that user's own directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sv.h"

extern char **environ;

/* The signals a stop, a shutdown or a rescan request arrives by, and SIGCHLD: what svscan handles. */
static const int held[] = {
  SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGPWR, SIGWINCH, SIGALRM, SIGCHLD,
};
#define NHELD (sizeof held / sizeof held[0])

static char run[1024], lib[1024];

static const char *env_or(const char *name, const char *dflt)
{
  const char *v = getenv(name);
  return v && *v ? v : dflt;
}

/* Can this user use DIR as svinit's state: made now, or there already as its own directory? */
static int own_dir(const char *dir)
{
  struct stat st;
  if (mkdir(dir, 0700) == 0) return 0;
  if (errno != EEXIST) return -1;
  if (lstat(dir, &st) == -1) return -1;
  if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid()) { errno = EPERM; return -1; }
  return access(dir, W_OK | X_OK);
}

/* Chooses $SVINIT_RUN (see the top); exits 1 with the cause and the fix when there is no place. */
static void choose_run(void)
{
  const char *set = getenv("SVINIT_RUN");
  char tmp[64];
  int err;
  if (set && *set) { snprintf(run, sizeof run, "%s", set); goto chosen; }
  snprintf(run, sizeof run, "/run/svinit");
  if (geteuid() == 0 || own_dir(run) == 0) goto chosen;
  err = errno;
  snprintf(tmp, sizeof tmp, "/tmp/svinit-%u", (unsigned)geteuid());
  if (own_dir(tmp) == 0) { snprintf(run, sizeof run, "%s", tmp); goto chosen; }
  sv_die(1, "no place for svinit's state: /run/svinit: %s; %s: %s. Give user %u one, e.g. docker run "
    "--tmpfs /run:uid=%u,gid=%u,mode=0755 (or a writable /tmp)", sv_strerror(err), tmp, sv_strerror(errno),
    (unsigned)geteuid(), (unsigned)geteuid(), (unsigned)getegid());
chosen:
  /* Made here, 0700 (it may hold secrets), so stage 1 forks no mkdir or chmod; when that fails (a read-only
     root) stage 1 tries again and says why. Only where /proc is already mounted (a container, whose
     runtime gave /run): on a vm stage 1 first mounts a tmpfs on /run, and the root's own stays untouched. */
  if (access("/proc/self", F_OK) == 0) {
    int first = mkdir(run, 0700) == 0;
    if (first || errno == EEXIST) chmod(run, 0700);
    if (first) {  /* a first boot: the container's envdir too, empty, which 20-env.sh fills (no mkdir) */
      char env[sizeof run + 8];
      snprintf(env, sizeof env, "%s/env", run);
      mkdir(env, 0700);
    }
  }
  if (setenv("SVINIT_RUN", run, 1) == -1) sv_diesys(EXIT_TEMP, "unable to set SVINIT_RUN");
}

/* Runs stage 1 as a child; returns its wait status. Requests that arrive meanwhile are noted. */
static int stage1(int argc, char **argv, int *noted, const sigset_t *set)
{
  char path[1100];
  char **args = calloc((size_t)argc + 1, sizeof *args);
  pid_t child;
  int wstat = 0;

  if (!args) sv_die(EXIT_TEMP, "out of memory");
  snprintf(path, sizeof path, "%s/stage1", lib);
  args[0] = path;
  for (int i = 1; i < argc; ++i) args[i] = argv[i];
  while ((child = fork()) == -1) {
    sv_warnsys("unable to fork for %s; trying again in 1 second", path);
    sleep(1);
  }
  if (child == 0) {
    sv_default_signals();
    execve(path, args, environ);
    sv_diesys(EXIT_TEMP, "unable to run %s", path);
  }
  free(args);
  for (;;) {
    int s = sigwaitinfo(set, NULL);
    if (s == -1) continue;
    if (s != SIGCHLD) { noted[s] = 1; continue; }
    for (;;) {
      int w;
      pid_t r = waitpid(-1, &w, WNOHANG);
      if (r <= 0) break;
      if (r == child) { wstat = w; child = 0; }
    }
    if (!child) return wstat;
  }
}

/* Reads the next line of F into BUF (NUL-terminated, without its newline); -1 when there is none. */
static int line(FILE *f, char *buf, size_t size)
{
  size_t n;
  if (!fgets(buf, (int)size, f)) return -1;
  n = strlen(buf);
  if (n && buf[n - 1] == '\n') buf[--n] = 0;
  return n ? 0 : -1;
}

/*
 * Can stage 1 run at all? It needs a POSIX sh at /bin/sh, and the sh half of the init package of this
 * same version ($SVINIT_LIB/VERSION, when there: an archive extracted over another version's leaves the
 * two halves disagreeing). Says the cause and the fix, and returns -1, when not.
 */
static int preflight(void)
{
  char path[1100], have[64];
  FILE *f;
  if (access("/bin/sh", X_OK) == -1) {
    sv_warn("/bin/sh: %s: svinit's boot (%s/stage1) is a POSIX sh script: install dash, busybox or bash "
      "in the image, with /bin/sh a link to it", sv_strerror(errno), lib);
    return -1;
  }
  snprintf(path, sizeof path, "%s/stage1", lib);
  if (access(path, X_OK) == -1) {
    sv_warn("%s: %s: the init package is not installed there: extract svinit-%s-x86_64.tar.gz over / "
      "(ADD it in a Dockerfile), or set SVINIT_LIB to where it is", path, sv_strerror(errno), SVINIT_VERSION);
    return -1;
  }
  snprintf(path, sizeof path, "%s/VERSION", lib);
  f = fopen(path, "re");
  if (!f) return 0;
  if (line(f, have, sizeof have) == -1) have[0] = 0;
  fclose(f);
  if (strcmp(have, SVINIT_VERSION)) {
    sv_warn("%s says %s, but this init is %s: the image mixes two versions of svinit: remove %s and "
      "extract one svinit archive over /", path, have[0] ? have : "nothing", SVINIT_VERSION, lib);
    return -1;
  }
  return 0;
}

/* Raises each noted signal again, held: it stays pending across exec, for the next program. */
static void hand_over(int *noted)
{
  for (int s = 1; s < NSIG; ++s)
    if (noted[s]) { kill(getpid(), s); noted[s] = 0; }
}

/*
 * An initramfs's stage 1 (the disk layout's) mounts the real root and names it in SWITCH_ROOT, with the
 * init to run there on a second line (default /sbin/init): process 1 then moves that root over /, and
 * execs that init (svinit's init again, which runs the image's own stage 1) with the held signals still
 * pending. The initramfs's files are left in memory (a few MB).
 * Returns only when there is nothing to switch to, or the switch failed (said).
 */
#define SWITCH_ROOT "/.svinit-switch-root"
static void switch_root(int *noted)
{
  char root[4096], init[4096] = "/sbin/init";
  char *argv[] = { init, NULL };
  FILE *f = fopen(SWITCH_ROOT, "re");
  if (!f) return;
  if (line(f, root, sizeof root) == -1) { fclose(f); sv_warn("%s names no root", SWITCH_ROOT); return; }
  if (line(f, init, sizeof init) == -1) snprintf(init, sizeof init, "/sbin/init");
  fclose(f);
  unlink(SWITCH_ROOT);
  if (chdir(root) == -1 || mount(".", "/", NULL, MS_MOVE, NULL) == -1 || chroot(".") == -1 || chdir("/") == -1) {
    sv_warnsys("unable to switch the root to %s", root);
    return;
  }
  hand_over(noted);
  execve(argv[0], argv, environ);
  sv_warnsys("unable to run %s of the new root %s", init, root);
}

/* ln -sfn TARGET LINK: a new link made aside, then renamed over LINK. */
static int symlink_over(const char *target, const char *link)
{
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.new", link);
  unlink(tmp);
  if (symlink(target, tmp) == -1 || rename(tmp, link) == -1) {
    sv_warnsys("unable to link %s to %s", link, target);
    unlink(tmp);
    return -1;
  }
  return 0;
}

/* What svscan finds in $SVINIT_RUN: the supervise wrapper's link to SUPERVISE, the console's link to
 * CONSOLE (each when not empty) and the FIFO of its log. */
static int make_run_files(const char *supervise, const char *console, const char *fifo)
{
  char wrap[1100];
  struct stat st;
  if (*supervise) {
    snprintf(wrap, sizeof wrap, "%s/wrap", run);
    if (mkdir(wrap, 0755) == -1 && errno != EEXIST) { sv_warnsys("unable to make %s", wrap); return -1; }
    snprintf(wrap, sizeof wrap, "%s/wrap/supervise", run);
    if (symlink_over(supervise, wrap) == -1) return -1;
  }
  if (*console) {
    char link[1100];
    snprintf(link, sizeof link, "%s/console", run);
    if (symlink_over(console, link) == -1) return -1;
  }
  if (lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode)) return 0;
  if (unlink(fifo) == -1 && errno != ENOENT) { sv_warnsys("unable to remove %s", fifo); return -1; }
  if (mkfifo(fifo, 0600) == -1) { sv_warnsys("unable to make the FIFO %s", fifo); return -1; }
  return 0;
}

/* Execs svscan as described by $SVINIT_RUN/svscan; returns only when it cannot. */
static void exec_svscan(void)
{
  char spec[1100], fifo[1100], path[4096], dir[4096], signals[16] = "", supervise[4096] = "";
  char console[1100] = "";
  char *argv[] = { "svscan", dir, NULL };
  FILE *f;
  int fd;

  snprintf(spec, sizeof spec, "%s/svscan", run);
  snprintf(fifo, sizeof fifo, "%s/svscan.fifo", run);
  f = fopen(spec, "re");
  if (!f) { sv_warnsys("unable to read %s, which stage 1 writes last", spec); return; }
  if (line(f, path, sizeof path) == -1 || line(f, dir, sizeof dir) == -1) {
    sv_warn("%s must hold two lines: svscan's PATH and its scan directory", spec);
    fclose(f);
    return;
  }
  if (line(f, signals, sizeof signals) != -1 && line(f, supervise, sizeof supervise) != -1)
    line(f, console, sizeof console);
  fclose(f);
  if (make_run_files(supervise, console, fifo) == -1) return;
  fd = open(fifo, O_RDWR | O_CLOEXEC);
  if (fd == -1) { sv_warnsys("unable to open %s, svscan's log", fifo); return; }
  if (dup2(fd, 1) == -1 || dup2(fd, 2) == -1) { sv_warnsys("unable to set up svscan's output"); return; }
  close(fd);
  fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd != -1) { dup2(fd, 0); close(fd); }
  if (clearenv() != 0 || setenv("PATH", path, 1) == -1) { sv_warnsys("unable to set svscan's PATH"); return; }
  if (!strcmp(signals, "release")) sv_default_signals();
  execvp("svscan", argv);
  /* stderr is svscan's log now; the console is where a failure must show */
  fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
  if (fd != -1) { dup2(fd, 2); close(fd); }
  sv_warnsys("unable to run svscan (PATH=%s)", path);
}

/* A shell on the console for whoever can repair the system; returns when it exits. */
static void rescue(const char *why)
{
  pid_t child;
  int fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
  sv_warn("%s: a shell on the console; leave it to try again", why);
  child = fork();
  if (child == 0) {
    char *sh[] = { "/bin/sh", "-i", NULL };
    if (fd != -1) { dup2(fd, 0); dup2(fd, 1); dup2(fd, 2); }
    sv_default_signals();
    execve(sh[0], sh, environ);
    sv_diesys(EXIT_TEMP, "unable to run /bin/sh");
  }
  if (fd != -1) close(fd);
  if (child > 0) while (waitpid(child, NULL, 0) == -1 && errno == EINTR) {}
  sleep(1);
}

int init_main(int argc, char **argv)
{
  sigset_t set;
  int noted[NSIG] = { 0 };

  /* First: no request is lost from here on. */
  sigemptyset(&set);
  for (size_t i = 0; i < NHELD; ++i) sigaddset(&set, held[i]);
  sigprocmask(SIG_BLOCK, &set, NULL);

  sv_progname = "init";
  if (getpid() == 1) reboot(RB_DISABLE_CAD); /* Ctrl-Alt-Del arrives as SIGINT; EPERM in a container */
  else if (prctl(PR_SET_CHILD_SUBREAPER, 1) == -1) sv_warnsys("unable to become a child subreaper");
  choose_run();
  snprintf(lib, sizeof lib, "%s", env_or("SVINIT_LIB", "/usr/lib/svinit"));

  for (;;) {
    int wstat, code;
    if (preflight() == -1) {
      if (sv_exit_harmless()) _exit(1);
      rescue("svinit cannot boot");
      continue;
    }
    wstat = stage1(argc, argv, noted, &set);
    code = WIFEXITED(wstat) ? WEXITSTATUS(wstat) : 128 + WTERMSIG(wstat);
    if (code == 0) {
      if (getpid() == 1) switch_root(noted);
      hand_over(noted);
      exec_svscan();
      code = EXIT_TEMP;
    }
    if (sv_exit_harmless()) _exit(code);
    rescue(code == EXIT_TEMP ? "svscan cannot run" : "stage 1 failed");
    argc = 1; /* the kernel's leftover arguments are no CMD */
  }
}
