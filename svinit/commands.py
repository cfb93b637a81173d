"""What each `svinit` subcommand does (the parser, its options and main are svinit.cli's): each cmd_NAME
takes the parsed arguments and returns the exit code."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import stat
import sys
import termios
import time
import tty as tty_mod
from dataclasses import asdict
from pathlib import Path

from svinit import build
from svinit.disks import verify_disk
from svinit.dockerd import DEFAULT_IMAGE, docker_client, require_image
from svinit.errors import SvinitError
from svinit.leftovers import clean, temp_dir
from svinit.qemu.machine import QemuMachine
from svinit.qemu.run import RunIO, Share, parse_env
from svinit.report import write_junit
from svinit.runs import check_container, check_vm, run_vm

log = logging.getLogger("svinit")


def cmd_build_init(args: argparse.Namespace) -> int:
    out = build.build_init(args.out)
    print(out)
    return 0


def cmd_build_dist(args: argparse.Namespace) -> int:
    print(build.dist(args.out))
    return 0


def cmd_build_container(args: argparse.Namespace) -> int:
    tag = args.tag or build.container_tag(args.base)
    image_id = build.build_container(tag=tag, base=args.base, force=args.force)
    print(f"{tag} {image_id}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """docker run --rm of the image, with the terminal passed through; exits with the container's code.
    With --vm, the image as a VM (cmd_run_vm)."""
    if args.vm is not None:
        return cmd_run_vm(args)
    for flag in ("memory", "cpus", "kernel", "timeout"):
        if getattr(args, flag) is not None:
            raise SvinitError(f"--{flag} is for a VM: add --vm")
    require_image(docker_client(), args.image)
    docker = shutil.which("docker")
    if not docker:
        raise SvinitError("svinit run needs the docker command-line client: apt-get install docker.io")
    argv = [docker, "run", "--rm", "--pull", "never"]
    if sys.stdin.isatty():
        argv += ["-i", "-t"]
    elif _is_pipe_or_file(0):
        argv += ["-i"]
    for e in args.env:
        argv += ["-e", e]
    for v in args.volume:
        argv += ["-v", v]
    if args.read_only:
        argv += ["--read-only", "--tmpfs", "/run"]
    if args.name:
        argv += ["--name", args.name]
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    argv += [args.image, *cmd]
    log.debug("exec %s", " ".join(argv))
    sys.stdout.flush()
    sys.stderr.flush()
    # the docker client takes over this process: signals, the terminal and the exit code are its
    os.execv(docker, argv)
    return 127  # not reached


def cmd_run_vm(args: argparse.Namespace) -> int:
    """The image as a VM (its disk layout, built once per image id; a copy-on-write overlay per run):
    CMD once its services are up, its stdin, stdout, stderr and exit code carried apart; without CMD,
    the console (as svinit boot)."""
    if args.read_only or args.name:
        raise SvinitError("--read-only and --name are for a container: drop them with --vm")
    if not args.verbose:  # stderr is CMD's: svinit says only what failed (-v: its progress too)
        log.setLevel(logging.ERROR)
    if isinstance(args.vm, Path):
        if args.image != DEFAULT_IMAGE:
            raise SvinitError("give --vm DIR or --image IMAGE, not both (--vm DIR boots a build as it is)")
        out = args.vm
    elif args.image == DEFAULT_IMAGE:
        out = build.build_vm(build.vm_dir("disk"), layout="disk")
    else:
        out = build.build_vm(build.vm_dir(image=args.image), image=args.image)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    tty = None
    if cmd and sys.stdin.isatty():
        size = os.get_terminal_size(0)  # the terminal's own (not $LINES, $COLUMNS)
        tty = (size.lines, size.columns)
    kw = dict(
        overlay=True,
        harness=False,
        kernel=args.kernel,
        memory=f"{args.memory}M" if args.memory else None,
        smp=args.cpus,
        env=parse_env(args.env),
        shares=[Share.parse(v) for v in args.volume],
    )
    if not cmd:
        return _console(QemuMachine.from_build(out, **kw), out)
    io = RunIO(stdin=0 if tty or _is_pipe_or_file(0) else None, stdout=1, stderr=2)
    m = QemuMachine.from_build(out, command=cmd, tty=tty, io=io, **kw)
    artifacts = Path("svinit-artifacts") / time.strftime("run-vm-%Y%m%d-%H%M%S")
    saved = termios.tcgetattr(0) if tty else None
    try:
        if tty:
            tty_mod.setraw(0)
        v = run_vm(m, timeout=args.timeout, artifacts=artifacts)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
    if v.failure is not None:
        print(
            f"svinit: run --vm: {v.failure}; the console log is in {artifacts}/console.log", file=sys.stderr
        )
    return v.code


def _is_pipe_or_file(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode)


def _report(v, args: argparse.Namespace, saved: str, artifacts: Path) -> int:
    """Prints a verdict (a table, or JSON), writes it as JUnit XML for --junit; says where the artifacts
    are when not clean; the exit code."""
    if args.junit is not None:
        write_junit(v, args.junit, kind=args.what)
    print(v.to_json() if args.json else v.table())
    if not v.clean:
        print(f"svinit: not clean: artifacts ({saved}) in {artifacts}", file=sys.stderr)
    return 0 if v.clean else 1


def cmd_check_container(args: argparse.Namespace) -> int:
    """Boots the image, waits for its services, docker stop, and the verdict; exit 0 only when clean."""
    artifacts = args.artifacts or Path("svinit-artifacts") / time.strftime("check-%Y%m%d-%H%M%S")
    v = check_container(
        args.image,
        stop_limit=args.stop_limit,
        boot_timeout=args.boot_timeout,
        stop_timeout=args.stop_timeout,
        artifacts=artifacts,
        observe=args.observe,
        expect_log=args.expect_log,
    )
    return _report(v, args, "docker.log, service/, verdict.json", artifacts)


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job: build svinit's container image and VM, and show each booting and shutting down
    cleanly, judged by the same checks as `svinit check`. Exit 0 only when both are clean."""
    step = "[1/4] building the init package and the svinit:alpine image"
    print(step, flush=True)
    build.build_container(tag=DEFAULT_IMAGE)
    print("[2/4] a container: boot, every service up, docker stop, the verdict", flush=True)
    artifacts = Path("svinit-artifacts") / time.strftime("demo-%Y%m%d-%H%M%S")
    container = check_container(DEFAULT_IMAGE, artifacts=artifacts / "container")
    print(container.table(), flush=True)
    print("[3/4] building the VM: Debian's kernel, an initramfs with svinit as process 1", flush=True)
    out = build.build_vm(build.vm_dir("initramfs"))
    print(
        "[4/4] a VM under QEMU: boot, every service up, /data written, poweroff, every disk checked",
        flush=True,
    )
    vm = check_vm(out, how="poweroff", artifacts=artifacts / "vm")
    print(vm.table(), flush=True)
    clean = container.clean and vm.clean
    print(
        f"\ndemo: container {'clean' if container.clean else 'NOT CLEAN'}, "
        f"VM {'clean' if vm.clean else 'NOT CLEAN'} ({vm.facts.get('accel', '?')})"
    )
    if not clean:
        print(f"svinit: artifacts in {artifacts}", file=sys.stderr)
    return 0 if clean else 1


