# TERM to whatever is left (kill -1 spares this process and process 1), KILL after SVINIT_KILL_GRACE s.
# No wait when nothing is left.
if kill -0 -1 2>/dev/null; then
  kill -TERM -1 2>/dev/null
  kill -CONT -1 2>/dev/null
  end=$(( $(sv_ms) + SVINIT_KILL_GRACE * 1000 ))
  while kill -0 -1 2>/dev/null && [ "$(sv_ms)" -lt "$end" ]; do sv_nap 0.01; done
  kill -0 -1 2>/dev/null && kill -KILL -1 2>/dev/null
fi
