"""The init package in a container, against the real dockerd: runlevels, boot drop-ins gone wrong, and
Ctrl-C under `docker run -it` (a real pty, driven with pexpect)."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pexpect
import pytest

from tests.util import make_service

pytestmark = pytest.mark.skipif(shutil.which("docker") is None, reason="needs docker")


def runlevels(tmp_path: Path) -> dict:
    """/etc/svinit/runlevels: default runs heartbeat, quiet runs crond; syslogd is in none (always)."""
    root = tmp_path / "runlevels"
    (root / "default").mkdir(parents=True)
    (root / "quiet").mkdir()
    (root / "default" / "heartbeat").symlink_to("/service/heartbeat")
    (root / "quiet" / "crond").symlink_to("/service/crond")
    return {str(root): {"bind": "/etc/svinit/runlevels", "mode": "ro"}}


def states(m) -> dict[str, bool]:
    return {n: m.service_status(n).up for n in ("heartbeat", "crond", "syslogd")}


def test_runlevel_switch(svinit_container_factory, tmp_path):
    m = svinit_container_factory(volumes=runlevels(tmp_path), wait=False)
    m.wait_until_succeeds("svstat /service/heartbeat | grep -q ': up '")
    m.wait_for_service("syslogd")
    assert states(m) == {"heartbeat": True, "crond": False, "syslogd": True}
    m.succeed("test -e /service/crond/down")  # the runlevel made it normally down
    assert "normally up" not in m.succeed("svstat /service/crond")
    assert m.succeed("runlevel").strip() == "default"
    m.succeed("runlevel quiet")
    m.wait_until_succeeds("svstat /service/crond | grep -q ': up '")
    m.wait_until_succeeds("svstat /service/heartbeat | grep -q ': down '")
    assert states(m) == {"heartbeat": False, "crond": True, "syslogd": True}
    assert m.succeed("runlevel").strip() == "quiet"
    r = m.execute("runlevel nosuch")
    assert r.rc == 100 and "runlevel 'nosuch' does not exist" in r.stderr
    assert m.shutdown().exit_code == 0


def test_boot_runlevel_from_the_environment(svinit_container_factory, tmp_path):
    m = svinit_container_factory(
        volumes=runlevels(tmp_path), environment={"SVINIT_RUNLEVEL": "quiet"}, wait=False
    )
    m.wait_until_succeeds("svstat /service/crond | grep -q ': up '")
    assert states(m)["heartbeat"] is False
    assert m.succeed("runlevel").strip() == "quiet"


def test_boot_script_cycle_and_failure_are_reported_and_the_container_serves(
    svinit_container_factory, tmp_path
):
    d = tmp_path / "boot.d"
    d.mkdir()
    (d / "50-a.sh").write_text("# needs: b\ntouch /tmp/a-ran\n")
    (d / "51-b.sh").write_text("# needs: a\ntouch /tmp/b-ran\n")
    (d / "60-c.sh").write_text("# needs: b\ntouch /tmp/c-ran\n")
    (d / "70-missing.sh").write_text("# needs: nothing-provides-this\ntouch /tmp/missing-ran\n")
    (d / "80-fails.sh").write_text("echo 'fails: about to fail' >&2\nexit 3\n")
    (d / "90-fine.sh").write_text("# needs: env\ntouch /tmp/fine-ran\n")
    m = svinit_container_factory(volumes={str(d): {"bind": "/etc/svinit/boot.d", "mode": "ro"}})
    logs = m.logs()
    assert "boot scripts in a dependency cycle, not run: 50-a.sh -> 51-b.sh -> 50-a.sh" in logs
    assert "boot script 60-c.sh needs 'b', which cannot run: not run" in logs
    assert "boot script 70-missing.sh needs 'nothing-provides-this', which no boot script provides" in logs
    assert "boot script 80-fails.sh failed with exit code 3; boot goes on" in logs
    m.succeed("test -e /tmp/fine-ran")
    m.fail("test -e /tmp/a-ran || test -e /tmp/b-ran || test -e /tmp/c-ran || test -e /tmp/missing-ran")
    assert all(s.up for s in m.statuses().values()), "the container still serves"
    assert m.shutdown().exit_code == 0
    # the shutdown says who asked: docker stop's SIGTERM, to svscan as process 1
    asked = r"svinit: poweroff asked by SIGTERM \(pid \d+ in /\S*; its parent 1: svscan\)"
    assert re.search(asked, m.logs()), m.logs()


def test_a_stop_while_cmd_runs_keeps_the_shutdowns_messages(svinit_container_factory):
    """docker stop while CMD runs: the shutdown's messages reach the container's log. (They went to
    /dev/null: the console linked to the front process's stderr, which its sh points at /dev/null for
    as long as it waits for CMD, `wait "$!" 2>/dev/null`.)"""
    m = svinit_container_factory(command=["sleep", "1000"])
    assert m.shutdown().exit_code == 143  # CMD's: TERM ended it
    logs = m.logs()
    assert re.search(r"svinit: poweroff asked by SIGTERM \(pid \d+ in /\S*; its parent 1: svscan\)", logs), (
        logs
    )
    assert "svinit: poweroff: done in" in logs and "(exit code 143)" in logs, logs


def docker_it(image: str, *cmd: str) -> pexpect.spawn:
    return pexpect.spawn(
        "docker",
        ["run", "-it", "--rm", "--pull", "never", image, *cmd],
        encoding="utf-8",
        codec_errors="replace",
        timeout=30,
    )


def test_ctrl_c_powers_off_a_container_without_cmd(svinit_image):
    child = docker_it(svinit_image)
    child.expect("starting svscan")
    time.sleep(1)
    child.sendcontrol("c")
    child.expect(r"poweroff: done in \d+ ms \(exit code 0\)")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_ctrl_c_reaches_cmd_which_gives_the_exit_code(svinit_image):
    child = docker_it(svinit_image, "sleep", "100")
    child.expect("starting svscan")
    time.sleep(1.5)  # CMD starts once the services are up
    child.sendcontrol("c")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130


def test_ctrl_c_in_an_interactive_shell_as_cmd(svinit_image):
    child = docker_it(svinit_image, "sh")
    child.expect(r"# ")
    child.sendline("svstat /service/heartbeat; sleep 30")
    child.expect(r"up \(pid")
    time.sleep(0.5)
    child.sendcontrol("c")  # interrupts the shell's foreground job, not the shell, not svscan
    child.expect(r"# ")
    child.sendline("svstat /service/heartbeat; exit 5")
    child.expect(r"up \(pid")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 5


def test_the_environment_saved_for_services_is_readable_by_root_only(svinit_container_factory):
    """docker run -e DB_PASSWORD=...: the envdir is 0700, its files 0600, and every file of svinit's
    state under /run is out of reach of a service that dropped to nobody; root's services read it."""
    m = svinit_container_factory(environment={"DB_PASSWORD": "hunter2"})
    assert m.succeed("stat -c '%a %U' /run/svinit /run/svinit/env").split() == ["700", "root", "700", "root"]
    assert m.succeed("stat -c '%a' /run/svinit/env/DB_PASSWORD").strip() == "600"
    assert m.succeed("envdir /run/svinit/env sh -c 'echo $DB_PASSWORD'").strip() == "hunter2"
    r = m.execute("su nobody -s /bin/sh -c 'cat /run/svinit/env/DB_PASSWORD'")
    assert r.rc != 0 and "hunter2" not in r.stdout, r
    r = m.execute("su nobody -s /bin/sh -c 'ls /run/svinit'")
    assert r.rc != 0, r
    # the README's way for a service that drops privileges: envdir first, then setuidgid/su
    out = m.succeed("envdir /run/svinit/env su nobody -s /bin/sh -c 'id -un; echo $DB_PASSWORD'")
    assert out.split() == ["nobody", "hunter2"]


