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
    --svinit-artifacts DIR             a failing test's machines leave their output in
                                       DIR/TEST/MACHINE/ (docker.log; a VM's console.log and
                                       qmp-events.json; shutdown.json once ended) and DIR/TEST/verdict.json
    --svinit-artifacts-always          ... every test's that used a machine, passed ones too

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

A test that fails (in its setup or its call) gets each of its machines' output (docker logs, the VM's
console) in its report; fixtures of a wider scope register theirs with keep_for_report(request.node,
machine). With --svinit-artifacts, the output is also saved (before the fixtures' teardown removes the
machines), the report gets a section naming the folder, and the test gets the properties
``svinit_artifacts`` (the folder) and ``svinit_console_tail:MACHINE`` (the last lines of its console),
which --junitxml writes into the test's record.

>>> def test_heartbeat(svinit_container, svinit_host):
...     svinit_container.wait_for_service("heartbeat")
...     assert SvService(svinit_host, "heartbeat").is_running
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, is_dataclass
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
#: the lines of each machine's console a failing test's junit record carries
TAIL_LINES = 20
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
    group.addoption(
        "--svinit-artifacts",
        default=None,
        metavar="DIR",
        help="save a failing test's machines' output (docker logs; a VM's console and QMP events) and "
        "its verdict in DIR/TEST/, name it in the report and, with --junitxml, in the test's record",
    )
    group.addoption(
        "--svinit-artifacts-always",
        action="store_true",
        help="with --svinit-artifacts: save every test's that used a machine, passed ones too",
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


def _machines_of(item: pytest.Item) -> list[Machine]:
    """The machines kept for *item*'s report: its own, and its wider-scope fixtures' it uses."""
    used = [id(v) for v in getattr(item, "funcargs", {}).values()]
    machines = []
    for node in item.listchain():
        for m in node.stash.get(_MACHINES, []):
            # a wider-scope fixture's machine: only in the reports of the tests that use it
            if node is not item and id(m) not in used:
                continue
            if getattr(m, "container", True) is None:  # a container never created
                continue
            machines.append(m)
    return machines


def _logs(m: Machine) -> str:
    try:
        return m.logs()
    except Exception as e:  # the report must not fail for want of the logs
        return f"(no logs: {e})"


def safe_name(text: str, limit: int = 120) -> str:
    """*text* as one file name: characters other than letters, digits, ``.``, ``-`` and ``_`` become
    ``_``; a long one is cut and given a hash of *text* (two names stay apart)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "_"
    if len(name) > limit:
        name = f"{name[: limit - 9]}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"
    return name


def _jsonable(value: Any) -> Any:
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else str(value)


def save_artifacts(folder: Path, machines: list[Machine], verdict: dict[str, Any]) -> list[tuple[str, Path]]:
    """Writes each machine's output in folder/MACHINE/ (docker.log for a container, console.log and
    qmp-events.json for a VM, shutdown.json once it ended) and *verdict* in folder/verdict.json; a
    previous run's folder is replaced. Returns each machine's (name, folder)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    saved: list[tuple[str, Path]] = []
    for m in machines:
        name = safe_name(m.name)
        while (folder / name).exists():
            name += "_"
        d = folder / name
        d.mkdir()
        saved.append((m.name, d))
        if isinstance(m, QemuMachine):
            (d / "console.log").write_text(_logs(m))
            if m.qmp is not None:
                (d / "qmp-events.json").write_text(json.dumps(list(m.qmp.events), indent=1, default=str))
        else:
            (d / "docker.log").write_text(_logs(m))
        result = getattr(m, "result", None)
        if result is not None:
            (d / "shutdown.json").write_text(json.dumps(_jsonable(result), indent=1, default=_jsonable))
    verdict = {**verdict, "machines": [{"name": n, "folder": p.name} for n, p in saved]}
    (folder / "verdict.json").write_text(json.dumps(verdict, indent=1, default=str) + "\n")
    return saved


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last *lines* lines of *text*."""
    return "\n".join(text.rstrip("\n").split("\n")[-lines:])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    failed = report.failed and call.when in ("setup", "call")
    artifacts = item.config.getoption("--svinit-artifacts", None)
    always = artifacts and item.config.getoption("--svinit-artifacts-always") and call.when == "call"
    if not (failed or always):
        return report
    machines = _machines_of(item)
    if failed:
        for m in machines:
            report.sections.append((f"svinit: output of {m.name}", _logs(m)))
    if artifacts and machines:
        folder = Path(artifacts).absolute() / safe_name(item.nodeid)
        verdict = {
            "test": item.nodeid,
            "phase": call.when,
            "outcome": report.outcome,
            "seconds": round(call.duration, 3),
            "longrepr": str(report.longrepr) if report.longrepr else None,
        }
        try:
            saved = save_artifacts(folder, machines, verdict)
        except OSError as e:
            report.sections.append(("svinit: artifacts", f"not saved in {folder}: {e}"))
            return report
        listing = "\n".join(f"{name}: {d}" for name, d in saved)
        report.sections.append(("svinit: artifacts", f"{folder}\n{listing}"))
        item.user_properties.append(("svinit_artifacts", str(folder)))
        if failed:
            for m in machines:
                item.user_properties.append((f"svinit_console_tail:{m.name}", tail(_logs(m))))
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
        # a command powers the machine off when it ends: not waited for here (m.wait_exit())
        return _boot(m, machines, request.node, wait and not options.get("command"), boot_timeout)

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
    harness, extra_args, name, echo; shares, env and command as `svinit run --vm -v -e CMD`...); kernel,
    initrd and cmdline replace svinit_vm_files'. With *wait*, it returns once every service and logger
    is up; with a command, at once: ``m.wait_exit()`` waits for its end (the VM powers off after it),
    ``m.run_io`` holds its exit code and output. At teardown each machine still running is
    stopped with the ACPI power button, then killed if it must be, and cleaned."""
    start, stop_all = make_vm_factory(request, svinit_vm_files)
    yield start
    stop_all()


@pytest.fixture
def svinit_vm(svinit_vm_factory):
    """A VM of svinit_vm_files, booted: every service and logger up."""
    return svinit_vm_factory()
