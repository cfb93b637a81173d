"""`svinit run --vm` (issue 10): the same command line as a container's, run in a QEMU VM of the image
(real QEMU, TCG here). Exit codes (0, 7, 130, 127), stdin/stdout/stderr apart and byte-exact, host
folders by virtio-9p (read-write and :ro), -e, an interactive sh on a pty (Ctrl-C, exit 5), the cached
disk unchanged, a kernel panic and a hang reported as 125 with the console kept; the same CMD giving the
same output and code in a container and a VM; the fixture's command and folders; the Debian image.
Without QEMU: the verdict fed every unclean end, and the parsing of -v and -e."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pexpect
import pytest

from svinit import ROOT
from svinit.build import DEBIAN_IMAGE, build_container, build_vm, vm_dir
from svinit.qemu.run import FAILED, RunError, RunSpec, Share, parse_env, run_verdict, spec_initrd

SVINIT = shutil.which("svinit") or str(ROOT / ".venv/bin/svinit")
needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86_64")


def run(
    *args: str, stdin: bytes = b"", cwd: Path | None = None, timeout: float = 900
) -> subprocess.CompletedProcess:
    return subprocess.run([SVINIT, "run", *args], input=stdin, capture_output=True, timeout=timeout, cwd=cwd)


@pytest.fixture(scope="module")
def disk_vm(svinit_docker) -> Path:
    """The reference VM of the disk layout (svinit:alpine's root), as `svinit run --vm` builds it."""
    return build_vm(vm_dir("disk"), layout="disk")


def ended(child: pexpect.spawn) -> int | None:
    """Waits for the end of a spawned svinit (its VM powered off); its exit status."""
    try:
        child.expect(pexpect.EOF, timeout=300)
    finally:
        child.close()
    return child.exitstatus


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# Without QEMU.

CLEAN = dict(timed_out=None, panicked=False, kernel_line="reboot: Power down", svinit_done=True, guest=True)


def test_run_verdict_is_cmds_code_only_after_a_clean_power_off():
    assert run_verdict(7, **CLEAN, reason="guest-shutdown").code == 7
    assert run_verdict(0, **CLEAN, reason="guest-shutdown").failure is None
    bad = {
        "timeout": dict(CLEAN, timed_out=30.0, reason=None),
        "panic": dict(CLEAN, panicked=True, reason="guest-reset"),
        "panic event": dict(CLEAN, reason="guest-panic"),
        "no power down": dict(CLEAN, kernel_line=None, reason="guest-shutdown"),
        "no svinit report": dict(CLEAN, svinit_done=False, reason="guest-shutdown"),
        "reset": dict(CLEAN, reason="guest-reset"),
        "host quit": dict(CLEAN, guest=False, reason="host-qmp-quit"),
    }
    for why, kw in bad.items():
        v = run_verdict(0, **kw)
        assert v.code == FAILED and v.failure, why
    v = run_verdict(None, **CLEAN, reason="guest-shutdown")
    assert v.code == FAILED and "no exit code" in v.failure
    assert "panicked" in run_verdict(0, **bad["panic"]).failure
    assert "--timeout 30" in run_verdict(0, **bad["timeout"]).failure


def test_share_and_env_parsing(tmp_path):
    assert Share.parse(f"{tmp_path}:/mnt/x") == Share(tmp_path, "/mnt/x", False)
    assert Share.parse(f"{tmp_path}:/mnt/x:ro").readonly
    for bad in ("nocolon", f"{tmp_path}:relative", f"{tmp_path / 'missing'}:/m", f"{tmp_path}:/a b"):
        with pytest.raises(RunError, match="-v"):
            Share.parse(bad)
    (tmp_path / "file").write_text("")
    with pytest.raises(RunError, match="not a folder"):
        Share.parse(f"{tmp_path / 'file'}:/m")
    assert parse_env(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(RunError, match="not a variable name"):
        parse_env(["1A=x"])


def test_the_spec_quotes_every_word(tmp_path):
    words = ["sh", "-c", "echo 'it''s' \"$X\"; exit 3", "a\nb", ""]
    RunSpec(words, {"X": "y"}, [Share(tmp_path, "/h", True)], (24, 80)).write(tmp_path / "spec")
    out = subprocess.run(
        [
            "sh",
            "-c",
            '. "$1"; for w in "$@"; do printf "[%s]" "$w"; done',
            "sh",
            str(tmp_path / "spec" / "run.cmd"),
        ],
        capture_output=True,
        text=True,
    ).stdout
    assert out == "".join(f"[{w}]" for w in words)
    assert (tmp_path / "spec" / "mounts").read_text() == "svinit.v0 ro /h\n"
    assert (tmp_path / "spec" / "run.tty").read_text() == "24 80\n"


def test_the_spec_travels_in_a_cpio_appended_to_the_initramfs(tmp_path):
    """The guest's kernel unpacks the initramfs, then the spec's archive, at a 4-byte boundary, as
    /.svinit-run: GNU cpio reads that second archive and finds the spec's files, byte for byte."""
    RunSpec(["true"], {"X": "a b"}).write(tmp_path / "spec")
    (tmp_path / "base.img").write_bytes(b"070701" + b"x" * 7)  # any length: padded after it
    out = spec_initrd(tmp_path / "base.img", tmp_path / "spec", tmp_path / "initrd.img")
    data = out.read_bytes()
    assert data.startswith(b"070701xxxxxxx" + b"\x00" * 3 + b"070701")
    (tmp_path / "x").mkdir()
    subprocess.run(["cpio", "-id", "--quiet"], input=data[16:], cwd=tmp_path / "x", check=True)
    got = tmp_path / "x" / ".svinit-run"
    assert (got / "run.cmd").read_text() == "set -- true\n"
    assert (got / "env" / "X").read_text() == "a b\n"
    assert (got / "mounts").read_text() == ""


def test_run_without_vm_refuses_vm_options():
    done = run("--memory", "512", "--", "true")
    assert done.returncode == 1 and b"--memory is for a VM: add --vm" in done.stderr


# With QEMU.


@pytest.mark.slow
@pytest.mark.timeout(1200)
@needs_qemu
def test_exit_0_stdin_stdout_stderr_apart_and_byte_exact(disk_vm):
    data = os.urandom(1 << 20)
    done = run("--vm", "--", "sh", "-c", "cat; printf 'to stderr\\n' >&2", stdin=data)
    assert done.returncode == 0, done.stderr[-3000:]
    assert hashlib.sha256(done.stdout).hexdigest() == hashlib.sha256(data).hexdigest()
    assert done.stderr == b"to stderr\n"


@pytest.mark.slow
@pytest.mark.timeout(1200)
@needs_qemu
def test_exit_7_env_folders_ro_and_the_cached_disk_unchanged(disk_vm, tmp_path):
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "given").write_text("from the host\n")
    before = sha256(disk_vm / "root.img")
    script = (
        'echo "$FOO" > /host/rw/foo; cat /host/ro/given > /host/rw/copy; echo written > /on-root; '
        "if echo no > /host/ro/refused; then exit 1; fi; exit 7"
    )
    done = run(
        "--vm",
        "-e",
        "FOO=bar baz",
        "-v",
        f"{rw}:/host/rw",
        "-v",
        f"{ro}:/host/ro:ro",
        "--",
        "sh",
        "-c",
        script,
    )
    assert done.returncode == 7, done.stderr[-3000:]
    assert (rw / "foo").read_text() == "bar baz\n"
    assert (rw / "copy").read_text() == "from the host\n"
    assert not (ro / "refused").exists()
    assert b"Read-only file system" in done.stderr
    assert sha256(disk_vm / "root.img") == before


@pytest.mark.slow
@pytest.mark.timeout(1200)
@needs_qemu
def test_exit_130_when_int_kills_cmd_and_127_when_it_does_not_exist(disk_vm):
    done = run("--vm", "--", "sh", "-c", "kill -INT $$")
    assert done.returncode == 130, done.stderr[-3000:]
    done = run("--vm", "--", "no-such-command")
    assert done.returncode == 127, done.stderr[-3000:]
    assert b"no-such-command" in done.stderr


@pytest.mark.slow
@pytest.mark.timeout(1200)
@needs_qemu
def test_an_interactive_sh_on_a_pty_gets_ctrl_c_and_exits_5(disk_vm):
    child = pexpect.spawn(SVINIT, ["run", "--vm", "--", "sh"], timeout=600, dimensions=(30, 100))
    try:
        child.expect(r"[#$] ")
        child.sendline("stty size; sleep 1000")
        child.expect("30 100")
        time.sleep(1)  # sleep has started
        child.sendcontrol("c")
        child.expect(r"[#$] ", timeout=120)
        child.sendline("echo after-$((2+3))")
        child.expect("after-5")
        child.sendline("exit 5")
    finally:
        status = ended(child)
    assert status == 5, child.before


@pytest.mark.slow
@pytest.mark.timeout(1200)
@needs_qemu
def test_a_panic_is_125_with_the_panic_in_the_console_log(disk_vm, tmp_path):
    done = run(
        "--vm", "--timeout", "600", "--", "sh", "-c", "echo c > /proc/sysrq-trigger; sleep 100", cwd=tmp_path
    )
    assert done.returncode == 125, done.stderr[-3000:]
    m = re.search(rb"panicked; the console log is in (\S+)", done.stderr)
    assert m, done.stderr[-2000:]
    assert "Kernel panic" in (tmp_path / m.group(1).decode()).read_text()


@pytest.mark.slow
@pytest.mark.timeout(1200)
@needs_qemu
def test_a_hang_past_timeout_is_125(disk_vm, tmp_path):
    done = run("--vm", "--timeout", "3", "--", "sleep", "1000", cwd=tmp_path)
    assert done.returncode == 125
    assert b"did not end within --timeout 3 s" in done.stderr
    assert list(tmp_path.glob("svinit-artifacts/run-vm-*/console.log"))


@pytest.mark.slow
@pytest.mark.timeout(1200)
@needs_qemu
def test_the_same_cmd_in_a_container_and_a_vm(disk_vm, tmp_path):
    (tmp_path / "given").write_text("host file\n")
    cmd = ["sh", "-c", 'echo "FOO=$FOO"; cat /host/given; ls /host; exit 3']
    # a value on two lines arrives whole (in the VM it goes through an envdir, which keeps one line:
    # before, the VM's CMD saw only "same")
    args = ["-e", "FOO=same\ntwo lines", "-v", f"{tmp_path}:/host", "--", *cmd]
    container = run(*args)
    machine = run("--vm", *args)
    assert container.returncode == machine.returncode == 3, (container.stderr[-2000:], machine.stderr[-2000:])
    assert container.stdout == machine.stdout == b"FOO=same\ntwo lines\nhost file\ngiven\n"


@pytest.mark.slow
@pytest.mark.timeout(1200)
@needs_qemu
def test_the_vm_fixture_takes_a_command_env_and_folders(svinit_vm_factory, tmp_path):
    (tmp_path / "in").write_text("in\n")
    m = svinit_vm_factory(
        command=["sh", "-c", 'cat /h/in > /h/out; echo "$V"; exit 4'],
        env={"V": "vee"},
        shares=[Share(tmp_path, "/h")],
    )
    res = m.wait_exit(600)
    assert res is not None and res.reason == "guest-shutdown"
    assert m.run_io.exit_code == 4
    assert bytes(m.run_io.out) == b"vee\n"
    assert (tmp_path / "out").read_text() == "in\n"


@pytest.mark.slow
@pytest.mark.timeout(1200)
@needs_qemu
def test_the_debian_image_as_a_vm(svinit_docker):
    build_container(base="debian", client=svinit_docker)
    done = run("--vm", "--image", DEBIAN_IMAGE, "-e", "X=deb", "--", "sh", "-c", 'echo "$X"; exit 7')
    assert done.returncode == 7, done.stderr[-3000:]
    assert done.stdout == b"deb\n"


@pytest.mark.slow
@pytest.mark.timeout(1200)
@needs_qemu
def test_without_cmd_it_gives_the_console(disk_vm):
    child = pexpect.spawn(SVINIT, ["run", "--vm"], timeout=600)
    try:
        child.expect("Ctrl-] leaves")
        child.expect(r"[#$] ")  # the reference VM's autologin shell on the console
        child.sendline("echo console-$((6*7))")
        child.expect("console-42")
        child.send("\x1d")
    finally:
        status = ended(child)
    assert status == 0, child.before
    assert b"guest-shutdown" in child.before
