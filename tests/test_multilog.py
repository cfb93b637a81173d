"""multilog and tai64nlocal: compared with daemontools 0.76's on the same input, and tested for losing
nothing (EOF, TERM, SIGKILL of the logger, a full disk).

Everything runs the real static binaries built from init/src; djb's come from Debian's daemontools.
The pipe tests hold both ends of the logger's stdin pipe open, as svscan does.
"""

from __future__ import annotations

import datetime
import fcntl
import gzip
import os
import random
import re
import signal
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from svinit import ROOT
from svinit.build.init import make_lock
from tests.util import wait_for

STAMP = re.compile(rb"^@[0-9a-f]{24} ", re.MULTILINE)
OLD = re.compile(r"^@[0-9a-f]{24}\.[su]$")


@pytest.fixture(scope="module")
def ours() -> Path:
    """svinit's build directory, with multilog and tai64nlocal made (only those, so this module does
    not depend on the other programs)."""
    with make_lock(ROOT / "init"):
        proc = subprocess.run(
            ["make", "-C", str(ROOT / "init"), "-s", "build/multilog", "build/tai64nlocal"],
            check=False,
            capture_output=True,
            text=True,
        )
    assert proc.returncode == 0, f"make failed:\n{proc.stdout}\n{proc.stderr}"
    return ROOT / "init" / "build"


# Helpers.


def run(prog: Path, args: list[str], data: bytes, cwd: Path, env: dict | None = None):
    return subprocess.run(
        [str(prog), *args], input=data, cwd=cwd, capture_output=True, timeout=60, env=env, check=False
    )


def logs(d: Path) -> bytes:
    """Everything a log directory holds, oldest first: the @ files by name, then current."""
    names = sorted(p.name for p in d.iterdir() if OLD.match(p.name))
    return b"".join((d / n).read_bytes() for n in names) + (d / "current").read_bytes()


def layout(d: Path) -> list[tuple]:
    """The deterministic shape of a log directory: per file (kind, size, mode), oldest @ file first."""
    out = []
    for n in sorted(os.listdir(d)):
        st = (d / n).stat()
        kind = "@." + n[-1] if OLD.match(n) else n
        out.append((kind, st.st_size, oct(st.st_mode & 0o7777)))
    return out


def missing_numbers(text: bytes, n: int) -> None:
    """Asserts that each of 0..n-1 appears as a line of *text* (after any TAI64N label)."""
    seen = set()
    for ln in STAMP.sub(b"", text).split(b"\n"):
        if ln.isdigit():
            seen.add(int(ln))
    missing = [i for i in range(n) if i not in seen]
    assert not missing, f"{len(missing)} of {n} lines lost, first {missing[:10]}"


def pipe_held() -> tuple[int, int]:
    """A pipe whose both ends the test keeps, as svscan keeps the service-to-logger pipe."""
    r, w = os.pipe()
    return r, w


def pending(fd: int) -> int:
    buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    return int.from_bytes(buf, sys.byteorder)


def start_logger(prog: Path, args: list[str], stdin: int, cwd: Path, stderr=subprocess.PIPE):
    return subprocess.Popen([str(prog), *args], stdin=stdin, stderr=stderr, cwd=cwd)


def wait_started(d: Path) -> None:
    wait_for(lambda: (d / "current").exists(), what=f"{d}/current")


# tai64nlocal.

TAI = 4611686018427387914  # 2^62 + 10


def label(unix: int, nano: int) -> bytes:
    return b"@%016x%08x" % (TAI + unix, nano)


TAI_INPUT = b"".join(
    [
        label(0, 0) + b" epoch\n",
        label(951782400, 123456789) + b" leap day 2000\n",
        label(1711846799, 999999999) + b" just before a DST change\n",
        label(1711846800, 1) + b" just after\n",
        label(1730595600, 5) + b" US DST end\n",
        label(4102444800, 42) + b"no space after the label\n",
        b"plain line\n",
        b"\n",
        b"  @" + label(1, 1)[1:] + b" not at the start\n",
        label(1000, 0) + b"ABCD upper case is not part of the label\n",
        b"@00" + label(1600000000, 7)[1:] + b" 26 digits: the last 8 are nanoseconds, the rest seconds\n",
        label(1600000000, 7) + b"\n",
        b"last line without newline",
    ]
)
# POSIX TZ strings carry their rules: a bare "EST5EDT" is read as a zoneinfo file by glibc but not by musl.
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "EST5EDT,M3.2.0,M11.1.0",
    "CET-1CEST,M3.5.0,M10.5.0/3",
]


