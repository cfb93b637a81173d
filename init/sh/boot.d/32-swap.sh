# provides: swap
# where: vm
# needs: localfs
# Turns on the swap of /etc/fstab.
[ "$virt" = vm ] || { sv_skip "a container has no swap of its own"; return 0; }
[ -r /etc/fstab ] || return 0
# (read here, not by grep: a process less at every boot)
while read -r spec _ type _; do
  case $spec in '' | '#'*) continue ;; esac
  [ "$type" = swap ] && { swapon -a; return; }
done < /etc/fstab
return 0
