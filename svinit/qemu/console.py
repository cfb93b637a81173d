"""The serial console of a QEMU machine, on pexpect: QEMU runs on a pty (``-chardev stdio``), a thread
reads it continuously, and everything it printed is kept as the transcript.

The transcript is text: terminal escape sequences (colours, cursor moves, the getty's clear-screen)
are stripped, carriage returns dropped, undecodable bytes replaced (U+FFFD). The raw bytes are kept too.

Reading never stops while QEMU runs (a full pty would block QEMU, and the guest with it), and
:meth:`Console.wait_eof` drains to the end of the output: call it before waiting for QEMU's exit.

:meth:`Console.interact` hands the console to the user's terminal until they type the escape key,
Ctrl-] (as telnet); the output keeps going into the transcript meanwhile.
"""

from __future__ import annotations

import codecs
import logging
import os
import re
import signal
import sys
import threading
import time

import pexpect

from svinit.errors import SvinitError

log = logging.getLogger(__name__)

#: The key that leaves :meth:`Console.interact`: Ctrl-], as in telnet.
ESCAPE = "\x1d"
ESCAPE_NAME = "Ctrl-]"

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), the two-byte escapes (ESC ( B, ESC 7, ESC =, ...),
# and the 8-bit CSI; then control characters other than tab and newline.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[ -/]*[0-~]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# An escape sequence the read may have cut: kept until the next read completes it.
_PARTIAL = re.compile(r"(?:\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?|[ -/]*)?|\x9b[0-?]*[ -/]*)\Z")


def clean(text: str) -> str:
    """*text* without terminal escape sequences, carriage returns and other control characters."""
    return _CONTROL.sub("", _ANSI.sub("", text.replace("\r\n", "\n")))


class ConsoleClosed(SvinitError):
    """The console reached its end (QEMU exited) before what was awaited appeared."""


class ConsoleTimeout(SvinitError, TimeoutError):
    """Awaited text did not appear in time."""


class Console:
    """A program (QEMU) on a pty whose output is the console, read by a thread into a transcript.

    Args:
        argv: the command line.
        name: how messages name it.
        env: the environment (default: this process's).
        echo: a callable given each cleaned chunk as it arrives (for live output), or None.

    Attributes:
        child: the pexpect.spawn object.
        raw: every byte read, as read.
    """

    def __init__(self, argv: list[str], name: str = "console", env: dict[str, str] | None = None, echo=None):
        self.name = name
        self.argv = list(argv)
        try:
            self.child = pexpect.spawn(
                argv[0], argv[1:], env=env, echo=False, timeout=None, dimensions=(50, 200)
            )
        except pexpect.ExceptionPexpect as e:
            raise ConsoleClosed(f"{name}: cannot run {argv[0]}: {e}") from None
        self.raw = bytearray()
        self._text: list[str] = []
        self._len = 0
        self._joined = ""
        self._pending = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._cond = threading.Condition()
        self._eof = False
        self._cursor = 0
        self._echo = echo
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_reader()

    # Reading.

    def _start_reader(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._read_loop, name=f"console {self.name}", daemon=True)
        self._thread.start()

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.child.read_nonblocking(65536, timeout=0.1)
            except pexpect.TIMEOUT:
                continue
            except (pexpect.EOF, OSError, ValueError):
                self._feed(b"", final=True)
                return
            self._feed(data)

    def _feed(self, data: bytes, final: bool = False) -> None:
        text = self._pending + self._decoder.decode(data, final=final)
        self._pending = ""
        if not final:
            # keep back what may be the start of an escape sequence, or a \r before its \n
            m = _PARTIAL.search(text)
            if m and len(text) - m.start() < 64:
                text, self._pending = text[: m.start()], text[m.start() :]
            elif text.endswith("\r"):
                text, self._pending = text[:-1], "\r"
        chunk = clean(text)
        with self._cond:
            self.raw += data
            if chunk:
                self._text.append(chunk)
                self._len += len(chunk)
            if final:
                self._eof = True
            self._cond.notify_all()
        if chunk and self._echo is not None:
            self._echo(chunk)

    @property
    def text(self) -> str:
        """The transcript so far."""
        with self._cond:
            if len(self._text) > 1:
                self._text[:] = ["".join(self._text)]
            return self._text[0] if self._text else ""

    @property
    def eof(self) -> bool:
        """The program's output has ended (QEMU exited)."""
        return self._eof

    # Waiting for text.

    def wait_for_text(
        self, regex: str | re.Pattern[str], timeout: float, from_start: bool = False
    ) -> re.Match:
        """Waits until *regex* matches the transcript after the end of the previous match this method
        returned (with *from_start*, anywhere); returns the match and moves past it.

        Raises:
            ConsoleTimeout: no match within *timeout* seconds (the message shows the transcript's end).
            ConsoleClosed: the output ended without a match.
        """
        pattern = re.compile(regex, re.MULTILINE) if isinstance(regex, str) else regex
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                eof = self._eof
            text = self.text
            m = pattern.search(text, 0 if from_start else self._cursor)
            if m:
                self._cursor = max(self._cursor, m.end())
                return m
            tail = text[-1500:]
            if eof:
                raise ConsoleClosed(
                    f"{self.name}: the console ended without {pattern.pattern!r}; its end:\n{tail}"
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConsoleTimeout(
                    f"{self.name}: no {pattern.pattern!r} on the console within {timeout:.3g} s; its end:\n"
                    f"{tail}"
                )
            with self._cond:
                if self._len == len(text) and not self._eof:
                    self._cond.wait(min(left, 0.5))

    def wait_eof(self, timeout: float) -> bool:
        """Waits until the output has ended (everything read); returns whether it has."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    # Writing.

    def send(self, text: str | bytes) -> None:
        """Types *text* on the console (a shell there wants "\\r" as Enter)."""
        self.child.send(text)

    # The program.

    def is_alive(self) -> bool:
        return self.child.isalive()

    def wait_exit(self, timeout: float) -> int | None:
        """Drains the output to its end, then waits for the program's exit; returns its exit status
        (128+N for a signal N, as sh says), or None if it still runs after *timeout* seconds."""
        deadline = time.monotonic() + timeout
        self.wait_eof(timeout)
        while self.child.isalive():
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)
        return self.exit_status()

    def exit_status(self) -> int | None:
        """The exit status once the program has exited (128+N for a signal N), else None."""
        if self.child.isalive():
            return None
        if self.child.signalstatus is not None:
            return 128 + self.child.signalstatus
        return self.child.exitstatus

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.child.isalive():
            self.child.kill(sig)

    def close(self) -> None:
        """Ends the program if it still runs (SIGTERM, then SIGKILL), stops reading, closes the pty."""
        if self.child.isalive():
            self.child.terminate(force=True)
        self.wait_eof(2)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        if not self.child.isalive():
            # ptyprocess sleeps delayafterclose (0.1 s) before it looks whether the program ended: it has
            self.child.ptyproc.delayafterclose = 0
        try:
            self.child.close(force=True)
        except pexpect.ExceptionPexpect as e:
            log.debug("%s: close: %s", self.name, e)

    # Interactive.

    def interact(self, escape: str = ESCAPE) -> None:
        """Connects the user's terminal to the console until they type *escape* (Ctrl-] by default) or
        the program exits. The terminal is in raw mode meanwhile: Ctrl-C goes to the guest. The output
        keeps going into the transcript.

        Raises:
            SvinitError: stdin is not a terminal.
        """
        if not os.isatty(sys.stdin.fileno()):
            raise SvinitError(f"{self.name}: an interactive console needs a terminal: run it from one")
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        # what came while the reader was stopping, then the session's output, into the transcript
        self.child.logfile_read = None

        def keep(data: bytes) -> bytes:
            self._feed(data)
            return data

        try:
            self.child.interact(escape_character=escape, output_filter=keep)
        except OSError:
            pass  # the program exited during the session
        finally:
            if self.child.isalive() or not self._eof:
                self._start_reader()
