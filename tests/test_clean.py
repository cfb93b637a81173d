"""svinit.leftovers and `svinit clean`: what a harness run starts is marked (labels, QEMU's name and pid
file, records of its temporary directories), and what a SIGKILLed run left is removed for real (its
container, a QEMU-named process holding its pid file, its directories) while a live run's, an unlabelled
container and a process that is no QEMU survive; a killed run's Docker network goes too, a live run's
stays."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker.errors
import pytest

from svinit import cli, leftovers
from svinit.build import build_vm, vm_dir
from svinit.container import LABEL, ContainerMachine
from svinit.leftovers import OWNER_LABEL, PIDFILE, harness_qemu, owner_alive
from svinit.network import Network
from svinit.qemu.machine import QemuMachine

#: `svinit clean` removes what any dead run left, test_parallel's killed worker's too: under
#: `pytest -n N --dist loadgroup` the two modules run on one worker, one after the other
pytestmark = pytest.mark.xdist_group("leftovers")


@pytest.fixture
def harness_dir(tmp_path, monkeypatch) -> Path:
    """A harness directory of the test's own: the host's (a CI's live runs) is not looked at."""
    d = tmp_path / "harness"
    monkeypatch.setenv("SVINIT_HARNESS_DIR", str(d))
    return d


def test_qemu_is_named_and_writes_a_pid_file_in_its_recorded_state_dir(harness_dir, tmp_path):
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"")
    m = QemuMachine(kernel, accel="tcg")
    argv = m.argv()
    assert ["-pidfile", str(m.state_dir / PIDFILE)] == argv[argv.index("-pidfile") :][:2]
    assert argv[argv.index("-name") + 1] == f"svinit-{m.state_dir.name},process=svinit-qemu"
    record = json.loads((harness_dir / f"{m.state_dir.name}.json").read_text())
    assert record["path"] == str(m.state_dir) and owner_alive(record["owner"]) is True
    m.close()
    assert not m.state_dir.exists() and not list(harness_dir.iterdir())


def test_owners():
    assert owner_alive(leftovers.owner()) is True
    assert owner_alive(f"{leftovers.socket.gethostname()}:{os.getpid()}:1") is False  # a reused pid
    assert owner_alive("another-host:1:1") is None


def fake_qemu(tmp_path: Path, pidfile: Path) -> list[str]:
    """A process whose executable is named qemu-system-test, with `-pidfile PIDFILE` on its command line,
    that writes its pid there (as QEMU does): a copy of Python."""
    exe = tmp_path / "qemu-system-test"
    if not exe.exists():
        shutil.copy(os.path.realpath(sys.executable), exe)
    code = "import os,sys,time; open(sys.argv[2],'w').write(str(os.getpid())); time.sleep(120)"
    return [str(exe), "-c", code, "-pidfile", str(pidfile)]


