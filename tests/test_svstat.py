"""svinit.svstat: svstat's lines and the raw status records, and the SvService module on a real container."""

from __future__ import annotations

import time

import pytest

from svinit.svstat import (
    NotSupervised,
    StatusFormatError,
    SvService,
    Tai64n,
    parse_status,
    parse_svstat,
    parse_svstat_line,
)
from svinit.tai64n import TimestampError


def record(
    unix: float, pid: int = 0, paused: int = 0, want: bytes = b"u", state: bytes = b"", wait: int = 0xFFFFFFFF
) -> bytes:
    """A supervise/status record as init/src/sv.h lays it out; *state* b"" gives djb's 18 bytes."""
    t = Tai64n.from_unix(unix)
    head = t.sec.to_bytes(8, "big") + t.nano.to_bytes(4, "big") + pid.to_bytes(4, "little")
    head += bytes([paused]) + want
    return head + (state + wait.to_bytes(4, "little") if state else b"")


@pytest.mark.parametrize(
    "line,up,pid,seconds,want,paused,normally_up",
    [
        ("/service/a: up (pid 42) 17 seconds", True, 42, 17, "u", False, True),
        ("/service/a: up (pid 42) 0 seconds, normally down", True, 42, 0, "u", False, False),
        ("/service/a: up (pid 7) 3 seconds, normally down, paused, want down", True, 7, 3, "d", True, False),
        ("/service/a: down 5 seconds", False, None, 5, "d", False, False),
        ("/service/a: down 5 seconds, normally up", False, None, 5, "d", False, True),
        ("/service/a: down 1 seconds, normally up, want up", False, None, 1, "u", False, True),
    ],
)
def test_svstat_lines(line, up, pid, seconds, want, paused, normally_up):
    st = parse_svstat_line(line)
    assert (st.path, st.up, st.pid, st.seconds, st.want, st.paused, st.normally_up) == (
        "/service/a",
        up,
        pid,
        seconds,
        want,
        paused,
        normally_up,
    )
    assert st.describe() == line


def test_svstat_several_lines_and_a_colon_in_the_directory():
    out = parse_svstat("/s/a: up (pid 1) 2 seconds\n/s/b:c: down 3 seconds, normally up\n")
    assert list(out) == ["/s/a", "/s/b:c"] and out["/s/b:c"].normally_up


@pytest.mark.parametrize(
    "line,words",
    [
        ("/s/a: supervise not running", "is svscan running"),
        ("/s/a: unable to chdir: file does not exist", "is a service directory"),
    ],
)
def test_svstat_says_it_cannot_tell(line, words):
    with pytest.raises(NotSupervised, match=words):
        parse_svstat_line(line)


@pytest.mark.parametrize(
    "line,words",
    [
        ("run: (pid 12) heartbeat: 3s", "not 'DIR: STATE'"),  # runit's sv
        ("/s/a: up 12 seconds", "daemontools 0.76 format"),
        ("/s/a: up (pid 1) 2 seconds, normally up", "never prints"),
        ("/s/a: down 2 seconds, want down", "never prints"),
    ],
)
def test_svstat_unexpected_formats_say_what_to_check(line, words):
    with pytest.raises(StatusFormatError, match=words):
        parse_svstat_line(line)


def test_status_record_svinit_23_bytes():
    now = time.time()
    st = parse_status(record(now - 4.5, pid=99, state=b"r", wait=3 << 8), "/s/a", now=now)
    assert (st.up, st.pid, st.seconds, st.state, st.want) == (True, 99, 4, "r", "u")
    assert st.last_wait == 0x300 and st.exit_code == 3 and st.term_signal is None
    assert st.last_exit == "exit 3"
    assert abs(st.changed.unix - (now - 4.5)) < 1e-6


def test_status_record_signal_and_no_exit_yet():
    st = parse_status(record(time.time(), state=b"w", wait=9), "/s/a")
    assert st.term_signal == 9 and st.exit_code is None and st.last_exit == "signal 9 (KILL)"
    assert "waiting to restart" in st.describe()
    fresh = parse_status(record(time.time(), pid=5, state=b"r"), "/s/a")
    assert fresh.last_wait is None and fresh.last_exit == "none yet"


def test_status_record_djb_18_bytes():
    st = parse_status(record(time.time(), pid=5, paused=1, want=b"d"), "/s/a")
    assert (st.up, st.paused, st.want, st.state, st.last_wait) == (True, True, "d", None, None)


@pytest.mark.parametrize(
    "data,words",
    [
        (b"\0" * 10, "has 10 bytes, expected 18"),
        (b"\0" * 18, "not a TAI64N label"),
        (record(time.time(), want=b"x"), "want byte"),
        (record(time.time(), state=b"Q"), "state letter 'Q'"),
    ],
    # fixed ids: the records hold the time, and pytest-xdist's workers must collect the same names
    ids=["short", "no-tai64n", "want-byte", "state-letter"],
)
def test_bad_status_records_say_what_to_check(data, words):
    with pytest.raises(StatusFormatError, match=words):
        parse_status(data, "/s/a")


def test_tai64n_labels_order_and_unix_time():
    a = Tai64n.from_label("@4000000065a1b2c300000000")
    b = Tai64n.from_label("@4000000065a1b2c31dcd6500")
    assert a < b and abs((b - a) - 0.5) < 1e-9
    assert Tai64n.from_unix(a.unix) == a and a.label == "@4000000065a1b2c300000000"
    with pytest.raises(TimestampError, match="multilog with the 't' action"):
        Tai64n.from_label("2024-01-01 12:00:00")


# SvService, through a testinfra host on a real container.


def test_svservice_on_a_running_container(svinit_container, svinit_host):
    hb = SvService(svinit_host, "heartbeat")
    assert hb.exists and hb.is_running and hb.is_enabled and hb.is_supervised
    st = hb.status
    # svstat's pid is the record's, and the record's time stamp is the guest's clock
    assert st.pid == svinit_container.service_status("heartbeat").pid == hb.pid
    assert st.state == "r" and st.changed is not None and abs(st.changed.unix - time.time()) < 60
    assert hb.log.is_running and hb.log.pid != hb.pid
    assert repr(hb) == "<svservice heartbeat>"


def test_svservice_down_disabled_and_missing(svinit_container, svinit_host):
    svinit_container.succeed("touch /service/crond/down", "svc -d /service/crond")
    crond = SvService(svinit_host, "crond")
    svinit_container.wait_until_fails("svstat /service/crond | grep -q ': up '")
    assert not crond.is_running and not crond.is_enabled and crond.pid is None
    assert crond.status.describe().startswith("/service/crond: down ")
    assert crond.status.exit_code is None and crond.status.term_signal == 15  # crond ends on TERM
    missing = SvService(svinit_host, "nosuch")
    assert not missing.exists and not missing.is_running and not missing.is_supervised
    with pytest.raises(NotSupervised, match="is a service directory"):
        _ = missing.status
