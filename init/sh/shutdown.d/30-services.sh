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
# (-S: what is up in a logger's directory, and its session, as svkillall reads them: no svstat to parse)
set -- -n supervise
{ read -r front < "$SVINIT_RUN/front.pid"; } 2>/dev/null && set -- "$@" -x "$front"
for d in "$scandir"/*/log "$scandir/svscan-log"; do [ -d "$d" ] && set -- "$@" -S "$d"; done
svkillall -g $((SVINIT_GRACE * 1000)) "$@" TERM
