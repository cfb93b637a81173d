"""The evidence of a run: what a container or a VM left, gathered from the machine and its disks, as
the verdicts (svinit.verdicts) need it.

- A container: :func:`collect` waits for every service and logger to be up, reads the logs,
  ``docker stop``s it, and reads the scan directory from the stopped container (``get_archive``):
  an :class:`Evidence`.
- A VM: :func:`collect_vm` waits for every service, writes to the data disk, ends the machine as asked
  and checks every ext4 disk on the host: a :class:`VmEvidence`, which holds the machine's
  :class:`~svinit.qemu.shutdown.QemuShutdown` as it is.
"""

from __future__ import annotations

import logging
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from svinit.container import ContainerMachine
from svinit.disks import DiskReport, verify_disk
from svinit.guest import DEFAULT_SCANDIR, SCANDIR_SH, SVSCAN_LOG
from svinit.machine import Machine, MachineError, Timeout
from svinit.qemu.machine import QemuMachine
from svinit.qemu.shutdown import QemuShutdown
from svinit.svstat import Status, StatusFormatError, parse_status

log = logging.getLogger(__name__)

DEFAULT_BOOT_TIMEOUT = 10.0
#: After every service is up, the seconds during which each must stay up with the same pid: a service
#: whose run exits (a crash loop: supervise restarts it each second) is seen down or with a new pid.
DEFAULT_OBSERVE = 1.5
#: How often svstat is asked during the observation window.
OBSERVE_INTERVAL = 0.2
#: svstat's view of every service at one moment: seconds since the window opened, {name: Status, or
#: svstat's words when it could not tell}.
Snapshot = tuple[float, dict[str, "Status | str"]]


@dataclass(frozen=True)
class LogState:
    """A multilog directory at one moment: its rotated files (``@*.s``, oldest first) and ``current``."""

    current: bytes = b""
    rotated: tuple[bytes, ...] = ()
    current_mode: int | None = None

    def lines(self, complete_only: bool = False) -> list[str]:
        """Every line, oldest first; with *complete_only*, without a last line lacking its newline."""
        data = b"".join(self.rotated) + self.current
        lines = data.decode(errors="replace").split("\n")
        last = lines.pop()  # "" after a final newline, else a partial line
        if last and not complete_only:
            lines.append(last)
        return lines


@dataclass
class Evidence:
    """What a run of a container left, as the checks need it.

    Names of services are relative to the scan directory (``heartbeat``, ``heartbeat/log``); names of
    log directories too (``heartbeat/log/main``).
    """

    subject: str
    #: seconds from start until every service and logger was up; None when they were not all up
    boot_seconds: float | None
    #: what was not up, or why booting could not be watched
    boot_problem: str = ""
    #: the services and loggers that should run (from svstat at boot)
    services: list[str] = field(default_factory=list)
    exit_code: int | None = None
    stop_seconds: float | None = None
    #: the supervise/status records read from the stopped container
    status_after: dict[str, Status] = field(default_factory=dict)
    #: the log directories before the stop, and after it
    logs_before: dict[str, LogState] = field(default_factory=dict)
    logs_after: dict[str, LogState] = field(default_factory=dict)
    #: the scan directory the run's svscan ran in
    scandir: str = DEFAULT_SCANDIR
    #: svstat's view of every service from the moment all were up through the observation window (or,
    #: when they were never all up, its last view)
    watch: list[Snapshot] = field(default_factory=list)
    #: the seconds every service was watched after the boot
    observe_seconds: float = 0.0
    #: the supervise/status records read with logs_before (their last exit, state letter)
    status_before: dict[str, Status] = field(default_factory=dict)


def is_logger(name: str) -> bool:
    return name.endswith("/log") or name == SVSCAN_LOG


def logger_of(logdir: str) -> str:
    """The logger service that writes the log directory *logdir* (``heartbeat/log/main`` ->
    ``heartbeat/log``)."""
    return logdir.rsplit("/", 1)[0]


