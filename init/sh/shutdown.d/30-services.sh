# Stops every service (svc -dx), loggers and svscan's own logger excepted; KILL after SVINIT_GRACE s.
set --
for d in "$scandir"/*; do
  sv_is_stoppable "$d" || continue
  [ "${d##*/}" = svscan-log ] || set -- "$@" "$d"
done
SV_GRACE=$SVINIT_GRACE sv_stop "$@"
# Then whatever else may still write into a logger's pipe, before any logger stops: a service's
# orphans (its supervise was killed, or it left a daemon behind). Spared: the loggers' sessions, the
# supervise processes, the front process, this shutdown and its ancestors (svscan, an init above it).
set -- -n supervise
{ read -r front < "$SVINIT_RUN/front.pid"; } 2>/dev/null && set -- "$@" -x "$front"
# (a logger is its session's leader under svinit's supervise; djb's starts no session: -x for that)
for pid in $(sv_up_pids "$scandir"/*/log "$scandir/svscan-log"); do set -- "$@" -s "$pid" -x "$pid"; done
svkillall -g $((SVINIT_GRACE * 1000)) "$@" TERM
