"""Is a container's boot and shutdown clean? The verdict as data, and how it is reached.

Two halves, kept apart so tests can feed the first one unclean inputs:

- :func:`verdict` is pure: an :class:`Evidence` in (what a run left: boot time, exit code, stop time, the
  supervise records and logs read from the stopped container, the logs as they were before the stop),
  a :class:`Verdict` out: a list of :class:`Check` (name, ok, detail); clean when every check is ok.
- :func:`collect` runs a container machine to gather the evidence: it waits for every service and
  logger to be up, reads the logs, ``docker stop``s it, and reads the scan directory from the stopped
  container (``get_archive``). :func:`check_container` does it all for an image and saves artifacts
  when the verdict is not clean.

The checks:

1. boot: every service and logger is up within the boot timeout;
2. exit code: ``docker stop`` ends the container with exit code 0;
3. stop time: the stop takes less than the limit (default 5 s, far under Docker's 10 s grace);
4. order: every service stopped before its logger (the TAI64N times of the last change in ``DIR`` and
   ``DIR/log`` supervise records), and svscan's own logger after every other logger;
5. logs: each logger exited 0 (its supervise's last wait status), each log's ``current`` ends with a
   newline and has mode 0744 (multilog's mark of a clean finish), and each log holds every line it held
   before the stop.
"""

from __future__ import annotations

import json
import logging
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from svinit.machine import MachineError, Timeout
from svinit.svstat import Status, StatusFormatError, parse_status

log = logging.getLogger(__name__)

#: svinit's logger of svscan itself (and of services without a log/): it stops after every other logger.
SVSCAN_LOG = "svscan-log"
#: The mode multilog gives `current` when it finishes it cleanly (as daemontools: 0744 marks "complete").
CLEAN_MODE = 0o744
DEFAULT_STOP_LIMIT = 5.0
DEFAULT_BOOT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Check:
    """One verdict: its name, whether it passed, and what was seen (or what went wrong)."""

    name: str
    ok: bool
    detail: str


@dataclass
class Verdict:
    """All checks for one run; clean when every check is ok."""

    subject: str
    checks: list[Check]
    #: measurements worth reporting (exit code, stop and boot seconds)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def __getitem__(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check named {name!r} (checks: {', '.join(c.name for c in self.checks)})")

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "clean": self.clean,
            "checks": [asdict(c) for c in self.checks],
            **self.facts,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def table(self) -> str:
        """The verdict for people: one row per check, then CLEAN or NOT CLEAN."""
        width = max(len(c.name) for c in self.checks) if self.checks else 0
        rows = [f"svinit check: {self.subject}"]
        rows += [f"  {'ok' if c.ok else 'FAIL':4}  {c.name:{width}}  {c.detail}" for c in self.checks]
        failed = ", ".join(c.name for c in self.failed)
        rows.append("clean" if self.clean else f"NOT CLEAN ({failed})")
        return "\n".join(rows)


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


def is_logger(name: str) -> bool:
    return name.endswith("/log") or name == SVSCAN_LOG


def logger_of(logdir: str) -> str:
    """The logger service that writes the log directory *logdir* (``heartbeat/log/main`` ->
    ``heartbeat/log``)."""
    return logdir.rsplit("/", 1)[0]


def verdict(
    ev: Evidence,
    stop_limit: float = DEFAULT_STOP_LIMIT,
    boot_timeout: float = DEFAULT_BOOT_TIMEOUT,
    docker_grace: float = 10.0,
) -> Verdict:
    """The checks for *ev*. Pure: no I/O.

    Args:
        ev: what the run left.
        stop_limit: the stop must take less than this many seconds.
        boot_timeout: for the message only (the time allowed to boot).
        docker_grace: for the messages only (when docker stop sends SIGKILL).

    Returns:
        The Verdict: boot, exit code, stop time, order, logs.
    """
    checks = [
        _check_boot(ev, boot_timeout),
        _check_exit(ev, docker_grace),
        _check_stop_time(ev, stop_limit, docker_grace),
        _check_order(ev),
        _check_logs(ev),
    ]
    facts = {
        "exit_code": ev.exit_code,
        "stop_seconds": None if ev.stop_seconds is None else round(ev.stop_seconds, 3),
        "stop_limit": stop_limit,
        "boot_seconds": None if ev.boot_seconds is None else round(ev.boot_seconds, 3),
        "services": ev.services,
    }
    return Verdict(ev.subject, checks, facts)


