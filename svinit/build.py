"""Building svinit: the init package (C programs and sh), and later the images made from it."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import docker

from svinit import ROOT

log = logging.getLogger(__name__)


class BuildError(RuntimeError):
    """A build step failed; the message carries the command and its output."""


def build_init(out: Path | None = None) -> Path:
    """Builds the static programs with `make -C init`; returns the directory holding them.

    Args:
        out: build directory (default init/build).

    Raises:
        BuildError: make failed, or no compiler is installed.
    """
    if not shutil.which("make") or not (shutil.which("musl-gcc") or shutil.which("cc")):
        raise BuildError("building init/ needs make and musl-gcc (apt-get install make musl-tools)")
    out = (out or ROOT / "init" / "build").resolve()
    argv = ["make", "-C", str(ROOT / "init"), "-s", f"O={out}"]
    log.info("building the init package: %s", " ".join(argv))
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(argv)} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return out


def install_init(dest: Path, build: Path | None = None) -> Path:
    """Installs the init package into the tree *dest* (`make -C init install DESTDIR=dest`)."""
    build = build or build_init()
    argv = ["make", "-C", str(ROOT / "init"), "-s", f"O={build}", "install", f"DESTDIR={dest.resolve()}"]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(argv)} failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return dest


#: What the container image is made from; its hash decides whether a build is needed.
CONTAINER_INPUTS = ("init/src", "init/sh", "init/Makefile", "images/alpine")
SOURCE_LABEL = "org.svinit.source"


def source_hash(paths: tuple[str, ...] = CONTAINER_INPUTS) -> str:
    """A hash of the files under *paths* (relative to ROOT): names, modes and contents."""
    h = hashlib.sha256()
    for rel in paths:
        base = ROOT / rel
        files = (
            [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file() or p.is_symlink())
        )
        for p in files:
            if "build" in p.relative_to(ROOT).parts[:2]:
                continue
            h.update(str(p.relative_to(ROOT)).encode() + b"\0")
            if p.is_symlink():
                h.update(b"->" + os.readlink(p).encode())
            else:
                h.update(oct(p.stat().st_mode & 0o777).encode() + p.read_bytes())
    return h.hexdigest()[:16]


def build_container(
    tag: str = "svinit:alpine",
    base: str = "alpine:3.23",
    client: docker.DockerClient | None = None,
    force: bool = False,
) -> str:
    """Builds the Alpine image with svinit as process 1 from images/alpine/Dockerfile; returns its id.

    The base image is provisioned from the local cache when missing (fetch.alpine_image: an explicit,
    logged `docker import`, never a pull). The build is skipped when *tag* already holds an image made
    from the same sources (label org.svinit.source).

    Args:
        tag: the image's tag.
        base: the base image (build argument BASE); must be present locally or be alpine:3.23.
        client: a docker client (default: from the environment).
        force: build even when the sources did not change.

    Raises:
        BuildError: the daemon is unreachable, the base is missing, or the build failed.
    """
    client = client or _docker()
    digest = source_hash()
    if not force:
        try:
            image = client.images.get(tag)
            if image.labels.get(SOURCE_LABEL) == digest:
                log.info("%s is up to date (sources %s): not rebuilding", tag, digest)
                return image.id
        except docker.errors.ImageNotFound:
            pass
    try:
        client.images.get(base)
    except docker.errors.ImageNotFound:
        if base != "alpine:3.23":
            raise BuildError(
                f"base image {base} is not present locally, and svinit never pulls: "
                f"load it first (docker load/import), or use alpine:3.23"
            ) from None
        from svinit.fetch import alpine_image

        alpine_image(client, tag=base)
    with tempfile.TemporaryDirectory(prefix="svinit-ctx-") as tmp:
        ctx = Path(tmp)
        for item in ("Dockerfile", "demo"):
            src = ROOT / "images" / "alpine" / item
            if src.is_dir():
                shutil.copytree(src, ctx / item, symlinks=True)
            else:
                shutil.copy2(src, ctx / item)
        install_init(ctx / "rootfs")
        log.info("building %s from images/alpine/Dockerfile (base %s, sources %s)", tag, base, digest)
        try:
            resp = client.api.build(
                path=str(ctx),
                tag=tag,
                buildargs={"BASE": base},
                rm=True,
                labels={SOURCE_LABEL: digest},
                decode=True,
                pull=False,
                # it builds only when the sources changed; and the legacy builder's cache takes a COPY
                # whose symlinks point elsewhere now for the same layer
                nocache=True,
            )
            image_id = None
            for chunk in resp:
                if "stream" in chunk and chunk["stream"].strip():
                    log.info("  %s", chunk["stream"].rstrip())
                if "error" in chunk:
                    raise BuildError(f"docker build of {tag} failed: {chunk['error'].strip()}")
                if "aux" in chunk and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
        except docker.errors.APIError as e:
            raise BuildError(f"docker build of {tag} failed: {e}") from e
    return image_id or client.images.get(tag).id


def _docker() -> docker.DockerClient:
    from svinit.container import docker_client
    from svinit.machine import MachineError

    try:
        return docker_client()
    except MachineError as e:
        raise BuildError(str(e)) from e


# ---------------------------------------------------------------------------------------------------
# The VM: kernel + initramfs (+ root disk)

VM_INPUTS = (
    "init/src",
    "init/sh",
    "init/Makefile",
    "images/initramfs",
    "images/alpine/demo",
    "svinit/build.py",
    "svinit/cpio.py",
)
#: Programs svinit provides itself: busybox's applets of the same name are not linked.
OWN_PROGRAMS = {"init", "poweroff", "reboot", "halt", "svc", "svok", "linuxrc", "shutdown"}


def _module_name(path: str) -> str:
    return Path(path).name.removesuffix(".ko").replace("-", "_")


def _softdeps(ko: Path) -> list[str]:
    """The module names a .ko's softdep (pre and post) names, from its .modinfo strings."""
    out = []
    for chunk in ko.read_bytes().split(b"\0"):
        if chunk.startswith(b"softdep="):
            out += [w for w in chunk[8:].decode().split() if w not in ("pre:", "post:")]
    return out


