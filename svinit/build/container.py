"""The container images: images/alpine/Dockerfile with the init package installed (svinit:alpine), and
images/debian/Dockerfile with the init package's archive ADDed (svinit:debian), from a local base."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # docker is imported where it is used: `svinit` starts without its 0.1-0.3 s
    import docker

from svinit import resources
from svinit.build.init import dist_archive, install_init
from svinit.build.sources import CONTAINER_INPUTS, BuildError, source_hash
from svinit.dockerd import DEFAULT_IMAGE, docker_client
from svinit.fetch.alpine import alpine_image
from svinit.fetch.cache import cache_dir, locked
from svinit.fetch.debian_base import DEFAULT_TAG as DEBIAN_BASE
from svinit.fetch.debian_base import debian_base

log = logging.getLogger(__name__)

SOURCE_LABEL = "org.svinit.source"
#: `--base debian`: images/debian on the Debian 12 base (fetch.debian_base), tagged this by default.
DEBIAN_IMAGE = "svinit:debian"
DEBIAN_INPUTS = ("init/src", "init/sh", "init/Makefile", "images/debian")


def container_tag(base: str) -> str:
    """The default tag for an image built on *base*: svinit:debian for debian, else svinit:alpine."""
    return DEBIAN_IMAGE if base == "debian" else DEFAULT_IMAGE


def build_container(
    tag: str | None = None,
    base: str = "alpine:3.23",
    client: docker.DockerClient | None = None,
    force: bool = False,
) -> str:
    """Builds an image with svinit as process 1; returns its id.

    With *base* ``debian``: images/debian/Dockerfile (nginx and cron) on the Debian 12 minbase image
    svinit-base:debian12 (fetch.debian_base: made once by mmdebstrap, cached, `docker import`ed), the
    init package's archive (`make -C init dist`) ADDed. Otherwise images/alpine/Dockerfile on *base*,
    the init package installed (alpine:3.23 is provisioned from the local cache when missing:
    fetch.alpine_image, an explicit, logged `docker import`). Never a pull. The build is skipped when
    *tag* already holds an image made from the same sources (label org.svinit.source).

    Args:
        tag: the image's tag (default: :func:`container_tag` of *base*).
        base: ``debian``, or the base image (build argument BASE), present locally or alpine:3.23.
        client: a docker client (default: from the environment).
        force: build even when the sources did not change.

    Raises:
        DockerError: the daemon is unreachable.
        BuildError: the base is missing, or the build failed.
        FetchError: the Debian base could not be made (mmdebstrap missing or failing).
    """
    import docker.errors

    client = client or docker_client()
    tag = tag or container_tag(base)
    debian = base == "debian"
    if debian:
        base = DEBIAN_BASE
        debian_base(client, tag=base)
    try:
        base_id = client.images.get(base).id
    except docker.errors.ImageNotFound:
        if base != "alpine:3.23":
            raise BuildError(
                f"base image {base} is not present locally, and svinit never pulls: "
                f"load it first (docker load/import), or use alpine:3.23"
            ) from None
        base_id = alpine_image(client, tag=base)
    # the sources and the base: a base made again (a new mmdebstrap) makes the image again too
    digest = source_hash(DEBIAN_INPUTS if debian else CONTAINER_INPUTS) + "-" + base_id.split(":")[-1][:12]
    # two sessions (two pytest-xdist workers) building one tag at once would both build: the second waits
    # here, then finds the first one's image up to date
    locks = cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with locked(locks / f"container-{tag.replace('/', '_')}.lock"):
        return _build(client, tag, base, digest, debian, force)


def _build(client: docker.DockerClient, tag: str, base: str, digest: str, debian: bool, force: bool) -> str:
    import docker.errors

    if not force:
        try:
            image = client.images.get(tag)
            if image.labels.get(SOURCE_LABEL) == digest:
                log.info("%s is up to date (sources and base %s): not rebuilding", tag, digest)
                return image.id
        except docker.errors.ImageNotFound:
            pass
    recipe = "debian" if debian else "alpine"
    with tempfile.TemporaryDirectory(prefix="svinit-ctx-") as tmp:
        ctx = Path(tmp)
        shutil.copytree(resources.data(f"images/{recipe}"), ctx, symlinks=True, dirs_exist_ok=True)
        buildargs = {"BASE": base}
        if debian:
            archive = dist_archive()
            shutil.copy2(archive, ctx / archive.name)
            buildargs["ARCHIVE"] = archive.name
        else:
            install_init(ctx / "rootfs")
        log.info("building %s from images/%s/Dockerfile (base %s, sources %s)", tag, recipe, base, digest)
        try:
            resp = client.api.build(
                path=str(ctx),
                tag=tag,
                buildargs=buildargs,
                rm=True,
                labels={SOURCE_LABEL: digest},
                decode=True,
                pull=False,
                # it builds only when the sources changed; and the legacy builder's cache takes a COPY
                # whose symlinks point elsewhere now for the same layer
                nocache=True,
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
