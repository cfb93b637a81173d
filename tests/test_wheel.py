"""svinit installed from its wheel (issue 9): the wheel is built once from a copy of the sources (cached
while they do not change), installed into a fresh venv outside the checkout, and run from a directory
outside it, with no $SVINIT_ROOT and no compiler or make on the PATH: `svinit build dist`, `build vm`,
`build container`, `check container`, and the pytest plugin's container and VM fixtures work from the
package data alone. And the two routes of installing the init package (make install from a checkout,
the archive from a wheel) give the same tree."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

import svinit
from svinit import resources
from svinit.build.init import dist_archive, install_archive, install_init
from svinit.build.sources import tree_hash
from svinit.fetch.cache import cache_dir, locked

CHECKOUT = Path(svinit.__file__).resolve().parent.parent
#: What a copy of the sources leaves out: what builds, venvs and test runs write into a checkout.
NOT_SOURCES = {
    "out",
    "artifacts",
    ".git",
    ".venv",
    ".tox",
    "build",
    "dist",
    ".pytest_cache",
    ".ruff_cache",
    "svinit-artifacts",
}
#: What the PATH of the installed svinit lacks: a compiler and make.
TOOLCHAIN = ("make", "gmake", "cc", "gcc", "c89", "c99", "musl-gcc", "clang", "tcc", "ld")
IMAGE = "svinit:wheel-test"

pytestmark = pytest.mark.skipif(resources.installed(), reason="builds svinit's wheel from a checkout")


def _ignore(folder: str, names: list[str]) -> set[str]:
    top = Path(folder).resolve() == CHECKOUT
    return {
        n
        for n in names
        if (top and n in NOT_SOURCES)
        or n.endswith(".egg-info")
        or n == "__pycache__"
        or (Path(folder).name == "init" and n == "build")
    }


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """svinit's wheel, built by `python -m build --wheel --no-isolation` (this venv's setuptools) from a
    copy of the sources; cached under svinit's cache by a hash of that copy."""
    src = tmp_path_factory.mktemp("wheel-src") / "svinit"
    shutil.copytree(CHECKOUT, src, ignore=_ignore, symlinks=True)
    cached = cache_dir() / "wheel" / tree_hash(src)
    cached.mkdir(parents=True, exist_ok=True)
    with locked(cached / ".lock"):
        found = sorted(cached.glob("svinit-*.whl"))
        if not found:
            argv = [
                sys.executable,
                "-m",
                "build",
                "--wheel",
                "--no-isolation",
                "--outdir",
                str(cached),
                str(src),
            ]
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, f"{' '.join(argv)}:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
            found = sorted(cached.glob("svinit-*.whl"))
    assert len(found) == 1, found
    return found[0]


def _shadow_path(bin_: Path) -> str:
    """A directory of links to every program on this PATH but a compiler's and make's."""
    bin_.mkdir()
    for d in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/sbin", "/sbin"]:
        if not os.path.isdir(d) or Path(d).resolve().is_relative_to(CHECKOUT):
            continue
        for name in os.listdir(d):
            toolchain = name in TOOLCHAIN or name.startswith(("gcc-", "x86_64-linux-gnu-", "clang-"))
            if not toolchain and not (bin_ / name).exists():
                (bin_ / name).symlink_to(Path(d) / name)
    return str(bin_)


