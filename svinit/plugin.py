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
    --svinit-vm-snapshot               the session's first svinit_vm boots and is saved (a snapshot:
                                       QEMU's migration to a file); the others resume it, no boot
    --svinit-artifacts DIR             a failing test's machines leave their output in
                                       DIR/TEST/MACHINE/ (docker.log; a VM's console.log and
                                       qmp-events.json; shutdown.json once ended) and DIR/TEST/verdict.json
    --svinit-artifacts-always          ... every test's that used a machine, passed ones too

Fixtures:
    svinit_image                the image's tag, checked present (else the test fails: build it first)
    svinit_container_factory    starts containers with custom options: factory(command=..., environment=...,
                                volumes=..., read_only=..., wait=True, network=None, **docker options)
                                -> ContainerMachine
    svinit_container            a booted container of the image, every service up; stopped and removed after
    svinit_host                 a testinfra host on svinit_container (backend docker)
    svinit_vm_files             (kernel, initrd, cmdline, root) of the VM: the options', else the VM of
                                --svinit-image when it is not svinit:alpine, else the reference
                                initramfs VM (build_vm, cached in svinit's cache)
    svinit_vm_factory           boots QEMU machines: factory(disks=[...], memory=..., cmdline=..., wait=True,
                                network=None, snapshot=None, **QemuMachine options) -> QemuMachine,
                                every service up; a root disk is a copy of its own, first of m.disks;
                                snapshot=m.snapshot() resumes a saved machine instead (no boot; qcow2
                                overlays of its disks, its clock and random pool refreshed)
    svinit_vm                   a booted VM of svinit_vm_files, every service up; stopped (ACPI power
                                button) and cleaned after (with --svinit-vm-snapshot: resumed)
    svinit_vm_snapshots         the session's snapshots ({"svinit_vm": ...}), removed at its end
    svinit_network              a private network (svinit.network): factory(network=net, name="server")
                                puts a container on a Docker network of its own, a VM on a QEMU link
                                (virtio-net, -netdev dgram to the harness's hub: no privileges); each gets
                                an address (m.address(net)) and peers reach it by name;
                                m.block() / m.unblock() cut and restore its link
    svinit_network_factory      makes several: factory(name="net") -> Network; removed after the machines

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
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import pytest

from svinit.container import ContainerMachine
from svinit.dockerd import DEFAULT_IMAGE, docker_client, require_image
from svinit.errors import SvinitError
from svinit.machine import Machine
from svinit.pytest_network import svinit_network, svinit_network_factory
from svinit.pytest_support import MACHINES, boot, keep_for_report, networks_of
from svinit.pytest_vm import (
    VmFiles,
    make_vm_factory,
    svinit_vm,
    svinit_vm_factory,
    svinit_vm_files,
    svinit_vm_snapshots,
)
from svinit.qemu.machine import QemuMachine

# the run's guard: its mark, SIGTERM as Ctrl-C, what ended workers left removed at the end
from svinit.runguard import pytest_configure as pytest_configure
from svinit.runguard import pytest_unconfigure as pytest_unconfigure

#: the fixtures of the plugin's other modules (pytest finds a plugin's fixtures among its names)
__all__ = [
    "VmFiles",
    "keep_for_report",
    "make_vm_factory",
    "svinit_network",
    "svinit_network_factory",
    "svinit_vm",
    "svinit_vm_factory",
    "svinit_vm_files",
    "svinit_vm_snapshots",
]

log = logging.getLogger(__name__)
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
        "--svinit-vm-snapshot",
        action="store_true",
        help="the session's first svinit_vm boots and is saved (QEMU migration to a file); the others "
        "resume that snapshot, ready without a boot",
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


@pytest.fixture
def svinit_container_factory(
    request: pytest.FixtureRequest, svinit_image: str, svinit_docker, svinit_network_factory
) -> Iterator[Callable[..., ContainerMachine]]:
    """Starts containers: ``factory(command=None, image=None, wait=True, boot_timeout=10, **options)``.

    *options* are ContainerMachine's (environment, volumes, read_only, tmpfs, tty, stdin_open,
    stop_timeout, and docker-py's create arguments). *network* (a svinit.network.Network) starts it on
    that private network alone: *name* (default cN) is its name there and its hostname, the container's
    own name PREFIX-PID-N-NAME. With *wait*, the factory returns once every service and logger is up.
    Every container is removed at teardown.
    """
    multiplier = request.config.getoption("--svinit-timeout-multiplier")
    prefix = request.config.getoption("--svinit-name-prefix")
    machines: list[ContainerMachine] = []

    def start(
        command: list[str] | str | None = None,
        image: str | None = None,
        wait: bool = True,
        boot_timeout: float = 10,
        network: Any = None,
        **options: Any,
    ) -> ContainerMachine:
        if image is not None and image != svinit_image:
            try:
                require_image(svinit_docker, image)
            except SvinitError as e:
                pytest.fail(str(e), pytrace=False)
        options.setdefault("timeout_multiplier", multiplier)
        nets = networks_of(network)
        number = next(_numbers)
        host = options.get("name") or f"c{number}"
        if nets:  # peers use its own name (the network's alias); the container's is unique
            options["name"] = f"{prefix or 'svinit'}-{os.getpid()}-{number}-{host}"
            options.setdefault("hostname", host)
        elif prefix and options.get("name") is None:
            options["name"] = f"{prefix}-{os.getpid()}-{number}"
        m = ContainerMachine(image or svinit_image, command, client=svinit_docker, **options)
        if nets:
            m.name = host
            if len(nets) > 1:
                pytest.fail("a container joins one network (docker connects it to one at creation)")
            nets[0].join_container(m)
        return boot(m, machines, request.node, wait, boot_timeout)

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


def _machines_of(item: pytest.Item) -> list[Machine]:
    """The machines kept for *item*'s report: its own, and its wider-scope fixtures' it uses."""
    used = [id(v) for v in getattr(item, "funcargs", {}).values()]
    machines = []
    for node in item.listchain():
        for m in node.stash.get(MACHINES, []):
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
