/*
 * svc: sends commands to the supervise of each service directory, as daemontools 0.76's svc.
 *
 *   svc -udopchaitkx dir...
 *
 * The letters, each kept once in the order given, go to DIR/supervise/control in one write(2).
 * svinit's supervise also understands q (QUIT), 1 (USR1), 2 (USR2) and w (WINCH).
 * A directory that cannot be controlled gets a warning and svc goes on; it exits 0 all the same,
 * as djb's does. A bad option exits 100.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "sv.h"

#define LETTERS "udopchaitkx" "q12w"
#define OPTIONS "svc options: u up, d down, o once, x exit, p pause, c continue, h hup, a alarm, " \
  "i interrupt, t term, k kill"

static char cmds[sizeof LETTERS];
static size_t ncmds;

/* Adds the letters of one option argument ("-ud"), each once. */
static void options(const char *arg)
{
  for (const char *p = arg + 1; *p; ++p) {
    if (!strchr(LETTERS, *p)) {
      char msg[256];
      int n = snprintf(msg, sizeof msg, "svc: illegal option -- %c\n%s\n", *p, OPTIONS);
      sv_write_all(2, msg, (size_t)n);
      _exit(EXIT_PERM);
    }
    if (!memchr(cmds, *p, ncmds)) cmds[ncmds++] = *p;
  }
}

static void control(const char *dir)
{
  int fd = open(SV_CONTROL, O_WRONLY | O_NDELAY | O_CLOEXEC);
  if (fd == -1) {
    if (errno == ENXIO) sv_warn("unable to control %s: supervise not running", dir);
    else sv_warnsys("unable to control %s", dir);
    return;
  }
  /* Blocking again, so the one write waits for room in the FIFO rather than failing. */
  if (sv_nonblock(fd, 0) == -1 || (ncmds && sv_write_all(fd, cmds, ncmds) == -1))
    sv_warnsys("error writing commands to %s", dir);
  close(fd);
}

int svc_main(int argc, char **argv)
{
  int i = 1, orig;
  sv_progname = "svc";
  signal(SIGPIPE, SIG_IGN);

  /* As djb's getopt: options end at "-", at a word not starting with '-', or after one starting "--". */
  for (; i < argc && argv[i][0] == '-' && argv[i][1]; ++i) {
    if (argv[i][1] == '-') { ++i; break; }
    options(argv[i]);
  }

  orig = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (orig == -1) sv_diesys(EXIT_TEMP, "unable to open current directory");
  for (; i < argc; ++i) {
    if (chdir(argv[i]) == -1) sv_warnsys("unable to chdir to %s", argv[i]);
    else control(argv[i]);
    if (fchdir(orig) == -1) sv_diesys(EXIT_TEMP, "unable to set directory");
  }
  return 0;
}
