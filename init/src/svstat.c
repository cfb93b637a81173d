/*
 * svstat: prints the state of each service directory, exactly as daemontools 0.76's svstat.
 *
 *   svstat dir...
 *
 *   DIR: up (pid N) S seconds[, normally down][, paused][, want down]
 *   DIR: down S seconds[, normally up][, want up]
 *   DIR: supervise not running | unable to ...: REASON
 *
 * Only the first 18 bytes of supervise/status (djb's record) are read, so it reads both
 * djb's status files and svinit's longer ones. Always exits 0, as djb's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "sv.h"

/* Prints the state of the service in the current directory, without the newline. */
static void show(void)
{
  unsigned char buf[SV_STATUS_DJB];
  struct sv_status st;
  struct stat sb;
  uint64_t now, when;
  int normallyup = 0, fd;
  ssize_t r;

  if (stat(SV_DOWN, &sb) == -1) {
    if (errno != ENOENT) { printf("unable to stat down: %s", sv_strerror(errno)); return; }
    normallyup = 1;
  }

  fd = open(SV_OK, O_WRONLY | O_NDELAY | O_CLOEXEC);
  if (fd == -1) {
    if (errno == ENXIO) printf("supervise not running");
    else printf("unable to open %s: %s", SV_OK, sv_strerror(errno));
    return;
  }
  close(fd);

  fd = open(SV_STATUS, O_RDONLY | O_NDELAY | O_CLOEXEC);
  if (fd == -1) { printf("unable to open %s: %s", SV_STATUS, sv_strerror(errno)); return; }
  do r = read(fd, buf, sizeof buf); while (r == -1 && errno == EINTR);
  if (r == -1) printf("unable to read %s: %s", SV_STATUS, sv_strerror(errno));
  close(fd);
  if (r == -1) return;
  if (sv_status_unpack(buf, (size_t)r, &st) < SV_STATUS_DJB) {
    printf("unable to read %s: bad format", SV_STATUS);
    return;
  }

  /* djb's arithmetic: time() against the TAI64 label, clamped at 0, through a double. */
  now = TAI64_UNIX_OFFSET + (uint64_t)time(NULL);
  when = st.sec < now ? st.sec : now;

  if (st.pid) printf("up (pid %lu) ", (unsigned long)st.pid);
  else printf("down ");
  printf("%lu seconds", (unsigned long)(double)(now - when));

  if (st.pid && !normallyup) printf(", normally down");
  if (!st.pid && normallyup) printf(", normally up");
  if (st.pid && st.paused) printf(", paused");
  if (!st.pid && st.want == 'u') printf(", want up");
  if (st.pid && st.want == 'd') printf(", want down");
}

int svstat_main(int argc, char **argv)
{
  int orig;
  sv_progname = "svstat";

  orig = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (orig == -1) sv_diesys(EXIT_TEMP, "unable to open current directory");
  for (int i = 1; i < argc; ++i) {
    printf("%s: ", argv[i]);
    if (chdir(argv[i]) == -1) printf("unable to chdir: %s", sv_strerror(errno));
    else show();
    printf("\n");
    if (fchdir(orig) == -1) { fflush(stdout); sv_diesys(EXIT_TEMP, "unable to set directory"); }
  }
  return 0;
}
