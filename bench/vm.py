"""Benchmark: a VM under TCG, svinit against busybox's own init on the same kernel and initramfs; and
`svinit run --vm -- true` against its floor and against docker run.

    python bench/vm.py [--rounds 3] [--json FILE] [--only boot|run]

Both boot the reference initramfs of `svinit build vm`; busybox init gets an /etc/inittab and rc
scripts appended as a second cpio archive (the kernel unpacks both), and boots with rdinit=. Both run
the same services (heartbeat, crond, syslogd), each piped into the same logger (multilog t), and do
the same boot steps (mounts, the /dev/fd and /dev/std* links, modules, hostname, loopback), plus a
getty on the console.
Figures: kernel start to every service up (the last service's first line, stamped by its logger,
in guest uptime); `poweroff` typed on the console to QEMU's exit (wall time); whether it was clean.

The run (issue 10): `svinit run --vm -- true` (svinit:alpine's disk layout, built and cached first),
wall time from the command to its exit, against its floor, the same QEMU and kernel booting an
initramfs whose /init (static busybox's sh) powers off at once (`poweroff -f`), and against `docker run
--rm svinit:alpine true`. Goal: `svinit run --vm` within 1.5x the floor.
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pexpect  # noqa: E402

from svinit.benchmarks import finish, host_facts  # noqa: E402
from svinit.build import build_container, build_vm, vm_dir  # noqa: E402
from svinit.build.cpio import CpioWriter  # noqa: E402
from svinit.fetch import busybox_static  # noqa: E402
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
ln -s /proc/self/fd /dev/fd; ln -s /proc/self/fd/0 /dev/stdin; ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
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
        else:  # (crond logs to /dev/stderr: without that link, busybox init's boot counted 2 of 3)
            raise RuntimeError(f"not every service of {', '.join(SERVICES)} logged a line:\n{out}")
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


def floor_initrd(dest: Path) -> Path:
    """An initramfs whose /init powers off at once: static busybox, and a two-line sh script."""
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "bin").mkdir()
        shutil.copy2(busybox_static(), t / "bin" / "busybox")
        (t / "init").write_text("#!/bin/busybox sh\n/bin/busybox poweroff -f\n")
        (t / "init").chmod(0o755)
        with open(dest, "wb") as f:
            w = CpioWriter(f)
            w.add_tree(t)
            w.close()
    return dest


def timed(argv: list[str]) -> tuple[float, int]:
    t0 = time.monotonic()
    code = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True).returncode
    return time.monotonic() - t0, code


def bench_run(rounds: int, results: dict) -> dict[str, bool]:
    """`svinit run --vm -- true`, its floor and `docker run --rm svinit:alpine true`, *rounds* each."""
    build_container()
    vm = build_vm(vm_dir("disk"), layout="disk")
    svinit = shutil.which("svinit") or str(ROOT / ".venv" / "bin" / "svinit")
    with tempfile.TemporaryDirectory(prefix="svinit-bench-floor-") as tmp:
        floor = floor_initrd(Path(tmp) / "floor.img")
        qemu = ["qemu-system-x86_64", "-machine", "pc,accel=tcg", "-m", "256M", "-nodefaults", "-display"]
        qemu += ["none", "-no-reboot", "-kernel", str(vm / "vmlinuz"), "-initrd", str(floor)]
        qemu += ["-append", "console=ttyS0 panic=-1 quiet", "-serial", "stdio"]
        peers = {
            "floor (QEMU, kernel, /init powers off)": qemu,
            "svinit run --vm -- true": [svinit, "run", "--vm", "--", "true"],
            "docker run --rm svinit:alpine true": ["docker", "run", "--rm", "svinit:alpine", "true"],
        }
        got: dict[str, list[float]] = {name: [] for name in peers}
        codes: dict[str, list[int]] = {name: [] for name in peers}
        for i in range(rounds):
            for name, argv in peers.items():  # interleaved: the host's load touches each alike
                s, code = timed(argv)
                got[name].append(s)
                codes[name].append(code)
                print(f"[run {i + 1}/{rounds}] {name}: {s:.2f} s (exit {code})", file=sys.stderr)
    med = {name: statistics.median(v) for name, v in got.items()}
    floor_s, run_s = med["floor (QEMU, kernel, /init powers off)"], med["svinit run --vm -- true"]
    print(f"\nTCG, {rounds} rounds, wall time from the command to its exit (median)\n")
    print("| | seconds | / floor |\n|---|---|---|")
    for name, s in med.items():
        print(f"| {name} | {s:.2f} | {s / floor_s:.2f} |")
    results["run"] = {"median_s": med, "runs_s": got, "exit_codes": codes}
    return {
        f"svinit run --vm -- true within 1.5x its floor ({run_s / floor_s:.2f}x)": run_s <= 1.5 * floor_s,
        "svinit run --vm -- true exits 0 every time": all(c == 0 for c in codes["svinit run --vm -- true"]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    ap.add_argument(
        "--only", choices=("boot", "run"), help="only svinit against busybox init, or only the run"
    )
    args = ap.parse_args()
    results: dict = {"host": host_facts(accel="tcg")}
    goals: dict[str, bool] = {}
    if args.only != "run":
        bench_boot(args.rounds, results)
    if args.only != "boot":
        goals.update(bench_run(args.rounds, results))
    return finish(results, goals, args.json)


def bench_boot(rounds: int, results: dict) -> None:
    """svinit against busybox init: kernel start to every service up, poweroff to QEMU's exit."""
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
        # one boot of each in turn, round after round: a shared host's load hits both alike
        boots: dict[str, list] = {name: [] for name in setups}
        for n in range(rounds):
            for name, (initrd, cmdline, poweroff) in setups.items():
                print(f"[{name}] boot {n + 1} of {rounds} ...", file=sys.stderr)
                boots[name].append(one_boot(vm, initrd, cmdline, poweroff))
        for name, runs in boots.items():
            results[name] = {
                "services_up_s_median": statistics.median(r["services_up_s"] for r in runs),
                "poweroff_to_exit_s_median": statistics.median(r["poweroff_to_exit_s"] for r in runs),
                "all_powered_down": all(r["power_down"] for r in runs),
                "runs": runs,
            }
    s, b = results["svinit"], results["busybox init"]
    print(f"\nTCG, {rounds} boots each, host load {results['host']['load'][0]:.2f}\n")
    print("| | svinit | busybox init | svinit/busybox |\n|---|---|---|---|")
    for label, key in (
        ("kernel start to every service up", "services_up_s_median"),
        ("poweroff to QEMU exit", "poweroff_to_exit_s_median"),
    ):
        print(f"| {label} | {s[key]:.2f} s | {b[key]:.2f} s | {s[key] / b[key]:.2f} |")
    print(f"| powered down every time | {s['all_powered_down']} | {b['all_powered_down']} | |")


if __name__ == "__main__":
    sys.exit(main())
