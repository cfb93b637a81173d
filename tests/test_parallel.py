"""The plugin under pytest-xdist, as an outside project runs it: each test gets machines of its own, and
a run leaves nothing behind (no container, no QEMU, no temporary folder, no record), whether it ends
normally, is interrupted (SIGINT, SIGTERM) or loses a worker to SIGKILL.

Each run is a real `pytest -n 2` in a subprocess with its own TMPDIR (where the QEMU state folders and
disk copies go) and harness folder, and a container name prefix of its own, so what it leaves can be
told from what the rest of this suite runs at the same time."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from svinit.build import build_container
from tests.util import worker_tag

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("leftovers")]  # see test_clean

#: The outside project: container tests that check they see only their own machine, one VM test; each
#: test writes a mark when its machine is up, then waits for the release file (or 1 s without one).
PROJECT = r"""
import os, time
from pathlib import Path

MARKS = Path(os.environ["OUT_MARKS"])
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")


def hold(name):
    (MARKS / f"{name}.{WORKER}").write_text(str(os.getpid()))
    release = MARKS / "release"
    deadline = time.monotonic() + float(os.environ.get("OUT_HOLD", "1"))
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def check_alone(m, name):
    assert m.succeed("ls /tmp/seen-by-* 2>/dev/null || true").strip() == ""
    m.succeed(f"touch /tmp/seen-by-{name}")
    hold(name)


def test_a(svinit_container):
    check_alone(svinit_container, "a")


def test_b(svinit_container):
    check_alone(svinit_container, "b")


def test_c(svinit_container):
    check_alone(svinit_container, "c")


def test_vm(svinit_vm):
    check_alone(svinit_vm, "vm")
