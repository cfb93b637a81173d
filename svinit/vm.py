"""A svinit virtual machine on QEMU, as a machine (svinit.machine).

The machine is data: ``qemu/ARCH.toml`` gives QEMU's binary and arguments (:class:`MachineDefinition`).
QEMU runs on a pty (the serial console, svinit.console), with a QMP socket (svinit.qmp) and a second
serial port, the *command channel*: with ``svinit.harness=ttyS1`` on the kernel command line the guest
runs a shell reading that port.

The command channel protocol. Every command goes out as plain lines of printable ASCII, whatever it
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

Accelerators: KVM only after a probe boot proved it works here (``/dev/kvm`` opening is no proof: with
nested virtualisation it hangs); else TCG, said in the log, with every timeout multiplied by the
definition's ``tcg_timeout_factor``. The probe's verdict is cached per boot of the host.

>>> m = QemuMachine.from_build(build_vm(Path("out")))
>>> m.start()
>>> m.wait_for_service("heartbeat")
>>> m.succeed("cat /proc/cmdline")
>>> m.shutdown("acpi")
QemuShutdown(exit_code=0, seconds=1.9, how='acpi', guest=True, reason='guest-shutdown', ...)
>>> m.start()          # boots again, same kernel and disks
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import select
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import tomllib
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svinit import ROOT
from svinit.checks import EXPECTED_REASONS, KERNEL_LINES, parse_stop_report
from svinit.console import ESCAPE_NAME, Console, ConsoleClosed, ConsoleTimeout
from svinit.machine import (
    GUEST_WATCHDOG,
    CommandFailed,
    CommandResult,
    Machine,
    MachineError,
    ShutdownResult,
    Timeout,
    retry,
)
from svinit.qmp import QMP, QMPFailure, QMPTimeout

log = logging.getLogger(__name__)

#: How each way of stopping ends, as the kernel's last console line says it.
_KERNEL_END = re.compile(r"reboot: (?:Power down|Restarting system|System halted)")
_SVINIT_DONE = re.compile(r"svinit: (\w+): done in (\d+) ms \(exit code (\d+)\)")
_PANIC = "Kernel panic - not syncing"


# ---------------------------------------------------------------------------------------------------
# The machine definition (qemu/ARCH.toml)


class DefinitionError(MachineError):
    """A machine definition file is missing or malformed (the message names the file and the key)."""


def _escape_option(value: str) -> str:
    """*value* inside QEMU's comma-separated options: a ',' is written ',,'."""
    return value.replace(",", ",,")


@dataclass(frozen=True)
class MachineDefinition:
    """QEMU's command line for one architecture, read from ``qemu/ARCH.toml``.

    Attributes:
        path: the file.
        binary: the qemu-system-* program.
        machine, memory, smp: defaults for {machine} {memory} {smp}.
        console_tty, harness_tty: the kernel's names of the console and command channel ports.
        accelerators: in order of preference (kvm is probed first).
        tcg_timeout_factor: timeouts are multiplied by it under TCG.
        args, disk, probe_args: argument templates (see the file's header).
    """

    path: Path
    binary: str
    machine: str
    memory: str
    smp: int
    console_tty: str
    harness_tty: str
    accelerators: tuple[str, ...]
    tcg_timeout_factor: float
    args: tuple[str, ...]
    disk: tuple[str, ...]
    probe_args: tuple[str, ...]

    @classmethod
    def load(cls, arch: str | Path = "x86_64") -> MachineDefinition:
        """The definition of *arch* (``qemu/ARCH.toml`` under svinit's tree), or of the file *arch*.

        Raises:
            DefinitionError: no such file, or a key missing or of the wrong type.
        """
        path = Path(arch) if str(arch).endswith(".toml") else ROOT / "qemu" / f"{arch}.toml"
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            known = sorted(p.stem for p in (ROOT / "qemu").glob("*.toml"))
            raise DefinitionError(f"no machine definition {path} (known: {', '.join(known)})") from None
        except tomllib.TOMLDecodeError as e:
            raise DefinitionError(f"{path}: {e}") from None
        kinds = {
            "binary": str,
            "machine": str,
            "memory": str,
            "smp": int,
            "console_tty": str,
            "harness_tty": str,
            "accelerators": list,
            "tcg_timeout_factor": (int, float),
            "args": list,
            "disk": list,
            "probe_args": list,
        }
        for key, kind in kinds.items():
            if not isinstance(data.get(key), kind):
                raise DefinitionError(f"{path}: key {key} is missing or not a {kind}")
        return cls(
            path=path,
            **{k: tuple(data[k]) if kinds[k] is list else data[k] for k in kinds},
        )

    @staticmethod
    def fill(templates: tuple[str, ...], values: dict[str, Any]) -> list[str]:
        """The arguments *templates* with their placeholders filled from *values*. An argument whose
        placeholder's value is None is dropped, with the option before it (``-initrd {initrd}``).

        Raises:
            DefinitionError: a placeholder has no value.
        """
        out: list[str] = []
        for t in templates:
            names = re.findall(r"\{(\w+)\}", t)
            if any(n in values and values[n] is None for n in names):
                if out and out[-1].startswith("-"):
                    out.pop()
                continue
            try:
                out.append(t.format_map(values))
            except KeyError as e:
                raise DefinitionError(f"no value for the placeholder {e} in {t!r}") from None
        return out