def kernel_modules(kdir: Path, version: str, wanted: list[str]) -> list[str]:
    """The module files (relative to kdir/lib/modules/VERSION) that *wanted* needs, dependencies and
    softdeps included, in load order.

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
    alias_file = mdir / "modules.alias"
    if alias_file.exists():
        for line in alias_file.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "alias":
                aliases.setdefault(parts[1].replace("-", "_"), []).append(parts[2].replace("-", "_"))
    order: list[str] = []

    def visit(name: str, why: str) -> None:
        name = name.replace("-", "_")
        if name not in deps and name in aliases:
            # an alias (a softdep's crypto-crc32c): every module that provides it, since which one
            # loads depends on the CPU (crc32c_intel needs SSE4.2, crc32c_generic does not)
            for provider in aliases[name]:
                visit(provider, why)
            return
        if name not in deps:
            if why:
                log.warning("module %s (a softdep of %s) is not in kernel %s: skipped", name, why, version)
                return
            raise BuildError(f"kernel {version} has no module {name} (asked by images/initramfs/modules)")
        path, needs = deps[name]
        if path in order:
            return
        for n in needs:
            visit(n, "")
        for n in _softdeps(mdir / path):
            visit(n, name)
        if path not in order:
            order.append(path)

    for w in wanted:
        visit(w, "")
    return order


def depmod(base: Path, version: str) -> None:
    """Writes the module indexes of base/lib/modules/VERSION: kmod's depmod when the host has it (the
    text and binary indexes, for busybox's and kmod's modprobe alike), else busybox's (text only)."""
    tool = shutil.which("depmod") or shutil.which("depmod", path="/usr/sbin:/sbin")
    if tool:
        _run([tool, "-b", str(base), version], "depmod")
    else:
        from svinit.fetch import busybox_static

        log.warning(
            "no depmod (kmod) on this host: busybox depmod writes text indexes only (apt-get install kmod)"
        )
        _run([str(busybox_static()), "depmod", "-b", str(base), version], "busybox depmod")


def _run(argv: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise BuildError(
            f"{what} failed: {' '.join(argv)} (exit {proc.returncode}):\n{proc.stderr}{proc.stdout}"
        )
    return proc


def _busybox_tree(tree: Path, busybox: Path) -> None:
    """Static busybox at /bin/busybox and a link for each applet svinit does not provide itself."""
    (tree / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, tree / "bin" / "busybox")
    listing = _run([str(busybox), "--list-full"], "busybox --list-full").stdout.split()
    for rel in listing:
        name = Path(rel).name
        if name in OWN_PROGRAMS or rel == "bin/busybox":
            continue
        link = tree / rel
        if link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(tree / "bin" / "busybox", link.parent))


def _add_modules(tree: Path, kdir: Path, version: str, files: list[str]) -> None:
    src = kdir / "lib" / "modules" / version
    dst = tree / "lib" / "modules" / version
    for rel in files:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, dst / rel)
    (dst / "modules.order").write_text("".join(f"{r}\n" for r in files))
    depmod(tree, version)


def _etc(tree: Path, files: dict[str, str]) -> None:
    recipe = ROOT / "images" / "initramfs"
    for dest, src in files.items():
        p = tree / dest
        p.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(recipe / src, p)


