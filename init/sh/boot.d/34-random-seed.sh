# provides: random-seed
# where: vm
# needs: localfs
# Feeds the seed saved at the last shutdown to the kernel's pool, then saves a fresh one, so a seed is
# never used twice. Reading /dev/urandom this early can take a second (the kernel generates entropy
# first), so the fresh seed is written in the background: the boot does not wait for it.
[ "$virt" = vm ] || { sv_skip "a container shares its host's random pool"; return 0; }
seed=/var/lib/svinit/random-seed
[ -f "$seed" ] && cat "$seed" > /dev/urandom
# svinit run --vm: the root is a copy-on-write overlay thrown away after the run: a seed saved there is
# never read (and the three processes would compete with the services starting)
[ -z "${SVINIT_RUNCMD:-}" ] || return 0
# a root in memory (the initramfs is the root) is gone at the poweroff, and the seed with it: none is saved
sv_mount_of /
case $SV_MOUNT_TYPE in
  rootfs | ramfs | tmpfs) sv_skip "the root is in memory ($SV_MOUNT_TYPE): a seed saved there is lost" && return 0 ;;
esac
[ -d "${seed%/*}" ] || mkdir -p "${seed%/*}" 2>/dev/null || return 0
(umask 077 && dd if=/dev/urandom of="$seed.new" bs=512 count=1 2>/dev/null && mv -f "$seed.new" "$seed") &
