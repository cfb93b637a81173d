/*
 * svscanctl [-a] [-f] [-t] [-x] [-c CODE] DIR: controls the svscan running in DIR through DIR/.svscan/control.
 *   -a  rescan now
 *   -c  the exit code svscan ends with (0 to 255), given before -t or -x
 *   -f  freeze: start no supervise any more, restart none that exits (the shutdown's first step)
 *   -t  stop every service, then every logger, then end svscan
 *   -x  end svscan now: exec DIR/.svscan/finish CODE, or exit with CODE
 * The letters go in one non-blocking write: with no svscan reading (or djb's svscan, which has no control
 * FIFO) it says so and exits 111 instead of waiting. Exit 100 for usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sv.h"

int svscanctl_main(int argc, char **argv)
{
  char data[32];
  size_t len = 0;
  char path[4096];
  int opt, fd;

  sv_progname = "svscanctl";
  while ((opt = getopt(argc, argv, "aftxc:")) != -1) {
    if (opt == 'c') {
      char *end;
      long code = strtol(optarg, &end, 10);
      if (!*optarg || *end || code < 0 || code > 255) sv_usage("svscanctl [-a] [-f] [-t] [-x] [-c 0..255] dir");
      len += (size_t)snprintf(data + len, sizeof data - len, "%ld", code);
    } else if (opt == '?') {
      sv_usage("svscanctl [-a] [-f] [-t] [-x] [-c 0..255] dir");
    } else if (len < sizeof data - 1) {
      data[len++] = (char)opt;
    }
  }
  if (optind != argc - 1 || !len) sv_usage("svscanctl [-a] [-f] [-t] [-x] [-c 0..255] dir");
  snprintf(path, sizeof path, "%s/%s", argv[optind], SVSCAN_CONTROL);
  fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd == -1) {
    if (errno == ENXIO) sv_die(EXIT_TEMP, "unable to control %s: svscan not running", argv[optind]);
    sv_diesys(EXIT_TEMP, "unable to control %s: no svinit svscan there (%s)", argv[optind], path);
  }
  if (sv_write_all(fd, data, len) == -1) sv_diesys(EXIT_TEMP, "unable to write %s", path);
  return 0;
}
