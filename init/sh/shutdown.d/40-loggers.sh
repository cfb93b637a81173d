# Stops every logger once its service is down: multilog writes what is left in its pipe, then exits.
# svscan's own logger goes last, after every other logger.
set --
for d in "$scandir"/*; do
  sv_is_stoppable "$d" && [ -d "$d/log" ] && set -- "$@" "$d/log"
done
SV_GRACE=$SVINIT_LOG_GRACE sv_stop "$@"
[ -d "$scandir/svscan-log" ] && SV_GRACE=$SVINIT_LOG_GRACE sv_stop "$scandir/svscan-log"
sv_now
sv_say "$action: services and loggers stopped in $((SV_MS - t0)) ms"
