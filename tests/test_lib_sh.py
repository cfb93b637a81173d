"""The init package's shared sh (init/sh/lib/lib.sh) under the shells it must run on: dash (Debian's
/bin/sh) and busybox ash. Failing paths fail, and reading svinit's state files says nothing when a file
is missing (`read x < file 2>/dev/null` does not silence a missing file: the `<` fails first)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from svinit import ROOT

LIB = ROOT / "init" / "sh" / "lib" / "lib.sh"
SHELLS = [s for s in (["dash"], ["busybox", "sh"]) if shutil.which(s[0])]


def sh(shell: list[str], script: str, run: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "SVINIT_RUN": str(run), "SVINIT_LIB": str(LIB.parent)}
    return subprocess.run([*shell, "-c", f". {LIB}\n{script}"], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
def test_sv_error_reports_and_fails(shell, tmp_path):
    r = sh(shell, 'false || sv_error "it broke"; echo "rc=$?"', tmp_path)
    assert r.stdout == "rc=1\n" and r.stderr == "svinit: error: it broke\n"


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
def test_state_files_missing_or_present_are_read_quietly(shell, tmp_path):
    r = sh(shell, "sv_scandir; sv_virt", tmp_path / "nosuch")
    assert (r.stdout, r.stderr) == ("/service\nvm\n", "")
    (tmp_path / "scandir").write_text("/run/svinit/service with space\n")
    (tmp_path / "virt").write_text("container\n")
    r = sh(shell, "sv_scandir; sv_virt", tmp_path)
    assert (r.stdout, r.stderr) == ("/run/svinit/service with space\ncontainer\n", "")


def test_no_script_of_the_init_package_needs_busybox():
    """A root without busybox (Debian) must still boot, stop and power off: svinit's sh calls no
    `busybox APPLET` (svpower powers off, svacpid hears the power button; the getty is the base's)."""
    calls = []
    for f in (ROOT / "init" / "sh").rglob("*"):
        if f.is_file():
            for n, line in enumerate(f.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if "busybox " in code:
                    calls.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not calls, "\n".join(calls)
