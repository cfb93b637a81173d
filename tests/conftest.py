"""Fixtures shared by the tests: the built init package and the real daemontools 0.76 peers."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from svinit import ROOT
from svinit.fetch import daemontools_bin

INIT = ROOT / "init"


@pytest.fixture(scope="session")
def init_bin() -> Path:
    """Directory with svinit's static programs, built by `make -C init` (or $SVINIT_INIT_BIN, prebuilt)."""
    if os.environ.get("SVINIT_INIT_BIN"):
        return Path(os.environ["SVINIT_INIT_BIN"])
    from svinit.build.init import build_init

    return build_init()  # under a lock: pytest-xdist workers build it once


@pytest.fixture(scope="session")
def djb_bin() -> Path:
    """Directory with Debian's daemontools 0.76 binaries (fetched once, cached, never installed)."""
    return daemontools_bin()


@pytest.fixture
def scandir(tmp_path: Path) -> Path:
    d = tmp_path / "service"
    d.mkdir()
    return d


def path_with(*dirs: Path) -> str:
    """A PATH whose first directories are *dirs*, then the system's."""
    return os.pathsep.join([str(d) for d in dirs] + [os.environ.get("PATH", "/usr/bin:/bin")])


@pytest.fixture(scope="session")
def have_unshare() -> None:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare for a real PID namespace")


@pytest.fixture
def scanner(init_bin, djb_bin, tmp_path, have_unshare):
    """Starts svscan in a PID namespace: scanner(scandir, svscan="ours"|"djb", supervise=..., pid1=...)."""
    from tests.util import Scanner

    made = []

    def start(
        scandir: Path,
        svscan: str = "ours",
        supervise: str = "ours",
        pid1: bool = False,
        path: list[Path] | None = None,
        env: dict[str, str] | None = None,
    ) -> Scanner:
        binary = (init_bin if svscan == "ours" else djb_bin) / "svscan"
        first = [init_bin if supervise == "ours" else djb_bin]
        tools = [init_bin]
        s = Scanner(
            binary, scandir, (path or []) + first + tools, tmp_path / f"svscan-{len(made)}.log", pid1, env
        )
        made.append(s)
        return s

    yield start
    for s in made:
        s.close()


pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def svinit_image(request, svinit_docker) -> str:
    """Overrides the plugin's: svinit:alpine is built first (once a session; cached by its sources' hash).
    Another --svinit-image must be present already."""
    from svinit.build import build_container
    from svinit.dockerd import require_image

    image = request.config.getoption("--svinit-image")
    if image == "svinit:alpine":
        build_container(tag=image, client=svinit_docker)
    require_image(svinit_docker, image)
    return image


@pytest.fixture(scope="session", autouse=True)
def _remove_test_images():
    """At the session's end, removes the images this worker's tests made (tests.util.worker_tag), so a
    run leaves no temporary image behind (and nothing of one worker's is removed by another)."""
    yield
    from tests.util import TEST_REPOSITORY, WORKER

    if not shutil.which("docker"):
        return
    ref = f"reference={TEST_REPOSITORY}:*-{WORKER}"
    found = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", ref],
        capture_output=True,
        text=True,
    )
    tags = found.stdout.split() if found.returncode == 0 else []
    if tags:
        subprocess.run(["docker", "rmi", "-f", *tags], capture_output=True)
