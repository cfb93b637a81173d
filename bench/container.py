"""Benchmark: `docker stop` and start-up with 10 services and their loggers, under svinit, tini and djb's
svscan, side by side in one run.

    python bench/container.py [--rounds 5] [--services 10] [--images svinit,tini,djb] [--baseline TAG]
                              [--json FILE]

Three images, run in turn round after round, share the same 10 services (each writes a numbered line
every 10 ms and, on TERM, a last line "stopped N") and the same logger (multilog t ./main):
  svinit   svinit:alpine with the bench services in /service
  tini     Debian's tini-static as process 1 (-g: signals go to the whole process group), running each
           service piped into its logger from a start script: no supervision, no stop order
  djb      Debian's daemontools 0.76 svscan as process 1, running djb's supervise
Figures: start to every service's first line logged (multilog's stamp minus Docker's StartedAt); `docker
stop` to exit; the exit code; lines lost (numbers missing below the last number a service wrote, or the
last line). Goals for svinit: stop under 0.5 s median with exit 0 and no line lost; start under 100 ms.

On Debian (`--bases debian`, also run by default): svinit:debian (nginx and cron with their loggers)
against Debian's tini as process 1 running nginx on the very same base image, svinit-base:debian12
(`--entrypoint /usr/bin/tini ... -- nginx -g 'daemon off;'`): start to nginx answering (connects from
the host to the container's address, every 2 ms), for svinit also start to every service and logger up
(their supervise/status stamps), `docker stop` to exit, the exit code; and the archive's size,
compressed and installed.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import socket
import statistics
import sys
import tarfile
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402

from svinit.benchmarks import finish, host_facts  # noqa: E402
from svinit.build import DEBIAN_IMAGE, build_container  # noqa: E402
from svinit.build.init import dist_archive  # noqa: E402
from svinit.fetch import daemontools_bin, debian_package  # noqa: E402
from svinit.fetch.debian_base import DEFAULT_TAG as DEBIAN_BASE  # noqa: E402
from svinit.svstat import parse_status  # noqa: E402
from svinit.tai64n import Tai64n  # noqa: E402

SERVICE_RUN = """#!/bin/sh
exec 2>&1
n=0
trap 'echo "stopped $n"; exit 0' TERM
echo started
while :; do
  n=$((n + 1))
  echo "$n"
  sleep 0.01 &
  wait $!