@dataclass(frozen=True)
class Disk:
    """A virtio disk.

    Attributes:
        path: the image file.
        format: QEMU's format (raw, qcow2).
        snapshot: writes go to a temporary overlay; the image is left as it was.
        readonly: the guest cannot write it.
    """

    path: Path
    format: str = "raw"
    snapshot: bool = False
    readonly: bool = False

    def options(self) -> str:
        return (",snapshot=on" if self.snapshot else "") + (",readonly=on" if self.readonly else "")


# ---------------------------------------------------------------------------------------------------
# The accelerator


@dataclass(frozen=True)
class AccelProbe:
    """The verdict of a KVM probe boot.

    Attributes:
        works: the kernel reached its panic under KVM in time.
        seconds: how long the probe took.
        detail: why it does not work (QEMU's message, or "no panic within N s").
        cached: the verdict came from the cache (this boot of the host).
    """

    works: bool
    seconds: float
    detail: str
    cached: bool = False


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def probe_kvm(
    kernel: Path,
    definition: MachineDefinition | None = None,
    timeout: float = 10,
    use_cache: bool = True,
) -> AccelProbe:
    """Does KVM work here? Boots *kernel* alone under KVM: a working accelerator reaches the kernel's
    panic (no root) in a second or two and QEMU exits (panic=-1, -no-reboot); a broken KVM (nested
    virtualisation) hangs, and is killed after *timeout* seconds.

    The verdict is cached in svinit's cache (``kvm-probe.json``) for this boot of the host
    (/proc/sys/kernel/random/boot_id) and this QEMU binary.
    """
    from svinit.fetch import cache_dir

    definition = definition or MachineDefinition.load()
    binary = shutil.which(definition.binary) or definition.binary
    key = f"{_boot_id()} {binary}"
    cache = cache_dir() / "kvm-probe.json"
    if use_cache:
        try:
            saved = json.loads(cache.read_text())
            if saved.get("key") == key:
                return AccelProbe(saved["works"], saved["seconds"], saved["detail"], cached=True)
        except (OSError, ValueError, KeyError):
            pass
    t0 = time.monotonic()
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        result = AccelProbe(False, 0.0, "no usable /dev/kvm")
    else:
        argv = [binary] + definition.fill(
            definition.probe_args,
            {
                "accel": "kvm",
                "machine": definition.machine,
                "memory": definition.memory,
                "kernel": str(kernel),
                "console_tty": definition.console_tty,
            },
        )
        log.debug("KVM probe: %s", shlex.join(argv))
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
            text = out.decode(errors="replace")
            if proc.returncode == 0 and "Kernel panic" in text:
                result = AccelProbe(True, time.monotonic() - t0, "")
            else:
                last = [ln for ln in text.splitlines() if ln.strip()][-3:]
                result = AccelProbe(
                    False, time.monotonic() - t0, f"QEMU exited {proc.returncode}: {' / '.join(last)}"
                )
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            result = AccelProbe(
                False, time.monotonic() - t0, f"the probe boot hung (no panic within {timeout:g} s)"
            )
    try:
        cache.write_text(
            json.dumps(
                {"key": key, "works": result.works, "seconds": result.seconds, "detail": result.detail}
            )
        )
    except OSError as e:
        log.debug("cannot cache the KVM probe: %s", e)
    return result


