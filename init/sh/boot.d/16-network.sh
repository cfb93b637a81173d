# provides: network
# needs: modules root loopback
# where: vm
# On a vm, with svinit.net=MAC,ADDR/PREFIX on the kernel command line (one per interface, given by a
# test harness), gives the interface of that MAC its address and brings it up; svinit.host=NAME,ADDR
# words add the peers' names to /etc/hosts. No word, nothing to do.
[ "$virt" = vm ] || { sv_skip "a container's runtime sets its network"; return 0; }
[ -n "${SVINIT_NETWORK:-}" ] || [ -n "${SVINIT_HOSTS:-}" ] || return 0
rc=0
for spec in ${SVINIT_NETWORK:-}; do
  mac=${spec%%,*} addr=${spec#*,}
  dev=
  tries=0
  # the driver (virtio_net, loaded just before) may name its interfaces a moment later
  while [ -z "$dev" ] && [ "$tries" -lt 50 ]; do
    for f in /sys/class/net/*/address; do
      [ -r "$f" ] || continue
      read -r a < "$f"
      [ "$a" = "$mac" ] && { dev=${f%/address}; dev=${dev##*/}; break; }
    done
    [ -n "$dev" ] || { sv_nap 0.1; tries=$((tries + 1)); }
  done
  if [ -z "$dev" ]; then
    sv_error "svinit.net: no interface has the MAC $mac (is the module virtio_net loaded?)"
    rc=1
    continue
  fi
  if ! { ip addr add "$addr" dev "$dev" && ip link set "$dev" up; } 2>/dev/null &&
    ! ifconfig "$dev" "$addr" up 2>/dev/null; then
    sv_error "svinit.net: cannot give $dev the address $addr (no ip, no ifconfig?)"
    rc=1
  fi
done
for host in ${SVINIT_HOSTS:-}; do
  line="${host#*,} ${host%%,*}"
  grep -qx "$line" /etc/hosts 2>/dev/null || echo "$line" >> /etc/hosts || rc=1
done
return "$rc"