def _vm_kernel(kernel: Path | None):
    """(vmlinuz, modules tree root or None, version or None) for Debian's kernel or the user's."""
    if kernel is not None:
        kernel = Path(kernel)
        if not kernel.is_file():
            raise BuildError(f"kernel {kernel} does not exist: give the path of a bzImage/vmlinuz file")
        return kernel, None, None
    from svinit.fetch import debian_kernel

    k = debian_kernel()
    return k.vmlinuz, k.modules.parent.parent.parent, k.version


def vm_dir(layout: str = "initramfs") -> Path:
    """Where the reference VM of *layout* is built by default: under the cache (svinit.fetch.cache_dir)."""
    from svinit.fetch import cache_dir

    return cache_dir() / "vm" / layout


def build_vm(
    out: Path,
    layout: str = "initramfs",
    kernel: Path | None = None,
    force: bool = False,
    overlay: Path | None = None,
) -> Path:
    """Builds a VM: out/vmlinuz, out/initramfs.img, out/cmdline and, for the disk layout, out/root.img.

    Layouts: "initramfs" (the reference: the initramfs is the root; static busybox, the init package,
    the modules of images/initramfs/modules) and "disk" (a small initramfs that checks and mounts the
    ext4 disk root.img, made from the svinit:alpine image, and switch_roots to its /sbin/init).

    Args:
        out: the output directory.
        layout: "initramfs" or "disk".
        kernel: a kernel to use instead of Debian's (it then needs its drivers built in: no modules).
        force: build even when the inputs did not change.
        overlay: a directory whose files are added over the root (your services in service/, boot
            drop-ins in etc/svinit/boot.d/, an etc/fstab...): in the initramfs, or in root.img.

    Raises:
        BuildError: a fetch or a build step failed (the message names it).
    """
    from svinit.cpio import write_initramfs
    from svinit.fetch import busybox_static, debian_package

    if layout not in ("initramfs", "disk"):
        raise BuildError(f"unknown layout {layout!r}: use initramfs or disk")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vmlinuz, kdir, version = _vm_kernel(kernel)
    if overlay is not None and not Path(overlay).is_dir():
        raise BuildError(
            f"overlay {overlay} is not a directory: give a directory of files to add over the root"
        )
    digest = f"{source_hash(VM_INPUTS)}-{layout}-{vmlinuz}"
    if overlay is not None:
        digest += "-" + _tree_hash(Path(overlay))
    if layout == "disk":
        digest += "-" + source_hash(CONTAINER_INPUTS)
    stamp = out / ".svinit-build"
    wanted = [out / n for n in ("vmlinuz", "initramfs.img", "cmdline")] + (
        [out / "root.img"] if layout == "disk" else []
    )
    if not force and stamp.exists() and stamp.read_text() == digest and all(p.exists() for p in wanted):
        log.info("%s is up to date (%s layout): not rebuilding", out, layout)
        return out
    modules = [
        m.split()[0]
        for m in (ROOT / "images/initramfs/modules").read_text().splitlines()
        if m.strip() and not m.startswith("#")
    ]
    mod_files = kernel_modules(kdir, version, modules) if kdir else []
    e2fsck = debian_package("e2fsck-static") / "sbin" / "e2fsck.static"
    with tempfile.TemporaryDirectory(prefix="svinit-vm-") as tmp:
        tree = Path(tmp) / "initramfs"
        _busybox_tree(tree, busybox_static())
        # busybox-static's ash runs its applets before PATH (svc, poweroff...): /bin/sh is a static
        # bash instead, which honours PATH; busybox still provides every other applet
        shutil.copy2(debian_package("bash-static") / "bin" / "bash-static", tree / "bin" / "bash")
        (tree / "bin" / "sh").unlink(missing_ok=True)
        (tree / "bin" / "sh").symlink_to("bash")
        (tree / "sbin").mkdir(exist_ok=True)
        shutil.copy2(e2fsck, tree / "sbin" / "e2fsck")
        (tree / "sbin" / "fsck.ext4").symlink_to("e2fsck")
        if kdir:
            _add_modules(tree, kdir, version, mod_files)
        for d in ("proc", "sys", "dev", "run", "tmp", "root", "mnt", "var/log", "var/lib", "etc"):
            (tree / d).mkdir(parents=True, exist_ok=True)
        (tree / "tmp").chmod(0o1777)
        _etc(tree, {"etc/modules": "modules"} if kdir else {})
        if layout == "initramfs":
            log.info("assembling the initramfs (the reference layout: it is the root)")
            install_init(tree)
            shutil.copytree(ROOT / "images/alpine/demo", tree / "service", symlinks=True, dirs_exist_ok=True)
            _etc(
                tree,
                {
                    "etc/fstab": "fstab",
                    "etc/hostname": "hostname",
                    "etc/passwd": "passwd",
                    "etc/group": "group",
                    "etc/shadow": "shadow",
                },
            )
            (tree / "etc" / "shadow").chmod(0o600)
            if not (tree / "init").is_symlink():  # make install links /init to svinit's init
                (tree / "init").symlink_to("sbin/init")
            if overlay is not None:
                shutil.copytree(overlay, tree, symlinks=True, dirs_exist_ok=True)
            cmdline = (ROOT / "images/initramfs/cmdline").read_text().strip()
        else:
            log.info("assembling the initramfs of the disk layout (it mounts root.img and switch_roots)")
            shutil.copy2(ROOT / "images/initramfs/init-disk", tree / "init")
            cmdline = (ROOT / "images/initramfs/cmdline").read_text().strip() + " root=LABEL=svroot"
            build_root_disk(out / "root.img", kdir, version, mod_files, e2fsck, overlay=overlay)
        write_initramfs(tree, out / "initramfs.img")
    shutil.copy2(vmlinuz, out / "vmlinuz")
    (out / "cmdline").write_text(cmdline + "\n")
    stamp.write_text(digest)
    log.info(
        "wrote %s: vmlinuz, initramfs.img (%d KiB), cmdline%s",
        out,
        (out / "initramfs.img").stat().st_size // 1024,
        ", root.img" if layout == "disk" else "",
    )
    return out