# ---------------------------------------------------------------------------------------------------
# The command channel

_SAFE = frozenset(
    b'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "#$%&()*+,-./:;<=>?@[]^_`{|}~'
)
_CHUNK = 400
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
        not searched again at each read)."""
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
                    raise MachineError(f"{self.name}: QEMU closed the command channel")
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

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.ready = False


# ---------------------------------------------------------------------------------------------------
# The machine


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
        svinit_done: svinit's ``svinit: ACTION: done in N ms (exit code C)`` as (ACTION, N, C), or None.
        stopped: with svinit.harness, {service: (service down, logger down)} as Tai64n stamps, from the
            shutdown's report on the console (checks.parse_stop_report).
        panicked: the kernel panicked during this boot.
    """

    how: str = ""
    guest: bool | None = None
    reason: str | None = None
    kernel_line: str | None = None
    svinit_done: tuple[str, int, int] | None = None
    stopped: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    panicked: bool = False

    @property
    def clean(self) -> bool:
        """The guest stopped the way it was asked, through svinit, with exit code 0 and no panic."""
        return (
            self.reason == EXPECTED_REASONS.get(self.how)
            and self.kernel_line == KERNEL_LINES.get(self.how)
            and self.svinit_done is not None
            and self.svinit_done[2] == 0
            and not self.panicked
        )


