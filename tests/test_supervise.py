"""supervise: daemontools 0.76 behaviour, svinit's additions, and bad input; real processes throughout.

Each test runs supervise under `sh` as process 1 of a fresh PID namespace, so nothing outlives a test and
supervise's own exit code is printed by that sh.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.util import PidNamespace, comm, cpu_seconds, make_service, svstatus, wait_for, write_exec

pytestmark = pytest.mark.usefixtures("have_unshare")


def status(svdir: Path) -> bytes:
    return (svdir / "supervise" / "status").read_bytes()


def pid_of(svdir: Path) -> int:
    return int.from_bytes(status(svdir)[12:16], "little")


def state_of(svdir: Path) -> str:
    return chr(status(svdir)[18])


def control(svdir: Path, letters: bytes) -> None:
    fd = os.open(svdir / "supervise" / "control", os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, letters)
    finally:
        os.close(fd)


class Supervised:
    """supervise DIR running under sh as process 1 of a new PID namespace."""

    def __init__(self, init_bin: Path, svdir: Path, log: Path):
        self.svdir = svdir
        self.ns = PidNamespace(
            [
                "sh",
                "-c",
                '"$1" "$2"; echo "supervise exited $?"; sleep 1000',
                "sh",
                str(init_bin / "supervise"),
                str(svdir),
            ],
            log,
        )

    def supervise_pid(self) -> int:
        from tests.util import children_of, comm

        kids = [p for p in children_of(self.ns.pid) if comm(p) == "supervise"]
        return kids[0] if kids else 0

    def output(self) -> str:
        return self.ns.output()


@pytest.fixture
def supervised(init_bin, tmp_path):
    made = []

    def start(svdir: Path) -> Supervised:
        s = Supervised(init_bin, svdir, tmp_path / f"out-{len(made)}.log")
        made.append(s)
        return s

    yield start
    for s in made:
        s.ns.close()


def test_starts_run_and_writes_a_djb_status_record(supervised, tmp_path):
    d = make_service(tmp_path, "a", "exec sleep 1000")
    s = supervised(d)
    pid = s.ns.host_pid(wait_for(lambda: pid_of(d), what="run to start"))
    st = status(d)
    assert len(st) == 23
    assert int.from_bytes(st[0:8], "big") >> 62 == 1  # a TAI64 label
    assert st[16] == 0 and st[17] == ord("u") and state_of(d) == "r"
    assert os.readlink(f"/proc/{pid}/exe").endswith("sleep")
    # run starts in a session of its own
    assert os.getsid(pid) == pid
    assert oct((d / "supervise" / "control").stat().st_mode & 0o7777) == "0o600"


def test_restarts_are_one_second_apart_and_cheap(supervised, tmp_path):
    d = make_service(tmp_path, "a", 'echo start >> "$0.count"; exit 0'.replace("$0", str(tmp_path / "a")))
    s = supervised(d)
    wait_for(lambda: (tmp_path / "a.count").exists(), what="first start")
    time.sleep(4.5)
    starts = len((tmp_path / "a.count").read_text().splitlines())
    assert 4 <= starts <= 6, f"{starts} starts in about 4.5 s"
    assert cpu_seconds(s.supervise_pid()) < 0.5


def test_down_file_and_control_letters(supervised, tmp_path):
    marker = tmp_path / "signals"
    d = make_service(
        tmp_path,
        "a",
        f"""
