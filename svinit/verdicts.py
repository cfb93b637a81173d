"""Is a run clean? The verdicts, pure: evidence in (svinit.evidence), a :class:`Verdict` out, a list of
:class:`Check` (name, ok, detail); clean when every check is ok. No I/O here, so tests feed each check
unclean evidence.

A container (:func:`verdict`):

1. boot: every service and logger is up within the boot timeout, and stays up with the same pid for the
   observation window (a service seen down while supervise wants it up, with a new pid, or with its
   uptime fallen back is restarting: a crash loop); each service not up is named with its supervise
   status and the last lines of its own log;
2. exit code: ``docker stop`` ends the container with exit code 0;
3. stop time: the stop takes less than the limit (default 5 s, far under Docker's 10 s grace);
4. order: every service stopped before its logger (the TAI64N times of the last change in ``DIR`` and
   ``DIR/log`` supervise records), and svscan's own logger after every other logger;
5. logs: each logger exited 0 (its supervise's last wait status), each log's ``current`` ends with a
   newline and has mode 0744 (multilog's mark of a clean finish), and each log holds every line it held
   before the stop. An empty log (its logger received nothing) is reported, and fails for a service the
   user says must log (``expect_log``).

A VM (:func:`vm_verdict`): boot (the same check: up, and steady through the window); ended (the guest
ended QEMU as asked, through svinit: :meth:`QemuShutdown.ended
<svinit.qemu.shutdown.QemuShutdown.ended>`, the one definition); time; disks (each cleanly unmounted);
order (every service down before its logger, from the shutdown's report).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from svinit.evidence import (
    DEFAULT_BOOT_TIMEOUT,
    Evidence,
    LogState,
    Snapshot,
    VmEvidence,
    is_logger,
    logger_of,
)
from svinit.guest import SVSCAN_LOG
from svinit.svstat import Status

#: The mode multilog gives `current` when it finishes it cleanly (as daemontools: 0744 marks "complete").
CLEAN_MODE = 0o744
DEFAULT_STOP_LIMIT = 5.0
DEFAULT_VM_SHUTDOWN_LIMIT = 30.0
#: How many of a log's last lines a failure message quotes.
TAIL_LINES = 3


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
    expect_log: tuple[str, ...] | list[str] = (),
) -> Verdict:
    """The checks for *ev*. Pure: no I/O.

    Args:
        ev: what the run left.
        stop_limit: the stop must take less than this many seconds.
        boot_timeout: for the message only (the time allowed to boot).
        docker_grace: for the messages only (when docker stop sends SIGKILL).
        expect_log: services (``heartbeat``) whose log must hold a line: an empty one fails.

    Returns:
        The Verdict: boot, exit code, stop time, order, logs.
    """
    checks = [
        _check_boot(ev, boot_timeout),
        _check_exit(ev, docker_grace),
        _check_stop_time(ev, stop_limit, docker_grace),
        _check_order(ev),
        _check_logs(ev, expect_log),
    ]
    facts = {
        "exit_code": ev.exit_code,
        "stop_seconds": None if ev.stop_seconds is None else round(ev.stop_seconds, 3),
        "stop_limit": stop_limit,
        "boot_seconds": None if ev.boot_seconds is None else round(ev.boot_seconds, 3),
        "observe_seconds": round(ev.observe_seconds, 3),
        "services": ev.services,
    }
    return Verdict(ev.subject, checks, facts)


def _check_boot(ev: Evidence, boot_timeout: float) -> Check:
    logs = ev.logs_before or ev.logs_after
    if ev.boot_seconds is None:
        problem = ev.boot_problem or f"not every service was up within {boot_timeout:g} s"
        return Check("boot", False, problem + not_up_tails(ev.watch, logs, ev.status_before))
    troubles = restarting(ev.watch, logs, ev.status_before)
    if troubles:
        return Check("boot", False, "; ".join(troubles))
    loggers = sum(1 for s in ev.services if is_logger(s))
    steady = f", steady for {ev.observe_seconds:.1f} s" if ev.observe_seconds else ""
    return Check(
        "boot",
        True,
        f"{len(ev.services) - loggers} services and {loggers} loggers up {ev.boot_seconds:.2f} s after start"
        f"{steady}",
    )


def restarting(
    watch: list[Snapshot], logs: dict[str, LogState], records: dict[str, Status] | None = None
) -> list[str]:
    """Every service that was not steady through the observation window *watch*, in words: seen down
    while supervise wants it up (or not supervised at all), up with another pid (a restart), or up with
    the same pid but a shorter uptime than before (a restart that reused the pid). Each names its status
    and the last lines of its own log (from *logs*; *records*: supervise records, for the last exit).

    Pure, shared by the container's and the VM's boot check."""
    if len(watch) < 2:
        return []
    names = sorted({n for _, snap in watch for n in snap})
    span = watch[-1][0]
    out = []
    for name in names:
        pids: list[int] = []
        downs = 0
        fell_back = ""
        prev: tuple[float, Status] | None = None
        last: Status | str | None = None
        for t, snap in watch:
            s = snap.get(name)
            if s is None:
                continue
            last = s
            if not isinstance(s, Status):
                downs += 1
                continue
            if not s.up:
                if s.want != "d":
                    downs += 1
                prev = None
                continue
            if s.pid is not None and s.pid not in pids:
                pids.append(s.pid)
            elif prev is not None and prev[1].pid == s.pid and s.seconds < prev[1].seconds:
                fell_back = f"its uptime fell back from {prev[1].seconds} to {s.seconds} s"
            prev = (t, s)
        starts = len(pids) - 1
        if not (downs or starts > 0 or fell_back):
            continue
        seen = []
        if starts > 0:
            seen.append(f"{starts + 1} pids ({', '.join(map(str, pids))})")
        if downs:
            seen.append(f"down in {downs} of {len(watch)} looks")
        if fell_back:
            seen.append(fell_back)
        out.append(
            f"{name} is restarting: {', '.join(seen)} in {span:.1f} s; "
            f"{_status_words(name, last, records)}{log_tail(name, logs)}"
        )
    return out


def not_up_tails(watch: list[Snapshot], logs: dict[str, LogState], records: dict[str, Status]) -> str:
    """For a boot that did not finish: each service svstat last saw not up, with its supervise status and
    the last lines of its log ("" when svstat could not be asked)."""
    if not watch:
        return ""
    snap = watch[-1][1]
    parts = [
        f"{n}: {_status_words(n, s, records)}{log_tail(n, logs)}"
        for n, s in sorted(snap.items())
        if not (isinstance(s, Status) and s.up)
    ]
    return "".join(f"; {p}" for p in parts)


def _status_words(name: str, last: Status | str | None, records: dict[str, Status] | None) -> str:
    rec = (records or {}).get(name)
    if rec is not None and rec.last_wait is not None:
        # the record knows the last exit, which svstat's line does not say
        words = last.describe().split(": ", 1)[1] if isinstance(last, Status) else str(last)
        return f"{words}, last {rec.last_exit}"
    if isinstance(last, Status):
        return last.describe().split(": ", 1)[1]
    return str(last) if last is not None else "not seen by svstat"


def log_dirs_of(name: str, logs: dict[str, LogState] | Any) -> list[str]:
    """The log directories that *name*'s logger writes (``heartbeat`` -> ``heartbeat/log/main``); a
    logger's own (``heartbeat/log``, ``svscan-log``) are its directories."""
    own = name if is_logger(name) else f"{name}/log"
    return sorted(d for d in logs if logger_of(d) == own)