class Installed:
    """svinit installed from its wheel into a fresh venv, with a clean environment and a cwd outside
    the checkout: run(argv) runs a program of the venv there."""

    def __init__(self, root: Path, wheel: Path):
        self.root, self.venv, self.cwd = root, root / "venv", root / "work"
        self.cwd.mkdir()
        subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True, timeout=120)
        pip = [str(self.venv / "bin/python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        proc = subprocess.run([*pip, str(wheel)], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"pip install {wheel}:\n{proc.stdout}{proc.stderr}"
        # svinit's fetches are shared through links into the cache; its VMs are its own
        cache = root / "cache"
        cache.mkdir()
        for entry in cache_dir().iterdir():
            if entry.name not in ("vm", "wheel"):
                (cache / entry.name).symlink_to(entry)
        keep = ("HOME", "DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "LANG", "TERM")
        self.env = {k: os.environ[k] for k in keep if k in os.environ}
        self.env.update(
            PATH=f"{self.venv / 'bin'}{os.pathsep}{_shadow_path(root / 'bin')}",
            SVINIT_CACHE=str(cache),
            PIP_DISABLE_PIP_VERSION_CHECK="1",
        )

    def run(self, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
        exe = argv[0] if "/" in argv[0] else str(self.venv / "bin" / argv[0])
        return subprocess.run(
            [exe, *argv[1:]], cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def python(self, code: str, *args: str) -> str:
        proc = self.run("python", "-c", textwrap.dedent(code), *args)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Installed:
    return Installed(tmp_path_factory.mktemp("svinit-wheel"), wheel)


def _failed(proc: subprocess.CompletedProcess) -> str:
    return f"{' '.join(proc.args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"


@pytest.mark.slow
def test_the_wheel_carries_the_init_package_images_and_machine_definitions(wheel):
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    data = "svinit/_data/"
    assert f"{data}svinit-{svinit.__version__}-x86_64.tar.gz" in names
    assert f"{data}qemu/x86_64.toml" in names
    for rel in ("images/initramfs/modules", "images/initramfs/init-disk", "images/alpine/Dockerfile"):
        assert data + rel in names, rel
    assert any(n.startswith(f"{data}images/alpine/demo/") for n in names)
    assert wheel.stat().st_size < 2_000_000, f"the wheel is {wheel.stat().st_size} bytes"


@pytest.mark.slow
def test_the_installed_package_has_no_path_into_the_checkout(installed):
    where = installed.python(
        """
        import svinit, svinit.resources as r
        print(svinit.__file__, r.ROOT, r.SOURCE, r.installed(), sep="\\n")
        """
    ).split("\n")
    assert where[2:4] == ["None", "True"], where
    for p in where[:2]:
        assert not Path(p).resolve().is_relative_to(CHECKOUT), p
        assert Path(p).resolve().is_relative_to(installed.venv), p
    assert shutil.which("make", path=installed.env["PATH"]) is None
    assert shutil.which("musl-gcc", path=installed.env["PATH"]) is None
    # no .pth, direct_url.json or module that names the checkout
    needle = str(CHECKOUT).encode()
    site = next(installed.venv.glob("lib/python*/site-packages"))
    for f in site.rglob("*"):
        if f.is_file() and (f.suffix in (".py", ".pth", ".json", ".txt", ".toml") or f.name == "RECORD"):
            assert needle not in f.read_bytes(), f"{f} names the checkout {CHECKOUT}"


@pytest.mark.slow
def test_build_dist_gives_the_archive_that_make_dist_makes(installed):
    proc = installed.run("svinit", "build", "dist", "--out", "out")
    assert proc.returncode == 0, _failed(proc)
    written = Path(proc.stdout.strip())
    assert written == installed.cwd / "out" / f"svinit-{svinit.__version__}-x86_64.tar.gz"
    made = dist_archive()  # the checkout's, built now

    def members(archive: Path) -> dict[str, tuple]:
        with tarfile.open(archive) as t:
            out = {}
            for m in t.getmembers():
                data = t.extractfile(m).read() if m.isfile() else b""
                out[m.name] = (m.mode, m.type, m.linkname, m.uid, m.gid, hashlib.sha256(data).hexdigest())
            return out

    assert members(written) == members(made)


def _tree(root: Path) -> dict[str, tuple]:
    """Every entry of *root*: (mode, link target or content hash)."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        what = (
            os.readlink(p)
            if p.is_symlink()
            else hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file()
            else ""
        )
        out[str(p.relative_to(root))] = (oct(st.st_mode), st.st_uid, what)
    return out


def test_the_archive_route_installs_the_tree_make_install_does(tmp_path):
    """install_archive (a wheel's route, here from the checkout's archive) against make install."""
    install_init(tmp_path / "make")
    install_archive(dist_archive(), tmp_path / "archive")
    assert _tree(tmp_path / "archive") == _tree(tmp_path / "make")
    assert tree_hash(tmp_path / "archive") == tree_hash(tmp_path / "make")


@pytest.mark.slow
def test_the_installed_wheel_installs_the_tree_make_install_does(installed, tmp_path):
    dest = installed.root / "tree"
    installed.python(
        """
        import sys
        from pathlib import Path
        from svinit.build.init import install_init
        install_init(Path(sys.argv[1]))
        """,
        str(dest),
    )
    install_init(tmp_path / "make")
    assert _tree(dest) == _tree(tmp_path / "make")


@pytest.fixture(scope="module")
def vm_built(installed) -> subprocess.CompletedProcess:
    """`svinit build vm` by the installed svinit, into the place its pytest plugin boots from."""
    return installed.run("svinit", "build", "vm", "--out", str(installed.root / "cache/vm/initramfs"))


@pytest.mark.slow
def test_build_vm_needs_no_compiler_nor_checkout(installed, vm_built):
    assert vm_built.returncode == 0, _failed(vm_built)
    out = installed.root / "cache/vm/initramfs"
    assert vm_built.stdout.split() == [str(out / n) for n in ("vmlinuz", "initramfs.img", "cmdline")]
    again = installed.run("svinit", "-v", "build", "vm", "--out", str(out))
    assert again.returncode == 0 and "up to date" in again.stderr, _failed(again)


@pytest.fixture(scope="module")
def image_built(installed) -> subprocess.CompletedProcess:
    """`svinit build container` by the installed svinit (its own tag: the suite's svinit:alpine stays)."""
    return installed.run("svinit", "build", "container", "--tag", IMAGE, "--force")


@pytest.mark.slow
def test_build_and_check_container(installed, image_built):
    assert image_built.returncode == 0, _failed(image_built)
    check = installed.run("svinit", "check", "container", "--image", IMAGE)
    assert check.returncode == 0, _failed(check)
    assert check.stdout.rstrip().endswith("clean")
    again = installed.run("svinit", "-v", "build", "container", "--tag", IMAGE)
    assert again.returncode == 0 and "up to date" in again.stderr, _failed(again)


PLUGIN_TESTS = """
def test_container(svinit_container):
    svinit_container.wait_for_service("heartbeat")
    assert svinit_container.succeed("readlink /proc/1/exe").strip() == "/usr/lib/svinit/bin/svscan"


def test_vm(svinit_vm):
    svinit_vm.wait_for_service("heartbeat")
    assert svinit_vm.succeed("cat /proc/1/comm").strip() == "svscan"
"""


@pytest.mark.slow
def test_the_pytest_plugin_boots_a_container_and_a_vm(installed, image_built, vm_built):
    """The reported bug: the VM fixtures looked for images/ and qemu/ beside site-packages."""
    assert image_built.returncode == 0 and vm_built.returncode == 0
    (installed.cwd / "test_mine.py").write_text(PLUGIN_TESTS)
    proc = installed.run(
        "pytest", "-q", "-p", "no:cacheprovider", "--svinit-image", IMAGE, "test_mine.py", timeout=600
    )
    assert proc.returncode == 0, _failed(proc)
    assert "2 passed" in proc.stdout, proc.stdout


@pytest.mark.slow
def test_a_wheel_without_its_data_names_the_file_and_the_fix(installed):
    """A package copied without svinit/_data: each command says what is missing and how to fix it."""
    site = next(installed.venv.glob("lib/python*/site-packages"))
    broken = installed.root / "broken"
    shutil.copytree(site / "svinit", broken / "svinit", ignore=shutil.ignore_patterns("_data"))
    env = {**installed.env, "PYTHONPATH": str(broken)}
    archive = f"{broken}/svinit/_data/svinit-*-x86_64.tar.gz"
    for argv, says in (
        (["build", "dist"], [archive, "python -m build --wheel", "reinstall"]),
        (["build", "vm", "--out", "vm"], [archive, "reinstall"]),
        (["build", "init"], ["installed from a wheel", "svinit build dist"]),
    ):
        proc = subprocess.run(
            [str(installed.venv / "bin/python"), "-m", "svinit.cli", *argv],
            cwd=installed.cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 1, _failed(proc)
        assert proc.stderr.startswith("svinit: ") and "Traceback" not in proc.stderr, proc.stderr
        assert all(s in proc.stderr for s in says), proc.stderr