@pytest.mark.parametrize("tz", ZONES)
def test_tai64nlocal_agrees_with_djb(ours, djb_bin, tmp_path, tz):
    env = {"TZ": tz, "PATH": "/usr/bin:/bin"}
    a = run(ours / "tai64nlocal", [], TAI_INPUT, tmp_path, env)
    b = run(djb_bin / "tai64nlocal", [], TAI_INPUT, tmp_path, env)
    assert (a.returncode, b.returncode) == (0, 0), (a.stderr, b.stderr)
    assert a.stdout == b.stdout
    if tz == "UTC":
        assert b"2000-02-29 00:00:00.123456789 leap day 2000\n" in a.stdout


def test_tai64nlocal_label_cut_by_eof_prints_nothing(ours, djb_bin, tmp_path):
    data = b"first\n" + label(5, 5)[:10]
    a = run(ours / "tai64nlocal", [], data, tmp_path, {"TZ": "UTC"})
    b = run(djb_bin / "tai64nlocal", [], data, tmp_path, {"TZ": "UTC"})
    assert a.stdout == b.stdout == b"first\n"


def test_tai64nlocal_keeps_a_label_out_of_range(ours, tmp_path):
    # djb's crashes here (localtime fails); ours copies the line unchanged.
    r = run(ours / "tai64nlocal", [], b"@1 x\n@ y\n", tmp_path, {"TZ": "UTC"})
    assert (r.returncode, r.stdout) == (0, b"@1 x\n@ y\n")


def test_djb_tai64nlocal_reads_our_stamps(ours, djb_bin, tmp_path):
    before = time.time()
    r = run(ours / "multilog", ["t", "./log"], b"one\ntwo\n\nfour", tmp_path)
    after = time.time()
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "log" / "current").read_bytes()
    assert len(STAMP.findall(text)) == 4, text
    for tz in ("Europe/Paris", "UTC"):
        a = run(ours / "tai64nlocal", [], text, tmp_path, {"TZ": tz}).stdout
        b = run(djb_bin / "tai64nlocal", [], text, tmp_path, {"TZ": tz}).stdout
        assert a == b
    assert [ln[29:] for ln in a.decode().splitlines()] == [" one", " two", " ", " four"]
    # The label is the time of the line, within the run, and tai64nlocal prints it.
    sec, nano = int(text[1:17], 16) - TAI, int(text[17:25], 16)
    assert before - 1 <= sec + nano / 1e9 <= after + 1
    utc = datetime.datetime.fromtimestamp(sec, datetime.UTC)
    assert a.startswith(utc.strftime("%Y-%m-%d %H:%M:%S").encode() + b".%09d one\n" % nano)


# Selection, e, and the files on disk, against djb's multilog.

SELECT_INPUT = b"".join(
    [
        b"hello world\n",
        b"error: disk on fire\n",
        b"warning: low fuel\n",
        b"debug x=1\n",
        b"\n",
        b"xfyfoo tricky star\n",  # djb's '*' stops at the first 'f': "*foo*" does not match this
        b"foo\n",
        b"A" * 250 + b" long for e\n",
        b"B" * 1200 + b"error past the 1000 bytes patterns see\n",
        b"error" + b"C" * 3000 + b"\n",
        b"tail without newline: error",
    ]
)
SCRIPTS = [
    ["e", "./all"],
    ["-*", "+error:*", "e", "./errors", "+*", "-debug*", "./nodebug"],
    ["-*foo*", "./nofoo", "+*", "-*error*", "e", "./noerror"],
    ["-*", "+*", "-", "./noempty"],
    ["+*", "-*e*", "./ee"],
    # With t a pattern sees the label: "*d" would stop at a hex digit d in it, so patterns skip "@* ".
    ["t", "-@* debug*", "e", "./stamped", "-*", "+@* error*", "./errors"],
]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: " ".join(s))
def test_selection_and_e_match_djb(ours, djb_bin, tmp_path, script):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = run(ours / "multilog", script, SELECT_INPUT, tmp_path / "a")
    b = run(djb_bin / "multilog", script, SELECT_INPUT, tmp_path / "b")
    assert (a.returncode, b.returncode) == (0, 0), (a.stderr, b.stderr)
    assert STAMP.sub(b"", a.stderr) == STAMP.sub(b"", b.stderr)
    for d in [x for x in script if x.startswith("./")]:
        ca = (tmp_path / "a" / d / "current").read_bytes()
        cb = (tmp_path / "b" / d / "current").read_bytes()
        if script[0] == "t":
            assert len(STAMP.findall(ca)) == len(STAMP.findall(cb)) > 0
            ca, cb = STAMP.sub(b"", ca), STAMP.sub(b"", cb)
        assert ca == cb, d
        assert layout(tmp_path / "a" / d) == layout(tmp_path / "b" / d)