def log_tail(name: str, logs: dict[str, LogState], n: int = TAIL_LINES) -> str:
    """ "; last lines of DIR: 'a' | 'b'" for *name*'s log, its stamps cut; "; DIR is empty" when its logger
    received nothing; "; no log" when it has none (a logger writes to svscan's, svscan-log)."""
    dirs = log_dirs_of(name, logs)
    if not dirs:
        return "; no log of its own" if name != SVSCAN_LOG else "; no svscan-log directory"
    parts = []
    for d in dirs:
        lines = [_unstamped(x) for x in logs[d].lines()][-n:]
        if lines:
            parts.append(f"; last lines of {d}: " + " | ".join(repr(x[:160]) for x in lines))
        else:
            parts.append(f"; {d} is empty")
    return "".join(parts)


def _unstamped(line: str) -> str:
    """A log line without multilog's TAI64N stamp (``@4000... text`` -> ``text``)."""
    if line.startswith("@4000") and len(line) > 25 and line[25] == " ":
        return line[26:]
    return line


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


def _check_logs(ev: Evidence, expect_log: tuple[str, ...] | list[str] = ()) -> Check:
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
    empty = sorted(d for d, after in ev.logs_after.items() if not after.lines())
    for name in expect_log:
        dirs = log_dirs_of(name, ev.logs_after)
        if not dirs:
            problems.append(f"{name}: no log directory ({name}/log/*/current), and it must log")
        elif all(d in empty for d in dirs):
            problems.append(f"{', '.join(dirs)} is empty: {name}'s logger received nothing, and it must log")
    if problems:
        return Check("logs", False, "; ".join(problems))
    none = f"; empty (their loggers received nothing): {', '.join(empty)}" if empty else ""
    return Check(
        "logs",
        True,
        f"{len(ev.logs_after) - len(empty)} logs complete ({total} lines): each logger exited 0, "
        f"current {CLEAN_MODE:04o} ending in a newline{none}",
    )


