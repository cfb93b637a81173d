"""Run a program as process 1 of a new PID namespace: the cheapest real PID 1 (`unshare --pid --fork`).

Used by the tests and the benchmarks (svscan and the init package as process 1 on the host). Needs root.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Self


def processes() -> list[tuple[int, str, int]]:
    """(pid, state letter, parent pid) of every process, from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out.append((int(entry), fields[0], int(fields[1])))
    return out


def children_of(pid: int) -> list[int]:
    """Direct children of *pid*."""
    return [p for p, _, ppid in processes() if ppid == pid]


def zombies_of(pid: int) -> list[int]:
    """Children of *pid* that are zombies."""
    return [p for p, state, ppid in processes() if ppid == pid and state == "Z"]


def comm(pid: int) -> str:
    """The command name of *pid*."""
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def _first_child(pid: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = children_of(pid)
        if kids:
            return kids[0]
        time.sleep(0.01)
    raise RuntimeError(f"unshare (pid {pid}) started no process 1 within {timeout} s: is this root?")


class PidNamespace:
    """Runs *argv* as process 1 of a new PID namespace (unshare --pid --fork --mount-proc).

    The whole namespace dies with it: closing kills process 1, and the kernel kills the rest.
    Output (stdout and stderr) goes to *log*.
    """

    def __init__(
        self,
        argv: list[str],
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        stdin=None,
    ):
        import subprocess

        self.log = log
        self._out = open(log, "ab")
        self.unshare = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", *argv],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        self.pid = _first_child(self.unshare.pid)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def host_pid(self, nspid: int) -> int:
        """The host's pid of the process that this namespace calls *nspid* (0 when there is none)."""
        ns = os.readlink(f"/proc/{self.pid}/ns/pid")
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") != ns:
                    continue
                with open(f"/proc/{entry}/status") as f:
                    for line in f:
                        if line.startswith("NSpid:") and int(line.split()[-1]) == nspid:
                            return int(entry)
            except (OSError, ValueError):
                continue
        return 0

    def alive(self) -> bool:
        return self.unshare.poll() is None

    def wait(self, timeout: float) -> int:
        """Waits for process 1 to exit; returns its exit status as unshare reports it."""
        return self.unshare.wait(timeout)

    def close(self) -> None:
        import signal
        import subprocess

        if self.unshare.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.unshare.wait(5)
            except subprocess.TimeoutExpired:
                self.unshare.kill()
                self.unshare.wait()
        self._out.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