def test_eof_ends_the_last_line(ours, tmp_path):
    r = run(ours / "multilog", ["./log"], b"a\nb", tmp_path)
    assert r.returncode == 0
    assert (tmp_path / "log" / "current").read_bytes() == b"a\nb\n"
    st = (tmp_path / "log" / "current").stat()
    assert st.st_mode & 0o777 == 0o744  # closed cleanly: the next multilog appends


def rotation_input(seed: int) -> bytes:
    """Lines of 600 to 3000 bytes (so djb's 512-byte buffering cuts no two newlines into one write and its
    rotation points are deterministic), and some longer than a whole file."""
    rnd = random.Random(seed)
    out = []
    for i in range(120):
        n = rnd.choice([rnd.randint(600, 3000)] * 5 + [rnd.randint(5000, 9000)])
        out.append(b"%05d " % i + bytes([97 + i % 26]) * n + b"\n")
    return b"".join(out)


@pytest.mark.parametrize("stdin", ["pipe", "file"])
@pytest.mark.parametrize(
    "script", [["s4096", "n100", "./all", "n3", "./log"], ["s5000", "n5", "./log", "s9999", "n2", "./two"]]
)
def test_rotation_matches_djb(ours, djb_bin, tmp_path, script, stdin):
    data = rotation_input(len(script))  # about 300 KB
    for run_no in range(2):  # the second run appends to the current the first left complete
        part = data[: len(data) // (run_no + 1)]
        for who, prog in (("a", ours), ("b", djb_bin)):
            (tmp_path / who).mkdir(exist_ok=True)
            if stdin == "pipe":
                r = run(prog / "multilog", script, part, tmp_path / who)
            else:  # a regular file: read(2), not tee(2)
                (tmp_path / "input").write_bytes(part)
                with open(tmp_path / "input", "rb") as f:
                    r = subprocess.run(
                        [prog / "multilog", *script],
                        stdin=f,
                        cwd=tmp_path / who,
                        capture_output=True,
                        check=False,
                    )
            assert r.returncode == 0, r.stderr
        for d in [x for x in script if x.startswith("./")]:
            la, lb = layout(tmp_path / "a" / d), layout(tmp_path / "b" / d)
            assert la == lb
            assert logs(tmp_path / "a" / d) == logs(tmp_path / "b" / d)
            num = int([x for x in script[: script.index(d)] if x[0] == "n"][-1][1:])
            assert 0 < [k for k, _, _ in la].count("@.s") <= num - 1


def test_unfinished_current_is_kept_as_u_like_djb(ours, djb_bin, tmp_path):
    for who, prog in (("a", ours), ("b", djb_bin)):
        d = tmp_path / who / "log"
        d.mkdir(parents=True)
        (d / "current").write_bytes(b"left by a killed logger, no newline")
        (d / "current").chmod(0o644)
        r = run(prog / "multilog", ["./log"], b"new\n", tmp_path / who)
        assert r.returncode == 0
    assert layout(tmp_path / "a" / "log") == layout(tmp_path / "b" / "log")
    assert [k for k, _, _ in layout(tmp_path / "a" / "log")] == ["@.u", "current", "lock", "state"]
    assert (tmp_path / "a" / "log" / "current").read_bytes() == b"new\n"


def test_alrm_rotates(ours, tmp_path):
    r, w = pipe_held()
    p = start_logger(ours / "multilog", ["./log"], r, tmp_path)
    try:
        os.write(w, b"before\n")
        wait_for(lambda: (tmp_path / "log" / "current").read_bytes() == b"before\n")
        p.send_signal(signal.SIGALRM)
        wait_for(lambda: [k for k, _, _ in layout(tmp_path / "log")] == ["@.s", "current", "lock", "state"])
        os.write(w, b"after\n")
        wait_for(lambda: (tmp_path / "log" / "current").read_bytes() == b"after\n")
    finally:
        p.terminate()
        assert p.wait(10) == 0
        os.close(r)
        os.close(w)


# Lock and usage.


@pytest.mark.parametrize("first", ["ours", "djb"])
def test_second_logger_on_a_dir_refuses(ours, djb_bin, tmp_path, first):
    holder = (ours if first == "ours" else djb_bin) / "multilog"
    r, w = pipe_held()
    p = start_logger(holder, ["./log"], r, tmp_path)
    try:
        wait_started(tmp_path / "log")
        second = run(ours / "multilog", ["./log"], b"x\n", tmp_path)
        assert second.returncode == 111
        assert b"multilog: fatal: unable to lock directory ./log" in second.stderr
        if first == "ours":
            assert run(djb_bin / "multilog", ["./log"], b"x\n", tmp_path).returncode == 111
    finally:
        os.close(w)
        p.wait(10)
        os.close(r)


# Actions djb's multilog reads without refusing: a logger that would not start backs its service up.

ODD_SCRIPTS = [
    ["x", "zzz", "", "./log"],  # unknown: ignored
    ["tt", "efoo", "./log"],  # read as t and e
    ["sfoo", "n", "./log", "s100x", "n3x", "./two"],  # numbers as djb's scan_ulong: 0 when none, then clamped
    ["./log", "t", "-*", "+0001*", "./ones"],  # t not first: ignored
    [],
]


@pytest.mark.parametrize("script", ODD_SCRIPTS, ids=lambda s: " ".join(s) or "empty")
def test_odd_actions_are_read_like_djb(ours, djb_bin, tmp_path, script):
    data = rotation_input(7)
    for who in ("a", "b"):
        (tmp_path / who).mkdir()
    a = run(ours / "multilog", script, data, tmp_path / "a")
    b = run(djb_bin / "multilog", script, data, tmp_path / "b")
    assert (a.returncode, b.returncode) == (0, 0), (a.stderr, b.stderr)
    warnings = [ln for ln in a.stderr.splitlines(keepends=True) if ln.startswith(b"multilog: warning: ")]
    assert STAMP.sub(b"", a.stderr.replace(b"".join(warnings), b"")) == STAMP.sub(b"", b.stderr)
    for d in [x for x in script if x.startswith("./")]:
        la, lb = logs(tmp_path / "a" / d), logs(tmp_path / "b" / d)
        assert STAMP.sub(b"", la) == STAMP.sub(b"", lb) and la.count(b"\n") == lb.count(b"\n")
        assert layout(tmp_path / "a" / d) == layout(tmp_path / "b" / d)
    for bad in ("x", "zzz", ""):
        if bad in script:
            assert b"multilog: warning: unknown action ignored: %s\n" % bad.encode() in warnings


def test_bad_directory_is_fatal(ours, tmp_path):
    (tmp_path / "file").write_text("")
    r = run(ours / "multilog", ["./file"], b"x\n", tmp_path)
    assert r.returncode == 111
    assert b"multilog: fatal: unable to open directory ./file" in r.stderr


# TERM.


def test_term_finishes_the_line_and_drains_the_pipe(ours, tmp_path):
    r, w = pipe_held()
    p = start_logger(ours / "multilog", ["./log"], r, tmp_path)
    try:
        wait_started(tmp_path / "log")
        p.send_signal(signal.SIGSTOP)  # so the bytes are still in the pipe when TERM arrives
        os.write(w, b"one\ntwo\nthr")
        p.send_signal(signal.SIGTERM)
        p.send_signal(signal.SIGCONT)
        time.sleep(0.3)
        os.write(w, b"ee\nafter TERM\n")
        assert p.wait(5) == 0
        assert (tmp_path / "log" / "current").read_bytes() == b"one\ntwo\nthree\n"
        os.set_blocking(r, False)
        assert os.read(r, 100) == b"after TERM\n"  # left for the next logger
    finally:
        os.close(r)
        os.close(w)


def test_term_ends_a_partial_line_within_a_second(ours, tmp_path):
    r, w = pipe_held()
    p = start_logger(ours / "multilog", ["t", "./log"], r, tmp_path)
    try:
        wait_started(tmp_path / "log")
        os.write(w, b"one\npart")
        wait_for(lambda: pending(r) == 0)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        assert p.wait(5) == 0
        assert 0.8 < time.monotonic() - t0 < 3
        assert STAMP.sub(b"", (tmp_path / "log" / "current").read_bytes()) == b"one\npart\n"
    finally:
        os.close(r)
        os.close(w)


def test_term_is_not_held_up_by_a_continuous_writer(ours, tmp_path):
    r, w = pipe_held()
    p = start_logger(ours / "multilog", ["s16777215", "./log"], r, tmp_path)
    writer = subprocess.Popen(["yes", "a line from a writer that never stops"], stdout=w)
    try:
        wait_for(lambda: (tmp_path / "log" / "current").stat().st_size > 100000)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        assert p.wait(5) == 0
        assert time.monotonic() - t0 < 3
        text = logs(tmp_path / "log")
        assert text.endswith(b"\n")
        assert set(text.split(b"\n")[:-1]) == {b"a line from a writer that never stops"}
    finally:
        writer.kill()
        writer.wait()
        os.close(r)
        os.close(w)


# Losing nothing: SIGKILL and a full disk.

# Writes the numbers 0, 1, ... one line per write(2), as fast as it can, up to argv[1] or until TERM;
# prints how many it wrote on stderr.
WRITER = """
import os, signal, sys
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
i, limit = 0, int(sys.argv[1])
while not stop and i < limit:
    os.write(1, b"%d\\n" % i)
    i += 1
sys.stderr.write("%d\\n" % i)
"""


def test_lost_line_detector_catches_a_lost_line():
    text = b"".join(b"@4000000000000000%08x %d\n" % (i, i) for i in range(1000))
    missing_numbers(text, 1000)
    damaged = text.replace(b" 567\n", b"\n")
    with pytest.raises(AssertionError, match="1 of 1000 lines lost, first \\[567\\]"):
        missing_numbers(damaged, 1000)
    with pytest.raises(AssertionError, match="lost"):
        missing_numbers(text[: len(text) // 2], 1000)


def kill_loggers(multilog: Path, logdir: Path, kills: int = 10) -> tuple[bytes, int]:
    """Runs a writer as fast as it can into a held pipe while loggers reading it are SIGKILLed *kills*
    times and restarted; a last logger empties the pipe and is stopped with TERM. Returns the logs and
    how many lines were written."""
    script = ["t", "s99999", "n1000", "./" + logdir.name]
    r, w = pipe_held()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, "100000000"], stdout=w, stderr=subprocess.PIPE)
    rnd = random.Random(1)
    try:
        for _ in range(kills):
            p = start_logger(multilog, script, r, logdir.parent)
            time.sleep(rnd.uniform(0.02, 0.25))
            p.kill()
            p.wait()
        p = start_logger(multilog, script, r, logdir.parent)
        writer.terminate()
        n = int(writer.communicate(timeout=30)[1])
        assert writer.returncode == 0 and n > 10000
        wait_for(lambda: pending(r) == 0, timeout=30, what="the last logger to empty the pipe")
        p.send_signal(signal.SIGTERM)
        p.wait(5)
    finally:
        writer.kill()
        os.close(r)
        os.close(w)
    return logs(logdir), n


def test_sigkill_of_the_logger_loses_no_line(ours, tmp_path):
    text, n = kill_loggers(ours / "multilog", tmp_path / "log")
    missing_numbers(text, n)
    # A logger killed before it took over the directory leaves no file of its own.
    assert len(list((tmp_path / "log").glob("@*.u"))) >= 5


def test_sigkill_check_catches_a_logger_that_loses_lines(djb_bin, tmp_path):
    """djb's multilog buffers what it reads: killed, it loses lines, and the check must say so."""
    text, n = kill_loggers(djb_bin / "multilog", tmp_path / "log")
    try:
        missing_numbers(text, n)
    except AssertionError as e:
        assert "lines lost" in str(e)
    else:
        pytest.skip("djb's multilog happened to lose nothing this time")


@pytest.fixture
def tiny_fs(tmp_path):
    """A 512 KiB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "fs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=True)


def test_full_disk_pauses_and_loses_nothing(ours, tiny_fs, tmp_path):
    filler = tiny_fs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:  # fill the filesystem to the last byte
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    os.close(fd)
    n = 40000  # about 240 KB of lines
    r, w = pipe_held()
    err = tmp_path / "stderr"
    with open(err, "wb") as errf:
        p = start_logger(ours / "multilog", ["./log"], r, tiny_fs, stderr=errf)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(n)], stdout=w, stderr=subprocess.DEVNULL)
    try:
        msg = b"multilog: warning: unable to write to ./log/current, pausing: out of disk space"
        wait_for(lambda: msg in err.read_bytes(), what="the warning")
        time.sleep(1.5)
        assert p.poll() is None, "the logger must pause, not exit"
        assert pending(r) > 0, "while paused the logger must leave its input in the pipe"
        filler.unlink()
        writer.wait(30)
        os.close(w)
        w = -1
        assert p.wait(30) == 0
    finally:
        writer.kill()
        if w != -1:
            os.close(w)
        os.close(r)
        if p.poll() is None:
            p.kill()
    text = logs(tiny_fs / "log")
    assert text == b"".join(b"%d\n" % i for i in range(n))  # all, once, in order


@pytest.mark.parametrize("script", [["s16777215", "./log"], ["t", "-@* drop*", "s16777215", "./log"]])
def test_line_longer_than_the_pipe(ours, tmp_path, script):
    r, w = pipe_held()
    p = start_logger(ours / "multilog", script, r, tmp_path)
    big = b"x" * 300000 + b"\n"
    t = threading.Thread(target=lambda: os.write(w, b"short\n" + big + b"drop " + big + b"end\n"))
    t.start()
    try:
        t.join(10)
        wait_for(lambda: pending(r) == 0)
        p.send_signal(signal.SIGTERM)
        assert p.wait(5) == 0
        text = (tmp_path / "log" / "current").read_bytes()
        if script[0] == "t":
            assert STAMP.sub(b"", text) == b"short\n" + big + b"end\n"
        else:
            assert text == b"short\n" + big + b"drop " + big + b"end\n"
    finally:
        os.close(r)
        os.close(w)


# =file: the selected line's first 1000 bytes, then newlines to 1001 bytes, at the start of the file.

EQ_SCRIPTS = [
    ["=last"],
    ["-*", "+error*", "=errors", "+*", "-", "=nonempty", "./log"],
    ["t", "=last", "e"],
    ["=last", "-*", "=never"],
]


@pytest.mark.parametrize("script", EQ_SCRIPTS, ids=lambda s: " ".join(s))
def test_eq_file_matches_djb(ours, djb_bin, tmp_path, script):
    for who in ("a", "b"):
        (tmp_path / who).mkdir()
    a = run(ours / "multilog", script, SELECT_INPUT, tmp_path / "a")
    b = run(djb_bin / "multilog", script, SELECT_INPUT, tmp_path / "b")
    assert (a.returncode, b.returncode) == (0, 0), (a.stderr, b.stderr)
    assert STAMP.sub(b"", a.stderr) == STAMP.sub(b"", b.stderr)
    for f in [x[1:] for x in script if x.startswith("=")]:
        fa, fb = (tmp_path / "a" / f).read_bytes(), (tmp_path / "b" / f).read_bytes()
        assert len(fa) == len(fb) and layout(tmp_path / "a") == layout(tmp_path / "b")
        if script[0] == "t":
            assert STAMP.match(fa) and STAMP.match(fb)
            fa, fb = fa[26:], fb[26:]
        assert fa == fb, f
    if script == ["=last"]:  # the last line has no newline: EOF ends it
        assert (tmp_path / "a" / "last").read_bytes() == b"tail without newline: error" + b"\n" * 974


def test_eq_file_keeps_what_is_past_1001_bytes_like_djb(ours, djb_bin, tmp_path):
    """djb's writes 1001 bytes at the start and never truncates: a longer file keeps its tail and mode."""
    for who, prog in (("a", ours), ("b", djb_bin)):
        (tmp_path / who).mkdir()
        (tmp_path / who / "st").write_bytes(b"z" * 3000)
        (tmp_path / who / "st").chmod(0o640)
        r = run(prog / "multilog", ["=st"], b"one\n" + b"L" * 1500 + b"\n", tmp_path / who)
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "a" / "st").read_bytes() == (tmp_path / "b" / "st").read_bytes()
    assert (tmp_path / "a" / "st").read_bytes() == b"L" * 1000 + b"\n" + b"z" * 1999
    assert layout(tmp_path / "a") == layout(tmp_path / "b") == [("st", 3000, "0o640")]


