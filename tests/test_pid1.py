"""svscan as process 1 of a real PID namespace: reaping, diverted signals, and surviving everything."""

from __future__ import annotations

import os
import pty
import signal
import time

import pytest

from tests.util import PidNamespace, make_service, svstatus, wait_for, write_exec, zombies_of

HOOKED = ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGPWR", "SIGWINCH", "SIGALRM"]


def test_a_storm_of_orphans_leaves_no_zombie(scanner, scandir, tmp_path):
    done = tmp_path / "done"
    # 2000 grandchildren whose parents exit at once: all are re-parented to process 1 and die there
    make_service(
        scandir,
        "storm",
        f"""
i=0
while [ $i -lt 2000 ]; do (sleep 0.01 &) ; i=$((i+1)); done
touch {done}
exec sleep 1000""",
    )
    s = scanner(scandir, pid1=True)
    wait_for(lambda: done.exists(), timeout=60, what="the storm to be started")
    wait_for(lambda: not zombies_of(s.pid), timeout=5, interval=0.1, what="no zombie children of svscan")
    assert s.ns.alive()


def test_every_diverted_signal_runs_its_hook(scanner, scandir, tmp_path):
    ran = tmp_path / "ran"
    for name in HOOKED:
        write_exec(scandir / ".svscan" / name, f'#!/bin/sh\necho "{name} $$" >> {ran}\n')
    make_service(scandir, "a", "exec sleep 1000")
    s = scanner(scandir, pid1=True)
    wait_for(lambda: svstatus(scandir / "a")[1] == "r")
    for name in HOOKED:
        os.kill(s.pid, getattr(signal, name))
        wait_for(
            lambda: (
                ran.exists() and any(line.startswith(name + " ") for line in ran.read_text().splitlines())
            ),
            timeout=3,
            what=f"the {name} hook",
        )
    assert s.ns.alive()
    assert svstatus(scandir / "a")[1] == "r", "a hook must not disturb the services"


def test_a_slow_hook_does_not_block_the_loop(scanner, scandir, tmp_path):
    write_exec(scandir / ".svscan" / "SIGUSR1", f"#!/bin/sh\ntouch {tmp_path}/usr1\nexec sleep 1000\n")
    write_exec(scandir / ".svscan" / "SIGUSR2", f"#!/bin/sh\ntouch {tmp_path}/usr2\n")
    s = scanner(scandir, pid1=True)
    os.kill(s.pid, signal.SIGUSR1)
    wait_for(lambda: (tmp_path / "usr1").exists())
    # while that hook still runs: another hook, a rescan, a service start and reaping all go on
    os.kill(s.pid, signal.SIGUSR2)
    wait_for(lambda: (tmp_path / "usr2").exists(), timeout=3, what="a second hook")
    make_service(scandir, "b", "exec sleep 1000")
    os.kill(s.pid, signal.SIGHUP)
    wait_for(lambda: svstatus(scandir / "b")[1] == "r", timeout=3, what="a service started by the rescan")
    assert not zombies_of(s.pid)


def test_without_hooks_hup_rescans_and_term_is_ignored_by_process_1(scanner, scandir):
    s = scanner(scandir, pid1=True)
    make_service(scandir, "a", "exec sleep 1000")
    os.kill(s.pid, signal.SIGHUP)
    wait_for(lambda: svstatus(scandir / "a")[1] == "r", timeout=3, what="a rescan on SIGHUP")
    os.kill(s.pid, signal.SIGTERM)
    wait_for(lambda: "SIGTERM ignored" in s.output(), what="the message")
    assert s.ns.alive() and svstatus(scandir / "a")[1] == "r"


def test_survives_every_signal_and_still_works(scanner, scandir):
    s = scanner(scandir, pid1=True)
    names = [
        "SIGTERM",
        "SIGINT",
        "SIGHUP",
        "SIGQUIT",
        "SIGUSR1",
        "SIGUSR2",
        "SIGPWR",
        "SIGWINCH",
        "SIGALRM",
        "SIGPIPE",
        "SIGSEGV",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGILL",
        "SIGTRAP",
        "SIGSYS",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGSTKFLT",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGCONT",
        "SIGCHLD",
        "SIGURG",
        "SIGIO",
    ]
    for name in names:
        os.kill(s.pid, getattr(signal, name))
    time.sleep(0.5)
    assert s.ns.alive()
    make_service(scandir, "after", "exec sleep 1000")
    os.kill(s.pid, signal.SIGALRM)
    wait_for(lambda: svstatus(scandir / "after")[1] == "r", timeout=3, what="svscan still working")


def test_finish_is_execed_as_process_1(scanner, scandir, tmp_path):
    out = tmp_path / "finish.out"
    write_exec(scandir / ".svscan" / "finish", f'#!/bin/sh\necho "$$ $1" > {out}\nexec sleep 1000\n')
    s = scanner(scandir, pid1=True)
    s.control(b"42x")
    wait_for(lambda: out.exists() and out.read_text() == "1 42\n", what="finish as pid 1 with code 42")


def read_until(fd: int, marker: bytes, timeout: float = 10) -> bytes:
    """Reads a pty until *marker* shows up; returns all that was read."""
    import select

    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    assert marker in seen, f"{marker!r} not seen on the terminal; it showed {seen!r}"
    return seen


def on_a_terminal(argv: list[str], log, env: dict[str, str] | None = None):
    """Starts *argv* as process 1 with a pty as stdin; returns (namespace, the pty's other end)."""
    primary, secondary = pty.openpty()
    ns = PidNamespace(argv, log, stdin=secondary, env=env)
    os.close(secondary)
    return ns, primary


def test_unusable_scan_directory_gives_a_shell_on_the_terminal(init_bin, tmp_path, have_unshare):
    ns, term = on_a_terminal([str(init_bin / "svscan"), str(tmp_path / "missing")], tmp_path / "out.log")
    try:
        read_until(term, b"starting /bin/sh")
        os.write(term, b"echo shell-as-pid-$$\n")
        read_until(term, b"shell-as-pid-1")
        assert "unable to chdir to" in ns.output()
    finally:
        ns.close()
        os.close(term)


def test_without_a_shell_it_waits_and_tries_again(init_bin, tmp_path, have_unshare):
    scan = tmp_path / "later"
    script = f'mount --bind /dev/null /bin/sh && exec "{init_bin}/svscan" "{scan}"'
    ns, term = on_a_terminal(
        ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script],
        tmp_path / "out.log",
        env={"PATH": f"{init_bin}:/usr/bin:/bin"},
    )
    try:
        read_until(term, b"unable to exec /bin/sh")
        read_until(term, b"trying again in 5 seconds")
        make_service(scan, "a", "exec sleep 1000")
        # /bin/sh is masked, so run cannot start; that supervise runs proves svscan got going
        wait_for(
            lambda: svstatus(scan / "a")[1] == "b", timeout=10, what="svscan to start once the dir exists"
        )
        assert ns.alive()
    finally:
        ns.close()
        os.close(term)


@pytest.mark.parametrize("letters", [b"\xff\x00garbage\n", bytes(range(256))])
def test_garbage_on_svscans_control_fifo(scanner, scandir, letters):
    s = scanner(scandir, pid1=True)
    make_service(scandir, "a", "exec sleep 1000")
    # bytes(range(256)) holds 'x', 't' and 'f': after it, svscan has been asked to end, or to start
    # nothing more, which is not garbage
    safe = bytes(b for b in letters if b not in b"xtf")
    s.control(safe)
    s.control(b"a")
    wait_for(lambda: svstatus(scandir / "a")[1] == "r", timeout=3)
    assert s.ns.alive()
