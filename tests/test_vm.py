"""svinit on a QEMU machine (real QEMU, TCG here: KVM does not work on these hosts): boot to every
service up, commands over the command channel, each way of stopping on a machine of its own (poweroff,
the ACPI power button, Ctrl-Alt-Del and booting again, halt, a crash), the disk layout, the KVM probe,
the interactive console. The machine definition and the channel's encoding are checked without QEMU."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pexpect
import pytest

from svinit.machine import CommandFailed, Timeout, retry
from svinit.plugin import make_vm_factory
from svinit.qemu.accel import probe_kvm
from svinit.qemu.channel import ChannelClosed, CommandChannel, _assign
from svinit.qemu.console import clean
from svinit.qemu.definition import DefinitionError, MachineDefinition
from svinit.qemu.machine import QemuMachine
from tests.util import vm_file_options

SERVICES = [
    "acpid",
    "crond",
    "crond/log",
    "getty-console",
    "heartbeat",
    "heartbeat/log",
    "svinit-harness",
    "svscan-log",
    "syslogd",
    "syslogd/log",
]
DEMO = ["crond", "heartbeat", "syslogd"]
slow = pytest.mark.slow


@pytest.fixture(scope="session")
def svinit_cache() -> Path:
    """svinit's cache directory, read before pytester changes HOME."""
    from svinit.fetch import cache_dir

    return cache_dir()


@pytest.fixture(scope="module")
def vm(request, svinit_vm_files):
    """One booted VM for the tests that only look (services, commands, the console)."""
    start, stop_all = make_vm_factory(request, svinit_vm_files)
    t0 = time.monotonic()
    m = start(name="shared")
    logging.getLogger(__name__).info("shared vm: every service up %.2f s after start", time.monotonic() - t0)
    yield m
    stop_all()


def needs_recovery(image: Path) -> bool:
    """The ext4 image was left mounted (its journal needs a replay): FACTS.md, 'Proving a clean unmount'."""
    out = subprocess.run(["dumpe2fs", "-h", str(image)], capture_output=True, text=True, check=True).stdout
    return "needs_recovery" in out


def assert_clean(r, how: str, reason: str, kernel_line: str, action: str) -> None:
    assert r.how == how
    assert r.exit_code == 0, r
    assert r.reason == reason, r
    assert r.kernel_line == kernel_line, r
    assert r.svinit_done is not None and r.svinit_done.action == action and r.svinit_done.code == 0, r
    assert not r.panicked
    assert r.clean, r
    # with svinit.harness, the shutdown reports when each demo service and its logger went down:
    # each logger after its service
    assert sorted(r.stopped) == DEMO, r.stopped
    assert all(svc < logger for svc, logger in r.stopped.values()), r.stopped


# ---------------------------------------------------------------------------------------------------
# Without QEMU


def test_machine_definition_fills_placeholders_and_drops_absent_ones():
    d = MachineDefinition.load("x86_64")
    assert d.binary == "qemu-system-x86_64" and d.console_tty == "ttyS0" and d.harness_tty == "ttyS1"
    values = dict(
        accel="tcg",
        machine=d.machine,
        memory="128M",
        smp=1,
        kernel="/k",
        initrd=None,
        cmdline="console=ttyS0 quiet",
        qmp="/s/q",
        harness="/s/h",
    )
    argv = d.fill(d.args, values)
    assert "-initrd" not in argv
    assert argv[argv.index("-append") + 1] == "console=ttyS0 quiet"
    assert "-no-reboot" in argv and "-S" in argv
    assert "socket,id=harness,path=/s/h,server=on,wait=off" in argv
    with pytest.raises(DefinitionError, match="known: .*x86_64"):
        MachineDefinition.load("vax")


