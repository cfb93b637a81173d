"""What the tests of images built from the archive share (test_dist, test_debian): `docker run` with a
time limit, and one boot-to-stop run judged from the outside (svstat inside, docker stop, exit code,
stop time, Docker's log, the scan directory afterwards)."""

from __future__ import annotations

import io
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

#: svstat of the scan directory's services, wherever stage 1 put it (/service, or its mirror).
SVSTAT = '. /usr/lib/svinit/lib.sh; d=$(sv_scandir); echo "scandir $d"; cd "$d" && svstat "$@"'


def docker_run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """docker run --rm ARGS; a container still running after *timeout* is removed, and the test fails."""
    name = f"svinit-test-run-{time.monotonic_ns()}"
    try:
        return subprocess.run(
            ["docker", "run", "--rm", "--name", name, *args], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        pytest.fail(f"docker run {' '.join(args)} still ran after {timeout} s")


def docker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True)


@dataclass
class Stopped:
    """What a run left: the exit code, the stop's seconds, Docker's log (svinit's stderr), svstat's
    lines while up, and the scan directory after the stop (None when it was on a tmpfs, gone now)."""

    code: str
    took: float
    logs: str
    svstat: str
    scandir: tarfile.TarFile | None

    def log(self, service: str) -> str:
        """The service's multilog current, after the stop."""
        assert self.scandir is not None, "the scan directory was on a tmpfs"
        members = [m for m in self.scandir.getmembers() if m.name.endswith(f"/{service}/log/main/current")]
        assert members, f"no log of {service} in {self.scandir.getnames()[:20]}"
        return self.scandir.extractfile(members[0]).read().decode()


def boot_and_stop(
    image: str,
    opts: list[str],
    up: list[str],
    down: tuple[str, ...] = (),
    while_up: Callable[[str], None] | None = None,
    timeout: float = 15,
) -> Stopped:
    """Runs *image* detached with *opts*; waits until every service of *up* is up and every one of
    *down* is down (svstat); runs *while_up(container name)*; then `docker stop`s it and returns what
    the run left. The container is removed afterwards."""
    name = f"svinit-test-{time.monotonic_ns()}"
    subprocess.run(["docker", "run", "-d", "--name", name, *opts, image], check=True, capture_output=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            out = docker("exec", name, "sh", "-c", SVSTAT, "svstat", *up, *down)
            lines = out.stdout.splitlines()
            states = dict(ln.split(": ", 1) for ln in lines[1:] if ": " in ln)
            if all(states.get(s, "").startswith("up (pid") for s in up) and all(
                states.get(s, "").startswith("down ") for s in down
            ):
                break
            assert time.monotonic() < deadline, f"not as expected: {out.stdout}{out.stderr}"
            time.sleep(0.1)
        scandir = lines[0].split(" ", 1)[1]
        if while_up:
            while_up(name)
        t0 = time.monotonic()
        subprocess.run(["docker", "stop", name], check=True, capture_output=True)
        took = time.monotonic() - t0
        code = docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
        logs = docker("logs", name).stderr
        tree = None
        if not scandir.startswith("/run/"):  # /run is a tmpfs, gone with the container
            data = subprocess.run(["docker", "cp", f"{name}:{scandir}", "-"], capture_output=True).stdout
            tree = tarfile.open(fileobj=io.BytesIO(data))
        return Stopped(code, took, logs, out.stdout, tree)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
