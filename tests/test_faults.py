"""The fault campaign of issue 7, in the time a test may take (bench/faults.py has the full counts): boot
and stop cycles of a fast writer, docker stop soon after docker run, SIGKILL of each part of the
supervision tree while the writer writes, bad input (garbage on the control FIFOs, broken service
directories, a service that exits at once, 1001 services, a full log disk), a fork storm, 200 services with
loggers, the signals to process 1, docker restart, pause and unpause, and svinit under Docker's --init.

Each stop is judged by the library's verdict (svinit.checks: exit code, stop time, every service down
before its logger, logs complete), with a stop limit of 5 s: far under Docker's 10 s, so a stop that
waits for Docker's SIGKILL fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from svinit.container import ContainerMachine
from svinit.evidence import Evidence, collect_stop
from svinit.machine import CommandFailed, Timeout, retry
from svinit.pidns import wait_for
from svinit.servicedir import KEEP_ALL_LOG, NUMBERED_WRITER
from svinit.svstat import NotSupervised, Status
from svinit.verdicts import verdict
from tests.util import make_service, write_exec

pytestmark = pytest.mark.slow

STOP_LIMIT = 5.0

WRITER = NUMBERED_WRITER
KEEP_ALL = KEEP_ALL_LOG


def writer(pace: int = 0) -> str:
    return WRITER.format(pace=pace)


def mount(root: Path, name: str, run: str, log: str | None = None) -> dict[str, dict[str, str]]:
    """A service directory made on the host under *root*, bind-mounted on /service/NAME."""
    d = make_service(root, name, run, log)
    return {str(d): {"bind": f"/service/{name}", "mode": "rw"}}


def seq_numbers(lines: list[str]) -> dict[int, list[int]]:
    """{writer pid: its numbers, in log order} from log lines "@STAMP seq PID N" (other lines skipped)."""
    out: dict[int, list[int]] = {}
    for line in lines:
        parts = line.split(" ")
        if len(parts) == 4 and parts[1] == "seq" and parts[2].isdigit() and parts[3].isdigit():
            out.setdefault(int(parts[2]), []).append(int(parts[3]))
    return out


def read_counts(path: Path) -> dict[int, int]:
    """{writer pid: lines it wrote} from the writer's ./count (only the instances that ended on TERM)."""
    if not path.exists():
        return {}
    return {int(a): int(b) for a, b in (line.split() for line in path.read_text().splitlines())}


def lost_lines(numbers: dict[int, list[int]], counts: dict[int, int], rotated_away: bool = False) -> dict:
    """{pid: how many of its lines are missing}: below what it counted (or, killed, below the highest
    number logged). A repeated line is no loss. With *rotated_away*, numbers below the first one kept
    are not counted (multilog removed the oldest files)."""
    lost = {}
    for pid in set(numbers) | set(counts):
        seen = set(numbers.get(pid, []))
        top = counts.get(pid, max(seen) + 1 if seen else 0)
        low = min(seen) if rotated_away and seen else 0
        n = sum(1 for i in range(low, top) if i not in seen)
        if n:
            lost[pid] = n
    return lost


def logdir_lines(d: Path) -> list[str]:
    """Every line of a multilog directory on the host, oldest first: the finished files (@*.s), those
    a killed multilog left (@*.u), then current."""
    files = sorted(d.glob("@*.[su]")) + [d / "current"]
    return "".join(f.read_text() for f in files if f.exists()).splitlines()


def container_log_lines(m: ContainerMachine, logdir: str) -> list[str]:
    """Every line of a multilog directory in a (stopped) container, oldest first: @*.s, @*.u, current.
    (svinit.checks.read_scan_tree reads @*.s and current only.)"""
    with m.archive(logdir) as tar:
        files = {Path(t.name).name: t for t in tar.getmembers() if t.isfile()}
        names = sorted(n for n in files if n.startswith("@") and n[-2:] in (".s", ".u")) + ["current"]
        texts = [tar.extractfile(files[n]).read() for n in names if n in files]
    return b"".join(texts).decode(errors="replace").splitlines()


def stop_and_judge(m: ContainerMachine, limit: float = STOP_LIMIT) -> Evidence:
    """docker stop, judged by the library's verdict (exit code, stop time, order, logs complete); the
    boot is not judged here (the caller waited for what it needs). Returns the evidence."""
    ev = collect_stop(m)
    v = verdict(ev, stop_limit=limit)
    v.checks = [c for c in v.checks if c.name != "boot"]  # not judged here
    assert v.clean, v.table() + "\n" + m.logs()[-2000:]
    return ev


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    state: str
    cwd: str
    args: str