def _check_boot(ev: Evidence, boot_timeout: float) -> Check:
    if ev.boot_seconds is None:
        return Check("boot", False, ev.boot_problem or f"not every service was up within {boot_timeout:g} s")
    loggers = sum(1 for s in ev.services if is_logger(s))
    return Check(
        "boot",
        True,
        f"{len(ev.services) - loggers} services and {loggers} loggers up {ev.boot_seconds:.2f} s after start",
    )


def _check_exit(ev: Evidence, grace: float) -> Check:
    code = ev.exit_code
    if code == 0:
        return Check("exit code", True, "0 after docker stop")
    if code is None:
        return Check("exit code", False, "unknown: the container was never stopped")
    if code == 137:
        why = f"SIGKILL, Docker's after its {grace:g} s grace: process 1 did not end on SIGTERM"
    elif code > 128:
        why = f"process 1 ended by signal {code - 128}"
    else:
        why = "process 1 exited with it"
    return Check("exit code", False, f"{code} ({why})")


def _check_stop_time(ev: Evidence, limit: float, grace: float) -> Check:
    s = ev.stop_seconds
    if s is None:
        return Check("stop time", False, "unknown: the container was never stopped")
    text = f"{s:.2f} s (limit {limit:g} s; Docker kills at {grace:g} s)"
    return Check("stop time", s < limit, text)


def _check_order(ev: Evidence) -> Check:
    st = ev.status_after
    if not st:
        return Check("order", False, "no supervise records in the stopped container: no services ran")
    problems: list[str] = []
    pairs = 0
    for name, s in sorted(st.items()):
        if s.up:
            problems.append(f"{name} still recorded up (pid {s.pid}): killed with the container, not stopped")
    loggers = [n for n in st if n.endswith("/log")]
    for lg in sorted(loggers):
        svc = lg.removesuffix("/log")
        if svc not in st:
            continue
        a, b = st[svc], st[lg]
        if a.up or b.up or a.changed is None or b.changed is None:
            continue
        pairs += 1
        if not a.changed < b.changed:
            problems.append(f"{lg} stopped {a.changed - b.changed:.3f} s before {svc}")
    last_logger = ""
    if SVSCAN_LOG in st and st[SVSCAN_LOG].changed is not None:
        sl = st[SVSCAN_LOG].changed
        later = [lg for lg in loggers if st[lg].changed is not None and not st[lg].changed < sl]
        if later:
            problems.append(f"{SVSCAN_LOG} stopped before {', '.join(sorted(later))}")
        last_logger = f"; {SVSCAN_LOG} last"
    if problems:
        return Check("order", False, "; ".join(problems))
    if not pairs:
        return Check("order", True, f"no service has a logger ({len(st)} services stopped){last_logger}")
    return Check("order", True, f"{pairs} services stopped before their loggers{last_logger}")


def _check_logs(ev: Evidence) -> Check:
    if not ev.logs_after:
        return Check("logs", False, "no log directories (DIR/log/main/current) in the stopped container")
    problems: list[str] = []
    total = 0
    loggers = sorted({logger_of(d) for d in ev.logs_after})
    for lg in loggers:
        s = ev.status_after.get(lg)
        if s is None:
            problems.append(f"{lg}: no supervise record")
        elif s.up:
            problems.append(f"{lg}: still up (pid {s.pid}) after the stop")
        elif s.last_wait is not None and s.exit_code != 0:
            problems.append(f"{lg}: its last exit was {s.last_exit}, not a clean exit 0")
    for d, after in sorted(ev.logs_after.items()):
        if after.current and not after.current.endswith(b"\n"):
            tail = after.current.rsplit(b"\n", 1)[-1][-60:].decode(errors="replace")
            problems.append(f"{d}/current does not end with a newline (last bytes {tail!r})")
        if after.current_mode is not None and after.current_mode & 0o777 != CLEAN_MODE:
            problems.append(
                f"{d}/current has mode {after.current_mode & 0o777:04o}, not {CLEAN_MODE:04o}: "
                f"multilog did not finish it"
            )
        now = after.lines()
        total += len(now)
        before = ev.logs_before.get(d)
        if before is not None:
            held = set(now)
            lost = [line for line in before.lines(complete_only=True) if line not in held]
            if lost:
                problems.append(f"{d}: {len(lost)} lines of before the stop are gone, first {lost[0]!r}")
    for d in sorted(set(ev.logs_before) - set(ev.logs_after)):
        problems.append(f"{d}: the log directory is gone after the stop")
    if problems:
        return Check("logs", False, "; ".join(problems))
    return Check(
        "logs",
        True,
        f"{len(ev.logs_after)} logs complete ({total} lines): each logger exited 0, "
        f"current {CLEAN_MODE:04o} ending in a newline",
    )


