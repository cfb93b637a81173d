/*
 * sigreset PROG [ARGS...]: execs PROG with every signal at its default action and none blocked.
 * sh starts background jobs with SIGINT and SIGQUIT ignored, and an ignored signal stays ignored across
 * exec; the container's CMD is started through this so that Ctrl-C reaches it as in a normal shell.
 * Like sh, it exits 127 when PROG is not found and 126 when it cannot be run.
 */
#include <errno.h>
#include <unistd.h>
#include "sv.h"

extern char **environ;

int sigreset_main(int argc, char **argv)
{
  sv_progname = "sigreset";
  if (argc < 2) sv_usage("sigreset prog [args...]");
  sv_default_signals();
  execvp(argv[1], argv + 1);
  sv_diesys(errno == ENOENT ? 127 : 126, "unable to run %s", argv[1]);
}
