# With a CMD (a container's, or a vm's of svinit run --vm): stops CMD first (TERM, after the grace KILL)
# and waits for the front process to record its exit code. CMD runs while cmd.pid is there and the exit
# code not yet (front writes it when CMD ends; stage 1 removes both at a new boot).
if [ -r "$SVINIT_RUN/cmd.pid" ] && [ ! -e "$SVINIT_RUN/exitcode" ]; then
  { read -r cmdpid < "$SVINIT_RUN/cmd.pid"; } 2>/dev/null && kill -TERM "$cmdpid" 2>/dev/null
  sv_now
  end=$((SV_MS + SVINIT_GRACE * 1000))
  while [ ! -e "$SVINIT_RUN/exitcode" ] && sv_now && [ "$SV_MS" -lt "$end" ]; do sv_nap 0.01; done
  if [ ! -e "$SVINIT_RUN/exitcode" ]; then
    sv_warn "CMD still running after ${SVINIT_GRACE} s: killing it"
    kill -KILL "$cmdpid" 2>/dev/null
    sv_now
    end=$((SV_MS + 1000))
    while [ ! -e "$SVINIT_RUN/exitcode" ] && sv_now && [ "$SV_MS" -lt "$end" ]; do sv_nap 0.01; done
  fi
fi
