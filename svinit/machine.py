"""The abstract machine: what a test does with a booted svinit system, whatever runs it.

Verbs read as sentences, as in the NixOS test driver: ``succeed``, ``fail``, ``wait_until_succeeds``,
``wait_for_service``, ``shutdown``, ``logs``. Every wait is built on one :func:`retry`, whose last try
logs what it saw. Timeouts are multiplied by the machine's ``timeout_multiplier`` (slow hosts, TCG).

An implementation says how a command runs (:meth:`Machine.execute`), how the machine stops
(:meth:`Machine.shutdown`) and where its console output is (:meth:`Machine.logs`): a container
(svinit.container) or a QEMU machine (svinit.qemu.machine). Everything else here runs through
``execute`` with a POSIX sh and svinit's tools in the guest, so it works the same on both.
"""

from __future__ import annotations

import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from svinit.errors import SvinitError
from svinit.guest import DEFAULT_SCANDIR, SCANDIR_SH, SVSTAT_ALL, scandir_path
from svinit.svstat import NotSupervised, Status, StatusFormatError, parse_svstat_line

log = logging.getLogger(__name__)
T = TypeVar("T")


#: A shell script run in the guest: runs $2 with a deadline of $1 seconds, in a session of its own so
#: that SIGKILL at the deadline ends whatever it started too (exit code 137 then). Needs setsid.
GUEST_WATCHDOG = """setsid /bin/sh -c "$2" &
p=$!
setsid /bin/sh -c 'sleep "$1"; kill -KILL -"$2"' sh "$1" "$p" >/dev/null 2>&1 &
w=$!
wait "$p" 2>/dev/null
rc=$?
kill -KILL -"$w" 2>/dev/null
exit "$rc"
"""


@dataclass(frozen=True)
class CommandResult:
    """A command's outcome in the guest."""

    cmd: str
    rc: int
    stdout: str
    stderr: str

    @property
    def succeeded(self) -> bool:
        return self.rc == 0


@dataclass(frozen=True)
class ShutdownResult:
    """How a machine stopped: its exit code and how long the stop took (wall clock)."""

    exit_code: int
    seconds: float


class MachineError(SvinitError):
    """Something a machine could not do; the message names the machine and what to check."""


class CommandFailed(MachineError):
    """A command given to ``succeed`` failed, or one given to ``fail`` succeeded.

    Attributes:
        machine: the machine's name.
        cmd: the command, as given to ``/bin/sh -c``.
        rc: its exit code.
        stdout, stderr: its output.
    """

    def __init__(self, machine: str, cmd: str, rc: int, stdout: str, stderr: str, expected: str = "0"):
        self.machine, self.cmd, self.rc, self.stdout, self.stderr = machine, cmd, rc, stdout, stderr
        out = "".join(
            f"\n  {name}: {text.rstrip()[-2000:]}"
            for name, text in (("stdout", stdout), ("stderr", stderr))
            if text
        )
        super().__init__(f"{machine}: `{cmd}` exited {rc}, expected {expected}{out}")


class Timeout(MachineError, TimeoutError):
    """A wait ran out of time; the message says what was awaited and what was last seen."""


def retry(fn: Callable[[bool], T], timeout: float, interval: float = 0.05, what: str = "") -> T:
    """Calls ``fn(last_try)`` until it returns something truthy, and returns that.

    The last call, at the deadline, gets ``last_try=True``: *fn* logs its diagnostics then (what it
    saw, and why that was not enough). The first call is immediate, and the interval grows from
    *interval* to at most 0.5 s, so quick conditions cost little and slow ones do not spin.

    Args:
        fn: the condition; it may raise to give up at once (a permanent failure).
        timeout: seconds before the last try.
        interval: the first pause between tries.
        what: what is awaited, for the message.

    Returns:
        The first truthy value *fn* returned.

    Raises:
        Timeout: *fn* returned nothing truthy by the last try.
    """
    deadline = time.monotonic() + timeout
    pause = interval
    while time.monotonic() < deadline:
        result = fn(False)
        if result:
            return result
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 1.5, 0.5)
    result = fn(True)
    if result:
        return result
    raise Timeout(
        f"timed out after {timeout:.3g} s waiting for {what or getattr(fn, '__name__', 'a condition')}"
    )


def default_multiplier() -> float:
    """$SVINIT_TIMEOUT_MULTIPLIER, else 1."""
    try:
        return float(os.environ.get("SVINIT_TIMEOUT_MULTIPLIER") or 1.0)
    except ValueError as e:
        raise MachineError(f"SVINIT_TIMEOUT_MULTIPLIER must be a number, got {e}") from None


