"""Benchmark: svinit's supervision suite against djb's daemontools 0.76, measured side by side in one run.

    python bench/supervision.py [--services 1000] [--orphans 2000] [--rounds 3] [--json FILE]

Figures: RSS and PSS of svscan and of one supervise; time and memory for svscan to bring N services up
(every status file shows a pid), each service a sh script that execs sleep, as most are; the same with
each run a small static program (bench/pause.c) instead, which leaves the supervision's own cost: the
shell and sleep, the same under both, are most of the first figure; restart latency of a killed
service; orphans reaped per second by svscan as process 1 of a PID namespace; binary sizes. Each svscan
runs as process 1 of its own PID namespace. Needs root (unshare). Goals: supervise's RSS no larger than
djb's; 1000 services up within 3 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from svinit.benchmarks import finish, host_facts  # noqa: E402
from svinit.fetch import daemontools_bin  # noqa: E402
from svinit.pidns import Scanner, children_of, wait_for  # noqa: E402
from svinit.servicedir import make_service, svstatus  # noqa: E402

IMPLS = ("svinit", "djb")


def mem_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of *pid* in kB."""
    rss = pss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


class Bench:
    def __init__(self, ours: Path, djb: Path, work: Path):
        self.bins = {"svinit": ours, "djb": djb}
        self.work = work
        self.n = 0

    def scanner(self, impl: str, scandir: Path) -> Scanner:
        self.n += 1
        b = self.bins[impl]
        # svstat and friends come from the same suite; `supervise` is found first in b
        return Scanner(b / "svscan", scandir, [b], self.work / f"svscan-{self.n}.log", pid1=True)

    def fresh(self, name: str) -> Path:
        self.n += 1
        d = self.work / f"{name}-{self.n}"
        d.mkdir()
        return d

    def memory(self, impl: str) -> dict:
        d = self.fresh("mem")
        make_service(d, "a", "exec sleep 100000")
        s = self.scanner(impl, d)
        try:
            sup = wait_for(lambda: s.supervisors().get("a"), 5)
            wait_for(lambda: svstatus(d / "a")[0], 5)
            time.sleep(0.3)
            svscan_rss, svscan_pss = mem_kb(s.pid)
            sup_rss, sup_pss = mem_kb(sup)
        finally:
            s.close()
        return {
            "svscan_rss_kb": svscan_rss,
            "svscan_pss_kb": svscan_pss,
            "supervise_rss_kb": sup_rss,
            "supervise_pss_kb": sup_pss,
        }

    def many_up(self, impl: str, services: int, static_run: Path | None = None) -> dict:
        """N services up; each run is sh exec'ing sleep, or a copy of STATIC_RUN (a program that waits)."""
        d = self.fresh("many")
        for i in range(services):
            if static_run:
                (d / f"s{i:04d}").mkdir()
                shutil.copy2(static_run, d / f"s{i:04d}" / "run")
            else:
                make_service(d, f"s{i:04d}", "exec sleep 100000")
        t0 = time.monotonic()
        s = self.scanner(impl, d)
        try:
            pending = {d / f"s{i:04d}" for i in range(services)}

            def all_up() -> bool:
                for sv in list(pending):
                    if svstatus(sv)[0]:
                        pending.discard(sv)
                return not pending

            wait_for(all_up, 60, interval=0.01, what=f"{services} services up under {impl}")
            elapsed = time.monotonic() - t0
            sups = children_of(s.pid)
            total_rss = sum(mem_kb(p)[0] for p in sups) + mem_kb(s.pid)[0]
            total_pss = sum(mem_kb(p)[1] for p in sups) + mem_kb(s.pid)[1]
        finally:
            s.close()
        return {
            "seconds": elapsed,
            "supervision_rss_mb": total_rss / 1024,
            "supervision_pss_mb": total_pss / 1024,
        }

    def restart_latency(self, impl: str, kills: int) -> dict:
        """From SIGKILL of the service to: its status showing a new pid; and that new process having
        exec'd run (its /proc/PID/exe no longer supervise). djb's supervise writes the new pid right after
        fork, before the exec; svinit's once the exec succeeded (so that a run that cannot start is seen)."""
        d = self.fresh("restart")
        make_service(d, "a", "exec sleep 100000")
        s = self.scanner(impl, d)
        to_status, to_exec = [], []
        try:
            for _ in range(kills):
                nspid = wait_for(lambda: svstatus(d / "a")[0], 5)
                time.sleep(1.1)  # both wait 1 s between starts; measure a restart that need not wait
                host = s.ns.host_pid(nspid)
                t0 = time.monotonic()
                os.kill(host, signal.SIGKILL)
                new = wait_for(
                    lambda: svstatus(d / "a")[0] not in (0, nspid) and svstatus(d / "a")[0],
                    5,
                    interval=0.0002,
                )
                to_status.append(time.monotonic() - t0)
                newhost = wait_for(lambda: s.ns.host_pid(new), 5, interval=0.0002)

                def execd() -> bool:
                    try:
                        return not os.readlink(f"/proc/{newhost}/exe").endswith("supervise")
                    except OSError:
                        return False

                wait_for(execd, 5, interval=0.0002)
                to_exec.append(time.monotonic() - t0)
        finally:
            s.close()
        return {
            "median_ms": statistics.median(to_status) * 1000,
            "max_ms": max(to_status) * 1000,
            "exec_median_ms": statistics.median(to_exec) * 1000,
        }

    def orphans(self, impl: str, count: int) -> dict:
        d = self.fresh("orphans")
        fifo = d.parent / f"release-{self.n}"
        os.mkfifo(fifo)
        ready = d.parent / f"ready-{self.n}"
        make_service(
            d,
            "storm",
            f"""
i=0
while [ $i -lt {count} ]; do (exec cat {fifo} > /dev/null &); i=$((i+1)); done
touch {ready}
exec sleep 100000""",
        )
        s = self.scanner(impl, d)
        try:
            wait_for(lambda: ready.exists(), 120, what="the orphans to be started")
            wait_for(lambda: len(children_of(s.pid)) >= count, 30, what="the orphans under process 1")
            base = len(children_of(s.pid)) - count
            with open(f"/proc/{s.pid}/task/{s.pid}/children") as f:
                f.read()
            t0 = time.monotonic()
            fd = os.open(fifo, os.O_WRONLY)
            os.close(fd)

            def reaped() -> bool:
                with open(f"/proc/{s.pid}/task/{s.pid}/children") as f:
                    return len(f.read().split()) <= base

            wait_for(reaped, 30, interval=0.002, what=f"{count} orphans reaped by {impl}")
            elapsed = time.monotonic() - t0
        finally:
            s.close()
        return {"seconds": elapsed, "per_second": count / elapsed}

    def sizes(self, impl: str) -> dict:
        b = self.bins[impl]
        out = {}
        files = {}  # svinit's programs are hard links to one multi-call file: counted once
        for prog in ("svscan", "supervise", "svc", "svstat", "svok", "multilog"):
            p = b / prog
            out[prog] = p.stat().st_size if p.exists() else None
            if p.exists():
                files[(p.stat().st_dev, p.stat().st_ino)] = p.stat().st_size
        out["together"] = sum(files.values())
        out["files"] = len(files)
        out["linkage"] = "static (musl)" if impl == "svinit" else "dynamic (glibc, not counted)"
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--orphans", type=int, default=2000)
    ap.add_argument(
        "--rounds", type=int, default=3, help="repetitions of the timed measures (median reported)"
    )
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        ap.error("needs root: every svscan runs as process 1 of its own PID namespace (unshare)")

    subprocess.run(["make", "-C", str(ROOT / "init"), "-s"], check=True)
    ours = ROOT / "init" / "build"
    res: dict = {"host": host_facts()}
    with tempfile.TemporaryDirectory(prefix="svinit-bench-") as tmp:
        pause = Path(tmp) / "pause"
        subprocess.run(
            ["musl-gcc", "-static", "-Os", "-o", str(pause), str(ROOT / "bench" / "pause.c")], check=True
        )
        b = Bench(ours, daemontools_bin(), Path(tmp))
        # the services-up rounds alternate between the two, so that a slow spell of a noisy host falls on both
        ups: dict = {(impl, kind): [] for impl in IMPLS for kind in ("many_up", "many_up_static")}
        for n in range(args.rounds):
            print(f"{args.services} services up, round {n + 1} of {args.rounds} ...", file=sys.stderr)
            for impl in IMPLS:
                ups[impl, "many_up"].append(b.many_up(impl, args.services))
                ups[impl, "many_up_static"].append(b.many_up(impl, args.services, static_run=pause))
        for impl in IMPLS:
            print(f"[{impl}] memory, restart latency, orphans ...", file=sys.stderr)
            r = {"sizes": b.sizes(impl), "memory": b.memory(impl)}
            for kind in ("many_up", "many_up_static"):
                r[kind] = {k: statistics.median(u[k] for u in ups[impl, kind]) for k in ups[impl, kind][0]}
            r["restart"] = b.restart_latency(impl, args.kills)
            orph = [b.orphans(impl, args.orphans) for _ in range(args.rounds)]
            r["orphans"] = {k: statistics.median(o[k] for o in orph) for k in orph[0]}
            res[impl] = r

    o, d = res["svinit"], res["djb"]

    n = args.services
    rows = [  # (measure, section, key, unit, scale)
        ("svscan RSS", "memory", "svscan_rss_kb", "kB", 1),
        ("svscan PSS", "memory", "svscan_pss_kb", "kB", 1),
        ("supervise RSS", "memory", "supervise_rss_kb", "kB", 1),
        ("supervise PSS", "memory", "supervise_pss_kb", "kB", 1),
        (f"{n} services up (run: sh, exec sleep)", "many_up", "seconds", "s", 1),
        (f"{n} services up (run: a static program)", "many_up_static", "seconds", "s", 1),
        (f"  RSS of svscan + supervise ({n})", "many_up", "supervision_rss_mb", "MB", 1),
        (f"  PSS of svscan + supervise ({n})", "many_up", "supervision_pss_mb", "MB", 1),
        ("restart: kill to new pid in status, median", "restart", "median_ms", "ms", 1),
        ("restart: kill to new run exec'd, median", "restart", "exec_median_ms", "ms", 1),
        (f"{args.orphans} orphans reaped", "orphans", "seconds", "s", 1),
        ("orphans reaped per second (higher is better)", "orphans", "per_second", "/s", 1),
        ("size of the six programs together", "sizes", "together", "KiB", 1 / 1024),
    ]
    print(
        f"\nhost: {res['host']['cpus']} cpus, load {res['host']['load'][0]:.2f},"
        f" kernel {res['host']['kernel']}"
    )
    print("\n| measure | svinit | djb 0.76 | svinit/djb |\n|---|---|---|---|")
    for name, section, key, unit, scale in rows:
        a, b = o[section][key] * scale, d[section][key] * scale
        ratio = a / b if b else float("nan")
        print(f"| {name} | {a:.3g} {unit} | {b:.3g} {unit} | {ratio:.2f} |")
    print(
        f"\n(sizes of svscan, supervise, svc, svstat, svok, multilog: svinit {o['sizes']['linkage']}, "
        f"{o['sizes']['files']} file(s): links to one multi-call file that holds all svinit's programs; "
        f"djb {d['sizes']['linkage']}, {d['sizes']['files']} files)"
    )
    goals = {
        "supervise RSS <= djb's": o["memory"]["supervise_rss_kb"] <= d["memory"]["supervise_rss_kb"],
        f"{args.services} services up within 3 s": o["many_up"]["seconds"] <= 3.0,
    }
    return finish(res, goals, args.json)


if __name__ == "__main__":
    sys.exit(main())