ODD = ["my service", "star*", "[x]"]


TICKER = """exec 2>&1
trap 'echo "$0 stopping"; exit 0' TERM
while :; do echo tick; sleep 0.1 & wait $!; done"""


def test_service_names_with_spaces_and_glob_characters(svinit_container_factory, tmp_path):
    """daemontools allows any name: boot, the shutdown's order and runlevels handle them as words."""
    volumes = {}
    for name in ODD:
        d = make_service(
            tmp_path / "services",
            name,
            TICKER,
            log="exec multilog t ./main",
        )
        volumes[str(d)] = {"bind": f"/service/{name}", "mode": "rw"}
    levels = tmp_path / "runlevels"
    (levels / "default").mkdir(parents=True)
    (levels / "other").mkdir()
    (levels / "default" / "my service").symlink_to("/service/my service")
    (levels / "other" / "star*").symlink_to("/service/star*")
    volumes[str(levels)] = {"bind": "/etc/svinit/runlevels", "mode": "ro"}
    m = svinit_container_factory(volumes=volumes, wait=False)
    m.wait_until_succeeds("svstat '/service/my service' | grep -q ': up '")
    m.wait_until_succeeds("svstat '/service/[x]' '/service/star*/log' | grep -c ': up ' | grep -qx 2")
    assert ": down " in m.succeed("svstat '/service/star*'"), "not in the boot runlevel"
    m.succeed("runlevel other")
    m.wait_until_succeeds("svstat '/service/star*' | grep -q ': up '")
    m.wait_until_succeeds("svstat '/service/my service' | grep -q ': down '")
    r = m.shutdown()
    assert r.exit_code == 0, m.logs()
    for name in ["star*", "[x]"]:
        d = tmp_path / "services" / name
        assert (d / "log" / "main" / "current").read_text().splitlines()[-1].endswith("./run stopping"), name
        svc = (d / "supervise" / "status").read_bytes()[:12]
        log = (d / "log" / "supervise" / "status").read_bytes()[:12]
        assert svc < log, f"{name} went down after its logger"
    assert "warning" not in m.logs() and "error" not in m.logs(), m.logs()
