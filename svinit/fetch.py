"""Explicit, cached fetches from the package registries this machine reaches.

Nothing in svinit downloads implicitly: every fetch goes through this module, is cached under
``cache_dir()`` and is logged. Debian packages are fetched with ``apt-get download`` and unpacked with
``dpkg -x`` into the cache, never installed on the host.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)


class FetchError(RuntimeError):
    """A fetch failed; the message names the package and what to check."""


def cache_dir() -> Path:
    """The cache root: ``$SVINIT_CACHE``, else ``~/.cache/svinit``."""
    root = Path(os.environ.get("SVINIT_CACHE") or Path.home() / ".cache" / "svinit")
    root.mkdir(parents=True, exist_ok=True)
    return root


def debian_package(name: str) -> Path:
    """Download the Debian package *name* once and unpack it; returns the unpacked tree.

    Raises:
        FetchError: apt-get or dpkg failed (the message carries their output).
    """
    tree = cache_dir() / "deb" / name
    stamp = tree / ".unpacked"
    if stamp.exists():
        return tree
    for tool in ("apt-get", "dpkg"):
        if not shutil.which(tool):
            raise FetchError(f"{tool} not found: fetching the Debian package {name} needs a Debian/Ubuntu host")
    debs = cache_dir() / "deb" / "_debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{name}_*.deb"))
    if not found:
        log.info("fetching Debian package %s (apt-get download)", name)
        proc = subprocess.run(["apt-get", "download", name], cwd=debs, capture_output=True, text=True)
        found = sorted(debs.glob(f"{name}_*.deb"))
        if proc.returncode != 0 or not found:
            raise FetchError(
                f"apt-get download {name} failed (exit {proc.returncode}): {proc.stderr.strip()}\n"
                "Check that the apt lists are current (apt-get update) and that deb.debian.org is reachable."
            )
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    proc = subprocess.run(["dpkg", "-x", str(found[-1]), str(tree)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise FetchError(f"dpkg -x {found[-1]} failed: {proc.stderr.strip()}")
    stamp.touch()
    return tree


def daemontools_bin() -> Path:
    """Directory holding djb's daemontools 0.76 binaries from Debian's ``daemontools`` package."""
    return debian_package("daemontools") / "usr" / "bin"
