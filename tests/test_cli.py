"""The `svinit` command: the README's commands exist as written, and a user's error ends in one sentence
and exit code 1 (2 for usage), never in a traceback."""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys

import pytest

from svinit import ROOT, cli


def readme_commands() -> list[str]:
    """Every `svinit ...` the README shows: the lines of its sh blocks and its inline code."""
    text = (ROOT / "README.md").read_text()
    found = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
        found += [line.split(" #")[0].strip() for line in block.splitlines() if line.startswith("svinit ")]
    found += re.findall(r"`(svinit [^`]+)`", text)
    return found


def subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_the_readme_shows_commands():
    assert len(readme_commands()) >= 12 and "svinit build vm --out vm --overlay mine/" in readme_commands()


@pytest.mark.parametrize("line", readme_commands())
def test_each_readme_command_and_flag_exists(line):
    p, path = cli.parser(), ["svinit"]
    words = line.split()[1:]
    for i, word in enumerate(words):
        if word == "--":
            break
        sub = subparsers(p)
        if word in sub:
            p = sub[word]
            path.append(word)
            continue
        for flag in re.findall(r"(?:^|[\[|])(--?[a-z][a-z-]*)", word):
            helptext = p.format_help()
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", helptext), (
                f"README: `{line}`: {' '.join(path)} has no {flag}"
            )
            action = next(a for a in p._actions if flag in a.option_strings)
            if action.choices and i + 1 < len(words) and "|" in words[i + 1]:
                values = words[i + 1].strip("[]").split("|")
                assert set(values) <= set(action.choices), f"README: `{line}`: {flag} {values}"
    assert len(path) > 1 or line.startswith("svinit -"), f"README: `{line}` names no subcommand"


def svinit(*argv: str, **env: str) -> subprocess.CompletedProcess:
    e = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-m", "svinit.cli", *argv], capture_output=True, text=True, env=e, timeout=120
    )


def test_a_fetch_that_fails_is_one_sentence_and_exit_1(tmp_path):
    """No apt on the PATH: building the VM needs a Debian package; svinit says so, no traceback."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    r = svinit(
        "build", "vm", "--out", str(tmp_path / "vm"), PATH=str(bin_), SVINIT_CACHE=str(tmp_path / "cache")
    )
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.startswith("svinit: "), r.stderr
    assert "apt-cache not found" in r.stderr, r.stderr


def test_a_missing_overlay_is_one_sentence_and_exit_1(tmp_path):
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"not a kernel")
    r = svinit(
        "build",
        "vm",
        "--out",
        str(tmp_path / "vm"),
        "--kernel",
        str(kernel),
        "--overlay",
        str(tmp_path / "no"),
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().endswith("give a directory of files to add over the root"), r.stderr


def test_usage_errors_exit_2():
    r = svinit("build", "vm")
    assert r.returncode == 2 and "--out" in r.stderr


def test_verbose_is_svinits_progress_not_its_libraries_debug():
    cli.setup_logging(1)
    assert logging.getLogger("svinit.build.vm").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("qemu.qmp").isEnabledFor(logging.INFO)
    assert not logging.getLogger("urllib3").isEnabledFor(logging.DEBUG)
    cli.setup_logging(2)
    assert logging.getLogger("qemu.qmp").isEnabledFor(logging.DEBUG)
    cli.setup_logging(0)
    assert logging.getLogger("svinit.build.vm").isEnabledFor(logging.INFO)
    assert not logging.getLogger("svinit.build.vm").isEnabledFor(logging.DEBUG)


def test_a_vm_directory_that_is_no_build_is_one_sentence(tmp_path):
    """check: 2 (the check could not run; 1 would mean "not clean"); boot: 1."""
    r = svinit("check", "vm", "--vm", str(tmp_path), "--no-data-disk")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip() == f"svinit: {tmp_path} has no vmlinuz: is it the output of `svinit build vm`?"
    r = svinit("boot", "--vm", str(tmp_path))
    assert r.returncode == 1 and r.stderr.strip().endswith("is it the output of `svinit build vm`?"), r.stderr
