# The final stage on a vm, sourced by .svscan/finish as process 1: nothing is left to kill it. Kills
# what remains, saves a random seed, turns swap off, unmounts every local filesystem in the reverse
# order of mounting, remounts read-only what cannot be unmounted (the root), then svpower syncs and
# calls reboot(2). It needs mount and umount from the root; nothing else but the sh.
{ read -r action < "$SVINIT_RUN/action"; } 2>/dev/null || action=poweroff
kill -KILL -1 2>/dev/null
seed=/var/lib/svinit/random-seed
[ -d "${seed%/*}" ] && (umask 077 && dd if=/dev/urandom of="$seed" bs=512 count=1 2>/dev/null)
# swapoff only when a swap is on (/proc/swaps has more than its header): a process less otherwise
swaps=0
{ while read -r _; do swaps=$((swaps + 1)); done < /proc/swaps; } 2>/dev/null
[ "$swaps" -le 1 ] || swapoff -a 2>/dev/null
mounts=
while read -r _ mp type _; do
  case $type in proc | sysfs | devtmpfs | devpts | tmpfs | cgroup* | debugfs | securityfs | rootfs | ramfs) continue ;; esac
  [ "$mp" = / ] && continue
  mounts="$mp $mounts"
done < /proc/mounts
for mp in $mounts; do
  umount "$mp" 2>/dev/null || mount -o remount,ro "$mp" 2>/dev/null || sv_error "unable to unmount $mp"
done
mount -o remount,ro / 2>/dev/null
sv_say "$action"
case $action in reboot | halt) ;; *) action=poweroff ;; esac
# svpower: sync, then reboot(2) from a child; no busybox needed. Should the kernel refuse, process 1
# must still not exit: a shell on the console.
svpower "$action"
exec /bin/sh -i </dev/console >/dev/console 2>&1