# Gathering the evidence from a container.


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


def collect(machine, boot_timeout: float = DEFAULT_BOOT_TIMEOUT) -> Evidence:
    """Gathers the evidence from a started container machine, and stops it.

    Waits for every service and logger to be up (at most *boot_timeout*, scaled), reads the scan
    directory's logs, ``docker stop``s the container (timed), then reads the supervise records and the
    logs from the stopped container.

    Args:
        machine: a started ContainerMachine.
        boot_timeout: seconds to wait for every service to be up.

    Returns:
        The Evidence (the container is stopped, not removed).
    """
    started = getattr(machine, "started_at", None) or time.monotonic()
    ev = Evidence(subject=getattr(machine, "image", machine.name), boot_seconds=None)
    scandir = "/service"
    try:
        up = machine.wait_for_all_services(boot_timeout)
        ev.boot_seconds = time.monotonic() - started
        ev.services = sorted(up)
        scandir = machine.scandir()
        _, ev.logs_before = read_scan_tree(machine.archive(scandir))
    except (Timeout, MachineError, FileNotFoundError) as e:
        ev.boot_problem = str(e)
        log.debug("%s", e)
    result = machine.shutdown()
    ev.exit_code, ev.stop_seconds = result.exit_code, result.seconds
    try:
        ev.status_after, ev.logs_after = read_scan_tree(machine.archive(scandir))
    except FileNotFoundError as e:
        log.debug("%s", e)
    return ev


