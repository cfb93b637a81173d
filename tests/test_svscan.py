"""svscan, not as process 1: daemontools 0.76 behaviour and svinit's additions (control FIFO, ordered stop).

Every svscan runs in a fresh PID namespace (under sh), so a test leaves nothing behind.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.util import cpu_seconds, make_service, svstatus, wait_for, write_exec


def test_one_supervise_per_directory_with_a_log_pipe(scanner, scandir, tmp_path):
    out = tmp_path / "log.out"
    make_service(scandir, "a", "exec sleep 1000")
    make_service(scandir, "b", "echo hello from b; exec sleep 1000", log=f"exec cat > {out}")
    make_service(scandir, ".hidden", "exec sleep 1000")
    (scandir / "afile").write_text("not a service\n")
    s = scanner(scandir)
    wait_for(lambda: set(s.supervisors()) == {"a", "b", "b/log"}, what="three supervise processes")
    wait_for(lambda: out.exists() and out.read_text() == "hello from b\n", what="b's output in its log")
    assert not (scandir / ".hidden" / "supervise").exists()
    for name in ("a", "b", "b/log"):
        assert wait_for(lambda: svstatus(scandir / name)[1] == "r", what=f"{name} up")


def test_supervise_is_found_through_path(scanner, scandir, tmp_path, init_bin):
    wrap = tmp_path / "wrap"
    calls = tmp_path / "calls"
    write_exec(wrap / "supervise", f'#!/bin/sh\necho "$PWD $*" >> {calls}\nexec {init_bin}/supervise "$@"\n')
    make_service(scandir, "a", "exec sleep 1000", log="exec cat > /dev/null")
    scanner(scandir, path=[wrap])
    wait_for(lambda: calls.exists() and len(calls.read_text().splitlines()) == 2, what="the wrapper twice")
    # the same invocations as djb's svscan: `supervise a` in the scan directory, `supervise log` in a
    assert sorted(calls.read_text().splitlines()) == sorted([f"{scandir} a", f"{scandir}/a log"])


def test_rescan_periodic_and_on_demand(scanner, scandir):
    make_service(scandir, "a", "exec sleep 1000")
    s = scanner(scandir)
    wait_for(lambda: "a" in s.supervisors())
    make_service(scandir, "late", "exec sleep 1000")
    wait_for(lambda: "late" in s.supervisors(), timeout=7, what="the 5-second rescan")
    for how, name in [(signal.SIGALRM, "alrm"), (signal.SIGHUP, "hup"), (b"a", "ctl")]:
        make_service(scandir, name, "exec sleep 1000")
        if isinstance(how, bytes):
            s.control(how)
        else:
            os.kill(s.pid, how)
        wait_for(lambda: name in s.supervisors(), timeout=3, what=f"a rescan on {how!r}")


def test_exited_supervise_restarts_at_most_once_a_second(scanner, scandir, tmp_path):
    wrap = tmp_path / "wrap"
    starts = tmp_path / "starts"
    write_exec(wrap / "supervise", f"#!/bin/sh\necho $1 >> {starts}\nexit 0\n")
    make_service(scandir, "a", "exit 0")
    make_service(scandir, "b", "exit 0")
    s = scanner(scandir, path=[wrap])
    wait_for(lambda: starts.exists())
    time.sleep(4.5)
    lines = starts.read_text().splitlines()
    for name in ("a", "b"):
        assert 4 <= lines.count(name) <= 6, f"{name}: {lines.count(name)} starts in 4.5 s"
    assert cpu_seconds(s.pid) < 0.5


def test_killed_supervise_is_restarted(scanner, scandir):
    make_service(scandir, "a", "exec sleep 1000")
    s = scanner(scandir)
    old = wait_for(lambda: s.supervisors().get("a"))
    wait_for(lambda: svstatus(scandir / "a")[0])
    os.kill(old, signal.SIGKILL)
    new = wait_for(
        lambda: s.supervisors().get("a") not in (None, old) and s.supervisors()["a"],
        timeout=3,
        what="a new supervise",
    )
    assert new != old


def test_the_1001st_service_is_refused_with_a_message(scanner, scandir):
    for i in range(1001):
        make_service(scandir, f"s{i:04d}", "exec sleep 1000", down=True)
    s = scanner(scandir)
    wait_for(lambda: "running too many services" in s.output(), timeout=20, what="the refusal")
    wait_for(lambda: len(s.supervisors()) == 1000, timeout=20, what="1000 supervise processes")
    refused = [line for line in s.output().splitlines() if "running too many services" in line]
    assert len(refused) == 1 and "(the limit is 1000)" in refused[0]
    time.sleep(5.5)  # the next scan refuses the same one without saying it again
    assert s.output().count("running too many services") == 1
    assert len(s.supervisors()) == 1000


def test_removed_service_keeps_its_supervise(scanner, scandir, tmp_path):
    make_service(scandir, "a", "exec sleep 1000")
    s = scanner(scandir)
    sup = wait_for(lambda: s.supervisors().get("a"))
    (scandir / "a").rename(tmp_path / "gone")
    s.control(b"a")
    time.sleep(0.5)
    assert sup in s.supervisors().values(), "svscan must leave a removed service's supervise alone"


def test_term_stops_services_then_loggers_then_exits_0(scanner, scandir, tmp_path):
    out = tmp_path / "log.out"
    make_service(
        scandir,
        "a",
        "trap 'echo service a stopping; exit 0' TERM\necho service a up\nwhile :; do sleep 0.05; done",
        log=f'while IFS= read -r l; do echo "$l" >> {out}; done; echo "logger saw end of file" >> {out}',
    )
    make_service(scandir, "stubborn", "trap '' TERM\nwhile :; do sleep 0.05; done")
    s = scanner(scandir)
    wait_for(lambda: out.exists() and "service a up" in out.read_text())
    wait_for(lambda: svstatus(scandir / "stubborn")[1] == "r")
    os.kill(s.pid, signal.SIGTERM)
    wait_for(lambda: "svscan exited 0" in s.output(), timeout=15, what="svscan to exit 0")
    assert out.read_text().splitlines() == ["service a up", "service a stopping", "logger saw end of file"]
    assert svstatus(scandir / "stubborn")[0] == 0


def test_control_fifo_exit_codes_and_garbage(scanner, scandir):
    make_service(scandir, "a", "exec sleep 1000")
    s = scanner(scandir)
    wait_for(lambda: svstatus(scandir / "a")[1] == "r")
    letters = set(b"afhtx0123456789")
    s.control(bytes(b for b in os.urandom(3000) if b not in letters)[:1000])
    s.control(b"a")
    time.sleep(0.3)
    assert "svscan exited" not in s.output()
    s.control(b"7x")
    wait_for(lambda: "svscan exited 7" in s.output(), what="exit code 7")


def test_control_t_stops_in_order_then_exits_with_the_code(scanner, scandir):
    make_service(scandir, "a", "exec sleep 1000", log="exec cat > /dev/null")
    s = scanner(scandir)
    wait_for(lambda: svstatus(scandir / "a" / "log")[1] == "r")
    s.control(b"3t")
    wait_for(lambda: "svscan exited 3" in s.output(), timeout=10)
    assert svstatus(scandir / "a")[0] == 0 and svstatus(scandir / "a" / "log")[0] == 0


def test_control_f_freezes_svscan_no_supervise_starts_or_restarts(scanner, scandir):
    make_service(scandir, "a", "exec sleep 1000", log="exec cat > /dev/null")
    s = scanner(scandir)
    wait_for(lambda: set(s.supervisors()) == {"a", "a/log"}, what="two supervise processes")
    old = s.supervisors()["a"]
    s.control(b"f")
    time.sleep(0.2)
    make_service(scandir, "late", "exec sleep 1000")
    s.control(b"a")
    os.kill(old, signal.SIGKILL)
    time.sleep(1.5)  # past the second between two starts, and a rescan
    assert set(s.supervisors()) == {"a/log"}, "frozen: no supervise started, none restarted"
    s.control(b"5x")  # it still ends when told
    wait_for(lambda: "svscan exited 5" in s.output(), what="exit code 5")


def test_usage_errors(init_bin, tmp_path):
    import subprocess

    proc = subprocess.run([init_bin / "svscan", tmp_path / "missing"], capture_output=True, text=True)
    assert proc.returncode == 111
    assert f"svscan: fatal: unable to chdir to {tmp_path}/missing: file does not exist" in proc.stderr


@pytest.mark.parametrize("svscan_impl,supervise_impl", [("ours", "djb"), ("djb", "ours")])
def test_interoperates_with_djb(scanner, scandir, tmp_path, djb_bin, svscan_impl, supervise_impl):
    """Our svscan runs djb's supervise, and djb's svscan runs ours; djb's svstat reads either."""
    import subprocess

    out = tmp_path / "log.out"
    make_service(scandir, "a", "echo line one; exec sleep 1000", log=f"exec cat > {out}")
    s = scanner(scandir, svscan=svscan_impl, supervise=supervise_impl)
    wait_for(lambda: out.exists() and out.read_text() == "line one\n", timeout=8, what="a's line in its log")
    st = subprocess.run(
        [djb_bin / "svstat", scandir / "a", scandir / "a" / "log"], capture_output=True, text=True
    ).stdout.splitlines()
    assert all(": up (pid " in line for line in st), st
    if svscan_impl == "ours":
        os.kill(s.pid, signal.SIGTERM)
        wait_for(
            lambda: "svscan exited 0" in s.output(), timeout=10, what="ordered stop with djb's supervise"
        )


