# svinit's shared sh functions, sourced by stage 1, boot and shutdown drop-ins, and the commands.
# POSIX sh (busybox ash, dash). Nothing runs when this is sourced but variable defaults.

SVINIT_LIB=${SVINIT_LIB:-/usr/lib/svinit}
# svinit's programs: found after what PATH has (djb's svc and svstat first, when SVINIT_PATH says so)
case :$PATH: in *":$SVINIT_LIB/bin:"*) ;; *) PATH=$PATH:$SVINIT_LIB/bin ;; esac
# svinit's state: /run/svinit, or, for a user who cannot write there (docker run --user 1000), the
# place /sbin/init chose instead: /tmp/svinit-UID (its own, 0700). A /run/svinit this user cannot write
# is another's (root's, left by an earlier boot of the same root): not this one's.
if [ -z "${SVINIT_RUN:-}" ]; then
  SVINIT_RUN=/run/svinit
  [ -w "$SVINIT_RUN" ] || [ ! -d "/tmp/svinit-$(id -u)" ] || SVINIT_RUN=/tmp/svinit-$(id -u)
fi
SVINIT_ETC=${SVINIT_ETC:-/etc/svinit}
# The shutdown service poweroff links into the scan directory (svinit/guest.py: SHUTDOWN_SERVICE).
SVINIT_SHUTDOWN_SERVICE=svinit-shutdown

# Say something, on stderr, prefixed; sv_warn and sv_error mark what needs attention. sv_error returns
# 1, so that `step || sv_error "..."` fails as the step did.
sv_say() { printf 'svinit: %s\n' "$*" >&2; }
sv_warn() { printf 'svinit: warning: %s\n' "$*" >&2; }
sv_error() { printf 'svinit: error: %s\n' "$*" >&2; return 1; }

# The scan directory svscan runs in (/service, or its copy in /run when /service is read-only):
# sv_get_scandir sets SV_SCANDIR (no subshell, which costs a fork), sv_scandir prints it.
sv_get_scandir() { { read -r SV_SCANDIR < "$SVINIT_RUN/scandir"; } 2>/dev/null || SV_SCANDIR=/service; }
sv_scandir() { sv_get_scandir && printf '%s\n' "$SV_SCANDIR"; }

# container or vm: decided once by stage 1, read by everybody else (sv_get_virt sets SV_VIRT).
sv_get_virt() { { read -r SV_VIRT < "$SVINIT_RUN/virt"; } 2>/dev/null || SV_VIRT=${SVINIT_VIRT:-vm}; }
sv_virt() { sv_get_virt && printf '%s\n' "$SV_VIRT"; }

# The mount on $1 (the last one: what is seen there) as SV_MOUNT_DEV, SV_MOUNT_TYPE and SV_MOUNT_OPTS;
# returns 1 when nothing is mounted there. (/proc/mounts, no external command: busybox-static has no
# mountpoint applet.)
# shellcheck disable=SC2034 # (the drop-ins read them)
sv_mount_of() {
  SV_MOUNT_DEV=
  SV_MOUNT_TYPE=
  SV_MOUNT_OPTS=
  [ -r /proc/mounts ] || return 1
  while read -r _sv_dev _sv_mp _sv_type _sv_opts _sv_rest; do
    [ "$_sv_mp" = "$1" ] || continue
    SV_MOUNT_DEV=$_sv_dev
    SV_MOUNT_TYPE=$_sv_type
    SV_MOUNT_OPTS=$_sv_opts
  done < /proc/mounts
  [ -n "$SV_MOUNT_TYPE" ]
}

# Is $1 a mount point?
sv_mounted() { sv_mount_of "$1"; }

# In a boot drop-in that does not apply here: says why (with SVINIT_VERBOSE), e.g.
#   [ "$virt" = vm ] || { sv_skip "a container's runtime mounts its filesystems"; return 0; }
sv_skip() {
  if [ -n "${SVINIT_VERBOSE:-}" ]; then sv_say "boot script ${SV_SCRIPT:-?}: skipped: $*"; fi
  return 0
}

# Sleeps a fraction of a second where sleep allows it (busybox and GNU do).
sv_nap() { sleep "${1:-0.02}" 2>/dev/null || sleep 1; }