def save_artifacts(machine, v: Verdict, dest: Path, scandir: str = "/service") -> Path:
    """Saves what explains a verdict into *dest*: verdict.json, docker.log (the container's output),
    and the scan directory's tree as it was left (service/: logs and supervise records)."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "verdict.json").write_text(v.to_json() + "\n")
    (dest / "docker.log").write_text(machine.logs())
    try:
        machine.copy_out(scandir, dest)
    except (FileNotFoundError, MachineError) as e:
        (dest / "service.missing").write_text(f"{e}\n")
    return dest


def check_container(
    image: str,
    stop_limit: float = DEFAULT_STOP_LIMIT,
    boot_timeout: float = DEFAULT_BOOT_TIMEOUT,
    stop_timeout: int = 10,
    artifacts: Path | None = None,
    client=None,
    **options: Any,
) -> Verdict:
    """Boots *image*, waits for its services, stops it with ``docker stop`` and judges the run.

    Args:
        image: a local image (never pulled).
        stop_limit: the stop must take less than this many seconds.
        boot_timeout: seconds allowed for every service and logger to be up.
        stop_timeout: the seconds docker stop waits before SIGKILL (Docker's default, 10).
        artifacts: where to save docker.log, the scan directory and verdict.json when not clean.
        client: a docker client (default: from the environment).
        **options: more ContainerMachine options (environment, volumes, ...).

    Returns:
        The Verdict; the container is removed.

    Raises:
        ImageMissing: the image is not present locally.
        MachineError: docker could not start the container.
    """
    from svinit.container import ContainerMachine

    with ContainerMachine(image, client=client, stop_timeout=stop_timeout, **options) as m:
        m.start()
        ev = collect(m, boot_timeout)
        v = verdict(ev, stop_limit, boot_timeout, docker_grace=stop_timeout)
        if not v.clean and artifacts is not None:
            save_artifacts(m, v, artifacts)
            v.facts["artifacts"] = str(artifacts)
    return v


# ---------------------------------------------------------------------------------------------------
# Virtual machines: the guest ended QEMU as asked, in time, every disk cleanly unmounted, services
# stopped before their loggers.

#: The kernel's last words for each way of ending a VM.
KERNEL_LINES = {
    "poweroff": "reboot: Power down",
    "acpi": "reboot: Power down",
    "reboot": "reboot: Restarting system",
    "ctrl-alt-del": "reboot: Restarting system",
    "halt": "reboot: System halted",
}
#: The QMP SHUTDOWN reason each way of stopping gives under -no-reboot (halt: QEMU keeps running, the
#: harness then quits it).
EXPECTED_REASONS = {
    "poweroff": "guest-shutdown",
    "acpi": "guest-shutdown",
    "reboot": "guest-reset",
    "ctrl-alt-del": "guest-reset",
    "halt": "host-qmp-quit",
}
DEFAULT_VM_SHUTDOWN_LIMIT = 30.0


@dataclass(frozen=True)
class DiskReport:
    """Whether an ext2/3/4 image was cleanly unmounted: no needs_recovery, state clean, e2fsck -fn 0."""

    image: str
    ok: bool
    detail: str
    needs_recovery: bool | None = None
    state: str | None = None
    fsck_exit: int | None = None
    fsck_output: str = ""


def verify_disk(image: Path | str) -> DiskReport:
    """Checks an ext2/3/4 image file on the host, read-only: `dumpe2fs -h` (a journaled filesystem left
    mounted still says "clean", but keeps the feature needs_recovery; one without a journal says "not
    clean") and `e2fsck -fn` (it must find nothing).

    Raises:
        FileNotFoundError: there is no such image.
    """
    import subprocess

    image = str(image)
    if not Path(image).exists():
        raise FileNotFoundError(f"{image}: no such disk image")
    dump = subprocess.run(["dumpe2fs", "-h", image], capture_output=True, text=True)
    if dump.returncode != 0:
        why = dump.stderr.strip().splitlines()[-1] if dump.stderr.strip() else f"exit {dump.returncode}"
        return DiskReport(image, False, f"not an ext2/3/4 filesystem (dumpe2fs: {why})")
    features, state = "", None
    for line in dump.stdout.splitlines():
        key, _, value = line.partition(":")
        if key == "Filesystem features":
            features = value
        elif key == "Filesystem state":
            state = value.strip()
    needs_recovery = "needs_recovery" in features.split()
    fsck = subprocess.run(["e2fsck", "-fn", image], capture_output=True, text=True)
    problems = []
    if needs_recovery:
        problems.append("needs_recovery is set: the journal was not closed (left mounted)")
    if state != "clean":
        problems.append(f"filesystem state {state!r}")
    if fsck.returncode != 0:
        problems.append(f"e2fsck -fn exit {fsck.returncode}")
    detail = (
        "; ".join(problems) if problems else "cleanly unmounted: no needs_recovery, state clean, e2fsck -fn 0"
    )
    return DiskReport(
        image,
        not problems,
        detail,
        needs_recovery,
        state,
        fsck.returncode,
        (fsck.stdout + fsck.stderr)[-4000:],
    )


def parse_stop_report(console: str) -> dict[str, tuple[Any, Any]]:
    """The shutdown's report on the console (with svinit.harness set): {service: (down, logger down)},
    as Tai64n stamps read from the supervise/status records, from lines
    ``svinit: stopped: NAME @<24 hex> log @<24 hex>``."""
    import re

    from svinit.svstat import Tai64n

    out = {}
    for m in re.finditer(r"svinit: stopped: (\S+) @([0-9a-f]{24}|) log @([0-9a-f]{24}|)", console):
        name, s, lg = m.groups()
        out[name] = (Tai64n.from_label("@" + s) if s else None, Tai64n.from_label("@" + lg) if lg else None)
    return out


@dataclass
class VmEvidence:
    """What a run of a VM left, as the checks need it."""

    subject: str
    #: how the VM was asked to end: poweroff, acpi, ctrl-alt-del, reboot, halt
    how: str
    boot_seconds: float | None
    boot_problem: str = ""
    #: the QMP SHUTDOWN event's data ({"guest": bool, "reason": str}), None when there was none
    shutdown_event: dict[str, Any] | None = None
    #: seconds from the request until QEMU ended (or the guest halted)
    shutdown_seconds: float | None = None
    #: the kernel's last words on the console (reboot: Power down / Restarting system / System halted)
    kernel_final: str = ""
    disks: list[DiskReport] = field(default_factory=list)
    #: {service: (down, logger down)} from the shutdown's report on the console
    stop_report: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def vm_verdict(ev: VmEvidence, shutdown_limit: float = DEFAULT_VM_SHUTDOWN_LIMIT) -> Verdict:
    """The checks of one VM run: boot, ended (by the guest, for the reason asked), shutdown time, disks
    (each cleanly unmounted), order (every service down before its logger)."""
    checks = []
    if ev.boot_seconds is None:
        checks.append(Check("boot", False, ev.boot_problem or "the services did not all come up"))
    else:
        checks.append(Check("boot", True, f"every service up {ev.boot_seconds:.1f} s after QEMU started"))
    want = EXPECTED_REASONS.get(ev.how, "guest-shutdown")
    last_words = KERNEL_LINES.get(ev.how, "reboot: Power down")
    e = ev.shutdown_event
    if ev.kernel_final != last_words:
        seen = ev.kernel_final or "no last words of the kernel"
        checks.append(
            Check("ended", False, f"the console shows {seen!r}; a clean {ev.how} ends with {last_words!r}")
        )
    elif ev.how == "halt":
        # the kernel halts and QEMU goes on: the harness quits it
        checks.append(Check("ended", True, "the kernel halted (then the harness quit QEMU)"))
    elif e is None:
        checks.append(
            Check("ended", False, "QEMU sent no SHUTDOWN event: it did not end, or ended by a crash")
        )
    elif not e.get("guest") or e.get("reason") != want:
        checks.append(
            Check(
                "ended",
                False,
                f"SHUTDOWN guest={e.get('guest')} reason={e.get('reason')}; "
                f"a clean {ev.how} gives guest=True reason={want}",
            )
        )
    else:
        checks.append(Check("ended", True, f"by the guest: SHUTDOWN reason {want}"))
    if ev.shutdown_seconds is None:
        checks.append(Check("time", False, "the shutdown did not finish"))
    else:
        checks.append(
            Check(
                "time",
                ev.shutdown_seconds <= shutdown_limit,
                f"{ev.shutdown_seconds:.1f} s (limit {shutdown_limit:g} s)",
            )
        )
    if not ev.disks:
        checks.append(Check("disks", True, "no disk attached (the root is in RAM)"))
    else:
        bad = [d for d in ev.disks if not d.ok]
        detail = "; ".join(f"{Path(d.image).name}: {d.detail}" for d in (bad or ev.disks))
        checks.append(Check("disks", not bad, detail))
    if not ev.stop_report:
        checks.append(Check("order", False, "no shutdown report on the console (is svinit.harness set?)"))
    else:
        late = [n for n, (s, lg) in ev.stop_report.items() if s is None or lg is None or not s < lg]
        checks.append(
            Check(
                "order",
                not late,
                f"logger before its service: {', '.join(sorted(late))}"
                if late
                else f"{len(ev.stop_report)} services stopped before their loggers",
            )
        )
    facts = {
        "how": ev.how,
        "shutdown_event": e,
        "shutdown_seconds": ev.shutdown_seconds,
        "boot_seconds": ev.boot_seconds,
        "disks": [asdict(d) for d in ev.disks],
    }
    return Verdict(ev.subject, checks, facts)


def make_data_disk(path: Path, size_mb: int = 64, label: str = "svdata") -> Path:
    """An empty ext4 image labelled *label*: the reference VM mounts it at /data."""
    import subprocess

    with open(path, "wb") as f:
        f.truncate(size_mb * 2**20)
    proc = subprocess.run(["mkfs.ext4", "-q", "-F", "-L", label, str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise MachineError(f"mkfs.ext4 of {path} failed: {proc.stderr.strip()}")
    return path


def check_vm(
    build_dir: Path | None = None,
    layout: str = "initramfs",
    how: str = "poweroff",
    data_disk: bool = True,
    shutdown_limit: float = DEFAULT_VM_SHUTDOWN_LIMIT,
    boot_timeout: float = 60.0,
    artifacts: Path | None = None,
    **options: Any,
) -> Verdict:
    """Boots a VM, waits for its services, writes to its data disk, ends it *how* and judges the run.

    Args:
        build_dir: a `build_vm` output (default: the reference VM of *layout*, built if needed).
        layout: initramfs or disk, when *build_dir* is not given.
        how: poweroff, acpi, ctrl-alt-del, reboot, halt; or crash (QMP quit: the power cut, unclean).
        data_disk: attach a fresh ext4 disk labelled svdata (mounted at /data) and write to it.
        shutdown_limit: seconds (before the TCG factor) the end may take.
        boot_timeout: seconds (before the TCG factor) for every service to be up.
        artifacts: where to save console.log, events.json, verdict.json and disk reports when not clean.
        **options: more QemuMachine options (memory, accel, timeout_multiplier...).

    Returns:
        The Verdict (root.img is a copy: the built one is not changed).

    Raises:
        MachineError: QEMU could not start, or the VM could not be built.
    """
    import tempfile

    from svinit.build import build_vm, vm_dir
    from svinit.vm import QemuMachine

    # a given build is used as it is (it may have an overlay); the reference VM is built if needed
    build_dir = Path(build_dir) if build_dir is not None else build_vm(vm_dir(layout), layout=layout)
    for name in ("vmlinuz", "initramfs.img", "cmdline"):
        if not (build_dir / name).exists():
            raise MachineError(f"{build_dir} has no {name}: is it the output of `svinit build vm`?")
    with tempfile.TemporaryDirectory(prefix="svinit-check-vm-") as tmp:
        tmp = Path(tmp)
        has_root = (build_dir / "root.img").exists()
        disks = [make_data_disk(tmp / "data.img")] if data_disk else []
        m = QemuMachine.from_build(
            build_dir, disk_copy=tmp / "root.img" if has_root else None, disks=disks, **options
        )
        boot_seconds, boot_problem = None, ""
        with m:
            t0 = time.monotonic()
            m.start()
            try:
                m.wait_for_all_services(boot_timeout)
                boot_seconds = time.monotonic() - t0
                if data_disk:
                    m.succeed(
                        "grep -q ' /data ' /proc/mounts && echo written by svinit check > /data/check && sync"
                    )
            except (MachineError, Timeout) as e:
                boot_problem = str(e).splitlines()[0]
            try:
                res = m.crash() if how == "crash" else m.shutdown(how, timeout=shutdown_limit)
            except Timeout as e:
                res = None
                boot_problem = boot_problem or str(e).splitlines()[0]
            reports = [verify_disk(d) for d in ([tmp / "root.img"] if has_root else []) + disks]
            ev = VmEvidence(
                subject=f"{build_dir} ({how})",
                how=how,
                boot_seconds=boot_seconds,
                boot_problem=boot_problem,
                shutdown_event={"guest": res.guest, "reason": res.reason} if res and res.reason else None,
                shutdown_seconds=res.seconds if res else None,
                kernel_final=(res.kernel_line or "") if res else "",
                disks=reports,
                stop_report=res.stopped if res else {},
            )
            v = vm_verdict(ev, m.timeout(shutdown_limit))
            v.facts["accel"] = m.accel
            if not v.clean and artifacts is not None:
                artifacts.mkdir(parents=True, exist_ok=True)
                (artifacts / "verdict.json").write_text(v.to_json() + "\n")
                (artifacts / "console.log").write_text(m.logs())
                events = m.qmp.events if m.qmp is not None else []
                (artifacts / "events.json").write_text(json.dumps(events, indent=2, default=str) + "\n")
                for r in reports:
                    (artifacts / f"{Path(r.image).name}.e2fsck.txt").write_text(r.fsck_output)
                v.facts["artifacts"] = str(artifacts)
    return v
