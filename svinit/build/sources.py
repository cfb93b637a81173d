"""What a build is made from, and when it must be made again: hashes of the source trees (a build is
skipped when its inputs did not change), and what every build step shares (its error, running a
command with its output kept)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import svinit
from svinit import resources
from svinit.errors import SvinitError


class BuildError(SvinitError):
    """A build step failed; the message carries the command and its output."""


#: What the container image is made from; its hash decides whether a build is needed.
CONTAINER_INPUTS = ("init/src", "init/sh", "init/Makefile", "images/alpine")
#: What the VM is made from (with the kernel, the layout and the overlay).
VM_INPUTS = (
    "init/src",
    "init/sh",
    "init/Makefile",
    "images/initramfs",
    "images/alpine/demo",
    "svinit/build/vm.py",
    "svinit/build/cpio.py",
    "svinit/build/modules.py",
    "svinit/build/disk.py",
)


def _inputs(rel: str) -> list[tuple[str, Path]]:
    """The files of the input *rel*, each with the name it is hashed under.

    ``svinit/...`` is the running package's code; ``images/...`` svinit's data (resources.ROOT). The
    sources under ``init/`` are only in a checkout: installed from a wheel, the init package they make
    is the archive the wheel carries, hashed instead (so the digests of the two routes differ, and a
    build made by one is made again by the other).
    """
    if rel.startswith("init/") and resources.installed():
        archive = resources.packaged_archive()
        return [(f"init:{archive.name}", archive)]
    top = Path(svinit.__file__).resolve().parent.parent if rel.startswith("svinit/") else resources.ROOT
    base = top / rel
    files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file() or p.is_symlink())
    if not files:
        resources.data(rel)  # says which file is missing, and the fix
    # not what make writes under init/build (svinit/build/ is code, and counts)
    return [(str(p.relative_to(top)), p) for p in files if p.relative_to(top).parts[:2] != ("init", "build")]


def source_hash(paths: tuple[str, ...] = CONTAINER_INPUTS) -> str:
    """A hash of the files under *paths* (see _inputs): names, modes and contents."""
    h = hashlib.sha256()
    seen = set()
    for rel in paths:
        for name, p in _inputs(rel):
            if name in seen:
                continue
            seen.add(name)
            h.update(name.encode() + b"\0")
            if p.is_symlink():
                h.update(b"->" + os.readlink(p).encode())
            else:
                h.update(oct(p.stat().st_mode & 0o777).encode() + p.read_bytes())
    return h.hexdigest()[:16]


def tree_hash(root: Path) -> str:
    """A hash of the tree *root*: names, modes, link targets and contents."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode() + b"\0" + oct(p.lstat().st_mode).encode())
        if p.is_symlink():
            h.update(os.readlink(p).encode())
        elif p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


def add_recipe_files(tree: Path, files: dict[str, str]) -> None:
    """Copies files of images/initramfs into *tree*: {destination in the tree: recipe file}."""
    recipe = resources.data("images/initramfs")
    for dest, src in files.items():
        p = tree / dest
        p.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(recipe / src, p)


def run(argv: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    """Runs *argv*; on failure raises a BuildError that shows the command and its output."""
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise BuildError(
            f"{what} failed: {' '.join(argv)} (exit {proc.returncode}):\n{proc.stderr}{proc.stdout}"
        )
    return proc