def test_eq_file_that_cannot_be_created_is_fatal_like_djb(ours, djb_bin, tmp_path):
    a = run(ours / "multilog", ["=nodir/x", "./log"], b"x\n", tmp_path)
    b = run(djb_bin / "multilog", ["=nodir/x", "./log"], b"x\n", tmp_path)
    assert (
        (a.returncode, a.stderr)
        == (b.returncode, b.stderr)
        == (
            111,
            b"multilog: fatal: unable to create nodir/x: file does not exist\n",
        )
    )
    assert not (tmp_path / "log").exists()


@pytest.mark.parametrize("who", ["ours", "djb"])
def test_eq_file_follows_each_line(ours, djb_bin, tmp_path, who):
    prog = (ours if who == "ours" else djb_bin) / "multilog"
    r, w = pipe_held()
    p = start_logger(prog, ["-*", "+up *", "=status"], r, tmp_path)
    try:
        for line in (b"up 1", b"ignored", b"up 2"):
            os.write(w, line + b"\n")
            if line.startswith(b"up"):
                expected = line + b"\n" * (1001 - len(line))
                wait_for(lambda: (tmp_path / "status").read_bytes() == expected, what=line.decode())
    finally:
        os.close(w)
        p.wait(10)
        os.close(r)


def lines_upto(data: bytes, n: int) -> bytes:
    """The whole lines of *data* that fit in its first *n* bytes."""
    return data[: data.rindex(b"\n", 0, n) + 1]


