"""svinit:alpine under the real dockerd, through the plugin's fixtures: boot, docker stop, CMD exit codes,
stubborn, crashing and zombie-making services, the environment, a read-only root, bind-mounted services;
and the machine's verbs, the testinfra host, and the plugin itself (pytester)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from svinit.evidence import collect
from svinit.machine import CommandFailed, Timeout
from svinit.svstat import SvService, parse_status
from svinit.verdicts import verdict
from tests.util import make_service

pytestmark = pytest.mark.slow

DEMO = ["crond", "crond/log", "heartbeat", "heartbeat/log", "svscan-log", "syslogd", "syslogd/log"]


def mount(tmp_path: Path, name: str, run: str, log: str | None = None) -> dict[str, dict[str, str]]:
    """A service directory made on the host, as a bind mount on /service/NAME (docker run -v)."""
    d = make_service(tmp_path / "services", name, run, log)
    return {str(d): {"bind": f"/service/{name}", "mode": "rw"}}


def test_boot_brings_every_service_and_logger_up(svinit_container):
    st = svinit_container.statuses()
    assert sorted(st) == DEMO
    assert all(s.up for s in st.values()), st
    assert svinit_container.succeed("cat /proc/1/comm").strip() == "svscan"
    assert "booted (container" in svinit_container.logs()


# A service that writes sequence numbers as fast as it can until TERM; the count it wrote goes to ./count.
# A write interrupted by TERM writes nothing (a pipe write under PIPE_BUF is all or nothing), and then i
# is not counted; sh's complaint goes to ./err, not to the log.
SEQ = """exec 2>./err
trap 'stop=1' TERM
i=0
stop=
while [ -z "$stop" ]; do
  echo "$i" && i=$((i + 1))