class Machine(ABC):
    """A booted svinit system, container or virtual machine.

    Args:
        name: how messages name this machine.
        timeout_multiplier: every timeout a verb takes is multiplied by it (default
            $SVINIT_TIMEOUT_MULTIPLIER, else 1).
    """

    def __init__(self, name: str, timeout_multiplier: float | None = None):
        self.name = name
        self.timeout_multiplier = default_multiplier() if timeout_multiplier is None else timeout_multiplier
        #: the private networks it joined (svinit.network: the factories' network=)
        self.networks: list = []

    # What an implementation provides.

    @abstractmethod
    def start(self) -> None:
        """Boots the machine (returns once it runs; the services may still be starting)."""

    @abstractmethod
    def execute(self, cmd: str, timeout: float | None = None) -> CommandResult:
        """Runs *cmd* with ``/bin/sh -c`` in the guest, never raising for a non-zero exit code."""

    @abstractmethod
    def shutdown(self) -> ShutdownResult:
        """Stops the machine the way its platform asks (docker stop, ACPI power button); waits for it."""

    @abstractmethod
    def logs(self) -> str:
        """Everything the machine printed on its console so far (the container's stdout and stderr)."""

    @abstractmethod
    def is_running(self) -> bool:
        """The machine has not exited."""

    @abstractmethod
    def close(self) -> None:
        """Releases what the machine holds (a container is removed, QEMU is killed)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # The verbs.

    def timeout(self, seconds: float) -> float:
        """*seconds* scaled by the timeout multiplier."""
        return seconds * self.timeout_multiplier

    def succeed(self, *cmds: str, timeout: float | None = None) -> str:
        """Runs each command; returns their stdout, concatenated.

        Raises:
            CommandFailed: a command exited non-zero (it carries cmd, rc, stdout and stderr).
        """
        out = []
        for cmd in cmds:
            r = self.execute(cmd, None if timeout is None else self.timeout(timeout))
            if r.rc != 0:
                raise CommandFailed(self.name, cmd, r.rc, r.stdout, r.stderr)
            out.append(r.stdout)
        return "".join(out)

    def fail(self, *cmds: str, timeout: float | None = None) -> str:
        """Runs each command, expecting it to fail; returns their stdout, concatenated.

        Raises:
            CommandFailed: a command exited 0.
        """
        out = []
        for cmd in cmds:
            r = self.execute(cmd, None if timeout is None else self.timeout(timeout))
            if r.rc == 0:
                raise CommandFailed(self.name, cmd, r.rc, r.stdout, r.stderr, expected="non-zero")
            out.append(r.stdout)
        return "".join(out)

    def wait_until_succeeds(self, cmd: str, timeout: float = 10) -> str:
        """Runs *cmd* until it exits 0; returns its stdout.

        Raises:
            Timeout: it did not succeed within *timeout* (scaled); the message holds its last output.
        """
        last: list[CommandResult] = []

        def attempt(last_try: bool) -> str | bool:
            r = self.execute(cmd)
            last[:] = [r]
            if r.rc == 0:
                return r.stdout or True
            if last_try:
                log.info("%s: last try of `%s`: exit %d\n%s%s", self.name, cmd, r.rc, r.stdout, r.stderr)
            return False

        try:
            result = retry(attempt, self.timeout(timeout), what=f"`{cmd}` to succeed on {self.name}")
        except Timeout as e:
            r = last[0]
            raise Timeout(
                f"{e}; last exit {r.rc}, stdout {r.stdout[-500:]!r}, stderr {r.stderr[-500:]!r}"
            ) from None
        return result if isinstance(result, str) else ""

    def wait_until_fails(self, cmd: str, timeout: float = 10) -> str:
        """Runs *cmd* until it exits non-zero; returns its stdout. Raises Timeout."""

        def attempt(last_try: bool) -> str | bool:
            r = self.execute(cmd)
            if r.rc != 0:
                return r.stdout or True
            if last_try:
                log.info("%s: last try of `%s` still exits 0:\n%s", self.name, cmd, r.stdout)
            return False

        result = retry(attempt, self.timeout(timeout), what=f"`{cmd}` to fail on {self.name}")
        return result if isinstance(result, str) else ""

    # Its private networks (svinit.network).

    def _network(self, net):
        if net is None:
            if len(self.networks) != 1:
                raise MachineError(f"{self.name} is on {len(self.networks)} networks: name the one meant")
            return self.networks[0]
        if net not in self.networks:
            raise MachineError(f"{self.name} is not on network {net.name}: join it through the factory")
        return net

    def address(self, net=None) -> str:
        """Its address on the network *net* (the only one it joined when None)."""
        return self._network(net).address_of(self)

    def block(self, net=None) -> None:
        """Cuts its link to *net* (every network it joined when None), as if its cable were pulled."""
        for n in [self._network(net)] if net is not None else self.networks:
            n.block(self)

    def unblock(self, net=None) -> None:
        """Restores its link to *net* (every network it joined when None)."""
        for n in [self._network(net)] if net is not None else self.networks:
            n.unblock(self)

    # svinit's services, through svstat in the guest.

    def scandir(self) -> str:
        """The directory svscan runs in: /service, or its mirror /run/svinit/service on a read-only root."""
        return self.succeed(f"echo {SCANDIR_SH}").strip() or DEFAULT_SCANDIR

    def service_status(self, name: str) -> Status:
        """svstat's view of one service (``NAME``, ``NAME/log`` or an absolute directory).

        Raises:
            NotSupervised: no supervise runs for it.
            StatusFormatError: svstat's output is not the daemontools format.
            CommandFailed: svstat could not run.
        """
        out = self.succeed(f"svstat {scandir_path(name)}").splitlines()
        if len(out) != 1:
            raise StatusFormatError(f"{self.name}: svstat {name} printed {len(out)} lines: {out!r}")
        return parse_svstat_line(out[0])

    def services(self, loggers: bool = True) -> list[str]:
        """The services that should run: the scan directory's (not starting with '.', without a ``down``
        file), with their loggers (``NAME/log``) when *loggers*; names relative to the scan directory."""
        names = list(self.statuses())
        return names if loggers else [n for n in names if not n.endswith("/log")]

    def statuses(self) -> dict[str, Status | str]:
        """{name: Status} of every service that should run and every logger, from one svstat; names are
        relative to the scan directory; a service svstat cannot tell about maps to svstat's words
        (``supervise not running``).

        Raises:
            MachineError: the guest has no scan directory or no svstat (not an svinit system?).
            StatusFormatError: svstat's output is not in the daemontools format.
        """
        r = self.execute(SVSTAT_ALL)
        if r.rc in (3, 4):
            raise MachineError(f"{self.name}: {r.stderr.strip()}: is it an svinit system?")
        if r.rc != 0:
            raise CommandFailed(self.name, "svstat (every service)", r.rc, r.stdout, r.stderr)
        sd, _, out = r.stdout.partition("\n")
        result: dict[str, Status | str] = {}
        for line in out.splitlines():
            try:
                st = parse_svstat_line(line)
                path, value = st.path, st
            except NotSupervised:
                path, _, value = line.partition(": ")
            result[path.removeprefix(sd + "/")] = value
        return result

    def wait_for_service(self, name: str, timeout: float = 10) -> Status:
        """Waits until svstat says *name* (``NAME``, ``NAME/log``) is up and not paused; returns its Status.

        Raises:
            Timeout: it was not up within *timeout* (scaled); the message holds svstat's last line.
        """
        seen: list[object] = [None]

        def up(last_try: bool) -> Status | None:
            try:
                st = self.service_status(name)
            except (NotSupervised, CommandFailed) as e:
                seen[0] = e
                return None
            seen[0] = st
            if st.up and not st.paused:
                return st
            if last_try:
                log.info("%s: %s is not up: %s", self.name, name, st.describe())
            return None

        try:
            return retry(up, self.timeout(timeout), what=f"service {name} to be up on {self.name}")
        except Timeout as e:
            last = seen[0].describe() if isinstance(seen[0], Status) else seen[0]
            raise Timeout(f"{e}; svstat last said: {last}") from None

    def wait_for_all_services(self, timeout: float = 10) -> dict[str, Status]:
        """Waits until every service that should run, and every logger, is up; returns their statuses.

        Raises:
            Timeout: some were not up in time; the message lists them with svstat's words.
            MachineError: the machine exited meanwhile, or it has no svinit scan directory.
        """
        last: dict[str, Status | str] = {}

        def all_up(last_try: bool) -> dict[str, Status] | None:
            try:
                statuses = self.statuses()
            except MachineError:
                if not self.is_running():
                    raise MachineError(
                        f"{self.name} exited while its services were starting:\n{self.logs()[-2000:]}"
                    ) from None
                raise
            last.clear()
            last.update(statuses)
            down = {n: s for n, s in last.items() if not (isinstance(s, Status) and s.up)}
            if last and not down:
                return {n: s for n, s in last.items() if isinstance(s, Status)}
            if last_try:
                log.info(
                    "%s: not up: %s; its output so far:\n%s", self.name, _describe(down), self.logs()[-2000:]
                )
            return None

        try:
            return retry(all_up, self.timeout(timeout), what=f"every service to be up on {self.name}")
        except Timeout as e:
            down = {n: s for n, s in last.items() if not (isinstance(s, Status) and s.up)}
            detail = f"not up: {_describe(down)}" if last else "no services in the scan directory"
            raise Timeout(f"{e}; {detail}") from None


def _describe(statuses: dict[str, Status | str]) -> str:
    return "; ".join(
        f"{n} ({s.describe().split(': ', 1)[1] if isinstance(s, Status) else s})" for n, s in statuses.items()
    )
