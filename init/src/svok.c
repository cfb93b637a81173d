/*
 * svok: tells whether a supervise is running in a service directory, as daemontools 0.76's svok.
 *
 *   svok dir
 *
 * Exits 0 if supervise/ok can be opened for writing without blocking (supervise holds it open for
 * reading), 100 if not (no reader, or no such FIFO), 111 with a message for any other error.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include "sv.h"

int svok_main(int argc, char **argv)
{
  sv_progname = "svok";
  if (argc < 2) sv_usage("svok dir");

  if (chdir(argv[1]) == -1) sv_diesys(EXIT_TEMP, "unable to chdir to %s", argv[1]);
  if (open(SV_OK, O_WRONLY | O_NDELAY) == -1) {
    if (errno == ENXIO || errno == ENOENT) return EXIT_PERM;
    sv_diesys(EXIT_TEMP, "unable to open %s/%s", argv[1], SV_OK);
  }
  return 0;
}
