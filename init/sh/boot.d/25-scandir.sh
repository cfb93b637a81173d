# provides: scandir
# needs: root
# The scan directory svscan runs in: /service, or, when /service is read-only (docker run --read-only
# --tmpfs /run), a mirror of it in /run whose directories are new and whose files are symlinks to the
# originals, so services run from the read-only originals (/run being noexec) and their state
# (supervise/, down files) is written in /run. Also removes a leftover shutdown service, as the seed says.

# Mirrors SRC as DST, without state, which must be writable and is not definition: supervise/, FIFOs
# (an earlier boot's .svscan/control), and what is in a logger's directory (one holding multilog's lock
# or current, as an image committed after a boot has): it is made empty.
sv_shadow() {  # SRC DST
  mkdir -p "$2" || return 1
  [ -f "$1/lock" ] || [ -f "$1/current" ] && return 0
  for f in "$1"/* "$1"/.[!.]*; do
    [ -e "$f" ] || [ -L "$f" ] || continue
    [ -p "$f" ] && continue
    case ${f##*/} in supervise) continue ;; esac
    if [ -d "$f" ] && [ ! -L "$f" ]; then
      sv_shadow "$f" "$2/${f##*/}"
    else
      ln -s "$f" "$2/${f##*/}"
    fi
  done
}

if [ -e /service ] && [ ! -d /service ]; then
  sv_error "/service is not a directory: it holds one directory per service (COPY mysvc /service/mysvc);" \
    "remove the file /service from the image"
  return 1
fi
[ -d /service ] || mkdir -p /service 2>/dev/null || {
  sv_error "there is no /service and it cannot be made (a read-only root): add it to the image"
  return 1
}
if [ -e "/service/$SVINIT_SHUTDOWN_SERVICE" ] || [ -L "/service/$SVINIT_SHUTDOWN_SERVICE" ]; then
  rm -f "/service/$SVINIT_SHUTDOWN_SERVICE" 2>/dev/null
fi
scandir=/service
# Writable? A real write tells (busybox's test -w is true for root even on a read-only mount). The probe
# is svinit's own .svscan/.writable, kept (no rm to fork at each boot), else a file made and removed.
probe=/service/.svinit-writable
if [ -d /service/.svscan ] && [ ! -L /service/.svscan ] && { true > /service/.svscan/.writable; } 2>/dev/null; then
  probe=
elif ! { true > "$probe"; } 2>/dev/null; then
  scandir=$SVINIT_RUN/service
  rm -rf "$scandir"
  if ! sv_shadow /service "$scandir"; then
    sv_error "/service is read-only and cannot be mirrored in $scandir: services cannot run"
    return 1
  fi
  rm -f "$scandir/$SVINIT_SHUTDOWN_SERVICE"
  sv_say "/service is read-only: svscan runs in $scandir, which mirrors it"
fi
[ -z "$probe" ] || rm -f "$probe" 2>/dev/null
echo "$scandir" > "$SVINIT_RUN/scandir"
