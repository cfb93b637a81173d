"""pytest plugin (entry point ``pytest11``): booted svinit containers as machines with verbs.

Options:
    --svinit-image IMAGE               the image the fixtures boot (default svinit:alpine; never pulled)
    --svinit-timeout-multiplier N      scales every wait of the machines (slow hosts)

Fixtures:
    svinit_image                the image's tag, checked present (else the test fails: build it first)
    svinit_container_factory    starts containers with custom options: factory(command=..., environment=...,
                                volumes=..., read_only=..., wait=True, **docker options) -> ContainerMachine
    svinit_container            a booted container of the image, every service up; stopped and removed after
    svinit_host                 a testinfra host on svinit_container (backend docker)

A test that fails gets each of its containers' output (docker logs) in its report.

>>> def test_heartbeat(svinit_container, svinit_host):
...     svinit_container.wait_for_service("heartbeat")
...     assert SvService(svinit_host, "heartbeat").is_running
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from svinit.container import DEFAULT_IMAGE, ContainerMachine, docker_client, require_image
from svinit.machine import MachineError

_MACHINES = pytest.StashKey[list]()


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


@pytest.fixture(scope="session")
def svinit_docker():
    """A docker client (from the environment); the test fails when no daemon answers."""
    try:
        return docker_client()
    except MachineError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def svinit_image(request: pytest.FixtureRequest, svinit_docker) -> str:
    """The image given by --svinit-image, checked present locally (it is never pulled)."""
    image = request.config.getoption("--svinit-image")
    try:
        require_image(svinit_docker, image)
    except MachineError as e:
        pytest.fail(str(e), pytrace=False)
    return image


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
    machines: list[ContainerMachine] = []
    request.node.stash[_MACHINES] = machines

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
            except MachineError as e:
                pytest.fail(str(e), pytrace=False)
        options.setdefault("timeout_multiplier", multiplier)
        m = ContainerMachine(image or svinit_image, command, client=svinit_docker, **options)
        machines.append(m)
        m.start()
        if wait:
            m.wait_for_all_services(boot_timeout)
        return m

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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed and call.when == "call":
        for m in item.stash.get(_MACHINES, []):
            if m.container is None:
                continue
            try:
                text = m.logs()
            except Exception as e:  # the report must not fail for want of the logs
                text = f"(no logs: {e})"
            report.sections.append((f"svinit: output of {m.name}", text))
    return report
