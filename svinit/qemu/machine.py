"""A svinit virtual machine on QEMU, as a machine (svinit.machine).

QEMU's command line is data (:mod:`svinit.qemu.definition`, ``qemu/ARCH.toml``). QEMU runs on a pty (the
serial console, :mod:`svinit.qemu.console`), with a QMP socket (:mod:`svinit.qemu.qmp`) and a second
serial port, the command channel (:mod:`svinit.qemu.channel`, its protocol in its docstring): with
``svinit.harness=ttyS1`` on the kernel command line the guest runs a shell reading that port. The
accelerator is KVM only after a probe boot (:mod:`svinit.qemu.accel`); under TCG every timeout is
multiplied by the definition's ``tcg_timeout_factor``. How the machine ended is a
:class:`~svinit.qemu.shutdown.QemuShutdown`.

>>> m = QemuMachine.from_build(build_vm(Path("out")))
>>> m.start()
>>> m.wait_for_service("heartbeat")
>>> m.succeed("cat /proc/cmdline")
>>> m.shutdown("acpi")
QemuShutdown(exit_code=0, seconds=1.9, how='acpi', guest=True, reason='guest-shutdown', ...)
>>> m.start()          # boots again, same kernel and disks
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from svinit.disks import copy_disk, cow_overlay
from svinit.leftovers import make_temp_dir, qemu_marks, remove_temp_dir
from svinit.machine import CommandResult, Machine, MachineError, Timeout
from svinit.qemu.accel import choose_accel
from svinit.qemu.channel import CommandChannel
from svinit.qemu.console import ESCAPE_NAME, Console, ConsoleClosed, ConsoleTimeout
from svinit.qemu.definition import Disk, MachineDefinition
from svinit.qemu.qmp import QMP, QMPFailure
from svinit.qemu.run import RunIO, RunSpec, Share, spec_initrd
from svinit.qemu.shutdown import QemuShutdown
from svinit.qemu.snapshot import Snapshot, take
from svinit.qemu.stopping import Stopping

log = logging.getLogger(__name__)
#: Room kept for the names of the unix sockets in a machine's state directory (qmp.sock, harness.sock...)
SOCKET_NAME_MAX = 24


class QemuMachine(Stopping, Machine):
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
        smp: the number of CPUs (default the definition's).
        command: a command the guest runs once its services are up, as a container's CMD, after which
            it powers off (``svinit run --vm``; :mod:`svinit.qemu.run`): its stdin, stdout, stderr and
            exit code travel over virtio-serial ports (:attr:`run_io`); see :meth:`wait_exit`.
        env: variables for the command and the services (the envdir), as docker run -e.
        shares: host folders mounted in the guest (virtio-9p), as docker run -v.
        tty: (rows, cols): the command gets a terminal, relayed over one port (the host's terminal).
        io: where the command's input comes from and its output goes (default: :class:`RunIO` keeps
            it in memory, stdin empty).

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
        smp: int | None = None,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
        shares: list[Share] | None = None,
        tty: tuple[int, int] | None = None,
        io: RunIO | None = None,
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
        self.run_spec: RunSpec | None = None
        if command or env or shares:
            self.run_spec = RunSpec(
                list(command) if command else None, dict(env or {}), list(shares or []), tty
            )
            cmdline += " svinit.run"
        self.run_io = io
        self.smp = smp
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
        # recorded in the harness directory, with QEMU's pid file: `svinit clean` finds a killed run's
        self.state_dir = make_temp_dir("svinit-qemu-", sockets=SOCKET_NAME_MAX)
        weakref.finalize(self, remove_temp_dir, self.state_dir)
        #: the initramfs QEMU boots: with a command, a copy with the run's spec appended
        self.boot_initrd = self.initrd
        if self.run_spec is not None:
            if self.initrd is None:
                raise MachineError(
                    f"{self.name}: a command, -e or -v needs an initramfs (its spec travels in it)"
                )
            self.run_spec.write(self.state_dir / "spec")
            self.boot_initrd = spec_initrd(
                self.initrd, self.state_dir / "spec", self.state_dir / "initrd.img"
            )
        self.console: Console | None = None
        self.qmp: QMP | None = None
        self.channel: CommandChannel | None = None
        self.result: QemuShutdown | None = None
        #: the consoles of the previous boots, with their headers
        #: (header, transcript) of the previous boots; a header's QEMU version is filled in by logs()
        self._past: list[tuple[str, str]] = []
        self._header = ""
        self.boots = 0
        self._lock = threading.RLock()
        #: time.monotonic() when QEMU was started, for the current boot
        self.started_at: float | None = None
        #: the snapshot its first start resumes (from_snapshot), else None
        self.resumed_from: Snapshot | None = None

    @classmethod
    def from_build(
        cls, out: Path, disk_copy: Path | None = None, overlay: bool = False, **kw: Any
    ) -> QemuMachine:
        """The machine of a build_vm output directory: out/vmlinuz, out/initramfs.img, out/cmdline and,
        for the disk layout, out/root.img (attached as is, or *disk_copy*: a copy made there first, or
        with *overlay* a qcow2 copy-on-write overlay of it in the machine's state directory, gone with
        the machine: either way the built image is not changed). *kw* are QemuMachine's (a cmdline
        replaces out/cmdline, a kernel out/vmlinuz; disks come after root.img)."""
        out = Path(out)
        for name in ("vmlinuz", "initramfs.img", "cmdline"):
            if not (out / name).exists():
                raise MachineError(f"{out} has no {name}: is it the output of `svinit build vm`?")
        disks = list(kw.pop("disks", []) or [])
        root = out / "root.img"
        cmdline = kw.pop("cmdline", None) or (out / "cmdline").read_text().strip()
        kernel = kw.pop("kernel", None) or out / "vmlinuz"
        if not root.exists():
            return cls(kernel, out / "initramfs.img", cmdline, disks, **kw)
        if disk_copy is not None:
            root = copy_disk(root, disk_copy)
        if not overlay:
            return cls(kernel, out / "initramfs.img", cmdline, [root, *disks], **kw)
        m = cls(kernel, out / "initramfs.img", cmdline, disks, **kw)
        m.disks.insert(0, Disk(cow_overlay(root, m.state_dir / "root.qcow2"), format="qcow2"))
        return m

    @classmethod
    def from_snapshot(cls, snap: Snapshot, **kw: Any) -> QemuMachine:
        """A machine that resumes *snap* at its first start() (no boot: every service up), each disk a
        qcow2 overlay of its own in its state directory. *kw* are QemuMachine's (name, accel,
        timeout_multiplier, echo...); call svinit.qemu.snapshot.refresh(m) once started."""
        m = cls(snap.kernel, snap.initrd, snap.cmdline, memory=snap.memory, arch=snap.arch, **kw)
        m.extra_args[:0] = snap.extra_args
        m.disks = snap.overlays(m.state_dir)
        m.resumed_from = snap
        return m

    def snapshot(self) -> Snapshot:
        """Saves this running machine (svinit.qemu.snapshot.take), which then runs on; start machines
        from it with from_snapshot (the fixtures: svinit_vm_factory(snapshot=snap)). The caller
        removes it (snap.remove()) when done."""
        return take(self)

    # Starting.

    def choose_accel(self) -> str:
        """KVM or TCG (once per machine): the caller's or $SVINIT_ACCEL choice, else KVM if the probe
        boot says it works. Under TCG, the timeout multiplier grows by the definition's factor."""
        if self.accel is None:
            self.accel, self.accel_note = choose_accel(
                self.accel_wanted, self.definition, self.kernel, probe_timeout=10 * self.base_multiplier
            )
            if self.accel == "tcg":
                self.timeout_multiplier = self.base_multiplier * self.definition.tcg_timeout_factor
            (log.warning if "does not work" in self.accel_note else log.info)(
                "%s: %s", self.name, self.accel_note
            )
        return self.accel

    def argv(self) -> list[str]:
        """QEMU's command line for this machine (the accelerator chosen first)."""
        return (
            self.definition.argv(
                accel=self.choose_accel(),
                memory=self.memory,
                kernel=self.kernel,
                initrd=self.boot_initrd,
                cmdline=self.cmdline,
                qmp=self.state_dir / "qmp.sock",
                harness=self.state_dir / "harness.sock",
                disks=self.disks,
                smp=self.smp,
            )
            + self._run_argv()
            + qemu_marks(self.state_dir)
            + self.extra_args
            # a resumed machine loads its state at its first start; later it boots from its disks
            + (self.resumed_from.incoming() if self.resumed_from and self.boots == 0 else [])
        )

    def _run_argv(self) -> list[str]:
        if self.run_spec is None:
            return []
        ports = [(name, self.state_dir / f"{name}.sock") for name in self.run_spec.ports()]
        return self.definition.run_argv(ports, self.run_spec.qemu_shares())

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
        ports = self.run_spec.ports() if self.run_spec is not None else ()
        for sock in self.state_dir.glob("*.sock"):  # a previous boot's (QMP, channel, network, run ports)
            sock.unlink(missing_ok=True)
        self.boots += 1
        self.result = None
        self._header = (
            # (QEMU's version is asked when the log is read: `qemu --version` is not on a run's way)
            f"== {self.name}: boot {self.boots}: {{qemu}}, accel {self.accel} "
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
            if ports:
                if self.run_io is None or self.boots > 1:
                    self.run_io = RunIO()
                paths = {p: self.state_dir / f"{p}.sock" for p in ports}
                self.run_io.connect(paths, time.monotonic() + self.timeout(5))
                self.run_io.start()
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
            self._past.append((self._header, self.console.text))
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
        cur = [(self._header, self.console.text)] if self.console is not None else []
        version = self.definition.version()
        return "\n".join(head.replace("{qemu}", version, 1) + text for head, text in self._past + cur)

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
        tty = self.definition.harness_tty
        hint = f"does the guest run a shell on /dev/{tty} (svinit.harness={tty} on its command line: "
        hint += f"{self.cmdline!r})?"
        ch.wait_ready(self.timeout(timeout), self._running_console(), hint)
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
            limit = (timeout + 10 * self.timeout_multiplier) if timeout is not None else self.timeout(300)
            console = self._running_console()
            got = self._channel().run(cmd, time.monotonic() + limit, lambda: console.eof, timeout)
        if got is None:
            if console.eof:
                raise MachineError(f"{self.name}: QEMU exited while `{cmd}` ran:\n{console.text[-2000:]}")
            raise Timeout(f"{self.name}: `{cmd}` gave no result within {limit:.3g} s (it may still run)")
        rc, out, err = got
        return CommandResult(cmd, rc, out.decode(errors="replace"), err.decode(errors="replace"))

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
        remove_temp_dir(self.state_dir)

    # Interactive.

    def interactive(self, shutdown: str = "acpi") -> QemuShutdown | None:
        """An interactive session (``svinit boot``): boots, hands the serial console to the user's
        terminal until Ctrl-] (or QEMU's exit), then stops the machine with *shutdown* if it still
        runs; how it ended."""
        self.start()
        print(f"svinit: console of {self.name}; {ESCAPE_NAME} leaves", flush=True)
        self._running_console().interact()
        if self.is_running():
            print(f"\r\nsvinit: left the console: stopping {self.name} ({shutdown})", flush=True)
            return self.shutdown(shutdown)
        return self._finish("exit", time.monotonic(), time.monotonic() + 5)

    def __repr__(self) -> str:
        return f"<QemuMachine {self.name} boot {self.boots} {self.accel or 'accel not chosen'}>"