def test_machine_argv_has_disks_and_the_harness_on_the_command_line(tmp_path):
    for f in ("k", "i", "a,b.img"):
        (tmp_path / f).write_bytes(b"")
    m = QemuMachine(tmp_path / "k", tmp_path / "i", "console=ttyS0", [tmp_path / "a,b.img"], accel="tcg")
    try:
        argv = m.argv()
        assert m.cmdline == "console=ttyS0 svinit.harness=ttyS1"
        assert f"file={tmp_path}/a,,b.img,format=raw,if=none,id=disk0" in argv
        assert "virtio-blk-pci,drive=disk0" in argv
        assert "pc,accel=tcg" in argv
    finally:
        m.close()


@pytest.mark.parametrize("shell", ["sh", "bash", "dash", "busybox"])
def test_the_channels_encoding_survives_the_guests_shells(shell):
    """What _assign sends, run by a real shell, gives the command back byte for byte."""
    argv = {"busybox": ["busybox", "sh"]}.get(shell, [shell])
    if not shutil.which(argv[0]):
        pytest.skip(f"no {argv[0]} here")
    cmd = "echo \"it's\" '!x' $((1+2))\n\tif true; then echo \\\\n é; fi\n" + "y" * 1000 + "\x01'\"`$"
    script = "\n".join(_assign("_svc", cmd)) + '\nprintf %s "$(printf %b "$_svc")"\n'
    out = subprocess.run(argv, input=script.encode(), capture_output=True, check=True).stdout
    assert out == cmd.rstrip("\n").encode()
    assert all(len(line) < 420 and line.isascii() and "\t" not in line for line in script.splitlines())


def test_a_channel_closed_by_an_exiting_qemu_waits_for_the_reason(tmp_path):
    """QEMU closes the command channel as it exits, and the SHUTDOWN event that says why reaches the
    QMP thread a moment later (the CI failure: `poweroff` over the channel, answered by QEMU's exit,
    read as an error). A close that *abort* explains within the grace is no error; one it does not
    explain is ChannelClosed. The peer is a real unix socket that reads the command and closes."""
    path = tmp_path / "h.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(2)
    said = threading.Event()

    def peer(explain: bool) -> None:
        conn, _ = srv.accept()
        conn.recv(65536)
        conn.close()
        if explain:
            time.sleep(0.3)  # the SHUTDOWN event, read late
            said.set()

    for explain in (True, False):
        t = threading.Thread(target=peer, args=(explain,))
        t.start()
        ch = CommandChannel(path, "test channel")
        ch.connect()
        deadline = time.monotonic() + 30
        if explain:
            assert ch.run("poweroff", deadline, abort=said.is_set) is None
        else:
            with pytest.raises(ChannelClosed, match="QEMU closed the command channel"):
                ch.run("true", deadline, abort=lambda: False)
        t.join()
        ch.close()
    srv.close()


def test_console_text_is_cleaned():
    raw = "\x1b[2J\x1b[H\x1b]0;title\x07login: \x1b[1;32mroot\x1b[0m\r\nok\x1b(B\x1b=\r\n"
    assert clean(raw) == "login: root\nok\n"


# ---------------------------------------------------------------------------------------------------
# One VM, looked at


@slow
def test_boot_brings_every_service_up(vm):
    for name in SERVICES:
        assert vm.wait_for_service(name).up
    assert sorted(vm.services()) == SERVICES
    assert vm.succeed("cat /proc/1/comm").strip() == "svscan"
    assert "svinit: booted (vm, runlevel default): starting svscan in /service" in vm.logs()
    vm.wait_until_succeeds("test -s /service/heartbeat/log/main/current")
    assert vm.accel in ("kvm", "tcg") and f"accel {vm.accel}" in vm.logs()
    # the initramfs is the root: a random seed saved there would be lost at the poweroff, so none is
    assert vm.execute("test -e /var/lib/svinit/random-seed").rc == 1