class QemuMachine(Machine):
    """A QEMU virtual machine booting a kernel and an initramfs (and disks), with verbs.

    Args:
        kernel: the kernel image (bzImage/vmlinuz).
        initrd: the initramfs, or None.
        cmdline: the kernel command line; ``svinit.harness=TTY`` is added (with *harness*) when absent.
        disks: virtio disks, in order (paths, or Disk for snapshot/readonly/format).
        memory: guest memory (QEMU's syntax: "256M"); default the definition's.
        accel: "auto" (KVM if a probe boot shows it works, else TCG), "kvm" or "tcg"; $SVINIT_ACCEL
            overrides "auto".
        arch: the machine definition (``qemu/ARCH.toml``) or a .toml file.
        harness: the guest runs the command channel shell (svinit.harness); without it only the console
            and QMP work (execute raises).
        extra_args: more QEMU arguments.
        name: how messages name the machine.
        timeout_multiplier: see Machine; under TCG it is further multiplied by the definition's factor.
        echo: a callable given the console's output as it comes (live output), or None.

    start() may be called again once QEMU has ended (a reboot under -no-reboot, a poweroff): the machine
    boots again with the same kernel, command line and disks (``boot again``).
    """

    def __init__(
        self,
        kernel: Path | str,
        initrd: Path | str | None = None,
        cmdline: str = "console=ttyS0",
        disks: list[Path | str | Disk] | None = None,
        *,
        memory: str | None = None,
        accel: str = "auto",
        arch: str | Path = "x86_64",
        harness: bool = True,
        extra_args: list[str] | None = None,
        name: str | None = None,
        timeout_multiplier: float | None = None,
        echo=None,
    ):
        super().__init__(name or "vm", timeout_multiplier)
        self.definition = MachineDefinition.load(arch)
        self.kernel = Path(kernel)
        self.initrd = Path(initrd) if initrd is not None else None
        for p in (self.kernel, self.initrd):
            if p is not None and not p.is_file():
                raise MachineError(f"{self.name}: no file {p}")
        self.harness = harness
        cmdline = " ".join(cmdline.split())
        if harness and "svinit.harness=" not in cmdline:
            cmdline += f" svinit.harness={self.definition.harness_tty}"
        self.cmdline = cmdline
        self.disks = [d if isinstance(d, Disk) else Disk(Path(d)) for d in disks or []]
        for d in self.disks:
            if not d.path.is_file():
                raise MachineError(f"{self.name}: no disk image {d.path}")
        self.memory = memory or self.definition.memory
        if accel not in ("auto", "kvm", "tcg"):
            raise MachineError(f"{self.name}: accel must be auto, kvm or tcg, not {accel!r}")
        self.accel_wanted = accel
        self.extra_args = list(extra_args or [])
        self.echo = echo
        self.base_multiplier = self.timeout_multiplier
        #: "kvm" or "tcg", chosen at the first start()
        self.accel: str | None = None
        self.accel_note = ""
        self.state_dir = Path(tempfile.mkdtemp(prefix="svinit-qemu-"))
        weakref.finalize(self, shutil.rmtree, self.state_dir, True)
        self.console: Console | None = None
        self.qmp: QMP | None = None
        self.channel: CommandChannel | None = None
        self.result: QemuShutdown | None = None
        #: the consoles of the previous boots, with their headers
        self._past: list[str] = []
        self._header = ""
        self.boots = 0
        self._lock = threading.RLock()
        #: time.monotonic() when QEMU was started, for the current boot
        self.started_at: float | None = None

    @classmethod
    def from_build(cls, out: Path, disk_copy: Path | None = None, **kw: Any) -> QemuMachine:
        """The machine of a build_vm output directory: out/vmlinuz, out/initramfs.img, out/cmdline and,
        for the disk layout, out/root.img (attached as is, or *disk_copy*: a copy made there first, so
        the built image is not changed). *kw* are QemuMachine's (a cmdline replaces out/cmdline; disks
        come after root.img)."""
        out = Path(out)
        disks = list(kw.pop("disks", []) or [])
        root = out / "root.img"
        if root.exists():
            if disk_copy is not None:
                shutil.copyfile(root, disk_copy)
                root = disk_copy
            disks.insert(0, root)
        cmdline = kw.pop("cmdline", None) or (out / "cmdline").read_text().strip()
        return cls(out / "vmlinuz", out / "initramfs.img", cmdline, disks, **kw)

    # Starting.

    def choose_accel(self) -> str:
        """KVM or TCG (once per machine): the caller's or $SVINIT_ACCEL choice, else KVM if the probe
        boot says it works. Under TCG, the timeout multiplier grows by the definition's factor."""
        if self.accel is not None:
            return self.accel
        wanted = self.accel_wanted
        if wanted == "auto":
            wanted = os.environ.get("SVINIT_ACCEL") or "auto"
        factor = self.definition.tcg_timeout_factor
        if wanted == "auto" and "kvm" in self.definition.accelerators:
            probe = probe_kvm(self.kernel, self.definition, timeout=10 * self.base_multiplier)
            if probe.works:
                self.accel, self.accel_note = "kvm", "KVM works here"
            else:
                self.accel = "tcg"
                self.accel_note = (
                    f"KVM does not work here: using TCG (timeouts x {factor:g}) "
                    f"[{probe.detail}{', cached' if probe.cached else ''}]"
                )
        elif wanted == "auto":
            self.accel, self.accel_note = "tcg", f"using TCG (timeouts x {factor:g})"
        else:
            self.accel = wanted
            self.accel_note = f"{wanted} as asked" + (f" (timeouts x {factor:g})" if wanted == "tcg" else "")
        if self.accel == "tcg":
            self.timeout_multiplier = self.base_multiplier * factor
        (log.warning if "does not work" in self.accel_note else log.info)(
            "%s: %s", self.name, self.accel_note
        )
        return self.accel

    def argv(self) -> list[str]:
        """QEMU's command line for this machine (the accelerator chosen first)."""
        d = self.definition
        values: dict[str, Any] = {
            "accel": self.choose_accel(),
            "machine": d.machine,
            "memory": self.memory,
            "smp": d.smp,
            "kernel": str(self.kernel),
            "initrd": str(self.initrd) if self.initrd else None,
            "cmdline": self.cmdline,
            "qmp": _escape_option(str(self.state_dir / "qmp.sock")),
            "harness": _escape_option(str(self.state_dir / "harness.sock")),
        }
        argv = [d.binary] + d.fill(d.args, values)
        for i, disk in enumerate(self.disks):
            argv += d.fill(
                d.disk,
                {
                    "index": i,
                    "path": _escape_option(str(disk.path.resolve())),
                    "format": disk.format,
                    "options": disk.options(),
                },
            )
        return argv + self.extra_args

    def start(self) -> None:
        """Starts QEMU (paused), connects QMP and the command channel, then lets the guest run; returns
        at once (the guest boots meanwhile: execute waits for the command channel).

        Raises:
            MachineError: QEMU is running already, did not start, or its QMP socket did not answer.
        """
        if self.console is not None and self.console.is_alive():
            raise MachineError(f"{self.name}: QEMU is running already (boot {self.boots})")
        self._end_boot()
        argv = self.argv()
        for sock in ("qmp.sock", "harness.sock"):
            (self.state_dir / sock).unlink(missing_ok=True)
        self.boots += 1
        self.result = None
        self._header = (
            f"== {self.name}: boot {self.boots}: {self._qemu_version()}, accel {self.accel} "
            f"({self.accel_note}), host load {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n"
            f"== {shlex.join(argv)}\n"
        )
        log.debug("%s: boot %d: %s", self.name, self.boots, shlex.join(argv))
        self.started_at = time.monotonic()
        try:
            self.console = Console(argv, name=f"{self.name} console", echo=self.echo)
        except ConsoleClosed as e:
            raise MachineError(f"{e} (is QEMU installed? apt-get install qemu-system-x86)") from None
        self.qmp = QMP(self.state_dir / "qmp.sock", name=f"{self.name} qmp")
        try:
            self.qmp.connect(timeout=self.timeout(10), alive=self.console.is_alive)
            if self.harness:
                self.channel = CommandChannel(self.state_dir / "harness.sock", f"{self.name} command channel")
                self.channel.connect(timeout=self.timeout(5))
            self.qmp.command("cont")
        except (QMPFailure, MachineError) as e:
            self.console.wait_exit(2)
            raise MachineError(f"{self.name}: QEMU did not start: {e}\n{self.console.text[-2000:]}") from e

    def boot_again(self) -> None:
        """Boots again after QEMU ended (a reboot under -no-reboot ends it): start() with the same
        kernel, command line and disks."""
        if self.is_running():
            raise MachineError(f"{self.name}: still running: shut it down first")
        self.start()

    @staticmethod
    def _qemu_version_of(binary: str) -> str:
        try:
            out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
            return out.splitlines()[0] if out else binary
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"{binary} ({e})"

    def _qemu_version(self) -> str:
        if not hasattr(self, "_version"):
            self._version = self._qemu_version_of(self.definition.binary)
        return self._version

    def _end_boot(self) -> None:
        """Keeps the finished boot's console for logs(); releases its QMP, channel and pty."""
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.qmp is not None:
            self.qmp.close()
            self.qmp = None
        if self.console is not None:
            self.console.close()
            self._past.append(self._header + self.console.text)
            self.console = None

    # State.

    def is_running(self) -> bool:
        return self.console is not None and self.console.is_alive()

    def _running_console(self) -> Console:
        if self.console is None:
            raise MachineError(f"{self.name}: not started (call start())")
        return self.console

    def logs(self) -> str:
        """The console transcripts of every boot, each after a header (QEMU's version, the accelerator,
        the host's load, the command line)."""
        cur = [self._header + self.console.text] if self.console is not None else []
        return "\n".join(self._past + cur)

    def console_text(self) -> str:
        """The current boot's console transcript."""
        return self._running_console().text

    def wait_for_console_text(self, regex: str, timeout: float = 30, from_start: bool = False) -> re.Match:
        """Waits until *regex* matches this boot's console output after the previous match (with
        *from_start*, anywhere in it); returns the match.

        Raises:
            Timeout: no match within *timeout* (scaled); the message shows the console's end.
            MachineError: QEMU exited without printing it.
        """
        try:
            return self._running_console().wait_for_text(regex, self.timeout(timeout), from_start)
        except ConsoleTimeout as e:
            raise Timeout(str(e)) from None
        except ConsoleClosed as e:
            raise MachineError(str(e)) from None

    def wait_for_qmp_event(self, name: str, timeout: float = 30) -> dict[str, Any]:
        """The next QMP event *name* of this boot (one not returned before), waiting for it.

        Raises:
            Timeout: none within *timeout* (scaled); the message lists the events seen.
        """
        if self.qmp is None:
            raise MachineError(f"{self.name}: not started (call start())")
        try:
            return self.qmp.wait_for_event(name, self.timeout(timeout))
        except QMPTimeout as e:
            raise Timeout(str(e)) from None

    # Commands.

    def wait_for_harness(self, timeout: float = 30) -> None:
        """Waits until the guest's harness shell answers on the command channel.

        Raises:
            Timeout: no answer within *timeout* (scaled): the message says what to check.
            MachineError: QEMU exited meanwhile, or the machine has no command channel.
        """
        ch = self._channel()
        if ch.ready:
            return
        console = self._running_console()
        wait = [0.2]

        def answered(last_try: bool) -> bool:
            if console.eof:
                raise MachineError(
                    f"{self.name}: QEMU exited before the command channel answered:\n{console.text[-2000:]}"
                )
            ok = ch.probe(wait[0])
            wait[0] = min(wait[0] * 1.5, 0.5)
            if last_try and not ok:
                log.info(
                    "%s: the command channel is silent; the console says:\n%s",
                    self.name,
                    console.text[-2000:],
                )
            return ok

        try:
            retry(answered, self.timeout(timeout), interval=0.01, what=f"the command channel of {self.name}")
        except Timeout as e:
            raise Timeout(
                f"{e}: does the guest run a shell on /dev/{self.definition.harness_tty} "
                f"(svinit.harness={self.definition.harness_tty} on its command line: {self.cmdline!r})? "
                f"Its console ends with:\n{console.text[-1500:]}"
            ) from None
        log.info(
            "%s: command channel up %.2f s after QEMU started", self.name, time.monotonic() - self.started_at
        )

    def _channel(self) -> CommandChannel:
        if self.channel is None:
            if not self.harness:
                raise MachineError(f"{self.name}: started without the command channel (harness=False)")
            raise MachineError(f"{self.name}: not running (start() it)")
        return self.channel

    def execute(self, cmd: str, timeout: float | None = None) -> CommandResult:
        """Runs *cmd* with ``/bin/sh -c`` in the guest over the command channel (stdin /dev/null).

        Args:
            cmd: a POSIX sh command line, any bytes, any number of lines.
            timeout: kill it and what it started after these seconds (then rc is 137; needs setsid in
                the guest). Without it, the harness gives up after 300 s (scaled).

        Commands from several threads run one after the other.

        Raises:
            MachineError: QEMU is not running, or exited meanwhile.
            Timeout: no answer in time (the guest's shell may still be running the command).
        """
        if not self.is_running():
            raise MachineError(f"{self.name}: not running: cannot run `{cmd}`")
        with self._lock:
            self.wait_for_harness()
            ch = self._channel()
            tok = ch.submit(cmd, timeout)
            limit = (timeout + 10 * self.timeout_multiplier) if timeout is not None else self.timeout(300)
            console = self._running_console()
            got = ch.collect(tok, time.monotonic() + limit, abort=lambda: console.eof)
        if got is None:
            if console.eof:
                raise MachineError(f"{self.name}: QEMU exited while `{cmd}` ran:\n{console.text[-2000:]}")
            raise Timeout(f"{self.name}: `{cmd}` gave no result within {limit:.3g} s (it may still run)")
        rc, out, err = got
        return CommandResult(cmd, rc, out.decode(errors="replace"), err.decode(errors="replace"))

    # Stopping.

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
            MachineError: not running; *how* unknown; the guest's command failed.
            Timeout: QEMU did not end in time (it is then killed; the message shows the console's end).
        """
        if how not in KERNEL_LINES:
            raise MachineError(f"{self.name}: unknown shutdown {how!r}: use {', '.join(KERNEL_LINES)}")
        if not self.is_running():
            if self.result is not None:
                return self.result
            raise MachineError(f"{self.name}: not running")
        console, qmp = self._running_console(), self.qmp
        assert qmp is not None
        deadline = time.monotonic() + self.timeout(timeout)
        t0 = time.monotonic()
        if how == "acpi":
            self._press_power_button(deadline)
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

    def _press_power_button(self, deadline: float) -> None:
        """Presses the ACPI power button, and again every 2 s (scaled) until QEMU ends: a press
        before the guest listens (acpid not started yet) is lost."""
        qmp = self.qmp
        assert qmp is not None
        every = self.timeout(2)
        while True:
            qmp.system_powerdown()
            try:
                qmp.wait_for_event(
                    "SHUTDOWN", min(every, max(0.0, deadline - time.monotonic())), consume=False
                )
                return
            except QMPTimeout:
                if time.monotonic() >= deadline or not self.is_running():
                    return
                log.info("%s: no SHUTDOWN %.3g s after the power button: pressing it again", self.name, every)

    def _request(self, action: str, deadline: float) -> None:
        """Runs *action* (poweroff, reboot, halt) in the guest; it returns at once, the stop goes on
        without the harness shell (it is stopped with the other services)."""
        with self._lock:
            self._request_locked(action, deadline)

    def _request_locked(self, action: str, deadline: float) -> None:
        self.wait_for_harness()
        ch = self._channel()
        console, qmp = self._running_console(), self.qmp
        tok = ch.submit(action)
        got = ch.collect(
            tok, deadline, abort=lambda: console.eof or bool(qmp and qmp.events_named("SHUTDOWN"))
        )
        if got is not None and got[0] != 0:
            raise CommandFailed(
                self.name, action, got[0], got[1].decode(errors="replace"), got[2].decode(errors="replace")
            )

    def crash(self) -> QemuShutdown:
        """Ends QEMU at once (QMP quit), as if the power were cut: nothing is stopped or unmounted."""
        if not self.is_running():
            raise MachineError(f"{self.name}: not running")
        t0 = time.monotonic()
        deadline = t0 + self.timeout(10)
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

    def _finish(self, how: str, t0: float, deadline: float) -> QemuShutdown:
        """Drains the console to its end, waits for QEMU's exit, and reads what the boot said."""
        console = self._running_console()
        code = console.wait_exit(max(1.0, deadline - time.monotonic()))
        if code is None:
            self.kill()
            code = console.wait_exit(5)
            raise Timeout(f"{self.name}: QEMU did not exit after {how}; killed:\n{console.text[-1500:]}")
        seconds = time.monotonic() - t0
        text = console.text
        events = self.qmp.events_named("SHUTDOWN") if self.qmp else []
        data = events[-1].get("data", {}) if events else {}
        ends = _KERNEL_END.findall(text)
        done = _SVINIT_DONE.findall(text)
        self.result = QemuShutdown(
            exit_code=code if code is not None else -1,
            seconds=seconds,
            how=how,
            guest=data.get("guest"),
            reason=data.get("reason"),
            kernel_line=ends[-1] if ends else None,
            svinit_done=(done[-1][0], int(done[-1][1]), int(done[-1][2])) if done else None,
            stopped=parse_stop_report(text),
            panicked=_PANIC in text,
        )
        log.debug("%s: %s: %s", self.name, how, self.result)
        if self.channel is not None:
            self.channel.close()
        return self.result

    def close(self) -> None:
        """Kills QEMU if it still runs, releases the sockets and removes the state directory (the
        console transcripts stay for logs())."""
        if self.console is not None and self.console.is_alive():
            if self.qmp is not None and self.qmp.connected:
                try:
                    self.qmp.quit()
                except QMPFailure:
                    pass
            if self.console.wait_exit(3) is None:
                self.kill()
        self._end_boot()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    # Interactive.

    def interact(self) -> None:
        """Connects the user's terminal to the serial console until they type Ctrl-] (or QEMU exits)."""
        print(f"svinit: console of {self.name}; {ESCAPE_NAME} leaves", flush=True)
        self._running_console().interact()

    def __repr__(self) -> str:
        return f"<QemuMachine {self.name} boot {self.boots} {self.accel or 'accel not chosen'}>"


def interactive(machine: QemuMachine, shutdown: str = "acpi") -> QemuShutdown | None:
    """An interactive session for ``svinit boot``: boots *machine*, hands the console to the user's
    terminal until Ctrl-], then stops it with *shutdown* (if it still runs) and returns how it ended."""
    machine.start()
    machine.interact()
    if machine.is_running():
        print(f"\r\nsvinit: left the console: stopping {machine.name} ({shutdown})", flush=True)
        return machine.shutdown(shutdown)
    return machine._finish("exit", time.monotonic(), time.monotonic() + 5)