"""


class OutsideRun:
    """`pytest -n 2 PROJECT` running in a subprocess, in a folder of its own."""

    def __init__(self, root: Path, prefix: str, hold: float, only: str | None, workers: int):
        self.root, self.prefix = root, prefix
        self.marks, self.tmp, self.harness = root / "marks", root / "tmp", root / "harness"
        for d in (self.marks, self.tmp, self.harness):
            d.mkdir(parents=True)
        (root / "test_outside.py").write_text(PROJECT)
        env = {
            **os.environ,
            "OUT_MARKS": str(self.marks),
            "OUT_HOLD": str(hold),
            "TMPDIR": str(self.tmp),
            "SVINIT_HARNESS_DIR": str(self.harness),
        }
        env.pop("PYTEST_XDIST_WORKER", None)
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "xdist",
            "-n",
            str(workers),
            "-q",
            "-p",
            "no:cacheprovider",
        ]
        argv += ["--svinit-name-prefix", prefix, "test_outside.py", *(["-k", only] if only else [])]
        self.proc = subprocess.Popen(
            argv, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def wait_for_marks(self, n: int, timeout: float = 180) -> list[Path]:
        deadline = time.monotonic() + timeout
        while len(marks := [p for p in self.marks.iterdir() if p.name != "release"]) < n:
            assert self.proc.poll() is None, f"the run ended early:\n{self.proc.communicate()[0]}"
            assert time.monotonic() < deadline, f"only {marks} after {timeout} s"
            time.sleep(0.2)
        return marks

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        out, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out

    def leftovers(self) -> list[str]:
        return leftovers(self.prefix, self.tmp, self.harness)


def leftovers(prefix: str, tmp: Path, harness: Path) -> list[str]:
    """What a run left: its containers (named PREFIX-...), QEMU processes, folders in its TMPDIR, its
    harness records."""
    ps = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"name=^{prefix}-", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    left = [f"container {n}" for n in ps.stdout.split()]
    left += [f"folder {p}" for p in tmp.iterdir() if p.name.startswith("svinit-")]
    left += [f"record {p.name}" for p in harness.iterdir()]
    for pid in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError):
            continue
        if "qemu-system" in cmdline and str(tmp) in cmdline:
            left.append(f"QEMU {pid}")
    return left


@pytest.fixture
def outside(tmp_path, svinit_image):
    runs: list[OutsideRun] = []

    def start(hold: float = 1, only: str | None = None, workers: int = 2) -> OutsideRun:
        run = OutsideRun(tmp_path / f"run{len(runs)}", f"out{os.getpid()}r{len(runs)}", hold, only, workers)
        runs.append(run)
        return run

    yield start
    for run in runs:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()


def test_two_workers_give_each_test_its_own_machine_and_leave_nothing(pytester, svinit_image, monkeypatch):
    """A pytester run of the outside project at -n 2: four tests, each alone on its machine (three
    containers and a VM), both workers used; nothing left behind."""
    marks, tmp, harness = (pytester.path / d for d in ("marks", "tmp", "harness"))
    for d in (marks, tmp, harness):
        d.mkdir()
    for var, value in (("OUT_MARKS", marks), ("TMPDIR", tmp), ("SVINIT_HARNESS_DIR", harness)):
        monkeypatch.setenv(var, str(value))
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    pytester.makepyfile(test_outside=PROJECT)
    prefix = f"out{os.getpid()}"
    result = pytester.runpytest_subprocess(
        "-p", "xdist", "-n", "2", "--svinit-name-prefix", prefix, timeout=300
    )
    result.assert_outcomes(passed=4)
    seen = {p.name.split(".")[0]: p.name.split(".")[1] for p in marks.iterdir()}
    assert sorted(seen) == ["a", "b", "c", "vm"], seen
    assert set(seen.values()) == {"gw0", "gw1"}, f"both workers ran tests: {seen}"
    assert leftovers(prefix, tmp, harness) == []


def test_two_builds_of_one_tag_at_once_build_it_once(svinit_docker, caplog):
    """Two workers asking for one image at once: the first builds it, the second waits on the lock and
    finds it up to date (both used to build it, over each other)."""
    tag = worker_tag("twice")
    caplog.set_level(logging.INFO, logger="svinit.build.container")
    ids: list[str] = []
    try:
        threads = [threading.Thread(target=lambda: ids.append(build_container(tag=tag))) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        builds = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"building {tag} ")]
        fresh = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"{tag} is up to date")]
        assert len(ids) == 2 and ids[0] == ids[1], ids
        assert len(builds) == 1 and len(fresh) == 1, (builds, fresh)
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


@pytest.mark.parametrize(
    "sig,workers,only",
    [
        (signal.SIGINT, 2, "test_a or test_vm"),
        (signal.SIGTERM, 2, "test_a or test_b"),
        (signal.SIGTERM, 1, "test_a"),
    ],
    ids=["sigint-n2-vm", "sigterm-n2", "sigterm-plain"],
)
def test_an_interrupted_run_leaves_nothing(outside, sig, workers, only):
    """The signal goes to the run's first process only (as a CI runner or `timeout` sends it): with
    workers, each is ended by pytest-xdist and tears its machine down (or the run's end removes it);
    without, SIGTERM ends the run as Ctrl-C does, through every fixture's teardown."""
    run = outside(hold=300, only=only, workers=workers)
    run.wait_for_marks(min(workers, 2))
    assert run.leftovers(), "the machines should be up while the tests hold"
    run.proc.send_signal(sig)
    code, out = run.finish(timeout=120)
    assert code != 0 and "KeyboardInterrupt" in out, out
    assert run.leftovers() == [], out


def test_a_killed_workers_machine_is_removed_at_the_runs_end(outside):
    """SIGKILL leaves a worker no teardown: the run's first process removes its container at the end,
    and says so."""
    run = outside(hold=300, only="test_a or test_b", workers=2)
    marks = run.wait_for_marks(2)
    victim = int(next(p for p in marks if p.name.startswith("a.")).read_text())
    os.kill(victim, signal.SIGKILL)
    (run.marks / "release").touch()
    code, out = run.finish()
    assert code == 1 and "crashed while running 'test_outside.py::test_a'" in out, out
    assert (
        "svinit: removed what this run's ended workers left" in out and f"container {run.prefix}-" in out
    ), out
    assert run.leftovers() == [], out
