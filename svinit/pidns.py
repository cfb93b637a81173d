"""Run a program as process 1 of a new PID namespace: the cheapest real PID 1 (`unshare --pid --fork`).

Used by the tests and the benchmarks (svscan and the init package as process 1 on the host): the /proc
walk, :class:`PidNamespace`, and :class:`Scanner` (an svscan in one). Needs root.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self, TypeVar

T = TypeVar("T")


def wait_for(fn: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = "") -> T:
    """Calls *fn* until it returns something truthy; raises AssertionError naming *what* on timeout."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        try:
            last = fn()
        except (OSError, ValueError):
            last = None
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or fn!r} (last: {last!r})")
        time.sleep(interval)


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


def cpu_seconds(pid: int) -> float:
    """utime + stime of *pid* in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def takes_signal(pid: int, sig: int) -> bool:
    """Whether *pid* blocks or catches *sig* (a PID namespace's process 1 that does neither never gets it:
    the kernel drops it)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            masks = [
                int(v, 16) for k, _, v in (line.partition(":\t") for line in f) if k in ("SigBlk", "SigCgt")
            ]
    except (OSError, ValueError):
        return False
    return any(m & (1 << (sig - 1)) for m in masks)


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


class Scanner:
    """An svscan on *scandir* inside a new PID namespace.

    *svscan* is the svscan binary; *path* the directories put first in PATH (where `supervise` is found).
    With pid1=True svscan is process 1; otherwise it runs under `sh`, which prints "svscan exited N".
    """

    def __init__(
        self,
        svscan: Path,
        scandir: Path,
        path: list[Path],
        log: Path,
        pid1: bool = False,
        env: dict[str, str] | None = None,
    ):
        e = {"PATH": os.pathsep.join([str(p) for p in path] + ["/usr/sbin", "/usr/bin", "/sbin", "/bin"])}
        e.update(env or {})
        if pid1:
            argv = [str(svscan), str(scandir)]
        else:
            argv = [
                "sh",
                "-c",
                '"$1" "$2"; echo "svscan exited $?"; exec sleep 100000',
                "sh",
                str(svscan),
                str(scandir),
            ]
        self.scandir = scandir
        self.ns = PidNamespace(argv, log, env=e)
        if pid1:
            self.pid = self.ns.pid
            # The kernel drops a signal sent to a PID namespace's process 1 that has no handler for it: one
            # sent before svscan blocked or caught its signals would be lost. Wait for that (djb's svscan
            # catches none: for it, only for the exec).
            wait_for(lambda: comm(self.pid) == "svscan", 5, interval=0.001, what="svscan to start")
            deadline = time.monotonic() + 0.5
            while not takes_signal(self.pid, signal.SIGHUP) and time.monotonic() < deadline:
                time.sleep(0.001)
        else:
            self.pid = wait_for(
                lambda: [p for p in children_of(self.ns.pid) if comm(p) == "svscan"], 5, what="svscan"
            )[0]

    def output(self) -> str:
        return self.ns.output()

    def supervisors(self) -> dict[str, int]:
        """{service: host pid} of the supervise processes svscan runs (a log's key is "NAME/log")."""
        out = {}
        for p in children_of(self.pid):
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
                cwd = os.readlink(f"/proc/{p}/cwd")
            except OSError:
                continue
            if len(args) < 2 or not args[0].endswith(b"supervise"):
                continue
            # supervise has entered its directory (or is about to: then cwd is the scan directory)
            name = os.path.relpath(cwd, self.scandir) if cwd != str(self.scandir) else args[1].decode()
            out[name] = p
        return out

    def control(self, data: bytes) -> None:
        fifo = self.scandir / ".svscan" / "control"
        wait_for(lambda: fifo.is_fifo(), 5, what=f"{fifo} to be created")
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def close(self) -> None:
        self.ns.close()
