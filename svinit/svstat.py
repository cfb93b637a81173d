"""Service status, the daemontools way: svstat's output and the raw supervise/status record.

Two sources, one result (:class:`Status`):

- :func:`parse_svstat` reads the lines ``svstat DIR...`` prints (daemontools 0.76's format, which
  svinit's svstat keeps): ``DIR: up (pid N) S seconds[, normally down][, paused][, want down]`` or
  ``DIR: down S seconds[, normally up][, want up]``;
- :func:`parse_status` reads the bytes of ``DIR/supervise/status``: djb's 18-byte record, or svinit's
  23-byte one, which adds the state letter and the last wait status of ``run``.

And :class:`SvService`, the service module testinfra lacks on busybox images: it runs svstat through
any testinfra host (``SvService(host, "heartbeat").is_running``).
"""

from __future__ import annotations

import re
import shlex
import signal
import time
from dataclasses import dataclass, replace
from typing import Any

from svinit.errors import SvinitError
from svinit.guest import DEFAULT_SCANDIR, SCANDIR_SH
from svinit.tai64n import Tai64n

#: djb's status record (0.76), and svinit's, which appends the state letter and the last wait status.
STATUS_DJB = 18
STATUS_SVINIT = 23
#: The state letters of svinit's record (init/src/sv.h).
STATES = {"d": "down", "r": "running", "f": "finishing", "w": "waiting to restart", "b": "broken run"}
NO_WAIT = 0xFFFFFFFF


class StatusFormatError(SvinitError, ValueError):
    """svstat's output or a status file is not in the format expected; the message says what to check."""


@dataclass(frozen=True)
class Status:
    """A service's state, from svstat's line or from its supervise/status record.

    Fields that a source does not give are None: svstat gives no state letter, time stamp or wait status
    (seconds only); a status file does not say whether the service is normally up (that is the absence
    of a ``down`` file, which the caller may pass).
    """

    path: str
    #: run is running (its pid is not 0)
    up: bool
    pid: int | None
    #: seconds since the last change (as svstat counts them: whole seconds, clamped at 0)
    seconds: int
    #: 'u', 'd', or None when the service runs once (svc -o); svstat shows only a want that differs
    want: str | None = None
    paused: bool = False
    #: True when no `down` file exists (the service starts with supervise); None when unknown
    normally_up: bool | None = None
    #: svinit's state letter (see STATES), None with djb's record or from svstat
    state: str | None = None
    #: when the pid last changed (the start, or the exit, of run)
    changed: Tai64n | None = None
    #: the last wait status of run (as waitpid gives it); None before its first exit or when unknown
    last_wait: int | None = None

    @property
    def exit_code(self) -> int | None:
        """run's exit code at its last exit; None when a signal ended it, or no exit is known."""
        if self.last_wait is None or self.last_wait & 0x7F:
            return None
        return (self.last_wait >> 8) & 0xFF

    @property
    def term_signal(self) -> int | None:
        """The signal that ended run at its last exit; None when it exited, or no exit is known."""
        if self.last_wait is None or not (self.last_wait & 0x7F) or (self.last_wait & 0x7F) == 0x7F:
            return None
        return self.last_wait & 0x7F

    @property
    def last_exit(self) -> str:
        """run's last exit in words: "exit 0", "signal 9 (KILL)" or "none yet"."""
        if self.exit_code is not None:
            return f"exit {self.exit_code}"
        if self.term_signal is not None:
            try:
                return f"signal {self.term_signal} ({signal.Signals(self.term_signal).name[3:]})"
            except ValueError:
                return f"signal {self.term_signal}"
        return "none yet"

    def describe(self) -> str:
        """One line in svstat's words, plus what the long record adds."""
        if self.up:
            text = f"up (pid {self.pid}) {self.seconds} seconds"
            if self.normally_up is False:
                text += ", normally down"
            if self.paused:
                text += ", paused"
            if self.want == "d":
                text += ", want down"
        else:
            text = f"down {self.seconds} seconds"
            if self.normally_up:
                text += ", normally up"
            if self.want == "u":
                text += ", want up"
        if self.state is not None and self.state in STATES and self.state not in "rd":
            text += f", {STATES[self.state]}"
        if self.last_wait is not None:
            text += f", last {self.last_exit}"
        return f"{self.path}: {text}"


