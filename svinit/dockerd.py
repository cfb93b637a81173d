"""The Docker daemon, as every layer reaches it: a client checked with a ping, and local images (svinit
never pulls: there is no registry)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # docker is imported where it is used: `svinit` starts without its 0.1-0.3 s
    import docker

from svinit.errors import SvinitError

#: The image svinit builds, boots and checks by default.
DEFAULT_IMAGE = "svinit:alpine"


class DockerError(SvinitError):
    """No Docker daemon answers; the message names the fix."""


class ImageMissing(SvinitError):
    """The image is not present locally; svinit never pulls. The message says how to make it."""

    def __init__(self, image: str):
        self.image = image
        if image == DEFAULT_IMAGE:
            how = "run `svinit build container`"
        else:
            how = f"build or load it (docker build -t {image} ..., docker load)"
        super().__init__(f"image {image} is not present locally, and svinit never pulls: {how}")


def docker_client() -> docker.DockerClient:
    """A docker client from the environment, checked with a ping.

    Raises:
        DockerError: no daemon answers; the message names the fix.
    """
    import docker.errors

    try:
        client = docker.from_env()
        client.ping()
        return client
    except docker.errors.DockerException as e:
        raise DockerError(
            f"no Docker daemon answers ({e}): start dockerd (.ci/setup does) or set DOCKER_HOST"
        ) from e


def require_image(client: docker.DockerClient, image: str) -> docker.models.images.Image:
    """Returns the local image *image*; never pulls.

    Raises:
        ImageMissing: it is not present.
    """
    import docker.errors

    try:
        return client.images.get(image)
    except docker.errors.ImageNotFound:
        raise ImageMissing(image) from None
