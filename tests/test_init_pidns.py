"""The init package as process 1 of a PID namespace on the host, in a chroot of the svinit:alpine image's
files: with svinit's svscan and supervise, and with djb's (Debian's daemontools 0.76) in their place,
which is the seed's exact setup (signal hooks aside: djb's svscan has none).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import stat
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from svinit.build import build_container
from svinit.pidns import takes_signal
from tests.util import PidNamespace, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("have_unshare")]

SERVICES = ("heartbeat", "crond", "syslogd", "svscan-log")


@pytest.fixture(scope="session")
def image_tree(tmp_path_factory) -> Path:
    """The files of svinit:alpine (docker export), unpacked once."""
    import docker

    client = docker.from_env()
    build_container(client=client)
    container = client.containers.create("svinit:alpine")
    try:
        data = b"".join(container.export())
    finally:
        container.remove()
    tree = tmp_path_factory.mktemp("image") / "rootfs"
    tree.mkdir()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(tree, numeric_owner=True, filter="fully_trusted")
    return tree


@pytest.fixture
def tree(image_tree, tmp_path) -> Path:
    t = tmp_path / "rootfs"
    subprocess.run(["cp", "-a", str(image_tree), str(t)], check=True)
    return t


def with_djb(tree: Path, djb_bin: Path) -> None:
    """Puts djb's daemontools in /opt/djb (with the glibc they link), first in svscan's PATH."""
    (tree / "opt" / "djb").mkdir(parents=True)
    for prog in ("svscan", "supervise", "svc", "svstat", "svok"):
        shutil.copy2(djb_bin / prog, tree / "opt" / "djb" / prog)
    for lib in ("/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6"):
        dest = tree / lib.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(lib), dest)
    (tree / "etc" / "svinit" / "config").write_text("SVINIT_PATH=/opt/djb:/usr/bin:/bin:/usr/sbin:/sbin\n")


def boot(tree: Path, log: Path) -> PidNamespace:
    script = (
        f'mount --bind /dev "{tree}/dev" && mount -t proc proc "{tree}/proc" && '
        f'exec chroot "{tree}" /usr/bin/env -i SVINIT_VIRT=container /sbin/init'
    )
    return PidNamespace(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], log)


def svstat(tree: Path, svstat_bin: Path, name: str) -> str:
    return subprocess.run([svstat_bin, tree / "service" / name], capture_output=True, text=True).stdout


def all_up(tree: Path, svstat_bin: Path) -> bool:
    dirs = [n for n in SERVICES] + [f"{n}/log" for n in SERVICES if n != "svscan-log"]
    return all(": up (pid " in svstat(tree, svstat_bin, d) for d in dirs)


def log_lines(tree: Path, name: str) -> list[str]:
    return [
        line.split(" ", 1)[1]
        for line in (tree / "service" / name / "log" / "main" / "current").read_text().splitlines()
    ]


def test_boots_and_powers_off_cleanly_as_process_1(tree, tmp_path, init_bin):
    ns = boot(tree, tmp_path / "console.log")
    try:
        wait_for(lambda: all_up(tree, init_bin / "svstat"), 15, what="every service and logger up")
        assert os.readlink(f"/proc/{ns.pid}/exe") == str(tree / "usr/lib/svinit/bin/svscan")
        os.kill(ns.pid, signal.SIGTERM)  # what docker stop sends
        assert ns.wait(15) == 0, ns.output()
        out = ns.output()
        assert "poweroff: done in" in out and "(exit code 0)" in out
        assert log_lines(tree, "heartbeat")[-1].startswith("heartbeat: stopping after")
    finally:
        ns.close()


def test_an_earlier_boots_fifo_and_links_are_made_anew(tree, tmp_path, init_bin):
    """/sbin/init makes svscan's FIFO and the supervise and console links (stage 1 names them): what a
    killed earlier boot left there, a plain file and links to nothing, is replaced."""
    run = tree / "run" / "svinit"
    (run / "wrap").mkdir(parents=True)
    run.chmod(0o700)
    (run / "svscan.fifo").write_text("not a fifo\n")
    (run / "wrap" / "supervise").symlink_to("/nonexistent")
    (run / "console").symlink_to("/nonexistent")
    ns = boot(tree, tmp_path / "console.log")
    try:
        wait_for(lambda: all_up(tree, init_bin / "svstat"), 15, what="every service and logger up")
        assert stat.S_ISFIFO((run / "svscan.fifo").lstat().st_mode)
        assert stat.S_IMODE((run / "svscan.fifo").lstat().st_mode) == 0o600
        assert os.readlink(run / "wrap" / "supervise") == "/usr/lib/svinit/bin/supervise"
        assert re.fullmatch(r"/proc/\d+/fd/9", os.readlink(run / "console"))
        assert not list(run.rglob("*.new")), "no link left aside"
        os.kill(ns.pid, signal.SIGTERM)
        assert ns.wait(15) == 0, ns.output()
        assert "poweroff: done in" in ns.output()  # the shutdown wrote to the console link
    finally:
        ns.close()


def test_works_with_djbs_svscan_and_supervise(tree, tmp_path, djb_bin):
    with_djb(tree, djb_bin)
    ns = boot(tree, tmp_path / "console.log")
    try:
        wait_for(lambda: all_up(tree, djb_bin / "svstat"), 15, what="every service and logger up")
        assert os.readlink(f"/proc/{ns.pid}/exe") == str(tree / "opt/djb/svscan")
        sups = subprocess.run(
            ["pgrep", "-a", "-f", "/opt/djb/supervise|^supervise"], capture_output=True, text=True
        ).stdout
        # every supervise is djb's, reached through the wrapper (first in svscan's PATH)
        for line in sups.splitlines():
            pid = int(line.split()[0])
            if os.readlink(f"/proc/{pid}/root") == str(tree):
                assert os.readlink(f"/proc/{pid}/exe") == str(tree / "opt/djb/supervise")
        # djb's svscan has no signal hooks: ask for the poweroff as a user would, from inside
        subprocess.run(
            [shutil.which("chroot"), str(tree), "/sbin/poweroff"], check=True, env={"PATH": "/usr/bin:/bin"}
        )
        wait_for(lambda: "poweroff: done in" in ns.output(), 20, what="the shutdown to finish")
        out = ns.output()
        assert "not svinit's svscan?" in out, out
        for name in SERVICES:
            assert "supervise not running" in svstat(tree, djb_bin / "svstat", name)
        assert log_lines(tree, "heartbeat")[-1].startswith("heartbeat: stopping after")
        assert ns.alive(), "djb's svscan stays process 1: nothing can tell it to exit"
    finally:
        ns.close()


def started(pid: int) -> str | None:
    """Has process *pid*, the image's /sbin/init, run its first instructions? It has once it holds or
    catches SIGTERM, or has started a child (while it waits in sigwaitinfo the kernel shows its held
    signals as unblocked). A signal that comes between the kernel's exec and those is beyond any program.
    "init" then, "svscan" when process 1 is svscan already (stage 1 can take less time than this check
    takes to see it), else None."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        if argv[0] == b"svscan":
            return "svscan"
        if b"/sbin/init" not in argv:
            return None
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            if f.read().strip():
                return "init"
    except (OSError, ValueError):
        return None
    return "init" if takes_signal(pid, signal.SIGTERM) else None


