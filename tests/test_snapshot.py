"""VMs resumed from a snapshot (svinit.qemu.snapshot), for real under TCG: a booted machine saved by QEMU's
migration to a file; machines resumed from it ready without a boot (every service up, the command
channel answering), their clocks set and their random pools apart, each writing copy-on-write disks of
its own, and powering off cleanly (no needs_recovery); a crashed one's disk is seen unclean; the
plugin's --svinit-vm-snapshot boots the session's first svinit_vm and resumes the others."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from svinit.disks import make_data_disk, verify_disk
from svinit.qemu.snapshot import SnapshotError
from tests.util import vm_file_options


@pytest.fixture
def saved(svinit_vm_factory, tmp_path):
    """(the booted source machine, its snapshot): the source has /data (an ext4 disk) with a file."""
    data = make_data_disk(tmp_path / "data.img", 32)
    src = svinit_vm_factory(disks=[data], name="source")
    src.succeed("echo saved > /data/file && sync")
    # the guest's clock far behind (in the guest): a resumed machine's must come from the host
    src.succeed("date -s @1000000000")
    snap = src.snapshot()
    yield src, snap
    snap.remove()


def raw_copy(disk: Path, dest: Path) -> Path:
    """The disk as the guest sees it (a qcow2 overlay flattened to raw), for verify_disk and debugfs."""
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(disk), str(dest)], check=True)
    return dest


def test_a_resumed_machine_is_ready_runs_commands_writes_its_disk_and_powers_off_cleanly(
    saved, svinit_vm_factory, tmp_path
):
    src, snap = saved
    assert snap.state.stat().st_size > 0 and len(snap.disks) == 1
    t0 = time.monotonic()
    m = svinit_vm_factory(snapshot=snap, name="resumed")
    ready = time.monotonic() - t0
    assert m.resumed_from is snap and m.boots == 1
    assert "starting svscan" not in m.console_text(), "it resumed: no boot on its console"
    assert m.disks[0].format == "qcow2" and m.disks[0].path.parent == m.state_dir
    assert m.succeed("cat /data/file") == "saved\n"
    # its clock is the host's, not the snapshot's
    assert abs(int(m.succeed("date +%s")) - time.time()) < 10 * m.timeout_multiplier
    m.succeed("echo resumed > /data/file && sync")
    r = m.shutdown("acpi")
    assert r.clean and r.reason == "guest-shutdown", r
    report = verify_disk(raw_copy(m.disks[0].path, tmp_path / "resumed.raw"))
    assert report.ok and report.needs_recovery is False, report.detail
    out = subprocess.run(["debugfs", "-R", "cat /file", str(tmp_path / "resumed.raw")], capture_output=True)
    assert out.stdout == b"resumed\n"
    # the source runs on, its disk its own
    assert src.succeed("cat /data/file") == "saved\n"
    print(f"resumed to ready in {ready:.2f} s")


def test_two_machines_from_one_snapshot_do_not_see_each_others_writes_nor_share_randomness(
    saved, svinit_vm_factory, tmp_path
):
    _, snap = saved
    a = svinit_vm_factory(snapshot=snap, name="a")
    b = svinit_vm_factory(snapshot=snap, name="b")
    a.succeed("echo a > /data/mine && echo a > /tmp/mine && sync")
    b.fail("test -e /data/mine", "test -e /tmp/mine")
    b.succeed("echo b > /data/file && sync")
    assert a.succeed("cat /data/file") == "saved\n"
    # the same saved random state, yet different bytes: each QEMU's new vmgenid made Linux reseed
    # (without the device, two resumed copies read the same bytes here)
    rand = "head -c 32 /dev/urandom | od -An -tx1"
    assert a.succeed(rand) != b.succeed(rand)
    # a crash leaves the journal open: the same check sees it (the clean verdict above can fail)
    b.crash()
    report = verify_disk(raw_copy(b.disks[0].path, tmp_path / "b.raw"))
    assert not report.ok and report.needs_recovery, report.detail


def test_a_machine_on_a_network_is_not_saved(svinit_vm_factory, svinit_network):
    m = svinit_vm_factory(network=svinit_network, name="netted")
    with pytest.raises(SnapshotError, match="is on a private network"):
        m.snapshot()


PLUGIN_TEST = """
def test_first(svinit_vm):
    assert svinit_vm.resumed_from is None
    svinit_vm.succeed("echo first > /tmp/first")

def test_second(svinit_vm):
    assert svinit_vm.resumed_from is not None
    assert "starting svscan" not in svinit_vm.console_text()
    svinit_vm.succeed("test ! -e /tmp/first")  # saved once booted, before the first test wrote it
"""


def test_the_plugins_snapshot_option_boots_the_first_vm_and_resumes_the_others(
    pytester, svinit_vm_files, monkeypatch
):
    from svinit.fetch import cache_dir

    monkeypatch.setenv("SVINIT_CACHE", str(cache_dir()))
    pytester.makepyfile(PLUGIN_TEST)
    args = vm_file_options(svinit_vm_files, pytester.path)
    result = pytester.runpytest_subprocess(*args, "--svinit-vm-snapshot")
    result.assert_outcomes(passed=2)
    result = pytester.runpytest_subprocess(*args)  # without it, both boot
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*def test_second*", "*assert None is not None*"])
