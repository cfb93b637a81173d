# Raises the flag that makes the supervise wrapper exit at once: from now on svscan cannot restart what
# is being stopped.
true > "$SVINIT_RUN/stopping"
