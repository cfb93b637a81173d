/*
 * svpower poweroff|reboot|halt: the last act of a VM's shutdown, once every filesystem is unmounted or
 * read-only: sync, then reboot(2) with the command asked for. As runit and busybox do, reboot(2) is
 * called from a forked child: RB_POWER_OFF and RB_HALT_SYSTEM end their caller in the kernel, and
 * process 1 ending panics the kernel. The parent waits for the machine to go.
 * Needs no busybox (`poweroff -f`): a root without it (Debian) powers off, restarts and halts the same.
 * Exit: 111 when the kernel refuses (no CAP_SYS_BOOT, as in a container), 100 for a usage error.
 */
#include <errno.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sv.h"

int svpower_main(int argc, char **argv)
{
  int cmd, wstat;
  pid_t child;

  sv_progname = "svpower";
  if (argc != 2) sv_usage("svpower poweroff|reboot|halt");
  if (!strcmp(argv[1], "poweroff")) cmd = RB_POWER_OFF;
  else if (!strcmp(argv[1], "reboot")) cmd = RB_AUTOBOOT;
  else if (!strcmp(argv[1], "halt")) cmd = RB_HALT_SYSTEM;
  else sv_usage("svpower poweroff|reboot|halt");

  sync();
  child = fork();
  if (child == -1) {
    /* no child to spare us: ask from here (RB_AUTOBOOT returns nothing to come back to either way) */
    reboot(cmd);
    sv_diesys(EXIT_TEMP, "unable to %s", argv[1]);
  }
  if (child == 0) {
    reboot(cmd);
    _exit(errno == EPERM ? 1 : 2);
  }
  while (waitpid(child, &wstat, 0) == -1 && errno == EINTR) {}
  /* The child returned: the kernel refused. (After a successful RB_POWER_OFF it never does.) */
  if (WIFEXITED(wstat) && WEXITSTATUS(wstat) == 1)
    sv_die(EXIT_TEMP, "unable to %s: permission denied (no CAP_SYS_BOOT: in a container, end process 1 instead)", argv[1]);
  sv_die(EXIT_TEMP, "unable to %s: the kernel refused", argv[1]);
}
