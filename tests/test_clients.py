"""svc, svstat, svok and envdir: svinit's against daemontools 0.76's, on the same directories.

Golden tests run djb's program and ours with the same arguments in the same place and demand the same
exit code, stdout and stderr, byte for byte. svstat's seconds tick, so djb's runs on both sides of ours
and the comparison counts only when djb's two runs agree. The control tests drive a real supervise (djb's,
and svinit's once built) with each svc and watch the real service process: traps in its run script log
the signals, /proc shows it stopped, the status file shows its pid change.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from svinit import ROOT
from tests.util import make_service, wait_for, write_exec

INIT = ROOT / "init"
CLIENTS = ("svc", "svstat", "svok", "envdir", "svwait")
TAI64_UNIX = 4611686018427387914  # 2^62 + 10


# --- running programs and comparing them -------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    rc: int
    out: bytes
    err: bytes

    def __str__(self) -> str:
        return f"exit {self.rc}, stdout {self.out!r}, stderr {self.err!r}"


def run(argv: list[str | Path], cwd: Path | None = None, env: dict[str, str] | None = None) -> Result:
    p = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, timeout=10, check=False)
    return Result(p.returncode, p.stdout, p.stderr)


def assert_same(ours: Result, djbs: Result, what: str) -> None:
    """Raises AssertionError showing both results unless they are identical."""
    if ours != djbs:
        raise AssertionError(f"{what}: ours and djb's differ\n  ours:  {ours}\n  djb's: {djbs}")


def golden(
    ours: list, djbs: list, cwd: Path | None = None, env: dict[str, str] | None = None, tries: int = 5
) -> tuple[Result, Result]:
    """Runs djb's command, ours, then djb's again; returns (ours, djb's) for the caller's assert_same.

    svstat's seconds tick, and glibc's time() (djb's) lags musl's (ours) by up to a clock tick, so a run
    that straddles a second is tried again: a real difference shows on every try, a tick on one.
    """
    stable = None
    for _ in range(tries):
        before = run(djbs, cwd, env)
        mine = run(ours, cwd, env)
        after = run(djbs, cwd, env)
        if before == after:
            stable = (mine, before)
            if mine == before:
                break
    if stable is None:
        raise AssertionError(f"djb's output kept changing: {before} then {after}")
    return stable


@pytest.fixture(scope="module")
def ours() -> Path:
    """init/build with svinit's svc, svstat, svok and envdir freshly built."""
    targets = [f"build/{c}" for c in CLIENTS]
    proc = subprocess.run(["make", "-C", str(INIT), *targets], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"make {' '.join(targets)} failed:\n{proc.stdout}\n{proc.stderr}"
    return INIT / "build"


@pytest.fixture(scope="module")
def djb(djb_bin) -> Path:
    return djb_bin


def both(ours: Path, djb: Path, prog: str, *args) -> tuple[list, list]:
    return [ours / prog, *args], [djb / prog, *args]


@pytest.mark.parametrize("name", CLIENTS)
def test_compiles_without_warnings(name):
    """Each client compiles warning-free under the Makefile's flags, with -Werror on top."""
    cc = "musl-gcc" if shutil.which("musl-gcc") else "cc"
    proc = subprocess.run(
        [cc, "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", f"src/{name}.c"],
        cwd=INIT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


# --- service directories made by hand ----------------------------------------------------------------


def status_record(
    pid: int = 0,
    paused: int = 0,
    want: bytes = b"u",
    age: int = 5,
    label: int | None = None,
    extra: bytes = b"",
) -> bytes:
    """An 18-byte daemontools status record (plus *extra*): TAI64N label, pid, paused, want."""
    if label is None:
        label = TAI64_UNIX + int(time.time()) - age
    return struct.pack(">QL", label, 123456789) + struct.pack("<L", pid) + bytes([paused]) + want + extra


class Holder:
    """Holds supervise/ok FIFOs open for reading, so the directories look supervised."""

    def __init__(self):
        self.fds: list[int] = []

    def hold(self, fifo: Path) -> None:
        self.fds.append(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)


@pytest.fixture
def holder():
    h = Holder()
    yield h
    h.close()


def crafted(root: Path, name: str, status: bytes | None, down: bool = False, running: bool = True) -> Path:
    """A service directory with supervise/ok (a FIFO) and, unless None, supervise/status."""
    d = root / name
    (d / "supervise").mkdir(parents=True)
    os.mkfifo(d / "supervise" / "ok", 0o600)
    os.mkfifo(d / "supervise" / "control", 0o600)
    if status is not None:
        (d / "supervise" / "status").write_bytes(status)
    if down:
        (d / "down").touch()
    return d


# Directories whose supervise/ok has a reader: name -> (status bytes, has a `down` file).
SUPERVISED = {
    "up": (status_record(pid=1234), False),
    "up-normally-down": (status_record(pid=1234), True),
    "up-paused": (status_record(pid=1234, paused=1), False),
    "up-want-down": (status_record(pid=1234, want=b"d"), False),
    "up-want-0": (status_record(pid=1234, want=b"\0"), False),
    "up-want-up-normally-down": (status_record(pid=1234, want=b"u"), True),
    "up-everything": (status_record(pid=77, paused=1, want=b"d"), True),
    "up-pid-max": (status_record(pid=0xFFFFFFFF), False),
    "up-long-ago": (status_record(pid=1, age=10**8), False),
    "down-normally-up": (status_record(want=b"d"), False),
    "down-want-up": (status_record(want=b"u"), True),
    "down-want-up-normally-up": (status_record(want=b"u"), False),
    "down-want-down": (status_record(want=b"d"), True),
    "down-want-0": (status_record(want=b"\0"), True),
    "down-paused-ignored": (status_record(paused=1, want=b"d"), True),
    "svinit-23-bytes": (status_record(pid=4321, want=b"d", extra=b"r\0\0\0\0"), False),
    "future-label": (status_record(pid=5, age=-1000), False),
    "zero-label": (status_record(pid=5, label=0), False),
    "huge-label": (status_record(label=2**64 - 1), False),
    "truncated-10-bytes": (status_record(pid=5)[:10], False),
    "truncated-17-bytes": (status_record(pid=5)[:17], False),
    "empty-status": (b"", False),
    "missing-status": (None, False),
}


def make_supervised(root: Path, name: str, holder: Holder) -> Path:
    status, down = SUPERVISED[name]
    d = crafted(root, name, status, down)
    holder.hold(d / "supervise" / "ok")
    return d


def make_odd(root: Path, name: str) -> Path:
    """Directories that are not (plainly) supervised; the name says what is odd."""
    d = root / name
    if name == "not-running":  # ok FIFO without a reader: ENXIO
        crafted(root, name, status_record(pid=9))
    elif name == "no-ok-fifo":
        (d / "supervise").mkdir(parents=True)
    elif name == "no-supervise-dir":
        d.mkdir()
    elif name == "ok-is-a-directory":
        (d / "supervise" / "ok").mkdir(parents=True)
    elif name == "ok-is-a-file":  # opening it for writing works, so it counts as running
        (d / "supervise").mkdir(parents=True)
        (d / "supervise" / "ok").touch()
        (d / "supervise" / "status").write_bytes(status_record(pid=3))
    elif name == "status-is-a-directory":
        (d / "supervise" / "status").mkdir(parents=True)
        (d / "supervise" / "ok").touch()
    elif name == "down-dangling-symlink":
        (d / "supervise").mkdir(parents=True)
        (d / "supervise" / "ok").touch()
        (d / "supervise" / "status").write_bytes(status_record())
        (d / "down").symlink_to(root / "nowhere")
    elif name == "not-a-directory":
        d.write_text("a file\n")
    elif name == "missing":
        pass
    else:
        raise ValueError(name)
    return d


# status-is-a-directory is left out: there djb's svstat has a bug (test_svstat_read_error_differs_from_djb).
ODD = [
    "not-running",
    "no-ok-fifo",
    "no-supervise-dir",
    "ok-is-a-directory",
    "ok-is-a-file",
    "down-dangling-symlink",
    "not-a-directory",
    "missing",
]


# --- svstat ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SUPERVISED)
def test_svstat_status_records(ours, djb, tmp_path, holder, name):
    make_supervised(tmp_path, name, holder)
    mine, theirs = golden(*both(ours, djb, "svstat", name), cwd=tmp_path)
    assert_same(mine, theirs, f"svstat {name}")


@pytest.mark.parametrize("name", ODD)
def test_svstat_odd_directories(ours, djb, tmp_path, name):
    make_odd(tmp_path, name)
    mine, theirs = golden(*both(ours, djb, "svstat", name), cwd=tmp_path)
    assert_same(mine, theirs, f"svstat {name}")


def test_svstat_expected_lines(ours, tmp_path, holder):
    """A few lines spelled out, so a change in djb's binary would not silently move the target."""
    for name in ("up-everything", "down-want-up-normally-up", "truncated-10-bytes", "future-label"):
        make_supervised(tmp_path, name, holder)
    for name in ("not-running", "not-a-directory", "missing", "no-ok-fifo"):
        make_odd(tmp_path, name)
    out = run(
        [
            ours / "svstat",
            "future-label",
            "up-everything",
            "down-want-up-normally-up",
            "truncated-10-bytes",
            "not-running",
            "not-a-directory",
            "missing",
            "no-ok-fifo",
        ],
        cwd=tmp_path,
    )
    assert out.rc == 0 and out.err == b""
    lines = out.out.decode().splitlines()
    assert lines[0] == "future-label: up (pid 5) 0 seconds"
    assert lines[1].startswith("up-everything: up (pid 77) ")
    assert lines[1].endswith(" seconds, normally down, paused, want down")
    assert lines[2].startswith("down-want-up-normally-up: down ")
    assert lines[2].endswith(" seconds, normally up, want up")
    assert lines[3:] == [
        "truncated-10-bytes: unable to read supervise/status: bad format",
        "not-running: supervise not running",
        "not-a-directory: unable to chdir: not a directory",
        "missing: unable to chdir: file does not exist",
        "no-ok-fifo: unable to open supervise/ok: file does not exist",
    ]


def test_svstat_many_directories_in_one_call(ours, djb, tmp_path, holder):
    """Every directory at once, relative, absolute, with a trailing slash: each from where svstat began."""
    for name in SUPERVISED:
        make_supervised(tmp_path, name, holder)
    for name in ODD:
        make_odd(tmp_path, name)
    names = list(SUPERVISED) + ODD
    args = names + [str(tmp_path / n) for n in names[:4]] + [names[0] + "/", "."]
    mine, theirs = golden(*both(ours, djb, "svstat", *args), cwd=tmp_path)
    assert_same(mine, theirs, "svstat with every directory")
    assert mine.out.count(b"\n") == len(args)


def test_svstat_read_error_differs_from_djb(ours, djb, tmp_path, holder):
    """A deliberate difference. djb's svstat compares read()'s -1 with an unsigned size, misses the error
    and prints whatever its static 18-byte buffer held: zeros, or the previous directory's record."""
    make_supervised(tmp_path, "up-paused", holder)
    make_odd(tmp_path, "status-is-a-directory")
    theirs = run([djb / "svstat", "up-paused", "status-is-a-directory"], cwd=tmp_path)
    assert theirs.out.decode().splitlines()[1].startswith("status-is-a-directory: up (pid 1234) ")
    mine = run([ours / "svstat", "up-paused", "status-is-a-directory"], cwd=tmp_path)
    assert mine.out.decode().splitlines()[1] == (
        "status-is-a-directory: unable to read supervise/status: is a directory"
    )


def test_svstat_without_arguments(ours, djb, tmp_path):
    assert_same(*golden(*both(ours, djb, "svstat"), cwd=tmp_path), "svstat")


def test_comparison_reports_a_mismatch(ours, djb, tmp_path, holder):
    """The golden comparison can fail: a wrong expected line, and a fake svstat that differs, are caught."""
    make_supervised(tmp_path, "up-paused", holder)
    mine = run([ours / "svstat", "up-paused"], cwd=tmp_path)
    wrong = Result(0, mine.out.replace(b", paused", b""), b"")
    with pytest.raises(AssertionError, match="ours and djb's differ"):
        assert_same(mine, wrong, "svstat up-paused against a deliberately wrong line")

    fake = write_exec(tmp_path / "fake-svstat", '#!/bin/sh\necho "$1: up (pid 1234) 0 seconds"\n')
    mine, theirs = golden([fake, "up-paused"], [djb / "svstat", "up-paused"], cwd=tmp_path)
    with pytest.raises(AssertionError, match="differ"):
        assert_same(mine, theirs, "a fake svstat against djb's")


# --- svc and svok without a supervise ----------------------------------------------------------------

SVC_CASES = {
    "bad-option": ["-z", "not-running"],
    "bad-option-after-good-ones": ["-ud", "-hz", "not-running"],
    "extension-letter-after-bad-one": ["-Q"],
    "missing": ["-u", "missing"],
    "not-a-directory": ["-u", "not-a-directory"],
    "not-running": ["-u", "not-running"],
    "no-supervise-dir": ["-du", "no-supervise-dir"],
    "no-control-fifo": ["-k", "no-ok-fifo"],
    "several-bad-directories": ["-t", "missing", "not-running", "not-a-directory", "no-supervise-dir"],
    "no-arguments": [],
    "no-directories": ["-u"],
    "double-dash": ["--", "-u"],
    "double-dash-word": ["--anything", "missing"],
    "single-dash-is-a-directory": ["-", "missing"],
    "no-letters": ["not-running"],
}


@pytest.mark.parametrize("case", SVC_CASES)
def test_svc_errors_match_djb(ours, djb, tmp_path, case):
    for name in ("not-running", "no-ok-fifo", "no-supervise-dir", "not-a-directory"):
        make_odd(tmp_path, name)
    mine, theirs = golden(*both(ours, djb, "svc", *SVC_CASES[case]), cwd=tmp_path)
    assert_same(mine, theirs, f"svc {SVC_CASES[case]}")


def test_svc_messages_spelled_out(ours, tmp_path):
    make_odd(tmp_path, "not-running")
    bad = run([ours / "svc", "-uz", "x"], cwd=tmp_path)
    assert bad == Result(
        100,
        b"",
        (
            b"svc: illegal option -- z\n"
            b"svc options: u up, d down, o once, x exit, p pause, c continue, h hup, a alarm, i interrupt, "
            b"t term, k kill\n"
        ),
    )
    warned = run([ours / "svc", "-u", "not-running", "missing"], cwd=tmp_path)
    assert warned == Result(
        0,
        b"",
        (
            b"svc: warning: unable to control not-running: supervise not running\n"
            b"svc: warning: unable to chdir to missing: file does not exist\n"
        ),
    )


def read_control(d: Path, argv: list) -> bytes:
    """Runs svc on a crafted directory whose control FIFO this test reads; returns the bytes written."""
    fd = os.open(d / "supervise" / "control", os.O_RDONLY | os.O_NONBLOCK)
    try:
        res = run(argv)
        assert res == Result(0, b"", b""), res
        return os.read(fd, 100)
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    "letters, expected",
    [
        ("-udopchaitkx", b"udopchaitkx"),
        ("-uudduu", b"ud"),
        ("-kt", b"kt"),
    ],
)
def test_svc_writes_letters_like_djb(ours, djb, tmp_path, letters, expected):
    d = crafted(tmp_path, "s", status_record())
    assert read_control(d, [djb / "svc", letters, d]) == expected
    assert read_control(d, [ours / "svc", letters, d]) == expected


def test_svc_extension_letters(ours, tmp_path):
    """q 1 2 w are svinit's additions; djb's svc refuses them, ours writes them like the others."""
    d = crafted(tmp_path, "s", status_record())
    assert read_control(d, [ours / "svc", "-qq12", "-wuq", d]) == b"q12wu"
    assert read_control(d, [ours / "svc", "-q", "-1", "-2", "-w", d, d]) == b"q12wq12w"


@pytest.mark.skipif(not shutil.which("strace"), reason="strace is not installed")
@pytest.mark.parametrize("who", ["ours", "djb"])
def test_svc_one_nonblocking_open_and_one_write(ours, djb, tmp_path, who):
    d = crafted(tmp_path, "s", status_record())
    svc = (ours if who == "ours" else djb) / "svc"
    trace = tmp_path / "trace"
    fd = os.open(d / "supervise" / "control", os.O_RDONLY | os.O_NONBLOCK)
    try:
        res = run(
            [
                "strace",
                "-qq",
                "-e",
                "trace=open,openat,write",
                "-e",
                "signal=none",
                "-o",
                trace,
                svc,
                "-uhhaud",
                d,
            ]
        )
    finally:
        os.close(fd)
    assert res.rc == 0, res
    lines = trace.read_text().splitlines()
    opens = [ln for ln in lines if "supervise/control" in ln]
    writes = [ln for ln in lines if ln.startswith("write(")]
    assert len(opens) == 1 and "O_WRONLY" in opens[0] and "O_NONBLOCK" in opens[0], lines
    assert len(writes) == 1 and re.fullmatch(r"write\(\d+, \"uhad\", 4\) *= 4", writes[0]), lines


SVOK_CASES = [
    "not-running",
    "no-ok-fifo",
    "no-supervise-dir",
    "ok-is-a-directory",
    "ok-is-a-file",
    "not-a-directory",
    "missing",
]


@pytest.mark.parametrize("name", SVOK_CASES)
def test_svok_matches_djb(ours, djb, tmp_path, name):
    make_odd(tmp_path, name)
    assert_same(*golden(*both(ours, djb, "svok", name), cwd=tmp_path), f"svok {name}")


def test_svok_exit_codes(ours, djb, tmp_path, holder):
    make_supervised(tmp_path, "up", holder)
    for name in SVOK_CASES:
        make_odd(tmp_path, name)
    expected = {
        "up": 0,
        "not-running": 100,
        "no-ok-fifo": 100,
        "no-supervise-dir": 100,
        "ok-is-a-file": 0,
        "ok-is-a-directory": 111,
        "not-a-directory": 111,
        "missing": 111,
    }
    for name, rc in expected.items():
        for who in (ours, djb):
            assert run([who / "svok", name], cwd=tmp_path).rc == rc, (who, name)
    assert run([ours / "svok"]) == Result(100, b"", b"svok: usage: svok dir\n")
    assert_same(*golden(*both(ours, djb, "svok")), "svok without arguments")
    assert run([ours / "svok", "ok-is-a-directory"], cwd=tmp_path) == Result(
        111, b"", b"svok: fatal: unable to open ok-is-a-directory/supervise/ok: is a directory\n"
    )


# --- against a real supervise --------------------------------------------------------------------------

RUN = """\
for sig in HUP ALRM INT QUIT USR1 USR2 WINCH; do
  trap "echo $sig >> events" $sig
done
trap 'echo TERM >> events; exit 0' TERM
echo "start $$" >> events
while :; do sleep 0.05; done"""


class Service:
    """A service directory run by a real `supervise DIR`; its run script logs the signals it gets."""

    def __init__(self, supervise: Path, root: Path, down: bool = False):
        self.dir = make_service(root, "svc", RUN, down=down)
        self.pids: set[int] = set()
        self.out = open(root / "supervise.out", "wb")  # noqa: SIM115 (closed by close())
        self.proc = subprocess.Popen(
            [str(supervise), str(self.dir)],
            stdin=subprocess.DEVNULL,
            stdout=self.out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(lambda: self.ok(), 5, what="supervise to open supervise/ok")

    def ok(self) -> bool:
        try:
            os.close(os.open(self.dir / "supervise" / "ok", os.O_WRONLY | os.O_NONBLOCK))
            return True
        except OSError:
            return False

    def status(self) -> tuple[int, int, bytes]:
        """(pid, paused, want) from the first 18 bytes of supervise/status."""
        s = (self.dir / "supervise" / "status").read_bytes()
        if len(s) < 18:
            raise ValueError(f"short status record {s!r}")
        pid = struct.unpack("<L", s[12:16])[0]
        if pid:
            self.pids.add(pid)
        return pid, s[16], s[17:18]

    def pid(self) -> int:
        return self.status()[0]

    def wait_up(self, other_than: int = 0) -> int:
        return wait_for(
            lambda: self.pid() not in (0, other_than) and self.pid(),
            10,
            what=f"the service up (not pid {other_than})",
        )

    def wait_down(self) -> None:
        wait_for(lambda: self.pid() == 0, 10, what="the service down")

    def events(self) -> list[str]:
        try:
            return (self.dir / "events").read_text().splitlines()
        except FileNotFoundError:
            return []

    def wait_event(self, event: str) -> None:
        wait_for(lambda: event in self.events(), 10, what=f"{event} in the run script's log {self.events()}")

    def close(self) -> None:
        try:
            self.status()
        except (OSError, ValueError):
            pass
        if self.proc.poll() is None:
            try:
                fd = os.open(self.dir / "supervise" / "control", os.O_WRONLY | os.O_NONBLOCK)
                os.write(fd, b"cdx")
                os.close(fd)
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        for pgid in [self.proc.pid, *self.pids]:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.out.close()


def proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    try:
        return proc_state(pid) != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(params=["djb", "ours"], ids=lambda p: f"{p}-supervise")
def supervise(request, djb) -> Path:
    if request.param == "djb":
        return djb / "supervise"
    if (INIT / "src" / "supervise.c").exists():
        proc = subprocess.run(
            ["make", "-C", str(INIT), "build/supervise"], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            pytest.skip(f"svinit's supervise does not build yet:\n{proc.stderr[-2000:]}")
    if not (INIT / "build" / "supervise").exists():
        pytest.skip("svinit's supervise is not written yet: no init/src/supervise.c, no build/supervise")
    return INIT / "build" / "supervise"


@pytest.fixture(params=["djb", "ours"], ids=lambda p: f"{p}-client")
def client(request, ours, djb) -> Path:
    """The directory holding the svc and svok under test."""
    return djb if request.param == "djb" else ours


@pytest.fixture
def service(supervise, tmp_path):
    made: list[Service] = []

    def start(down: bool = False) -> Service:
        s = Service(supervise, tmp_path, down)
        made.append(s)
        return s

    yield start
    for s in made:
        s.close()


def svc(client: Path, letters: str, s: Service) -> None:
    res = run([client / "svc", letters, s.dir])
    assert res == Result(0, b"", b""), f"svc {letters}: {res}"


def test_hup_alrm_int_reach_the_service(client, service):
    s = service()
    pid = s.wait_up()
    for letter, sig in (("h", "HUP"), ("a", "ALRM"), ("i", "INT")):
        svc(client, f"-{letter}", s)
        s.wait_event(sig)
        assert s.pid() == pid, f"svc -{letter} restarted the service"
    assert alive(pid) and "TERM" not in s.events()


def test_term_stops_the_service_and_supervise_restarts_it(client, service):
    s = service()
    pid = s.wait_up()
    svc(client, "-t", s)
    s.wait_event("TERM")
    new = s.wait_up(other_than=pid)
    assert not alive(pid)
    assert s.status() == (new, 0, b"u")


def test_kill_and_restart(client, service):
    s = service()
    pid = s.wait_up()
    svc(client, "-k", s)
    new = s.wait_up(other_than=pid)
    assert not alive(pid)
    # the status shows the new pid as soon as run is exec'd: its "start" line may come a moment later
    s.wait_event(f"start {new}")
    assert "TERM" not in s.events() and [e for e in s.events() if e.startswith("start")] == [
        f"start {pid}",
        f"start {new}",
    ]


def test_down_then_up(client, service):
    s = service()
    pid = s.wait_up()
    svc(client, "-d", s)
    s.wait_down()
    s.wait_event("TERM")
    assert not alive(pid)
    assert s.status() == (0, 0, b"d")
    svc(client, "-u", s)
    new = s.wait_up(other_than=pid)
    assert s.status() == (new, 0, b"u")


def test_pause_and_continue(client, service):
    s = service()
    pid = s.wait_up()
    svc(client, "-p", s)
    wait_for(lambda: proc_state(pid) == "T", 5, what="the service stopped")
    assert s.status() == (pid, 1, b"u")
    svc(client, "-c", s)
    wait_for(lambda: proc_state(pid) != "T", 5, what="the service continued")
    assert s.status() == (pid, 0, b"u")


def test_once_runs_without_restarting(client, service):
    s = service(down=True)
    time.sleep(0.3)
    assert s.pid() == 0 and s.events() == [], "a service with a down file started by itself"
    svc(client, "-o", s)
    pid = s.wait_up()
    assert s.status() == (pid, 0, b"\0")
    # up means exec'd: the TERM must find run's traps set, which its first event says (after them)
    wait_for(lambda: len(s.events()) == 1, 5, what="run's first event")
    svc(client, "-t", s)
    s.wait_down()
    time.sleep(1.5)  # supervise restarts a service 1 s after its start at the earliest
    assert s.pid() == 0 and s.events() == [f"start {pid}", "TERM"]


def test_once_and_exit_run_a_down_service_then_exit(client, service):
    """`svc -ox` on a down service: run starts, runs to its end, and then supervise exits (djb's does;
    ours used to let the `x` win and exit without running it)."""
    s = service(down=True)
    write_exec(s.dir / "run", '#!/bin/sh\necho "start $$" >> events\nexec sleep 0.5\n')
    svc(client, "-ox", s)
    assert s.proc.wait(10) == 0
    assert [e.split()[0] for e in s.events()] == ["start"]


def test_once_then_exit_in_the_second_after_a_start(client, service):
    """An `o` that arrives while supervise waits out the second after a start, then an `x`: run starts once
    more before supervise exits, as with djb's (which sleeps that second and reads the letters after)."""
    s = service(down=True)
    write_exec(s.dir / "run", '#!/bin/sh\necho "start $$" >> events\n')
    svc(client, "-o", s)
    wait_for(lambda: len(s.events()) == 1, 5, what="the first run")
    s.wait_down()  # run has ended (not only said it started): the o comes while supervise waits
    svc(client, "-o", s)
    svc(client, "-x", s)
    assert s.proc.wait(10) == 0
    assert [e.split()[0] for e in s.events()] == ["start", "start"]


def test_exit_before_once_on_a_down_service_exits_at_once(client, service):
    """`svc -xo`: the x finds the service down and supervise exits without reading the o, as djb's."""
    s = service(down=True)
    svc(client, "-xo", s)
    assert s.proc.wait(10) == 0
    time.sleep(0.3)
    assert s.events() == []


def test_exit_waits_for_the_service_to_go_down(client, service):
    s = service()
    pid = s.wait_up()
    svc(client, "-x", s)
    time.sleep(0.5)
    assert s.proc.poll() is None and alive(pid), "svc -x stopped supervise or the service"
    svc(client, "-d", s)
    assert s.proc.wait(10) == 0
    assert not alive(pid)
    assert run([client / "svok", s.dir]).rc == 100
    res = run([client / "svc", "-u", s.dir])
    assert res == Result(0, b"", f"svc: warning: unable to control {s.dir}: supervise not running\n".encode())


def test_svok_on_a_running_supervise(client, service):
    s = service()
    s.wait_up()
    assert run([client / "svok", s.dir]) == Result(0, b"", b"")


def test_svstat_on_a_running_supervise(ours, djb, service, supervise):
    """Both svstats agree on a live supervise, whether up, paused, normally down, down or gone."""
    s = service()
    pid = s.wait_up()
    name = str(s.dir)

    def same(what: str) -> bytes:
        mine, theirs = golden(*both(ours, djb, "svstat", name))
        assert_same(mine, theirs, f"svstat, {what}")
        return mine.out

    assert same("up").startswith(f"{name}: up (pid {pid}) ".encode())
    svc(ours, "-p", s)
    wait_for(lambda: s.status()[1] == 1, 5, what="paused")
    assert same("paused").endswith(b", paused\n")
    (s.dir / "down").touch()
    assert b", normally down, paused" in same("normally down")
    svc(ours, "-cd", s)
    s.wait_down()
    assert same("down").endswith(b" seconds\n")
    (s.dir / "down").unlink()
    assert same("down, normally up").endswith(b", normally up\n")
    svc(ours, "-x", s)
    s.proc.wait(10)
    assert same("supervise gone") == f"{name}: supervise not running\n".encode()


@pytest.mark.parametrize("letter, sig", [("q", "QUIT"), ("1", "USR1"), ("2", "USR2"), ("w", "WINCH")])
def test_extension_letters(ours, service, supervise, letter, sig):
    """Our svc's q 1 2 w: svinit's supervise sends the signal; djb's ignores the byte, harmlessly."""
    s = service()
    pid = s.wait_up()
    svc(ours, f"-{letter}", s)
    if supervise.parent == INIT / "build":
        s.wait_event(sig)
    else:
        svc(ours, "-h", s)  # a letter djb's supervise knows, sent after: once it lands, the first was read
        s.wait_event("HUP")
        assert sig not in s.events()
    assert s.pid() == pid and alive(pid)


@pytest.mark.parametrize("umask", [0o022, 0o000], ids=lambda m: f"umask-{m:03o}")
def test_supervise_files_have_djbs_modes(ours, djb, tmp_path, umask):
    """supervise/ and what is in it (lock 0600, the FIFOs 0600, status 0644) as djb's creates them."""
    init = INIT / "build"
    proc = subprocess.run(
        ["make", "-C", str(INIT), "build/supervise"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    modes = {}
    for who, prog in (("djb", djb / "supervise"), ("ours", init / "supervise")):
        d = make_service(tmp_path / who, "s", "exec sleep 1000", down=True)
        p = subprocess.Popen(
            [str(prog), str(d)],
            start_new_session=True,
            preexec_fn=lambda: os.umask(umask),
            stderr=subprocess.PIPE,
        )
        try:
            wait_for(lambda: (d / "supervise" / "status").exists(), 5, what=f"{who}'s supervise/status")
            files = sorted(os.listdir(d / "supervise"))
            modes[who] = {n: oct((d / "supervise" / n).stat().st_mode & 0o7777) for n in [".", *files]}
        finally:
            p.kill()
            p.wait()
    assert modes["ours"] == modes["djb"]
    assert modes["ours"]["lock"] == "0o600"


# --- envdir ----------------------------------------------------------------------------------------------

BASE_ENV = {"PATH": "/usr/bin:/bin", "KEEP": "kept", "A": "old", "GONE": "to be removed", "L": "dangling"}

ENVDIRS: dict[str, dict[str, bytes]] = {
    "trailing-blanks": {"A": b"value \t \t\n", "B": b"  lead and trail  "},
    "nul-bytes": {"N": b"one\0two\0\0three", "M": b"\0"},
    "empty-file-removes": {"GONE": b"", "NEVER": b""},
    "multi-line": {"ML": b"first line  \nsecond\nthird\n", "NL": b"\nnot this", "CR": b"dos\r\n"},
    "blank-line": {"SP": b"   \t\nx"},
    "equals": {"EQ": b"a=b=c", "X=Y": b"v", "Z=W": b""},
    "dot-files-ignored": {".hidden": b"no", "VIS": b"yes"},
    "long": {"LONG": b"x" * 5000 + b"\n" + b"y" * 100, "LONGLINE": (b"z" * 300 + b" ") * 3},
    "path-from-dir": {"PATH": b"/nonexistent"},  # sets PATH for the child, but the search uses envdir's own
    "empty-dir": {},
}


def make_envdir(root: Path, files: dict[str, bytes]) -> Path:
    d = root / "env"
    d.mkdir()
    for name, content in files.items():
        (d / name).write_bytes(content)
    return d


def environment(res: Result) -> Result:
    """The child's `env -0` output, sorted, so the order of variables does not count."""
    return Result(res.rc, b"\0".join(sorted(res.out.split(b"\0"))), res.err)


@pytest.mark.parametrize("case", ENVDIRS)
def test_envdir_environment_matches_djb(ours, djb, tmp_path, case):
    make_envdir(tmp_path, ENVDIRS[case])
    mine, theirs = golden(*both(ours, djb, "envdir", "env", "env", "-0"), cwd=tmp_path, env=BASE_ENV)
    assert mine.rc == 0, mine
    assert_same(environment(mine), environment(theirs), f"envdir {case}")


def test_envdir_values_spelled_out(ours, tmp_path):
    files = {
        **ENVDIRS["trailing-blanks"],
        **ENVDIRS["nul-bytes"],
        **ENVDIRS["multi-line"],
        **ENVDIRS["empty-file-removes"],
        **ENVDIRS["equals"],
        "SP": b"   \t\nx",
        ".hidden": b"no",
    }
    make_envdir(tmp_path, files)
    res = run([ours / "envdir", "env", "env", "-0"], cwd=tmp_path, env=BASE_ENV)
    assert res.rc == 0 and res.err == b""
    got = dict(v.split(b"=", 1) for v in res.out.split(b"\0") if v)
    assert got == {
        b"PATH": b"/usr/bin:/bin",
        b"KEEP": b"kept",
        b"L": b"dangling",
        b"A": b"value",
        b"B": b"  lead and trail",
        b"N": b"one\ntwo\n\nthree",
        b"M": b"\n",
        b"ML": b"first line",
        b"NL": b"",
        b"CR": b"dos\r",
        b"SP": b"",
        b"EQ": b"a=b=c",
        b"X": b"Y=v",
        b"Z": b"W",
    }


def test_envdir_dangling_symlink_removes(ours, djb, tmp_path):
    d = make_envdir(tmp_path, {})
    (d / "L").symlink_to(tmp_path / "nowhere")
    mine, theirs = golden(*both(ours, djb, "envdir", "env", "env", "-0"), cwd=tmp_path, env=BASE_ENV)
    assert_same(environment(mine), environment(theirs), "envdir with a dangling symlink")
    assert b"L=" not in mine.out


def test_envdir_without_path_searches_bin_and_usr_bin(ours, djb, tmp_path):
    make_envdir(tmp_path, {"V": b"1"})
    env = {k: v for k, v in BASE_ENV.items() if k != "PATH"}
    mine, theirs = golden(*both(ours, djb, "envdir", "env", "env", "-0"), cwd=tmp_path, env=env)
    assert mine.rc == 0, mine
    assert_same(environment(mine), environment(theirs), "envdir without PATH")


def test_envdir_empty_path_entry_means_current_directory(ours, djb, tmp_path):
    make_envdir(tmp_path, {"V": b"1"})
    write_exec(tmp_path / "here", '#!/bin/sh\necho "here V=$V"\n')
    env = {**BASE_ENV, "PATH": "/nonexistent::/usr/bin"}
    mine, theirs = golden(*both(ours, djb, "envdir", "env", "here"), cwd=tmp_path, env=env)
    assert_same(mine, theirs, "envdir with an empty PATH entry")
    assert mine == Result(0, b"here V=1\n", b"")


def make_envdir_errors(root: Path) -> None:
    make_envdir(root, {"V": b"1"})
    (root / "afile").write_text("x\n")
    (root / "withsub" / "sub").mkdir(parents=True)
    (root / "notexec").write_text("#!/bin/sh\necho no\n")
    write_exec(root / "garbage", "\x7fELF not really\n")
    (root / "bin").mkdir()
    (root / "bin" / "notexec").write_text("#!/bin/sh\necho no\n")


ENVDIR_ERRORS = {
    "no-arguments": [],
    "no-child": ["env"],
    "missing-dir": ["missing", "env"],
    "dir-is-a-file": ["afile", "env"],
    "subdirectory": ["withsub", "env"],
    "child-missing": ["env", "no-such-program-anywhere"],
    "child-path-missing": ["env", "./no-such-program"],
    "child-not-executable": ["env", "./notexec"],
    "child-not-executable-in-path": ["env", "notexec"],
    "child-bad-format": ["env", "./garbage"],
    "child-is-a-directory": ["env", "./bin"],
}


@pytest.mark.parametrize("case", ENVDIR_ERRORS)
def test_envdir_errors_match_djb(ours, djb, tmp_path, case):
    make_envdir_errors(tmp_path)
    env = {**BASE_ENV, "PATH": f"/nonexistent:{tmp_path / 'bin'}:/usr/bin"}
    mine, theirs = golden(*both(ours, djb, "envdir", *ENVDIR_ERRORS[case]), cwd=tmp_path, env=env)
    assert_same(mine, theirs, f"envdir {ENVDIR_ERRORS[case]}")
    assert mine.rc == 111


def test_envdir_messages_spelled_out(ours, tmp_path):
    make_envdir_errors(tmp_path)
    usage = Result(111, b"", b"envdir: usage: envdir dir child\n")
    assert run([ours / "envdir", "env"], cwd=tmp_path) == usage
    assert run([ours / "envdir", "withsub", "true"], cwd=tmp_path) == Result(
        111, b"", b"envdir: fatal: unable to read withsub/sub: is a directory\n"
    )
    assert run([ours / "envdir", "env", "./notexec"], cwd=tmp_path) == Result(
        111, b"", b"envdir: fatal: unable to run ./notexec: access denied\n"
    )
    mode = (tmp_path / "notexec").stat().st_mode
    assert not mode & stat.S_IXUSR


# --- svwait (svinit's: the shutdown's and the front process's waits) ------------------------------------


def svwait(ours: Path, *args) -> tuple[Result, float]:
    t0 = time.monotonic()
    res = run([ours / "svwait", *map(str, args)])
    return res, time.monotonic() - t0


def test_svwait_up_returns_once_up_and_says_what_is_not(ours, supervise, tmp_path):
    s = Service(supervise, tmp_path)
    res, took = svwait(ours, "-u", "-t", 5000, s.dir)
    assert res == Result(0, b"", b"") and took < 4
    assert s.pid() != 0
    missing = tmp_path / "nosuch"
    res, took = svwait(ours, "-u", "-t", 300, s.dir, missing)
    assert res == Result(1, f"{missing}\n".encode(), b"") and took >= 0.3
    s.close()
    (tmp_path / "other").mkdir()
    down = Service(supervise, tmp_path / "other", down=True)
    try:
        res, _ = svwait(ours, "-u", "-t", 0, down.dir)
        assert res == Result(1, f"{down.dir}\n".encode(), b"")
    finally:
        down.close()


def test_svwait_up_settled_counts_a_service_wanted_down_or_failed(ours, djb, supervise, tmp_path):
    """-s: a service whose run took itself down (`exec svc -d .`, as Debian's cron does as a user) is up
    for a moment only; -u alone waits for it to its limit (the bug: `docker run --user 1000 svinit:debian
    CMD` waited 30 s before CMD, 8 runs of 12), -u -s counts it, as one with a down file. With svinit's
    supervise (its status records run's exits), a service whose run fails again every second, or cannot
    start, counts too, and is printed; one that has not started yet does not."""
    d = make_service(tmp_path, "selfdown", f"exec {ours}/svc -d .")
    proc = subprocess.Popen([str(supervise), str(d)], stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        status = d / "supervise" / "status"
        wait_for(lambda: status.read_bytes()[17:18] == b"d" and status.read_bytes()[12:16] == bytes(4))
        res, took = svwait(ours, "-u", "-t", 300, d)
        assert res == Result(1, f"{d}\n".encode(), b"") and took >= 0.3
        res, took = svwait(ours, "-u", "-s", "-t", 5000, d)
        assert res == Result(0, b"", b"") and took < 1
        (tmp_path / "other").mkdir()
        down = Service(supervise, tmp_path / "other", down=True)
        try:
            assert svwait(ours, "-u", "-s", "-t", 0, down.dir)[0] == Result(0, b"", b"")
        finally:
            down.close()
        if supervise.parent == djb:
            return  # (djb's status records no exit, and djb's supervise writes the pid before the exec)
        failing = make_service(tmp_path, "failing", "exit 1")  # started again every second
        broken = make_service(tmp_path, "broken", "exit 0")
        (broken / "run").chmod(0o644)  # cannot start
        slow = tmp_path / "slow"  # no supervise yet: not settled
        slow.mkdir()
        procs = [
            subprocess.Popen([str(supervise), str(x)], stdin=subprocess.DEVNULL, start_new_session=True)
            for x in (failing, broken)
        ]
        try:
            wait_for(lambda: (failing / "supervise" / "status").read_bytes()[19:23] != b"\xff" * 4)
            wait_for(lambda: (broken / "supervise" / "status").read_bytes()[18:19] == b"b")
            res, took = svwait(ours, "-u", "-s", "-t", 5000, d, failing, broken)
            assert res == Result(0, f"{failing}\n{broken}\n".encode(), b"") and took < 1
            res, took = svwait(ours, "-u", "-s", "-t", 300, failing, slow)
            assert res == Result(1, f"{failing}\n{slow}\n".encode(), b"") and took >= 0.3
        finally:
            for p in procs:
                p.terminate()
                p.wait(10)
    finally:
        proc.terminate()
        proc.wait(10)


def test_svwait_down_hears_supervise_exit_at_once(ours, service, tmp_path):
    """With djb's supervise and svinit's: a timeout while supervise runs (the bad case), then svc -dx and
    svwait returns as soon as supervise has exited, long before its limit."""
    s = service()
    s.wait_up()
    res, took = svwait(ours, "-d", "-t", 300, s.dir, tmp_path / "nosuch")
    assert res == Result(1, f"{s.dir}\n".encode(), b"") and took >= 0.3
    waiter = subprocess.Popen([ours / "svwait", "-d", "-t", "20000", s.dir], stdout=subprocess.PIPE)
    time.sleep(0.2)
    assert waiter.poll() is None
    t0 = time.monotonic()
    run([ours / "svc", "-dx", s.dir])
    s.proc.wait(10)
    out, _ = waiter.communicate(timeout=10)
    assert (waiter.returncode, out) == (0, b"") and time.monotonic() - t0 < 5


def test_svwait_dash_c_sends_the_letters_then_waits(ours, service, tmp_path):
    """svwait -d -c dx: the shutdown's stop in one program, with djb's supervise and svinit's. Without -c
    the same svwait times out (the bad case): the letters are what stopped it."""
    s = service()
    s.wait_up()
    res, took = svwait(ours, "-d", "-t", 300, s.dir)
    assert res == Result(1, f"{s.dir}\n".encode(), b"") and took >= 0.3
    res, took = svwait(ours, "-d", "-c", "dx", "-t", 20000, s.dir, tmp_path / "nosuch")
    assert res == Result(0, b"", b"") and took < 5
    s.proc.wait(10)


def test_svwait_usage(ours):
    cases = ([], ["-u"], ["-x", "d"], ["-d", "-t", "x", "d"], ["-d", "-t", "-1", "d"], ["-d", "-c", "", "d"])
    cases += (["-d", "-s", "d"],)  # -s is for -u only
    for args in cases:
        res = run([ours / "svwait", *args])
        assert res.rc == 100 and b"svwait: usage: svwait -u|-d [-s] [-c letters] [-t MS] dir..." in res.err, (
            args,
            res,
        )


# --- svstamp (svinit's: the shutdown's report of when each service went down) --------------------------


def test_svstamp_prints_each_services_last_change(ours, service, tmp_path):
    """One line a DIR: the TAI64N of supervise/status's first 12 bytes (djb's record and svinit's alike),
    a new one after svc -d, and a bare @ for a DIR without a status; usage errors exit 100."""
    s = service()
    s.wait_up()
    missing = tmp_path / "nosuch"
    res = run([ours / "svstamp", s.dir, missing])
    head = (Path(s.dir) / "supervise" / "status").read_bytes()[:12].hex()
    assert res == Result(0, f"{s.dir} @{head}\n{missing} @\n".encode(), b"")
    run([ours / "svc", "-d", s.dir])
    deadline = time.monotonic() + 10
    while (Path(s.dir) / "supervise" / "status").read_bytes()[:12].hex() == head:
        assert time.monotonic() < deadline, "supervise did not record the service's stop"
        time.sleep(0.05)
    after = run([ours / "svstamp", s.dir])
    assert after.out.decode().split() == [
        str(s.dir),
        "@" + (Path(s.dir) / "supervise/status").read_bytes()[:12].hex(),
    ]
    assert after.out != res.out.splitlines(keepends=True)[0]
    assert run([ours / "svstamp"]).rc == 100
