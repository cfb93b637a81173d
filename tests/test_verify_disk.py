"""verify_disk / `svinit verify-disk`: clean only for a cleanly unmounted ext2/3/4 image. Every unclean
case is a real one: a filesystem copied while mounted (as a power cut leaves it), a journal-less one left
mounted, one with a damaged inode table, and a file that is no filesystem at all."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from svinit.disks import verify_disk

pytestmark = pytest.mark.skipif(shutil.which("mkfs.ext4") is None, reason="needs e2fsprogs")


def mkfs(path: Path, fstype: str = "ext4", size_mb: int = 32) -> Path:
    with open(path, "wb") as f:
        f.truncate(size_mb * 2**20)
    subprocess.run([f"mkfs.{fstype}", "-q", "-F", str(path)], check=True)
    return path


def copy_while_mounted(image: Path, copy: Path, meanwhile=None) -> Path:
    """Mounts *image*, writes a file, and copies the image while it is still mounted: what a power cut
    would leave on the disk. The mount lives in a private mount namespace of its own: a namespace another
    process makes meanwhile (a parallel test's unshare) would copy a mount of the host's and keep the
    filesystem mounted, its journal unrecovered, after our umount. *meanwhile*() runs while it is mounted."""
    mnt = image.parent / "mnt"
    mnt.mkdir()
    script = (
        'mount -o loop "$1" "$3" || exit 1\n'
        'echo "written while mounted" > "$3/data" && sync && cp "$1" "$2"; rc=$?\n'
        "echo mounted; read -r _\n"
        'umount "$3" && exit $rc\n'
    )
    p = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", image, copy, mnt],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    with p:
        if p.stdout.readline() == "mounted\n" and meanwhile:
            meanwhile()
        p.stdin.write("\n")
    assert p.returncode == 0, f"mounting {image} and copying it failed: exit {p.returncode}"
    return copy


def svinit_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [shutil.which("svinit") or ".venv/bin/svinit", *args], capture_output=True, text=True
    )


def test_a_fresh_filesystem_is_clean(tmp_path):
    r = verify_disk(mkfs(tmp_path / "a.img"))
    assert r.ok and r.needs_recovery is False and r.state == "clean" and r.fsck_exit == 0, r


@pytest.mark.usefixtures("have_unshare")
def test_unmounted_after_use_is_clean(tmp_path):
    img = mkfs(tmp_path / "a.img")
    copy_while_mounted(img, tmp_path / "ignored.img")
    assert verify_disk(img).ok  # the original was unmounted properly after the copy


@pytest.mark.usefixtures("have_unshare")
def test_unmounted_after_use_is_clean_though_a_namespace_was_made_meanwhile(tmp_path):
    # (the clean-clone CI failed once in test_unmounted_after_use_is_clean: a parallel test's unshare
    # copied the mount, which held the filesystem mounted after our umount)
    img = mkfs(tmp_path / "a.img")
    others = []

    def other_namespace():  # made from the host's mounts while the image is mounted
        other = subprocess.Popen(["unshare", "--mount", "sleep", "30"])
        others.append(other)
        ours = os.readlink("/proc/self/ns/mnt")
        while os.readlink(f"/proc/{other.pid}/ns/mnt") == ours:
            time.sleep(0.01)

    try:
        copy_while_mounted(img, tmp_path / "ignored.img", other_namespace)
        assert verify_disk(img).ok
    finally:
        for other in others:
            other.kill()
            other.wait()


@pytest.mark.usefixtures("have_unshare")
def test_copied_while_mounted_needs_recovery(tmp_path):
    img = mkfs(tmp_path / "a.img")
    r = verify_disk(copy_while_mounted(img, tmp_path / "cut.img"))
    assert not r.ok and r.needs_recovery, r
    assert "needs_recovery" in r.detail
    # what verify-disk exists for: e2fsck -n alone says nothing is wrong, and the state says clean
    assert r.state == "clean"


@pytest.mark.usefixtures("have_unshare")
def test_journal_less_filesystem_left_mounted_is_not_clean(tmp_path):
    img = mkfs(tmp_path / "a.img", fstype="ext2")
    r = verify_disk(copy_while_mounted(img, tmp_path / "cut.img"))
    assert not r.ok and r.state != "clean", r


def test_damaged_filesystem_fails_e2fsck(tmp_path):
    img = mkfs(tmp_path / "a.img")
    out = subprocess.run(["dumpe2fs", str(img)], capture_output=True, text=True).stdout
    table = next(
        int(line.split("Inode table at ")[1].split("-")[0])
        for line in out.splitlines()
        if "Inode table at" in line
    )
    block = next(int(line.split(":")[1]) for line in out.splitlines() if line.startswith("Block size:"))
    with open(img, "r+b") as f:  # overwrite the first inode table block (the root directory's inode)
        f.seek(table * block)
        f.write(b"\xff" * block)
    r = verify_disk(img)
    assert not r.ok and r.fsck_exit not in (0, None), r


def test_not_a_filesystem(tmp_path):
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"\x00" * 65536)
    r = verify_disk(junk)
    assert not r.ok and "not an ext2/3/4 filesystem" in r.detail


def test_cli_exit_codes_and_json(tmp_path):
    clean = mkfs(tmp_path / "a.img")
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"\x00" * 65536)
    ok = svinit_cli("verify-disk", str(clean))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = svinit_cli("verify-disk", "--json", str(clean), str(junk))
    assert bad.returncode == 1
    data = json.loads(bad.stdout)
    assert [d["ok"] for d in data["disks"]] == [True, False]
    missing = svinit_cli("verify-disk", str(tmp_path / "nope.img"))
    assert missing.returncode == 2 and "no such disk image" in missing.stderr
