"""Benchmark: a VM under TCG, svinit against busybox's own init on the same kernel and initramfs.

    python bench/vm.py [--rounds 3] [--json FILE]

Both boot the reference initramfs of `svinit build vm`; busybox init gets an /etc/inittab and rc
scripts appended as a second cpio archive (the kernel unpacks both), and boots with rdinit=. Both run
the same services (heartbeat, crond, syslogd), each piped into the same logger (multilog t), and do
the same boot steps (mounts, modules, hostname, loopback), plus a getty on the console.
Figures: kernel start to every service up (the last service's first line, stamped by its logger,
in guest uptime); `poweroff` typed on the console to QEMU's exit (wall time); whether it was clean.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pexpect  # noqa: E402

from svinit.benchmarks import host_facts  # noqa: E402
from svinit.build import build_vm  # noqa: E402
from svinit.build.cpio import CpioWriter  # noqa: E402
from svinit.tai64n import Tai64n  # noqa: E402

SERVICES = ("heartbeat", "crond", "syslogd")

# busybox init's configuration: the same work as svinit's boot, the same services and loggers.
INITTAB = """::sysinit:/etc/bb/rcS
::respawn:/etc/bb/service heartbeat
::respawn:/etc/bb/service crond
::respawn:/etc/bb/service syslogd
ttyS0::respawn:/sbin/getty -n -l /usr/lib/svinit/autologin 115200 ttyS0 vt100
::shutdown:/etc/bb/rcK
"""
RCS = """#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs shm /dev/shm
mount -t tmpfs run /run
while read -r how m p; do case $how in load|try) modprobe $m $p ;; esac; done < /etc/svinit/modules.load
hostname -F /etc/hostname; ip link set lo up
"""
SERVICE = """#!/bin/sh
# the service's run piped into its logger's run, as svscan would connect them (but with no supervision);
# svinit's programs (multilog) found as under svscan
export PATH=/usr/lib/svinit/bin:$PATH
cd /service/$1 && ./run | (cd log && exec ./run)
"""
RCK = """#!/bin/sh
umount -a -r 2>/dev/null
"""


def busybox_init_cpio() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "etc" / "bb").mkdir(parents=True)
        (t / "etc" / "inittab").write_text(INITTAB)
        for name, text in (("rcS", RCS), ("service", SERVICE), ("rcK", RCK)):
            (t / "etc" / "bb" / name).write_text(text)
            (t / "etc" / "bb" / name).chmod(0o755)
        (t / "usr" / "lib" / "bb").mkdir(parents=True)
        (t / "usr" / "lib" / "bb" / "init").symlink_to("/bin/busybox")
        buf = io.BytesIO()
        w = CpioWriter(buf)
        w.add_tree(t)
        w.close()
        return buf.getvalue()


def one_boot(vm: Path, initrd: Path, cmdline: str, poweroff: str) -> dict:
    argv = [
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-m",
        "256",
        "-nographic",
        "-no-reboot",
        "-kernel",
        str(vm / "vmlinuz"),
        "-initrd",
        str(initrd),
        "-append",
        cmdline,
        "-serial",
        "mon:stdio",
    ]
    child = pexpect.spawn(argv[0], argv[1:], encoding="utf-8", codec_errors="replace", timeout=120)
    try:
        child.expect([r"# ", r"\$ "])
        time.sleep(0.5)
        logs = " ".join(f"/service/{s}/log/main/current" for s in SERVICES)
        # the first line of each log (its stamp is when the service was up and logging), then the offset
        # between the guest's real time and its uptime, from a fresh multilog stamp
        # (asked again until every service has logged: under load the shell can come first)
        for _ in range(60):
            child.sendline(
                f"for f in {logs}; do head -n1 $f 2>/dev/null; done; "
                "echo x | /usr/lib/svinit/bin/multilog t e 2>&1; cat /proc/uptime; echo END-OF-$((6 * 7))"
            )
            child.expect("END-OF-42")  # the shell computes the marker: the echoed command line does not match
            out = child.before
            stamps = re.findall(r"^(@[0-9a-f]{24}) ", out, re.M)
            if len(stamps) > len(SERVICES):
                break
            time.sleep(0.5)
        *firsts, now = [Tai64n.from_label(s).unix for s in stamps]
        uptime = float(re.search(r"^(\d+\.\d+) ", out, re.M).group(1))
        up_at = max(firsts) - (now - uptime)
        t0 = time.monotonic()
        child.sendline(poweroff)
        child.expect(pexpect.EOF, timeout=120)
        child.close()
        return {
            "services_up_s": up_at,
            "poweroff_to_exit_s": time.monotonic() - t0,
            "power_down": "reboot: Power down" in (child.before or "") or child.exitstatus == 0,
            "services": len(firsts),
        }
    finally:
        if child.isalive():
            child.terminate(force=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="svinit-bench-vm-") as tmp:
        vm = build_vm(Path(tmp) / "vm")
        base = (vm / "cmdline").read_text().strip()
        bb_initrd = Path(tmp) / "busybox-init.img"
        bb_initrd.write_bytes((vm / "initramfs.img").read_bytes() + busybox_init_cpio())
        # the same initramfs has svinit's /sbin/poweroff: busybox init is asked with busybox's own
        setups = {
            "svinit": (vm / "initramfs.img", base, "poweroff"),
            "busybox init": (bb_initrd, base + " rdinit=/usr/lib/bb/init", "busybox poweroff"),
        }
        results: dict = {"host": host_facts(accel="tcg")}
        # one boot of each in turn, round after round: a shared host's load hits both alike
        boots: dict[str, list] = {name: [] for name in setups}
        for n in range(args.rounds):
            for name, (initrd, cmdline, poweroff) in setups.items():
                print(f"[{name}] boot {n + 1} of {args.rounds} ...", file=sys.stderr)
                boots[name].append(one_boot(vm, initrd, cmdline, poweroff))
        for name, runs in boots.items():
            results[name] = {
                "services_up_s_median": statistics.median(r["services_up_s"] for r in runs),
                "poweroff_to_exit_s_median": statistics.median(r["poweroff_to_exit_s"] for r in runs),
                "all_powered_down": all(r["power_down"] for r in runs),
                "runs": runs,
            }
    s, b = results["svinit"], results["busybox init"]
    print(f"\nTCG, {args.rounds} boots each, host load {results['host']['load'][0]:.2f}\n")
    print("| | svinit | busybox init | svinit/busybox |\n|---|---|---|---|")
    for label, key in (
        ("kernel start to every service up", "services_up_s_median"),
        ("poweroff to QEMU exit", "poweroff_to_exit_s_median"),
    ):
        print(f"| {label} | {s[key]:.2f} s | {b[key]:.2f} s | {s[key] / b[key]:.2f} |")
    print(f"| powered down every time | {s['all_powered_down']} | {b['all_powered_down']} | |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
