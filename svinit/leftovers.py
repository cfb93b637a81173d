"""What the harness leaves while it runs, marked so that ``svinit clean`` finds what a killed run left
behind (a SIGKILLed pytest, a CI job cancelled) and removes it, and nothing else.

The marks:

- every container and Docker network (svinit.network) the harness starts carries the label
  ``org.svinit.harness=1`` (:data:`LABEL`) and
  ``org.svinit.harness.owner=HOST:PID:START`` (:data:`OWNER_LABEL`: the harness process, its start
  time in clock ticks since the host's boot, so a reused pid is not taken for it);
- every temporary directory it makes (a QEMU machine's state directory: QMP and command sockets,
  ``qemu.pid``; the root and data disk copies of ``check vm``, ``boot`` and the VM fixtures) has a
  record in the harness directory (:func:`harness_dir`: ``$SVINIT_HARNESS_DIR``, else
  ``/run/svinit-harness`` for root, else ``$XDG_RUNTIME_DIR/svinit-harness``, else
  ``/tmp/svinit-harness-UID``), ``NAME.json``: the directory and its owner; the record goes with
  the directory;
- QEMU runs with ``-name svinit-...,process=svinit-qemu`` and ``-pidfile STATE/qemu.pid``;
- both carry the run too (``org.svinit.harness.run``, :data:`RUN_LABEL`; the record's ``run``): the
  owner of the pytest process that started the session (``$SVINIT_HARNESS_RUN``, which the plugin sets
  in the pytest-xdist controller before its workers start, so every worker's marks name it), else the
  owner itself. The controller, at its end, removes what its run's workers left (a worker killed, or
  ended by a Ctrl-C before its teardown): ``clean(run=...)``.

A leftover is a record or a container whose owner is gone. A QEMU process is killed only when its pid
file's pid is a ``qemu-system-*`` whose own command line names that pid file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

#: Label on every container the harness starts (docker ps -af label=org.svinit.harness).
LABEL = "org.svinit.harness"
#: Its owner: HOST:PID:START of the harness process that started it.
OWNER_LABEL = "org.svinit.harness.owner"
#: The run: the owner of the session's first process (the pytest-xdist controller, or pytest itself).
RUN_LABEL = "org.svinit.harness.run"
#: Set by the plugin in a session's first process; its workers inherit it.
RUN_ENV = "SVINIT_HARNESS_RUN"
#: QEMU's process name (``-name ...,process=``), as ps shows it.
QEMU_PROCESS = "svinit-qemu"
#: The pid file in a QEMU machine's state directory.
PIDFILE = "qemu.pid"


def harness_dir() -> Path:
    """Where the records of the harness's temporary directories live (made 0700 if missing)."""
    if os.environ.get("SVINIT_HARNESS_DIR"):
        d = Path(os.environ["SVINIT_HARNESS_DIR"])
    elif os.getuid() == 0:
        d = Path("/run/svinit-harness")
    elif os.environ.get("XDG_RUNTIME_DIR"):
        d = Path(os.environ["XDG_RUNTIME_DIR"]) / "svinit-harness"
    else:
        d = Path(tempfile.gettempdir()) / f"svinit-harness-{os.getuid()}"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d


def _start_ticks(pid: int) -> str | None:
    """The start time of *pid* (clock ticks since boot, /proc/PID/stat's 22nd field), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: the fields after it follow the last ')'
    return stat.rsplit(")", 1)[1].split()[19]


def owner() -> str:
    """This process as an owner: ``HOST:PID:START``."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_ticks(os.getpid())}"


def owner_alive(mark: str) -> bool | None:
    """Whether the owner *mark* (``HOST:PID:START``) still runs: None when it is another host's (or not
    a mark), which this host cannot tell."""
    try:
        host, pid, start = mark.rsplit(":", 2)
        pid_n = int(pid)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    return _start_ticks(pid_n) == start


def run_mark() -> str:
    """This process's run: ``$SVINIT_HARNESS_RUN``, else this process as an owner."""
    return os.environ.get(RUN_ENV) or owner()


def container_labels() -> dict[str, str]:
    """The labels of a container the harness starts."""
    return {LABEL: "1", OWNER_LABEL: owner(), RUN_LABEL: run_mark()}


#: The longest path a unix socket can be bound at (sun_path holds 108 bytes, its NUL included).
SOCKET_PATH_MAX = 107


