"""The command channel: the guest's harness shell on a second serial port, reached through QEMU's unix
socket (``svinit.harness=ttyS1`` on the kernel command line starts it).

Every command goes out as plain lines of printable ASCII, whatever it
holds: its bytes are escaped as ``\\0ooo`` (printf %b) into a shell variable, 400 characters a line, so
no quoting, history expansion, line editing or line length of the guest's shell can change it; then one
line runs it with ``/bin/sh -c``, stdin from /dev/null, stderr to a file, and frames the result with
markers that hold a fresh token::

    @svinit:TOKEN:out\\n STDOUT \\n@svinit:TOKEN:rc:RC\\n STDERR \\n@svinit:TOKEN:end\\n

The markers are printed by ``printf FORMAT TOKEN``, so the command line itself (were it echoed) never
contains them; what is outside a frame (a prompt, an echo) is skipped; the newline before each end
marker is the harness's own, so output without a final newline comes back as it was. Until the guest's
shell runs, nothing can: :meth:`QemuMachine.wait_for_harness` sends a quote-free probe line
(``printf @svinit:%s:ready\\\\n TOKEN``) until one answers; a probe cut by the boot cannot leave the
shell inside a quote.
"""

from __future__ import annotations

import logging
import re
import secrets
import select
import socket
import time
from pathlib import Path

from svinit.machine import GUEST_WATCHDOG, MachineError, Timeout, retry
from svinit.qemu.console import Console

log = logging.getLogger(__name__)

_SAFE = frozenset(
    b'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "#$%&()*+,-./:;<=>?@[]^_`{|}~'
)
_CHUNK = 400
#: How long a closed channel waits for *abort* to say why (QEMU closes the socket as it exits; its QMP
#: SHUTDOWN event, read by another thread, may be a moment behind).
_CLOSE_GRACE = 2.0
#: Picks the file for a command's stderr: the first writable of $TMPDIR or /tmp, /run, /dev/shm (a
#: read-only root may have only /run); /dev/null if none is, then stderr is lost.
_ERRFILE = (
    'for _sve in "${TMPDIR:-/tmp}" /run /dev/shm; do _sve=$_sve/.svinit-harness.err; '
    '{ true >"$_sve"; } 2>/dev/null && break; _sve=/dev/null; done'
)


def _assign(var: str, text: str) -> list[str]:
    """Lines that set $var to *text*, escaped for printf %b, about _CHUNK characters each."""
    lines, chunk = [f"{var}=''"], ""
    for b in text.encode():
        chunk += chr(b) if b in _SAFE else f"\\0{b:03o}"
        if len(chunk) >= _CHUNK:
            lines.append(f"{var}=${var}'{chunk}'")
            chunk = ""
    if chunk:
        lines.append(f"{var}=${var}'{chunk}'")
    return lines


def _expected(abort) -> bool:
    """Whether *abort()* says, within _CLOSE_GRACE s, that the channel's end was expected."""
    deadline = time.monotonic() + _CLOSE_GRACE
    while not abort():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


class ChannelClosed(MachineError):
    """QEMU closed the command channel (it exited, or is exiting) before the answer came."""


