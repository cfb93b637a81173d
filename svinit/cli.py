"""The `svinit` command: build, boot and check svinit images. Every subcommand has --help."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from svinit import build


def cmd_build_init(args: argparse.Namespace) -> int:
    out = build.build_init(args.out)
    print(out)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """A supervision tree under svscan in a PID namespace: up, a service killed and restarted, stopped."""
    from svinit.pidns import PidNamespace, children_of, comm

    if os.geteuid() != 0:
        print("svinit demo: needs root (it runs svscan in a new PID namespace with unshare)", file=sys.stderr)
        return 2
    bindir = build.build_init()
    with tempfile.TemporaryDirectory(prefix="svinit-demo-") as tmp:
        scan = Path(tmp) / "service"
        for name in ("clock", "echo", "worker"):
            d = scan / name
            (d / "log").mkdir(parents=True)
            (d / "run").write_text(
                f'#!/bin/sh\nexec 2>&1\nwhile :; do echo "{name} alive"; sleep 0.2; done\n'
            )
            (d / "log" / "run").write_text("#!/bin/sh\nexec multilog t ./main\n")
            (d / "run").chmod(0o755)
            (d / "log" / "run").chmod(0o755)
        env = {"PATH": f"{bindir}:/usr/bin:/bin"}
        t0 = time.monotonic()
        ns = PidNamespace(
            ["sh", "-c", 'svscan "$1"; echo "svscan exited $?"', "sh", str(scan)],
            Path(tmp) / "svscan.log",
            env=env,
        )
        try:
            dirs = [str(scan / n) for n in ("clock", "echo", "worker")]
            dirs += [d + "/log" for d in dirs]
            while True:
                out = subprocess.run([bindir / "svstat", *dirs], capture_output=True, text=True).stdout
                if out.count(": up ") == 6 or time.monotonic() - t0 > 10:
                    break
                time.sleep(0.05)
            print(f"svscan brought 6 services up in {time.monotonic() - t0:.2f} s:\n{out}")
            svscan = [p for p in children_of(ns.pid) if comm(p) == "svscan"][0]
            os.kill(svscan, signal.SIGTERM)
            t1 = time.monotonic()
            ns.wait(15)
            print(f"SIGTERM: services stopped, then their loggers, in {time.monotonic() - t1:.2f} s")
            print(ns.output().strip())
            for name in ("clock", "echo", "worker"):
                lines = (scan / name / "log" / "main" / "current").read_text().splitlines()
                print(f"{name}: {len(lines)} lines logged, last: {lines[-1] if lines else '(none)'}")
        finally:
            ns.close()
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="svinit", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log progress in detail")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser("build", help="build the init package or an image")
    bsub = b.add_subparsers(dest="what", required=True, metavar="WHAT")
    bi = bsub.add_parser("init", help="build the static programs (make -C init)")
    bi.add_argument("--out", type=Path, help="build directory (default init/build)")
    bi.set_defaults(func=cmd_build_init)

    d = sub.add_parser("demo", help="the main job: build svinit and show it booting and stopping cleanly")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="svinit: %(message)s")
    try:
        return args.func(args)
    except build.BuildError as e:
        print(f"svinit: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
