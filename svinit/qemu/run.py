"""A command run in a VM with a container's semantics (``svinit run --vm``, ``QemuMachine(command=...)``).

The protocol with the guest (``init/sh/boot.d/45-run.sh``, ``init/sh/lib/vm-front``):

- ``svinit.run`` on the kernel command line; the run's spec is the folder ``/.svinit-run`` of a second
  cpio archive appended to the machine's initramfs (:func:`spec_initrd`; the disk layout's initramfs
  copies it into /run/svinit before it switches to the root): ``run.cmd`` (``set -- CMD...``, each word
  sh-quoted), ``env/`` (a file per -e variable, an envdir), ``mounts`` (``TAG ro|rw GUESTDIR`` a line:
  the -v folders, shared by virtio-9p with the tags ``svinit.vN``) and, when the host's stdin is a
  terminal, ``run.tty`` (``ROWS COLS``). The boot reads it without a share or a module (a VM without -v
  has no virtio-9p device, and does not load 9p).
- virtio-serial ports, each a unix socket here, connected before the guest runs: ``org.svinit.stdin``
  (host to guest; at its end the host shuts down its writing half, which the guest reads as EOF),
  ``org.svinit.stdout`` and ``org.svinit.stderr`` (guest to host, byte for byte), or for a terminal
  one port both ways, ``org.svinit.tty`` (the guest's ``svpty`` gives CMD a pty); and
  ``org.svinit.exit``: CMD's exit code, one decimal line, written by the guest's front process when CMD
  ends. The ports are read until QEMU exits (their ends): nothing is taken from the console.
- The guest then shuts down cleanly (CMD's end is a poweroff); :func:`run_verdict` judges the end.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from svinit.build.cpio import CpioWriter
from svinit.errors import SvinitError
from svinit.machine import MachineError

#: The spec's folder in the initramfs, and the guest's port names.
SPEC_DIR = ".svinit-run"
STDIN, STDOUT, STDERR, TTY, EXIT = (f"org.svinit.{n}" for n in ("stdin", "stdout", "stderr", "tty", "exit"))
#: The exit code of a run that failed on svinit's side (an unclean end, a panic, a timeout): Docker's.
FAILED = 125


class RunError(SvinitError):
    """A run's input is wrong (a -v or -e that cannot be given to the guest): the message says which."""


@dataclass(frozen=True)
class Share:
    """A host folder shared into the guest with virtio-9p (``-v HOSTDIR:GUESTDIR[:ro]``)."""

    host: Path
    guest: str
    readonly: bool = False

    @classmethod
    def parse(cls, spec: str) -> Share:
        """``HOSTDIR:GUESTDIR[:ro|:rw]``, as docker run -v (HOSTDIR must exist and be a folder).

        Raises:
            RunError: not of that form, GUESTDIR not absolute, or HOSTDIR not a folder.
        """
        parts = spec.split(":")
        mode = parts.pop() if len(parts) == 3 and parts[2] in ("ro", "rw") else "rw"
        if (
            len(parts) != 2
            or not parts[0]
            or not parts[1].startswith("/")
            or any(c in parts[1] for c in " \t\n")
        ):
            raise RunError(
                f"-v {spec!r}: give HOSTDIR:GUESTDIR[:ro], GUESTDIR an absolute path without spaces"
            )
        host = Path(parts[0]).resolve()
        if not host.is_dir():
            raise RunError(f"-v {spec!r}: {host} is not a folder (a VM shares folders, not files)")
        return cls(host, parts[1], mode == "ro")


def parse_env(items: list[str]) -> dict[str, str]:
    """``VAR=VALUE`` items (a bare ``VAR`` takes this process's value, as docker run -e).

    Raises:
        RunError: a name that is not a variable name.
    """
    env = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq:
            if name not in os.environ:
                continue
            value = os.environ[name]
        if (
            not name
            or not (name[0].isalpha() or name[0] == "_")
            or not all(c.isalnum() or c == "_" for c in name)
        ):
            raise RunError(f"-e {item!r}: {name!r} is not a variable name (letters, digits, _)")
        env[name] = value
    return env