# One line per process of the container: pid, ppid, state, cwd, command line.
PS = r"""for d in /proc/[0-9]*; do
  s=$(cat "$d/stat" 2>/dev/null) || continue
  set -- ${s##*") "}
  printf '%s\t%s\t%s\t%s\t%s\n' "${d#/proc/}" "$2" "$1" "$(readlink "$d/cwd")" \
    "$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null)"
done"""


def processes(m: ContainerMachine) -> list[Proc]:
    out = []
    for line in m.succeed(PS).splitlines():
        pid, ppid, state, cwd, args = (line.split("\t") + [""] * 5)[:5]
        if pid.isdigit() and ppid.isdigit():
            out.append(Proc(int(pid), int(ppid), state, cwd, args.strip()))
    return out


def cpu_ticks(m: ContainerMachine, pid: int) -> int:
    """utime + stime of *pid* in the container, in clock ticks."""
    fields = m.succeed(f"cat /proc/{pid}/stat").rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rescan(m: ContainerMachine) -> None:
    m.succeed("printf a > /service/.svscan/control", timeout=5)


def status_or_none(m: ContainerMachine, name: str) -> Status | None:
    try:
        return m.service_status(name)
    except (NotSupervised, CommandFailed):  # while its supervise is being restarted
        return None


# ---------------------------------------------------------------------------------------------------
# Boot and stop


def test_boot_and_stop_cycles_of_a_fast_writer_lose_no_line(svinit_container_factory, tmp_path):
    for cycle in range(5):
        root = tmp_path / f"cycle{cycle}"
        m = svinit_container_factory(volumes=mount(root, "seq", writer(), log=KEEP_ALL))
        m.wait_until_succeeds("test $(wc -c < /service/seq/log/main/current) -gt 100000")
        stop_and_judge(m)
        counts = read_counts(root / "seq" / "count")
        assert len(counts) == 1 and min(counts.values()) > 1000, counts
        numbers = seq_numbers(logdir_lines(root / "seq" / "log" / "main"))
        assert lost_lines(numbers, counts) == {}, f"cycle {cycle}"
        m.close()


def execd(m: ContainerMachine) -> bool:
    """Has the container's process 1 exec'd the image's /init? Before, it is runc's init (Go): a TERM then
    is beyond any init (Go's runtime exits 2 when the signal it raises does not kill it, as process 1 of
    a PID namespace). One loaded CI run saw exit 2 in 0.13 s with delay 0, and no log to tell which."""
    c = m.container
    c.reload()
    pid = c.attrs["State"]["Pid"]
    if not pid:
        return True
    with open(f"/proc/{pid}/comm") as f:
        return not f.read().startswith("runc")


@pytest.mark.parametrize("delay", [0, 0.01, 0.05, 0.1, 0.3])
def test_docker_stop_soon_after_docker_run_exits_0(svinit_container_factory, delay):
    """The bug: a TERM that reaches process 1 before stage 1's trap exists is dropped; Docker then
    SIGKILLs after its 10 s (exit 137). Timed from the exec of /init (see execd); a bad end keeps the
    container's log."""
    results = []
    for _ in range(4 if delay < 0.05 else 2):  # the race is likeliest early
        m = svinit_container_factory(wait=False)
        wait_for(lambda: execd(m), 10, interval=0.0005, what="process 1 to exec /init")
        time.sleep(delay)
        r = m.shutdown()
        results.append((r.exit_code, round(r.seconds, 2), "" if r.exit_code == 0 else m.logs()[-2000:]))
        m.close()
    assert all(code == 0 and s < STOP_LIMIT for code, s, _ in results), results


# ---------------------------------------------------------------------------------------------------
# SIGKILL of each part of the tree, while the writer writes