@pytest.mark.parametrize("delay", [0, 0.01, 0.05, 0.1, 0.3])
def test_a_stop_at_any_instant_of_the_boot_is_acted_on(tree, tmp_path, delay):
    """SIGTERM to process 1 from its first instruction on (/sbin/init, then stage 1, then svscan): never
    lost, the container's stop ends it with exit 0. Five tries per delay, timed from the first
    instructions of the image's /sbin/init (or, when this check saw process 1 only once it was svscan,
    from then: with no delay, at least one try of five must stop it before svscan). The first try's
    stage 1 lasts 0.2 s longer (a drop-in of the image that sleeps): a stage 1 of a few ms can be over
    before this check sees process 1, and that try must still see it during the boot."""
    phases = []
    slow = tree / "etc" / "svinit" / "boot.d" / "99-slow.sh"
    slow.parent.mkdir(parents=True, exist_ok=True)
    for i in range(5):
        if i == 0:
            slow.write_text("# provides: slow\nsleep 0.2\n")
        else:
            slow.unlink(missing_ok=True)
        ns = boot(tree, tmp_path / f"console-{i}.log")
        try:
            phases.append(
                wait_for(lambda: started(ns.pid), 10, interval=0.0005, what="the image's /sbin/init")
            )
            time.sleep(delay)
            os.kill(ns.pid, signal.SIGTERM)
            code = ns.wait(8)
            assert code == 0, f"try {i}, {delay} s into the boot: exit {code}\n{ns.output()}"
            assert "poweroff: done in" in ns.output()
        finally:
            ns.close()
    assert delay or "init" in phases, f"no try stopped process 1 before svscan: {phases}"


