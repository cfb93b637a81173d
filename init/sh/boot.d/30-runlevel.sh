# provides: runlevel
# needs: scandir
# The boot runlevel (SVINIT_RUNLEVEL in a container, svinit.runlevel= on a vm, else "default"): its
# services start, the other runlevels' services get a `down` file. Services in no runlevel always start.
[ -d "$SVINIT_ETC/runlevels" ] || return 0
if [ -d "$SVINIT_ETC/runlevels/$SVINIT_RUNLEVEL" ]; then
  sv_runlevel "$SVINIT_RUNLEVEL"
elif [ "$SVINIT_RUNLEVEL" != default ]; then
  sv_error "runlevel '$SVINIT_RUNLEVEL' does not exist ($SVINIT_ETC/runlevels/$SVINIT_RUNLEVEL): using default"
  [ -d "$SVINIT_ETC/runlevels/default" ] && sv_runlevel default
  return 1
fi
