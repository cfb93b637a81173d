"""The plugin's VM fixtures (svinit.plugin documents them): the files a VM boots, a factory of booted
QEMU machines (on private networks when asked), and one booted VM."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from svinit.build import build_vm, vm_dir
from svinit.disks import copy_disk
from svinit.dockerd import DEFAULT_IMAGE
from svinit.errors import SvinitError
from svinit.leftovers import make_temp_dir, remove_temp_dir
from svinit.machine import MachineError
from svinit.pytest_support import boot, networks_of
from svinit.qemu.definition import Disk
from svinit.qemu.machine import QemuMachine
from svinit.qemu.snapshot import Snapshot, refresh

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VmFiles:
    """What a VM boots: a kernel, an initramfs (or None), a kernel command line, and a root disk (or
    None: the disk layout's root.img, which each machine gets a copy of)."""

    kernel: Path
    initrd: Path | None
    cmdline: str
    root: Path | None = None

    @classmethod
    def of_build(cls, out: Path, cmdline: str | None = None) -> VmFiles:
        """The files of a build_vm output directory (*cmdline* replaces out/cmdline)."""
        root = out / "root.img"
        return cls(
            out / "vmlinuz",
            out / "initramfs.img",
            cmdline or (out / "cmdline").read_text().strip(),
            root if root.exists() else None,
        )


@pytest.fixture(scope="session")
def svinit_vm_files(request: pytest.FixtureRequest) -> VmFiles:
    """The options' kernel, initramfs and command line; else the VM of --svinit-image when it is not
    svinit:alpine (its root disk: the disk layout); else the reference initramfs VM. Both are built
    with build_vm into svinit's cache (rebuilt only when their sources or the image's id change)."""
    opt = request.config.getoption
    kernel, initrd, cmdline = opt("--svinit-kernel"), opt("--svinit-initrd"), opt("--svinit-cmdline")
    if cmdline and cmdline.startswith("@"):
        cmdline = Path(cmdline[1:]).read_text().strip()
    if kernel:
        for f in (kernel, initrd):
            if f and not Path(f).is_file():
                pytest.fail(f"no file {f} (given to --svinit-kernel/--svinit-initrd)", pytrace=False)
        return VmFiles(Path(kernel), Path(initrd) if initrd else None, cmdline or "console=ttyS0")
    if initrd:
        pytest.fail("--svinit-initrd needs --svinit-kernel", pytrace=False)
    image = opt("--svinit-image")
    try:
        if image != DEFAULT_IMAGE:
            out = build_vm(vm_dir(image=image), image=image)
        else:
            out = build_vm(vm_dir("initramfs"))
    except SvinitError as e:
        what = "the reference VM" if image == DEFAULT_IMAGE else f"the VM of {image}"
        pytest.fail(f"cannot build {what}: {e}", pytrace=False)
    return VmFiles.of_build(out, cmdline)


def make_vm_factory(request: pytest.FixtureRequest, files: VmFiles):
    """(start, stop_all) for a VM fixture of any scope: start(**options) boots a machine as
    svinit_vm_factory does and registers it for the reports of the tests under request.node; stop_all()
    stops and cleans every machine it started."""
    multiplier = request.config.getoption("--svinit-timeout-multiplier")
    machines: list[QemuMachine] = []
    roots = make_temp_dir("svinit-roots-") if files.root else None

    def start(
        disks: list[Any] | None = None,
        cmdline: str | None = None,
        wait: bool = True,
        boot_timeout: float = 60,
        kernel: Path | None = None,
        initrd: Path | None = None,
        network: Any = None,
        snapshot: Snapshot | None = None,
        **options: Any,
    ) -> QemuMachine:
        options.setdefault("timeout_multiplier", multiplier)
        options.setdefault("name", f"vm{len(machines) + 1}")
        if snapshot is not None:
            if disks or cmdline or kernel or initrd or network:
                pytest.fail(
                    "a machine resumed from a snapshot has the snapshot's kernel, command line and disks "
                    "and no network: give snapshot= alone (with QemuMachine options: name, echo...)",
                    pytrace=False,
                )
            m = QemuMachine.from_snapshot(snapshot, **options)
            return boot(m, machines, request.node, wait, boot_timeout, then=refresh)
        if files.root is not None and roots is not None:  # a root of its own: the built one stays
            root = roots / f"{options['name']}-root.img"
            copy_disk(files.root, root)
            disks = [Disk(root), *(disks or [])]
        m = QemuMachine(
            kernel or files.kernel, initrd or files.initrd, cmdline or files.cmdline, disks, **options
        )
        joined = [net.join_vm(m) for net in networks_of(network)]
        # a command powers the machine off when it ends: not waited for here (m.wait_exit())
        boot(m, machines, request.node, wait and not options.get("command"), boot_timeout)
        for net, member in zip(networks_of(network), joined, strict=True):
            net.introduce(member)
        return m

    def stop_all() -> None:
        for m in machines:
            try:
                if m.is_running():
                    m.shutdown("acpi")
            except MachineError as e:
                log.warning("%s: no clean stop at teardown: %s", m.name, e)
            finally:
                m.close()
        if roots is not None:
            remove_temp_dir(roots)

    return start, stop_all


@pytest.fixture
def svinit_vm_factory(request: pytest.FixtureRequest, svinit_vm_files: VmFiles, svinit_network_factory):
    """Boots QEMU machines of svinit_vm_files: ``factory(disks=None, cmdline=None, wait=True,
    boot_timeout=60, kernel=None, initrd=None, network=None, snapshot=None, **QemuMachine options) ->
    QemuMachine`` (memory, accel, harness, extra_args, name, echo; shares, env and command as
    `svinit run --vm -v -e CMD`...); kernel, initrd and cmdline replace svinit_vm_files'. *network* (a
    Network, or a list) puts it on private networks: a virtio-net device each, its address set at
    boot, its peers' names in /etc/hosts (svinit.network). *snapshot* (``machine.snapshot()``) resumes
    it instead of a boot: copy-on-write disks of its own, its clock set and its random pool fed
    (svinit.qemu.snapshot). With *wait*, it returns once every service and logger is up; with a
    command, at once: ``m.wait_exit()`` waits for its end (the VM powers off after it), ``m.run_io``
    holds its exit code and output. At teardown each machine still running is stopped with the ACPI
    power button, then killed if it must be, and cleaned."""
    start, stop_all = make_vm_factory(request, svinit_vm_files)
    yield start
    stop_all()


@pytest.fixture(scope="session")
def svinit_vm_snapshots() -> Iterator[dict[str, Snapshot]]:
    """The session's snapshots (--svinit-vm-snapshot: {"svinit_vm": the first svinit_vm's}), removed
    at the session's end."""
    snaps: dict[str, Snapshot] = {}
    yield snaps
    for snap in snaps.values():
        snap.remove()


@pytest.fixture
def svinit_vm(request: pytest.FixtureRequest, svinit_vm_factory, svinit_vm_snapshots):
    """A VM of svinit_vm_files, booted: every service and logger up. With --svinit-vm-snapshot the
    session's first one boots and is saved, the others resume that snapshot (no boot)."""
    if not request.config.getoption("--svinit-vm-snapshot"):
        return svinit_vm_factory()
    snap = svinit_vm_snapshots.get("svinit_vm")
    if snap is not None:
        return svinit_vm_factory(snapshot=snap)
    m = svinit_vm_factory()
    svinit_vm_snapshots["svinit_vm"] = m.snapshot()
    return m
