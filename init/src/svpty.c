/*
 * svpty ROWS COLS PROG [ARGS...]: runs PROG on a new pseudo-terminal of ROWS x COLS, its controlling
 * terminal in a session of its own, and relays the bytes between the pty and svpty's stdin and stdout
 * (on a vm of `svinit run --vm`, the virtio-serial port whose host end is the user's terminal in raw
 * mode): Ctrl-C typed there reaches PROG through the pty's line discipline, as on a console.
 * Exits with PROG's code: 128+N when signal N killed it; 127 when it is not found, 126 when it cannot
 * be run (as sh); 111 when no pty can be made, 100 for a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include "sv.h"

static pid_t spawn(int master, char **argv)
{
  char *slave = ptsname(master);
  pid_t pid = fork();
  int fd;

  if (pid != 0) return pid;
  close(master);
  if (setsid() == -1) sv_diesys(EXIT_TEMP, "unable to make a session");
  fd = slave ? open(slave, O_RDWR) : -1;
  if (fd == -1) sv_diesys(EXIT_TEMP, "unable to open the pty %s", slave ? slave : "?");
  ioctl(fd, TIOCSCTTY, 0);
  if (dup2(fd, 0) == -1 || dup2(fd, 1) == -1 || dup2(fd, 2) == -1) sv_diesys(EXIT_TEMP, "unable to dup");
  if (fd > 2) close(fd);
  sv_default_signals();
  execvp(argv[0], argv);
  sv_diesys(errno == ENOENT ? 127 : 126, "unable to run %s", argv[0]);
}

/* Copies what fd `from` has to `to`; 0 at its end (EOF, or EIO: a pty whose every slave is closed). */
static int relay(int from, int to)
{
  char buf[4096];
  ssize_t n = read(from, buf, sizeof buf);

  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 1;
  if (n <= 0) return 0;
  sv_write_all(to, buf, (size_t)n);
  return 1;
}

int svpty_main(int argc, char **argv)
{
  struct winsize ws = {0};
  struct pollfd p[2];
  int master, wstat = 0, in_open = 1, dead = 0;
  pid_t child;

  sv_progname = "svpty";
  if (argc < 4) sv_usage("svpty rows cols prog [args...]");
  ws.ws_row = (unsigned short)atoi(argv[1]);
  ws.ws_col = (unsigned short)atoi(argv[2]);
  signal(SIGPIPE, SIG_IGN);
  master = posix_openpt(O_RDWR | O_NOCTTY);
  if (master == -1 || grantpt(master) == -1 || unlockpt(master) == -1)
    sv_diesys(EXIT_TEMP, "unable to make a pty");
  if (ws.ws_row && ws.ws_col) ioctl(master, TIOCSWINSZ, &ws);
  child = spawn(master, argv + 3);
  if (child == -1) sv_diesys(EXIT_TEMP, "unable to fork");

  /* relay until PROG is gone and the pty has nothing more to say */
  for (;;) {
    p[0].fd = in_open ? 0 : -1;
    p[0].events = POLLIN;
    p[1].fd = master;
    p[1].events = POLLIN;
    if (poll(p, 2, dead ? 0 : 100) == -1 && errno != EINTR) sv_diesys(EXIT_TEMP, "unable to poll");
    if (p[1].revents && !relay(master, 1)) break;
    if (in_open && p[0].revents && !relay(0, master)) in_open = 0;
    if (dead && !p[1].revents) break;
    if (!dead && waitpid(child, &wstat, WNOHANG) == child) dead = 1;
  }
  if (!dead) while (waitpid(child, &wstat, 0) == -1 && errno == EINTR) {}
  if (WIFSIGNALED(wstat)) return 128 + WTERMSIG(wstat);
  return WEXITSTATUS(wstat);
}
