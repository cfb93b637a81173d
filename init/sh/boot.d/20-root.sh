# provides: root
# where: vm
# needs: modules
# Checks the root filesystem (when /etc/fstab gives it a pass number, it is mounted read-only and no
# initramfs checked it already), then remounts it read-write, or read-only when /etc/fstab says ro (a
# run's initramfs mounted it read-write). A root in RAM (the initramfs) has nothing to do.
[ "$virt" = vm ] || { sv_skip "a container's root is its runtime's"; return 0; }
[ -r /etc/fstab ] || return 0
while read -r spec file _ opts _ pass _; do
  [ "$file" = / ] || continue
  state=rw
  sv_mount_of / && state=${SV_MOUNT_OPTS%%,*}
  # an initramfs that checked the root already says so in /run/svinit/root-checked
  dev=
  if [ "$state" = ro ] && [ "${pass:-0}" != 0 ] && [ ! -e "$SVINIT_RUN/root-checked" ]; then
    dev=$spec
    case $spec in LABEL=* | UUID=*) dev=$(findfs "$spec" 2>/dev/null) || dev= ;; esac
  fi
  if [ -n "$dev" ]; then
    e2fsck -p "$dev"
    fsck_rc=$?
    if [ "$fsck_rc" -ge 4 ]; then
      sv_error "e2fsck found errors on the root filesystem ($dev) it could not fix (exit $fsck_rc)"
      return 1
    fi
  fi
  case ,$opts, in
    *,ro,*) [ "$state" = ro ] || mount -o remount,ro / || { sv_error "unable to remount / read-only"; return 1; } ;;
    *) [ "$state" = rw ] || mount -o remount,rw / || { sv_error "unable to remount / read-write"; return 1; } ;;
  esac
  return 0
done < /etc/fstab
