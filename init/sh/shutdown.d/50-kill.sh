# TERM (and CONT) to whatever is left, KILL after SVINIT_KILL_GRACE s; no wait when nothing is left.
# svkillall spares this shutdown and its ancestors: svscan, and an init above svinit (docker run --init)
# when svscan is not process 1. Kernel threads are not processes to stop.
svkillall -g $((SVINIT_KILL_GRACE * 1000)) TERM
