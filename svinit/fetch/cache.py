"""The cache every fetch writes to, and what the fetches share: the error they raise, host tools found
or named with their Debian package, commands run with their output kept, a lock per cache entry.

Nothing in svinit downloads implicitly: every fetch goes through ``svinit.fetch``, is cached under
:func:`cache_dir` and is logged.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # docker is imported where it is used: `svinit` starts without its 0.1-0.3 s
    import docker

from svinit.errors import SvinitError


class FetchError(SvinitError):
    """A fetch failed; the message names the package and what to check."""


def cache_dir() -> Path:
    """The cache root: ``$SVINIT_CACHE``, else ``~/.cache/svinit``."""
    root = Path(os.environ.get("SVINIT_CACHE") or Path.home() / ".cache" / "svinit")
    root.mkdir(parents=True, exist_ok=True)
    return root


def host_tool(name: str, debian_package_name: str) -> str:
    """The path of a host program (also looked for in the sbin directories), or a FetchError."""
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    found = shutil.which(name, path=path)
    if not found:
        raise FetchError(f"{name} not found: install it (apt-get install {debian_package_name})")
    return found


def run(argv: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    """Runs *argv*; on failure raises a FetchError that shows the command and its output."""
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        raise FetchError(
            f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n{proc.stdout}{proc.stderr}".strip()
        )
    return proc


def import_tar(client: docker.DockerClient, tar: Path, tag: str, changes: list[str], log) -> str:
    """``docker import`` of the root filesystem *tar* as *tag* with the Dockerfile *changes*; returns the
    image id. A refusal is a FetchError naming the tar."""
    import docker.errors
    from docker.utils import parse_repository_tag

    repository, image_tag = parse_repository_tag(tag)
    start = time.monotonic()
    try:
        with open(tar, "rb") as f:
            answer = client.api.import_image(
                src=f, repository=repository, tag=image_tag or "latest", changes=changes
            )
    except docker.errors.APIError as e:
        raise FetchError(f"docker import of {tar} as {tag} failed: {e}") from e
    if '"error' in str(answer):
        raise FetchError(f"docker import of {tar} as {tag} failed: {answer}")
    image_id = client.images.get(tag).id
    log.info("imported %s as %s in %.1f s", tag, image_id, time.monotonic() - start)
    return image_id


@contextmanager
def locked(path: Path, mode: str = "a") -> Iterator[None]:
    """Holds an exclusive flock on *path* (two test sessions, or two pytest-xdist workers, must not
    build one cache entry at once); *path* is made if missing, or opened read-only with mode "r"."""
    with open(path, mode) as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