done
echo "$i" > ./count"""


def test_docker_stop_exits_0_and_loses_no_log_line(svinit_container_factory, tmp_path):
    log = "exec multilog t s16777215 n100 ./main"  # large files, kept: every line stays to be counted
    m = svinit_container_factory(volumes=mount(tmp_path, "seq", SEQ, log=log))
    logdir = tmp_path / "services" / "seq" / "log" / "main"
    m.wait_until_succeeds("test $(wc -c < /service/seq/log/main/current) -gt 100000")
    ev = collect(m)
    v = verdict(ev)
    assert v.clean, v.table()
    assert ev.exit_code == 0 and ev.stop_seconds < 3
    written = int((tmp_path / "services" / "seq" / "count").read_text())
    lines = [f.read_text() for f in sorted(logdir.glob("@*.s"))] + [(logdir / "current").read_text()]
    logged = [int(line.split(" ", 1)[1]) for line in "".join(lines).splitlines()]
    assert written > 10000
    assert logged == list(range(written)), f"{written} written, {len(logged)} logged"


@pytest.mark.parametrize(
    "cmd,code",
    [
        ("exit 7", 7),
        ("exit 0", 0),
        ("kill -KILL $$", 128 + 9),
        ("kill -USR1 $$", 128 + 10),
    ],
)
def test_cmd_exit_code_is_the_containers(svinit_container_factory, cmd, code):
    m = svinit_container_factory(["sh", "-c", cmd], wait=False)
    assert m.wait(timeout=15) == code
    assert "done in" in m.logs() and f"(exit code {code})" in m.logs()


def test_cmd_runs_once_services_are_up_and_svinit_run_passes_its_code(svinit_image):
    proc = subprocess.run(
        [sys.executable, "-m", "svinit.cli", "run", "--image", svinit_image, "-e", "FOO=bar", "--"]
        + ["sh", "-c", 'svstat /service/heartbeat; echo "FOO=$(cat /run/svinit/env/FOO)"; exit 3'],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    assert ": up (pid " in proc.stdout and "FOO=bar" in proc.stdout


def test_cmd_as_a_user_does_not_wait_for_a_service_that_fails(svinit_image):
    """As a user, syslogd cannot start (it binds /dev/log) and supervise starts it again every second: it
    is up for moments only. CMD runs at once, with a warning naming it. Before, CMD waited until a poll
    happened to land on one of those moments: 1.3 s, 5.4 s, 9.4 s, 26 s (or 30 s and a warning)."""
    for _ in range(3):
        t0 = time.monotonic()
        r = subprocess.run(
            ["docker", "run", "--rm", "--user", "1000:1000", svinit_image, "sh", "-c", "exit 4"],
            capture_output=True,
            text=True,
        )
        took = time.monotonic() - t0
        assert r.returncode == 4 and took < 10, (took, r.stderr)
        assert "svinit: warning: not up: syslogd (its run ended or cannot start: see its log)" in r.stderr


def test_svinit_run_read_only_and_build_is_cached(svinit_image, capsys):
    from svinit import cli

    proc = subprocess.run(
        [sys.executable, "-m", "svinit.cli", "run", "--image", svinit_image, "--read-only"]
        + ["--", "sh", "-c", "cat /run/svinit/scandir; touch /etc/x"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and proc.stdout.startswith("/run/svinit/service\n"), proc.stderr
    assert "Read-only file system" in proc.stderr
    if svinit_image == "svinit:alpine":
        assert cli.main(["build", "container"]) == 0
        assert capsys.readouterr().out.startswith("svinit:alpine sha256:")


def test_docker_stop_during_the_boot_stage_stops_cleanly(svinit_container_factory, tmp_path):
    """Process 1 drops a signal it has no handler for: /sbin/init holds it while stage 1 runs (here a
    drop-in that takes a second) and hands it to svscan, which acts on it at once."""
    dropin = tmp_path / "50-slow.sh"
    dropin.write_text("# provides: slow\ntouch /tmp/in-dropin\nsleep 1\n")
    vol = {str(dropin): {"bind": "/etc/svinit/boot.d/50-slow.sh", "mode": "ro"}}
    m = svinit_container_factory(volumes=vol, wait=False, stop_timeout=2)
    m.wait_until_succeeds("test -e /tmp/in-dropin", timeout=5)
    r = m.shutdown()
    assert (r.exit_code, r.seconds < 2) == (0, True), r


def test_service_ignoring_term_is_killed_after_the_grace(svinit_container_factory, tmp_path):
    stubborn = "trap '' TERM\necho stubborn up\nwhile :; do sleep 0.1; done"
    m = svinit_container_factory(
        environment={"SVINIT_GRACE": "1"}, volumes=mount(tmp_path, "stubborn", stubborn)
    )
    r = m.shutdown()
    assert r.exit_code == 0
    assert 1.0 <= r.seconds < 4, r
    assert "still running after 1 s, killing:" in m.logs()
    st = parse_status((tmp_path / "services" / "stubborn" / "supervise" / "status").read_bytes())
    assert not st.up and st.term_signal == 9


def test_crashing_service_restarts_once_a_second(svinit_container_factory, tmp_path):
    m = svinit_container_factory(
        volumes=mount(tmp_path, "crash", "echo start >> ./starts\nexit 3"), wait=False
    )
    starts = tmp_path / "services" / "crash" / "starts"
    m.wait_until_succeeds("test -s /service/crash/starts")
    t0, n0 = time.monotonic(), len(starts.read_text().splitlines())
    m.wait_until_succeeds(f"test $(wc -l < /service/crash/starts) -ge {n0 + 3}", timeout=10)
    elapsed = time.monotonic() - t0
    assert 2.5 < elapsed < 6, f"3 restarts took {elapsed:.2f} s: supervise waits 1 s between starts"
    st = SvService(m.host, "crash").status
    assert st.exit_code == 3 and st.want == "u"
    assert m.shutdown().exit_code == 0


# Each loop forks a subshell that starts a sleep and exits at once: the sleep is orphaned to process 1,
# which must reap it when it ends.
STORM = """i=0
while [ $i -lt 400 ]; do
  (sleep 0.2 &)
  i=$((i + 1))