@slow
def test_succeed_and_fail_give_exit_codes_and_output(vm):
    assert vm.succeed("echo hello") == "hello\n"
    assert vm.succeed("printf 'no newline'") == "no newline"
    assert vm.succeed("printf 'a\\nb\\n\\nc\\n'") == "a\nb\n\nc\n"
    assert vm.succeed("x=1\nif [ $x = 1 ]; then\n  echo multi\n  echo line\nfi") == "multi\nline\n"
    assert vm.succeed('echo "it\'s" \'!x\' $((1+2)) "\ttab"; echo é') == "it's !x 3 \ttab\né\n"
    assert vm.succeed("echo one", "echo two") == "one\ntwo\n"
    assert vm.succeed("printf '\\377x'") == "\ufffdx"
    # stdin is /dev/null: a command reading it ends
    assert vm.succeed("cat; echo read-nothing") == "read-nothing\n"
    big = vm.succeed("seq 1 20000")
    assert big.splitlines() == [str(i) for i in range(1, 20001)]

    r = vm.execute("echo out; echo err >&2; exit 3")
    assert (r.rc, r.stdout, r.stderr, r.succeeded) == (3, "out\n", "err\n", False)
    assert vm.fail("false") == ""
    assert vm.fail("printf partial; exit 7") == "partial"
    with pytest.raises(CommandFailed) as e:
        vm.succeed("echo before; ls /nonexistent")
    assert e.value.rc != 0 and e.value.stdout == "before\n" and "nonexistent" in e.value.stderr
    assert "`echo before; ls /nonexistent` exited" in str(e.value)
    with pytest.raises(CommandFailed, match="expected non-zero"):
        vm.fail("true")


@slow
def test_a_command_over_its_timeout_is_killed_and_the_channel_goes_on(vm):
    t0 = time.monotonic()
    r = vm.execute("sleep 30; echo never", timeout=1)
    assert r.rc == 137 and r.stdout == ""
    assert time.monotonic() - t0 < 10
    assert vm.succeed("echo still-here") == "still-here\n"


@slow
def test_waits_and_the_console(vm):
    vm.wait_until_succeeds("test -e /service/crond/supervise/status")
    with pytest.raises(Timeout, match="last exit 1"):
        vm.wait_until_succeeds("false", timeout=0.5)
    # the root shell of getty-console on ttyS0 is the console itself
    vm.console.send("echo console-$((6 * 7))\r")
    assert vm.wait_for_console_text(r"console-42").group(0) == "console-42"
    with pytest.raises(Timeout, match="no 'not-there' on the console"):
        vm.wait_for_console_text("not-there", timeout=0.3)
    assert vm.qmp.query_status()["status"] == "running"


# ---------------------------------------------------------------------------------------------------
# Each way of stopping, on a machine of its own


@slow
def test_poweroff_from_inside(svinit_vm_factory):
    m = svinit_vm_factory()
    r = m.shutdown("poweroff")
    assert_clean(r, "poweroff", "guest-shutdown", "reboot: Power down", "poweroff")
    assert r.guest is True
    assert r.seconds < m.timeout(10)
    assert not m.is_running()


@slow
def test_a_guest_that_powers_itself_off_is_recorded_as_unasked(svinit_vm_factory):
    """A guest that ends before the harness asks (a service ran poweroff) gives a record that says so
    and who asked, never clean and never an error: check vm then gives a verdict, not a traceback."""
    m = svinit_vm_factory()
    m.succeed("(sleep 1; /usr/lib/svinit/bin/poweroff) </dev/null >/dev/null 2>&1 &")
    retry(lambda last: not m.is_running(), m.timeout(60), what="the guest's own poweroff")
    r = m.shutdown("poweroff")
    assert r.unasked and not r.clean
    # every last word of a clean poweroff, but nobody asked for it here
    assert r.kernel_line == "reboot: Power down" and r.svinit_done and r.svinit_done.code == 0
    assert r.asked_by and r.asked_by.startswith("poweroff (pid ")
    assert "ended by itself before the harness asked for poweroff" in r.ended()[1]
    assert m.shutdown("poweroff") is r


