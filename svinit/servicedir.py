"""Service directories on the host, as daemontools reads them: a run script (and log/run), a down file,
and the supervise/status record's pid and state letter."""

from __future__ import annotations

import stat
from pathlib import Path


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


def svstatus(svdir: Path) -> tuple[int, str]:
    """(pid, state letter) from a service's status file; (0, '') when there is none yet."""
    try:
        st = (svdir / "supervise" / "status").read_bytes()
    except OSError:
        return 0, ""
    return int.from_bytes(st[12:16], "little"), chr(st[18]) if len(st) > 18 else ""


#: The body of a run script that writes numbered lines "seq PID N" as fast as it can (with PACE > 0, a
#: pause of 10 ms every PACE lines) until TERM, then appends "PID COUNT" to ./count: the fault campaign's
#: writer (tests and bench/faults.py). A write interrupted by TERM writes nothing (a pipe write under
#: PIPE_BUF is all or nothing) and is not counted; PID tells a restarted writer's lines apart.
NUMBERED_WRITER = """exec 2>./err
trap 'stop=1' TERM
pace={pace}
i=0
stop=
while [ -z "$stop" ]; do
  echo "seq $$ $i" && i=$((i + 1))
  [ "$pace" -gt 0 ] && [ $((i % pace)) -eq 0 ] && sleep 0.01
done
echo "$$ $i" >> ./count"""
#: The body of a log/run that keeps every line (rotated files of 16 MB, 100 of them).
KEEP_ALL_LOG = "exec multilog t s16777215 n100 ./main"
