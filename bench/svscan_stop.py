"""Benchmark: how long svscan's own stop (`t` on .svscan/control) takes, as process 1 of a PID namespace.

    python bench/svscan_stop.py [--services 200] [--rounds 3] [--svscan PATH] [--json FILE]

N services, each `exec sleep` with a `multilog t ./main` logger, all up (every status file shows a pid);
then `3t` is written to DIR/.svscan/control and the clock runs until process 1 has exited. Also checked
each round: exit code 3, every service's supervise record older than its logger's (TAI64N), no supervise
left. Needs root (unshare). Goal: 200 services with loggers stopped in well under 1 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.util import Scanner, make_service, svstatus, wait_for  # noqa: E402


def stamp(svdir: Path) -> bytes:
    """The TAI64N of a service's last change, from its supervise/status (12 bytes, big-endian: sortable)."""
    return (svdir / "supervise" / "status").read_bytes()[:12]


def one_round(svscan: Path, bins: Path, work: Path, n: int) -> dict:
    scandir = work / "service"
    scandir.mkdir(parents=True)
    for i in range(n):
        make_service(scandir, f"s{i:03d}", "echo up; exec sleep 100000", log="exec multilog t ./main")
    s = Scanner(svscan, scandir, [bins], work / "svscan.log", pid1=True)
    try:
        svdirs = [d for i in range(n) for d in (scandir / f"s{i:03d}", scandir / f"s{i:03d}" / "log")]
        wait_for(lambda: all(svstatus(d)[1] == "r" for d in svdirs), 60, 0.1, "every service and logger up")
        t0 = time.monotonic()
        s.control(b"3t")
        code = s.ns.wait(60)
        took = time.monotonic() - t0
        out_of_order = [d.name for d in svdirs[::2] if stamp(d) >= stamp(d / "log")]
        still_up = [str(d) for d in svdirs if svstatus(d)[0]]
        return {"seconds": round(took, 3), "exit": code, "out_of_order": out_of_order, "still_up": still_up}
    finally:
        s.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--svscan", type=Path, default=ROOT / "init" / "build" / "svscan")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    subprocess.run(["make", "-C", str(ROOT / "init"), "-s"], check=True)
    bins = ROOT / "init" / "build"
    rounds = []
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="svscan-stop-") as tmp:
            res = one_round(args.svscan, bins, Path(tmp), args.services)
        print(
            f"round {r + 1}: {args.services} services with loggers, `3t` to exit: {res['seconds']:.3f} s, "
            f"exit {res['exit']}, out of order {len(res['out_of_order'])}, still up {len(res['still_up'])}"
        )
        rounds.append(res)
    med = statistics.median(r["seconds"] for r in rounds)
    ok = all(r["exit"] == 3 and not r["out_of_order"] and not r["still_up"] for r in rounds)
    print(f"median {med:.3f} s over {len(rounds)} rounds; {'clean' if ok else 'NOT clean'}")
    if args.json:
        args.json.write_text(
            json.dumps({"services": args.services, "median": med, "rounds": rounds}, indent=1)
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
