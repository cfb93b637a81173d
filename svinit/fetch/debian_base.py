"""A Debian 12 (bookworm) root filesystem made by Debian's ``mmdebstrap`` from Debian's own packages, and
its local docker image: there is no registry, and nothing is pulled."""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # docker is imported where it is used: `svinit` starts without its 0.1-0.3 s
    import docker

from svinit.dockerd import docker_client
from svinit.fetch.cache import FetchError, cache_dir, host_tool, import_tar, locked

log = logging.getLogger(__name__)

#: The suite, the variant and the packages on top of it: nginx-light and cron are the reference image's
#: services; tini is there so the benchmark can run tini on the very same root.
SUITE = "bookworm"
VARIANT = "minbase"
INCLUDE = ("nginx-light", "cron", "tini")

DEFAULT_TAG = "svinit-base:debian12"


def _source() -> str:
    return f"mmdebstrap --variant={VARIANT} --include={','.join(INCLUDE)} {SUITE}"


def debian_rootfs_tar() -> Path:
    """The Debian root filesystem as a tar: made once with ``mmdebstrap --variant=minbase
    --include=nginx-light,cron,tini bookworm OUT.tar`` (about 20 s and 190 MB), then cached.

    Cached as ``cache_dir()/debian-base/bookworm-minbase-nginx-light,cron,tini.tar``; delete it to make a
    fresh one (mmdebstrap takes the packages' current versions from deb.debian.org).

    Raises:
        FetchError: mmdebstrap is not installed, or it failed (the message carries its last words).
    """
    base = cache_dir() / "debian-base"
    base.mkdir(parents=True, exist_ok=True)
    name = f"{SUITE}-{VARIANT}-{','.join(INCLUDE)}"
    tar = base / f"{name}.tar"
    if tar.exists():
        return tar
    with locked(base / f"{name}.lock"):
        if tar.exists():
            return tar
        try:
            mmdebstrap = host_tool("mmdebstrap", "mmdebstrap")
        except FetchError:
            raise FetchError(
                f"mmdebstrap not found: making the Debian base ({_source()}) needs it; run .ci/setup, or "
                "apt-get install mmdebstrap debian-archive-keyring"
            ) from None
        partial = base / f"{name}.partial.tar"
        partial.unlink(missing_ok=True)
        argv = [
            mmdebstrap,
            "--quiet",
            f"--variant={VARIANT}",
            f"--include={','.join(INCLUDE)}",
            SUITE,
            str(partial),
        ]
        log.info("making the Debian base: %s (about 20 s, downloads from deb.debian.org)", " ".join(argv))
        start = time.monotonic()
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        if proc.returncode != 0:
            partial.unlink(missing_ok=True)
            said = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise FetchError(
                f"mmdebstrap failed (exit {proc.returncode}) making the Debian base: {' '.join(argv)}\n"
                f"{said}\nCheck that deb.debian.org is reachable (apt-get update works), that "
                "debian-archive-keyring is installed and that bookworm has each package of INCLUDE in "
                "svinit/fetch/debian_base.py; as non-root mmdebstrap needs user namespaces or "
                "fakechroot, so run it as root"
            )
        partial.rename(tar)
        log.info(
            "Debian base made in %.1f s: %s (%.1f MB)",
            time.monotonic() - start,
            tar,
            tar.stat().st_size / 1e6,
        )
    return tar


def debian_base(client: docker.DockerClient | None = None, tag: str = DEFAULT_TAG) -> str:
    """Make the Debian 12 minbase root (with nginx-light, cron, tini) the local docker image *tag*.

    Only when *tag* is missing: the tar of :func:`debian_rootfs_tar` (cached, made by mmdebstrap once)
    is imported with ``docker import`` and ``CMD ["/bin/sh"]``, labelled ``org.svinit.source`` with the
    mmdebstrap command. A present *tag* is used as it is (with a warning when something else made it).

    Args:
        client: a ``docker.DockerClient``; by default from the environment.
        tag: the ``repository:tag`` to give the image.

    Returns:
        The image id (``sha256:...``).

    Raises:
        DockerError: the docker daemon is unreachable.
        FetchError: mmdebstrap is missing or failed, or the daemon refused the import.
    """
    import docker.errors

    client = client or docker_client()
    try:
        image = client.images.get(tag)
        log.info("docker image %s is present (%s): not importing", tag, image.id)
        if (image.labels or {}).get("org.svinit.source") != _source():
            log.warning("docker image %s was not made by svinit.fetch.debian_base; using it anyway", tag)
        return image.id
    except docker.errors.ImageNotFound:
        pass
    tar = debian_rootfs_tar()
    log.info("importing the Debian base into docker as %s (docker import of %s)", tag, tar)
    return import_tar(client, tar, tag, ['CMD ["/bin/sh"]', f'LABEL org.svinit.source="{_source()}"'], log)
