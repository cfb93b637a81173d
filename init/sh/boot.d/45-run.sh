# provides: run
# needs: root scandir
# where: vm
# On a vm booted by `svinit run --vm` (svinit.run on the kernel command line): the run's spec, which the
# host appended to the initramfs as /.svinit-run (the disk layout's initramfs copied it into $SVINIT_RUN
# already), holds run.cmd (`set -- CMD...`, sh-quoted), env/ (the -e variables, one file each: the
# envdir, as in a container), mounts (TAG ro|rw GUESTDIR a line: the -v folders, mounted here by
# virtio-9p; ro: read-only) and, when the host's stdin is a terminal, run.tty (ROWS COLS). Stage 1 then
# starts vm-front, which runs CMD.
if [ "$virt" != vm ] || [ -z "${SVINIT_RUNCMD:-}" ]; then sv_skip "not a vm of svinit run --vm"; return 0; fi
if [ -d /.svinit-run ]; then
  umask 077
  cp -R /.svinit-run/. "$SVINIT_RUN/" || return 1
  umask 022
fi
[ -r "$SVINIT_RUN/mounts" ] || { sv_error "no spec of the run in the initramfs (/.svinit-run) nor in $SVINIT_RUN"; return 1; }
while read -r tag mode dir; do
  if ! { mkdir -p "$dir" && mount -t 9p -o "trans=virtio,version=9p2000.L,msize=262144,$mode" "$tag" "$dir"; }; then
    sv_error "unable to mount the host folder $tag on $dir (are the modules 9p and 9pnet_virtio loaded?)"
  fi
done < "$SVINIT_RUN/mounts"
