/*
 * svacpid PROG [ARGS...]: the ACPI power button, for a VM whose root has no busybox acpid. It waits for
 * KEY_POWER on the input devices /dev/input/event* (the Debian kernel's `button` module makes the ACPI
 * "Power Button" an input device, `evdev` gives it its node) and runs PROG each time the button is
 * pressed: svinit's poweroff. A press while PROG still runs is ignored (QEMU's harness presses again
 * until the guest acts). Only devices that can report KEY_POWER are kept; new ones are looked for every
 * 5 s (a module loaded later), and a device that goes away is forgotten.
 * Nothing but the kernel's evdev interface: its few constants are defined here (musl has no
 * <linux/input.h>). Runs until killed (a supervised service). Exit: 100 for a usage error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sv.h"

/* From the kernel's uapi <linux/input.h> and <linux/input-event-codes.h>. */
#define EV_KEY 0x01
#define KEY_POWER 116
#define KEY_MAX 0x2ff
#define EVIOCGBIT(ev, len) _IOC(_IOC_READ, 'E', 0x20 + (ev), len)
#define EVIOCGNAME(len) _IOC(_IOC_READ, 'E', 0x06, len)
struct input_event {
  struct timeval time;
  uint16_t type;
  uint16_t code;
  int32_t value;
};

#define INPUT_DIR "/dev/input"
#define MAXDEV 32
#define RESCAN_MS 5000

struct device {
  char node[sizeof INPUT_DIR + 256];
  int fd;  /* -1: looked at, not a power button (not opened again) */
};

/* Does the device on FD report KEY_POWER? */
static int has_power_key(int fd)
{
  unsigned char bits[KEY_MAX / 8 + 1];
  memset(bits, 0, sizeof bits);
  if (ioctl(fd, EVIOCGBIT(EV_KEY, sizeof bits), bits) == -1) return 0;
  return (bits[KEY_POWER / 8] >> (KEY_POWER % 8)) & 1;
}

static int known(const struct device *dev, int n, const char *node)
{
  for (int i = 0; i < n; ++i)
    if (!strcmp(dev[i].node, node)) return 1;
  return 0;
}

/* Adds the event devices not looked at yet; returns the new count. */
static int scan(struct device *dev, int n)
{
  DIR *dir = opendir(INPUT_DIR);
  struct dirent *d;
  if (!dir) return n;
  while ((d = readdir(dir)) && n < MAXDEV) {
    char node[sizeof INPUT_DIR + 256], name[128] = "?";
    int fd;
    if (strncmp(d->d_name, "event", 5)) continue;
    snprintf(node, sizeof node, "%s/%s", INPUT_DIR, d->d_name);
    if (known(dev, n, node)) continue;
    fd = open(node, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd == -1) { sv_warnsys("unable to open %s", node); continue; }
    if (!has_power_key(fd)) { close(fd); fd = -1; }
    else {
      ioctl(fd, EVIOCGNAME(sizeof name - 1), name);
      sv_info("watching %s (%s) for the power button", node, name);
    }
    snprintf(dev[n].node, sizeof dev[n].node, "%s", node);
    dev[n++].fd = fd;
  }
  closedir(dir);
  return n;
}

/* Runs PROG unless it still runs from a press before; returns its pid (or the one still running). */
static pid_t press(pid_t running, char **prog)
{
  pid_t pid;
  if (running > 0 && waitpid(running, NULL, WNOHANG) == 0) {
    sv_info("power button pressed: %s still runs", prog[0]);
    return running;
  }
  sv_info("power button pressed: running %s", prog[0]);
  pid = fork();
  if (pid == -1) { sv_warnsys("unable to spawn %s", prog[0]); return 0; }
  if (pid == 0) {
    execvp(prog[0], prog);
    sv_diesys(EXIT_TEMP, "unable to run %s", prog[0]);
  }
  return pid;
}

int svacpid_main(int argc, char **argv)
{
  struct device dev[MAXDEV];
  struct pollfd pfd[MAXDEV];
  int n = 0, told = 0;
  pid_t running = 0;

  sv_progname = "svacpid";
  if (argc < 2) sv_usage("svacpid PROG [ARGS...]");
  for (;;) {
    int watched = 0;
    n = scan(dev, n);
    for (int i = 0; i < n; ++i)
      if (dev[i].fd != -1) { pfd[watched].fd = dev[i].fd; pfd[watched++].events = POLLIN; }
    if (!watched && !told) {
      sv_warn("no power button in %s/event* yet (the kernel needs the modules button and evdev); "
        "looking again every %d s", INPUT_DIR, RESCAN_MS / 1000);
      told = 1;
    }
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
    if (poll(pfd, (nfds_t)watched, RESCAN_MS) <= 0) continue;
    for (int i = 0; i < watched; ++i) {
      struct input_event ev;
      ssize_t r;
      if (!pfd[i].revents) continue;
      while ((r = read(pfd[i].fd, &ev, sizeof ev)) == (ssize_t)sizeof ev)
        if (ev.type == EV_KEY && ev.code == KEY_POWER && ev.value == 1) running = press(running, argv + 1);
      if (r == -1 && errno != EAGAIN && errno != EINTR) {
        /* unplugged (ENODEV): forget it, so that a device of the same name is looked at again */
        for (int j = 0; j < n; ++j)
          if (dev[j].fd == pfd[i].fd) { close(dev[j].fd); dev[j] = dev[--n]; break; }
        told = 0;
      }
    }
  }
}
