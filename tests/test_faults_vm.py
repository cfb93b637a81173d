"""The fault campaign of issue 7 on a VM (real QEMU, TCG here): one machine with an ext4 data disk, booted
again after each end, ended in turn by poweroff, the ACPI power button, Ctrl-Alt-Del, reboot and halt,
each of which must leave the disk cleanly unmounted (no needs_recovery, e2fsck -fn 0), then by a crash
(a power cut), which must be reported unclean and leave the journal to replay. bench/faults.py does the
20 boots."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from svinit.disks import make_data_disk, verify_disk

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86_64"),
]

WAYS = ["poweroff", "acpi", "ctrl-alt-del", "reboot", "halt"]


def test_every_way_of_ending_leaves_the_data_disk_clean_and_a_crash_is_unclean(svinit_vm_factory, tmp_path):
    data = make_data_disk(tmp_path / "data.img")
    m = svinit_vm_factory(disks=[data])
    seen = {}
    for how in WAYS + ["crash"]:
        if seen:  # the previous way ended QEMU: boot again on the same disk
            m.boot_again()
            m.wait_for_all_services(60)
        m.succeed(f"grep -q ' /data ' /proc/mounts && echo {how} > /data/{how} && sync")
        r = m.crash() if how == "crash" else m.shutdown(how)
        disk = verify_disk(data)
        seen[how] = (r.clean, r.reason, disk.ok, disk.needs_recovery, disk.fsck_exit)
    clean = {how: s for how, s in seen.items() if how != "crash" and not (s[0] and s[2])}
    assert clean == {}, f"(clean, reason, disk ok, needs_recovery, e2fsck exit) per way: {seen}"
    crash_clean, _, disk_ok, needs_recovery, _ = seen["crash"]
    assert (crash_clean, disk_ok, needs_recovery) == (False, False, True), seen["crash"]
    # what each boot wrote is there
    listing = subprocess.run(["debugfs", "-R", "ls -l /", str(data)], capture_output=True, text=True).stdout
    assert all(how in listing for how in WAYS), listing
