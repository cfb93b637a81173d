"""Debian packages, fetched with ``apt-get download`` and unpacked with ``dpkg -x`` into the cache, never
installed on the host: daemontools (the compatibility peer), static busybox, and Debian's kernel."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from svinit.fetch.cache import FetchError, cache_dir, locked

log = logging.getLogger(__name__)


def debian_package(name: str) -> Path:
    """Download the Debian package *name* once and unpack it into the cache (never installed).

    Args:
        name: the binary package, e.g. ``busybox-static``; apt's candidate version is fetched.

    Returns:
        The unpacked tree, ``cache_dir()/deb/<name>`` (the ``.deb`` is kept in ``deb/_debs``).

    Raises:
        FetchError: apt-get or dpkg failed (the message carries their output).
    """
    tree = cache_dir() / "deb" / name
    stamp = tree / ".unpacked"
    if stamp.exists():
        return tree
    (cache_dir() / "deb").mkdir(parents=True, exist_ok=True)
    with locked(cache_dir() / "deb" / f"{name}.lock"):
        # another session (an xdist worker) may have unpacked it while this one waited
        if not stamp.exists():
            _fetch_and_unpack(name, tree)
            stamp.touch()
    return tree


def _fetch_and_unpack(name: str, tree: Path) -> None:
    for tool in ("apt-get", "dpkg"):
        if not shutil.which(tool):
            raise FetchError(
                f"{tool} not found: fetching the Debian package {name} needs a Debian/Ubuntu host"
            )
    debs = cache_dir() / "deb" / "_debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{name}_*.deb"))
    if not found:
        log.info("fetching Debian package %s (apt-get download)", name)
        proc = subprocess.run(
            ["apt-get", "download", name], cwd=debs, capture_output=True, text=True, check=False
        )
        found = sorted(debs.glob(f"{name}_*.deb"))
        if proc.returncode != 0 or not found:
            raise FetchError(
                f"apt-get download {name} failed (exit {proc.returncode}): {proc.stderr.strip()}\n"
                "Check that the apt lists are current (apt-get update) and that deb.debian.org is reachable."
            )
        log.info("fetched %s (%.1f MB)", found[-1].name, found[-1].stat().st_size / 1e6)
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    log.info("unpacking %s (dpkg -x) into %s", found[-1].name, tree)
    proc = subprocess.run(
        ["dpkg", "-x", str(found[-1]), str(tree)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise FetchError(f"dpkg -x {found[-1]} failed: {proc.stderr.strip()}")


def daemontools_bin() -> Path:
    """Directory holding djb's daemontools 0.76 binaries from Debian's ``daemontools`` package.

    Raises:
        FetchError: as :func:`debian_package`.
    """
    return debian_package("daemontools") / "usr" / "bin"


def busybox_static() -> Path:
    """The static busybox binary from Debian's ``busybox-static`` package (fetched once, cached).

    Debian 12 ships busybox 1.35 with ``svc``, ``svok``, ``getty``, ``acpid``, ``mdev``,
    ``switch_root``, ``modprobe`` and ``depmod`` (no ``svlogd``, no ``runsv``); statically linked, so it
    can be an initramfs's only program.

    Returns:
        The path of ``bin/busybox`` inside the unpacked package.

    Raises:
        FetchError: the package could not be fetched, or it holds no ``bin/busybox``.
    """
    binary = debian_package("busybox-static") / "bin" / "busybox"
    if not binary.is_file():
        raise FetchError(
            f"{binary} is missing from the unpacked busybox-static package; "
            f"delete {binary.parent.parent} and fetch again"
        )
    return binary


# --- The Debian kernel ------------------------------------------------------------------------------

#: Debian's metapackage for the current amd64 kernel; it depends on exactly one linux-image-<abi>-amd64.
KERNEL_METAPACKAGE = "linux-image-amd64"


@dataclass(frozen=True)
class DebianKernel:
    """A Debian kernel unpacked in the cache (never installed).

    Attributes:
        package: the Debian package, e.g. ``linux-image-6.1.0-56-amd64``.
        version: the kernel release (``uname -r``), e.g. ``6.1.0-56-amd64``.
        vmlinuz: the bootable kernel image, for ``qemu-system-x86_64 -kernel``.
        modules: ``lib/modules/<version>``: uncompressed ``.ko`` files under ``kernel/``, plus
            ``modules.order`` and ``modules.builtin``. The package ships no ``modules.dep`` nor
            ``modules.softdep`` (its postinst runs depmod): whoever needs them must generate them.
    """

    package: str
    version: str
    vmlinuz: Path
    modules: Path


#: apt's package lists: when they change, Debian's current kernel may have changed.
APT_LISTS = Path("/var/lib/apt/lists")


def debian_kernel_package() -> str:
    """The name of the kernel package that Debian's ``linux-image-amd64`` currently depends on.

    Returns:
        A package name such as ``linux-image-6.1.0-56-amd64``.

    The answer is kept in the cache (``kernel-package``) with the time apt's lists last changed, and
    reused until they change (an apt-get update): apt-cache takes a second or more, which every
    `svinit run --vm` would wait.

    Raises:
        FetchError: apt-cache failed or its answer names no ``linux-image-*-amd64``.
    """
    memo = cache_dir() / "kernel-package"
    try:
        lists = str(APT_LISTS.stat().st_mtime_ns)
        kept, package = memo.read_text().split()
        if kept == lists:
            return package
    except (OSError, ValueError):
        lists = None
    if not shutil.which("apt-cache"):
        raise FetchError("apt-cache not found: finding Debian's kernel package needs a Debian host")
    argv = ["apt-cache", "show", "--no-all-versions", KERNEL_METAPACKAGE]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    depends = re.search(r"^Depends:.*$", proc.stdout, re.MULTILINE)
    found = re.search(r"\b(linux-image-\d[\w.+-]*-amd64)\b", depends.group(0)) if depends else None
    if proc.returncode != 0 or not found:
        raise FetchError(
            f"`{' '.join(argv)}` named no linux-image-*-amd64 (exit {proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()[:500]}\n"
            "Check that the apt lists are current (apt-get update)."
        )
    try:
        lists = str(APT_LISTS.stat().st_mtime_ns)
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(f"{lists} {found.group(1)}\n")
    except OSError:
        pass
    return found.group(1)


def debian_kernel(package: str | None = None) -> DebianKernel:
    """Fetch Debian 12's current amd64 kernel package and unpack it into the cache.

    About 70 MB to download and 400 MB unpacked; a few seconds on this project's machines.

    Args:
        package: the exact package to fetch; by default the one ``linux-image-amd64`` depends on now
            (see :func:`debian_kernel_package`). Pass a name to pin a kernel across Debian updates.

    Returns:
        A :class:`DebianKernel` with the vmlinuz path, the modules directory and the kernel version.

    Raises:
        FetchError: apt failed, or the unpacked package lacks ``boot/vmlinuz-<ver>`` or
            ``lib/modules/<ver>``.
    """
    package = package or debian_kernel_package()
    tree = debian_package(package)
    version = package.removeprefix("linux-image-")
    vmlinuz = tree / "boot" / f"vmlinuz-{version}"
    modules = tree / "lib" / "modules" / version
    for need in (vmlinuz, modules / "kernel"):
        if not need.exists():
            raise FetchError(
                f"{need} is missing from the unpacked {package}: is it a kernel image package? "
                f"Delete {tree} and fetch again."
            )
    log.info("Debian kernel %s: %s", version, vmlinuz)
    return DebianKernel(package=package, version=version, vmlinuz=vmlinuz, modules=modules)