# What to kill: (the service whose tree it is, how to find the process among the container's).
TARGETS: dict[str, tuple[str, Callable[[Proc], bool]]] = {
    "service": ("seq", lambda p: p.cwd == "/service/seq" and p.args == "/bin/sh ./run"),
    "multilog": ("seq/log", lambda p: p.cwd == "/service/seq/log" and p.args.startswith("multilog ")),
    "supervise": ("seq", lambda p: p.cwd == "/service/seq" and p.args.startswith("supervise ")),
    "logger's supervise": (
        "seq/log",
        lambda p: p.cwd == "/service/seq/log" and p.args.startswith("supervise "),
    ),
    "svscan-log": (
        "svscan-log",
        lambda p: p.cwd == "/service/svscan-log" and p.args.startswith("multilog "),
    ),
}
#: The program run by each service's supervise (its one instance after the recovery).
RUNS: dict[str, Callable[[Proc], bool]] = {
    "seq": TARGETS["service"][1],
    "seq/log": TARGETS["multilog"][1],
    "svscan-log": TARGETS["svscan-log"][1],
}
SUPERVISES: dict[str, Callable[[Proc], bool]] = {
    "seq": TARGETS["supervise"][1],
    "seq/log": TARGETS["logger's supervise"][1],
    "svscan-log": lambda p: p.cwd == "/service/svscan-log" and p.args.startswith("supervise "),
}


def recovered(m: ContainerMachine, service: str, old: int) -> str:
    """'' once *service* is up again, under one supervise that is not *old*, with one instance of its
    program, none of which is *old*; else what is still wrong."""
    st = status_or_none(m, service)
    procs = processes(m)
    runs = [p.pid for p in procs if RUNS[service](p) and p.state != "Z"]
    sups = [p.pid for p in procs if SUPERVISES[service](p) and p.state != "Z"]
    if st is None or not st.up:
        return f"{service} not up ({st.describe() if st else 'no supervise'})"
    if old in runs or old in sups:
        return f"the killed process {old} is still there"
    if len(sups) != 1:
        return f"{len(sups)} supervise for {service}: {sups}"
    if len(runs) != 1 or st.pid not in runs:
        return f"{len(runs)} instances of {service}'s program ({runs}), svstat says pid {st.pid}"
    return ""


@pytest.mark.parametrize("target", list(TARGETS))
def test_sigkill_while_writing_recovers_and_loses_no_line(svinit_container_factory, tmp_path, target):
    service, match = TARGETS[target]
    root = tmp_path / "services"
    if target == "svscan-log":
        # a writer without a logger writes to svscan-log, paced: its default rotation keeps 1 MB
        m = svinit_container_factory(volumes=mount(root, "seq", writer(pace=20)))
        m.wait_until_succeeds("test $(grep -c ' seq ' /service/svscan-log/main/current) -gt 200")
    else:
        m = svinit_container_factory(volumes=mount(root, "seq", writer(), log=KEEP_ALL))
        m.wait_until_succeeds("test $(wc -c < /service/seq/log/main/current) -gt 100000")
    victims = [p.pid for p in processes(m) if match(p)]
    assert len(victims) == 1, victims
    m.succeed(f"kill -KILL {victims[0]}")
    problem: list[str] = []

    def ok() -> bool:
        problem[:] = [recovered(m, service, victims[0])]
        return not problem[0]

    try:
        retry(lambda _: ok(), m.timeout(4), what=f"{service} to recover")
    except Timeout:
        table = "\n".join(f"  {p.pid} {p.ppid} {p.state} {p.cwd} {p.args}" for p in processes(m))
        pytest.fail(f"4 s after SIGKILL of the {target} ({victims[0]}): {problem[0]}\n{table}")
    time.sleep(0.5)  # the writer goes on writing through the new tree
    stop_and_judge(m)
    counts = read_counts(root / "seq" / "count")
    if target == "svscan-log":
        numbers = seq_numbers(container_log_lines(m, "/service/svscan-log/main"))
    else:
        numbers = seq_numbers(logdir_lines(root / "seq" / "log" / "main"))
    assert numbers, "no line of the writer logged"
    assert lost_lines(numbers, counts, rotated_away=target == "svscan-log") == {}, numbers.keys()


# ---------------------------------------------------------------------------------------------------
# Bad input: process 1 lives on, and the stop is still clean

# Bytes that are no command to supervise or svscan (their commands are lower-case letters and digits).
GARBAGE = bytes(b for b in range(256) if not (ord("a") <= b <= ord("z") or ord("0") <= b <= ord("9")))


def test_garbage_on_every_control_fifo_is_ignored(svinit_container_factory, tmp_path):
    junk = tmp_path / "garbage"
    junk.write_bytes(GARBAGE * 64)  # 12 KiB each
    m = svinit_container_factory(volumes={str(junk): {"bind": "/garbage", "mode": "ro"}})
    before = {n: s.pid for n, s in m.statuses().items()}
    fifos = "/service/*/supervise/control /service/*/log/supervise/control /service/.svscan/control"
    out = m.succeed(f"for f in {fifos}; do cat /garbage > $f && echo $f; done", timeout=20)
    assert len(out.splitlines()) == len(before) + 1, out
    time.sleep(1)
    assert m.succeed("cat /proc/1/comm").strip() == "svscan"
    after = {n: s.pid for n, s in m.statuses().items()}
    assert after == before, "garbage restarted or stopped something"
    rescan(m)
    stop_and_judge(m)


