# provides: modules
# where: vm
# Loads the kernel modules of $SVINIT_ETC/modules.load, which svinit's build wrote, in its order
# (lib/modules.sh says how).
[ "$virt" = vm ] || { sv_skip "a container uses its host's kernel modules"; return 0; }
# The disk layout's initramfs loaded them all before switching to the root (which then needs no modprobe
# and no modules of this kernel): it left $SVINIT_RUN/modules-loaded.
[ -e "$SVINIT_RUN/modules-loaded" ] && { sv_skip "the initramfs loaded the modules"; return 0; }
[ -r "$SVINIT_ETC/modules.load" ] || { sv_skip "no $SVINIT_ETC/modules.load: the kernel has its drivers built in"; return 0; }
. "$SVINIT_LIB/modules.sh"
sv_load_modules "$SVINIT_ETC/modules.load"
