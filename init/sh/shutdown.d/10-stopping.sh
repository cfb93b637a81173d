# From now on nothing restarts what is being stopped. svinit's svscan is told so (svscanctl -f: it starts
# no supervise any more, not even the one that exits at once: no fork while the services stop). djb's
# cannot be told: as the seed, `supervise` in /run/svinit/wrap, which svscan finds first, until now a
# link to the real one, becomes, atomically (a rename), the stub that exits at once, so no supervise
# holds a file open. The flag tells the rest of svinit.
true > "$SVINIT_RUN/stopping"
svscanctl -f "$scandir" 2>/dev/null || {
  ln -sfn "$SVINIT_LIB/stopped-supervise" "$SVINIT_RUN/wrap/supervise.new" &&
    mv -f "$SVINIT_RUN/wrap/supervise.new" "$SVINIT_RUN/wrap/supervise"
}
