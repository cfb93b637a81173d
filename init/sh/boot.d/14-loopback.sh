# provides: loopback
# where: vm
# Brings up the loopback interface. A container's runtime does that.
[ "$virt" = vm ] || { sv_skip "a container's runtime brings up lo"; return 0; }
# up already (the disk layout's initramfs brought it up: a root without ip or ifconfig boots the same)?
flags=0
{ read -r flags < /sys/class/net/lo/flags; } 2>/dev/null
[ $((flags & 1)) = 1 ] && return 0
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
