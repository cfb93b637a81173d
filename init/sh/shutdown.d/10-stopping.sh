# The seed's shutdown design: svscan finds `supervise` first in /run/svinit/wrap, until now a link to
# the real one. It becomes, atomically (a rename), the stub that exits at once: from now on svscan cannot
# restart what is being stopped, and no supervise holds a file open. The flag tells the rest of svinit.
true > "$SVINIT_RUN/stopping"
ln -sfn "$SVINIT_LIB/stopped-supervise" "$SVINIT_RUN/wrap/supervise.new" &&
  mv -f "$SVINIT_RUN/wrap/supervise.new" "$SVINIT_RUN/wrap/supervise"
