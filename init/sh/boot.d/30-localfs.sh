# provides: localfs
# where: vm
# needs: root modules
# Mounts the local filesystems of /etc/fstab (all but /, swap and noauto ones), each checked first when
# its pass number says so. A device that is missing is skipped when the line says nofail. A bad line is
# reported with its number and the other lines still mount.
[ "$virt" = vm ] || { sv_skip "a container's runtime mounts its filesystems"; return 0; }
[ -r /etc/fstab ] || return 0
# Is there a block device besides the root's disk (sysfs: no process)? With none, a LABEL= or UUID= line
# with nofail names a disk that is not attached, and findfs (a process that reads every device) is not run.
sv_mount_of /
root_dev=${SV_MOUNT_DEV##*/}
other_disks=0
for b in /sys/class/block/*; do
  [ -e "$b" ] || continue
  case ${b##*/} in loop* | ram* | zram*) continue ;; esac
  case $root_dev in "${b##*/}"*) continue ;; esac  # the root's partition, or its disk
  other_disks=$((other_disks + 1))
done
rc=0
n=0
while read -r spec file type opts freq pass rest; do
  n=$((n + 1))
  case $spec in '' | '#'*) continue ;; esac
  if [ -z "$type" ] || [ -n "$rest" ]; then
    sv_error "/etc/fstab line $n is malformed (want: device mountpoint type options dump pass): $spec $file $type $opts $freq $pass $rest"
    rc=1
    continue
  fi
  case $file in
    / | none | swap) continue ;;
    /*) ;;
    *)
      sv_error "/etc/fstab line $n is malformed: the mount point '$file' is not an absolute path"
      rc=1
      continue
      ;;
  esac
  case $type in swap | proc | sysfs | devtmpfs | devpts | tmpfs) [ "$type" = tmpfs ] || continue ;; esac
  case ,$opts, in *,noauto,*) continue ;; esac
  sv_mounted "$file" && continue
  dev=$spec
  case $spec in
    LABEL=* | UUID=*)
      nofail=
      case ,$opts, in *,nofail,*) nofail=1 ;; esac
      if { [ -n "$nofail" ] && [ "$other_disks" = 0 ]; } || ! dev=$(findfs "$spec" 2>/dev/null); then
        [ -z "$nofail" ] || { sv_say "$spec ($file) is not attached: skipped (nofail)"; continue; }
        sv_error "/etc/fstab line $n: no device with $spec for $file"
        rc=1
        continue
      fi
      ;;
  esac
  if [ "${pass:-0}" != 0 ] && [ -b "$dev" ]; then
    e2fsck -p "$dev"
    fsck_rc=$?
    if [ "$fsck_rc" -ge 4 ]; then
      sv_error "/etc/fstab line $n: e2fsck found errors on $dev it could not fix (exit $fsck_rc): not mounting $file"
      rc=1
      continue
    fi
  fi
  mkdir -p "$file" 2>/dev/null
  mopts=$(printf '%s' ",$opts," | sed 's/,nofail,/,/; s/^,//; s/,$//')
  if ! mount -t "$type" -o "${mopts:-defaults}" "$dev" "$file"; then
    sv_error "/etc/fstab line $n: unable to mount $spec on $file ($type)"
    rc=1
  fi
done < /etc/fstab
return $rc