# !processor: each rotation of the later directories goes through `sh -c processor`.

# Numbers its rotations in state, and upper-cases what it processes.
PROCESSOR = 'n=$(cat <&4); n=$((${n:-0} + 1)); echo "rotation $n"; tr a-z A-Z; echo "$n" >&5\n'


def test_processor_matches_djb(ours, djb_bin, tmp_path):
    proc = tmp_path / "proc.sh"
    proc.write_text(PROCESSOR)
    script = ["s5000", "./plain", "n5", f"!sh {proc}", "./log", "n3", "!gzip", "./gz"]
    data = lines_upto(rotation_input(5), 40000)
    for who, prog in (("a", ours), ("b", djb_bin)):
        (tmp_path / who).mkdir()
        r = run(prog / "multilog", script, data, tmp_path / who)
        assert r.returncode == 0, r.stderr
    for d in ("plain", "log", "gz"):
        assert layout(tmp_path / "a" / d) == layout(tmp_path / "b" / d), d
    assert logs(tmp_path / "a" / "plain") == data
    log = logs(tmp_path / "a" / "log")
    assert log == logs(tmp_path / "b" / "log")
    assert re.match(rb"rotation \d+\n\d{5} [A-Z]+\n", log), log[:100]
    assert (tmp_path / "a" / "log" / "state").read_bytes() == (tmp_path / "b" / "log" / "state").read_bytes()
    numbers = [int(n) for n in re.findall(rb"rotation (\d+)\n", log)]  # a file may end mid-line
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # state carried from one to the next
    assert int((tmp_path / "a" / "log" / "state").read_bytes()) == numbers[-1] >= 5

    def gunzipped(d: Path) -> bytes:
        names = sorted(p.name for p in d.iterdir() if p.name.endswith(".s"))
        return b"".join(gzip.decompress((d / n).read_bytes()) for n in names) + (d / "current").read_bytes()

    assert gunzipped(tmp_path / "a" / "gz") == gunzipped(tmp_path / "b" / "gz")
    assert data.endswith(gunzipped(tmp_path / "a" / "gz"))


