"""An ext4 image's files without mounting it: ``debugfs rdump`` extracts the tree, and the filesystem's
own inodes (a manifest: mode, owner, inode of each path) restore what rdump loses (setuid bits, owners,
hard links, FIFOs); :func:`rootfs_tar` writes the tree as a tar with the manifest's owners."""

from __future__ import annotations

import logging
import os
import re
import stat
import tarfile
import tempfile
from pathlib import Path

from svinit.fetch.cache import FetchError, run

log = logging.getLogger(__name__)

Entry = tuple[int, int, int, int]


def ext4_manifest(debugfs: str, image: Path) -> dict[str, Entry]:
    """Lists every inode of an ext4 image with ``debugfs ls -p``, walking directories by inode number.

    Returns:
        A dict from path relative to the root (``"bin/sh"``) to (mode, uid, gid, inode).
    """
    manifest: dict[str, Entry] = {}
    level = {2: ""}  # inode -> relative path; inode 2 is the root directory
    while level:
        commands = "".join(f"ls -p <{ino}>\n" for ino in level)
        with tempfile.NamedTemporaryFile("w", suffix=".debugfs") as f:
            f.write(commands)
            f.flush()
            out = run([debugfs, "-f", f.name, str(image)], "debugfs ls -p").stdout
        nxt: dict[int, str] = {}
        parent = None
        for line in out.splitlines():
            head = re.match(r"debugfs: ls -p <(\d+)>$", line)
            if head:
                parent = level[int(head.group(1))]
                continue
            parts = line.strip()[1:-1].split("/") if line.startswith("/") else []
            if parent is None or len(parts) != 6 or parts[0] == "0" or parts[4] in ("", ".", ".."):
                continue
            ino, mode, uid, gid, name = (
                int(parts[0]),
                int(parts[1], 8),
                int(parts[2]),
                int(parts[3]),
                parts[4],
            )
            rel = f"{parent}/{name}" if parent else name
            manifest[rel] = (mode, uid, gid, ino)
            if stat.S_ISDIR(mode):
                nxt[ino] = rel
        level = nxt
    return manifest


def fix_tree(tree: Path, manifest: dict[str, Entry]) -> None:
    """Makes *tree* (from ``debugfs rdump``) match *manifest*: modes, owners, hard links, FIFOs.

    ``rdump`` keeps only the nine rwx bits (setuid, setgid and sticky are lost: ``/usr/bin/sudo``
    04755 comes out 0755, ``/tmp`` 01777 comes out 0777), splits hard links into copies, and skips
    device nodes, FIFOs and sockets. Owners it sets only when run as root.
    """
    as_root = os.geteuid() == 0
    first_of_inode: dict[int, str] = {}
    skipped = []
    # Deepest first, so that a non-root run can still write into a directory before it turns 0555.
    for rel in sorted(manifest, key=lambda r: (-r.count("/"), r)):
        mode, uid, gid, ino = manifest[rel]
        path = tree / rel
        if stat.S_ISREG(mode):
            if ino in first_of_inode:
                path.unlink()
                os.link(tree / first_of_inode[ino], path)
                continue
            first_of_inode[ino] = rel
        elif stat.S_ISFIFO(mode):
            os.mkfifo(path)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
            skipped.append(rel)
            continue
        if as_root:
            os.lchown(path, uid, gid)  # before chmod: chown clears setuid and setgid
        if not stat.S_ISLNK(mode):
            os.chmod(path, stat.S_IMODE(mode))
    if skipped:
        log.warning(
            "left out %d device nodes or sockets (a container base has none): %s",
            len(skipped),
            ", ".join(skipped[:10]),
        )
    if not as_root:
        log.warning(
            "not root: %s is owned by uid %d; the image tar takes owners from the manifest",
            tree,
            os.geteuid(),
        )


def check_tree(tree: Path, manifest: dict[str, Entry]) -> None:
    """Raises FetchError unless every manifest entry exists in *tree* with its type, mode and owner."""
    as_root = os.geteuid() == 0
    wrong = []
    for rel, (mode, uid, gid, _ino) in manifest.items():
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
            continue
        try:
            st = os.lstat(tree / rel)
        except FileNotFoundError:
            wrong.append(f"{rel}: missing")
            continue
        if stat.S_IFMT(st.st_mode) != stat.S_IFMT(mode) or (
            not stat.S_ISLNK(mode) and stat.S_IMODE(st.st_mode) != stat.S_IMODE(mode)
        ):
            wrong.append(f"{rel}: mode {st.st_mode:o}, want {mode:o}")
        elif as_root and (st.st_uid, st.st_gid) != (uid, gid):
            wrong.append(f"{rel}: owner {st.st_uid}:{st.st_gid}, want {uid}:{gid}")
    if wrong:
        raise FetchError(f"the extracted tree {tree} differs from its ext4 image: " + "; ".join(wrong[:10]))


def rootfs_tar(tree: Path, dest: Path, manifest: dict[str, Entry] | None = None) -> Path:
    """Write *tree* as a tar for ``docker import``, with numeric owners and no user or group names.

    Args:
        tree: a root filesystem directory.
        dest: the tar file to write.
        manifest: if given, the owners and modes to record, by relative path (so that a tree extracted
            without root still gives a root-owned image); otherwise those of the files on disk.

    Returns:
        *dest*.
    """

    def fix(info: tarfile.TarInfo) -> tarfile.TarInfo:
        rel = info.name.removeprefix("./")
        if manifest and rel in manifest:
            mode, info.uid, info.gid, _ino = manifest[rel]
            info.mode = stat.S_IMODE(mode)
        info.uname = info.gname = ""
        return info

    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for child in sorted(os.listdir(tree)):
            tar.add(tree / child, arcname=child, recursive=True, filter=fix)
    return dest
