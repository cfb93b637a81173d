#!/bin/sh
# install.sh [--system]: installs the init package into the tree $DESTDIR (called by `make install-dist`
# and `make install`, which give the multi-call program in $MULTI and its programs' names in $PROGRAMS).
# What the archive holds (install-dist), only files that no Alpine or Debian base has:
#   /usr/lib/svinit/bin/          the C programs (hard links to one multi-call file, which runs the program
#                                 its name says) and the commands poweroff, reboot, halt, shutdown, runlevel
#   /usr/lib/svinit/VERSION       the version, which /init checks against its own (no mixed versions)
#   /usr/lib/svinit/              stage1, lib.sh, resolve.sh, modules.sh, front, vm-front, shutdown, final.sh, the shutdown service
#   /usr/lib/svinit/boot.d, shutdown.d   the drop-ins; boot.order, the boot drop-ins' order resolved here
#                                        (boot.order.sh: the same, and their "# where:" headers, as sh)
#   /usr/lib/svinit/stopped-supervise    the supervise svscan finds during the shutdown: it exits at once
#   /usr/lib/svinit/svscan/       svscan's hooks, linked from /service/.svscan
#   /usr/lib/svinit/vm-services/  getty, acpid and the harness shell, linked into /service on a vm
#   /init                         the entry point: ENTRYPOINT ["/init"] (a link to bin/init)
#   /usr/local/bin/               links to the commands a user types: svc, svstat, svok, svscanctl,
#                                 multilog, tai64nlocal, envdir, poweroff, reboot, halt, runlevel
#   /service/svscan-log           svscan's logger
#   /etc/svinit/boot.d, /etc/svinit/runlevels/default   for the user's own
# With --system (make install: the reference image and the VM's initramfs), also /sbin/init and
# /sbin/{poweroff,reboot,halt,shutdown,runlevel} (links into /usr/lib/svinit/bin).
set -eu
src=$(cd "$(dirname "$0")" && pwd)
D=${DESTDIR:-}
[ -n "$D" ] || { echo "install.sh: DESTDIR must be set (the tree images are made from)" >&2; exit 100; }
L=$D/usr/lib/svinit

inst() {  # MODE SRC DEST: replaces DEST, even when it is a symlink (busybox's applets are)
  mkdir -p "$(dirname "$3")"
  rm -f "$3"
  cp "$2" "$3"
  chmod "$1" "$3"
}
link() {  # TARGET NAME: NAME becomes a symlink to TARGET
  mkdir -p "$(dirname "$2")"
  rm -f "$2"
  ln -s "$1" "$2"
}

if [ "${1:-}" = --system ]; then
  for c in init poweroff reboot halt shutdown runlevel; do link "../usr/lib/svinit/bin/$c" "$D/sbin/$c"; done
  exit 0
fi

first=
for p in ${PROGRAMS:?install.sh: PROGRAMS must name the programs}; do
  if [ -z "$first" ]; then
    first=$p
    inst 0755 "${MULTI:?install.sh: MULTI must name the multi-call program}" "$L/bin/$p"
  else
    rm -f "$L/bin/$p"
    ln "$L/bin/$first" "$L/bin/$p"
  fi
done
inst 0755 "$src/sbin/poweroff" "$L/bin/poweroff"
for a in reboot halt; do link poweroff "$L/bin/$a"; done
inst 0755 "$src/sbin/shutdown" "$L/bin/shutdown"
inst 0755 "$src/sbin/runlevel" "$L/bin/runlevel"
link usr/lib/svinit/bin/init "$D/init"
for c in svc svstat svok svscanctl multilog tai64nlocal envdir poweroff reboot halt runlevel; do
  link "/usr/lib/svinit/bin/$c" "$D/usr/local/bin/$c"
done

mkdir -p "$L"
printf '%s\n' "${VERSION:?install.sh: VERSION must be set}" > "$L/VERSION"
chmod 0644 "$L/VERSION"
for f in lib.sh resolve.sh final.sh modules.sh; do inst 0644 "$src/lib/$f" "$L/$f"; done
for f in stage1 front vm-front shutdown autologin svinit-shutdown.run stopped-supervise; do
  inst 0755 "$src/lib/$f" "$L/$f"
done
for d in "$src"/vm-services/*; do
  inst 0755 "$d/run" "$L/vm-services/${d##*/}/run"
  [ -f "$d/down-signal" ] && inst 0644 "$d/down-signal" "$L/vm-services/${d##*/}/down-signal"
done
for f in "$src"/boot.d/*.sh; do inst 0644 "$f" "$L/boot.d/${f##*/}"; done
for f in "$src"/shutdown.d/*.sh; do inst 0644 "$f" "$L/shutdown.d/${f##*/}"; done
for f in "$src"/svscan/*; do inst 0755 "$f" "$L/svscan/${f##*/}"; done
mkdir -p "$D/etc/svinit/boot.d" "$D/etc/svinit/runlevels/default"
# The boot drop-ins' order, resolved now: stage 1 reads it while they are the same (lib/resolve.sh)
sv_error() { printf 'install.sh: error: %s\n' "$*" >&2; return 1; }
sv_warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
. "$src/lib/resolve.sh"
sv_order_write "$L/boot.order" "$D" "$L"/boot.d/*.sh "$D"/etc/svinit/boot.d/*.sh ||
  { echo "install.sh: the boot drop-ins cannot all run (above): fix their headers" >&2; exit 1; }
chmod 0644 "$L/boot.order" "$L/boot.order.sh"

for f in "$src"/svscan/*; do link "/usr/lib/svinit/svscan/${f##*/}" "$D/service/.svscan/${f##*/}"; done
inst 0755 "$src/service/svscan-log/run" "$D/service/svscan-log/run"
