"""Small helpers for the tests: waiting on real conditions and making service directories."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from svinit.pidns import PidNamespace, children_of, comm, zombies_of  # noqa: F401 (the tests import them from here)

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


def write_exec(path: Path, text: str) -> Path:
    """Writes an executable script."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def make_service(root: Path, name: str, run: str, log: str | None = None, down: bool = False) -> Path:
    """Creates service directory root/name with a run script (sh body) and optionally log/run."""
    d = root / name
    write_exec(d / "run", "#!/bin/sh\n" + run + "\n")
    if log is not None:
        write_exec(d / "log" / "run", "#!/bin/sh\n" + log + "\n")
    if down:
        (d / "down").touch()
    return d


def cpu_seconds(pid: int) -> float:
    """utime + stime of *pid* in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def svstatus(svdir: Path) -> tuple[int, str]:
    """(pid, state letter) from a service's status file; (0, '') when there is none yet."""
    try:
        st = (svdir / "supervise" / "status").read_bytes()
    except OSError:
        return 0, ""
    return int.from_bytes(st[12:16], "little"), chr(st[18]) if len(st) > 18 else ""