@dataclass
class RunSpec:
    """What the guest runs: CMD (or None: only env and folders), the -e variables, the -v folders and,
    for a terminal, its size (rows, cols)."""

    command: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    shares: list[Share] = field(default_factory=list)
    tty: tuple[int, int] | None = None

    def write(self, folder: Path) -> None:
        """Writes the spec the guest's 45-run.sh reads into *folder*."""
        (folder / "env").mkdir(parents=True, exist_ok=True)
        if self.command:
            (folder / "run.cmd").write_text("set -- " + " ".join(shlex.quote(w) for w in self.command) + "\n")
        for name, value in self.env.items():
            # envdir takes a file's first line and turns NUL into newline: a value's newlines go as NUL
            (folder / "env" / name).write_bytes(value.encode().replace(b"\n", b"\0") + b"\n")
        (folder / "mounts").write_text(
            "".join(
                f"svinit.v{i} {'ro' if s.readonly else 'rw'} {s.guest}\n" for i, s in enumerate(self.shares)
            )
        )
        if self.tty:
            (folder / "run.tty").write_text(f"{self.tty[0]} {self.tty[1]}\n")

    def ports(self) -> tuple[str, ...]:
        if not self.command:
            return ()
        return (TTY, EXIT) if self.tty else (STDIN, STDOUT, STDERR, EXIT)

    def qemu_shares(self) -> list[tuple[str, Path, bool]]:
        """(tag, host folder, read-only) of each -v folder."""
        return [(f"svinit.v{i}", s.host, s.readonly) for i, s in enumerate(self.shares)]


def spec_initrd(initrd: Path, spec: Path, dest: Path) -> Path:
    """Writes *dest*: the initramfs *initrd*, then a cpio archive of the folder *spec* as
    ``/.svinit-run`` (the kernel unpacks both, in turn). Copying a few MB costs the host milliseconds;
    the guest then needs no share and no module for the spec."""
    with open(initrd, "rb") as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
        out.write(b"\0" * (-out.tell() % 4))  # an archive starts on a 4-byte boundary
        w = CpioWriter(out)
        w.add_path(SPEC_DIR, spec)
        for p in sorted(spec.rglob("*")):
            w.add_path(f"{SPEC_DIR}/{p.relative_to(spec)}", p)
        w.close()
    return dest


def _write(sink, data: bytes) -> None:
    if isinstance(sink, int):
        view = memoryview(data)
        while view:
            view = view[os.write(sink, view) :]
    else:
        sink.write(data)
        sink.flush()