done
touch ./stormed
exec sleep 100000"""


def test_a_zombie_storm_is_reaped(svinit_container_factory, tmp_path):
    m = svinit_container_factory(volumes=mount(tmp_path, "storm", STORM))
    m.wait_until_succeeds("test -e /service/storm/stormed", timeout=20)
    # neither a zombie nor an orphan left (the grep's own line ends in "0.2$", not "0.2")
    left = "ps -o stat,args | grep -c -e '^Z' -e ' sleep 0.2$'"
    m.wait_until_succeeds(f'test "$({left})" -eq 0', timeout=5)
    assert m.service_status("storm").up
    assert m.shutdown().exit_code == 0


def test_environment_reaches_a_service_through_envdir(svinit_container_factory, tmp_path):
    run = "exec envdir /run/svinit/env sh -c 'echo \"FOO=$FOO\" > /tmp/foo.out; exec sleep 100000'"
    m = svinit_container_factory(environment={"FOO": "bar"}, volumes=mount(tmp_path, "envuser", run))
    assert m.succeed("cat /run/svinit/env/FOO") == "bar\n"
    assert m.wait_until_succeeds("cat /tmp/foo.out") == "FOO=bar\n"


def test_read_only_root_with_a_tmpfs_on_run(svinit_container_factory):
    m = svinit_container_factory(read_only=True, tmpfs={"/run": ""})
    assert m.scandir() == "/run/svinit/service"
    assert sorted(m.statuses()) == DEMO
    assert SvService(m.host, "heartbeat").is_running
    m.fail("touch /etc/x")
    r = m.shutdown()
    assert r.exit_code == 0 and r.seconds < 3, r
    assert "/service is read-only" in m.logs() and "done in" in m.logs()


def test_a_service_bind_mounted_at_run_time_runs(svinit_container_factory, tmp_path):
    vols = mount(
        tmp_path, "hello", "echo hello from the host\nexec sleep 100000", log="exec multilog t ./main"
    )
    m = svinit_container_factory(volumes=vols)
    assert m.wait_for_service("hello").up and m.wait_for_service("hello/log").up
    m.wait_until_succeeds("grep -q 'hello from the host' /service/hello/log/main/current")
    assert m.shutdown().exit_code == 0
    current = tmp_path / "services" / "hello" / "log" / "main" / "current"
    assert current.read_text().endswith(" hello from the host\n")
    assert current.stat().st_mode & 0o777 == 0o744


# The machine's verbs.


def test_succeed_and_fail(svinit_container):
    m = svinit_container
    assert m.succeed("echo one", "echo two") == "one\ntwo\n"
    assert m.fail("echo no; exit 3") == "no\n"
    with pytest.raises(CommandFailed) as e:
        m.succeed("echo out; echo err >&2; exit 4")
    assert (e.value.cmd, e.value.rc, e.value.stdout, e.value.stderr) == (
        "echo out; echo err >&2; exit 4",
        4,
        "out\n",
        "err\n",
    )
    assert "exited 4, expected 0" in str(e.value) and "stderr: err" in str(e.value)
    with pytest.raises(CommandFailed, match="exited 0, expected non-zero"):
        m.fail("true")
    t0 = time.monotonic()
    r = m.execute("echo started; (sleep 30 &); sleep 30", timeout=0.5)
    assert (r.rc, r.stdout, r.stderr) == (137, "started\n", "")
    assert time.monotonic() - t0 < 2
    m.wait_until_fails('pgrep -x sleep -P 1 | grep -v "$(cat /run/svinit/front.pid)"', timeout=2)


def test_waits(svinit_container):
    m = svinit_container
    m.succeed("(sleep 0.3; echo ready > /tmp/flag) >/dev/null 2>&1 &")
    assert m.wait_until_succeeds("cat /tmp/flag", timeout=5) == "ready\n"
    m.succeed("(sleep 0.3; rm /tmp/flag) >/dev/null 2>&1 &")
    m.wait_until_fails("test -e /tmp/flag", timeout=5)
    t0 = time.monotonic()
    with pytest.raises(Timeout, match=r"stdout 'nope\\n'"):
        m.wait_until_succeeds("echo nope; false", timeout=0.5)
    assert time.monotonic() - t0 < 2
    assert m.wait_for_service("syslogd").up
    with pytest.raises(Timeout, match="svstat last said: .*supervise not running|unable to chdir"):
        m.wait_for_service("nosuch", timeout=0.3)


def test_timeout_multiplier_scales_the_waits(svinit_container_factory):
    m = svinit_container_factory(timeout_multiplier=3)
    t0 = time.monotonic()
    with pytest.raises(Timeout, match="after 0.6 s"):
        m.wait_until_succeeds("false", timeout=0.2)
    assert time.monotonic() - t0 >= 0.6


def test_shutdown_logs_and_files_after_the_stop(svinit_container):
    m = svinit_container
    r = m.shutdown()
    assert r.exit_code == 0 and r.seconds < 3
    assert m.shutdown() is r
    assert not m.is_running()
    assert "poweroff: done in" in m.logs()
    assert parse_status(m.read_file("/service/heartbeat/supervise/status")).state == "d"
    assert m.read_file("/service/heartbeat/log/main/current").endswith(b"\n")
    with pytest.raises(FileNotFoundError):
        m.read_file("/service/nosuch")


def test_testinfra_host(svinit_container, svinit_host):
    assert svinit_host.backend.NAME == "docker"
    assert svinit_host.file("/etc/alpine-release").exists
    assert svinit_host.file("/sbin/init").is_file
    assert svinit_host.check_output("cat /proc/1/comm") == "svscan"
    assert svinit_host.run_expect([3], "exit 3").rc == 3
    assert SvService(svinit_host, "syslogd").is_running


# The plugin, in a pytest of its own.

PLUGIN_TEST = """
from svinit.svstat import SvService