_UP = re.compile(r"up \(pid (\d+)\) (\d+) seconds((?:, [a-z ]+)*)")
_DOWN = re.compile(r"down (\d+) seconds((?:, [a-z ]+)*)")
_UP_FLAGS = {"normally down", "paused", "want down"}
_DOWN_FLAGS = {"normally up", "want up"}


class NotSupervised(StatusFormatError):
    """svstat could not read a status: no supervise runs, or the directory is missing or unreadable."""


def parse_svstat_line(line: str) -> Status:
    """Parses one line of svstat's output.

    Args:
        line: ``DIR: up (pid N) S seconds...`` or ``DIR: down S seconds...``.

    Returns:
        The Status (pid, up, seconds, want, paused, normally_up; no state, time stamp or wait status).

    Raises:
        NotSupervised: svstat said it could not tell (``supervise not running``, ``unable to chdir: ...``).
        StatusFormatError: the line is in no format svstat prints.
    """
    line = line.rstrip("\n")
    # DIR may itself hold ": ": the state starts after the first ": " that a state follows
    for m in re.finditer(": ", line):
        path, rest = line[: m.start()], line[m.end() :]
        if rest.startswith(("up ", "down ", "supervise not running", "unable to ")):
            break
    else:
        raise StatusFormatError(
            f"svstat printed {line!r}, which is not 'DIR: STATE': is svstat daemontools-compatible "
            f"(svinit's or djb's), and was it given service directories?"
        )
    m = _UP.fullmatch(rest)
    if m:
        flags = _flags(line, m.group(3), _UP_FLAGS)
        return Status(
            path=path,
            up=True,
            pid=int(m.group(1)),
            seconds=int(m.group(2)),
            want="d" if "want down" in flags else "u",
            paused="paused" in flags,
            normally_up="normally down" not in flags,
        )
    m = _DOWN.fullmatch(rest)
    if m:
        flags = _flags(line, m.group(2), _DOWN_FLAGS)
        return Status(
            path=path,
            up=False,
            pid=None,
            seconds=int(m.group(1)),
            want="u" if "want up" in flags else "d",
            normally_up="normally up" in flags,
        )
    if rest == "supervise not running":
        raise NotSupervised(
            f"{path}: supervise not running: is svscan running, and is {path} in its scan directory?"
        )
    if rest.startswith("unable to "):
        raise NotSupervised(f"{path}: {rest}: check that {path} is a service directory svscan runs")
    raise StatusFormatError(
        f"svstat printed {line!r}: expected 'DIR: up (pid N) S seconds' or 'DIR: down S seconds' "
        f"(daemontools 0.76 format); is this svstat from another suite (runit's sv, s6-svstat)?"
    )


def _flags(line: str, text: str, known: set[str]) -> set[str]:
    flags = {f for f in text.split(", ") if f}
    unknown = flags - known
    if unknown:
        raise StatusFormatError(
            f"svstat printed {line!r} with {', '.join(sorted(unknown))!r}, which daemontools' svstat "
            f"never prints for that state (known: {', '.join(sorted(known))})"
        )
    return flags


def parse_svstat(text: str) -> dict[str, Status]:
    """Parses svstat's output for several directories: {DIR: Status}. Raises as parse_svstat_line."""
    return {s.path: s for s in (parse_svstat_line(line) for line in text.splitlines() if line.strip())}


