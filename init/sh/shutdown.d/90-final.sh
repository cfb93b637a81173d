# The final stage: svscan execs .svscan/finish CODE as process 1 (svscanctl -x), which ends the container
# with CODE, or on a vm unmounts and powers off. djb's svscan cannot be told so: then finish runs here.
{ read -r code < "$SVINIT_RUN/exitcode"; } 2>/dev/null || code=0
sv_now
sv_report_done "$action" "$((SV_MS - t0))" "$code"
if ! svscanctl -c "$code" -x "$scandir" 2>/dev/null; then
  sv_warn "svscan in $scandir takes no control (not svinit's svscan?): running the final stage here"
  exec "$SVINIT_LIB/svscan/finish" "$code"
fi
