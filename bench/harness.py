"""Benchmark: the harness itself, in one run on one machine.

    python bench/harness.py [--part parallel|snapshot|all] [--rounds N] [--suite] [--json FILE]

Parallel (issue 11): an outside project (written to a temporary folder, run as its CI would: `pytest`
with svinit's plugin) of 8 container tests and 4 VM tests, each booting its machine and running a few
commands, at `-n 1` and `-n 2`: wall time of the whole pytest, and the speed-up. After each run, what it
left (containers with its name prefix, svinit folders in its TMPDIR) must be nothing. With --suite, also
this project's own test suite (`pytest -q -n N --dist loadgroup`, as `make test` runs it) at -n 1 and
-n 2: minutes each.

Snapshot (issue 12): a VM cold boot to ready against a resume from a snapshot to ready, under TCG.
Ready: every service and logger up (svstat) and the command channel answering, as the fixtures return
a machine. Cold: QEMU started, the kernel boots the reference initramfs VM (`svinit build vm`). Resume:
QEMU started with the snapshot's state (-incoming), qcow2 overlays of its disks, clock set and random
pool fed (svinit.qemu.snapshot.refresh). Goal: resume under 1 s, or under a fifth of a cold boot.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from svinit.benchmarks import finish, host_facts  # noqa: E402
from svinit.build import build_container, build_vm, vm_dir  # noqa: E402
from svinit.qemu.machine import QemuMachine  # noqa: E402
from svinit.qemu.snapshot import refresh  # noqa: E402

CONTAINER_TESTS, VM_TESTS = 8, 4

PROJECT = """
import pytest

from svinit.svstat import SvService


@pytest.mark.parametrize("n", range({containers}))
def test_container(svinit_container, svinit_host, n):
    svinit_container.wait_for_service("heartbeat")
    assert SvService(svinit_host, "heartbeat").is_running
    assert svinit_container.succeed(f"echo {{n}} > /tmp/n && cat /tmp/n") == f"{{n}}\\n"


@pytest.mark.parametrize("n", range({vms}))
def test_vm(svinit_vm, n):
    svinit_vm.wait_for_service("heartbeat")
    assert svinit_vm.succeed(f"echo {{n}} > /tmp/n && cat /tmp/n") == f"{{n}}\\n"
"""


def leftovers(prefix: str, tmp: Path) -> list[str]:
    ps = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"name=^{prefix}-", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
    )
    left = [f"container {n}" for n in ps.stdout.split()]
    left += [f"folder {p.name}" for p in tmp.iterdir() if p.name.startswith("svinit-")]
    return left


def run_pytest(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str, int]:
    t0 = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.monotonic() - t0
    summary = (proc.stdout.strip().splitlines() or [""])[-1]
    return took, summary, proc.returncode


def outside_project(rounds: int) -> dict:
    """The outside project at -n 1 and -n 2, *rounds* times each, alternating."""
    with tempfile.TemporaryDirectory(prefix="svinit-bench-harness-") as d:
        project = Path(d)
        (project / "test_outside.py").write_text(PROJECT.format(containers=CONTAINER_TESTS, vms=VM_TESTS))
        times: dict[int, list[float]] = {1: [], 2: []}
        left: list[str] = []
        for r in range(rounds):
            for n in (1, 2):
                tmp = project / f"tmp-{n}-{r}"
                tmp.mkdir()
                prefix = f"bench{os.getpid()}n{n}r{r}"
                env = {**os.environ, "TMPDIR": str(tmp)}
                argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(n)]
                argv += ["--svinit-name-prefix", prefix, "test_outside.py"]
                took, summary, code = run_pytest(argv, project, env)
                print(f"  outside project -n {n}: {took:6.1f} s  {summary}", flush=True)
                if code != 0:
                    raise SystemExit(f"the outside project failed at -n {n}: {summary}")
                times[n].append(took)
                left += leftovers(prefix, tmp)
    return {"tests": f"{CONTAINER_TESTS} container + {VM_TESTS} VM", "seconds": times, "left": left}


def own_suite() -> dict:
    """This project's suite at -n 1 and -n 2 (as make test runs it)."""
    times = {}
    for n in (1, 2):
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-n",
            str(n),
            "--dist",
            "loadgroup",
        ]
        took, summary, code = run_pytest(argv, ROOT, dict(os.environ))
        print(f"  own suite -n {n}: {took / 60:5.1f} min  {summary}", flush=True)
        times[n] = {"seconds": took, "summary": summary, "exit": code}
    return times


def parallel_bench(rounds: int, suite: bool) -> tuple[dict, dict[str, bool]]:
    """The outside project at -n 1 and -n 2 (and the own suite with *suite*); (results, goals)."""
    print("preparing: svinit:alpine and the reference VM (built once, cached)", flush=True)
    build_container()
    build_vm(vm_dir("initramfs"))
    print(f"outside project: {CONTAINER_TESTS} container tests and {VM_TESTS} VM tests", flush=True)
    results: dict = {"outside": outside_project(rounds)}
    out = results["outside"]
    one, two = statistics.median(out["seconds"][1]), statistics.median(out["seconds"][2])
    print(f"outside project: -n 1 {one:.1f} s, -n 2 {two:.1f} s: speed-up {one / two:.2f}x")
    goals = {
        "the outside project is faster at -n 2 than at -n 1": two < one,
        "no run left a container or an svinit folder": not out["left"],
    }
    if suite:
        results["suite"] = own = own_suite()
        s1, s2 = own[1]["seconds"], own[2]["seconds"]
        print(f"own suite: -n 1 {s1 / 60:.1f} min, -n 2 {s2 / 60:.1f} min: speed-up {s1 / s2:.2f}x")
        goals["the suite is faster at -n 2 (make test uses it)"] = s2 < s1
    return results, goals


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
    ap.add_argument("--part", choices=("parallel", "snapshot", "all"), default="all", help="what to measure")
    ap.add_argument("--rounds", type=int, default=None, help="rounds (default: 1 parallel, 3 snapshot)")
    ap.add_argument("--suite", action="store_true", help="also this project's suite at -n 1 and -n 2")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    results: dict = {"host": host_facts(accel="tcg")}
    goals: dict[str, bool] = {}
    if args.part in ("parallel", "all"):
        results["parallel"], g = parallel_bench(args.rounds or 1, args.suite)
        goals.update(g)
    if args.part in ("snapshot", "all"):
        results["snapshot"], g = snapshot_bench(args.rounds or 3)
        goals.update(g)
    return finish(results, goals, args.json)


if __name__ == "__main__":
    sys.exit(main())