trap 'echo HUP >> {marker}' HUP
trap 'echo ALRM >> {marker}' ALRM
trap 'echo INT >> {marker}' INT
trap 'echo USR1 >> {marker}' USR1
trap 'echo USR2 >> {marker}' USR2
trap 'echo QUIT >> {marker}' QUIT
trap 'echo TERM >> {marker}; exit 0' TERM
touch {marker}.ready
while :; do sleep 0.05; done""",
        down=True,
    )
    s = supervised(d)
    wait_for(lambda: status(d)[17:18] == b"d", what="status with want down")
    assert pid_of(d) == 0 and state_of(d) == "d"
    control(d, b"u")
    pid = s.ns.host_pid(wait_for(lambda: pid_of(d), what="svc -u to start run"))
    wait_for(lambda: Path(f"{marker}.ready").exists(), what="run's traps set")  # a signal before: default
    for letter, name in [
        (b"h", "HUP"),
        (b"a", "ALRM"),
        (b"i", "INT"),
        (b"1", "USR1"),
        (b"2", "USR2"),
        (b"q", "QUIT"),
    ]:
        control(d, letter)
        wait_for(lambda: name in marker.read_text(), what=f"{name} from {letter!r}")
    control(d, b"p")
    wait_for(lambda: open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "T", what="paused")
    assert status(d)[16] == 1
    control(d, b"c")
    wait_for(lambda: status(d)[16] == 0, what="continued")
    control(d, b"d")
    wait_for(lambda: pid_of(d) == 0, what="down")
    assert marker.read_text().splitlines()[-1] == "TERM"
    assert state_of(d) == "d"
    # o: run once, not restarted
    control(d, b"o")
    pid = wait_for(lambda: pid_of(d), what="once")
    control(d, b"k")
    wait_for(lambda: pid_of(d) == 0, what="killed")
    time.sleep(1.5)
    assert pid_of(d) == 0
    assert (int.from_bytes(status(d)[19:23], "little") & 0x7F) == signal.SIGKILL


def test_x_makes_supervise_exit_once_down(supervised, tmp_path):
    d = make_service(tmp_path, "a", "exec sleep 1000")
    s = supervised(d)
    wait_for(lambda: pid_of(d))
    control(d, b"x")
    time.sleep(0.3)
    assert s.supervise_pid(), "x alone must not stop the service"
    control(d, b"d")
    wait_for(lambda: "supervise exited 0" in s.output(), what="supervise to exit")


def test_finish_gets_exit_code_and_signal(supervised, tmp_path):
    out = tmp_path / "finish.out"
    d = make_service(tmp_path, "a", "read x < /dev/null; exit 3", down=True)
    write_exec(d / "finish", f'#!/bin/sh\necho "$1 $2" >> {out}\n')
    supervised(d)
    wait_for(lambda: (d / "supervise" / "status").exists())
    control(d, b"o")
    wait_for(lambda: out.exists() and "3 0" in out.read_text(), what="finish after exit 3")
    (d / "run").write_text("#!/bin/sh\nexec sleep 1000\n")
    control(d, b"o")
    wait_for(lambda: pid_of(d))
    control(d, b"d")
    wait_for(lambda: "256 15" in out.read_text(), what="finish after TERM")


def test_term_stops_the_service_then_exits(supervised, tmp_path):
    marker, ready = tmp_path / "stopped", tmp_path / "ready"
    d = make_service(
        tmp_path, "a", f"trap 'echo bye > {marker}; exit 0' TERM\ntouch {ready}\nwhile :; do sleep 0.05; done"
    )
    s = supervised(d)
    pid = s.ns.host_pid(wait_for(lambda: pid_of(d)))
    wait_for(ready.exists, what="run's trap set")  # a TERM before it would end the shell by default
    os.kill(s.supervise_pid(), signal.SIGTERM)
    wait_for(lambda: "supervise exited 0" in s.output(), what="supervise to exit after TERM")
    assert marker.read_text() == "bye\n"
    assert not os.path.exists(f"/proc/{pid}"), "the service was orphaned"


def test_second_supervise_refuses(supervised, init_bin, tmp_path):
    d = make_service(tmp_path, "a", "exec sleep 1000")
    supervised(d)
    wait_for(lambda: pid_of(d))
    proc = subprocess.run([init_bin / "supervise", d], capture_output=True, text=True, timeout=5)
    assert proc.returncode == 111
    assert f"unable to acquire {d}/supervise/lock: another supervise is already running" in proc.stderr


@pytest.mark.parametrize("case", ["missing", "not executable", "bad interpreter"])
def test_broken_run_is_reported_once_and_retried(supervised, tmp_path, case):
    d = tmp_path / "a"
    d.mkdir()
    if case == "not executable":
        (d / "run").write_text("#!/bin/sh\nexec sleep 1000\n")
    elif case == "bad interpreter":
        write_exec(d / "run", "#!/nonexistent/interpreter\n")
    s = supervised(d)
    expected = {
        "missing": "file does not exist",
        "not executable": "access denied",
        "bad interpreter": "file does not exist",
    }[case]
    wait_for(lambda: f"unable to start {d}/run: {expected}" in s.output(), what="the error message")
    time.sleep(2.5)
    assert s.output().count("unable to start") == 1, s.output()
    assert state_of(d) == "b" and pid_of(d) == 0
    assert cpu_seconds(s.supervise_pid()) < 0.5
    write_exec(d / "run", "#!/bin/sh\nexec sleep 1000\n")
    wait_for(lambda: pid_of(d), timeout=5, what="run to start once fixed")
    assert "started after the error was fixed" in s.output()


def test_garbage_on_control_is_ignored(supervised, tmp_path):
    d = make_service(tmp_path, "a", "exec sleep 1000")
    s = supervised(d)
    pid = wait_for(lambda: pid_of(d))
    letters = set(b"udopchaitkxq12w")
    garbage = bytes(b for b in os.urandom(20000) if b not in letters)[:4000]
    for i in range(0, len(garbage), 500):
        control(d, garbage[i : i + 500])
    time.sleep(0.3)
    assert pid_of(d) == pid and s.supervise_pid()
    control(d, b"d")
    wait_for(lambda: pid_of(d) == 0, what="svc -d after the garbage")


def test_truncated_status_is_rewritten(supervised, tmp_path, init_bin):
    d = make_service(tmp_path, "a", "exec sleep 1000")
    supervised(d)
    wait_for(lambda: pid_of(d))
    (d / "supervise" / "status").write_bytes(b"\x40" * 10)
    out = subprocess.run([init_bin / "svstat", d], capture_output=True, text=True).stdout
    assert out == f"{d}: unable to read supervise/status: bad format\n"
    control(d, b"d")
    wait_for(lambda: len(status(d)) == 23 and pid_of(d) == 0, what="a whole status record again")


def test_dangling_supervise_symlink_gets_its_target(supervised, tmp_path):
    """As Debian's supervise: a read-only service directory can point supervise/ into a tmpfs."""
    d = make_service(tmp_path, "a", "exec sleep 1000")
    target = tmp_path / "run" / "a-supervise"
    (tmp_path / "run").mkdir()
    (d / "supervise").symlink_to(target)
    supervised(d)
    wait_for(lambda: pid_of(d))
    assert (target / "status").exists()