# Milliseconds since boot, from /proc/uptime (no external command): sv_now sets SV_MS (no subshell, which
# costs a fork), sv_ms prints it.
# Without /proc (not mounted yet), 0: an arithmetic error would end the shell that runs this.
sv_now() {
  { read -r _sv_up _sv_rest < /proc/uptime; } 2>/dev/null || _sv_up=
  case $_sv_up in [0-9]*.[0-9]*) ;; *) SV_MS=0 && return 0 ;; esac
  _sv_s=${_sv_up%.*}
  _sv_f=${_sv_up#*.}
  SV_MS=$((_sv_s * 1000 + ${_sv_f#0} * 10))
}
sv_ms() { sv_now && printf '%s\n' "$SV_MS"; }

# Sets SV_WHICH to where `PATH=$2 command -v $1` finds the program $1, without a subshell; 1 when none.
sv_which() {
  _sv_ifs=$IFS
  IFS=:
  for _sv_dir in $2""; do
    IFS=$_sv_ifs
    SV_WHICH=${_sv_dir:-.}/$1
    [ -f "$SV_WHICH" ] && [ -x "$SV_WHICH" ] && return 0
  done
  IFS=$_sv_ifs
  SV_WHICH=
  return 1
}

# Is $1 a service directory svscan runs (a directory not starting with '.')?
sv_is_service() {
  case ${1##*/} in .*) return 1 ;; esac
  [ -d "$1" ]
}

# Is $1 a service of the scan directory that the shutdown stops (not the shutdown service itself)?
# Service names may hold any character: loop over "$scandir"/* with this, never over $(...) output.
sv_is_stoppable() {
  sv_is_service "$1" || return 1
  [ "${1##*/}" = "$SVINIT_SHUTDOWN_SERVICE" ] && return 1
  return 0
}

# Waits until every service that should run (no `down` file) and every logger is up, or was asked down
# since (a run that takes itself down, `exec svc -d .`, is up a moment only), or failed (its run ended,
# or cannot start: it would be up for moments only, as it is started again every second); at most $1 s.
# SV_NOT_UP: the directories that failed, or at the limit are not up, one a line.
# (svwait: one process that returns as soon as they are, not a loop of svstat)
sv_wait_up() {
  sv_get_scandir
  _sv_sd=$SV_SCANDIR
  set -- "${1:-30}"
  for _sv_d in "$_sv_sd"/*; do
    sv_is_stoppable "$_sv_d" || continue
    for _sv_x in "$_sv_d" "$_sv_d/log"; do
      [ -d "$_sv_x" ] && [ ! -e "$_sv_x/down" ] && set -- "$@" "$_sv_x"
    done
  done
  _sv_t=$1
  shift
  SV_NOT_UP=
  [ $# -eq 0 ] && return 0
  # shellcheck disable=SC2034 # (the front process reads it)
  SV_NOT_UP=$(svwait -u -s -t $((_sv_t * 1000)) "$@")
}

# sv_request ACTION [exec]: asks for a clean shutdown: ACTION is poweroff, reboot or halt; the first
# request wins. Under svinit's svscan (it answers on its control FIFO) the shutdown starts at once, as
# a child of svscan's tree that needs no slot among its services (a full svscan, 1000 services, still
# stops). Under djb's svscan, as the seed: the shutdown service is linked into the scan directory, and
# svscan runs it.
sv_request() {
  [ -d "$SVINIT_RUN" ] || mkdir -p "$SVINIT_RUN" || return 1
  if [ ! -e "$SVINIT_RUN/action" ]; then
    echo "$1" > "$SVINIT_RUN/action"
    # who asked, for the shutdown's first line (a shutdown nobody expected can be traced): this
    # program, its directory (a service's run: the service's) and its parent, read without a fork
    { read -r _sv_pc < "/proc/$PPID/comm"; } 2>/dev/null || _sv_pc='?'
    echo "${0##*/} (pid $$ in $PWD; its parent $PPID: $_sv_pc)" > "$SVINIT_RUN/asked-by"
  fi
  sv_get_scandir
  _sv_sd=$SV_SCANDIR
  # (svscan's hook, "exec": svinit's svscan runs it, djb's runs none; no svscanctl to ask)
  if [ "${2:-}" = exec ] || svscanctl -a "$_sv_sd" 2>/dev/null; then
    # the first request makes the mark (noclobber: O_EXCL, no fork), any later one finds it
    _sv_opts=$-
    set -C
    { : > "$SVINIT_RUN/shutdown.started"; } 2>/dev/null
    _sv_first=$?
    case $_sv_opts in *C*) ;; *) set +C ;; esac
    [ "$_sv_first" -eq 0 ] || return 0
    # no terminal's hangup or Ctrl-C stops it halfway; its messages go to the console. With "exec" as
    # $2 (svscan's SIGTERM hook, already a child of svscan in a session of its own) this very process
    # becomes the shutdown: one fork fewer.
    if [ "${2:-}" = exec ]; then
      trap '' HUP INT QUIT
      exec "$SVINIT_LIB/shutdown" </dev/null >/dev/null 2>&1
    fi
    (trap '' HUP INT QUIT && exec "$SVINIT_LIB/shutdown" </dev/null >/dev/null 2>&1) &
    return 0
  fi
  _sv_svc=$SVINIT_RUN/$SVINIT_SHUTDOWN_SERVICE
  if [ ! -e "$_sv_svc/run" ]; then
    mkdir -p "$_sv_svc"
    ln -sf "$SVINIT_LIB/svinit-shutdown.run" "$_sv_svc/run"
  fi
  # djb's svscan finds it at its next scan (5 s at most); before svscan runs (a request during boot),
  # its first scan does
  ln -s "$_sv_svc" "$_sv_sd/$SVINIT_SHUTDOWN_SERVICE" 2>/dev/null || return 0
}

# Stops the services given as arguments (dx, as svc -dx), waits until their supervise processes are
# gone, at most $SV_GRACE s, then kills what is left (kx) and waits at most 1 s more. Returns as soon as
# everything has stopped: svwait -d hears each supervise exit (no polling), and sends the letters itself
# (-c: one program a step, not svc and then svwait).
sv_stop() {
  [ $# -eq 0 ] && return 0
  _sv_left=$(svwait -d -c dx -t $((${SV_GRACE:-3} * 1000)) "$@") && return 0
  _sv_left=$(printf '%s' "$_sv_left" | tr '\n' ' ')
  sv_warn "still running after ${SV_GRACE:-3} s, killing: $_sv_left"
  _sv_left=$(svwait -d -c kx -t 1000 "$@") && return 0
  _sv_left=$(printf '%s' "$_sv_left" | tr '\n' ' ')
  sv_warn "still running after KILL: $_sv_left"
  return 1
}

# The runlevel NAME: services named in some $SVINIT_ETC/runlevels/*/ are up in the runlevels that name
# them and down in the others (a `down` file); services in no runlevel always run. With "now" as $2 the
# running services are switched too (svc -u / svc -d).
sv_runlevel() {
  _sv_lvl=$SVINIT_ETC/runlevels/$1
  [ -d "$_sv_lvl" ] || { sv_error "runlevel '$1' does not exist (no directory $_sv_lvl)"; return 1; }
  sv_get_scandir
  _sv_sd=$SV_SCANDIR
  _sv_seen=/  # each name as /NAME/: a name holds no '/'
  for _sv_e in "$SVINIT_ETC"/runlevels/*/*; do
    [ -e "$_sv_e" ] || [ -L "$_sv_e" ] || continue
    _sv_n=${_sv_e##*/}
    case $_sv_seen in *"/$_sv_n/"*) continue ;; esac
    _sv_seen="$_sv_seen$_sv_n/"
    if [ ! -d "$_sv_sd/$_sv_n" ]; then
      sv_warn "runlevels name $_sv_n, which is not a service in $_sv_sd"
      continue
    fi
    if [ -e "$_sv_lvl/$_sv_n" ] || [ -L "$_sv_lvl/$_sv_n" ]; then
      rm -f "$_sv_sd/$_sv_n/down"
      [ "${2:-}" = now ] && svc -u "$_sv_sd/$_sv_n"
    else
      true > "$_sv_sd/$_sv_n/down"
      [ "${2:-}" = now ] && svc -d "$_sv_sd/$_sv_n"
    fi
  done
  echo "$1" > "$SVINIT_RUN/runlevel"
}

# The console report lines of a shutdown, which the test harness parses (svinit/guest.py: STOPPED_LINE,
# DONE_LINE; tests/test_guest.py runs these and parses what they print).
# Service $1 and its logger went down at $2 and $3: the TAI64N of their supervise/status records, 24
# hex digits each (empty when unread).
sv_report_stopped() { sv_say "stopped: $1 @$2 log @$3"; }
# The shutdown $1 (poweroff, reboot, halt) is done, after $2 ms, with exit code $3.
sv_report_done() { sv_say "$1: done in $2 ms (exit code $3)"; }
