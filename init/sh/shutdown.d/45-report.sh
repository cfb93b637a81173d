# With a test harness attached (svinit.harness): when each service and its logger went down, from their
# supervise/status records (TAI64N of the last change), so the harness can check the order. One svstamp
# for all of them (an od and a tr for each cost about 60 ms a service on an emulated CPU).
if [ -n "${SVINIT_HARNESS:-}" ]; then
  set --
  for d in "$scandir"/*; do
    sv_is_stoppable "$d" && [ -d "$d/log" ] && set -- "$@" "$d" "$d/log"
  done
  if [ $# -gt 0 ]; then
    svstamp "$@" | while read -r d s && read -r _ l; do
      sv_report_stopped "${d##*/}" "${s#@}" "${l#@}"
    done
  fi
fi