def parse_status(
    data: bytes, path: str = "", normally_up: bool | None = None, now: float | None = None
) -> Status:
    """Parses a supervise/status record (djb's 18 bytes or svinit's 23).

    Args:
        data: the file's bytes.
        path: the service directory, for the result and the messages.
        normally_up: whether the directory has no ``down`` file, when the caller knows.
        now: the unix time to count ``seconds`` from (default: now, clamped at 0 as svstat does).

    Returns:
        The Status, with the time stamp of the last change, and with svinit's record the state letter
        and the last wait status.

    Raises:
        StatusFormatError: the record is shorter than 18 bytes, or its fields hold impossible values.
    """
    where = f"{path}/supervise/status" if path else "supervise/status"
    if len(data) < STATUS_DJB:
        raise StatusFormatError(
            f"{where} has {len(data)} bytes, expected {STATUS_DJB} (daemontools) or {STATUS_SVINIT} "
            f"(svinit): was it read while supervise was replacing it, or is it from another suite?"
        )
    changed = Tai64n.from_bytes(data[:12])
    if changed.sec < 2**62 or changed.nano >= 10**9:
        raise StatusFormatError(
            f"{where} holds the time stamp {changed.label}, not a TAI64N label of a real time: "
            f"is this a daemontools status file?"
        )
    pid = int.from_bytes(data[12:16], "little")
    paused = bool(data[16])
    want = {ord("u"): "u", ord("d"): "d", 0: None}.get(data[17], "?")
    if want == "?":
        raise StatusFormatError(f"{where}: want byte {data[17]!r} is none of 'u', 'd' or 0")
    state = last_wait = None
    if len(data) >= STATUS_SVINIT:
        state = chr(data[18])
        if state not in STATES:
            raise StatusFormatError(
                f"{where}: state letter {state!r} is not one of {''.join(STATES)} (init/src/sv.h)"
            )
        w = int.from_bytes(data[19:23], "little")
        last_wait = None if w == NO_WAIT else w
    now = time.time() if now is None else now
    return Status(
        path=path,
        up=pid != 0,
        pid=pid or None,
        seconds=max(0, int(now - changed.unix)),
        want=want,
        paused=paused and pid != 0,
        normally_up=normally_up,
        state=state,
        changed=changed,
        last_wait=last_wait,
    )


class SvService:
    """A daemontools service seen through a testinfra host: the service module testinfra lacks.

    >>> svc = SvService(host, "heartbeat")
    >>> svc.is_running, svc.is_enabled, svc.pid

    Works over any testinfra backend (docker, ssh, local), with only a POSIX sh and svstat in the guest.

    Args:
        host: a testinfra Host.
        name: a service name (in the scan directory) or an absolute service directory; ``NAME/log`` is
            its logger.
        scandir: the scan directory; by default the one svinit's stage 1 chose (/run/svinit/scandir:
            /service, or its mirror in /run on a read-only root), else /service.
    """

    def __init__(self, host: Any, name: str, scandir: str | None = None):
        self._host = host
        self.name = name
        self._scandir = scandir

    @property
    def scandir(self) -> str:
        if self._scandir is None:
            out = self._host.run(f"echo {SCANDIR_SH}")
            self._scandir = out.stdout.strip() or DEFAULT_SCANDIR
        return self._scandir

    @property
    def path(self) -> str:
        return self.name if self.name.startswith("/") else f"{self.scandir}/{self.name}"

    @property
    def exists(self) -> bool:
        """The service directory exists and has a run script."""
        return self._host.run("test -f %s/run", self.path).rc == 0

    @property
    def status(self) -> Status:
        """svstat's view, plus the record's state letter, time stamp and last wait status.

        Raises:
            NotSupervised: no supervise runs for this service (or the directory is missing).
            StatusFormatError: svstat's output or the status file is not in the daemontools format.
        """
        q = shlex.quote(self.path)
        # one round trip: svstat's line, then the record in hex (od is in busybox and coreutils)
        out = self._host.run(f"svstat {q}; od -An -v -tx1 {q}/supervise/status 2>/dev/null")
        if out.rc == 127:
            raise StatusFormatError(f"svstat is not installed on the host ({out.stderr.strip()})")
        first, _, rest = out.stdout.partition("\n")
        st = parse_svstat_line(first)
        record = bytes.fromhex("".join(rest.split()))
        if len(record) < STATUS_DJB:
            return st
        raw = parse_status(record, st.path, normally_up=st.normally_up)
        # the record, with svstat's seconds (svstat counts them on the guest's clock)
        return replace(raw, seconds=st.seconds)

    @property
    def is_supervised(self) -> bool:
        """A supervise runs for the service (svok)."""
        return self._host.run("svok %s", self.path).rc == 0

    @property
    def is_running(self) -> bool:
        """run is running (svstat says up), and not paused."""
        try:
            st = self.status
        except NotSupervised:
            return False
        return st.up and not st.paused

    @property
    def is_enabled(self) -> bool:
        """The service starts with its supervise: it has no ``down`` file."""
        return self._host.run("test -e %s/down", self.path).rc != 0

    @property
    def pid(self) -> int | None:
        """run's pid, None when it is down."""
        return self.status.pid

    @property
    def log(self) -> SvService:
        """The service's logger (NAME/log)."""
        return SvService(self._host, f"{self.name}/log", self._scandir)

    def __repr__(self) -> str:
        return f"<svservice {self.name}>"
