# provides: loopback
# Brings up the loopback interface. A container's runtime does that.
[ "$virt" = vm ] || { sv_skip "a container's runtime brings up lo"; return 0; }
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
