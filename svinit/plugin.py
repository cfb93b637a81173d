"""pytest plugin (entry point ``pytest11``): booted svinit containers and virtual machines, with verbs.

Options:
    --svinit-image IMAGE               the image the fixtures boot (default svinit:alpine; never pulled);
                                       another image is booted as a VM too: its root disk (the disk
                                       layout, built once per image id and cached)
    --svinit-timeout-multiplier N      scales every wait of the machines (slow hosts)
    --svinit-name-prefix PREFIX        names the containers PREFIX-PID-N (every container and VM of the
                                       harness is marked for `svinit clean` either way)
    --svinit-kernel FILE               the VM fixtures boot this kernel (default: svinit's reference VM,
                                       built with build_vm, Debian's kernel)
    --svinit-initrd FILE               ... with this initramfs
    --svinit-cmdline TEXT|@FILE        ... and this kernel command line (default console=ttyS0)

Fixtures:
    svinit_image                the image's tag, checked present (else the test fails: build it first)
    svinit_container_factory    starts containers with custom options: factory(command=..., environment=...,
                                volumes=..., read_only=..., wait=True, **docker options) -> ContainerMachine
    svinit_container            a booted container of the image, every service up; stopped and removed after
    svinit_host                 a testinfra host on svinit_container (backend docker)
    svinit_vm_files             (kernel, initrd, cmdline, root) of the VM: the options', else the VM of
                                --svinit-image when it is not svinit:alpine, else the reference
                                initramfs VM (build_vm, cached in svinit's cache)
    svinit_vm_factory           boots QEMU machines: factory(disks=[...], memory=..., cmdline=..., wait=True,
                                **QemuMachine options) -> QemuMachine, every service up; a root disk
                                is a copy of its own, first of m.disks
    svinit_vm                   a booted VM of svinit_vm_files, every service up; stopped (ACPI power
                                button) and cleaned after

A test that fails gets each of its machines' output (docker logs, the VM's console) in its report;
fixtures of a wider scope register theirs with keep_for_report(request.node, machine).

>>> def test_heartbeat(svinit_container, svinit_host):
...     svinit_container.wait_for_service("heartbeat")
...     assert SvService(svinit_host, "heartbeat").is_running
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from svinit.build import build_vm, vm_dir
from svinit.container import ContainerMachine
from svinit.disks import copy_disk
from svinit.dockerd import DEFAULT_IMAGE, docker_client, require_image
from svinit.errors import SvinitError
from svinit.leftovers import make_temp_dir, remove_temp_dir
from svinit.machine import Machine, MachineError
from svinit.qemu.definition import Disk
from svinit.qemu.machine import QemuMachine

log = logging.getLogger(__name__)
_MACHINES = pytest.StashKey[list]()
#: numbers the containers named with --svinit-name-prefix
_numbers = itertools.count(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("svinit", "svinit containers")
    group.addoption(
        "--svinit-image",
        default=DEFAULT_IMAGE,
        metavar="IMAGE",
        help="the local image svinit's fixtures boot (default %(default)s; never pulled)",
    )
    group.addoption(
        "--svinit-timeout-multiplier",
        type=float,
        default=None,
        metavar="N",
        help="multiply every timeout of svinit's machines (default $SVINIT_TIMEOUT_MULTIPLIER, else 1)",
    )
    group.addoption(
        "--svinit-name-prefix",
        default=None,
        metavar="PREFIX",
        help="name the containers svinit's fixtures start PREFIX-PID-N (PID: pytest's; default: Docker "
        "picks the names); every one is labelled org.svinit.harness either way",
    )
    group.addoption(
        "--svinit-kernel",
        default=None,
        metavar="FILE",
        help="the kernel svinit's VM fixtures boot (default: the reference VM, built with build_vm)",
    )
    group.addoption("--svinit-initrd", default=None, metavar="FILE", help="the VM fixtures' initramfs")
    group.addoption(
        "--svinit-cmdline",
        default=None,
        metavar="TEXT|@FILE",
        help="the VM fixtures' kernel command line, or @FILE to read it (default console=ttyS0; "
        "svinit.harness=ttyS1 is added)",
    )


@pytest.fixture(scope="session")
def svinit_docker():
    """A docker client (from the environment); the test fails when no daemon answers."""
    try:
        return docker_client()
    except SvinitError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def svinit_image(request: pytest.FixtureRequest, svinit_docker) -> str:
    """The image given by --svinit-image, checked present locally (it is never pulled)."""
    image = request.config.getoption("--svinit-image")
    try:
        require_image(svinit_docker, image)
    except SvinitError as e:
        pytest.fail(str(e), pytrace=False)
    return image


M = TypeVar("M", bound=Machine)


def _boot(m: M, machines: list, node, wait: bool, boot_timeout: float) -> M:
    """Starts a factory's machine: kept for teardown and for the failure report, booted, and with
    *wait* returned once every service and logger is up."""
    machines.append(m)
    keep_for_report(node, m)
    m.start()
    if wait:
        m.wait_for_all_services(boot_timeout)
    return m


@pytest.fixture
def svinit_container_factory(
    request: pytest.FixtureRequest, svinit_image: str, svinit_docker
) -> Iterator[Callable[..., ContainerMachine]]:
    """Starts containers: ``factory(command=None, image=None, wait=True, boot_timeout=10, **options)``.

    *options* are ContainerMachine's (environment, volumes, read_only, tmpfs, tty, stdin_open,
    stop_timeout, and docker-py's create arguments). With *wait*, the factory returns once every service
    and logger is up. Every container is removed at teardown.
    """
    multiplier = request.config.getoption("--svinit-timeout-multiplier")
    prefix = request.config.getoption("--svinit-name-prefix")
    machines: list[ContainerMachine] = []

    def start(
        command: list[str] | str | None = None,
        image: str | None = None,
        wait: bool = True,
        boot_timeout: float = 10,
        **options: Any,
    ) -> ContainerMachine:
        if image is not None and image != svinit_image:
            try:
                require_image(svinit_docker, image)
            except SvinitError as e:
                pytest.fail(str(e), pytrace=False)
        options.setdefault("timeout_multiplier", multiplier)
        if prefix and options.get("name") is None:
            options["name"] = f"{prefix}-{os.getpid()}-{next(_numbers)}"
        m = ContainerMachine(image or svinit_image, command, client=svinit_docker, **options)
        return _boot(m, machines, request.node, wait, boot_timeout)

    yield start
    for m in machines:
        m.close()


@pytest.fixture
def svinit_container(svinit_container_factory) -> ContainerMachine:
    """A container of --svinit-image, booted: every service and logger up."""
    return svinit_container_factory()


@pytest.fixture
def svinit_host(svinit_container: ContainerMachine):
    """A testinfra host on svinit_container (``docker exec ... /bin/sh -c``)."""
    return svinit_container.host


def keep_for_report(node: pytest.Item | pytest.Collector, machine: Machine) -> None:
    """Puts *machine*'s output in the report of a test that fails: every test's under *node* if *node* is
    the test, else (a module's or a session's fixture passes its request.node) every test's that has the
    machine as an argument."""
    node.stash.setdefault(_MACHINES, []).append(machine)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed and call.when == "call":
        used = [id(v) for v in getattr(item, "funcargs", {}).values()]
        for node in item.listchain():
            for m in node.stash.get(_MACHINES, []):
                # a wider-scope fixture's machine: only in the reports of the tests that use it
                if node is not item and id(m) not in used:
                    continue
                if getattr(m, "container", True) is None:
                    continue
                try:
                    text = m.logs()
                except Exception as e:  # the report must not fail for want of the logs
                    text = f"(no logs: {e})"
                report.sections.append((f"svinit: output of {m.name}", text))
    return report


# ---------------------------------------------------------------------------------------------------
# Virtual machines


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
        **options: Any,
    ) -> QemuMachine:
        options.setdefault("timeout_multiplier", multiplier)
        options.setdefault("name", f"vm{len(machines) + 1}")
        if files.root is not None and roots is not None:  # a root of its own: the built one stays
            root = roots / f"{options['name']}-root.img"
            copy_disk(files.root, root)
            disks = [Disk(root), *(disks or [])]
        m = QemuMachine(
            kernel or files.kernel, initrd or files.initrd, cmdline or files.cmdline, disks, **options
        )
        return _boot(m, machines, request.node, wait, boot_timeout)

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
def svinit_vm_factory(request: pytest.FixtureRequest, svinit_vm_files: VmFiles):
    """Boots QEMU machines of svinit_vm_files: ``factory(disks=None, cmdline=None, wait=True,
    boot_timeout=60, kernel=None, initrd=None, **QemuMachine options) -> QemuMachine`` (memory, accel,
    harness, extra_args, name, echo...); kernel, initrd and cmdline replace svinit_vm_files'. With
    *wait*, it returns once every service and logger is up. At teardown each machine still running is
    stopped with the ACPI power button, then killed if it must be, and cleaned."""
    start, stop_all = make_vm_factory(request, svinit_vm_files)
    yield start
    stop_all()


@pytest.fixture
def svinit_vm(svinit_vm_factory):
    """A VM of svinit_vm_files, booted: every service and logger up."""
    return svinit_vm_factory()
