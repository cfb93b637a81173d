"""`svinit check vm`, `svinit verify-disk` and the VM's boot under bad input, with real QEMU (TCG).

The clean verdicts each have an unclean twin that must fail: a power cut (QMP quit) in mid-run, and an
image whose final stage skips the unmount, are both reported unclean by `svinit check vm` and by
`svinit verify-disk`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from svinit.build import build_vm
from svinit.disks import make_data_disk
from svinit.qemu.machine import QemuMachine

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86_64"),
]

SVINIT = [shutil.which("svinit") or str(Path(__file__).parent.parent / ".venv/bin/svinit")]

# The final stage of a broken image: it syncs and powers off, but unmounts nothing.
NO_UNMOUNT = """# A broken final stage (for the tests): no unmount, no remount read-only.
read -r action < /run/svinit/action 2>/dev/null || action=poweroff
kill -KILL -1 2>/dev/null
sync
exec busybox poweroff -f
"""


def svinit(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(SVINIT + list(args), capture_output=True, text=True, timeout=timeout)


def overlay_vm(tmp_path: Path, files: dict[str, str]) -> Path:
    """The reference VM with *files* ({path in the root: text}) added over its root."""
    ov = tmp_path / "overlay"
    for path, text in files.items():
        p = ov / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        if text.startswith("#!"):
            p.chmod(0o755)
    return build_vm(tmp_path / "vm", overlay=ov)


@pytest.mark.parametrize("layout", ["initramfs", "disk"])
def test_check_vm_is_clean(layout):
    r = svinit("check", "vm", "--layout", layout, "--json", "--expect-log", "heartbeat")
    assert r.returncode == 0, r.stdout + r.stderr
    v = json.loads(r.stdout)
    checks = {c["name"]: c["detail"] for c in v["checks"]}
    assert v["clean"] and set(checks) == {"boot", "logs", "ended", "time", "disks", "order"}
    assert "steady for" in checks["boot"] and "logs hold lines while up" in checks["logs"], checks
    # every disk it attached was checked on the host: the data disk, and for the disk layout the root
    assert len(v["disks"]) == (2 if layout == "disk" else 1)
    assert all(d["ok"] and d["needs_recovery"] is False for d in v["disks"])


LOGGER = "#!/bin/sh\nexec multilog t ./main\n"
#: a service that dies half a second after each start, saying why (exec: acpid: not found, as seen)
CRASHY = "#!/bin/sh\nexec 2>&1\necho starting\nsleep 0.5\necho './run: exec: nothere: not found'\nexit 127\n"
#: a service that runs, but never writes a line to its logger
QUIET = "#!/bin/sh\nexec sleep 100000\n"


def test_a_crash_loop_and_a_silent_log_in_the_vm_fail_check_vm(tmp_path):
    """The unclean twins of the boot and logs checks, in a real VM: a service restarting every second
    fails the boot, named with the last lines of its own log; a service that must log (--expect-log)
    but whose logger received nothing fails the logs check."""
    out = overlay_vm(
        tmp_path,
        {
            "service/crashy/run": CRASHY,
            "service/crashy/log/run": LOGGER,
            "service/quiet/run": QUIET,
            "service/quiet/log/run": LOGGER,
        },
    )
    art = tmp_path / "art"
    argv = ["check", "vm", "--vm", str(out), "--json", "--artifacts", str(art)]
    r = svinit(*argv, "--expect-log", "quiet", "--expect-log", "crashy", "--boot-timeout", "20")
    assert r.returncode == 1, r.stdout + r.stderr
    failed = {c["name"]: c["detail"] for c in json.loads(r.stdout)["checks"] if not c["ok"]}
    assert set(failed) == {"boot", "logs"}, failed
    assert "crashy is restarting" in failed["boot"] or "crashy: down" in failed["boot"], failed
    assert "./run: exec: nothere: not found" in failed["boot"], failed
    assert failed["logs"].startswith("quiet/log/main is empty: quiet's logger received nothing"), failed
    assert (art / "console.log").exists()


def test_a_power_cut_is_unclean_for_check_vm(tmp_path):
    r = svinit("check", "vm", "--how", "crash", "--artifacts", str(tmp_path / "art"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAIL  ended" in r.stdout and "FAIL  disks" in r.stdout and "needs_recovery" in r.stdout
    assert (tmp_path / "art" / "console.log").exists() and (tmp_path / "art" / "events.json").exists()
    events = json.loads((tmp_path / "art" / "events.json").read_text())
    assert any(e.get("event") == "SHUTDOWN" and e["data"]["reason"] == "host-qmp-quit" for e in events)


def test_a_power_cut_leaves_a_disk_verify_disk_rejects(tmp_path):
    data = make_data_disk(tmp_path / "data.img")
    out = build_vm(tmp_path / "vm")
    with QemuMachine.from_build(out, disks=[data]) as m:
        m.start()
        m.wait_for_all_services(60)
        m.succeed("echo before the power cut > /data/file && sync")
        res = m.crash()
    assert res.reason == "host-qmp-quit" and not res.clean
    r = svinit("verify-disk", str(data))
    assert r.returncode == 1 and "needs_recovery" in r.stdout, r.stdout


def test_an_image_whose_shutdown_skips_the_unmount_is_caught(tmp_path):
    out = overlay_vm(tmp_path, {"usr/lib/svinit/final.sh": NO_UNMOUNT})
    r = svinit("check", "vm", "--vm", str(out), "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    v = json.loads(r.stdout)
    failed = {c["name"] for c in v["checks"] if not c["ok"]}
    assert failed == {"disks"}, v  # it powered off by itself, in time, in order: only the disk tells
    # and verify-disk, on a disk that image left
    data = make_data_disk(tmp_path / "data.img")
    with QemuMachine.from_build(out, disks=[data]) as m:
        m.start()
        m.wait_for_all_services(60)
        m.succeed("echo x > /data/file")
        res = m.shutdown("poweroff")
    assert res.reason == "guest-shutdown"
    assert svinit("verify-disk", str(data)).returncode == 1


def test_bad_fstab_and_failing_boot_script_are_named_and_boot_goes_on(tmp_path):
    out = overlay_vm(
        tmp_path,
        {
            "etc/fstab": "LABEL=svdata /data ext4 defaults,nofail 0 2\nthis line is broken\n"
            "/dev/vdz /mnt/missing ext4 defaults 0 0\n",
            "etc/svinit/boot.d/50-broken.sh": "# provides: broken\necho 'about to fail' >&2\nexit 4\n",
        },
    )
    with QemuMachine.from_build(out) as m:
        m.start()
        m.wait_for_all_services(60)
        console = m.console_text()
        assert "/etc/fstab line 2 is malformed: the mount point 'line' is not an absolute path" in console
        assert "/etc/fstab line 3: unable to mount /dev/vdz on /mnt/missing (ext4)" in console
        assert "boot script 30-localfs.sh failed with exit code 1; boot goes on" in console
        assert "boot script 50-broken.sh failed with exit code 4; boot goes on" in console
        assert m.shutdown("poweroff").clean


def test_emergency_shell_when_asked(tmp_path):
    out = overlay_vm(tmp_path, {"etc/svinit/boot.d/50-broken.sh": "# provides: broken\nexit 4\n"})
    cmdline = (out / "cmdline").read_text().strip() + " svinit.emergency"
    with QemuMachine.from_build(out, cmdline=cmdline) as m:
        m.start()
        m.wait_for_console_text("svinit.emergency: a shell on the console", 120)
        m.wait_for_console_text(r"[#$] ", 60)
        m.console.send("echo in-the-emergency-shell-$((40 + 2)); exit\r")
        m.wait_for_console_text("in-the-emergency-shell-42", 60)
        m.wait_for_all_services(60)  # leaving the shell goes on booting
        assert m.shutdown("poweroff").clean


def test_a_kernel_qemu_cannot_load_is_an_error_that_keeps_the_console(tmp_path):
    """QEMU refuses the kernel and exits at once: check vm cannot run (2), says QEMU's words and where
    the console and QMP's events were saved."""
    out = build_vm(tmp_path / "vm")
    (out / "vmlinuz").write_bytes(b"not a kernel\n" * 8192)
    art = tmp_path / "art"
    r = svinit("check", "vm", "--vm", str(out), "--artifacts", str(art))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "QEMU did not start" in r.stderr and f"the console and QMP's events: {art}" in r.stderr, r.stderr
    assert "qemu-system-x86_64" in (art / "console.log").read_text()
    assert json.loads((art / "events.json").read_text()) == []


def test_a_guest_that_powers_itself_off_fails_check_vm_naming_who_asked(tmp_path):
    """A service that runs poweroff: the guest ends before the harness asks. Every last word is a clean
    poweroff's, yet the verdict fails (a verdict, not a traceback) and names the service that asked."""
    out = overlay_vm(
        tmp_path, {"service/selfoff/run": "#!/bin/sh\nsleep 1\nexec /usr/lib/svinit/bin/poweroff\n"}
    )
    r = svinit("check", "vm", "--vm", str(out), "--json", "--artifacts", str(tmp_path / "art"))
    assert r.returncode == 1, r.stdout + r.stderr
    failed = {c["name"]: c["detail"] for c in json.loads(r.stdout)["checks"] if not c["ok"]}
    assert "ended by itself before the harness asked for poweroff" in failed["ended"], failed
    asked = r"asked by poweroff \(pid \d+ in /\S*selfoff; its parent \d+: supervise\)"
    assert re.search(asked, failed["ended"]), failed
    assert (tmp_path / "art" / "console.log").exists()
