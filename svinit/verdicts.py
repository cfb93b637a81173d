"""Is a run clean? The verdicts, pure: evidence in (svinit.evidence), a :class:`Verdict` out, a list of
:class:`Check` (name, ok, detail); clean when every check is ok. No I/O here, so tests feed each check
unclean evidence.

A container (:func:`verdict`):

1. boot: every service and logger is up within the boot timeout;
2. exit code: ``docker stop`` ends the container with exit code 0;
3. stop time: the stop takes less than the limit (default 5 s, far under Docker's 10 s grace);
4. order: every service stopped before its logger (the TAI64N times of the last change in ``DIR`` and
   ``DIR/log`` supervise records), and svscan's own logger after every other logger;
5. logs: each logger exited 0 (its supervise's last wait status), each log's ``current`` ends with a
   newline and has mode 0744 (multilog's mark of a clean finish), and each log holds every line it held
   before the stop.

A VM (:func:`vm_verdict`): boot; ended (the guest ended QEMU as asked, through svinit:
:meth:`QemuShutdown.ended <svinit.qemu.shutdown.QemuShutdown.ended>`, the one definition); time; disks
(each cleanly unmounted); order (every service down before its logger, from the shutdown's report).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from svinit.evidence import DEFAULT_BOOT_TIMEOUT, Evidence, VmEvidence, is_logger, logger_of
from svinit.guest import SVSCAN_LOG

#: The mode multilog gives `current` when it finishes it cleanly (as daemontools: 0744 marks "complete").
CLEAN_MODE = 0o744
DEFAULT_STOP_LIMIT = 5.0
DEFAULT_VM_SHUTDOWN_LIMIT = 30.0


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


def vm_verdict(ev: VmEvidence, shutdown_limit: float = DEFAULT_VM_SHUTDOWN_LIMIT) -> Verdict:
    """The checks of one VM run: boot, ended (QemuShutdown.ended: by the guest, as asked, through
    svinit), shutdown time, disks (each cleanly unmounted), order (every service down before its
    logger)."""
    checks = []
    if ev.boot_seconds is None:
        checks.append(Check("boot", False, ev.boot_problem or "the services did not all come up"))
    else:
        checks.append(Check("boot", True, f"every service up {ev.boot_seconds:.1f} s after QEMU started"))
    res = ev.shutdown
    if res is None:
        checks.append(Check("ended", False, "the machine did not stop in time: QEMU was killed"))
        checks.append(Check("time", False, "the shutdown did not finish"))
    else:
        checks.append(Check("ended", *res.ended()))
        text = f"{res.seconds:.1f} s (limit {shutdown_limit:g} s)"
        checks.append(Check("time", res.seconds <= shutdown_limit, text))
    if not ev.disks:
        checks.append(Check("disks", True, "no disk attached (the root is in RAM)"))
    else:
        bad = [d for d in ev.disks if not d.ok]
        detail = "; ".join(f"{Path(d.image).name}: {d.detail}" for d in (bad or ev.disks))
        checks.append(Check("disks", not bad, detail))
    report = res.stopped if res is not None else {}
    if not report:
        checks.append(Check("order", False, "no shutdown report on the console (is svinit.harness set?)"))
    else:
        late = [n for n, (s, lg) in report.items() if s is None or lg is None or not s < lg]
        if late:
            checks.append(Check("order", False, f"logger before its service: {', '.join(sorted(late))}"))
        else:
            checks.append(Check("order", True, f"{len(report)} services stopped before their loggers"))
    event = {"guest": res.guest, "reason": res.reason} if res is not None and res.reason else None
    facts = {
        "how": ev.how,
        "shutdown_event": event,
        "shutdown_seconds": res.seconds if res is not None else None,
        "boot_seconds": ev.boot_seconds,
        "disks": [asdict(d) for d in ev.disks],
    }
    return Verdict(ev.subject, checks, facts)
