"""The container image: images/alpine/Dockerfile with the init package installed, from a local base."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import docker
import docker.errors

from svinit import resources
from svinit.build.init import install_init
from svinit.build.sources import BuildError, source_hash
from svinit.dockerd import DEFAULT_IMAGE, docker_client
from svinit.fetch.alpine import alpine_image

log = logging.getLogger(__name__)

SOURCE_LABEL = "org.svinit.source"


def build_container(
    tag: str = DEFAULT_IMAGE,
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
        DockerError: the daemon is unreachable.
        BuildError: the base is missing, or the build failed.
    """
    client = client or docker_client()
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
        alpine_image(client, tag=base)
    with tempfile.TemporaryDirectory(prefix="svinit-ctx-") as tmp:
        ctx = Path(tmp)
        for item in ("Dockerfile", "demo"):
            src = resources.data(f"images/alpine/{item}")
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
