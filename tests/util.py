"""What the tests of the supervision suite share; it lives in the package (svinit.pidns, svinit.servicedir)
so the benchmarks use it too, and is named here for the tests that import it from tests.util."""

import os

from svinit.pidns import PidNamespace, Scanner, children_of, comm, cpu_seconds, wait_for, zombies_of
from svinit.servicedir import make_service, svstatus, write_exec

#: This pytest-xdist worker (gw0, gw1...), or "main" in a run without workers.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
#: The repository of the images the tests make; conftest removes this worker's at the session's end.
TEST_REPOSITORY = "svinit-test"


def vm_file_options(files, folder) -> list[str]:
    """The plugin's options that boot *files* (an svinit_vm_files) in a pytester run: the kernel, the
    initramfs, and the command line written to a file of *folder*."""
    cmdline = folder / "cmdline"
    cmdline.write_text(files.cmdline + "\n")
    options = ["--svinit-kernel", str(files.kernel), "--svinit-initrd", str(files.initrd)]
    return [*options, f"--svinit-cmdline=@{cmdline}", "-p", "no:cacheprovider"]


def worker_tag(name: str) -> str:
    """The tag of a test image *name* for this worker: two workers never build or commit over each
    other's image (test_dist's broken images differ per test)."""
    return f"{TEST_REPOSITORY}:{name}-{WORKER}"


__all__ = [
    "WORKER",
    "TEST_REPOSITORY",
    "worker_tag",
    "vm_file_options",
    "PidNamespace",
    "Scanner",
    "children_of",
    "comm",
    "cpu_seconds",
    "make_service",
    "svstatus",
    "wait_for",
    "write_exec",
    "zombies_of",
]
