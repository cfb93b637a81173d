# provides: swap
# where: vm
# needs: localfs
# Turns on the swap of /etc/fstab.
[ "$virt" = vm ] || { sv_skip "a container has no swap of its own"; return 0; }
grep -qs '^[^#]*[[:space:]]swap[[:space:]]' /etc/fstab || return 0
swapon -a
