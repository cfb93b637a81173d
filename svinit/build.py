"""Building svinit: the init package (C programs and sh), and later the images made from it."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import docker

from svinit import ROOT

log = logging.getLogger(__name__)


class BuildError(RuntimeError):
    """A build step failed; the message carries the command and its output."""


def build_init(out: Path | None = None) -> Path:
    """Builds the static programs with `make -C init`; returns the directory holding them.

    Args:
        out: build directory (default init/build).

    Raises:
        BuildError: make failed, or no compiler is installed.
    """
    if not shutil.which("make") or not (shutil.which("musl-gcc") or shutil.which("cc")):
        raise BuildError("building init/ needs make and musl-gcc (apt-get install make musl-tools)")
    out = (out or ROOT / "init" / "build").resolve()
    argv = ["make", "-C", str(ROOT / "init"), "-s", f"O={out}"]
    log.info("building the init package: %s", " ".join(argv))
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(argv)} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return out


def install_init(dest: Path, build: Path | None = None) -> Path:
    """Installs the init package into the tree *dest* (`make -C init install DESTDIR=dest`)."""
    build = build or build_init()
    argv = ["make", "-C", str(ROOT / "init"), "-s", f"O={build}", "install", f"DESTDIR={dest.resolve()}"]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(argv)} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return dest


#: What the container image is made from; its hash decides whether a build is needed.
CONTAINER_INPUTS = ("init/src", "init/sh", "init/Makefile", "images/alpine")
SOURCE_LABEL = "org.svinit.source"


def source_hash(paths: tuple[str, ...] = CONTAINER_INPUTS) -> str:
    """A hash of the files under *paths* (relative to ROOT): names, modes and contents."""
    h = hashlib.sha256()
    for rel in paths:
        base = ROOT / rel
        files = (
            [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file() or p.is_symlink())
        )
        for p in files:
            if "build" in p.relative_to(ROOT).parts[:2]:
                continue
            h.update(str(p.relative_to(ROOT)).encode() + b"\0")
            if p.is_symlink():
                h.update(b"->" + os.readlink(p).encode())
            else:
                h.update(oct(p.stat().st_mode & 0o777).encode() + p.read_bytes())
    return h.hexdigest()[:16]


def build_container(
    tag: str = "svinit:alpine",
    base: str = "alpine:3.23",
    client: docker.DockerClient | None = None,
    force: bool = False,
) -> str:
    """Builds the Alpine image with svinit as process 1 from images/alpine/Dockerfile; returns its id.

    The base image is provisioned from the local cache when missing (fetch.alpine_image: an explicit,
    logged `docker import`, never a pull). The build is skipped when *tag* already holds an image made
    from the same sources (label org.svinit.source).

    Args:
        tag: the image's tag.
        base: the base image (build argument BASE); must be present locally or be alpine:3.23.
        client: a docker client (default: from the environment).
        force: build even when the sources did not change.

    Raises:
        BuildError: the daemon is unreachable, the base is missing, or the build failed.
    """
    client = client or _docker()
    digest = source_hash()
    if not force:
        try:
            image = client.images.get(tag)
            if image.labels.get(SOURCE_LABEL) == digest:
                log.info("%s is up to date (sources %s): not rebuilding", tag, digest)
                return image.id
        except docker.errors.ImageNotFound:
            pass
    try:
        client.images.get(base)
    except docker.errors.ImageNotFound:
        if base != "alpine:3.23":
            raise BuildError(
                f"base image {base} is not present locally, and svinit never pulls: "
                f"load it first (docker load/import), or use alpine:3.23"
            ) from None
        from svinit.fetch import alpine_image

        alpine_image(client, tag=base)
    with tempfile.TemporaryDirectory(prefix="svinit-ctx-") as tmp:
        ctx = Path(tmp)
        for item in ("Dockerfile", "demo"):
            src = ROOT / "images" / "alpine" / item
            if src.is_dir():
                shutil.copytree(src, ctx / item, symlinks=True)
            else:
                shutil.copy2(src, ctx / item)
        install_init(ctx / "rootfs")
        log.info("building %s from images/alpine/Dockerfile (base %s, sources %s)", tag, base, digest)
        try:
            resp = client.api.build(
                path=str(ctx),
                tag=tag,
                buildargs={"BASE": base},
                rm=True,
                labels={SOURCE_LABEL: digest},
                decode=True,
                pull=False,
            )
            image_id = None
            for chunk in resp:
                if "stream" in chunk and chunk["stream"].strip():
                    log.info("  %s", chunk["stream"].rstrip())
                if "error" in chunk:
                    raise BuildError(f"docker build of {tag} failed: {chunk['error'].strip()}")
                if "aux" in chunk and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
        except docker.errors.APIError as e:
            raise BuildError(f"docker build of {tag} failed: {e}") from e
    return image_id or client.images.get(tag).id


def _docker() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
        return client
    except docker.errors.DockerException as e:
        raise BuildError(f"no Docker daemon answers ({e}): start dockerd (.ci/setup does)") from e
