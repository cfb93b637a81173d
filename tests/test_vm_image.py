"""A user's image booted as a VM (`svinit build vm --image`, `svinit check vm --image`, the VM fixtures'
--svinit-image): a Debian 12 minbase root, with no busybox and no kmod, holding svinit's archive and
nginx and cron as services, on Debian's kernel with the reference initramfs. Its daemons come up, its
console asks for a login (no autologin), the ACPI power button powers it off with its root cleanly
unmounted; a power cut is not clean. Without QEMU: what `build vm --image` refuses and what it writes,
the getty service on a root without a getty, svacpid without a power button.

One Debian VM is booted for the looking tests and ends with the ACPI button; `check vm --image` boots
it twice more (clean, then a power cut). The VM is built once per image id (svinit's cache)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time

import pytest

from svinit import ROOT
from svinit.build import AUTOLOGIN, DEBIAN_IMAGE, build_container, build_vm, vm_dir
from svinit.build.container import dist_archive
from svinit.disks import verify_disk
from svinit.fetch import cache_dir
from svinit.fetch.cache import import_tar
from svinit.plugin import VmFiles, make_vm_factory
from tests.util import worker_tag

log = logging.getLogger(__name__)
slow = pytest.mark.slow
needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86_64")
SVINIT = [shutil.which("svinit") or str(ROOT / ".venv/bin/svinit")]

SERVICES = {
    "acpid",
    "cron",
    "cron/log",
    "getty-console",
    "nginx",
    "nginx/log",
    "svinit-harness",
    "svscan-log",
}
#: seconds measured on the Debian VM, for the log: QEMU start to every service up, the ACPI power-off
TIMES: dict[str, float] = {}


def svinit(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(SVINIT + list(args), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def debian_image(svinit_docker) -> str:
    """svinit:debian (images/debian: Debian 12 minbase, svinit's archive ADDed, nginx and cron with
    loggers), built if its sources changed."""
    build_container(base="debian", client=svinit_docker)
    return DEBIAN_IMAGE


@pytest.fixture(scope="module")
def debian_files(debian_image) -> VmFiles:
    return VmFiles.of_build(build_vm(vm_dir(image=debian_image), image=debian_image))


@pytest.fixture(scope="module")
def debian_vm(request, debian_files):
    """One booted Debian VM (its own copy of the root), every service up."""
    start, stop_all = make_vm_factory(request, debian_files)
    t0 = time.monotonic()
    m = start(name="debian")
    TIMES["up"] = time.monotonic() - t0
    log.info("debian vm: every service up %.1f s after QEMU started", TIMES["up"])
    yield m
    stop_all()


# ---------------------------------------------------------------------------------------------------
# One Debian VM, looked at, then powered off with the ACPI button


@slow
@needs_qemu
def test_its_daemons_come_up_from_its_own_root(debian_vm):
    statuses = debian_vm.wait_for_all_services(60)
    assert set(statuses) == SERVICES and all(s.up for s in statuses.values())
    assert debian_vm.wait_for_service("nginx").up and debian_vm.wait_for_service("cron").up
    assert debian_vm.succeed("cat /etc/debian_version").startswith("12.")
    assert debian_vm.succeed("cat /proc/1/comm").strip() == "svscan"
    # nginx answers on lo, which the initramfs brought up (the root's boot needs no ip)
    get = "exec 3<>/dev/tcp/127.0.0.1/8080; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; head -n 1 <&3"
    assert debian_vm.succeed(f'bash -c "{get}"').startswith("HTTP/1.1 200")


@slow
@needs_qemu
def test_the_root_needs_no_busybox_and_no_kmod(debian_vm):
    assert debian_vm.execute("command -v busybox modprobe insmod acpid").stdout == ""
    # the initramfs loaded the modules before switching to the root, which has none of this kernel's
    modules = debian_vm.succeed("cut -d' ' -f1 /proc/modules").split()
    assert {"virtio_blk", "ext4", "button", "evdev"} <= set(modules)
    debian_vm.fail('test -d "/lib/modules/$(uname -r)"')
    # svinit's own listener holds the power button (its message is in svscan's log)
    debian_vm.wait_until_succeeds(
        "grep -q 'svacpid: info: watching /dev/input/event.*Power Button' /service/svscan-log/main/current"
    )


@slow
@needs_qemu
def test_the_console_asks_for_a_login(debian_vm, debian_files):
    assert AUTOLOGIN not in debian_files.cmdline.split()
    debian_vm.wait_for_console_text(r"svinit login: ", timeout=30, from_start=True)
    debian_vm.console.send("root\r")
    # Debian's login asks for root's password (its own /etc/shadow decides): no shell without one
    debian_vm.wait_for_console_text(r"Password: ", timeout=30)


@slow
@needs_qemu
def test_the_acpi_button_powers_it_off_with_its_root_clean(debian_vm):
    r = debian_vm.shutdown("acpi")
    log.info("debian vm: up in %.1f s, ACPI power-off in %.1f s", TIMES.get("up", -1), r.seconds)
    assert r.reason == "guest-shutdown" and r.guest is True and r.kernel_line == "reboot: Power down", r
    assert r.svinit_done is not None and r.svinit_done.action == "poweroff" and r.svinit_done.code == 0
    assert r.clean and not r.panicked, r
    assert sorted(r.stopped) == ["cron", "nginx"] and all(s < lg for s, lg in r.stopped.values())
    root = verify_disk(debian_vm.disks[0].path)
    assert root.ok and root.needs_recovery is False, root.detail


# ---------------------------------------------------------------------------------------------------
# svinit check vm --image: clean, and a power cut is not


@slow
@needs_qemu
def test_check_vm_image_is_clean_and_a_power_cut_is_not(debian_image, debian_files, tmp_path):
    r = svinit("check", "vm", "--image", debian_image, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    v = json.loads(r.stdout)
    assert v["clean"] and v["image"] == debian_image
    assert len(v["disks"]) == 2 and all(d["ok"] and d["needs_recovery"] is False for d in v["disks"])

    r = svinit("-v", "check", "vm", "--image", debian_image, "--how", "crash", "--artifacts", str(tmp_path))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "up to date" in r.stderr  # built once per image id
    assert "FAIL  ended" in r.stdout and "FAIL  disks" in r.stdout and "needs_recovery" in r.stdout


# ---------------------------------------------------------------------------------------------------
# svinit build vm --image, without QEMU


@pytest.fixture(scope="module")
def archive_image(svinit_docker) -> str:
    """The smallest image holding svinit: its archive alone, imported."""
    tag = worker_tag("archive-only")
    import_tar(svinit_docker, dist_archive(), tag, [], log)
    return tag


@slow
def test_build_vm_image_asks_for_a_login_unless_autologin(archive_image, tmp_path):
    r = svinit("build", "vm", "--image", archive_image, "--out", str(tmp_path / "vm"))
    assert r.returncode == 0, r.stderr
    assert "asks for a login" in r.stderr
    cmdline = (tmp_path / "vm" / "cmdline").read_text().split()
    assert "root=LABEL=svroot" in cmdline and AUTOLOGIN not in cmdline
    # the root is the image's own: no kernel modules put into it (the initramfs loads them)
    ls = subprocess.run(
        ["debugfs", "-R", "ls -l /", str(tmp_path / "vm" / "root.img")], capture_output=True, text=True
    )
    assert " init" in ls.stdout and " lib" not in ls.stdout

    r = svinit("build", "vm", "--image", archive_image, "--autologin", "--out", str(tmp_path / "vm"))
    assert r.returncode == 0 and "root shell without a password" in r.stderr, r.stderr
    assert AUTOLOGIN in (tmp_path / "vm" / "cmdline").read_text().split()


@slow
def test_the_reference_vm_has_autologin_and_says_so(tmp_path):
    r = svinit("build", "vm", "--out", str(vm_dir("initramfs")))
    assert r.returncode == 0 and f"{AUTOLOGIN} is on its kernel command line" in r.stderr, r.stderr
    assert AUTOLOGIN in (vm_dir("initramfs") / "cmdline").read_text().split()


def test_build_vm_refuses_an_image_without_svinit(svinit_docker, tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hostname").write_text("bare\n")
    subprocess.run(["tar", "-cf", str(tmp_path / "bare.tar"), "-C", str(tmp_path), "etc"], check=True)
    bare = worker_tag("bare")
    import_tar(svinit_docker, tmp_path / "bare.tar", bare, [], log)
    r = svinit("build", "vm", "--image", bare, "--out", str(tmp_path / "vm"))
    assert r.returncode == 1
    assert f"{bare} holds no svinit (no /usr/lib/svinit/bin/init): ADD svinit's archive" in r.stderr
    r = svinit("check", "vm", "--image", "svinit-test:no-such-image")
    assert r.returncode == 2 and "never pulls" in r.stderr, r.stderr


PLUGIN_TEST = """
def test_files(svinit_vm_files):
    assert svinit_vm_files.root is not None and svinit_vm_files.root.name == "root.img"
    words = svinit_vm_files.cmdline.split()
    assert "root=LABEL=svroot" in words and "svinit.autologin" not in words
