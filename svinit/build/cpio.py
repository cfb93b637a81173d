"""A newc (SVR4) cpio writer for initramfs images: written by svinit, so building needs no root.

Entries come from a directory tree; owners are forced to root (uid 0, gid 0), as the kernel unpacks
them, and device nodes can be added without having them on disk (the kernel needs /dev/console early).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO


class CpioWriter:
    """Writes a newc archive: add files, then close() writes the trailer."""

    def __init__(self, out: BinaryIO):
        self.out = out
        self.ino = 1
        self.links: dict[tuple[int, int], int] = {}  # (st_dev, st_ino) of a hard-linked file: its ino here

    def _entry(
        self,
        name: str,
        mode: int,
        data: bytes = b"",
        rdev: tuple[int, int] = (0, 0),
        mtime: int = 0,
        nlink: int = 1,
        ino: int | None = None,
    ) -> None:
        encoded = name.encode() + b"\0"
        if ino is None:
            ino, self.ino = self.ino, self.ino + 1
        fields = [ino, mode, 0, 0, nlink, mtime, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0]
        header = b"070701" + b"".join(b"%08x" % f for f in fields)
        self.out.write(header + encoded)
        self.out.write(b"\0" * ((4 - (len(header) + len(encoded)) % 4) % 4))
        self.out.write(data)
        self.out.write(b"\0" * ((4 - len(data) % 4) % 4))

    def add_tree(self, root: Path) -> None:
        """Adds everything under *root*, parents before children, names relative to it."""
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                path = Path(dirpath) / name
                self.add_path(str(path.relative_to(root)), path)

    def add_path(self, name: str, path: Path) -> None:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            self._entry(name, st.st_mode, os.readlink(path).encode(), mtime=int(st.st_mtime))
        elif stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            # hard links (svinit's programs are links to one file): the data once, with the first name;
            # the kernel links each later entry of the same ino (and nlink >= 2) to it
            key = (st.st_dev, st.st_ino)
            first = key not in self.links
            if first:
                self.links[key], self.ino = self.ino, self.ino + 1
            data = path.read_bytes() if first else b""
            self._entry(
                name, st.st_mode, data, mtime=int(st.st_mtime), nlink=st.st_nlink, ino=self.links[key]
            )
        elif stat.S_ISREG(st.st_mode):
            self._entry(name, st.st_mode, path.read_bytes(), mtime=int(st.st_mtime))
        elif stat.S_ISDIR(st.st_mode):
            self._entry(name, st.st_mode, mtime=int(st.st_mtime), nlink=2)
        elif stat.S_ISFIFO(st.st_mode):
            self._entry(name, st.st_mode, mtime=int(st.st_mtime))
        else:
            raise ValueError(f"{path}: unsupported file type in an initramfs tree (mode {oct(st.st_mode)})")

    def add_device(self, name: str, kind: str, major: int, minor: int, perm: int = 0o600) -> None:
        """Adds a character ('c') or block ('b') device node."""
        mode = (stat.S_IFCHR if kind == "c" else stat.S_IFBLK) | perm
        self._entry(name, mode, rdev=(major, minor))

    def close(self) -> None:
        self._entry("TRAILER!!!", 0)
        pad = (512 - self.out.tell() % 512) % 512 if hasattr(self.out, "tell") else 0
        self.out.write(b"\0" * pad)


def write_initramfs(tree: Path, dest: Path) -> Path:
    """Writes *tree* as a newc cpio at *dest*, with /dev/console and /dev/null nodes added."""
    with open(dest, "wb") as f:
        w = CpioWriter(f)
        w.add_tree(tree)
        if not (tree / "dev").exists():
            w._entry("dev", stat.S_IFDIR | 0o755, nlink=2)
        w.add_device("dev/console", "c", 5, 1)
        w.add_device("dev/null", "c", 1, 3, 0o666)
        w.close()
    return dest