def cmd_check_vm(args: argparse.Namespace) -> int:
    """Boots the VM, waits for its services, ends it, checks every disk; exit 0 only when clean."""
    artifacts = args.artifacts or Path("svinit-artifacts") / time.strftime("check-vm-%Y%m%d-%H%M%S")
    if args.image is not None and args.vm is not None:
        raise SvinitError("give --vm DIR or --image IMAGE, not both (--vm boots a build as it is)")
    v = check_vm(
        args.vm,
        layout=args.layout,
        image=args.image,
        how=args.how,
        data_disk=not args.no_data_disk,
        shutdown_limit=args.shutdown_limit,
        boot_timeout=args.boot_timeout,
        artifacts=artifacts,
        observe=args.observe,
        expect_log=args.expect_log,
    )
    return _report(v, args, "console.log, events.json, verdict.json", artifacts)


def cmd_boot(args: argparse.Namespace) -> int:
    """An interactive serial console on the VM; Ctrl-] leaves (and powers the VM off)."""
    out = args.vm or build.build_vm(build.vm_dir(args.layout), layout=args.layout)
    with temp_dir("svinit-boot-") as tmp:
        root = tmp / "root.img" if (out / "root.img").exists() and not args.keep_root else None
        return _console(QemuMachine.from_build(out, disk_copy=root, disks=args.disk, harness=False), out)


def _console(m: QemuMachine, out: Path) -> int:
    """Boots *m* on this terminal (svinit boot, svinit run --vm without CMD) until Ctrl-], then the
    ACPI power-off; says how QEMU ended."""
    print(f"svinit: booting {out} ({m.choose_accel()}); Ctrl-] leaves and powers the VM off", flush=True)
    with m:
        res = m.interactive(shutdown="acpi")
    if res is not None:
        print(f"svinit: QEMU ended: {res.reason or 'no SHUTDOWN event'}, {res.seconds:.1f} s")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    """Removes what killed harness runs left: labelled containers, QEMU processes, temporary dirs."""
    done = clean(dry_run=args.dry_run, all_owners=args.all)
    for line in done.removed:
        print(line)
    for line in done.kept:
        print(f"kept {line}")
    if not done.removed:
        print("nothing to remove" + (" (dry run)" if args.dry_run else ""))
    return 0


def cmd_verify_disk(args: argparse.Namespace) -> int:
    """Exit 0 only when every image is a cleanly unmounted ext2/3/4 filesystem."""
    reports = [verify_disk(img) for img in args.images]
    clean = all(r.ok for r in reports)
    if args.json:
        print(json.dumps({"clean": clean, "disks": [asdict(r) for r in reports]}, indent=2))
    else:
        for r in reports:
            print(f"  {'ok' if r.ok else 'FAIL':4}  {r.image}  {r.detail}")
        print("clean" if clean else "NOT CLEAN")
    return 0 if clean else 1


def cmd_build_vm(args: argparse.Namespace) -> int:
    out = build.build_vm(
        args.out,
        layout=args.layout,
        kernel=args.kernel,
        force=args.force,
        overlay=args.overlay,
        image=args.image,
        autologin=True if args.autologin else None,
    )
    for name in ("vmlinuz", "initramfs.img", "cmdline", "root.img"):
        if (out / name).exists():
            print(out / name)
    if build.autologin_of(out):
        print(
            f"svinit: {build.AUTOLOGIN} is on its kernel command line: the console gives a root shell "
            "without a password (a test VM)",
            file=sys.stderr,
        )
    else:
        print(
            "svinit: the console asks for a login (the image's /etc/passwd and /etc/shadow decide); "
            "--autologin gives a root shell without a password",
            file=sys.stderr,
        )
    return 0
