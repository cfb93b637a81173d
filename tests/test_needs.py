"""What the init package needs from an image: every program a boot, a CMD and a stop exec, traced with
strace in a root of busybox-static and the archive (process 1 of a PID namespace), is svinit's own or
listed in init/NEEDS, whose commands every supported base has."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from svinit import ROOT
from svinit.build.init import dist_archive
from svinit.fetch import busybox_static, debian_package

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("have_unshare")]

#: Where svinit's own programs and scripts are, in the guest
OWN = (
    "/init",
    "/usr/local/bin/",
    "/usr/lib/svinit/",
    "/run/svinit/",
    "/tmp/svinit-",
    "./run",
    "./finish",
    ".svscan/",
)


def needs() -> dict[str, str]:
    """init/NEEDS: command -> where (all, vm)."""
    out = {}
    for line in (ROOT / "init" / "NEEDS").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, where, _ = line.split(None, 2)
            out[name] = where
    return out


@pytest.fixture(scope="module")
def root(tmp_path_factory, init_bin) -> Path:
    """busybox-static with a link per applet, and the archive: what `ADD` gives a busybox-only image.
    The cases boot this one root in turn, on purpose: each finds what the one before left (root's
    /run/svinit, /service/.svscan/control), as an image committed after a boot has it."""
    archive = dist_archive()
    tree = tmp_path_factory.mktemp("needs") / "root"
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "dev", "run", "tmp", "root"):
        (tree / d).mkdir(parents=True)
    (tree / "tmp").chmod(0o1777)
    shutil.copy2(busybox_static(), tree / "bin" / "busybox")
    # /bin/sh is a static bash: busybox's own sh runs many applets in its process, unseen by strace
    shutil.copy2(debian_package("bash-static") / "bin" / "bash-static", tree / "bin" / "sh")
    applets = subprocess.run([tree / "bin/busybox", "--list-full"], capture_output=True, text=True).stdout
    for a in applets.split():
        if not (tree / a).exists():
            (tree / a).symlink_to("/bin/busybox")
    (tree / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/tmp:/bin/sh\n")
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(tree)], check=True)
    svc = tree / "service" / "ticker"
    (svc / "log").mkdir(parents=True)
    (svc / "run").write_text("#!/bin/sh\nexec 2>&1\nexec sleep 1000\n")
    (svc / "log" / "run").write_text("#!/bin/sh\nexec multilog t ./main\n")
    for f in (svc / "run", svc / "log" / "run"):
        f.chmod(0o755)
    return tree


def name(path: str) -> str:
    """The command a traced path ran: its base name, or the applet busybox ran as /proc/self/exe."""
    return os.path.basename(path.split(":", 1)[1] if path.startswith("/proc/self/exe:") else path)


def traced(tree: Path, out: Path, prelude: str, user: str = "", env: str = "") -> set[str]:
    """Boots *tree* as process 1 of a PID namespace under strace, with a CMD that exits 3 (a whole boot,
    CMD, shutdown); returns the programs exec'd inside the root (successful execve's)."""
    trace = out.with_suffix(".strace")
    userspec = f"--userspec={user} " if user else ""
    script = (
        f'set -e; {prelude}mount --bind /dev "{tree}/dev"; mount -t proc proc "{tree}/proc"; '
        f'exec chroot {userspec}"{tree}" /usr/bin/env -i SVINIT_VIRT=container FOO=bar {env} '
        f"/init sh -c 'sleep 0.5; exit 3'"
    )
    argv = ["unshare", "--pid", "--fork", "--mount", "--propagation", "private", "sh", "-c", script]
    r = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace), *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    out.write_text(r.stdout + r.stderr)
    assert r.returncode == 3, r.stdout + r.stderr
    inside, ran = False, set()
    # busybox runs some applets again as /proc/self/exe, argv[0] naming the applet
    for line in trace.read_text().splitlines():
        m = re.search(r'execve\("([^"]+)", \["([^"]*)".* = 0$', line)
        if not m:
            continue
        path, argv0 = m.groups()
        if path.endswith("/chroot"):
            inside = True
            continue
        if path == "/usr/bin/env" and not ran:  # this test's own, in the root
            continue
        if path == "/proc/self/exe":  # busybox running one of its applets: argv[0] says which
            path = f"/proc/self/exe:{argv0}"
        if inside:
            ran.add(path)
    return ran


@pytest.mark.parametrize(
    "case",
    ["root", "user", "read-only", "verbose"],
)
def test_every_program_the_sh_runs_is_svinits_or_listed(root, tmp_path, case, request):
    prelude, user, env = "", "", ""
    if case == "user":
        user = "1000:1000"
    elif case == "read-only":
        prelude = (
            f'mount --bind "{root}" "{root}"; mount -o remount,bind,ro "{root}"; '
            f'mount -t tmpfs run "{root}/run"; '
        )
    elif case == "verbose":
        env = "SVINIT_VERBOSE=1"
    ran = traced(root, tmp_path / "boot.log", prelude, user, env)
    listed = {c for c, where in needs().items() if where == "all"}  # a container runs no vm-only one
    foreign = sorted(p for p in ran if not p.startswith(OWN) and name(p) not in listed)
    # the CMD and the service run sh and sleep, which NEEDS lists anyway
    assert not foreign, f"not svinit's and not in init/NEEDS: {foreign}"
    used = {name(p) for p in ran if not p.startswith(OWN)}
    request.node.user_properties.append(("used", sorted(used)))


def test_a_program_not_listed_is_caught(root, tmp_path):
    """The check can fail: a boot drop-in that runs `uname` (busybox has it; NEEDS does not list it)."""
    extra = root / "etc" / "svinit" / "boot.d" / "99-uname.sh"
    extra.write_text("# provides: uname\nuname -r > /dev/null\n")
    try:
        ran = traced(root, tmp_path / "boot.log", "")
    finally:
        extra.unlink()
    assert "uname" not in needs()
    assert any(name(p) == "uname" for p in ran)


def test_a_first_boot_forks_no_mkdir_rm_or_chmod(root, tmp_path):
    """A container's first boot runs none of mkdir, rm, chmod: /sbin/init makes /run/svinit and its envdir,
    and the probe of a writable /service is svinit's own .svscan/.writable, kept. (Each process is ~1 ms
    of a container's start, and ~8 ms of a vm's under an emulated CPU.) A copy of the root, never booted."""
    fresh = tmp_path / "fresh"
    subprocess.run(["cp", "-a", str(root), str(fresh)], check=True)  # (its FIFOs too)
    for left in ("run/svinit", "service/.svinit-writable", "service/.svscan/.writable"):
        subprocess.run(["rm", "-rf", str(fresh / left)], check=True)
    ran = {name(p) for p in traced(fresh, tmp_path / "boot.log", "")}
    assert not ran & {"mkdir", "rm", "chmod"}, sorted(ran)
    assert (fresh / "service/.svscan/.writable").exists()
    assert not (fresh / "service/.svinit-writable").exists()
