#!/bin/sh
# Installs svinit's sh parts into the tree $DESTDIR (called by `make install`; the C programs are
# installed by the Makefile into $DESTDIR/usr/bin):
#   /lib/svinit/stage1            stage 1 (the Makefile installs /sbin/init, which runs it)
#   /sbin/{poweroff,reboot,halt,shutdown,runlevel}
#   /lib/svinit/                  lib.sh, resolve.sh, front, shutdown, final.sh, the shutdown service
#   /lib/svinit/boot.d, shutdown.d   the drop-ins
#   /lib/svinit/stopped-supervise the supervise svscan finds during the shutdown: it exits at once
#   /lib/svinit/svscan/           svscan's hooks, linked from /service/.svscan
#   /lib/svinit/vm-services/      getty, acpid and the harness shell, linked into /service on a vm
#   /etc/acpi/PWRF/00000080       the ACPI power button's action (busybox acpid)
#   /service/svscan-log           svscan's logger
#   /etc/svinit/boot.d, /etc/svinit/runlevels/default   for the user's own
set -eu
src=$(cd "$(dirname "$0")" && pwd)
D=${DESTDIR:-}
[ -n "$D" ] || { echo "install.sh: DESTDIR must be set (the tree images are made from)" >&2; exit 100; }

inst() {  # MODE SRC DEST: replaces DEST, even when it is a symlink (busybox's applets are)
  mkdir -p "$(dirname "$3")"
  rm -f "$3"
  cp "$2" "$3"
  chmod "$1" "$3"
}

inst 0755 "$src/sbin/poweroff" "$D/sbin/poweroff"
for a in reboot halt; do rm -f "$D/sbin/$a"; ln -s poweroff "$D/sbin/$a"; done
inst 0755 "$src/sbin/shutdown" "$D/sbin/shutdown"
inst 0755 "$src/sbin/runlevel" "$D/sbin/runlevel"

L=$D/lib/svinit
for f in lib.sh resolve.sh final.sh svinit-shutdown.run; do inst 0644 "$src/lib/$f" "$L/$f"; done
chmod 0755 "$L/svinit-shutdown.run"
for f in stage1 front shutdown autologin acpi-power; do inst 0755 "$src/lib/$f" "$L/$f"; done
for d in "$src"/vm-services/*; do
  inst 0755 "$d/run" "$L/vm-services/${d##*/}/run"
  [ -f "$d/down-signal" ] && inst 0644 "$d/down-signal" "$L/vm-services/${d##*/}/down-signal"
done
mkdir -p "$D/etc/acpi/PWRF"
rm -f "$D/etc/acpi/PWRF/00000080"
ln -s /lib/svinit/acpi-power "$D/etc/acpi/PWRF/00000080"
inst 0755 "$src/lib/stopped-supervise" "$L/stopped-supervise"
for f in "$src"/boot.d/*.sh; do inst 0644 "$f" "$L/boot.d/${f##*/}"; done
for f in "$src"/shutdown.d/*.sh; do inst 0644 "$f" "$L/shutdown.d/${f##*/}"; done
for f in "$src"/svscan/*; do inst 0755 "$f" "$L/svscan/${f##*/}"; done

mkdir -p "$D/service/.svscan"
for f in "$src"/svscan/*; do
  rm -f "$D/service/.svscan/${f##*/}"
  ln -s "/lib/svinit/svscan/${f##*/}" "$D/service/.svscan/${f##*/}"
done
inst 0755 "$src/service/svscan-log/run" "$D/service/svscan-log/run"
mkdir -p "$D/etc/svinit/boot.d" "$D/etc/svinit/runlevels/default" "$D/run" "$D/var/log"
