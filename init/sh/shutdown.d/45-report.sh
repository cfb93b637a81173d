# With a test harness attached (svinit.harness): when each service and its logger went down, from their
# supervise/status records (TAI64N of the last change), so the harness can check the order.
if [ -n "${SVINIT_HARNESS:-}" ]; then
  for d in "$scandir"/*; do
    sv_is_stoppable "$d" || continue
    [ -d "$d/log" ] || continue
    s=$(od -An -tx1 -N12 "$d/supervise/status" 2>/dev/null | tr -d ' \n')
    l=$(od -An -tx1 -N12 "$d/log/supervise/status" 2>/dev/null | tr -d ' \n')
    sv_report_stopped "${d##*/}" "$s" "$l"
  done
fi