def make_temp_dir(prefix: str, sockets: int = 0) -> Path:
    """A temporary directory (in $TMPDIR, as tempfile's) with its record in :func:`harness_dir`.

    Args:
        sockets: the longest name of a unix socket to be made in it: when $TMPDIR is too deep for it (a
            pytest-xdist worker's tmp_path is), the directory goes to the first of the harness
            directory, /tmp, /dev/shm where it fits.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if sockets and len(str(path)) + 1 + sockets > SOCKET_PATH_MAX:
        for base in (harness_dir(), Path("/tmp"), Path("/dev/shm")):
            if len(str(base)) + len(prefix) + 10 + sockets <= SOCKET_PATH_MAX and os.access(base, os.W_OK):
                path.rmdir()
                path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
                break
    record = harness_dir() / f"{path.name}.json"
    record.write_text(json.dumps({"path": str(path), "owner": owner(), "run": run_mark()}) + "\n")
    return path


def remove_temp_dir(path: Path) -> None:
    """Removes a :func:`make_temp_dir` directory and its record."""
    shutil.rmtree(path, ignore_errors=True)
    try:
        (harness_dir() / f"{Path(path).name}.json").unlink(missing_ok=True)
    except OSError:
        pass


@contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    """:func:`make_temp_dir` as a context manager: removed, with its record, at the end."""
    path = make_temp_dir(prefix)
    try:
        yield path
    finally:
        remove_temp_dir(path)


def qemu_marks(state_dir: Path) -> list[str]:
    """QEMU's arguments that mark it as the harness's: its name and its pid file in *state_dir*."""
    return ["-name", f"svinit-{state_dir.name},process={QEMU_PROCESS}", "-pidfile", str(state_dir / PIDFILE)]


def harness_qemu(pidfile: Path) -> int | None:
    """The pid in *pidfile* if it is a running QEMU that the harness started with that pid file (its
    executable a ``qemu-system-*``, its command line ``-pidfile PIDFILE``), else None."""
    try:
        pid = int(pidfile.read_text().split()[0])
        exe = os.readlink(f"/proc/{pid}/exe")
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except (OSError, ValueError, IndexError):
        return None
    if not Path(exe.removesuffix(" (deleted)")).name.startswith("qemu-system-"):
        return None
    pairs = zip(argv, argv[1:], strict=False)
    return pid if ("-pidfile", str(pidfile)) in pairs else None


def _kill(pid: int, grace: float = 3.0) -> None:
    """TERM (QEMU exits at once), then KILL after *grace* seconds."""
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if _start_ticks(pid) is None or Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z":
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, FileNotFoundError):
        pass


@dataclass
class Cleanup:
    """What ``svinit clean`` removed (or, with dry_run, would remove) and what it kept, and why."""

    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def clean(dry_run: bool = False, client=None, all_owners: bool = False, run: str | None = None) -> Cleanup:
    """Removes what killed runs of the harness left: their containers (``docker rm -f``), their QEMU
    processes and their temporary directories. A live run's are kept; with *all_owners*, also those
    of another host's runs (a shared dockerd), which this host cannot tell alive or not.

    Args:
        dry_run: say what would be removed, remove nothing.
        client: a docker client; None: from the environment (no daemon: containers are skipped).
        run: only what this run (:func:`run_mark`) left, whose owner is gone; nothing is reported kept.
    """
    out = Cleanup()
    verb = "would remove" if dry_run else "removed"
    for record in sorted(harness_dir().glob("*.json")):
        try:
            data = json.loads(record.read_text())
            path, mark = Path(data["path"]), data["owner"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if run is not None and data.get("run") != run:
            continue
        alive = owner_alive(mark)
        if alive or (alive is None and not all_owners):
            if run is None:
                out.kept.append(f"{path}: its run ({mark}) is {'alive' if alive else 'on another host'}")
            continue
        pid = harness_qemu(path / PIDFILE)
        if pid is not None:
            if not dry_run:
                _kill(pid)
            out.removed.append(f"{verb} QEMU process {pid} ({QEMU_PROCESS}, {path / PIDFILE})")
        if path.exists():
            out.removed.append(f"{verb} directory {path}")
        if not dry_run:
            shutil.rmtree(path, ignore_errors=True)
            record.unlink(missing_ok=True)
    _clean_docker(out, dry_run, client, all_owners, verb, run)
    return out


def _dead(labels: dict[str, str] | None, all_owners: bool) -> tuple[bool, str, bool | None]:
    """(remove it?, its owner mark, owner alive?) for a labelled container or network."""
    mark = (labels or {}).get(OWNER_LABEL, "")
    alive = owner_alive(mark) if mark else False
    return not (alive or (alive is None and not all_owners)), mark, alive


def _remove_network(n) -> None:
    n.reload()
    for c in n.containers:  # another run's container left on it (its own were removed)
        n.disconnect(c, force=True)
    n.remove()


def _clean_docker(out: Cleanup, dry_run: bool, client, all_owners: bool, verb: str, run: str | None) -> None:
    """Removes the labelled containers, then networks (svinit.network), of killed runs (of *run* only,
    when given: then nothing is reported kept)."""
    import docker.errors

    from svinit.dockerd import docker_client
    from svinit.errors import SvinitError

    label = LABEL if run is None else f"{RUN_LABEL}={run}"
    kinds = (
        ("container", lambda: client.containers.list(all=True, filters={"label": label}),
         lambda c: c.labels, lambda c: c.remove(force=True), lambda c: f"{c.short_id}, {c.status}"),
        ("network", lambda: client.networks.list(filters={"label": label}),
         lambda n: n.attrs.get("Labels"), _remove_network, lambda n: n.short_id),
    )  # fmt: skip
    for kind, listed, labels_of, remove, detail in kinds:
        try:
            client = client or docker_client()
            items = listed()
        except (SvinitError, docker.errors.DockerException) as e:
            if run is None:
                out.kept.append(f"{kind}s: not looked at: {e}")
            continue
        for x in items:
            dead, mark, alive = _dead(labels_of(x), all_owners)
            if not dead:
                if run is None:
                    where = "alive" if alive else "on another host"
                    out.kept.append(f"{kind} {x.name}: its run ({mark}) is {where}")
                continue
            if not dry_run:
                try:
                    remove(x)
                except docker.errors.NotFound:
                    continue
                except docker.errors.APIError as e:
                    out.kept.append(f"{kind} {x.name}: could not be removed: {e}")
                    continue
            out.removed.append(f"{verb} {kind} {x.name} ({detail(x)})")
