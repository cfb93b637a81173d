# provides: random-seed
# needs: localfs
# Feeds the seed saved at the last shutdown to the kernel's pool, then saves a fresh one at once, so a
# seed is never used twice.
[ "$virt" = vm ] || return 0
seed=/var/lib/svinit/random-seed
mkdir -p "${seed%/*}" 2>/dev/null || return 0
[ -f "$seed" ] && cat "$seed" > /dev/urandom
(umask 077 && dd if=/dev/urandom of="$seed" bs=512 count=1 2>/dev/null) || :
