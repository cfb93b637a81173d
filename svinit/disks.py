"""Disk images on the host: an empty ext4 data disk to give a VM, and the proof that an ext2/3/4 image was
cleanly unmounted (read-only: ``dumpe2fs -h`` and ``e2fsck -fn``, no mount)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from svinit.errors import SvinitError


class DiskError(SvinitError):
    """A disk image could not be made; the message shows the command and its output."""


@dataclass(frozen=True)
class DiskReport:
    """Whether an ext2/3/4 image was cleanly unmounted: no needs_recovery, state clean, e2fsck -fn 0."""

    image: str
    ok: bool
    detail: str
    needs_recovery: bool | None = None
    state: str | None = None
    fsck_exit: int | None = None
    fsck_output: str = ""


def copy_disk(src: Path | str, dest: Path | str) -> Path:
    """Copies a disk image with its holes kept (a root.img is mostly unwritten: a plain copy would write
    every zero); returns *dest*."""
    if shutil.which("cp"):
        subprocess.run(["cp", "--sparse=always", str(src), str(dest)], check=True)
    else:
        shutil.copyfile(src, dest)
    return Path(dest)


def cow_overlay(base: Path | str, dest: Path | str) -> Path:
    """A qcow2 copy-on-write overlay *dest* of the raw image *base* (qemu-img create -b): the guest writes
    into the overlay, *base* stays as it was; returns *dest*.

    Raises:
        DiskError: qemu-img is missing or failed.
    """
    argv = [
        "qemu-img",
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        "raw",
        "-b",
        str(Path(base).resolve()),
        str(dest),
    ]
    try:
        done = subprocess.run(argv, capture_output=True, text=True)
    except FileNotFoundError:
        raise DiskError("qemu-img is missing: apt-get install qemu-utils") from None
    if done.returncode != 0:
        raise DiskError(f"qemu-img create of an overlay of {base} failed: {done.stderr.strip()}")
    return Path(dest)


def verify_disk(image: Path | str) -> DiskReport:
    """Checks an ext2/3/4 image file on the host, read-only: `dumpe2fs -h` (a journaled filesystem left
    mounted still says "clean", but keeps the feature needs_recovery; one without a journal says "not
    clean") and `e2fsck -fn` (it must find nothing).

    Raises:
        DiskError: there is no such image.
    """
    image = str(image)
    if not Path(image).exists():
        raise DiskError(f"{image}: no such disk image: give the path of an ext2/3/4 image file")
    dump = subprocess.run(["dumpe2fs", "-h", image], capture_output=True, text=True)
    if dump.returncode != 0:
        why = dump.stderr.strip().splitlines()[-1] if dump.stderr.strip() else f"exit {dump.returncode}"
        return DiskReport(image, False, f"not an ext2/3/4 filesystem (dumpe2fs: {why})")
    features, state = "", None
    for line in dump.stdout.splitlines():
        key, _, value = line.partition(":")
        if key == "Filesystem features":
            features = value
        elif key == "Filesystem state":
            state = value.strip()
    needs_recovery = "needs_recovery" in features.split()
    fsck = subprocess.run(["e2fsck", "-fn", image], capture_output=True, text=True)
    problems = []
    if needs_recovery:
        problems.append("needs_recovery is set: the journal was not closed (left mounted)")
    if state != "clean":
        problems.append(f"filesystem state {state!r}")
    if fsck.returncode != 0:
        problems.append(f"e2fsck -fn exit {fsck.returncode}")
    detail = (
        "; ".join(problems) if problems else "cleanly unmounted: no needs_recovery, state clean, e2fsck -fn 0"
    )
    return DiskReport(
        image,
        not problems,
        detail,
        needs_recovery,
        state,
        fsck.returncode,
        (fsck.stdout + fsck.stderr)[-4000:],
    )


def make_data_disk(path: Path, size_mb: int = 64, label: str = "svdata") -> Path:
    """An empty ext4 image labelled *label*: the reference VM mounts it at /data."""
    with open(path, "wb") as f:
        f.truncate(size_mb * 2**20)
    proc = subprocess.run(["mkfs.ext4", "-q", "-F", "-L", label, str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise DiskError(f"mkfs.ext4 of {path} failed: {proc.stderr.strip()} (is e2fsprogs installed?)")
    return path
