"""svinit's C programs are one static multi-call file (init/src/multicall.c): each program is a hard link
to it and runs as its name says; any other name is refused with the list of names. The archive carries
the file once, and both ways of installing it (make install, the wheel's archive) and the initramfs keep
the links."""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from svinit import ROOT
from svinit.build.cpio import write_initramfs
from svinit.build.init import install_archive

PROGRAMS = re.findall(r"^\s*X\((\w+)\)", (ROOT / "init/src/programs.h").read_text(), re.M)


def test_every_program_is_a_link_to_the_one_file(init_bin):
    assert {"svscan", "supervise", "svc", "svstat", "svok", "multilog", "init"} <= set(PROGRAMS)
    inodes = {(init_bin / p).stat().st_ino for p in PROGRAMS}
    assert inodes == {(init_bin / "multicall").stat().st_ino}


@pytest.mark.parametrize("name", ["multicall", "svscanx", "sv"])
def test_an_unknown_name_says_so_and_lists_the_programs(init_bin, tmp_path, name):
    link = tmp_path / name
    link.symlink_to(init_bin / "multicall")
    proc = subprocess.run([link, "x"], capture_output=True, text=True)
    assert proc.returncode == 100
    assert f'unknown program name "{name}"' in proc.stderr
    assert all(p in proc.stderr for p in PROGRAMS) and "usage:" in proc.stderr
    assert proc.stdout == ""


def test_each_name_runs_its_own_program(init_bin, tmp_path):
    """Run through a link of its name anywhere (PATH finds /usr/local/bin/svc, a symlink)."""
    (tmp_path / "svok").symlink_to(init_bin / "svok")
    proc = subprocess.run([tmp_path / "svok"], capture_output=True, text=True)
    assert (proc.returncode, proc.stderr) == (100, "svok: usage: svok dir\n")
    proc = subprocess.run(
        ["svc", "-Z", str(tmp_path)], capture_output=True, text=True, env={"PATH": str(init_bin)}
    )
    assert proc.returncode == 100 and proc.stderr.startswith("svc: illegal option -- Z"), proc.stderr


@pytest.fixture(scope="module")
def dist(init_bin) -> Path:
    out = subprocess.run(["make", "-s", "-C", str(ROOT / "init"), "dist"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return ROOT / "init" / out.stdout.strip().splitlines()[-1]


def test_the_archive_holds_the_programs_once(dist, tmp_path):
    with tarfile.open(dist) as t:
        bins = {
            m.name.rsplit("/", 1)[1]: m for m in t.getmembers() if m.name.startswith("usr/lib/svinit/bin/")
        }
    programs = [bins[p] for p in PROGRAMS]
    files = [m for m in programs if m.isfile()]
    assert len(files) == 1, [m.name for m in files]
    assert all(m.islnk() and m.linkname == files[0].name for m in programs if m is not files[0])
    assert all(m.mode == 0o755 for m in programs)
    # the wheel's way: extracted by Python, the links stay links
    install_archive(dist, tmp_path / "root")
    b = tmp_path / "root/usr/lib/svinit/bin"
    assert len({(b / p).stat().st_ino for p in PROGRAMS}) == 1
    assert os.path.samefile(tmp_path / "root/sbin/init", b / "svscan")


def test_the_initramfs_holds_a_hard_linked_file_once(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    data = os.urandom(50_000)
    (tree / "a").write_bytes(data)
    for n in ("b", "c"):
        os.link(tree / "a", tree / n)
    (tree / "d").write_bytes(data)
    img = write_initramfs(tree, tmp_path / "initramfs.img")
    assert 100_000 < img.stat().st_size < 110_000  # a+b+c once, d once
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["cpio", "-id", "--quiet", "-F", str(img)], cwd=out, check=True)
    assert all((out / n).read_bytes() == data for n in "abcd")
    assert os.path.samefile(out / "a", out / "c") and not os.path.samefile(out / "a", out / "d")
