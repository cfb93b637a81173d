"""A small synchronous QMP client: qemu.qmp's asyncio ``QMPClient`` run on an event loop in a thread.

Every event QEMU sends is kept, in order, from the moment of the connection (svinit.qemu.machine starts QEMU
paused with ``-S`` and connects before ``cont``, so none is missed): ``SHUTDOWN {guest, reason}``,
``RESET``, ``POWERDOWN``, ``STOP``... :meth:`QMP.wait_for_event` waits for the next one of a name that
was not awaited yet, or returns it if it came already.

>>> q = QMP("/run/vm/qmp.sock")
>>> q.connect(timeout=5)
>>> q.command("cont")
>>> q.system_powerdown()
>>> q.wait_for_event("SHUTDOWN", timeout=30)["data"]
{'guest': True, 'reason': 'guest-shutdown'}
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from qemu.qmp import EventListener, QMPClient, QMPError, Runstate
from qemu.qmp.message import Message

from svinit.errors import SvinitError

log = logging.getLogger(__name__)
T = TypeVar("T")


class QMPFailure(SvinitError):
    """A QMP command failed, or the connection did (the message names the command and the socket)."""


class QMPTimeout(QMPFailure, TimeoutError):
    """An awaited event did not come in time; the message lists the events that did."""


class _Recorder(EventListener):
    """Records every event synchronously, as the client dispatches it, and queues none."""

    def __init__(self, sink: QMP):
        super().__init__()
        self._sink = sink

    def accept(self, event: Message) -> bool:
        self._sink._record(dict(event))
        return False


class QMP:
    """A synchronous QMP connection to a unix socket.

    Args:
        path: QEMU's QMP socket (``-qmp unix:PATH,server=on``).
        name: how log messages name it.
    """

    def __init__(self, path: Path | str, name: str = "qmp"):
        self.path = str(path)
        self.name = name
        #: every event received, oldest first, as QEMU's JSON: {"event", "data", "timestamp"}
        self.events: list[dict[str, Any]] = []
        self._cursor: dict[str, int] = {}
        self._cond = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"qmp {name}", daemon=True)
        self._thread.start()
        self._client: QMPClient | None = None
        # a QMP never closed (an exception, interpreter exit): disconnected all the same, quietly
        self._holder: list[QMPClient] = []
        self._finalizer = weakref.finalize(self, _shutdown, self._loop, self._thread, self._holder, name)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _record(self, event: dict[str, Any]) -> None:
        log.debug("%s: event %s %s", self.name, event.get("event"), event.get("data", {}))
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def connect(self, timeout: float = 10, alive: Callable[[], bool] | None = None) -> None:
        """Connects (retrying until QEMU has made the socket) and negotiates capabilities.

        Args:
            timeout: seconds.
            alive: says whether QEMU still runs: no use waiting for the socket of a dead one.

        Raises:
            QMPFailure: no QMP server answered on the socket within *timeout* seconds.
        """
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if alive is not None and not alive():
                raise QMPFailure(f"{self.name}: QEMU exited before its QMP socket {self.path} answered")
            if not Path(self.path).exists():
                time.sleep(0.02)
                continue
            client = QMPClient(self.name)
            client.register_listener(_Recorder(self))
            try:
                self._run(client.connect(self.path), max(0.1, deadline - time.monotonic()))
                self._client = client
                self._holder[:] = [client]
                return
            except (OSError, QMPError, TimeoutError) as e:
                last = e
                time.sleep(0.05)
        raise QMPFailure(
            f"{self.name}: no QMP server on {self.path} after {timeout:.3g} s: {last or 'no socket'}"
        )

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.runstate == Runstate.RUNNING

    def command(self, cmd: str, timeout: float = 10, **arguments: Any) -> Any:
        """Runs the QMP command *cmd* with *arguments*; returns its ``return`` value.

        Raises:
            QMPFailure: not connected, QEMU refused the command, or the connection broke.
        """
        if self._client is None:
            raise QMPFailure(f"{self.name}: not connected (call connect())")
        try:
            return self._run(self._client.execute(cmd, arguments or None), timeout)
        except (QMPError, OSError, TimeoutError) as e:
            raise QMPFailure(f"{self.name}: QMP {cmd} {arguments or ''} failed: {e!r}") from e

    # The commands svinit uses.

    def system_powerdown(self) -> None:
        """Presses the ACPI power button (a request: the guest may ignore it)."""
        self.command("system_powerdown")

    def ctrl_alt_delete(self) -> None:
        """Types Ctrl-Alt-Del on the PS/2 keyboard (``send-key``)."""
        keys = [{"type": "qcode", "data": k} for k in ("ctrl", "alt", "delete")]
        self.command("send-key", keys=keys)

    def press_power_button(self, deadline: float, every: float, alive: Callable[[], bool]) -> None:
        """Presses the ACPI power button, and again every *every* s until a SHUTDOWN event comes, the
        *deadline* (time.monotonic()) passes or QEMU is no longer *alive()*: a press before the guest
        listens (acpid not started yet) is lost."""
        while True:
            self.system_powerdown()
            try:
                self.wait_for_event(
                    "SHUTDOWN", min(every, max(0.0, deadline - time.monotonic())), consume=False
                )
                return
            except QMPTimeout:
                if time.monotonic() >= deadline or not alive():
                    return
                log.info("%s: no SHUTDOWN %.3g s after the power button: pressing it again", self.name, every)

    def query_status(self) -> dict[str, Any]:
        """``query-status``: {"status": "running"|"paused"|"shutdown"|..., "running": bool}."""
        return self.command("query-status")

    def quit(self) -> None:
        """``quit``: QEMU exits at once (SHUTDOWN reason host-qmp-quit), as if the power were cut."""
        try:
            self.command("quit")
        except QMPFailure as e:
            # QEMU may close the socket before its reply gets through
            if self.connected:
                raise
            log.debug("%s: quit: %s", self.name, e)

    # Events.

    def wait_for_event(self, name: str, timeout: float = 10, consume: bool = True) -> dict[str, Any]:
        """The first event *name* after the last one this method returned (with *consume*), waiting for
        it when it has not come yet.

        Raises:
            QMPTimeout: none came within *timeout* seconds; the message lists the events seen.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                start = self._cursor.get(name, 0)
                for i in range(start, len(self.events)):
                    if self.events[i].get("event") == name:
                        if consume:
                            self._cursor[name] = i + 1
                        return self.events[i]
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = ", ".join(_describe(e) for e in self.events) or "none"
                    raise QMPTimeout(
                        f"{self.name}: no QMP event {name} within {timeout:.3g} s; events so far: {seen}"
                    )
                self._cond.wait(left)

    def events_named(self, name: str) -> list[dict[str, Any]]:
        """Every event *name* received so far."""
        with self._cond:
            return [e for e in self.events if e.get("event") == name]

    def close(self) -> None:
        """Disconnects and stops the thread's loop."""
        self._client = None
        self._finalizer()

    def __enter__(self) -> QMP:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _shutdown(loop: asyncio.AbstractEventLoop, thread: threading.Thread, holder: list, name: str) -> None:
    """Disconnects the client in *holder* (if any), then stops and closes *loop* and its *thread*."""
    if holder and loop.is_running():
        try:
            asyncio.run_coroutine_threadsafe(holder[0].disconnect(), loop).result(5)
        except Exception as e:  # QEMU gone: the disconnect reports how the connection ended
            log.debug("%s: disconnect: %r", name, e)
    holder.clear()
    if loop.is_running():
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    if not loop.is_running() and not loop.is_closed():
        loop.close()


def _describe(event: dict[str, Any]) -> str:
    data = event.get("data")
    return f"{event.get('event')} {data}" if data else str(event.get("event"))
