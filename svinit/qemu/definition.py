"""A QEMU machine as data: ``qemu/ARCH.toml`` gives QEMU's binary and argument templates
(:class:`MachineDefinition`); :class:`Disk` is one virtio disk to attach."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from svinit import resources
from svinit.machine import MachineError


class DefinitionError(MachineError):
    """A machine definition file is missing or malformed (the message names the file and the key)."""


def _escape_option(value: str) -> str:
    """*value* inside QEMU's comma-separated options: a ',' is written ',,'."""
    return value.replace(",", ",,")


@dataclass(frozen=True)
class Disk:
    """A virtio disk.

    Attributes:
        path: the image file.
        format: QEMU's format (raw, qcow2).
        snapshot: writes go to a temporary overlay; the image is left as it was.
        readonly: the guest cannot write it.
    """

    path: Path
    format: str = "raw"
    snapshot: bool = False
    readonly: bool = False

    def options(self) -> str:
        return (",snapshot=on" if self.snapshot else "") + (",readonly=on" if self.readonly else "")


@dataclass(frozen=True)
class MachineDefinition:
    """QEMU's command line for one architecture, read from ``qemu/ARCH.toml``.

    Attributes:
        path: the file.
        binary: the qemu-system-* program.
        machine, memory, smp: defaults for {machine} {memory} {smp}.
        console_tty, harness_tty: the kernel's names of the console and command channel ports.
        accelerators: in order of preference (kvm is probed first).
        tcg_timeout_factor: timeouts are multiplied by it under TCG.
        args, disk, probe_args: argument templates (see the file's header).
        run_args, port, share: the templates of `svinit run --vm` (optional: empty when the file has
            none, and then a run is refused).
    """

    path: Path
    binary: str
    machine: str
    memory: str
    smp: int
    console_tty: str
    harness_tty: str
    accelerators: tuple[str, ...]
    tcg_timeout_factor: float
    args: tuple[str, ...]
    disk: tuple[str, ...]
    probe_args: tuple[str, ...]
    run_args: tuple[str, ...] = ()
    port: tuple[str, ...] = ()
    share: tuple[str, ...] = ()

    @classmethod
    def load(cls, arch: str | Path = "x86_64") -> MachineDefinition:
        """The definition of *arch* (``qemu/ARCH.toml`` of svinit's data, svinit.resources), or of the
        file *arch*.

        Raises:
            DefinitionError: no such file, or a key missing or of the wrong type.
        """
        path = Path(arch) if str(arch).endswith(".toml") else resources.ROOT / "qemu" / f"{arch}.toml"
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            known = sorted(p.stem for p in (resources.ROOT / "qemu").glob("*.toml"))
            raise DefinitionError(
                f"no machine definition {path} (known: {', '.join(known) or 'none'}"
                + (f"; svinit's own are missing from {resources.ROOT}: reinstall it" if not known else "")
                + ")"
            ) from None
        except tomllib.TOMLDecodeError as e:
            raise DefinitionError(f"{path}: {e}") from None
        kinds = {
            "binary": str,
            "machine": str,
            "memory": str,
            "smp": int,
            "console_tty": str,
            "harness_tty": str,
            "accelerators": list,
            "tcg_timeout_factor": (int, float),
            "args": list,
            "disk": list,
            "probe_args": list,
        }
        for key, kind in kinds.items():
            if not isinstance(data.get(key), kind):
                raise DefinitionError(f"{path}: key {key} is missing or not a {kind}")
        optional = {}
        for key in ("run_args", "port", "share"):
            if not isinstance(data.get(key, []), list):
                raise DefinitionError(f"{path}: key {key} is not a {list}")
            optional[key] = tuple(data.get(key, []))
        return cls(
            path=path,
            **{k: tuple(data[k]) if kinds[k] is list else data[k] for k in kinds},
            **optional,
        )

    @staticmethod
    def fill(templates: tuple[str, ...], values: dict[str, Any]) -> list[str]:
        """The arguments *templates* with their placeholders filled from *values*. An argument whose
        placeholder's value is None is dropped, with the option before it (``-initrd {initrd}``).

        Raises:
            DefinitionError: a placeholder has no value.
        """
        out: list[str] = []
        for t in templates:
            names = re.findall(r"\{(\w+)\}", t)
            if any(n in values and values[n] is None for n in names):
                if out and out[-1].startswith("-"):
                    out.pop()
                continue
            try:
                out.append(t.format_map(values))
            except KeyError as e:
                raise DefinitionError(f"no value for the placeholder {e} in {t!r}") from None
        return out

    def argv(
        self,
        *,
        accel: str,
        memory: str,
        kernel: Path,
        initrd: Path | None,
        cmdline: str,
        qmp: Path,
        harness: Path,
        disks: list[Disk],
        smp: int | None = None,
    ) -> list[str]:
        """QEMU's command line: the binary, ``args`` filled in, then ``disk`` for each disk."""
        values: dict[str, Any] = {
            "accel": accel,
            "machine": self.machine,
            "memory": memory,
            "smp": smp or self.smp,
            "kernel": str(kernel),
            "initrd": str(initrd) if initrd else None,
            "cmdline": cmdline,
            "qmp": _escape_option(str(qmp)),
            "harness": _escape_option(str(harness)),
        }
        argv = [self.binary] + self.fill(self.args, values)
        for i, disk in enumerate(disks):
            options = {
                "index": i,
                "path": _escape_option(str(disk.path.resolve())),
                "format": disk.format,
                "options": disk.options(),
            }
            argv += self.fill(self.disk, options)
        return argv

    def run_argv(self, ports: list[tuple[str, Path]], shares: list[tuple[str, Path, bool]]) -> list[str]:
        """The arguments of `svinit run --vm`: ``run_args``, then ``port`` for each (name, socket) and
        ``share`` for each (tag, host folder, read-only).

        Raises:
            DefinitionError: the definition has no such templates.
        """
        if not (self.run_args and self.port and self.share):
            raise DefinitionError(f"{self.path}: no run_args, port and share: it cannot run a command")
        argv = self.fill(self.run_args, {})
        for i, (name, sock) in enumerate(ports):
            argv += self.fill(self.port, {"index": i, "name": name, "path": _escape_option(str(sock))})
        for tag, folder, readonly in shares:
            values = {
                "tag": tag,
                "path": _escape_option(str(Path(folder).resolve())),
                "options": ",readonly=on" if readonly else "",
            }
            argv += self.fill(self.share, values)
        return argv

    def version(self) -> str:
        """The first line of ``BINARY --version`` (for the run log), or why it is unknown."""
        return _version_of(self.binary)


@cache
def _version_of(binary: str) -> str:
    try:
        out = subprocess.run(
            [shutil.which(binary) or binary, "--version"], capture_output=True, text=True, timeout=10
        ).stdout
        return out.splitlines()[0] if out else binary
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{binary} ({e})"
