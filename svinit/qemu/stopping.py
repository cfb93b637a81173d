"""How a QemuMachine ends (:class:`Stopping`, a part of :class:`svinit.qemu.machine.QemuMachine`): asked
by the harness (the ACPI power button, Ctrl-Alt-Del, or poweroff, reboot, halt run in the guest), by
itself (a machine with a command powers off after it; a panic), or cut (QMP quit, SIGKILL). Each end is
read into a :class:`~svinit.qemu.shutdown.QemuShutdown`: the QMP SHUTDOWN event, QEMU's exit status,
the kernel's and svinit's last words.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from svinit.machine import CommandFailed, MachineError, Timeout
from svinit.qemu.channel import CommandChannel
from svinit.qemu.console import Console, ConsoleClosed, ConsoleTimeout
from svinit.qemu.qmp import QMP, QMPFailure, QMPTimeout
from svinit.qemu.run import RunIO
from svinit.qemu.shutdown import KERNEL_LINES, QemuShutdown

log = logging.getLogger(__name__)


class Stopping:
    """The stopping verbs of a QemuMachine; they use its console, QMP, command channel and ports, and
    its timeout(), is_running(), _running_console(), wait_for_harness() and _channel()."""

    name: str
    console: Console | None
    qmp: QMP | None
    channel: CommandChannel | None
    run_io: RunIO | None
    result: QemuShutdown | None
    _lock: threading.RLock

    def shutdown(self, how: str = "acpi", timeout: float = 30) -> QemuShutdown:
        """Stops the machine and waits until QEMU has exited; returns what happened.

        Args:
            how: "acpi" (the ACPI power button, QMP system_powerdown: the platform's request; pressed
                again every 2 s, scaled, since a guest not listening yet loses a press),
                "ctrl-alt-del" (QMP send-key: a reboot), or "poweroff", "reboot", "halt" (the command
                run in the guest). After a reboot QEMU ends too (-no-reboot): start() boots again.
                A halted kernel keeps QEMU running: once it says "System halted" the harness quits
                QEMU (reason host-qmp-quit).
            timeout: seconds (scaled) for the whole stop.

        Returns:
            QemuShutdown: the QMP SHUTDOWN event's guest and reason, QEMU's exit status, the seconds,
            the kernel's last line and svinit's report. It tells an unclean end; it does not raise for it.

        Raises:
            MachineError: not started; *how* unknown; the guest's command failed. (A guest that
                ended by itself before it was asked gives a record with ``unasked``, never clean.)
            Timeout: QEMU did not end in time (it is then killed; the message shows the console's end).
        """
        if how not in KERNEL_LINES:
            raise MachineError(f"{self.name}: unknown shutdown {how!r}: use {', '.join(KERNEL_LINES)}")
        if not self.is_running():
            if self.result is not None:
                return self.result
            if self.console is None:
                raise MachineError(f"{self.name}: not running")
        console, qmp = self._running_console(), self.qmp
        assert qmp is not None
        deadline = time.monotonic() + self.timeout(timeout)
        t0 = time.monotonic()
        ended = self._ended_unasked(how, t0, deadline)
        if ended is not None:
            return ended
        if how == "acpi":
            qmp.press_power_button(deadline, self.timeout(2), alive=self.is_running)
        elif how == "ctrl-alt-del":
            qmp.ctrl_alt_delete()
        else:
            self._request(how, deadline)
        try:
            if how == "halt":
                console.wait_for_text(KERNEL_LINES["halt"], max(0.0, deadline - time.monotonic()))
                qmp.quit()
            qmp.wait_for_event("SHUTDOWN", max(0.0, deadline - time.monotonic()))
        except (ConsoleTimeout, ConsoleClosed, QMPTimeout, QMPFailure) as e:
            self.kill()
            raise Timeout(
                f"{self.name}: did not stop ({how}) within {self.timeout(timeout):.3g} s: {e}"
            ) from None
        return self._finish(how, t0, deadline)

    def _request(self, action: str, deadline: float) -> None:
        """Runs *action* (poweroff, reboot, halt) in the guest; it returns at once, the stop goes on
        without the harness shell (it is stopped with the other services)."""
        with self._lock:
            self.wait_for_harness()
            console, qmp = self._running_console(), self.qmp
            got = self._channel().run(
                action, deadline, abort=lambda: console.eof or bool(qmp and qmp.events_named("SHUTDOWN"))
            )
        if got is not None and got[0] != 0:
            raise CommandFailed(
                self.name, action, got[0], got[1].decode(errors="replace"), got[2].decode(errors="replace")
            )

    def wait_exit(self, timeout: float | None = None) -> QemuShutdown | None:
        """Waits until QEMU ends by itself (the guest powered off, rebooted or panicked: a machine
        with a *command* powers off after it); its end as a poweroff, or None when it still ran after
        *timeout* seconds (not scaled; None: no limit), and then it was killed. The command's ports
        are read to their ends."""
        console = self._running_console()
        t0 = time.monotonic()
        if console.wait_exit(timeout if timeout is not None else 10**9) is None:
            self.kill()
            console.wait_exit(5)
            return None
        res = self._finish("poweroff", t0, time.monotonic() + 5)
        if self.run_io is not None:
            self.run_io.finish(self.timeout(5))
        return res

    def crash(self) -> QemuShutdown:
        """Ends QEMU at once (QMP quit), as if the power were cut: nothing is stopped or unmounted."""
        t0 = time.monotonic()
        deadline = t0 + self.timeout(10)
        ended = self._ended_unasked("crash", t0, deadline)
        if ended is not None:
            return ended
        assert self.qmp is not None
        try:
            self.qmp.quit()
            self.qmp.wait_for_event("SHUTDOWN", self.timeout(10))
        except QMPFailure as e:
            log.warning("%s: QMP quit: %s: killing QEMU", self.name, e)
            self.kill()
        return self._finish("crash", t0, deadline)

    def kill(self) -> None:
        """SIGKILLs QEMU (no SHUTDOWN event then)."""
        if self.console is not None:
            self.console.kill(signal.SIGKILL)

    def _ended_unasked(self, how: str, t0: float, deadline: float) -> QemuShutdown | None:
        """When the guest ended, or is ending, by itself (a service ran poweroff, a panic) before the
        harness asked for *how*: its record, unasked and never clean, whatever the guest's last words
        (the one made already, if any); else None."""
        console, qmp = self._running_console(), self.qmp
        assert qmp is not None
        if not (console.eof or qmp.events_named("SHUTDOWN")):
            return None
        if self.result is not None:
            return self.result
        log.info("%s: ended by itself before the harness asked for %s", self.name, how)
        return self._finish(how, t0, deadline, unasked=True)

    def _finish(self, how: str, t0: float, deadline: float, unasked: bool = False) -> QemuShutdown:
        """Drains the console to its end, waits for QEMU's exit, and reads what the boot said
        (*unasked*: it ended before the harness asked)."""
        console = self._running_console()
        code = console.wait_exit(max(1.0, deadline - time.monotonic()))
        if code is None:
            self.kill()
            code = console.wait_exit(5)
            raise Timeout(f"{self.name}: QEMU did not exit after {how}; killed:\n{console.text[-1500:]}")
        events = self.qmp.events_named("SHUTDOWN") if self.qmp else []
        event = events[-1].get("data", {}) if events else None
        self.result = QemuShutdown.read(how, code, time.monotonic() - t0, console.text, event, unasked)
        log.debug("%s: %s: %s", self.name, how, self.result)
        if self.channel is not None:
            self.channel.close()
        return self.result
