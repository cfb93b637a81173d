"""The init package: the static C programs (``make -C init``) and its installation into a tree."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from svinit import ROOT
from svinit.build.sources import BuildError

log = logging.getLogger(__name__)


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
