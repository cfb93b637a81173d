# provides: modules
# Loads the kernel modules listed in /etc/modules (a name and its parameters per line), each after the
# modules of its softdep "pre:" and before those of its "post:" (busybox modprobe ignores softdeps; ext4
# needs crc32c so).
[ "$virt" = vm ] || { sv_skip "a container uses its host's kernel modules"; return 0; }
[ -r /etc/modules ] || return 0
moddir=/lib/modules/$(uname -r)

# Loads NAME, or else the first module modules.alias gives for it that loads (crypto-crc32c: the
# CPU's crc32c_intel may not load, crc32c_generic then does).
sv_modprobe_any() {
  modprobe -q "$1" 2>/dev/null && return 0
  [ -r "$moddir/modules.alias" ] || return 1
  while read -r word alias provider; do
    [ "$word" = alias ] && [ "$alias" = "$1" ] && modprobe -q "$provider" 2>/dev/null && return 0
  done < "$moddir/modules.alias"
  return 1
}

# The softdep words of module $1 ("pre: A B post: C"): from depmod's modules.softdep, read without a
# process; else from the module itself (modinfo), when depmod wrote no such file.
sv_softdeps() {
  if [ -r "$moddir/modules.softdep" ]; then
    while read -r word name rest; do
      [ "$word" = softdep ] && [ "$name" = "$1" ] && printf '%s ' "$rest"
    done < "$moddir/modules.softdep"
  else
    modinfo -F softdep "$1" 2>/dev/null
  fi
}

rc=0
while read -r mod params; do
  case $mod in '' | '#'*) continue ;; esac
  pre=
  post=
  list=
  for word in $(sv_softdeps "$mod"); do
    case $word in
      pre:) list=pre ;;
      post:) list=post ;;
      *) if [ "$list" = pre ]; then pre="$pre $word"; elif [ "$list" = post ]; then post="$post $word"; fi ;;
    esac
  done
  for dep in $pre; do sv_modprobe_any "$dep" || sv_warn "module $mod: its softdep $dep did not load"; done
  # shellcheck disable=SC2086 # the parameters are words
  if ! modprobe "$mod" $params; then
    sv_error "unable to load module $mod (listed in /etc/modules)"
    rc=1
  fi
  for dep in $post; do sv_modprobe_any "$dep" || sv_warn "module $mod: its softdep $dep did not load"; done
done < /etc/modules
return $rc
