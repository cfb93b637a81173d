"""How a QEMU machine ended: the shutdown record, read from QMP's SHUTDOWN event and the console, and
the one definition of a clean end (:meth:`QemuShutdown.ended`), which the VM verdict uses too."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from svinit.guest import Done, parse_asked_by, parse_done, parse_stop_report
from svinit.machine import ShutdownResult
from svinit.svstat import Tai64n

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
#: Every way of ending a machine: the clean ones, and crash (QMP quit: a power cut, never clean).
HOWS = (*KERNEL_LINES, "crash")
_KERNEL_END = re.compile("|".join(re.escape(line) for line in dict.fromkeys(KERNEL_LINES.values())))
PANIC = "Kernel panic - not syncing"


@dataclass(frozen=True)
class QemuShutdown(ShutdownResult):
    """How a QEMU machine ended.

    Attributes:
        exit_code: QEMU's exit status (0 whatever the guest did; 128+N if a signal N ended it).
        seconds: from the request to QEMU's exit (wall clock).
        how: the way it was asked to stop (poweroff, acpi, ctrl-alt-del, reboot, halt, crash).
        guest: the QMP SHUTDOWN event's ``guest`` (True: the guest itself ended), None without one.
        reason: its ``reason`` (guest-shutdown, guest-reset, host-qmp-quit, host-signal...), or None.
        kernel_line: the kernel's last words (``reboot: Power down``), or None if it printed none.
        svinit_done: svinit's ``svinit: ACTION: done in N ms (exit code C)`` (guest.Done), or None.
        stopped: with svinit.harness, {service: (service down, logger down)} as Tai64n stamps, from the
            shutdown's report on the console (guest.parse_stop_report).
        panicked: the kernel panicked during this boot.
        unasked: the guest ended (or was ending) by itself before the harness asked it to stop.
        asked_by: who asked svinit for its shutdown (``poweroff (pid 298, its parent 297: sh)``), from
            the console, or None.
    """

    how: str = ""
    guest: bool | None = None
    reason: str | None = None
    kernel_line: str | None = None
    svinit_done: Done | None = None
    stopped: dict[str, tuple[Tai64n | None, Tai64n | None]] = field(default_factory=dict)
    panicked: bool = False
    unasked: bool = False
    asked_by: str | None = None

    @classmethod
    def read(
        cls,
        how: str,
        exit_code: int,
        seconds: float,
        console: str,
        event: dict[str, Any] | None,
        unasked: bool = False,
    ) -> QemuShutdown:
        """The record of a boot that ended: *console* is its transcript, *event* the last QMP SHUTDOWN
        event's data (None without one); *unasked*: it ended before the harness asked."""
        event = event or {}
        ends = _KERNEL_END.findall(console)
        return cls(
            exit_code=exit_code,
            seconds=seconds,
            how=how,
            guest=event.get("guest"),
            reason=event.get("reason"),
            kernel_line=ends[-1] if ends else None,
            svinit_done=parse_done(console),
            stopped=parse_stop_report(console),
            panicked=PANIC in console,
            unasked=unasked,
            asked_by=parse_asked_by(console),
        )

    def ended(self) -> tuple[bool, str]:
        """Whether the guest stopped the way it was asked, through svinit, and why not: it waited to be
        asked, the kernel's last words are those of *how*, svinit reported its end with exit code 0,
        QMP's SHUTDOWN came from the guest with the expected reason (halt: the kernel halted, then the
        harness quit QEMU), and the kernel did not panic."""
        if self.how not in KERNEL_LINES:
            return False, f"{self.how}: QEMU was ended by the host (reason {self.reason}), as a power cut"
        if self.panicked:
            return False, f"the kernel panicked ({PANIC!r} on the console)"
        if self.unasked:
            by = f": svinit's shutdown was asked by {self.asked_by}" if self.asked_by else ""
            return False, f"the guest ended by itself before the harness asked for {self.how}{by}"
        last_words, want = KERNEL_LINES[self.how], EXPECTED_REASONS[self.how]
        if self.kernel_line != last_words:
            seen = self.kernel_line or "no last words of the kernel"
            return False, f"the console shows {seen!r}; a clean {self.how} ends with {last_words!r}"
        if self.svinit_done is None:
            return False, "svinit reported no end ('svinit: ACTION: done'): its shutdown did not run"
        if self.svinit_done.code != 0:
            return False, f"svinit's {self.svinit_done.action} ended with exit code {self.svinit_done.code}"
        done = f"svinit's {self.svinit_done.action} done in {self.svinit_done.ms} ms"
        if self.how == "halt":
            return True, f"the kernel halted (then the harness quit QEMU); {done}"
        if self.reason is None:
            return False, "QEMU sent no SHUTDOWN event: it did not end, or ended by a crash"
        if not self.guest or self.reason != want:
            return False, (
                f"SHUTDOWN guest={self.guest} reason={self.reason}; "
                f"a clean {self.how} gives guest=True reason={want}"
            )
        return True, f"by the guest: SHUTDOWN reason {want}; {done}"

    @property
    def clean(self) -> bool:
        """The guest stopped the way it was asked, through svinit, with exit code 0 and no panic."""
        return self.ended()[0]