WRITER = """
import os, signal, sys
stop = False
def term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, term)
i = 0
while not stop:
    os.write(1, b"%d\\n" % i)  # one line per write(2), as a line-at-a-time service does
    i += 1
open(sys.argv[1], "w").write(str(i))
"""


def logged_numbers(logdir) -> list[int]:
    nums = []
    for f in sorted(logdir.iterdir()):
        if f.name == "current" or f.name.startswith("@"):
            for line in f.read_text().splitlines():
                stamp, _, text = line.partition(" ")
                if f.name.endswith(".u") and not (stamp.startswith("@") and text.isdigit()):
                    continue  # a killed multilog's last, torn line: the next multilog writes it whole
                nums.append(int(text))
    return nums


def test_logger_killed_while_its_service_writes_loses_no_line(scanner, scandir, tmp_path):
    import sys

    count = tmp_path / "count"
    (tmp_path / "writer.py").write_text(WRITER)
    make_service(
        scandir,
        "seq",
        f"exec {sys.executable} {tmp_path}/writer.py {count}",
        log="exec multilog t s16777215 n100 ./main",
    )
    s = scanner(scandir)
    logsv = scandir / "seq" / "log"
    for _ in range(6):
        pid = wait_for(lambda: svstatus(logsv)[0] if svstatus(logsv)[1] == "r" else 0, 5, what="multilog up")
        time.sleep(0.4)
        os.kill(s.ns.host_pid(pid), signal.SIGKILL)
        wait_for(lambda: svstatus(logsv)[0] != pid, 5, what="multilog restarted")
    time.sleep(0.5)
    os.kill(s.pid, signal.SIGTERM)
    wait_for(lambda: "svscan exited 0" in s.output(), 20, what="the ordered stop")
    written = int(count.read_text())
    seen = set(logged_numbers(logsv / "main"))
    missing = [n for n in range(written) if n not in seen]
    assert written > 10000
    assert not missing, f"{len(missing)} of {written} lines lost, first {missing[:5]}"


def test_the_lost_line_check_can_fail(tmp_path):
    d = tmp_path / "main"
    d.mkdir()
    (d / "current").write_text("".join(f"@400000000000000000000000 {n}\n" for n in range(100) if n != 57))
    seen = set(logged_numbers(d))
    assert [n for n in range(100) if n not in seen] == [57]