def test_a_service_to_run_has_its_first_status_name_run(init_bin, tmp_path):
    """The first status supervise writes for a service that is up already names run's pid, and the ok FIFO
    (svok) answers only after it: `svok DIR && svstat DIR` never sees "down, want up" at a start. One status
    written fewer per service (the old code wrote "want up" first, then the pid). Traced with strace on a
    real supervise: the order of run's exec, the status renames and the opening of ok."""
    d = make_service(tmp_path, "a", "exec sleep 1000")
    trace = tmp_path / "trace"
    proc = subprocess.Popen(
        ["strace", "-f", "-qq", "-o", str(trace), "-e", "trace=execve,rename,open,openat"]
        + [init_bin / "supervise", d],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: pid_of(d) and (d / "supervise" / "ok").exists(), what="run to start")
        wait_for(lambda: 'supervise/ok"' in trace.read_text(), what="supervise to open ok")
    finally:
        control(d, b"dx")  # run stops, supervise exits, and so does strace
        proc.wait(10)
    events = []
    for line in trace.read_text().splitlines():
        if 'execve("./run"' in line and "= -1" not in line:  # (or "<unfinished ...>": it resumes later)
            events.append("exec run")
        elif 'rename("supervise/status.new", "supervise/status"' in line:  # (whole, or "<unfinished ...>")
            events.append("status")
        elif '"supervise/ok"' in line and "O_RDONLY" in line:
            events.append("ok")
    assert events[:3] == ["exec run", "status", "ok"], events