"""


@slow
def test_the_plugin_builds_the_vm_of_svinit_image(pytester, archive_image, monkeypatch):
    monkeypatch.setenv("SVINIT_CACHE", str(cache_dir()))
    pytester.makepyfile(PLUGIN_TEST)
    result = pytester.runpytest_subprocess("--svinit-image", archive_image, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@slow
def test_the_getty_service_says_so_when_the_root_has_no_getty(debian_image, svinit_docker):
    # the service's run script alone, in a container of the Debian image, with a PATH that has no getty
    script = (
        "mkdir /tmp/b && ln -s /usr/bin/sleep /tmp/b/ && SVINIT_RUN=/tmp "
        "timeout 2 env PATH=/tmp/b /usr/lib/svinit/vm-services/getty-console/run; echo exit=$?"
    )
    out = svinit_docker.containers.run(debian_image, ["-c", script], entrypoint=["/bin/sh"], remove=True)
    assert out.decode() == (
        "svinit: error: no getty on this root (util-linux agetty, or getty: busybox's): no login on "
        "/dev/ttyS0; install one in the image (Debian: util-linux; Alpine: busybox)\nexit=124\n"
    )


def test_svacpid_says_once_that_there_is_no_power_button_yet(init_bin):
    # this host has no /dev/input: the kernel's button and evdev modules would give one
    assert subprocess.run([init_bin / "svacpid"], capture_output=True, text=True).returncode == 100
    p = subprocess.Popen([init_bin / "svacpid", "true"], stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    p.terminate()
    assert p.communicate()[1] == (
        "svacpid: warning: no power button in /dev/input/event* yet (the kernel needs the modules button "
        "and evdev); looking again every 5 s\n"
    )
