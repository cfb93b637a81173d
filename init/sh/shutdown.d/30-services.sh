# Stops every service (svc -dx), loggers and svscan's own logger excepted; KILL after SVINIT_GRACE s.
set --
for d in $(sv_services); do
  [ "${d##*/}" = svscan-log ] || set -- "$@" "$d"
done
SV_GRACE=$SVINIT_GRACE sv_stop "$@"
