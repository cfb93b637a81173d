# With a CMD (a container's, or a vm's of svinit run --vm): stops CMD first (TERM, after the grace KILL)
# and waits for the front process to record its exit code. CMD runs while cmd.pid is there and the exit
# code not yet (front writes it when CMD ends; stage 1 removes both at a new boot).
exitcode_within() {  # MS: whether front records CMD's exit code within MS milliseconds
  sv_now
  _end=$((SV_MS + $1))
  while [ ! -e "$SVINIT_RUN/exitcode" ] && sv_now && [ "$SV_MS" -lt "$_end" ]; do sv_nap 0.01; done
  [ -e "$SVINIT_RUN/exitcode" ]
}
if [ -r "$SVINIT_RUN/cmd.pid" ] && [ ! -e "$SVINIT_RUN/exitcode" ]; then
  { read -r cmdpid < "$SVINIT_RUN/cmd.pid"; } 2>/dev/null && kill -TERM "$cmdpid" 2>/dev/null
  if ! exitcode_within $((SVINIT_GRACE * 1000)); then
    sv_warn "CMD still running after ${SVINIT_GRACE} s: killing it"
    kill -KILL "$cmdpid" 2>/dev/null
    exitcode_within 1000 || :
  fi
fi