def test_failing_processor_is_run_again_like_djb(ours, djb_bin, tmp_path):
    """The processor fails the first time (djb's pauses 5 s, ours 1 s), then works: nothing is lost."""
    data = lines_upto(rotation_input(8), 9000)
    err = {}
    for who, prog in (("a", ours), ("b", djb_bin)):
        (tmp_path / who).mkdir()
        flaky = "if [ -e ../failed ]; then cat; else touch ../failed; exit 3; fi"
        r = run(prog / "multilog", ["s4096", f"!{flaky}", "./log"], data, tmp_path / who)
        assert r.returncode == 0, r.stderr
        err[who] = r.stderr
    assert layout(tmp_path / "a" / "log") == layout(tmp_path / "b" / "log")
    assert logs(tmp_path / "a" / "log") == logs(tmp_path / "b" / "log") == data
    assert err["b"] == b"multilog: warning: processor failed in ./log, pausing\n"
    assert (
        err["a"] == f"multilog: warning: processor {flaky} failed in ./log (exit code 3), pausing\n".encode()
    )


def start_failing(ours: Path, tmp_path: Path, stderr):
    """A logger whose processor always fails, fed lines until it has tried the processor once."""
    r, w = pipe_held()
    p = start_logger(ours / "multilog", ["s4096", "!cat; exit 1", "./log"], r, tmp_path, stderr=stderr)
    data = b"".join(b"%d\n" % i for i in range(2000))  # about 9 KB: one rotation at least
    os.write(w, data)
    return p, r, w, data