def test_uses_the_fixtures(svinit_container, svinit_host):
    assert svinit_container.wait_for_service("heartbeat").up
    assert SvService(svinit_host, "heartbeat").is_running

def test_fails_with_the_logs(svinit_container):
    svinit_container.succeed("exit 9")
"""


def test_plugin_fixtures_and_the_failure_report(pytester, svinit_image):
    pytester.makepyfile(PLUGIN_TEST)
    result = pytester.runpytest_subprocess("--svinit-image", svinit_image, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*exit 9* exited 9, expected 0*", "*svinit: output of*", "*booted (container*"]
    )


def test_plugin_fails_on_a_missing_image_and_never_pulls(pytester):
    pytester.makepyfile(PLUGIN_TEST)
    result = pytester.runpytest_subprocess("--svinit-image", "svinit-nosuch:1", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*image svinit-nosuch:1 is not present locally, and svinit never pulls*"])
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--svinit-image*", "*--svinit-timeout-multiplier*"])


ARTIFACTS_TEST = """
import pytest

@pytest.fixture
def broken(svinit_container):
    raise RuntimeError("the fixture breaks")

def test_setup_fails(broken):
    pass

def test_passes(svinit_container):
    svinit_container.succeed("true")

def test_fails(svinit_container):
    assert False, "on purpose"

def test_without_machines():
    assert False
"""


def test_plugin_artifacts_and_junit(pytester, svinit_image):
    import xml.etree.ElementTree as ET

    pytester.makepyfile(test_outside=ARTIFACTS_TEST)
    arts, junit = pytester.path / "arts", pytester.path / "junit.xml"
    args = ["--svinit-image", svinit_image, "-p", "no:cacheprovider"]
    result = pytester.runpytest_subprocess(*args, "--svinit-artifacts", "arts", "--junitxml", junit)
    result.assert_outcomes(passed=1, failed=2, errors=1)
    result.stdout.fnmatch_lines(["*svinit: artifacts*", f"*{arts}/test_outside.py_test_fails*"])
    # only the failing tests that used a machine have a folder (a fixture's failure too)
    assert sorted(p.name for p in arts.iterdir()) == [
        "test_outside.py_test_fails",
        "test_outside.py_test_setup_fails",
    ]
    verdict = json.loads((arts / "test_outside.py_test_setup_fails/verdict.json").read_text())
    assert verdict["phase"] == "setup" and "the fixture breaks" in verdict["longrepr"]
    folder = arts / "test_outside.py_test_fails"
    (machine,) = [p for p in folder.iterdir() if p.is_dir()]
    assert "svinit: booted (container" in (machine / "docker.log").read_text()
    verdict = json.loads((folder / "verdict.json").read_text())
    assert verdict["outcome"] == "failed" and verdict["phase"] == "call"
    assert "on purpose" in verdict["longrepr"]
    assert [m["folder"] for m in verdict["machines"]] == [machine.name]
    cases = {c.get("name"): c for c in ET.parse(junit).iter("testcase")}
    props = {p.get("name"): p.get("value") for p in cases["test_fails"].iter("property")}
    assert props["svinit_artifacts"] == str(folder)
    (tail_name,) = [n for n in props if n.startswith("svinit_console_tail:")]
    assert "svinit: booted (container" in props[tail_name] and len(props[tail_name].splitlines()) <= 20
    assert "svinit_artifacts" in {p.get("name") for p in cases["test_setup_fails"].iter("property")}
    assert not list(cases["test_passes"].iter("property"))
    assert not list(cases["test_without_machines"].iter("property"))

    # --svinit-artifacts-always: the passing test's too, without the console's lines
    result = pytester.runpytest_subprocess(
        *args, "-k", "passes", "--svinit-artifacts", "arts2", "--svinit-artifacts-always", "--junitxml", junit
    )
    result.assert_outcomes(passed=1, deselected=3)
    verdict = json.loads((pytester.path / "arts2/test_outside.py_test_passes/verdict.json").read_text())
    assert verdict["outcome"] == "passed"
    props = {p.get("name") for p in ET.parse(junit).iter("property")}
    assert props == {"svinit_artifacts"}
