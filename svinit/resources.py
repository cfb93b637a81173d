"""Where svinit's data is: the init package, the image recipes (``images/``) and the QEMU machine
definitions (``qemu/``).

Two cases, decided once at import:

- **A checkout** (this package runs from svinit's source tree, as with ``pip install -e``): the tree
  itself. The init package is built from ``init/`` with make and a C compiler.
- **An installed wheel**: the package data under ``svinit/_data/``, which the wheel's build copied
  there (``setup.py``): ``images/**``, ``qemu/*.toml`` and the init package already built, as the
  archive ``svinit-VERSION-x86_64.tar.gz`` of ``make -C init dist``. Nothing is compiled.

``$SVINIT_ROOT``, for development only, names a source tree to use instead of either (a checkout's
harness against another checkout's ``init/``, ``images/``, ``qemu/``).
"""

from __future__ import annotations

import os
from pathlib import Path

from svinit.errors import SvinitError

_PACKAGE = Path(__file__).resolve().parent
#: The package data of an installed wheel (a copy of the tree's images/ and qemu/, and the archive).
PACKAGE_DATA = _PACKAGE / "_data"
#: The archive's name pattern, as init/Makefile's dist target writes it.
ARCHIVE_GLOB = "svinit-*-x86_64.tar.gz"


class ResourceError(SvinitError):
    """A file svinit needs is not where it should be (an incomplete wheel, a source-only command)."""


def _source_tree() -> Path | None:
    """$SVINIT_ROOT (development only), else the checkout this package runs from, else None."""
    if os.environ.get("SVINIT_ROOT"):
        return Path(os.environ["SVINIT_ROOT"]).resolve()
    top = _PACKAGE.parent
    if (top / "init" / "Makefile").is_file() and (top / "pyproject.toml").is_file():
        return top
    return None


#: svinit's source tree (a checkout, or $SVINIT_ROOT); None when svinit is installed from a wheel.
SOURCE: Path | None = _source_tree()
#: Where images/ and qemu/ are: the source tree, else the wheel's package data.
ROOT: Path = SOURCE or PACKAGE_DATA


def installed() -> bool:
    """True when svinit runs from an installed wheel (its data is package data, nothing is built)."""
    return SOURCE is None


def _whence() -> str:
    return f"svinit's source tree {SOURCE}" if SOURCE else f"the installed package's data {PACKAGE_DATA}"


def data(rel: str) -> Path:
    """The file or directory *rel* (``images/...``, ``qemu/...``) of svinit's data.

    Raises:
        ResourceError: it is missing; the message names the file and the fix.
    """
    path = ROOT / rel
    if not path.exists():
        fix = (
            "reinstall svinit from a wheel built by `python -m build --wheel` in a checkout (its build "
            "copies images/ and qemu/ into the package)"
            if installed()
            else "restore it from git (git checkout -- " + rel + "), or unset SVINIT_ROOT"
        )
        raise ResourceError(f"{path} is missing from {_whence()}: {fix}")
    return path


def source(rel: str, what: str) -> Path:
    """The file or directory *rel* of the source tree, for *what* needs the sources (building init/).

    Raises:
        ResourceError: svinit is installed from a wheel, which has no sources; or *rel* is missing.
    """
    if SOURCE is None:
        raise ResourceError(
            f"{what} needs svinit's source tree ({rel}), and this svinit is installed from a wheel, which "
            f"carries the init package already built: use `svinit build dist` for its archive, or run "
            f"from a checkout"
        )
    return data(rel)


def packaged_archive() -> Path:
    """The init package's archive that an installed wheel carries (``make -C init dist``'s output).

    Raises:
        ResourceError: none or several in the package data (a wheel built wrongly); in a checkout,
            where the archive is built instead (svinit.build.init.dist_archive).
    """
    if SOURCE is not None:
        raise ResourceError(
            f"running from {_whence()}: the init package is built from init/ (make -C init dist), "
            f"not taken from package data"
        )
    found = sorted(PACKAGE_DATA.glob(ARCHIVE_GLOB))
    if len(found) != 1:
        raise ResourceError(
            f"the installed svinit should carry exactly one init package archive {PACKAGE_DATA}/"
            f"{ARCHIVE_GLOB}, and has {len(found)}: its wheel was not built by svinit's setup.py "
            f"(`python -m build --wheel` in a checkout runs make -C init dist); reinstall svinit from such "
            f"a wheel"
        )
    return found[0]