def broken(kind: str, root: Path) -> None:
    """A broken service directory of *kind* under *root* (a staging directory)."""
    d = root / kind
    if kind == "no-run":
        d.mkdir(parents=True)
        (d / "README").write_text("no run here\n")
    elif kind == "run-not-executable":
        d.mkdir(parents=True)
        (d / "run").write_text("#!/bin/sh\nexec sleep 100000\n")
        (d / "run").chmod(0o644)
    elif kind == "symlink-loop":
        root.mkdir(parents=True, exist_ok=True)
        (root / "loop").symlink_to("loop")
        (root / "loop-a").symlink_to("loop-b")
        (root / "loop-b").symlink_to("loop-a")
    elif kind == "log-is-a-file":
        write_exec(d / "run", "#!/bin/sh\necho log-is-a-file up\nexec sleep 100000\n")
        (d / "log").write_text("not a directory\n")


def add_services(m: ContainerMachine, stage: str) -> None:
    """Moves what the directory *stage* (in the container) holds into /service, each entry renamed into
    place at once (svscan never sees half a service), and asks svscan to rescan."""
    m.succeed(
        f"mkdir -p /service/.new && cp -a {stage}/. /service/.new/ && cd /service/.new && "
        'for f in * .[!.]*; do [ -e "$f" ] || [ -L "$f" ] && mv "$f" ..; done; '
        "cd / && rmdir /service/.new && printf a > /service/.svscan/control",
        timeout=60,
    )


@pytest.mark.parametrize("kind", ["no-run", "run-not-executable", "symlink-loop", "log-is-a-file"])
def test_broken_service_directory_at_run_time(svinit_container_factory, tmp_path, kind):
    stage = tmp_path / "stage"
    broken(kind, stage)
    make_service(stage, "after", "exec sleep 100000")
    m = svinit_container_factory(volumes={str(stage): {"bind": "/stage", "mode": "ro"}})
    add_services(m, "/stage")
    # svscan went past the broken one: a good service added with it comes up
    assert m.wait_for_service("after", timeout=10).up
    if kind == "log-is-a-file":
        assert m.wait_for_service(kind, timeout=10).up
    time.sleep(1.5)  # a retry or two of what is broken
    assert m.succeed("cat /proc/1/comm").strip() == "svscan"
    assert m.wait_for_service("heartbeat").up
    stop_and_judge(m)


def test_a_run_that_exits_at_once_costs_little_cpu(svinit_container_factory, tmp_path):
    m = svinit_container_factory(volumes=mount(tmp_path, "quick", "exit 0"), wait=False)
    m.wait_for_service("heartbeat")
    m.wait_until_succeeds("test -e /service/quick/supervise/status")
    sup = [p.pid for p in processes(m) if p.cwd == "/service/quick" and p.args.startswith("supervise ")]
    assert len(sup) == 1, sup
    t0, s0, p0 = time.monotonic(), cpu_ticks(m, sup[0]), cpu_ticks(m, 1)
    time.sleep(5)
    s1, p1, elapsed = cpu_ticks(m, sup[0]), cpu_ticks(m, 1), time.monotonic() - t0
    share = {"supervise": (s1 - s0) / 100 / elapsed, "svscan": (p1 - p0) / 100 / elapsed}
    assert all(v < 0.05 for v in share.values()), share
    st = m.service_status("quick")
    assert not st.up and st.want == "u"
    stop_and_judge(m)


def test_1001_services_at_run_time_then_docker_stop(svinit_container_factory, tmp_path):
    """The bug: svscan has 1000 slots; with every one taken, the shutdown (itself a service) never
    starts, and docker stop waits for Docker's SIGKILL."""
    stage = tmp_path / "stage"
    for i in range(1001):
        make_service(stage, f"m{i:04d}", "exec sleep 100000")
    m = svinit_container_factory(volumes={str(stage): {"bind": "/stage", "mode": "ro"}})
    add_services(m, "/stage")
    count = "ls -d /service/m*/supervise/status 2>/dev/null | wc -l"
    m.wait_until_succeeds(f"test $({count}) -ge 990", timeout=60)
    assert m.succeed("cat /proc/1/comm").strip() == "svscan"
    r = m.shutdown()
    assert (r.exit_code, r.seconds < STOP_LIMIT + 3) == (0, True), (r, m.logs()[-1500:])