class CommandChannel:
    """The guest's harness shell on a serial port, reached through QEMU's unix socket (see the module's
    docstring for the protocol).

    Args:
        path: the socket (``-chardev socket,path=PATH,server=on``).
        name: how messages name it.
    """

    def __init__(self, path: Path, name: str):
        self.path = path
        self.name = name
        self.sock: socket.socket | None = None
        self.buf = bytearray()
        self.ready = False
        self._serial = 0

    def connect(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(str(self.path))
                s.setblocking(False)
                self.sock = s
                return
            except OSError as e:
                s.close()
                if time.monotonic() >= deadline:
                    raise MachineError(
                        f"{self.name}: cannot connect to the command channel {self.path}: {e}"
                    ) from e
                time.sleep(0.05)

    def token(self) -> str:
        self._serial += 1
        return f"{self._serial:x}{secrets.token_hex(6)}"

    def send(self, text: str) -> None:
        if self.sock is None:
            raise MachineError(f"{self.name}: the command channel is not connected")
        data = text.encode()
        while data:
            try:
                n = self.sock.send(data)
                data = data[n:]
            except BlockingIOError:
                select.select([], [self.sock], [], 1)
            except OSError as e:
                raise MachineError(f"{self.name}: the command channel broke: {e}") from e

    def read_until(
        self, pattern: re.Pattern[bytes], deadline: float, abort=None, needle: bytes = b""
    ) -> re.Match | None:
        """Reads until *pattern* matches the buffer; returns the match, or None at the deadline or when
        *abort()* says so. The pattern is tried only once the buffer holds *needle* (a big output is
        not searched again at each read).

        Raises:
            ChannelClosed: QEMU closed the socket, and *abort()* did not say so within _CLOSE_GRACE s
                (a command that powers the guest off never answers: QEMU exits, and its SHUTDOWN
                event may reach the QMP thread after the socket's end reached this one).
        """
        while True:
            m = pattern.search(self.buf) if needle in self.buf else None
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0 or (abort is not None and abort()):
                return None
            r, _, _ = select.select([self.sock], [], [], min(left, 0.1))
            if r:
                try:
                    data = self.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError as e:
                    raise MachineError(f"{self.name}: the command channel broke: {e}") from e
                if not data:
                    if abort is not None and _expected(abort):
                        return None
                    raise ChannelClosed(f"{self.name}: QEMU closed the command channel")
                self.buf += data
                if len(self.buf) > 1 << 26:
                    raise MachineError(f"{self.name}: more than 64 MiB of output without an end marker")

    def probe(self, wait: float) -> bool:
        """Sends one probe line and waits up to *wait* s for an answer to it or an earlier probe."""
        self.send(f"printf @svinit:%s:ready\\\\n {self.token()}\n")
        m = self.read_until(re.compile(rb"@svinit:[0-9a-f]+:ready\n"), time.monotonic() + wait)
        if m:
            del self.buf[: m.end()]
            self.ready = True
        return self.ready

    def wait_ready(self, timeout: float, console: Console, hint: str) -> None:
        """Probes until the guest's shell answers, with probes 0.2 to 0.5 s apart.

        Raises:
            MachineError: QEMU exited first (*console* ended).
            Timeout: no answer within *timeout* s; the message gives *hint* and the console's end.
        """
        wait = [0.2]

        def answered(last_try: bool) -> bool:
            if console.eof:
                raise MachineError(
                    f"{self.name}: QEMU exited before the command channel answered:\n{console.text[-2000:]}"
                )
            ok = self.probe(wait[0])
            wait[0] = min(wait[0] * 1.5, 0.5)
            if last_try and not ok:
                log.info("%s: silent; the console says:\n%s", self.name, console.text[-2000:])
            return ok

        try:
            retry(answered, timeout, interval=0.01, what=self.name)
        except Timeout as e:
            raise Timeout(f"{e}: {hint} Its console ends with:\n{console.text[-1500:]}") from None

    def submit(self, cmd: str, guest_timeout: float | None = None) -> str:
        """Sends *cmd* to run with /bin/sh -c (with a guest-side deadline when *guest_timeout*); returns
        the token whose frame :meth:`collect` reads."""
        tok = self.token()
        lines = _assign("_svc", cmd)
        run = '"$(printf %b "$_svc")"'
        if guest_timeout is not None:
            lines += _assign("_svw", GUEST_WATCHDOG)
            run = f'"$(printf %b "$_svw")" sh {guest_timeout:.3f} {run}'
        lines.append(_ERRFILE)
        lines.append(
            f"printf '@svinit:%s:out\\n' {tok}; /bin/sh -c {run} </dev/null 2>\"$_sve\"; "
            f"printf '\\n@svinit:%s:rc:%d\\n' {tok} $?; cat \"$_sve\"; "
            '[ "$_sve" = /dev/null ] || rm -f "$_sve"; '
            f"printf '\\n@svinit:%s:end\\n' {tok}"
        )
        self.send("".join(line + "\n" for line in lines))
        return tok

    def collect(self, tok: str, deadline: float, abort=None) -> tuple[int, bytes, bytes] | None:
        """The (rc, stdout, stderr) of the command *tok*; None at the deadline or on *abort()*."""
        t = tok.encode()
        frame = re.compile(
            rb"@svinit:"
            + t
            + rb":out\n(.*?)\n@svinit:"
            + t
            + rb":rc:(\d+)\n(.*?)\n@svinit:"
            + t
            + rb":end\n",
            re.DOTALL,
        )
        m = self.read_until(frame, deadline, abort, needle=b"\n@svinit:" + t + b":end\n")
        if m is None:
            return None
        rc, out, err = int(m.group(2)), bytes(m.group(1)), bytes(m.group(3))
        del self.buf[: m.end()]
        return rc, out, err

    def run(
        self, cmd: str, deadline: float, abort=None, guest_timeout: float | None = None
    ) -> tuple[int, bytes, bytes] | None:
        """:meth:`submit` then :meth:`collect`: the (rc, stdout, stderr) of *cmd*, or None."""
        return self.collect(self.submit(cmd, guest_timeout), deadline, abort)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.ready = False
