"""Benchmark: the harness under pytest-xdist, in one run on one machine.

    python bench/harness.py [--rounds 1] [--suite] [--json FILE]

An outside project (written to a temporary folder, run as its CI would: `pytest` with svinit's plugin)
of 8 container tests and 4 VM tests, each booting its machine and running a few commands, at `-n 1` and
`-n 2`: wall time of the whole pytest, and the speed-up. After each run, what it left (containers with
its name prefix, QEMU processes and svinit folders in its TMPDIR) must be nothing.

With --suite, also this project's own test suite (`pytest -q -n N --dist loadgroup`, as `make test`
runs it) at -n 1 and -n 2: minutes each.
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=1, help="runs of the outside project at each -n")
    ap.add_argument("--suite", action="store_true", help="also this project's suite at -n 1 and -n 2")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    print("preparing: svinit:alpine and the reference VM (built once, cached)", flush=True)
    build_container()
    build_vm(vm_dir("initramfs"))
    results: dict = {"host": host_facts()}
    print(f"outside project: {CONTAINER_TESTS} container tests and {VM_TESTS} VM tests", flush=True)
    out = outside_project(args.rounds)
    results["outside"] = out
    one, two = statistics.median(out["seconds"][1]), statistics.median(out["seconds"][2])
    print(f"outside project: -n 1 {one:.1f} s, -n 2 {two:.1f} s: speed-up {one / two:.2f}x")
    goals = {
        "the outside project is faster at -n 2 than at -n 1": two < one,
        "no run left a container, QEMU folder or record": not out["left"],
    }
    if args.suite:
        suite = own_suite()
        results["suite"] = suite
        s1, s2 = suite[1]["seconds"], suite[2]["seconds"]
        print(f"own suite: -n 1 {s1 / 60:.1f} min, -n 2 {s2 / 60:.1f} min: speed-up {s1 / s2:.2f}x")
        goals["the suite is faster at -n 2 (make test uses it)"] = s2 < s1
    return finish(results, goals, args.json)


if __name__ == "__main__":
    sys.exit(main())
