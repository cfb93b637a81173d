/*
 * svwait: waits until services are up, or their supervise processes gone, and returns as soon as that
 * holds (the shutdown's and the front process's waits, which used to poll svstat from sh).
 *
 *   svwait -u|-d [-s] [-c LETTERS] [-t MS] dir...
 *
 *   -u  until every DIR is up: its supervise runs (supervise/ok has a reader) and supervise/status
 *       names a pid (what svstat shows as "up (pid N)"). Checked every POLL_UP_MS.
 *   -s  with -u: until every DIR is settled: up; or down and wanted down (`svc -d`, its down file): it
 *       will not come up unasked; or failed: wanted up but its run ended since supervise started it
 *       (its status records the exit: svinit's supervise), or cannot start. A failed DIR is printed,
 *       one a line, even when svwait exits 0. The front process's wait before CMD: a service whose run
 *       takes itself down (`exec svc -d .`, Debian's cron as a user) or fails again every second (crond
 *       as a user) is up for moments only, which a poll catches after 1 s, or 26, or never.
 *   -d  until the supervise of every DIR has exited: svwait holds supervise/ok open for writing and
 *       the kernel tells it (POLLERR) when its last reader, supervise, is gone: no polling. With any
 *       supervise that holds ok open, djb's included. A DIR whose ok cannot be opened (no FIFO, no
 *       reader, no permission) counts as gone, as svstat's "supervise not running" / "unable to".
 *   -t  at most MS milliseconds (default: no limit; 0: look once).
 *   -c  first sends LETTERS to every DIR's supervise, as `svc -LETTERS dir...` does (one write each,
 *       non-blocking; a DIR whose supervise does not read them is skipped, silently): `svwait -d -c dx`
 *       stops services and waits for them in one program (the shutdown's step, one fork fewer). With -d
 *       supervise/ok is opened before the letters go, so an exit that follows them is never missed.
 *
 * Exits 0 when the condition holds for every DIR; 1 at the time limit, printing each DIR for which it
 * does not, one a line; 100 for bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "sv.h"

#define USAGE "svwait -u|-d [-s] [-c letters] [-t MS] dir..."
#define POLL_UP_MS 5

static char path[PATH_MAX];
static const char *letters;  /* -c */
static int settled;          /* -s */

static const char *in(const char *dir, const char *file)
{
  if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path) return "/nonexistent/name-too-long";
  return path;
}

/* -c: LETTERS to every DIR's supervise/control, as svc writes them. */
static void tell(char **dirs, int n)
{
  for (int i = 0; letters && i < n; ++i) {
    int fd = open(in(dirs[i], SV_CONTROL), O_WRONLY | O_NDELAY | O_CLOEXEC);
    if (fd == -1) continue;
    sv_write_all(fd, letters, strlen(letters));
    close(fd);
  }
}

/* Is DIR up: supervise running, a pid in its status? With -s: or settled otherwise (see the top);
   *FAILED says when it counts because it failed. */
static int up(const char *dir, int *failed)
{
  unsigned char buf[SV_STATUS_LEN];
  struct sv_status st;
  ssize_t r;
  int fd = open(in(dir, SV_OK), O_WRONLY | O_NDELAY | O_CLOEXEC);
  if (fd == -1) return 0;
  close(fd);
  fd = open(in(dir, SV_STATUS), O_RDONLY | O_NDELAY | O_CLOEXEC);
  if (fd == -1) return 0;
  do r = read(fd, buf, sizeof buf); while (r == -1 && errno == EINTR);
  close(fd);
  *failed = 0;
  if (r < SV_STATUS_DJB || sv_status_unpack(buf, (size_t)r, &st) < SV_STATUS_DJB) return 0;
  if (st.pid != 0) return 1;
  if (!settled) return 0;
  if (st.want == 'd') return 1;
  *failed = st.state == SV_STATE_BROKEN || (st.want == 'u' && st.lastwait != 0xffffffffu);
  return *failed;
}

static int wait_up(char **dirs, int n, int64_t end)
{
  char *failed = calloc((size_t)n, 1);
  int i = 0, f = 0, rc = 1;
  if (!failed) sv_die(EXIT_TEMP, "out of memory");
  tell(dirs, n);
  for (;;) {
    while (i < n && up(dirs[i], &f)) failed[i++] = (char)f;  /* once up, not looked at again: a restart is no stop */
    if (i == n) { rc = 0; break; }
    if (end >= 0 && sv_now_ms() >= end) break;
    usleep(POLL_UP_MS * 1000);
  }
  /* what failed (-s), and at the limit what is not up */
  for (int j = 0; j < n; ++j)
    if (j < i ? failed[j] : !up(dirs[j], &f) || f) printf("%s\n", dirs[j]);
  free(failed);
  return rc;
}

static int wait_down(char **dirs, int n, int64_t end)
{
  struct pollfd *p = calloc((size_t)n, sizeof *p);
  struct rlimit rl;
  int left = 0;
  /* one descriptor a directory: as many as allowed */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (!p) sv_die(EXIT_TEMP, "out of memory");
  for (int i = 0; i < n; ++i) {
    p[i].fd = open(in(dirs[i], SV_OK), O_WRONLY | O_NDELAY | O_CLOEXEC);
    p[i].events = 0;  /* POLLERR comes unasked, once no reader is left */
    if (p[i].fd == -1 && errno == EMFILE) sv_die(EXIT_TEMP, "unable to open %s: too many directories at once", path);
    if (p[i].fd != -1) ++left;
  }
  tell(dirs, n);
  while (left > 0) {
    int64_t ms = -1;
    if (end >= 0) { ms = end - sv_now_ms(); if (ms < 0) ms = 0; }
    int r = poll(p, (nfds_t)n, ms > INT_MAX ? INT_MAX : (int)ms);
    if (r == -1 && errno != EINTR) sv_diesys(EXIT_TEMP, "unable to poll");
    for (int i = 0; r > 0 && i < n; ++i)
      if (p[i].fd != -1 && p[i].revents) { close(p[i].fd); p[i].fd = -1; --left; }
    if (r == 0 && left > 0 && end >= 0 && sv_now_ms() >= end) break;
  }
  for (int i = 0; i < n; ++i) if (p[i].fd != -1) printf("%s\n", dirs[i]);
  return left > 0;
}

int svwait_main(int argc, char **argv)
{
  int mode = 0, opt;
  int64_t limit = -1;
  char *e;
  sv_progname = "svwait";
  signal(SIGPIPE, SIG_IGN); /* a supervise gone between open and write (-c) is no error */
  while ((opt = getopt(argc, argv, "udsc:t:")) != -1) {
    switch (opt) {
    case 'u': case 'd': mode = opt; break;
    case 's': settled = 1; break;
    case 'c': if (!*optarg) sv_usage(USAGE); letters = optarg; break;
    case 't':
      limit = strtoll(optarg, &e, 10);
      if (!*optarg || *e || limit < 0) sv_usage(USAGE);
      break;
    default: sv_usage(USAGE);
    }
  }
  if (!mode || optind >= argc || (settled && mode != 'u')) sv_usage(USAGE);
  int64_t end = limit < 0 ? -1 : sv_now_ms() + limit;
  int rc = mode == 'u' ? wait_up(argv + optind, argc - optind, end) : wait_down(argv + optind, argc - optind, end);
  if (fflush(stdout) == EOF) sv_diesys(EXIT_TEMP, "unable to write");
  return rc;
}
