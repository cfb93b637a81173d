"""Benchmark: the harness itself (issue 12): a VM cold boot to ready against a resume from a snapshot to
ready, same run, same machine, under TCG.

    python bench/harness.py [--rounds 3] [--json FILE]

Ready: every service and logger up (svstat) and the command channel answering, as the fixtures return
a machine. Cold: QEMU started, the kernel boots the reference initramfs VM (`svinit build vm`). Resume:
QEMU started with the snapshot's state (-incoming), qcow2 overlays of its disks, clock set and random
pool fed (svinit.qemu.snapshot.refresh). Goal: resume under 1 s, or under a fifth of a cold boot.
Other parts of the harness's benchmark go in functions of their own beside snapshot_bench().
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from svinit.benchmarks import finish, host_facts  # noqa: E402
from svinit.build import build_vm, vm_dir  # noqa: E402
from svinit.qemu.machine import QemuMachine  # noqa: E402
from svinit.qemu.snapshot import refresh  # noqa: E402


def _ready(m: QemuMachine, resumed: bool) -> float:
    """Starts *m*; the seconds until it is ready (every service up, the channel answering)."""
    t0 = time.monotonic()
    m.start()
    if resumed:
        refresh(m)
    m.wait_for_all_services(60)
    return time.monotonic() - t0


def snapshot_bench(rounds: int = 3) -> tuple[dict, dict[str, bool]]:
    """Cold boots and resumes, alternated (the host's load weighs on both alike); (results, goals)."""
    out = build_vm(vm_dir("initramfs"))
    cold: list[float] = []
    resume: list[float] = []
    source = QemuMachine.from_build(out, accel="tcg", name="source")
    try:
        cold.append(_ready(source, False))
        t0 = time.monotonic()
        snap = source.snapshot()
        save = time.monotonic() - t0
    finally:
        source.close()
    try:
        for i in range(rounds):
            if i:
                m = QemuMachine.from_build(out, accel="tcg", name=f"cold{i}")
                try:
                    cold.append(_ready(m, False))
                finally:
                    m.close()
            m = QemuMachine.from_snapshot(snap, accel="tcg", name=f"resumed{i}")
            try:
                resume.append(_ready(m, True))
                m.succeed("true")
            finally:
                m.close()
        state_mb = snap.state.stat().st_size / 2**20
    finally:
        snap.remove()
    c, r = statistics.median(cold), statistics.median(resume)
    print(f"cold boot to ready: {', '.join(f'{x:.2f}' for x in cold)} s (median {c:.2f})")
    print(f"resume to ready:    {', '.join(f'{x:.2f}' for x in resume)} s (median {r:.2f})")
    print(f"snapshot: saved in {save:.2f} s, state {state_mb:.0f} MiB; resume/cold = {r / c:.3f}")
    results = {
        "cold_s": cold,
        "resume_s": resume,
        "cold_median_s": c,
        "resume_median_s": r,
        "ratio": r / c,
        "save_s": save,
        "state_mib": state_mb,
    }
    return results, {"resume to ready under 1 s, or under a fifth of a cold boot": r < 1 or r < c / 5}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    results, goals = snapshot_bench(args.rounds)
    return finish({"host": host_facts(accel="tcg"), "snapshot": results}, goals, args.json)


if __name__ == "__main__":
    sys.exit(main())