@slow
def test_acpi_power_button_powers_off_cleanly(svinit_vm):
    r = svinit_vm.shutdown("acpi")
    assert_clean(r, "acpi", "guest-shutdown", "reboot: Power down", "poweroff")
    assert r.guest is True
    assert [e["event"] for e in svinit_vm.qmp.events].count("POWERDOWN") == 1


@slow
def test_ctrl_alt_del_reboots_the_vm_comes_back_then_powers_off(svinit_vm_factory):
    m = svinit_vm_factory()
    m.succeed("echo first-boot > /tmp/mark")
    r = m.shutdown("ctrl-alt-del")
    assert_clean(r, "ctrl-alt-del", "guest-reset", "reboot: Restarting system", "reboot")
    assert r.guest is True
    m.boot_again()
    m.wait_for_all_services(60)
    assert m.boots == 2
    assert m.fail("cat /tmp/mark") == ""  # a new boot: the initramfs root is fresh
    r = m.shutdown("poweroff")
    assert_clean(r, "poweroff", "guest-shutdown", "reboot: Power down", "poweroff")
    logs = m.logs()
    assert logs.count("starting svscan in /service") == 2
    assert logs.index("reboot: Restarting system") < logs.index("reboot: Power down")


@slow
def test_halt(svinit_vm_factory):
    m = svinit_vm_factory()
    r = m.shutdown("halt")
    # a halted kernel leaves QEMU running: the harness quits it once the kernel said so
    assert_clean(r, "halt", "host-qmp-quit", "reboot: System halted", "halt")


@slow
def test_crash_is_an_unclean_end(svinit_vm_factory):
    m = svinit_vm_factory()
    r = m.crash()
    assert r.reason == "host-qmp-quit" and r.guest is False
    assert r.svinit_done is None and r.kernel_line is None and r.stopped == {}
    assert not r.clean
    assert not m.is_running()


# ---------------------------------------------------------------------------------------------------
# The disk layout


@slow
def test_disk_layout_boots_and_powers_off_with_clean_filesystems(svinit_vm_factory, tmp_path):
    from svinit.build import build_vm
    from svinit.fetch import cache_dir

    out = build_vm(cache_dir() / "vm" / "disk", layout="disk")
    root, data = tmp_path / "root.img", tmp_path / "data.img"
    shutil.copyfile(out / "root.img", root)
    with open(data, "wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-L", "svdata", str(data)], check=True)
    assert not needs_recovery(root)

    m = svinit_vm_factory(
        disks=[root, data],
        kernel=out / "vmlinuz",
        initrd=out / "initramfs.img",
        cmdline=(out / "cmdline").read_text().strip(),
    )
    assert m.succeed("cat /proc/1/comm").strip() == "svscan"
    assert m.succeed("cat /etc/alpine-release").startswith("3.")
    mounts = m.succeed("cat /proc/mounts")
    assert "/dev/vda / ext4 rw" in mounts and "/dev/vdb /data ext4 rw" in mounts
    m.succeed("echo kept > /data/file")
    # a root on a disk keeps a fresh random seed for the next boot (written in the background)
    m.wait_until_succeeds("test -s /var/lib/svinit/random-seed")
    # Alpine's /bin/sh is busybox ash: the same protocol, stderr apart, the guest-side deadline
    r = m.execute("echo out; echo err >&2; printf 'no newline'; exit 4")
    assert (r.rc, r.stdout, r.stderr) == (4, "out\nno newline", "err\n")
    assert m.execute("sleep 20", timeout=1).rc == 137
    r = m.shutdown("poweroff")
    assert_clean(r, "poweroff", "guest-shutdown", "reboot: Power down", "poweroff")
    assert not needs_recovery(root), "the root filesystem was left mounted read-write"
    assert not needs_recovery(data), "/data was left mounted"
    dumped = subprocess.run(["debugfs", "-R", "cat /file", str(data)], capture_output=True, text=True)
    assert dumped.stdout == "kept\n"


# ---------------------------------------------------------------------------------------------------
# The accelerator


