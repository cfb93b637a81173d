# provides: modules
# Loads the kernel modules of $SVINIT_ETC/modules.load, in its order. svinit's build wrote it (the one
# resolver: svinit/build/modules.py): each module after its dependencies and softdeps (ext4 needs
# crc32c), so nothing is resolved here. "load NAME [PARAMS]" must load; "try NAME" may not on this CPU
# (an alias's provider: crc32c_intel needs SSE4.2, crc32c_generic loads anywhere).
[ "$virt" = vm ] || { sv_skip "a container uses its host's kernel modules"; return 0; }
# The disk layout's initramfs loaded them all before switching to the root (which then needs no modprobe
# and no modules of this kernel): it left $SVINIT_RUN/modules-loaded.
[ -e "$SVINIT_RUN/modules-loaded" ] && { sv_skip "the initramfs loaded the modules"; return 0; }
[ -r "$SVINIT_ETC/modules.load" ] || { sv_skip "no $SVINIT_ETC/modules.load: the kernel has its drivers built in"; return 0; }
rc=0
while read -r how mod params; do
  case $how in
    load)
      # shellcheck disable=SC2086 # the parameters are words
      modprobe "$mod" $params || { sv_error "unable to load module $mod ($SVINIT_ETC/modules.load)"; rc=1; } ;;
    try) modprobe -q "$mod" 2>/dev/null || sv_skip "module $mod did not load (optional)" ;;
  esac
done < "$SVINIT_ETC/modules.load"
return $rc
