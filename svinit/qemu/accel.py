"""The accelerator: KVM only after a probe boot proved it works here (``/dev/kvm`` opening is no proof:
with nested virtualisation it hangs); else TCG. The probe's verdict is cached per boot of the host."""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from svinit.fetch.cache import cache_dir
from svinit.qemu.definition import MachineDefinition

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccelProbe:
    """The verdict of a KVM probe boot.

    Attributes:
        works: the kernel reached its panic under KVM in time.
        seconds: how long the probe took.
        detail: why it does not work (QEMU's message, or "no panic within N s").
        cached: the verdict came from the cache (this boot of the host).
    """

    works: bool
    seconds: float
    detail: str
    cached: bool = False


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def probe_kvm(
    kernel: Path,
    definition: MachineDefinition | None = None,
    timeout: float = 10,
    use_cache: bool = True,
) -> AccelProbe:
    """Does KVM work here? Boots *kernel* alone under KVM: a working accelerator reaches the kernel's
    panic (no root) in a second or two and QEMU exits (panic=-1, -no-reboot); a broken KVM (nested
    virtualisation) hangs, and is killed after *timeout* seconds.

    The verdict is cached in svinit's cache (``kvm-probe.json``) for this boot of the host
    (/proc/sys/kernel/random/boot_id) and this QEMU binary.
    """
    definition = definition or MachineDefinition.load()
    binary = shutil.which(definition.binary) or definition.binary
    key = f"{_boot_id()} {binary}"
    cache = cache_dir() / "kvm-probe.json"
    if use_cache:
        try:
            saved = json.loads(cache.read_text())
            if saved.get("key") == key:
                return AccelProbe(saved["works"], saved["seconds"], saved["detail"], cached=True)
        except (OSError, ValueError, KeyError):
            pass
    t0 = time.monotonic()
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        result = AccelProbe(False, 0.0, "no usable /dev/kvm")
    else:
        argv = [binary] + definition.fill(
            definition.probe_args,
            {
                "accel": "kvm",
                "machine": definition.machine,
                "memory": definition.memory,
                "kernel": str(kernel),
                "console_tty": definition.console_tty,
            },
        )
        log.debug("KVM probe: %s", shlex.join(argv))
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
            text = out.decode(errors="replace")
            if proc.returncode == 0 and "Kernel panic" in text:
                result = AccelProbe(True, time.monotonic() - t0, "")
            else:
                last = [ln for ln in text.splitlines() if ln.strip()][-3:]
                result = AccelProbe(
                    False, time.monotonic() - t0, f"QEMU exited {proc.returncode}: {' / '.join(last)}"
                )
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            result = AccelProbe(
                False, time.monotonic() - t0, f"the probe boot hung (no panic within {timeout:g} s)"
            )
    try:
        cache.write_text(
            json.dumps(
                {"key": key, "works": result.works, "seconds": result.seconds, "detail": result.detail}
            )
        )
    except OSError as e:
        log.debug("cannot cache the KVM probe: %s", e)
    return result


def choose_accel(
    wanted: str, definition: MachineDefinition, kernel: Path, probe_timeout: float = 10
) -> tuple[str, str]:
    """(accelerator, note for the log): *wanted* ("kvm", "tcg"), or for "auto" $SVINIT_ACCEL, else KVM if
    the definition allows it and a probe boot of *kernel* says it works, else TCG."""
    if wanted == "auto":
        wanted = os.environ.get("SVINIT_ACCEL") or "auto"
    factor = definition.tcg_timeout_factor
    if wanted == "auto" and "kvm" in definition.accelerators:
        probe = probe_kvm(kernel, definition, timeout=probe_timeout)
        if probe.works:
            return "kvm", "KVM works here"
        cached = ", cached" if probe.cached else ""
        return "tcg", f"KVM does not work here: using TCG (timeouts x {factor:g}) [{probe.detail}{cached}]"
    if wanted == "auto":
        return "tcg", f"using TCG (timeouts x {factor:g})"
    return wanted, f"{wanted} as asked" + (f" (timeouts x {factor:g})" if wanted == "tcg" else "")