class RunIO:
    """The host's end of a run's ports: what goes to CMD's stdin, where its stdout and stderr go.

    Args:
        stdin: a file descriptor or binary file read to its end (its end is CMD's EOF), bytes, or None
            (empty: as /dev/null).
        stdout, stderr: a file descriptor or binary file; None keeps the bytes (:attr:`out`,
            :attr:`err`).
    """

    def __init__(self, stdin: int | IO[bytes] | bytes | None = None, stdout=None, stderr=None):
        self.stdin = stdin
        self.out = bytearray()
        self.err = bytearray()
        self.stdout = stdout
        self.stderr = stderr
        self.exit_text = b""
        self._socks: dict[str, socket.socket] = {}
        self._threads: list[threading.Thread] = []

    def connect(self, paths: dict[str, Path], deadline: float) -> None:
        """Connects to each port's socket (QEMU made them; it waits, paused, until the harness says
        cont). Raises MachineError when one does not answer by *deadline*."""
        for name, path in paths.items():
            while True:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.connect(str(path))
                    break
                except OSError as e:
                    s.close()
                    if time.monotonic() > deadline:
                        raise MachineError(f"the port {name} ({path}) did not answer: {e}") from None
                    time.sleep(0.02)
            self._socks[name] = s

    def start(self) -> None:
        """Starts relaying, a thread per direction."""
        jobs = []
        if STDOUT in self._socks:
            jobs += [
                (self._drain, (STDOUT, self.stdout, self.out)),
                (self._drain, (STDERR, self.stderr, self.err)),
            ]
            jobs.append((self._feed, (STDIN,)))
        if TTY in self._socks:
            jobs += [(self._drain, (TTY, self.stdout, self.out)), (self._feed, (TTY,))]
        jobs.append((self._read_exit, ()))
        for fn, args in jobs:
            t = threading.Thread(target=fn, args=args, daemon=True, name=f"svinit run {fn.__name__}")
            t.start()
            if fn is not self._feed:  # the feeder may block on a terminal forever: not waited for
                self._threads.append(t)

    def _drain(self, name: str, sink, keep: bytearray) -> None:
        s = self._socks[name]
        while chunk := _recv(s):
            if sink is None:
                keep += chunk
            else:
                _write(sink, chunk)

    def _feed(self, name: str) -> None:
        s, src = self._socks[name], self.stdin
        try:
            if isinstance(src, bytes):
                s.sendall(src)
            elif isinstance(src, int):
                while data := os.read(src, 65536):
                    s.sendall(data)
            elif src is not None:
                while data := src.read(65536):
                    s.sendall(data)
        except OSError:
            pass  # QEMU ended, CMD no longer reads (as a closed pipe), or our stdin failed: its end
        if name == STDIN:
            try:
                s.shutdown(socket.SHUT_WR)  # the guest reads the end as EOF
            except OSError:
                pass

    def _read_exit(self) -> None:
        while chunk := _recv(self._socks[EXIT]):
            self.exit_text += chunk

    def finish(self, timeout: float) -> None:
        """Waits (at most *timeout* s) until every port reached its end (QEMU exited), then closes them."""
        end = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
        for s in self._socks.values():
            s.close()

    @property
    def exit_code(self) -> int | None:
        """CMD's exit code as the guest sent it, or None when it sent none."""
        lines = self.exit_text.decode(errors="replace").split()
        return int(lines[-1]) if lines and lines[-1].isdigit() else None


def _recv(s: socket.socket) -> bytes:
    try:
        return s.recv(65536)
    except OSError:
        return b""


@dataclass(frozen=True)
class RunVerdict:
    """How a run ended: the exit code to return (CMD's, or :data:`FAILED`) and, when it failed, why."""

    code: int
    failure: str | None = None


def run_verdict(
    cmd_code: int | None,
    *,
    timed_out: float | None,
    panicked: bool,
    kernel_line: str | None,
    svinit_done: bool,
    guest: bool | None,
    reason: str | None,
) -> RunVerdict:
    """CMD's code when the guest sent one and then powered off cleanly (the kernel's ``reboot: Power
    down`` after svinit's report, QMP SHUTDOWN from the guest, reason guest-shutdown), else 125 and why:
    a hang past --timeout, a kernel panic, no exit code, or an unclean end."""
    if timed_out is not None:
        return RunVerdict(FAILED, f"the VM did not end within --timeout {timed_out:g} s: killed")
    if panicked or reason == "guest-panic":
        return RunVerdict(FAILED, "the guest's kernel panicked")
    if cmd_code is None:
        return RunVerdict(FAILED, "the guest sent no exit code: CMD did not run to its end")
    if kernel_line != "reboot: Power down" or not svinit_done:
        seen = kernel_line or "no last words of the kernel"
        report = "svinit's shutdown report seen" if svinit_done else "no shutdown report of svinit"
        return RunVerdict(FAILED, f"the guest's shutdown was not clean ({report}, {seen!r})")
    if not guest or reason != "guest-shutdown":
        return RunVerdict(
            FAILED, f"QEMU ended with SHUTDOWN guest={guest} reason={reason}, not the guest's power-off"
        )
    return RunVerdict(cmd_code)