def test_a_full_log_disk_pauses_multilog_and_loses_nothing(svinit_container_factory, tmp_path):
    # 60000 lines "seq PID N" (~1 MB), then nothing: the log is a 1 MB tmpfs, 700 KB of it taken by a
    # filler, so multilog meets a full disk; the filler's removal gives it room for the rest.
    run = (
        "while [ ! -e ./go ]; do sleep 0.1; done\n"
        'i=0; while [ $i -lt 60000 ]; do echo "seq $$ $i"; i=$((i + 1)); done\n'
        "touch ./written; exec sleep 100000"
    )
    vols = mount(tmp_path, "seq", run, log="exec multilog s16777215 ./main")
    (tmp_path / "seq" / "log" / "main").mkdir()
    m = svinit_container_factory(volumes=vols, tmpfs={"/service/seq/log/main": "size=1m"})
    logdir = "/service/seq/log/main"
    m.succeed(f"dd if=/dev/zero of={logdir}/filler bs=1k count=700 2>/dev/null; touch /service/seq/go")
    m.wait_until_succeeds(f"test $(df -k {logdir} | awk 'NR==2 {{print $4}}') -lt 8", timeout=20)
    time.sleep(1)
    assert m.fail("test -e /service/seq/written") == "", "the writer finished: the disk never filled"
    assert m.service_status("seq/log").up, "multilog died of the full disk"
    m.succeed(f"rm {logdir}/filler")
    every = f'for f in {logdir}/@*.s {logdir}/current; do [ ! -f "$f" ] || cat "$f"; done'
    m.wait_until_succeeds(f"test $({every} | wc -l) -ge 60000", timeout=30)
    lines = m.succeed(every).splitlines()
    numbers = seq_numbers(["@ " + line for line in lines])
    assert len(numbers) == 1
    got = next(iter(numbers.values()))
    assert sorted(set(got)) == list(range(60000)), f"{60000 - len(set(got))} lines lost"
    assert got == sorted(got), "lines out of order"
    assert len(lines) == 60000, f"{len(lines) - 60000} lines too many (repeated or broken)"
    r = m.shutdown()  # the tmpfs goes with the container: the log is judged above
    assert (r.exit_code, r.seconds < STOP_LIMIT) == (0, True), r


# ---------------------------------------------------------------------------------------------------
# Load

STORM = """i=0
t0=$(date +%s)
while [ $i -lt {n} ]; do
  (: &)
  i=$((i + 1))
done
echo "$i $(( $(date +%s) - t0 ))" > ./stormed
exec sleep 100000"""


def test_a_fork_storm_leaves_no_zombie(svinit_container_factory, tmp_path):
    m = svinit_container_factory(volumes=mount(tmp_path, "storm", STORM.format(n=8000)))
    zombies = "grep -l '^State:.Z' /proc/[0-9]*/status 2>/dev/null | wc -l"
    seen = []
    deadline = time.monotonic() + m.timeout(60)
    while not (tmp_path / "storm" / "stormed").exists() and time.monotonic() < deadline:
        seen.append(int(m.succeed(zombies)))
        time.sleep(0.2)
    assert (tmp_path / "storm" / "stormed").exists(), "the storm did not end in 60 s"
    m.wait_until_succeeds(f'test "$({zombies})" -eq 0', timeout=5)
    assert max(seen, default=0) < 100, f"zombies seen during the storm: {seen}"
    assert m.succeed("cat /proc/1/comm").strip() == "svscan"
    stop_and_judge(m)


def test_200_services_with_loggers_come_up_and_stop(svinit_container_factory, tmp_path):
    stage = tmp_path / "stage"
    for i in range(200):
        make_service(stage, f"m{i:03d}", "echo up\nexec sleep 100000", log="exec multilog t ./main")
    m = svinit_container_factory(volumes={str(stage): {"bind": "/stage", "mode": "ro"}})
    t0 = time.monotonic()
    add_services(m, "/stage")
    up = m.wait_for_all_services(timeout=60)
    took = time.monotonic() - t0
    assert len(up) == 7 + 400, sorted(up)
    ev = stop_and_judge(m)
    assert len(ev.logs_after) >= 203
    assert took < m.timeout(60)


# ---------------------------------------------------------------------------------------------------
# Signals to process 1 and Docker's verbs


