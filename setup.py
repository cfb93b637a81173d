"""The wheel's package data (the metadata is pyproject.toml's): building svinit's wheel also builds the
init package (`make -C init dist`, which needs make and musl-gcc here, not where the wheel is installed)
and copies into svinit/_data/ what the harness reads from svinit's tree in a checkout (svinit.resources):

    svinit/_data/svinit-VERSION-x86_64.tar.gz   the init package, static
    svinit/_data/images/**                      the image recipes, the initramfs files and module lists
    svinit/_data/qemu/*.toml                    the QEMU machine definitions

An editable install (pip install -e) copies nothing: it runs from the checkout, which has them all.
"""

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildPyWithData(build_py):
    """build_py, then the init package's archive, images/ and qemu/ into the built svinit/_data/."""

    def run(self):
        editable = getattr(self, "editable_mode", False)
        if not editable:  # nothing left from an earlier build (a module since removed, old data)
            shutil.rmtree(Path(self.build_lib) / "svinit", ignore_errors=True)
        super().run()
        if editable:
            return
        data = Path(self.build_lib) / "svinit" / "_data"
        data.mkdir(parents=True)
        version = self.distribution.get_version()
        argv = ["make", "-C", str(HERE / "init"), "-s", "dist", f"VERSION={version}"]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True)
        except FileNotFoundError:
            raise SystemExit(
                "building svinit's wheel runs make -C init dist: install make and musl-gcc "
                "(apt-get install make musl-tools)"
            ) from None
        if proc.returncode != 0:
            raise SystemExit(
                f"building svinit's wheel: {' '.join(argv)} failed (exit {proc.returncode}); it needs make "
                f"and musl-gcc (apt-get install make musl-tools):\n{proc.stdout}{proc.stderr}"
            )
        archive = HERE / "init" / proc.stdout.strip().splitlines()[-1]
        shutil.copyfile(archive, data / archive.name)
        shutil.copytree(
            HERE / "images", data / "images", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
        (data / "qemu").mkdir()
        for toml in sorted((HERE / "qemu").glob("*.toml")):
            shutil.copyfile(toml, data / "qemu" / toml.name)


setup(cmdclass={"build_py": BuildPyWithData})