def test_term_while_the_processor_fails_keeps_previous_and_drains(ours, tmp_path):
    err = tmp_path / "stderr"
    with open(err, "wb") as errf:
        p, r, w, data = start_failing(ours, tmp_path, errf)
    try:
        wait_for(
            lambda: b"failed in ./log (exit code 1), pausing" in err.read_bytes(),
            what="the processor to fail",
        )
        assert p.poll() is None and (tmp_path / "log" / "previous").exists()
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
        assert b"giving up the processor in ./log at TERM" in err.read_bytes()
        assert logs(tmp_path / "log") == data  # the unprocessed rotation kept as @....u, in order
        assert [k for k, _, _ in layout(tmp_path / "log")][:1] == ["@.u"]
        assert not (tmp_path / "log" / "previous").exists()
    finally:
        os.close(r)
        os.close(w)


def test_sigkill_while_the_processor_fails_loses_nothing(ours, tmp_path):
    p, r, w, data = start_failing(ours, tmp_path, subprocess.PIPE)
    try:
        wait_for(lambda: (tmp_path / "log" / "previous").exists(), what="a rotation")
        time.sleep(0.5)  # the processor fails and is paused; the rest of the input waits in the pipe
        p.kill()
        p.wait()
        os.close(w)
        w = -1
        nxt = start_logger(ours / "multilog", ["s4096", "./log"], r, tmp_path)
        assert nxt.wait(10) == 0
        # The unprocessed rotation is kept as @....u; the batch it cut is read again, so lines may repeat.
        missing_numbers(logs(tmp_path / "log"), len(data.splitlines()))
        assert "@.u" in [k for k, _, _ in layout(tmp_path / "log")]
    finally:
        os.close(r)
        if w != -1:
            os.close(w)


