# provides: modules
# where: vm
# Loads the kernel modules of $SVINIT_ETC/modules.load, in its order. svinit's build wrote it (the one
# resolver: svinit/build/modules.py): each module after its dependencies and softdeps (ext4 needs
# crc32c), so nothing is resolved here. "load NAME [PARAMS]" must load; "try NAME" may not on this CPU
# (an alias's provider: crc32c_intel needs SSE4.2, crc32c_generic loads anywhere).
[ "$virt" = vm ] || { sv_skip "a container uses its host's kernel modules"; return 0; }
# The disk layout's initramfs loaded them all before switching to the root (which then needs no modprobe
# and no modules of this kernel): it left $SVINIT_RUN/modules-loaded.
[ -e "$SVINIT_RUN/modules-loaded" ] && { sv_skip "the initramfs loaded the modules"; return 0; }
[ -r "$SVINIT_ETC/modules.load" ] || { sv_skip "no $SVINIT_ETC/modules.load: the kernel has its drivers built in"; return 0; }
# Consecutive lines of one kind without parameters load with one `modprobe -a` (a fork and exec each
# cost tens of ms on an emulated CPU); when that fails, one by one, to say which.
rc=0
batch=
kind=
flush() {
  [ -n "$batch" ] || return 0
  if [ "$kind" = load ]; then
    # shellcheck disable=SC2086 # the names are words
    modprobe -a $batch 2>/dev/null || for m in $batch; do
      modprobe "$m" || { sv_error "unable to load module $m ($SVINIT_ETC/modules.load)"; rc=1; }
    done
  else
    # shellcheck disable=SC2086
    modprobe -qa $batch 2>/dev/null || for m in $batch; do
      modprobe -q "$m" 2>/dev/null || sv_skip "module $m did not load (optional)"
    done
  fi
  batch=
}
while read -r how mod params; do
  case $how in load | try) ;; *) continue ;; esac
  [ "$how" = "$kind" ] || flush
  kind=$how
  if [ -z "$params" ]; then batch="$batch $mod"; continue; fi
  flush
  # shellcheck disable=SC2086 # the parameters are words
  if [ "$how" = load ]; then
    modprobe "$mod" $params || { sv_error "unable to load module $mod ($SVINIT_ETC/modules.load)"; rc=1; }
  else
    modprobe -q "$mod" $params 2>/dev/null || sv_skip "module $mod did not load (optional)"
  fi
done < "$SVINIT_ETC/modules.load"
flush
return $rc