done
"""
LOG_RUN = "#!/bin/sh\nexec multilog t ./main\n"
TINI_START = """#!/bin/sh
# every service piped into its logger; tini -g sends TERM to all of them at once
for s in /service/*/; do
  (cd "$s" && ./run | (cd log && exec ./run)) &
done
wait
"""
DOCKERFILES = {
    "svinit": "FROM svinit:alpine\nRUN rm -rf /service/heartbeat /service/crond /service/syslogd\n"
    "COPY service/ /service/\n",
    "tini": "FROM svinit:alpine\nRUN rm -rf /service\nCOPY service/ /service/\n"
    "COPY tini-static start /bench/\n"
    'ENTRYPOINT ["/bench/tini-static", "-g", "--", "/bench/start"]\n',
    "djb": "FROM svinit:alpine\nRUN rm -rf /service\nCOPY service/ /service/\nCOPY djb/ /opt/djb/\n"
    "COPY glibc/ /\nENV PATH=/opt/djb:/usr/bin:/bin:/usr/sbin:/sbin\n"
    'ENTRYPOINT ["/opt/djb/svscan", "/service"]\n',
}


def build_images(
    client: docker.DockerClient, services: int, names: list[str], baseline: str | None = None
) -> dict[str, str]:
    """The bench images of *names*; "baseline" is svinit's set-up over the image *baseline* (an earlier
    build of svinit:alpine), to compare two builds in one run."""
    build_container(client=client)
    tags = {}
    for name in names:
        dockerfile = (
            DOCKERFILES[name]
            if name != "baseline"
            else f"FROM {baseline}\n" + DOCKERFILES["svinit"].split("\n", 1)[1]
        )
        with tempfile.TemporaryDirectory() as tmp:
            ctx = Path(tmp)
            (ctx / "Dockerfile").write_text(dockerfile)
            for i in range(services):
                d = ctx / "service" / f"s{i:02d}"
                (d / "log").mkdir(parents=True)
                (d / "run").write_text(SERVICE_RUN)
                (d / "log" / "run").write_text(LOG_RUN)
                (d / "run").chmod(0o755)
                (d / "log" / "run").chmod(0o755)
            if name == "tini":  # (name "baseline" has svinit's services, above)
                shutil.copy2(debian_package("tini") / "usr/bin/tini-static", ctx / "tini-static")
                (ctx / "start").write_text(TINI_START)
                (ctx / "start").chmod(0o755)
            if name == "djb":
                (ctx / "djb").mkdir()
                for prog in ("svscan", "supervise", "svc", "svstat", "svok"):
                    shutil.copy2(daemontools_bin() / prog, ctx / "djb" / prog)
                for lib in ("/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6"):
                    dest = ctx / "glibc" / lib.lstrip("/")
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(os.path.realpath(lib), dest)
            tag = f"svinit-bench:{name}"
            client.images.build(path=str(ctx), tag=tag, rm=True, pull=False)
            tags[name] = tag
    return tags


def started_at(container) -> float:
    s = container.attrs["State"]["StartedAt"]  # 2026-11-24T03:40:01.123456789Z
    whole, frac = s.rstrip("Z").split(".")
    base = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").timestamp() - time.timezone
    return base + float("0." + frac)


def read_logs(container, services: int) -> dict[str, list[tuple[float, str]]]:
    stream, _ = container.get_archive("/service")
    tar = tarfile.open(fileobj=io.BytesIO(b"".join(stream)))
    logs = {}
    for i in range(services):
        name = f"s{i:02d}"
        lines = []
        for member in sorted(
            m.name for m in tar.getmembers() if m.name.startswith(f"service/{name}/log/main/") and m.isfile()
        ):
            if not (member.endswith("/current") or "/@" in member):
                continue
            for line in tar.extractfile(member).read().decode(errors="replace").splitlines():
                stamp, _, text = line.partition(" ")
                lines.append((Tai64n.from_label(stamp).unix, text))
        logs[name] = lines
    return logs


def lost_lines(lines: list[tuple[float, str]]) -> int:
    nums = {int(t) for _, t in lines if t.isdigit()}
    last = [t for _, t in lines if t.startswith("stopped ")]
    top = int(last[-1].split()[1]) if last else (max(nums) if nums else 0)
    missing = sum(1 for n in range(1, top + 1) if n not in nums)
    return missing + (0 if last else 1)  # no "stopped N": the last line was lost (or never written)


def one_round(client: docker.DockerClient, tag: str, services: int) -> dict:
    c = client.containers.run(tag, detach=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            count = "cat /service/*/log/main/current 2>/dev/null | grep -c started"
            rc, out = c.exec_run(["sh", "-c", count])
            if out.strip().isdigit() and int(out) >= services:
                break
            time.sleep(0.05)
        time.sleep(1.0)  # let them write a while
        t0 = time.monotonic()
        c.stop(timeout=10)
        stop = time.monotonic() - t0
        c.reload()
        logs = read_logs(c, services)
        t_start = started_at(c)
        firsts = [next((t for t, x in lines if x == "started"), None) for lines in logs.values()]
        up = max(firsts) - t_start if all(firsts) else float("nan")
        return {
            "stop_s": stop,
            "exit": c.attrs["State"]["ExitCode"],
            "start_to_up_ms": up * 1000,
            "lost": sum(lost_lines(lines) for lines in logs.values()),
        }
    finally:
        c.remove(force=True)


def wait_http(container, port: int, timeout: float = 30) -> float:
    """Connects from the host to the container's *port* every 2 ms until it accepts; returns that time."""
    container.reload()
    ip = next(n["IPAddress"] for n in container.attrs["NetworkSettings"]["Networks"].values())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((ip, port), timeout=0.2):
                return time.time()
        except OSError:
            time.sleep(0.002)
    raise RuntimeError(f"{container.name}: nothing answered on {ip}:{port} within {timeout} s")


def all_up_at(container) -> float:
    """When the last of the services and loggers of /service came up: their supervise/status stamps."""
    stream, _ = container.get_archive("/service")
    tar = tarfile.open(fileobj=io.BytesIO(b"".join(stream)))
    stamps = []
    for m in tar.getmembers():
        if m.name.endswith("/supervise/status"):
            st = parse_status(tar.extractfile(m).read(), m.name)
            assert st.up, f"{m.name}: not up"
            stamps.append(st.changed.unix)
    return max(stamps)