def test_below_another_process_1_the_stop_spares_it_and_is_clean(tree, tmp_path, init_bin):
    """svinit under another init (docker run --init, compose init: true): process 1 is a plain sh that
    forwards TERM; the shutdown's last sweep must not kill it, nor svscan, and every service stops before
    its logger. Process 1 starts something else first: pid 2 is not svinit's (nor a kernel thread)."""
    script = (
        f'mount --bind /dev "{tree}/dev" && mount -t proc proc "{tree}/proc" && '
        "sleep 1000 & "
        f'chroot "{tree}" /usr/bin/env -i SVINIT_VIRT=container /sbin/init & child=$!; '
        "trap 'kill -TERM $child' TERM; "
        "while :; do wait $child; code=$?; kill -0 $child 2>/dev/null || break; done; "
        'echo "process 1 saw exit $code"; exit $code'
    )
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
    ns = PidNamespace(argv, tmp_path / "c.log")
    try:
        wait_for(lambda: all_up(tree, init_bin / "svstat"), 15, what="every service and logger up")
        os.kill(ns.pid, signal.SIGTERM)
        assert ns.wait(15) == 0, ns.output()
        out = ns.output()
        assert "process 1 saw exit 0" in out and "(exit code 0)" in out, out
        assert log_lines(tree, "heartbeat")[-1].startswith("heartbeat: stopping after")
        for name in ("heartbeat", "crond", "syslogd"):
            svc = (tree / "service" / name / "supervise" / "status").read_bytes()[:12]
            log = (tree / "service" / name / "log" / "supervise" / "status").read_bytes()[:12]
            assert svc < log, f"{name} went down after its logger"
    finally:
        ns.close()


def test_a_drop_in_for_a_vm_only_is_not_started_in_a_container(tree, tmp_path, init_bin):
    """`# where: vm` (svinit's own 10-modules.sh, a user's drop-in): skipped without being started,
    said with SVINIT_VERBOSE; `# where: container` and drop-ins without the header run. The messages are
    still in the log file once every service is up: svscan's logger opens the console (the container's
    stderr, here a file) to append, not to truncate it as it did."""
    (tree / "etc/svinit/config").write_text("SVINIT_VERBOSE=1\n")
    d = tree / "etc/svinit/boot.d"
    (d / "50-vmonly.sh").write_text("# where: vm\ntouch /tmp/vmonly-ran\n")
    (d / "51-here.sh").write_text("# provides: here\n#   where:   container vm  \ntouch /tmp/here-ran\n")
    (d / "52-any.sh").write_text("# a comment\ntouch /tmp/any-ran\n")
    ns = boot(tree, tmp_path / "console.log")
    try:
        wait_for(lambda: all_up(tree, init_bin / "svstat"), 15, what="every service and logger up")
        out = ns.output()
        assert "boot script 10-modules.sh: skipped: for a vm only" in out, out
        assert "boot script 50-vmonly.sh: skipped: for a vm only" in out, out
        assert not (tree / "tmp/vmonly-ran").exists()
        assert (tree / "tmp/here-ran").exists() and (tree / "tmp/any-ran").exists()
        assert "boot script 20-env.sh: exit 0" in out
    finally:
        ns.close()
