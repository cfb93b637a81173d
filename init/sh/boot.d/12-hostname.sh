# provides: hostname
# where: vm
# Sets the host name from /etc/hostname (else "svinit"). A container gets its name from its runtime.
[ "$virt" = vm ] || { sv_skip "a container's runtime names it"; return 0; }
name=svinit
[ -r /etc/hostname ] && read -r name < /etc/hostname
# through /proc: no hostname command needed (a slim root may lack it)
echo "${name:-svinit}" > /proc/sys/kernel/hostname