def read_scan_tree(tar: tarfile.TarFile) -> tuple[dict[str, Status], dict[str, LogState]]:
    """The supervise records and log directories in a tar of the scan directory (get_archive's).

    Log directories are the directories of a logger (``NAME/log`` or svscan-log) holding ``current``.
    """
    members = {m.name.split("/", 1)[1]: m for m in tar.getmembers() if "/" in m.name}

    def read(name: str) -> bytes:
        f = tar.extractfile(members[name])
        return f.read() if f else b""

    statuses: dict[str, Status] = {}
    logs: dict[str, LogState] = {}
    for name, m in members.items():
        if name.endswith("/supervise/status") and m.isfile():
            svc = name.removesuffix("/supervise/status")
            try:
                statuses[svc] = parse_status(read(name), svc)
            except StatusFormatError as e:
                log.warning("%s", e)
        if name.endswith("/current") and m.isfile():
            d = name.removesuffix("/current")
            if not is_logger(logger_of(d)):
                continue
            rotated = sorted(n for n in members if n.startswith(d + "/@") and n.endswith(".s"))
            logs[d] = LogState(read(name), tuple(read(n) for n in rotated), m.mode)
    return statuses, logs


def watch_services(machine: Machine, first: dict[str, Status], seconds: float) -> list[Snapshot]:
    """svstat's view of every service, every OBSERVE_INTERVAL for *seconds* (scaled) after *first* (the
    view in which all were up): the evidence of a service that keeps restarting."""
    snaps: list[Snapshot] = [(0.0, dict(first))]
    t0 = time.monotonic()
    end = t0 + machine.timeout(seconds) if seconds > 0 else t0
    while time.monotonic() < end:
        time.sleep(min(OBSERVE_INTERVAL, max(0.0, end - time.monotonic())))
        try:
            snaps.append((time.monotonic() - t0, machine.statuses()))
        except (MachineError, StatusFormatError) as e:
            log.debug("svstat during the observation: %s", e)
            break
    return snaps


def last_statuses(machine: Machine) -> list[Snapshot]:
    """svstat's last view of every service, after a boot that did not finish; [] when svstat cannot say."""
    try:
        return [(0.0, machine.statuses())]
    except (MachineError, StatusFormatError) as e:
        log.debug("svstat after the boot: %s", e)
        return []


def collect(
    machine: ContainerMachine, boot_timeout: float = DEFAULT_BOOT_TIMEOUT, observe: float = DEFAULT_OBSERVE
) -> Evidence:
    """Gathers the evidence from a started container machine, and stops it.

    Waits for every service and logger to be up (at most *boot_timeout*, scaled), watches them for
    *observe* seconds (svstat), reads the scan directory's logs and supervise records, ``docker stop``s
    the container (timed), then reads the supervise records and the logs from the stopped container.

    Args:
        machine: a started ContainerMachine.
        boot_timeout: seconds to wait for every service to be up.
        observe: seconds every service must then stay up with the same pid.

    Returns:
        The Evidence (the container is stopped, not removed).
    """
    started = getattr(machine, "started_at", None) or time.monotonic()
    ev = Evidence(subject=getattr(machine, "image", machine.name), boot_seconds=None)
    try:
        up = machine.wait_for_all_services(boot_timeout)
        ev.boot_seconds = time.monotonic() - started
        ev.services = sorted(up)
        ev.watch = watch_services(machine, up, observe)
        ev.observe_seconds = ev.watch[-1][0]
        ev.scandir = machine.scandir()
        ev.status_before, ev.logs_before = read_scan_tree(machine.archive(ev.scandir))
    except (Timeout, MachineError, FileNotFoundError) as e:
        ev.boot_problem = str(e)
        log.debug("%s", e)
        if ev.boot_seconds is None and not ev.watch and machine.is_running():
            ev.watch = last_statuses(machine)
            try:
                ev.scandir = machine.scandir()
                ev.status_before, ev.logs_before = read_scan_tree(machine.archive(ev.scandir))
            except (MachineError, FileNotFoundError) as e2:
                log.debug("%s", e2)
    result = machine.shutdown()
    ev.exit_code, ev.stop_seconds = result.exit_code, result.seconds
    try:
        ev.status_after, ev.logs_after = read_scan_tree(machine.archive(ev.scandir))
    except FileNotFoundError as e:
        log.debug("%s", e)
    return ev


