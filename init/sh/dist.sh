#!/bin/sh
# dist.sh TREE ARCHIVE (make dist): the tree install-dist made, as a .tar.gz that `ADD` extracts over any
# image root. Owned by root, modes as installed, names sorted, no time stamps (the same sources give the
# same archive). Directory entries only for svinit's own directories: none for /, /usr, /etc, /bin, /sbin
# or /lib, which a base image has already (and merged-/usr bases as symlinks, which an entry would
# replace with a directory).
set -eu
tree=$1
out=$(cd "$(dirname "$2")" && pwd)/${2##*/}
list=$out.list
cd "$tree"
{
  find . -mindepth 1 ! -type d
  find ./usr/lib/svinit ./service ./etc/svinit -type d
} | sed 's|^\./||' | LC_ALL=C sort > "$list"
# written aside, then renamed: a reader (another make's caller: a pytest-xdist worker, a docker build
# copying it) sees the whole old archive or the whole new one, never half of one
tar --owner=0 --group=0 --numeric-owner --mtime=@0 --no-recursion -cf - -T "$list" | gzip -9n > "$out.new"
mv -f "$out.new" "$out"
rm -f "$list"