def test_usage(init_bin):
    proc = subprocess.run([init_bin / "supervise"], capture_output=True, text=True)
    assert proc.returncode == 100 and "usage: supervise dir" in proc.stderr


def test_down_signal_file_names_the_signal_d_sends(supervised, tmp_path):
    marker, ready = tmp_path / "got", tmp_path / "ready"
    d = make_service(
        tmp_path,
        "a",
        f"trap '' TERM\ntrap 'echo HUP > {marker}; exit 0' HUP\ntouch {ready}\nwhile :; do sleep 0.05; done",
    )
    (d / "down-signal").write_text("SIGHUP\n")
    supervised(d)
    # the traps are set before ready: a HUP sent earlier would end the shell (1 run in ~600 did)
    wait_for(lambda: pid_of(d) and ready.exists(), what="run's traps set")
    control(d, b"d")
    wait_for(lambda: pid_of(d) == 0, what="down through SIGHUP")
    assert marker.read_text() == "HUP\n"


# A supervise that was SIGKILLed leaves its run behind: the next supervise must stop it first.


def alive(pid: int) -> bool:
    """Whether *pid* (a host pid) is a live process, not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def runs_in(svdir: Path) -> list[int]:
    """Host pids of the live `run` processes working in *svdir*."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if (
                comm(int(entry)) == "run"
                and os.readlink(f"/proc/{entry}/cwd") == str(svdir)
                and alive(int(entry))
            ):
                out.append(int(entry))
        except OSError:
            continue
    return out


def test_sigkilled_supervise_does_not_leave_the_service_running_twice(scanner, scandir, tmp_path):
    lines = tmp_path / "lines"
    d = make_service(
        scandir, "a", f'i=0\nwhile :; do echo "$$ $i" >> {lines}; i=$((i + 1)); sleep 0.05; done'
    )
    s = scanner(scandir)
    old_ns = wait_for(lambda: svstatus(d)[0], what="run to start")
    old = s.ns.host_pid(old_ns)
    os.kill(wait_for(lambda: s.supervisors().get("a"), what="a's supervise"), signal.SIGKILL)
    new = wait_for(
        lambda: runs_in(d) == [p := s.ns.host_pid(svstatus(d)[0])] and p != old and p,
        timeout=5,
        what="one run, the new one",
    )
    assert not alive(old)
    assert (
        f"supervise: warning: a: stopping orphaned run (pid {old_ns}) left by a previous supervise"
        in s.output()
    )
    # From now on only the new run writes.
    time.sleep(0.5)
    size = lines.stat().st_size
    time.sleep(1)
    writers = {ln.split()[0] for ln in lines.read_bytes()[size:].decode().splitlines()}
    assert writers == {str(svstatus(d)[0])}, (runs_in(d), new)