# What a start makes of a directory whose logger died during a rotation through a processor.
INTERRUPTED = {
    "processor-running": {
        "previous": (b"P\n", 0o744),
        "processed": (b"half", 0o644),
        "newstate": (b"2", 0o644),
    },
    "processed-complete": {
        "previous": (b"P\n", 0o744),
        "processed": (b"X\n", 0o744),
        "newstate": (b"2", 0o644),
    },
    "before-processor": {"previous": (b"P\n", 0o744)},
    "clean-current": {"previous": (b"P\n", 0o744), "processed": (b"X\n", 0o744)},
}


@pytest.mark.parametrize("case", INTERRUPTED)
def test_start_after_an_interrupted_processor_matches_djb(ours, djb_bin, tmp_path, case):
    for who, prog in (("a", ours), ("b", djb_bin)):
        d = tmp_path / who / "log"
        d.mkdir(parents=True)
        files = {**INTERRUPTED[case], "state": (b"1", 0o644), "current": (b"C\n", 0o644)}
        if case == "clean-current":
            files["current"] = (b"C\n", 0o744)
        for name, (content, mode) in files.items():
            (d / name).write_bytes(content)
            (d / name).chmod(mode)
        r = run(prog / "multilog", ["./log"], b"new\n", tmp_path / who)
        assert r.returncode == 0, r.stderr
    la, lb = layout(tmp_path / "a" / "log"), layout(tmp_path / "b" / "log")
    assert la == lb
    assert logs(tmp_path / "a" / "log") == logs(tmp_path / "b" / "log")
    for name in ("previous", "processed"):
        pa, pb = tmp_path / "a" / "log" / name, tmp_path / "b" / "log" / name
        assert pa.exists() == pb.exists() and (not pa.exists() or pa.read_bytes() == pb.read_bytes())
