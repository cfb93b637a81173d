# TERM to whatever is left (kill -1 spares this process and process 1), KILL after SVINIT_KILL_GRACE s.
# No wait when nothing is left. The supervise wrappers svscan may still start exit by themselves, and
# kernel threads are no processes to wait for.
sv_leftovers() {
  for p in /proc/[0-9]*; do
    read -r stat < "$p/stat" 2>/dev/null || continue
    pid=${stat%% *}
    rest=${stat##*) }
    ppid=${rest#* }
    ppid=${ppid%% *}
    case $pid in 1 | 2 | "$$") continue ;; esac
    [ "$ppid" = 2 ] && continue
    read -r name < "$p/comm" 2>/dev/null && [ "$name" = supervise ] && continue
    return 0
  done
  return 1
}
if sv_leftovers; then
  kill -TERM -1 2>/dev/null
  kill -CONT -1 2>/dev/null
  end=$(( $(sv_ms) + SVINIT_KILL_GRACE * 1000 ))
  while sv_leftovers && [ "$(sv_ms)" -lt "$end" ]; do sv_nap 0.01; done
  sv_leftovers && kill -KILL -1 2>/dev/null
fi