@pytest.mark.parametrize(
    "sig,action", [("INT", "poweroff"), ("USR1", "halt"), ("USR2", "poweroff"), ("PWR", "poweroff")]
)
def test_a_stopping_signal_stops_the_container_cleanly(svinit_container, sig, action):
    m = svinit_container
    t0 = time.monotonic()
    m.container.kill(signal=f"SIG{sig}")
    code = m.wait(timeout=STOP_LIMIT)
    assert (code, time.monotonic() - t0 < STOP_LIMIT) == (0, True)
    assert f"svinit: {action}: done in" in m.logs()


def test_hup_rescans_and_quit_and_winch_run_a_hook_or_are_ignored(svinit_container_factory, tmp_path):
    stage = tmp_path / "stage"
    make_service(stage, "new", "exec sleep 100000")
    m = svinit_container_factory(volumes={str(stage): {"bind": "/stage", "mode": "ro"}})
    before = {n: s.pid for n, s in m.statuses().items()}
    # HUP: a rescan at once (the periodic one is 5 s away)
    m.succeed("cp -a /stage/new /service/.new && mv /service/.new /service/new")
    m.container.kill(signal="SIGHUP")
    assert m.wait_for_service("new", timeout=3).up
    for sig in ("QUIT", "WINCH"):
        m.container.kill(signal=f"SIG{sig}")  # no hook: ignored
        time.sleep(1)
        assert m.is_running(), f"SIG{sig} without a hook ended the container"
        m.succeed(f"printf '#!/bin/sh\\necho $0 > /tmp/hook-{sig}\\n' > /service/.svscan/SIG{sig}")
        m.succeed(f"chmod +x /service/.svscan/SIG{sig}")
        m.container.kill(signal=f"SIG{sig}")  # the hook runs
        assert m.wait_until_succeeds(f"cat /tmp/hook-{sig}", timeout=3).strip().endswith(f"SIG{sig}")
        assert m.is_running()
    after = {n: s.pid for n, s in m.statuses().items()}
    assert {n: p for n, p in after.items() if n != "new"} == before
    stop_and_judge(m)


def test_docker_restart_boots_again_with_no_stale_state(svinit_container):
    m = svinit_container
    first = m.read_file("/service/heartbeat/log/main/current")
    t0 = time.monotonic()
    m.container.restart(timeout=10)
    assert time.monotonic() - t0 < STOP_LIMIT + 5
    up = m.wait_for_all_services(timeout=10)
    assert m.logs().count("svinit: booted (container") == 2, m.logs()
    assert "svinit-shutdown" not in m.succeed("ls /service")
    m.fail("test -e /run/svinit/stopping")
    # the real supervise again: a killed service comes back
    old = up["heartbeat"].pid
    m.succeed("svc -k /service/heartbeat")
    m.wait_until_succeeds(f"svstat /service/heartbeat | grep -v 'pid {old})' | grep -q ': up '", timeout=5)
    assert m.read_file("/service/heartbeat/log/main/current").startswith(first)
    stop_and_judge(m)


def test_docker_pause_and_unpause_mid_run_then_stop(svinit_container_factory, tmp_path):
    m = svinit_container_factory(volumes=mount(tmp_path, "seq", writer(), log=KEEP_ALL))
    m.wait_until_succeeds("test $(wc -c < /service/seq/log/main/current) -gt 100000")
    m.container.pause()
    time.sleep(1)
    m.container.unpause()
    time.sleep(0.5)
    stop_and_judge(m)
    counts = read_counts(tmp_path / "seq" / "count")
    assert lost_lines(seq_numbers(logdir_lines(tmp_path / "seq" / "log" / "main")), counts) == {}


def test_under_dockers_init_the_stop_is_clean(svinit_container_factory, tmp_path):
    """docker run --init: Docker's tini is process 1 and svinit its child. The bug: exit 137 after
    1.2 s."""
    m = svinit_container_factory(init=True, volumes=mount(tmp_path, "seq", writer(), log=KEEP_ALL))
    assert m.succeed("cat /proc/1/comm").strip() != "svscan"
    m.wait_until_succeeds("test $(wc -c < /service/seq/log/main/current) -gt 100000")
    stop_and_judge(m)
    counts = read_counts(tmp_path / "seq" / "count")
    assert counts, "the writer got no TERM: it was killed"
    assert lost_lines(seq_numbers(logdir_lines(tmp_path / "seq" / "log" / "main")), counts) == {}
