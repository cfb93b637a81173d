"""The `svinit` command: build, boot and check svinit images. Every subcommand has --help."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from svinit import build
from svinit.commands import (
    cmd_boot,
    cmd_build_container,
    cmd_build_dist,
    cmd_build_init,
    cmd_build_vm,
    cmd_check_container,
    cmd_check_vm,
    cmd_clean,
    cmd_demo,
    cmd_run,
    cmd_verify_disk,
)
from svinit.dockerd import DEFAULT_IMAGE
from svinit.errors import SvinitError
from svinit.evidence import DEFAULT_OBSERVE
from svinit.qemu.shutdown import HOWS
from svinit.verdicts import DEFAULT_BOOT_TIMEOUT, DEFAULT_STOP_LIMIT, DEFAULT_VM_SHUTDOWN_LIMIT

log = logging.getLogger("svinit")
#: The commands whose exit code 1 means "not clean": for them, a check that could not run exits 2.
CHECKS = ("check", "verify-disk")


def _option(p: argparse.ArgumentParser, name: str, **kw) -> None:
    """Adds one of the options several subcommands share, defined here once."""
    shared = {
        "--image": dict(default=DEFAULT_IMAGE, help="a local image, never pulled (default %(default)s)"),
        "--json": dict(action="store_true", help="print the result as JSON (for CI)"),
        "--junit": dict(
            type=Path,
            metavar="FILE",
            help="also write the verdict as JUnit XML to FILE: one test case per check, a failed one "
            "with its detail (for CI)",
        ),
        "--vm": dict(type=Path, metavar="DIR", help="a `svinit build vm` output directory"),
        "--layout": dict(
            choices=("initramfs", "disk"),
            default="initramfs",
            help="the reference VM when --vm is not given: initramfs (the root) or disk (root.img) "
            "(default %(default)s)",
        ),
        "--force": dict(action="store_true", help="build even when the inputs did not change"),
    }
    spec = {**shared[name], **kw}
    p.add_argument(name, **spec)


def _seconds(p: argparse.ArgumentParser, name: str, default: float, what: str) -> None:
    p.add_argument(name, type=float, default=default, metavar="S", help=f"{what} (default %(default)g s)")


def _expect_log(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--expect-log",
        action="append",
        default=[],
        metavar="NAME",
        help="the service NAME must log: its log holding no line fails the check (repeatable)",
    )


def _artifacts(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--artifacts", type=Path, metavar="DIR", help=f"where to save {what} when not clean")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="svinit", description=__doc__)
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="svinit's progress in detail; -vv adds its libraries' debug logs (docker, QMP)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser("build", help="build the init package or an image")
    bsub = b.add_subparsers(dest="what", required=True, metavar="WHAT")
    bi = bsub.add_parser("init", help="build the static programs (make -C init)")
    bi.add_argument("--out", type=Path, metavar="DIR", help="build directory (default init/build)")
    bi.set_defaults(func=cmd_build_init)

    bd = bsub.add_parser(
        "dist",
        help="write the init package's archive, svinit-VERSION-x86_64.tar.gz (ADD it to any image root)",
        description="Writes the init package as make -C init dist packs it (from a checkout it is built "
        "now; installed from a wheel, it is the archive the wheel carries: no compiler needed) into DIR, "
        'and prints its path. ADD it to an image root and use ENTRYPOINT ["/init"].',
    )
    bd.add_argument(
        "--out", type=Path, default=Path("."), metavar="DIR", help="where to write it (default: here)"
    )
    bd.set_defaults(func=cmd_build_dist)

    bc = bsub.add_parser(
        "container",
        help="build the Alpine (or Debian) image with svinit as process 1 (cached by a hash of its sources)",
        description="Builds images/alpine/Dockerfile with the init package installed, from a local base "
        "(never pulled); with --base debian, images/debian/Dockerfile (nginx, cron) with the init package's "
        "archive on Debian 12 minbase, which mmdebstrap makes once (cached; svinit-base:debian12). The "
        "image is labelled with a hash of its sources; the build is skipped when the tag already holds "
        "that hash.",
    )
    bc.add_argument(
        "--tag", help=f"the image's tag (default {DEFAULT_IMAGE}, or {build.DEBIAN_IMAGE} with --base debian)"
    )
    bc.add_argument(
        "--base",
        default="alpine:3.23",
        help="the local base image (default %(default)s, provisioned if missing), or debian: Debian 12 "
        "minbase with nginx, cron and tini, made once by mmdebstrap and docker-imported",
    )
    _option(bc, "--force")
    bc.set_defaults(func=cmd_build_container)

    bv = bsub.add_parser(
        "vm",
        help="build a VM: kernel, initramfs, kernel command line (and a root disk)",
        description="Writes OUT/vmlinuz, OUT/initramfs.img, OUT/cmdline and, for the disk layout, "
        "OUT/root.img. The kernel is Debian's (fetched once, cached) unless --kernel names one (which then "
        "needs its drivers built in). The initramfs is written without root: static busybox, the init "
        "package, the modules of images/initramfs/modules in their load order. Cached: skipped when its "
        "inputs did not change.",
    )
    bv.add_argument("--out", type=Path, required=True, metavar="DIR", help="the output directory")
    _option(
        bv,
        "--layout",
        help="initramfs: the initramfs is the root (default); disk: root on an ext4 disk "
        "made from the svinit:alpine image, which the initramfs checks, mounts and switch_roots to",
    )
    _option(
        bv,
        "--image",
        default=None,
        help="the root disk from this local image holding svinit (its archive ADDed; never pulled): "
        "implies --layout disk",
    )
    bv.add_argument(
        "--autologin",
        action="store_true",
        help="a root shell on the console without a password (svinit.autologin; the reference VM has "
        "it, an --image VM asks for a login unless this is given)",
    )
    bv.add_argument("--kernel", type=Path, metavar="PATH", help="a kernel to use instead of Debian's")
    bv.add_argument(
        "--overlay",
        type=Path,
        metavar="DIR",
        help="files added over the root: your services in service/, boot drop-ins in etc/svinit/boot.d/, "
        "an etc/fstab (in the initramfs, or in root.img)",
    )
    _option(bv, "--force")
    bv.set_defaults(func=cmd_build_vm)

    r = sub.add_parser(
        "run",
        help="run the image (docker run --rm, or --vm: as a VM): its services, and CMD if given; exits "
        "with its code",
        description="Runs a container of the image with its services; with CMD, runs CMD once they are up "
        "and exits with CMD's exit code (128+N when signal N killed it, 127 when it does not exist). The "
        "terminal is passed through (-it) when stdin is a terminal. Stop it with Ctrl-C (terminal) or "
        "docker stop. With --vm, the same in a QEMU VM of the image (its disk layout, built once per image "
        "id and cached; each run writes to a copy-on-write overlay, thrown away after): CMD's stdin, stdout "
        "and stderr carried apart and byte for byte over virtio-serial ports (or the terminal, when stdin "
        "is one), -e for CMD and the services, -v folders shared by virtio-9p; when CMD exits the VM powers "
        "off cleanly and svinit exits with CMD's code, or 125 (and the console log kept) when the shutdown "
        "was not clean, the kernel panicked or --timeout passed. --vm without CMD gives the console.",
        usage="%(prog)s [-h] [--image IMAGE] [-e VAR=VALUE] [-v HOST:PATH[:ro]] [--read-only] [--name NAME] "
        "[--vm [DIR]] [--memory MB] [--cpus N] [--kernel PATH] [--timeout S] [-- CMD...]",
    )
    _option(r, "--image")
    r.add_argument("-e", "--env", action="append", default=[], metavar="VAR=VALUE", help="as docker run -e")
    r.add_argument(
        "-v",
        "--volume",
        action="append",
        default=[],
        metavar="HOST:PATH[:ro]",
        help="as docker run -v (with --vm: a host folder, by virtio-9p; :ro read-only)",
    )
    r.add_argument("--read-only", action="store_true", help="a read-only root, with a tmpfs on /run")
    r.add_argument("--name", help="the container's name")
    r.add_argument(
        "--vm",
        nargs="?",
        const=True,
        type=Path,
        metavar="DIR",
        help="run it in a QEMU VM: of --image (its disk layout, cached), or of the `svinit build vm` "
        "output DIR",
    )
    r.add_argument("--memory", type=int, metavar="MB", help="with --vm: the guest's memory (default 256)")
    r.add_argument("--cpus", type=int, metavar="N", help="with --vm: the guest's CPUs (default 1)")
    r.add_argument("--kernel", type=Path, metavar="PATH", help="with --vm: boot this kernel instead")
    r.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="with --vm: a run not ended after S seconds is killed (exit 125; default none)",
    )
    r.add_argument("cmd", nargs=argparse.REMAINDER, help="the command to run, after --")
    r.set_defaults(func=cmd_run)

    vd = sub.add_parser(
        "verify-disk",
        help="exit 0 only for cleanly unmounted ext2/3/4 images",
        description="Checks disk images on the host, read-only: a journaled ext4 left mounted still says "
        "'clean' but keeps the feature needs_recovery (dumpe2fs -h); a journal-less one says 'not clean'; "
        "e2fsck -fn must find nothing. Exits 0 when every image is clean, 1 when one is not, 2 when an "
        "image is missing.",
    )
    vd.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="ext2/3/4 image files")
    _option(vd, "--json")
    vd.set_defaults(func=cmd_verify_disk)

    c = sub.add_parser("check", help="prove an image boots and stops cleanly")
    csub = c.add_subparsers(dest="what", required=True, metavar="WHAT")
    cc = csub.add_parser(
        "container",
        help="boot a container, docker stop it, and judge: exit code, stop time, order, logs",
        description="Boots the image, waits until every service and logger is up (svstat), stops it with "
        "docker stop, and checks: every service stayed up with the same pid for --observe seconds (no "
        "crash loop), exit code 0, the stop far under Docker's grace, every service stopped before its "
        "logger, every log complete to its last line (and not empty for --expect-log). Exits 0 only when "
        "clean (1 when not, 2 when the check could not run); saves artifacts when not clean.",
    )
    _option(cc, "--image")
    _option(cc, "--json")
    _option(cc, "--junit")
    _artifacts(
        cc, "docker.log, the /service tree and verdict.json (default svinit-artifacts/check-DATE-TIME)"
    )
    _seconds(cc, "--stop-limit", DEFAULT_STOP_LIMIT, "the stop must take less")
    _seconds(cc, "--boot-timeout", DEFAULT_BOOT_TIMEOUT, "time for every service and logger to be up")
    _seconds(cc, "--observe", DEFAULT_OBSERVE, "then every service must stay up, with the same pid")
    _expect_log(cc)
    cc.add_argument(
        "--stop-timeout",
        type=int,
        default=10,
        metavar="S",
        help="seconds docker stop waits before SIGKILL (default %(default)s, Docker's)",
    )
    cc.set_defaults(func=cmd_check_container)

    cv = csub.add_parser(
        "vm",
        help="boot a VM, end it, and judge: ended by the guest, time, disks unmounted, order",
        description="Boots the VM (a build_vm output, or the reference VM of --layout, built if needed) "
        "with a fresh ext4 data disk (label svdata, mounted at /data) attached, waits until every service "
        "is up, writes to /data, ends it (--how) and checks: QEMU ended by the guest (QMP SHUTDOWN "
        "guest=true, reason guest-shutdown, or guest-reset for a reboot) through svinit's shutdown, in "
        "time, every ext4 disk cleanly unmounted (no needs_recovery, e2fsck -fn clean), every service "
        "stopped before its logger; every service stayed up through --observe (a crash loop fails, "
        "naming it with its log's last lines); a log holding no line is named (and fails for "
        "--expect-log). Exits 0 only when clean (1 when not, 2 when the check could not run); "
        "saves console.log and events.json when not.",
    )
    _option(cv, "--vm")
    _option(cv, "--layout")
    _option(
        cv,
        "--image",
        default=None,
        help="boot the VM of this local image holding svinit (the disk layout; built once per image id "
        "and cached)",
    )
    cv.add_argument(
        "--how",
        default="poweroff",
        choices=HOWS,
        help="how the VM is ended; crash is QMP quit, a power cut: never clean (default %(default)s)",
    )
    cv.add_argument("--no-data-disk", action="store_true", help="attach no data disk")
    _option(cv, "--json")
    _option(cv, "--junit")
    _artifacts(cv, "the console, QMP events and the verdict (default svinit-artifacts/check-vm-DATE-TIME)")
    _seconds(cv, "--shutdown-limit", DEFAULT_VM_SHUTDOWN_LIMIT, "the end may take, before the TCG factor")
    _seconds(cv, "--boot-timeout", 60.0, "time for every service to be up, before the TCG factor")
    _seconds(cv, "--observe", DEFAULT_OBSERVE, "then every service must stay up, with the same pid")
    _expect_log(cv)
    cv.set_defaults(func=cmd_check_vm)

    bt = sub.add_parser(
        "boot",
        help="boot a VM on an interactive serial console (Ctrl-] leaves)",
        description="Boots the VM (a build_vm output, or the reference VM, built if needed) and hands "
        "its serial console to this terminal: a root shell. Ctrl-] leaves, after which the VM is "
        "powered off with the ACPI power button. The disk layout's root.img is copied first unless "
        "--keep-root.",
    )
    _option(bt, "--vm")
    _option(bt, "--layout")
    bt.add_argument(
        "--disk",
        type=Path,
        action="append",
        default=[],
        metavar="IMG",
        help="attach this disk image too (an ext4 labelled svdata is mounted at /data)",
    )
    bt.add_argument("--keep-root", action="store_true", help="boot root.img itself, not a copy")
    bt.set_defaults(func=cmd_boot)

    cl = sub.add_parser(
        "clean",
        help="remove what a killed harness run left: containers, networks, QEMU processes, temporary disks",
        description="Removes what runs of the harness that were killed (a SIGKILLed pytest, a cancelled "
        "CI job) left behind: containers and Docker networks labelled org.svinit.harness (docker rm -f), "
        "the QEMU processes "
        "they started (each checked first: a qemu-system-* whose command line names the run's pid file) "
        "and their temporary directories (disk copies, sockets), whose records are in the harness "
        "directory ($SVINIT_HARNESS_DIR, else /run/svinit-harness for root, else "
        "$XDG_RUNTIME_DIR/svinit-harness). What a run still alive owns is kept. Prints what it removed; "
        "exits 0.",
    )
    cl.add_argument("--dry-run", action="store_true", help="say what would be removed; remove nothing")
    cl.add_argument(
        "--all",
        action="store_true",
        help="also remove what runs on another host own (a shared dockerd), which this host cannot tell "
        "alive or not",
    )
    cl.set_defaults(func=cmd_clean)

    d = sub.add_parser(
        "demo",
        help="the main job: build svinit, then a container and a VM boot and shut down cleanly",
        description="Builds the svinit:alpine image and the reference VM, then checks a container "
        "(svinit check container) and a VM (svinit check vm, with a data disk): exit 0 only when both "
        "are clean.",
    )
    d.set_defaults(func=cmd_demo)
    return p


def setup_logging(verbose: int) -> None:
    """svinit's own progress at INFO (DEBUG with -v); its libraries' (docker, urllib3, qemu.qmp) only
    warnings, and everything with -vv."""
    logging.basicConfig(
        level=logging.DEBUG if verbose >= 2 else logging.WARNING, format="svinit: %(message)s", force=True
    )
    log.setLevel(logging.DEBUG if verbose >= 1 else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        return args.func(args)
    except SvinitError as e:
        print(f"svinit: {e}", file=sys.stderr)
        return 2 if args.command in CHECKS else 1
    except KeyboardInterrupt:
        print("svinit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