def vm_verdict(
    ev: VmEvidence,
    shutdown_limit: float = DEFAULT_VM_SHUTDOWN_LIMIT,
    expect_log: tuple[str, ...] | list[str] = (),
) -> Verdict:
    """The checks of one VM run: boot, logs (read in the guest once every service was up: an empty one
    is named, and fails for a service of *expect_log*), ended (QemuShutdown.ended: by the guest, as
    asked, through svinit), shutdown time, disks (each cleanly unmounted), order (every service down
    before its logger)."""
    checks = []
    troubles = restarting(ev.watch, ev.logs)
    if ev.boot_seconds is None:
        problem = ev.boot_problem or "the services did not all come up"
        checks.append(Check("boot", False, problem + not_up_tails(ev.watch, ev.logs, {})))
    elif troubles:
        checks.append(Check("boot", False, "; ".join(troubles)))
    else:
        steady = f", steady for {ev.observe_seconds:.1f} s" if ev.observe_seconds else ""
        checks.append(
            Check("boot", True, f"every service up {ev.boot_seconds:.1f} s after QEMU started{steady}")
        )
    checks.append(_check_vm_logs(ev, expect_log))
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


def _check_vm_logs(ev: VmEvidence, expect_log: tuple[str, ...] | list[str] = ()) -> Check:
    """The guest's logs as read once its services were up (the last lines of each ``current``): which
    are empty, and whether every service of *expect_log* has a log holding a line."""
    empty = sorted(d for d, st in ev.logs.items() if not st.lines())
    problems = []
    for name in expect_log:
        dirs = log_dirs_of(name, ev.logs)
        if not dirs:
            where = "no log was read from the guest" if not ev.logs else f"no {name}/log/*/current"
            problems.append(f"{name}: {where}, and it must log")
        elif all(d in empty for d in dirs):
            problems.append(f"{', '.join(dirs)} is empty: {name}'s logger received nothing, and it must log")
    none = f"; empty (their loggers received nothing): {', '.join(empty)}" if empty else ""
    if problems:
        return Check("logs", False, "; ".join(problems) + none)
    if not ev.logs:
        return Check("logs", True, "no log read from the guest (none, or the boot did not finish)")
    return Check("logs", True, f"{len(ev.logs) - len(empty)} logs hold lines while up{none}")