def test_sigkilled_logger_supervise_does_not_lock_out_the_next_multilog(scanner, scandir, init_bin, tmp_path):
    last = tmp_path / "last"
    d = make_service(
        scandir,
        "a",
        f'i=0\nwhile :; do echo "line $i"; echo "$i" > {last}.new; mv {last}.new {last}; i=$((i + 1)); done',
        log="exec multilog t ./main",
    )
    main = d / "log" / "main"
    s = scanner(scandir)
    wait_for(lambda: (main / "current").stat().st_size > 1000, what="lines in log/main/current")
    old_ns = svstatus(d / "log")[0]
    os.kill(wait_for(lambda: s.supervisors().get("a/log"), what="the logger's supervise"), signal.SIGKILL)

    def svstat() -> str:
        return subprocess.run([init_bin / "svstat", d / "log"], capture_output=True, text=True).stdout

    wait_for(
        lambda: svstatus(d / "log")[0] not in (0, old_ns) and " up (pid " in svstat(), 5, what="a new logger"
    )
    up = svstatus(d / "log")[0]
    time.sleep(1.5)  # the old code's second multilog failed every second here
    assert svstatus(d / "log")[0] == up and " up (pid " in svstat()
    assert "another multilog" not in s.output()
    assert f"supervise: warning: log: stopping orphaned run (pid {old_ns})" in s.output()
    # Stop the writer, then the logger (which logs what the pipe still holds): no line lost.
    subprocess.run([init_bin / "svc", "-d", d], check=True)
    wait_for(lambda: svstatus(d)[0] == 0, what="the service down")
    subprocess.run([init_bin / "svc", "-d", d / "log"], check=True)
    wait_for(lambda: svstatus(d / "log")[0] == 0, what="the logger down")
    n = int(last.read_text())
    names = sorted(p.name for p in main.iterdir() if p.name.startswith("@")) + ["current"]
    text = b"".join((main / name).read_bytes() for name in names)
    seen = {int(m) for m in re.findall(rb"^@[0-9a-f]{24} line (\d+)$", text, re.MULTILINE)}
    missing = sorted(set(range(n + 1)) - seen)
    assert not missing, f"{len(missing)} of {n + 1} lines lost, first {missing[:10]}"


@pytest.mark.parametrize(
    "where, leader, stopped",
    [("elsewhere", True, False), ("service dir", False, False), ("service dir", True, True)],
    ids=["cwd-elsewhere", "not-a-session-leader", "orphan"],
)
def test_stale_status_names_a_live_process(init_bin, tmp_path, where, leader, stopped):
    """A status left by a supervise whose pid now belongs to another process (a container restarted, the
    pids were reused) must not get that process killed: only a session leader working in the service
    directory is taken for an orphaned run."""
    d = make_service(tmp_path, "a", "exec sleep 1000")
    (d / "supervise").mkdir()
    other = tmp_path / "elsewhere"
    other.mkdir()
    pidfile, go = tmp_path / "sleep.pid", tmp_path / "go"
    script = (
        'cd "$3" && { if [ "$4" = yes ]; then setsid sleep 1000 & else sleep 1000 & fi; }; echo $! > "$5"\n'
        'while [ ! -e "$6" ]; do sleep 0.02; done\n'
        '"$1" "$2"; echo "supervise exited $?"; exec sleep 1000\n'
    )
    cwd = d if where == "service dir" else other
    ns = PidNamespace(
        [
            "sh",
            "-c",
            script,
            "sh",
            str(init_bin / "supervise"),
            str(d),
            str(cwd),
            "yes" if leader else "no",
            str(pidfile),
            str(go),
        ],
        tmp_path / "ns.log",
    )
    try:
        sleep_ns = int(wait_for(lambda: pidfile.read_text().strip(), what="the sleep's pid"))
        sleep = ns.host_pid(sleep_ns)
        wait_for(lambda: comm(sleep) == "sleep", what="the sleep to start")  # after setsid
        assert (os.getsid(sleep) == sleep) == leader
        # What a supervise killed long ago left: an 18-byte record, up, with that pid.
        label = 4611686018427387914 + int(time.time()) - 100
        (d / "supervise" / "status").write_bytes(
            label.to_bytes(8, "big") + bytes(4) + sleep_ns.to_bytes(4, "little") + b"\0u"
        )
        go.touch()
        wait_for(lambda: pid_of(d) not in (0, sleep_ns), what="run to start")
        assert alive(sleep) != stopped
        warned = f"stopping orphaned run (pid {sleep_ns})" in ns.output()
        assert warned == stopped, ns.output()
    finally:
        ns.close()
