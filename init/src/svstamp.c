/*
 * svstamp: prints when each service last changed state (went up or down), from its supervise/status,
 * for svinit's shutdown report (the harness checks that each service went down before its logger).
 *
 *   svstamp dir...
 *
 * One line per DIR: `DIR @TAI64N` (24 hex digits: the first 12 bytes of supervise/status, the same in
 * djb's record and svinit's), or `DIR @` when the status cannot be read. One process for every service
 * of the report, where sh needed an od and a tr for each. Exits 0; 100 for bad usage.
 */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include "sv.h"

int svstamp_main(int argc, char **argv)
{
  static const char hex[] = "0123456789abcdef";
  char path[4096];
  unsigned char stamp[12];
  char text[25];
  int i, j, fd;

  sv_progname = "svstamp";
  if (argc < 2) sv_usage("svstamp dir...");
  for (i = 1; i < argc; i++) {
    text[0] = '\0';
    if (snprintf(path, sizeof path, "%s/%s", argv[i], SV_STATUS) < (int)sizeof path &&
        (fd = open(path, O_RDONLY | O_CLOEXEC)) != -1) {
      if (read(fd, stamp, sizeof stamp) == (ssize_t)sizeof stamp) {
        for (j = 0; j < 12; j++) {
          text[2 * j] = hex[stamp[j] >> 4];
          text[2 * j + 1] = hex[stamp[j] & 15];
        }
        text[24] = '\0';
      }
      close(fd);
    }
    printf("%s @%s\n", argv[i], text);
  }
  return fflush(stdout) == 0 ? 0 : EXIT_TEMP;
}