def build_root_disk(
    dest: Path,
    kdir: Path | None,
    version: str | None,
    mod_files: list[str],
    e2fsck: Path,
    image: str = "svinit:alpine",
    size_mb: int | None = None,
    overlay: Path | None = None,
) -> Path:
    """Makes an ext4 image (label svroot) of the container image *image*: `docker export`, the files of
    images/initramfs for a VM added, `mkfs.ext4 -d`, then every owner and mode set from the export's tar
    headers with debugfs, so the result is exact even when this runs without root.
    """
    import tarfile

    client = _docker()
    build_container(tag=image, client=client) if image == "svinit:alpine" else client.images.get(image)
    with tempfile.TemporaryDirectory(prefix="svinit-disk-") as tmp:
        tmp = Path(tmp)
        tar_path = tmp / "export.tar"
        container = client.containers.create(image)
        try:
            log.info("exporting %s (docker export)", image)
            with open(tar_path, "wb") as f:
                for chunk in container.export():
                    f.write(chunk)
        finally:
            container.remove()
        tree = tmp / "root"
        tree.mkdir()
        meta: dict[str, tuple[int, int, int]] = {}
        with tarfile.open(tar_path) as tar:
            members = [m for m in tar.getmembers() if m.name not in (".dockerenv",) and not m.isdev()]
            for m in members:
                meta["/" + m.name.rstrip("/")] = (m.uid, m.gid, m.mode)
            tar.extractall(tree, members=members, numeric_owner=True, filter="fully_trusted")
        _etc(tree, {"etc/fstab": "fstab.disk", "etc/hostname": "hostname", "etc/modules": "modules"})
        if kdir:
            _add_modules(tree, kdir, version, mod_files)
        if overlay is not None:
            shutil.copytree(overlay, tree, symlinks=True, dirs_exist_ok=True)
            for p in Path(overlay).rglob("*"):  # the overlay's own files keep their modes, owned by root
                meta["/" + str(p.relative_to(overlay))] = (0, 0, p.lstat().st_mode & 0o7777)
        if not (tree / "sbin" / "e2fsck").exists():
            shutil.copy2(e2fsck, tree / "sbin" / "e2fsck")
        used = sum(p.lstat().st_size for p in tree.rglob("*"))
        size_mb = size_mb or max(128, int(used * 1.6 / 2**20) + 64)
        dest.unlink(missing_ok=True)
        with open(dest, "wb") as f:
            f.truncate(size_mb * 2**20)
        log.info("making %s: ext4, label svroot, %d MiB", dest, size_mb)
        _run(["mkfs.ext4", "-q", "-F", "-L", "svroot", "-d", str(tree), str(dest)], "mkfs.ext4 -d")
        script = tmp / "owners.debugfs"
        with open(script, "w") as f:
            for path, (uid, gid, mode) in meta.items():
                if path == "/":
                    continue
                f.write(f'set_inode_field "{path}" uid {uid}\nset_inode_field "{path}" gid {gid}\n')
                f.write(f'set_inode_field "{path}" mode 0{mode | _type_bits(tree / path.lstrip("/")):o}\n')
        _run(["debugfs", "-w", "-f", str(script), str(dest)], "debugfs (owners and modes)")
    return dest


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode() + b"\0" + oct(p.lstat().st_mode).encode())
        if p.is_symlink():
            h.update(os.readlink(p).encode())
        elif p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()[:12]


def _type_bits(path: Path) -> int:
    import stat as st

    try:
        return st.S_IFMT(path.lstat().st_mode)
    except OSError:
        return 0