def debian_round(client: docker.DockerClient, which: str) -> dict:
    if which == "svinit":
        c = client.containers.run(DEBIAN_IMAGE, detach=True)
        port = 8080
    else:
        c = client.containers.run(
            DEBIAN_BASE, ["--", "nginx", "-g", "daemon off;"], entrypoint="/usr/bin/tini", detach=True
        )
        port = 80
    try:
        c.reload()
        t_start = started_at(c)
        answering = wait_http(c, port) - t_start
        up = float("nan")
        if which == "svinit":
            deadline = time.monotonic() + 10
            while True:  # nginx answers; cron and the loggers may be a moment behind
                try:
                    up = all_up_at(c) - t_start
                    break
                except AssertionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        time.sleep(0.5)
        t0 = time.monotonic()
        c.stop(timeout=10)
        stop = time.monotonic() - t0
        c.reload()
        return {
            "stop_s": stop,
            "exit": c.attrs["State"]["ExitCode"],
            "start_to_answer_ms": answering * 1000,
            "start_to_all_up_ms": up * 1000,
        }
    finally:
        c.remove(force=True)


def archive_sizes() -> dict:
    """The archive (make -C init dist): its size, and what it installs (its files' bytes, and in 4 KiB
    blocks as on ext4 or overlay2)."""
    archive = dist_archive()
    with tarfile.open(archive) as t:
        files = [m for m in t.getmembers() if m.isfile()]
    blocks = sum(-(-m.size // 4096) for m in files)
    return {
        "archive": archive.name,
        "compressed_bytes": archive.stat().st_size,
        "installed_file_bytes": sum(m.size for m in files),
        "installed_disk_bytes": blocks * 4096,
        "files": len(files),
    }


def debian_bench(client: docker.DockerClient, rounds: int) -> dict:
    build_container(base="debian", client=client)
    out = {}
    for which in ("svinit", "tini"):
        print(f"[debian {which}] {rounds} rounds ...", file=sys.stderr)
        rs = [debian_round(client, which) for _ in range(rounds)]
        out[which] = {
            "stop_s_median": statistics.median(r["stop_s"] for r in rs),
            "stop_s_max": max(r["stop_s"] for r in rs),
            "exit_codes": sorted({r["exit"] for r in rs}),
            "start_to_answer_ms_median": statistics.median(r["start_to_answer_ms"] for r in rs),
            "start_to_all_up_ms_median": statistics.median(r["start_to_all_up_ms"] for r in rs),
            "rounds": rs,
        }
    s, t = out["svinit"], out["tini"]
    out["ratios"] = {
        "stop": s["stop_s_median"] / t["stop_s_median"],
        "start_to_answer": s["start_to_answer_ms_median"] / t["start_to_answer_ms_median"],
    }
    return out


def print_debian(d: dict, sizes: dict, rounds: int) -> None:
    s, t, r = d["svinit"], d["tini"], d["ratios"]
    print(
        f"\nDebian 12 (svinit:debian: nginx, cron, their loggers; tini: nginx alone), {rounds} rounds each\n"
    )
    print("| | svinit | tini | svinit / tini |\n|---|---|---|---|")
    stops = f"{s['stop_s_median']:.3f} s | {t['stop_s_median']:.3f} s | {r['stop']:.2f}"
    print(f"| docker stop to exit, median | {stops} |")
    print(f"| docker stop to exit, worst | {s['stop_s_max']:.3f} s | {t['stop_s_max']:.3f} s | |")
    print(f"| exit codes | {s['exit_codes']} | {t['exit_codes']} | |")
    print(
        f"| start to nginx answering, median | {s['start_to_answer_ms_median']:.0f} ms | "
        f"{t['start_to_answer_ms_median']:.0f} ms | {r['start_to_answer']:.2f} |"
    )
    print(f"| start to every service and logger up, median | {s['start_to_all_up_ms_median']:.0f} ms | | |")
    print(
        f"\nthe archive {sizes['archive']}: {sizes['compressed_bytes'] / 1024:.0f} KiB compressed; installs "
        f"{sizes['files']} files, {sizes['installed_file_bytes'] / 1024:.0f} KiB "
        f"({sizes['installed_disk_bytes'] / 1024:.0f} KiB on disk)"
    )


def alpine_bench(client: docker.DockerClient, args: argparse.Namespace, results: dict) -> dict[str, bool]:
    names = args.images + (["baseline"] if args.baseline else [])
    tags = build_images(client, args.services, names, args.baseline)
    # in turn, round after round: a load that comes and goes on the host falls on every image alike
    per_image = {name: [] for name in tags}
    for i in range(args.rounds):
        print(f"round {i + 1}/{args.rounds}: {', '.join(tags)}", file=sys.stderr)
        for name, tag in tags.items():
            per_image[name].append(one_round(client, tag, args.services))
    for name, rounds in per_image.items():
        results[name] = {
            "stop_s_median": statistics.median(r["stop_s"] for r in rounds),
            "stop_s_max": max(r["stop_s"] for r in rounds),
            "exit_codes": sorted({r["exit"] for r in rounds}),
            "start_to_up_ms_median": statistics.median(r["start_to_up_ms"] for r in rounds),
            "lines_lost_total": sum(r["lost"] for r in rounds),
            "rounds": rounds,
        }
    s = results["svinit"]
    print(
        f"\n{args.services} services with loggers, {args.rounds} rounds each, host load "
        f"{results['host']['load'][0]:.2f}\n"
    )
    cols = [n for n in ("svinit", "baseline", "tini", "djb") if n in results]
    heads = {"svinit": "svinit", "baseline": f"svinit {args.baseline}", "tini": "tini", "djb": "djb svscan"}
    print(f"| | {' | '.join(heads[n] for n in cols)} |\n|---{'|---' * len(cols)}|")
    keys = [
        ("docker stop to exit, median", "stop_s_median", "{:.3f} s"),
        ("docker stop to exit, worst", "stop_s_max", "{:.3f} s"),
        ("exit codes", "exit_codes", "{}"),
        ("start to all services up, median", "start_to_up_ms_median", "{:.0f} ms"),
        ("log lines lost (all rounds)", "lines_lost_total", "{}"),
    ]
    for label, key, fmt in keys:
        cells = " | ".join(fmt.format(results[n][key]) for n in cols)
        print(f"| {label} | {cells} |")
    for n in ("tini", "baseline"):
        if n in results:
            t = results[n]
            print(
                f"\nsvinit / {heads[n]}: stop {s['stop_s_median'] / t['stop_s_median']:.2f}, "
                f"start {s['start_to_up_ms_median'] / t['start_to_up_ms_median']:.2f}"
            )
    if "baseline" in results and "tini" in results:
        b, t = results["baseline"], results["tini"]
        print(
            f"{heads['baseline']} / tini: stop {b['stop_s_median'] / t['stop_s_median']:.2f}, "
            f"start {b['start_to_up_ms_median'] / t['start_to_up_ms_median']:.2f}"
        )
    goals = {
        "stop under 0.5 s median": s["stop_s_median"] < 0.5,
        "exit 0": s["exit_codes"] == [0],
        "no line lost": s["lines_lost_total"] == 0,
        "start under 100 ms": s["start_to_up_ms_median"] < 100,
    }
    return goals


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--services", type=int, default=10)
    ap.add_argument("--bases", default="alpine,debian", help="alpine, debian or both (default)")
    ap.add_argument(
        "--images",
        default="svinit,tini,djb",
        type=lambda v: v.split(","),
        help="on alpine: svinit and which peers, comma-separated (default svinit,tini,djb; djb's rounds "
        "take 10 s each, its stop being Docker's KILL)",
    )
    ap.add_argument(
        "--baseline",
        metavar="TAG",
        help="also an earlier build of svinit:alpine (e.g. main's, built with svinit build container --tag "
        "TAG), with svinit's services, in the same rounds",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if "svinit" not in args.images or not set(args.images) <= set(DOCKERFILES):
        ap.error(f"--images: svinit and any of {', '.join(DOCKERFILES)}, comma-separated")
    bases = set(args.bases.split(","))
    client = docker.from_env()
    results = {"host": host_facts()}
    goals = {}
    if "alpine" in bases:
        goals.update(alpine_bench(client, args, results))
    if "debian" in bases:
        results["debian"] = debian_bench(client, args.rounds)
        results["archive"] = archive_sizes()
        print_debian(results["debian"], results["archive"], args.rounds)
        d = results["debian"]["svinit"]
        goals["debian: stop under 0.5 s median, exit 0"] = d["stop_s_median"] < 0.5 and d["exit_codes"] == [0]
    return finish(results, goals, args.json)


if __name__ == "__main__":
    sys.exit(main())