@dataclass
class VmEvidence:
    """What a run of a VM left, as the checks need it."""

    subject: str
    #: how the VM was asked to end: poweroff, acpi, ctrl-alt-del, reboot, halt, crash
    how: str
    boot_seconds: float | None
    boot_problem: str = ""
    #: how QEMU ended (the SHUTDOWN event, the kernel's and svinit's last words, the stop report); None
    #: when the stop did not finish
    shutdown: QemuShutdown | None = None
    disks: list[DiskReport] = field(default_factory=list)
    #: svstat's view of every service through the observation window (as Evidence.watch)
    watch: list[Snapshot] = field(default_factory=list)
    observe_seconds: float = 0.0
    #: the last lines of every log directory (``heartbeat/log/main``), read at the end of the window (or
    #: when the boot did not finish)
    logs: dict[str, LogState] = field(default_factory=dict)


#: The last lines of every logger's ``current`` in the guest, each file after a ``==> DIR`` line.
LOG_TAILS_SH = (
    f"cd {SCANDIR_SH} && for f in */log/*/current {SVSCAN_LOG}/*/current; do "
    '[ -f "$f" ] && { echo "==> ${f%/current}"; tail -n 5 "$f"; }; done; true'
)


def read_log_tails(m: Machine) -> dict[str, LogState]:
    """The last lines of every log directory in the guest (through its shell), as LogStates holding
    those lines; {} when the guest cannot say."""
    try:
        r = m.execute(LOG_TAILS_SH)
    except MachineError as e:
        log.debug("log tails: %s", e)
        return {}
    logs: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in r.stdout.splitlines():
        if line.startswith("==> "):
            current = logs.setdefault(line[4:], [])
        elif current is not None:
            current.append(line)
    return {d: LogState("".join(x + "\n" for x in lines).encode()) for d, lines in logs.items()}


def collect_vm(
    m: QemuMachine,
    how: str,
    disks: list[Path],
    write_data: bool,
    boot_timeout: float,
    shutdown_limit: float,
    subject: str,
    observe: float = DEFAULT_OBSERVE,
) -> VmEvidence:
    """Boots *m*, waits for every service, watches them for *observe* seconds, reads the last lines of
    their logs, writes to /data (with *write_data*), ends it *how* (crash: QMP quit) and checks every
    ext4 image of *disks* on the host once QEMU has exited."""
    boot_seconds, boot_problem = None, ""
    watch: list[Snapshot] = []
    logs: dict[str, LogState] = {}
    t0 = time.monotonic()
    m.start()
    try:
        up = m.wait_for_all_services(boot_timeout)
        boot_seconds = time.monotonic() - t0
        watch = watch_services(m, up, observe)
        logs = read_log_tails(m)
        if write_data:
            m.succeed("grep -q ' /data ' /proc/mounts && echo written by svinit check > /data/check && sync")
    except (MachineError, Timeout) as e:
        boot_problem = str(e).splitlines()[0]
        if boot_seconds is None and m.is_running():
            watch = last_statuses(m)
            logs = read_log_tails(m)
    res: QemuShutdown | None
    try:
        res = m.crash() if how == "crash" else m.shutdown(how, timeout=shutdown_limit)
    except Timeout as e:
        res = None
        boot_problem = boot_problem or str(e).splitlines()[0]
    return VmEvidence(
        subject=subject,
        how=how,
        boot_seconds=boot_seconds,
        boot_problem=boot_problem,
        shutdown=res,
        disks=[verify_disk(d) for d in disks],
        watch=watch,
        observe_seconds=watch[-1][0] if watch else 0.0,
        logs=logs,
    )


def collect_stop(m: ContainerMachine) -> Evidence:
    """docker stop of a running container, with the scan tree read before and after: the evidence of
    the stop alone (the boot was the caller's to wait for). The fault campaign judges each stop so."""
    scandir = m.scandir()
    _, before = read_scan_tree(m.archive(scandir))
    r = m.shutdown()
    status, after = read_scan_tree(m.archive(scandir))
    ev = Evidence(m.name, 0.0, exit_code=r.exit_code, stop_seconds=r.seconds)
    ev.status_after, ev.logs_before, ev.logs_after = status, before, after
    return ev
