"""Kernel modules for a VM, resolved once, here: the modules a VM wants (``images/initramfs/modules``),
their dependencies (``modules.dep``), softdeps (ext4 needs crc32c) and the modules an alias names
(``crypto-crc32c``: each provider, since which one loads depends on the CPU), in load order.

The build writes that order as :data:`LOAD_LIST` into the image: one module a line, ``load NAME
[PARAMS]`` for a module the VM needs (a failure is an error) and ``try NAME`` for a softdep or an alias's
provider (one may not load on this CPU). A module wanted only for a device (``virtio_net @virtio:1`` in
the wanted list: a virtio network card) is ``load@virtio:1 NAME``, and so are the dependencies only it
needs: a VM without that device does not pay for loading them. An alias's provider made for a CPU feature
(its ``cpu:type:x86,...:feature:*0094*`` alias: crc32c_intel needs SSE4.2) is ``try@cpu:0094 NAME``: a CPU
without it (QEMU's default under TCG) does not try it, a failed load costing ~80 ms there. The sh on the
VM (``lib/modules.sh``, for ``boot.d/10-modules.sh`` and the disk layout's ``init-disk``) loads that list
in order and resolves nothing.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from svinit import resources
from svinit.build.sources import BuildError, run
from svinit.fetch.debian import busybox_static

log = logging.getLogger(__name__)

#: A modules.alias pattern for any x86 CPU with one feature (the kernel's X86_FEATURE_ number, in hex).
_CPU_FEATURE_ALIAS = re.compile(r"cpu:type:x86,ven\*fam\*mod\*:feature:\*([0-9A-Fa-f]{4})\*")

#: The modules a VM wants (in svinit's data, resources.data): a name and its parameters per line (# comments).
WANTED = "images/initramfs/modules"
#: Where the load order goes in the image (the sh reads $SVINIT_ETC/modules.load).
LOAD_LIST = "etc/svinit/modules.load"


@dataclass(frozen=True)
class Module:
    """One module to load: its file (relative to lib/modules/VERSION), its name, its parameters, and
    whether the VM may go on without it (a softdep, an alias's provider)."""

    path: str
    name: str
    params: str = ""
    optional: bool = False
    #: the device it is for ("virtio:1": loaded only when the VM has one) or the CPU features one of which
    #: it needs ("cpu:0094,0099"); "" always
    when: str = ""

    def line(self) -> str:
        how = ("try" if self.optional else "load") + (f"@{self.when}" if self.when else "")
        return f"{how} {self.name}{' ' + self.params if self.params else ''}"


def read_wanted(path: Path | None = None) -> list[tuple[str, str, str]]:
    """(name, parameters, device) of each module *path* lists (default: svinit's :data:`WANTED`): a line
    is ``NAME [PARAMS] [@virtio:N]``, the last word naming the device the module is for, if any.

    Raises:
        BuildError: a device that is not ``@virtio:N`` (N a number).
    """
    out = []
    for line in (path or resources.data(WANTED)).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            words = line.split()
            when = words.pop()[1:] if len(words) > 1 and words[-1].startswith("@") else ""
            if when and not (when.startswith("virtio:") and when[7:].isdigit()):
                raise BuildError(
                    f"{path or WANTED}: {line.strip()!r}: a device is @virtio:N (N the virtio device type)"
                )
            out.append((words[0], " ".join(words[1:]), when))
    return out


def _module_name(path: str) -> str:
    return Path(path).name.removesuffix(".ko").replace("-", "_")


def _softdeps(ko: Path) -> list[str]:
    """The module names a .ko's softdep (pre and post) names, from its .modinfo strings."""
    out = []
    for chunk in ko.read_bytes().split(b"\0"):
        if chunk.startswith(b"softdep="):
            out += [w for w in chunk[8:].decode().split() if w not in ("pre:", "post:")]
    return out


def kernel_modules(kdir: Path, version: str, wanted: list[tuple[str, str, str]]) -> list[Module]:
    """The modules *wanted* ((name, parameters, device) triples, as read_wanted) needs, dependencies,
    softdeps and alias providers included, in load order (each after what it needs). A module is for a
    device when only modules for that device need it.

    Raises:
        BuildError: a wanted module is not in this kernel.
    """
    mdir = kdir / "lib" / "modules" / version
    dep = mdir / "modules.dep"
    if not dep.exists():
        log.info("generating modules.dep for %s", version)
        depmod(kdir, version)
    deps: dict[str, tuple[str, list[str]]] = {}
    for line in dep.read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[_module_name(path)] = (path, [_module_name(p) for p in rest.split()])
    aliases: dict[str, list[str]] = {}
    cpu_features: dict[str, set[str]] = {}  # a module made for any CPU with a feature: those features
    alias_file = mdir / "modules.alias"
    if alias_file.exists():
        for line in alias_file.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "alias":
                name = parts[2].replace("-", "_")
                aliases.setdefault(parts[1].replace("-", "_"), []).append(name)
                m = _CPU_FEATURE_ALIAS.fullmatch(parts[1])
                if m:
                    cpu_features.setdefault(name, set()).add(m.group(1).upper())
    order: dict[str, Module] = {}
    params = {name.replace("-", "_"): p for name, p, _ in wanted}
    reached: dict[str, set[str]] = {}  # a module's path: the devices of the wanted modules needing it

    def visit(name: str, why: str, when: str) -> None:
        name = name.replace("-", "_")
        if name not in deps and name in aliases:
            for provider in aliases[name]:
                visit(provider, why or name, when)
            return
        if name not in deps:
            if why:
                log.warning("module %s (a softdep of %s) is not in kernel %s: skipped", name, why, version)
                return
            raise BuildError(f"kernel {version} has no module {name} (asked by {WANTED})")
        path, needs = deps[name]
        if path in order and not why and order[path].optional:  # needed after all
            order[path] = Module(path, name, params.get(name, ""), optional=False)
        if when in reached.setdefault(path, set()):
            return
        reached[path].add(when)
        for n in needs:
            visit(n, why, when)
        for n in _softdeps(mdir / path):
            visit(n, name, when)
        if path not in order:
            order[path] = Module(path, name, params.get(name, ""), optional=bool(why))

    for name, _, when in wanted:
        visit(name, "", when)
    # a module for one device only loads with it; one that something else needs loads always; an optional
    # one made for a CPU feature is tried only on a CPU that has it
    out = []
    for m in order.values():
        when = next(iter(reached[m.path])) if len(reached[m.path]) == 1 else ""
        if not when and m.optional and m.name in cpu_features:
            when = "cpu:" + ",".join(sorted(cpu_features[m.name]))
        out.append(replace(m, when=when))
    return out


def depmod(base: Path, version: str) -> None:
    """Writes the module indexes of base/lib/modules/VERSION: kmod's depmod when the host has it (the
    text and binary indexes, for busybox's and kmod's modprobe alike), else busybox's (text only)."""
    tool = shutil.which("depmod") or shutil.which("depmod", path="/usr/sbin:/sbin")
    if tool:
        run([tool, "-b", str(base), version], "depmod")
    else:
        log.warning(
            "no depmod (kmod) on this host: busybox depmod writes text indexes only (apt-get install kmod)"
        )
        run([str(busybox_static()), "depmod", "-b", str(base), version], "busybox depmod")


def add_modules(tree: Path, kdir: Path, version: str, modules: list[Module]) -> None:
    """Copies *modules* into *tree* with their indexes (depmod), and writes their load order
    (:data:`LOAD_LIST`)."""
    src = kdir / "lib" / "modules" / version
    dst = tree / "lib" / "modules" / version
    for m in modules:
        (dst / m.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / m.path, dst / m.path)
    (dst / "modules.order").write_text("".join(f"{m.path}\n" for m in modules))
    depmod(tree, version)
    load = tree / LOAD_LIST
    load.parent.mkdir(parents=True, exist_ok=True)
    load.write_text(
        f"# the modules to load, in order: written by svinit's build from {WANTED}\n"
        + "".join(m.line() + "\n" for m in modules)
    )
