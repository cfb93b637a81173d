# provides: run
# needs: root scandir
# where: vm
# On a vm booted by `svinit run --vm` (svinit.run on the kernel command line): the run's spec, a host
# folder shared read-only by virtio-9p with the tag svinit.run, holds cmd (`set -- CMD...`, sh-quoted),
# env/ (the -e variables, one file each), mounts (TAG ro|rw GUESTDIR a line: the -v folders) and, when
# the host's stdin is a terminal, tty (ROWS COLS). The variables become the envdir $SVINIT_RUN/env, as
# in a container; the folders are mounted (9p; ro: read-only); stage 1 starts vm-front, which runs CMD.
if [ "$virt" != vm ] || [ -z "${SVINIT_RUNCMD:-}" ]; then sv_skip "not a vm of svinit run --vm"; return 0; fi
umask 077
spec=$SVINIT_RUN/run.spec
rm -rf "$SVINIT_RUN/env" && mkdir -p "$spec" "$SVINIT_RUN/env" || return 1
mount -t 9p -o trans=virtio,version=9p2000.L,ro svinit.run "$spec" || {
  sv_error "unable to mount the run's spec (9p tag svinit.run): are the modules 9p and 9pnet_virtio loaded?"
  return 1
}
[ -r "$spec/cmd" ] && cat "$spec/cmd" > "$SVINIT_RUN/run.cmd"
[ -r "$spec/tty" ] && cat "$spec/tty" > "$SVINIT_RUN/run.tty"
for f in "$spec"/env/*; do
  [ -f "$f" ] && cat "$f" > "$SVINIT_RUN/env/${f##*/}"
done
umask 022
while read -r tag mode dir; do
  if ! { mkdir -p "$dir" && mount -t 9p -o "trans=virtio,version=9p2000.L,msize=262144,$mode" "$tag" "$dir"; }; then
    sv_error "unable to mount the host folder $tag on $dir"
  fi
done < "$spec/mounts"
umount "$spec"