KILLED_RUN = """
import json, subprocess, sys, time
from pathlib import Path
from svinit.container import ContainerMachine
from svinit.leftovers import PIDFILE, make_temp_dir
from svinit.network import Network
m = ContainerMachine(sys.argv[1], name=sys.argv[2])
net = Network("lan")
net.join_container(m)
m.start()
state = make_temp_dir("svinit-qemu-")
(state / "root.img").write_bytes(b"disk")
qemu = json.loads(sys.argv[3]) + [str(state / PIDFILE)]
subprocess.Popen(qemu, start_new_session=True)
decoy = make_temp_dir("svinit-decoy-")
sleep = subprocess.Popen(["sleep", "120"], start_new_session=True)
(decoy / PIDFILE).write_text(str(sleep.pid))
while not (state / PIDFILE).exists():
    time.sleep(0.05)
left = {"state": str(state), "decoy": str(decoy), "sleep": sleep.pid, "net": net.docker_network.name}
print(json.dumps(left), flush=True)
time.sleep(120)
"""


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_clean_removes_what_a_killed_run_left_and_nothing_else(
    svinit_image, svinit_docker, harness_dir, tmp_path, capsys
):
    name = f"svinit-test-killed-{os.getpid()}"
    # the fake QEMU's argv without its pid file (which the killed run appends)
    qemu = fake_qemu(tmp_path, Path("/x"))[:-1]
    run = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, svinit_image, name, json.dumps(qemu)],
        stdout=subprocess.PIPE,
        text=True,
    )
    unlabelled = svinit_docker.containers.run(
        svinit_image, detach=True, name=f"svinit-test-plain-{os.getpid()}"
    )
    live = ContainerMachine(svinit_image, client=svinit_docker, name=f"svinit-test-live-{os.getpid()}")
    live_net = Network("live")
    live_net.join_container(live)
    sleep_pid = None
    try:
        left = json.loads(run.stdout.readline())
        run.send_signal(signal.SIGKILL)
        run.wait()
        state, decoy, sleep_pid, net = Path(left["state"]), Path(left["decoy"]), left["sleep"], left["net"]
        qemu_pid = int((state / PIDFILE).read_text())
        live.start()
        killed = svinit_docker.containers.get(name)
        assert killed.labels[LABEL] == "1" and owner_alive(killed.labels[OWNER_LABEL]) is False
        assert harness_qemu(state / PIDFILE) == qemu_pid and harness_qemu(decoy / PIDFILE) is None

        assert cli.main(["clean", "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert f"would remove container {name}" in out and f"would remove QEMU process {qemu_pid}" in out
        assert f"would remove network {net}" in out
        assert state.exists() and alive(qemu_pid) and svinit_docker.containers.get(name)
        assert svinit_docker.networks.get(net).attrs["Labels"][LABEL] == "1"

        t0 = time.monotonic()
        assert cli.main(["clean"]) == 0
        took = time.monotonic() - t0
        out = capsys.readouterr().out
        assert f"removed container {name} ({killed.short_id}" in out
        assert f"removed QEMU process {qemu_pid} (svinit-qemu, {state / PIDFILE})" in out
        assert f"removed directory {state}" in out and f"removed directory {decoy}" in out
        assert f"kept container {live.container.name}: its run" in out
        assert f"removed network {net}" in out and f"kept network {live_net.docker_network.name}" in out
        with pytest.raises(docker.errors.NotFound):
            svinit_docker.networks.get(net)
        with pytest.raises(docker.errors.NotFound):
            svinit_docker.containers.get(name)
        assert not alive(qemu_pid) and not state.exists() and not decoy.exists()
        assert alive(sleep_pid), "a process that is no QEMU is never killed"
        unlabelled.reload()
        live.container.reload()
        assert unlabelled.status == "running" and live.container.status == "running"
        assert not list(harness_dir.iterdir()), "the records go with their directories"
        assert took < 10, took
        assert cli.main(["clean"]) == 0
        assert "nothing to remove" in capsys.readouterr().out
    finally:
        if run.poll() is None:
            run.kill()
        if sleep_pid:
            os.kill(sleep_pid, signal.SIGKILL)
        unlabelled.remove(force=True)
        live.close()
        live_net.close()
        try:
            svinit_docker.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass


PREFIX_TEST = """
from svinit.container import LABEL

def test_named(svinit_container_factory):
    a, b = svinit_container_factory(wait=False), svinit_container_factory(wait=False, name="mine")
    assert a.container.name.startswith("ci-job-7-") and a.container.name.endswith("-1"), a.container.name
    assert b.container.name == "mine"
    assert a.container.labels[LABEL] == "1" and b.container.labels[LABEL] == "1"
"""


@pytest.mark.slow
def test_the_plugins_name_prefix(pytester, svinit_image):
    pytester.makepyfile(PREFIX_TEST)
    result = pytester.runpytest_subprocess(
        "--svinit-image", svinit_image, "--svinit-name-prefix", "ci-job-7", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)


def test_a_deep_tmpdir_still_gives_qemu_socket_paths_it_can_bind(harness_dir, tmp_path, monkeypatch):
    """A pytest-xdist worker's tmp_path is deep: QEMU refused its QMP socket there ("UNIX socket path
    ... is too long", 108 bytes at most) and the VM fixture failed. The state directory then goes where
    the paths fit, recorded as ever; QEMU starts and answers QMP."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setenv("TMPDIR", str(deep))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile reads $TMPDIR again
    m = QemuMachine.from_build(build_vm(vm_dir("initramfs")), accel="tcg")
    try:
        assert len(str(m.state_dir / "harness.sock")) <= leftovers.SOCKET_PATH_MAX, m.state_dir
        assert (harness_dir / f"{m.state_dir.name}.json").exists()
        m.start()  # QEMU binds both sockets and answers QMP; then the power cut, no boot waited for
        assert m.qmp is not None and m.qmp.query_status()["status"] in ("running", "paused")
    finally:
        m.crash()
        m.close()
    assert not m.state_dir.exists() and not list(harness_dir.iterdir())
