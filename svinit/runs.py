"""The runs that ``svinit check container``, ``svinit check vm``, the demo and the tests share: boot a
machine, gather the evidence (svinit.evidence), judge it (svinit.verdicts), and save what explains a
verdict that is not clean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from svinit.build.vm import build_vm, vm_dir
from svinit.container import ContainerMachine
from svinit.disks import make_data_disk
from svinit.evidence import DEFAULT_BOOT_TIMEOUT, DEFAULT_OBSERVE, VmEvidence, collect, collect_vm
from svinit.guest import DEFAULT_SCANDIR
from svinit.leftovers import temp_dir
from svinit.machine import MachineError
from svinit.qemu.machine import QemuMachine
from svinit.qemu.run import RunVerdict, run_verdict
from svinit.verdicts import DEFAULT_STOP_LIMIT, DEFAULT_VM_SHUTDOWN_LIMIT, Verdict, verdict, vm_verdict


def save_artifacts(machine: ContainerMachine, v: Verdict, dest: Path, scandir: str = DEFAULT_SCANDIR) -> Path:
    """Saves what explains a verdict into *dest*: verdict.json, docker.log (the container's output),
    and the scan directory's tree as it was left (service/: logs and supervise records)."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "verdict.json").write_text(v.to_json() + "\n")
    (dest / "docker.log").write_text(machine.logs())
    try:
        machine.copy_out(scandir, dest)
    except (FileNotFoundError, MachineError) as e:
        (dest / "service.missing").write_text(f"{e}\n")
    return dest


def check_container(
    image: str,
    stop_limit: float = DEFAULT_STOP_LIMIT,
    boot_timeout: float = DEFAULT_BOOT_TIMEOUT,
    stop_timeout: int = 10,
    artifacts: Path | None = None,
    client=None,
    observe: float = DEFAULT_OBSERVE,
    expect_log: tuple[str, ...] | list[str] = (),
    **options: Any,
) -> Verdict:
    """Boots *image*, waits for its services, watches them, stops it with ``docker stop`` and judges the
    run.

    Args:
        image: a local image (never pulled).
        stop_limit: the stop must take less than this many seconds.
        boot_timeout: seconds allowed for every service and logger to be up.
        stop_timeout: the seconds docker stop waits before SIGKILL (Docker's default, 10).
        artifacts: where to save docker.log, the scan directory and verdict.json when not clean.
        client: a docker client (default: from the environment).
        observe: seconds every service must stay up with the same pid once all are up.
        expect_log: services whose log must hold a line.
        **options: more ContainerMachine options (environment, volumes, ...).

    Returns:
        The Verdict; the container is removed.

    Raises:
        ImageMissing: the image is not present locally.
        MachineError: docker could not start the container.
    """
    with ContainerMachine(image, client=client, stop_timeout=stop_timeout, **options) as m:
        m.start()
        ev = collect(m, boot_timeout, observe)
        v = verdict(ev, stop_limit, boot_timeout, docker_grace=stop_timeout, expect_log=expect_log)
        if not v.clean and artifacts is not None:
            save_artifacts(m, v, artifacts, ev.scandir)
            v.facts["artifacts"] = str(artifacts)
    return v


def check_vm(
    build_dir: Path | None = None,
    layout: str = "initramfs",
    image: str | None = None,
    how: str = "poweroff",
    data_disk: bool = True,
    shutdown_limit: float = DEFAULT_VM_SHUTDOWN_LIMIT,
    boot_timeout: float = 60.0,
    artifacts: Path | None = None,
    observe: float = DEFAULT_OBSERVE,
    expect_log: tuple[str, ...] | list[str] = (),
    **options: Any,
) -> Verdict:
    """Boots a VM, waits for its services and watches them for *observe* seconds, writes to its data
    disk, ends it *how* and judges the run.

    Args:
        build_dir: a `build_vm` output (default: the reference VM of *layout*, built if needed).
        layout: initramfs or disk, when *build_dir* is not given.
        image: when *build_dir* is not given: the VM of this local image holding svinit (the disk
            layout), built once per image id and cached (vm_dir).
        how: poweroff, acpi, ctrl-alt-del, reboot, halt; or crash (QMP quit: the power cut, unclean).
        data_disk: attach a fresh ext4 disk labelled svdata (mounted at /data) and write to it.
        shutdown_limit: seconds (before the TCG factor) the end may take.
        boot_timeout: seconds (before the TCG factor) for every service to be up.
        artifacts: where to save console.log, events.json, verdict.json and disk reports when not clean.
        expect_log: services whose log must hold a line once they are up.
        **options: more QemuMachine options (memory, accel, timeout_multiplier...).

    Returns:
        The Verdict (root.img is a copy: the built one is not changed).

    Raises:
        MachineError: QEMU could not start, or the VM could not be built.
    """
    # a given build is used as it is (it may have an overlay); the reference VM, or the image's, is
    # built if needed
    if build_dir is not None:
        build_dir = Path(build_dir)
    elif image is not None:
        build_dir = build_vm(vm_dir(image=image), image=image)
    else:
        build_dir = build_vm(vm_dir(layout), layout=layout)
    with temp_dir("svinit-check-vm-") as tmp:
        root = tmp / "root.img" if (build_dir / "root.img").exists() else None
        disks = [make_data_disk(tmp / "data.img")] if data_disk else []
        m = QemuMachine.from_build(build_dir, disk_copy=root, disks=disks, **options)
        with m:
            try:
                ev = collect_vm(
                    m,
                    how,
                    ([root] if root else []) + disks,
                    write_data=data_disk,
                    boot_timeout=boot_timeout,
                    shutdown_limit=shutdown_limit,
                    subject=f"{build_dir} ({how})",
                    observe=observe,
                )
            except MachineError as e:
                if artifacts is None:
                    raise
                saved = save_vm_log(m, artifacts)
                raise MachineError(f"{str(e).rstrip()}\n(the console and QMP's events: {saved})") from e
            v = vm_verdict(ev, m.timeout(shutdown_limit), expect_log=expect_log)
            v.facts["accel"] = m.accel
            if image is not None:
                v.facts["image"] = image
            if not v.clean and artifacts is not None:
                save_vm_artifacts(m, ev, v, artifacts)
    return v


def save_vm_log(m: QemuMachine, dest: Path) -> Path:
    """Saves console.log (every boot's console) and events.json (QMP's events) into *dest*: what explains
    a run that ended badly, verdict or not."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "console.log").write_text(m.logs())
    events = m.qmp.events if m.qmp is not None else []
    (dest / "events.json").write_text(json.dumps(events, indent=2, default=str) + "\n")
    return dest


def save_vm_artifacts(m: QemuMachine, ev: VmEvidence, v: Verdict, dest: Path) -> Path:
    """Saves what explains a VM verdict into *dest*: verdict.json, console.log (every boot's console),
    events.json (QMP's events) and each disk's e2fsck output."""
    save_vm_log(m, dest)
    (dest / "verdict.json").write_text(v.to_json() + "\n")
    for r in ev.disks:
        (dest / f"{Path(r.image).name}.e2fsck.txt").write_text(r.fsck_output)
    v.facts["artifacts"] = str(dest)
    return dest


def run_vm(machine: QemuMachine, timeout: float | None = None, artifacts: Path | None = None) -> RunVerdict:
    """``svinit run --vm``: boots *machine* (made with a command), lets it run the command and power off,
    and judges the end (svinit.qemu.run.run_verdict): the command's exit code, or 125 with why (an
    unclean shutdown, a kernel panic, a hang past *timeout* s). When it failed, the console and the QMP
    events are saved in *artifacts* (console.log, events.json)."""
    with machine:
        machine.start()
        res = machine.wait_exit(timeout)
        io = machine.run_io
        events = machine.qmp.events if machine.qmp is not None else []
        v = run_verdict(
            io.exit_code if io is not None else None,
            timed_out=timeout if res is None else None,
            panicked=any(e.get("event") == "GUEST_PANICKED" for e in events)
            or (res is not None and res.panicked),
            kernel_line=res.kernel_line if res else None,
            svinit_done=bool(res and res.svinit_done),
            guest=res.guest if res else None,
            reason=res.reason if res else None,
        )
        if v.failure is not None and artifacts is not None:
            save_vm_log(machine, artifacts)
    return v
