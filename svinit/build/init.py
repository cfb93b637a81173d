"""The init package: the static C programs (``make -C init``), its archive (``make -C init dist``), and
its installation into a tree.

Two routes give the same tree (tests/test_wheel.py compares them): from a checkout, ``make -C init
install DESTDIR=D``; from an installed wheel, which has no sources and needs no compiler, the archive it
carries extracted into D, then what ``make install`` adds beyond the archive (:func:`add_system`).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

from svinit import resources
from svinit.build.sources import BuildError
from svinit.fetch.cache import locked

log = logging.getLogger(__name__)

#: What `make install` adds beyond the archive (init/sh/install.sh --system): links in /sbin to
#: svinit's programs.
SYSTEM_LINKS = {
    f"sbin/{c}": f"../usr/lib/svinit/bin/{c}"
    for c in ("init", "poweroff", "reboot", "halt", "shutdown", "runlevel")
}


def make_lock(init: Path) -> Iterator[None]:
    """Holds an exclusive flock on init/Makefile: two makes in one tree at once (two pytest-xdist
    workers, two sessions) would write the same objects; the second waits, then finds them made."""
    return locked(init / "Makefile", mode="r")


def _make(argv: list[str], what: str) -> subprocess.CompletedProcess:
    with make_lock(Path(argv[argv.index("-C") + 1])):
        proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(
            f"{what}: {' '.join(argv)} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )
    return proc


def build_init(out: Path | None = None) -> Path:
    """Builds the static programs with `make -C init`; returns the directory holding them.

    Args:
        out: build directory (default init/build).

    Raises:
        BuildError: make failed, or no compiler is installed.
        ResourceError: svinit is installed from a wheel (no sources to build).
    """
    init = resources.source("init/Makefile", "building the init package").parent
    if not shutil.which("make") or not (shutil.which("musl-gcc") or shutil.which("cc")):
        raise BuildError("building init/ needs make and musl-gcc (apt-get install make musl-tools)")
    out = (out or init / "build").resolve()
    argv = ["make", "-C", str(init), "-s", f"O={out}"]
    log.info("building the init package: %s", " ".join(argv))
    _make(argv, "building the init package")
    return out


def dist_archive() -> Path:
    """The init package as `make -C init dist` packs it: built now from a checkout, else the archive the
    installed wheel carries."""
    if resources.installed():
        return resources.packaged_archive()
    build_init()
    init = resources.source("init/Makefile", "the init package's archive").parent
    out = _make(["make", "-C", str(init), "-s", "dist"], "packing the init package").stdout
    return init / out.strip().splitlines()[-1]


def dist(out: Path) -> Path:
    """Writes the init package's archive (:func:`dist_archive`) into the directory *out*; its path."""
    archive = dist_archive()
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    dest = out / archive.name
    if dest.resolve() != archive.resolve():
        shutil.copyfile(archive, dest)
    return dest


def add_system(dest: Path) -> None:
    """What `make install` adds beyond the archive's files (install.sh --system): :data:`SYSTEM_LINKS`."""
    for name, target in SYSTEM_LINKS.items():
        link = dest / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(target)


def install_archive(archive: Path, dest: Path) -> Path:
    """Installs the init package from *archive* (`make -C init dist`'s) into the tree *dest*, as
    `make -C init install DESTDIR=dest` does from the sources: its files, then :func:`add_system`."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive) as tar:
            for m in tar.getmembers():
                # replace what is there (busybox's applet links), as install.sh does
                p = dest / m.name
                if not m.isdir() and (p.is_symlink() or p.is_file()):
                    p.unlink()
            # trusted (svinit's own), with links to absolute paths (/usr/local/bin/svc); owners (root's)
            # are kept only by root, as with make install
            kw = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}
            tar.extractall(dest, **kw)
    except (OSError, tarfile.TarError) as e:
        raise BuildError(f"cannot install the init package from {archive} into {dest}: {e}") from e
    add_system(dest)
    return dest


def install_init(dest: Path, build: Path | None = None) -> Path:
    """Installs the init package into the tree *dest*: `make -C init install DESTDIR=dest` from a
    checkout, else the installed wheel's archive (:func:`install_archive`)."""
    if resources.installed():
        log.info("installing the init package from %s", resources.packaged_archive())
        return install_archive(resources.packaged_archive(), dest)
    build = build or build_init()
    init = resources.source("init/Makefile", "installing the init package").parent
    argv = ["make", "-C", str(init), "-s", f"O={build}", "install", f"DESTDIR={dest.resolve()}"]
    _make(argv, "installing the init package")
    return dest


def init_program(name: str, dest: Path) -> Path:
    """Copies svinit's program *name* (as in /usr/lib/svinit/bin) to the file *dest*: the one built from
    a checkout, else the one in the installed wheel's archive."""
    if not resources.installed():
        shutil.copy2(build_init() / name, dest)
        return dest
    return _from_archive(f"usr/lib/svinit/bin/{name}", dest, 0o755)


def init_lib_file(name: str, dest: Path) -> Path:
    """Copies svinit's sh file *name* (as in /usr/lib/svinit: modules.sh) to the file *dest*: from a
    checkout's init/sh/lib, else from the installed wheel's archive."""
    if not resources.installed():
        shutil.copy2(resources.source(f"init/sh/lib/{name}", f"reading {name}"), dest)
        return dest
    return _from_archive(f"usr/lib/svinit/{name}", dest, 0o644)


def _from_archive(member: str, dest: Path, mode: int) -> Path:
    archive = resources.packaged_archive()
    with tarfile.open(archive) as tar:
        try:
            f = tar.extractfile(member)
        except KeyError:
            f = None
        if f is None:
            raise BuildError(
                f"{archive} has no file {member}: reinstall svinit from a wheel built by its setup.py"
            )
        dest.write_bytes(f.read())
    dest.chmod(mode)
    return dest
