"""A booted VM saved, and new machines started from it without a boot (FACTS.md, "Snapshots").

:func:`take` pauses a running machine, saves its state with QEMU's migration to a file (QMP ``migrate``
to ``exec:cat > FILE``), copies its disks (QEMU has flushed them when the migration completes) into
the snapshot's directory, and lets the machine run on. A machine resumed from it
(:meth:`QemuMachine.from_snapshot`) has the same kernel, command line, memory and devices, each disk a
qcow2 overlay of its own on the snapshot's copy (copy-on-write: machines resumed from one snapshot do
not see each other's writes), and ``-incoming "exec:cat FILE"``: QEMU loads the state and the guest
goes on where it was, every service up, its command channel's shell waiting for a line. Then
:func:`refresh` sets its clock from the host's and feeds fresh random bytes to its pool (every clone
would otherwise share the saved pool); the ``vmgenid`` device of the machine definition also gives
each resumed QEMU a new generation id, on which Linux reseeds its random generator itself.

A snapshot of a machine on a private network is refused (its peers' addresses would be stale).
"""

from __future__ import annotations

import logging
import secrets
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from svinit.disks import copy_disk
from svinit.leftovers import make_temp_dir, remove_temp_dir
from svinit.machine import MachineError
from svinit.qemu.definition import Disk
from svinit.qemu.qmp import QMPFailure

log = logging.getLogger(__name__)


class SnapshotError(MachineError):
    """A snapshot could not be taken or resumed; the message says why and what to check."""


@dataclass
class Snapshot:
    """A saved machine: its QEMU state and disks in *folder*, and what its QEMU was started with.

    Attributes:
        folder: a recorded temporary directory (``svinit clean`` removes a killed run's).
        state: the migration stream.
        kernel, initrd, cmdline, memory, arch: the machine's.
        disks: the copies of its disks (the overlays' backing files), in order.
        extra_args: its QEMU's extra arguments.
        seconds: how long the save took.
    """

    folder: Path
    state: Path
    kernel: Path
    initrd: Path | None
    cmdline: str
    memory: str
    arch: str | Path
    disks: list[Disk] = field(default_factory=list)
    extra_args: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def overlays(self, folder: Path) -> list[Disk]:
        """A qcow2 overlay of each disk in *folder*, for one machine: its writes stay there."""
        out = []
        for i, d in enumerate(self.disks):
            path = folder / f"disk{i}.qcow2"
            proc = subprocess.run(
                ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(d.path), "-F", d.format, str(path)],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                raise SnapshotError(
                    f"qemu-img create of an overlay on {d.path} failed: {proc.stderr.strip()}"
                )
            out.append(Disk(path, "qcow2", readonly=d.readonly))
        return out

    def incoming(self) -> list[str]:
        """QEMU's arguments that load the state instead of booting."""
        return ["-incoming", f"exec:cat {shlex.quote(str(self.state))}"]

    def remove(self) -> None:
        remove_temp_dir(self.folder)


def _migrate(qmp, state: Path, timeout: float) -> None:
    """Saves the (paused) machine's state in *state*; waits until the migration completed."""
    qmp.command("migrate-set-parameters", **{"max-bandwidth": 8 << 30})
    qmp.command("migrate", uri=f"exec:cat > {shlex.quote(str(state))}")
    deadline = time.monotonic() + timeout
    while True:
        info = qmp.command("query-migrate")
        status = info.get("status")
        if status == "completed":
            return
        if status in ("failed", "cancelled"):
            raise SnapshotError(f"QEMU's migration to {state} {status}: {info.get('error-desc', info)}")
        if time.monotonic() > deadline:
            qmp.command("migrate_cancel")
            raise SnapshotError(f"QEMU's migration to {state} did not complete in {timeout:.3g} s: {info}")
        time.sleep(0.02)


def take(machine, timeout: float = 120) -> Snapshot:
    """Saves the running *machine* (a QemuMachine whose command channel answers) and lets it run on.

    Raises:
        SnapshotError: it is not running, is on a private network, or QEMU could not save it.
    """
    if not machine.is_running() or machine.qmp is None:
        raise SnapshotError(f"{machine.name}: not running: boot it before taking a snapshot")
    if machine.networks:
        raise SnapshotError(
            f"{machine.name} is on a private network: a snapshot of it is not supported (its resumed "
            "copies would share its address); snapshot a machine before it joins"
        )
    if machine.harness:
        machine.wait_for_harness()  # the guest's shell waits for a line: a resumed copy answers at once
    t0 = time.monotonic()
    folder = make_temp_dir("svinit-snapshot-")
    snap = Snapshot(
        folder,
        folder / "state",
        machine.kernel,
        machine.initrd,
        machine.cmdline,
        machine.memory,
        machine.definition.path,
        extra_args=list(machine.extra_args),
    )
    qmp = machine.qmp
    try:
        qmp.command("stop")
        _migrate(qmp, snap.state, machine.timeout(timeout))
        for i, d in enumerate(machine.disks):
            if d.format == "raw":
                copy = copy_disk(d.path, folder / f"disk{i}.img")
            else:  # a qcow2 (an overlay of a resumed machine): flattened
                copy = folder / f"disk{i}.qcow2"
                subprocess.run(
                    ["qemu-img", "convert", "-O", "qcow2", str(d.path), str(copy)],
                    check=True,
                    capture_output=True,
                )
            snap.disks.append(Disk(copy, d.format, readonly=d.readonly))
    except (QMPFailure, OSError, subprocess.CalledProcessError) as e:
        remove_temp_dir(folder)
        raise SnapshotError(f"{machine.name}: no snapshot: {e}") from e
    except SnapshotError:
        remove_temp_dir(folder)
        raise
    finally:
        try:
            qmp.command("cont")
        except QMPFailure as e:
            log.warning("%s: not running on after its snapshot: %s", machine.name, e)
    snap.seconds = time.monotonic() - t0
    log.info("%s: snapshot in %s (%.2f s)", machine.name, folder, snap.seconds)
    return snap


def refresh(machine, timeout: float = 60) -> None:
    """After a resumed machine's start(): waits until QEMU has loaded the state, lets the guest run (a
    ``cont`` sent while the state loaded may not hold), then sets the guest's clock from the host's (it
    stopped at the snapshot's time) and feeds fresh random bytes to its pool (writes to /dev/urandom
    mix them in).

    Raises:
        SnapshotError: the state did not load (the message has QEMU's words).
    """
    qmp = machine.qmp
    deadline = time.monotonic() + machine.timeout(timeout)
    while True:
        info = qmp.command("query-migrate")
        status = info.get("status")
        if status == "completed":
            break
        if status in ("failed", "cancelled") or time.monotonic() > deadline or not machine.is_running():
            raise SnapshotError(
                f"{machine.name}: the snapshot's state did not load ({info}):\n{machine.logs()[-1500:]}"
            )
        time.sleep(0.01)
    if not qmp.query_status().get("running"):
        qmp.command("cont")
    seed = secrets.token_hex(64)
    machine.succeed(f"date -s @{time.time():.0f} >/dev/null && echo {seed} > /dev/urandom")