@slow
def test_kvm_probe_falls_back_to_tcg_and_says_so(svinit_vm_files, caplog, monkeypatch):
    monkeypatch.delenv("SVINIT_ACCEL", raising=False)
    probe = probe_kvm(svinit_vm_files.kernel, timeout=6, use_cache=False)
    assert not probe.cached
    assert probe_kvm(svinit_vm_files.kernel).cached  # the verdict is kept for this boot of the host
    m = QemuMachine(svinit_vm_files.kernel, svinit_vm_files.initrd, timeout_multiplier=1.5)
    try:
        with caplog.at_level(logging.INFO, logger="svinit.vm"):
            accel = m.choose_accel()
        if probe.works:
            assert accel == "kvm" and m.timeout_multiplier == 1.5
            assert "KVM works here" in caplog.text
        else:
            factor = m.definition.tcg_timeout_factor
            assert accel == "tcg" and m.timeout_multiplier == 1.5 * factor
            assert f"KVM does not work here: using TCG (timeouts x {factor:g})" in caplog.text
            assert "hung" in probe.detail or "kvm" in probe.detail.lower()
            assert probe.seconds < 10
    finally:
        m.close()


# ---------------------------------------------------------------------------------------------------
# The interactive console (for `svinit boot`)


@slow
def test_interactive_console_leaves_on_ctrl_bracket(svinit_vm_files, tmp_path):
    script = tmp_path / "boot.py"
    script.write_text(
        "import sys\n"
        "from svinit.qemu.machine import QemuMachine\n"
        f"m = QemuMachine({str(svinit_vm_files.kernel)!r}, {str(svinit_vm_files.initrd)!r}, "
        f"{svinit_vm_files.cmdline!r})\n"
        "try:\n"
        "    print('END', m.interactive('poweroff').reason, flush=True)\n"
        "finally:\n"
        "    m.close()\n"
    )
    child = pexpect.spawn(sys.executable, [str(script)], timeout=120, encoding="utf-8")
    try:
        child.expect("Ctrl-] leaves")
        child.expect("starting svscan in /service")
        child.expect("# ")
        child.send("echo typed-$((6 * 7))\r")
        child.expect("typed-42")
        child.send("\x1d")
        child.expect(r"left the console: stopping vm \(poweroff\)")
        child.expect(r"END guest-shutdown")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, child.before


# ---------------------------------------------------------------------------------------------------
# The plugin, in a pytest of its own

PLUGIN_TEST = """
def test_fails_with_the_console(svinit_vm):
    assert svinit_vm.wait_for_service("heartbeat").up
    svinit_vm.succeed("echo about-to-fail; exit 9")

def test_without_a_vm():
    pass
"""


@slow
def test_plugin_vm_fixture_with_the_options_and_the_failure_report(
    svinit_cache, pytester, svinit_vm_files, monkeypatch
):
    # pytester gives the inner pytest a HOME of its own: keep svinit's cache (the KVM probe's verdict)
    monkeypatch.setenv("SVINIT_CACHE", str(svinit_cache))
    pytester.makepyfile(PLUGIN_TEST)
    result = pytester.runpytest_subprocess(*vm_file_options(svinit_vm_files, pytester.path))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*echo about-to-fail; exit 9* exited 9, expected 0*",
            "*svinit: output of vm1*",
            "*boot 1: QEMU emulator version*",
            "*starting svscan in /service*",
        ]
    )
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--svinit-kernel*", "*--svinit-initrd*", "*--svinit-cmdline*"])


@pytest.mark.slow
def test_two_builds_of_one_vm_at_once_build_it_once(tmp_path):
    """Two sessions (or xdist workers) building the same VM directory at once: one builds, the other
    waits for it and finds it up to date (they used to both build, over each other's files)."""
    out = tmp_path / "vm"
    argv = [str(Path(sys.executable).parent / "svinit"), "-v", "build", "vm", "--out", str(out)]
    procs = [subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    built = [e for e in errs if "assembling the initramfs" in e]
    assert len(built) == 1 and sum("is up to date" in e for e in errs) == 1, errs
