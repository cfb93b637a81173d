"""Small helpers for the tests: waiting on real conditions and making service directories."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Callable, TypeVar

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


def zombies_of(pid: int) -> list[int]:
    """Children of *pid* that are zombies (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == pid:
            out.append(int(entry))
    return out
