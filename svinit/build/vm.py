"""The VM: a kernel, an initramfs written without root (static busybox, the init package, the modules
and their load order), a kernel command line and, for the disk layout, a root disk: svinit:alpine's, or
any local image's that holds svinit (``image``)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from svinit import resources
from svinit.build.cpio import write_initramfs
from svinit.build.disk import build_root_disk
from svinit.build.init import init_lib_file, init_program, install_init
from svinit.build.modules import add_modules, kernel_modules, read_wanted
from svinit.build.sources import (
    CONTAINER_INPUTS,
    VM_INPUTS,
    BuildError,
    add_recipe_files,
    run,
    source_hash,
    tree_hash,
)
from svinit.dockerd import DEFAULT_IMAGE, docker_client, require_image
from svinit.fetch.cache import cache_dir, locked
from svinit.fetch.debian import busybox_static, debian_kernel, debian_package

log = logging.getLogger(__name__)

#: The kernel command line word that gives a root shell on the console without a password (the getty
#: service's autologin): the reference test VM's; a user's image asks for a login unless asked.
AUTOLOGIN = "svinit.autologin"

#: Programs svinit provides itself: busybox's applets of the same name are not linked.
OWN_PROGRAMS = {"init", "poweroff", "reboot", "halt", "svc", "svok", "linuxrc", "shutdown"}


def _busybox_tree(tree: Path, busybox: Path) -> None:
    """Static busybox at /bin/busybox and a link for each applet svinit does not provide itself."""
    (tree / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, tree / "bin" / "busybox")
    listing = run([str(busybox), "--list-full"], "busybox --list-full").stdout.split()
    for rel in listing:
        name = Path(rel).name
        if name in OWN_PROGRAMS or rel == "bin/busybox":
            continue
        link = tree / rel
        if link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(tree / "bin" / "busybox", link.parent))


def _vm_kernel(kernel: Path | None):
    """(vmlinuz, modules tree root or None, version or None) for Debian's kernel or the user's."""
    if kernel is not None:
        kernel = Path(kernel)
        if not kernel.is_file():
            raise BuildError(f"kernel {kernel} does not exist: give the path of a bzImage/vmlinuz file")
        return kernel, None, None
    k = debian_kernel()
    return k.vmlinuz, k.modules.parent.parent.parent, k.version


def vm_dir(layout: str = "initramfs", image: str | None = None) -> Path:
    """Where a VM is built by default, under the cache (svinit.fetch.cache_dir): the reference VM of
    *layout*, or the disk-layout VM of the local image *image*, one directory per image id (an image
    rebuilt under the same tag gets a VM of its own; build_vm removes the tag's earlier ones)."""
    if image is not None:
        return cache_dir() / "vm" / f"image-{image_id(image)[:12]}"
    return cache_dir() / "vm" / layout


def image_id(image: str) -> str:
    """The id (hex digits, without sha256:) of the local image *image*.

    Raises:
        ImageMissing: it is not present (svinit never pulls).
    """
    return require_image(docker_client(), image).id.removeprefix("sha256:")


def build_vm(
    out: Path,
    layout: str = "initramfs",
    kernel: Path | None = None,
    force: bool = False,
    overlay: Path | None = None,
    image: str | None = None,
    autologin: bool | None = None,
) -> Path:
    """Builds a VM: out/vmlinuz, out/initramfs.img, out/cmdline and, for the disk layout, out/root.img.

    Layouts: "initramfs" (the reference: the initramfs is the root; static busybox, the init package,
    the modules of images/initramfs/modules) and "disk" (a small initramfs that loads the modules, checks
    and mounts the ext4 disk root.img, made from the svinit:alpine image or *image*, and switch_roots to
    its init: the archive's /init, else /usr/lib/svinit/bin/init, else /sbin/init).

    Args:
        out: the output directory.
        layout: "initramfs" or "disk".
        kernel: a kernel to use instead of Debian's (it then needs its drivers built in: no modules).
        force: build even when the inputs did not change.
        overlay: a directory whose files are added over the root (your services in service/, boot
            drop-ins in etc/svinit/boot.d/, an etc/fstab...): in the initramfs, or in root.img.
        image: a local image holding svinit (its archive ADDed) whose root becomes root.img: implies the
            disk layout. The build is redone when the image's id changes.
        autologin: put svinit.autologin on the kernel command line (a root shell on the console, no
            password). Default: yes for the reference VM (svinit:alpine, a test machine), no for *image*
            (its console asks for a login: its own /etc/passwd and /etc/shadow decide).

    Raises:
        BuildError: a fetch or a build step failed, or *image* holds no svinit (the message names it).
        ImageMissing: *image* is not present locally (it is never pulled).
    """
    if layout not in ("initramfs", "disk"):
        raise BuildError(f"unknown layout {layout!r}: use initramfs or disk")
    if image is not None and layout != "disk":
        log.info("an image's VM has its root on a disk: the disk layout")
        layout = "disk"
    if autologin is None:
        autologin = image is None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vmlinuz, kdir, version = _vm_kernel(kernel)
    if overlay is not None and not Path(overlay).is_dir():
        raise BuildError(
            f"overlay {overlay} is not a directory: give a directory of files to add over the root"
        )
    digest = f"{source_hash(VM_INPUTS)}-{layout}-{vmlinuz}-autologin={autologin}"
    if overlay is not None:
        digest += "-" + tree_hash(Path(overlay))
    if image is not None:
        digest += "-" + image_id(image)
    elif layout == "disk":
        digest += "-" + source_hash(CONTAINER_INPUTS)
    # one build of OUT at a time (two test sessions, or pytest-xdist workers): the second waits, then
    # finds it up to date
    with locked(out / ".svinit-build.lock"):
        stamp = out / ".svinit-build"
        wanted = [out / n for n in ("vmlinuz", "initramfs.img", "cmdline")] + (
            [out / "root.img"] if layout == "disk" else []
        )
        if not force and stamp.exists() and stamp.read_text() == digest and all(p.exists() for p in wanted):
            log.info("%s is up to date (%s layout): not rebuilding", out, layout)
            return out
        modules = kernel_modules(kdir, version, read_wanted()) if kdir else []
        e2fsck = debian_package("e2fsck-static") / "sbin" / "e2fsck.static"
        with tempfile.TemporaryDirectory(prefix="svinit-vm-") as tmp:
            tree = Path(tmp) / "initramfs"
            _busybox_tree(tree, busybox_static())
            if layout == "initramfs":
                # busybox-static's ash runs its applets before PATH (svc, poweroff...): the root's /bin/sh
                # is a static bash instead, which honours PATH; busybox still provides every other applet
                # (the disk layout's initramfs runs only busybox's applets and e2fsck: its ash, 2.3 MB
                # less to load and a faster start)
                shutil.copy2(debian_package("bash-static") / "bin" / "bash-static", tree / "bin" / "bash")
                (tree / "bin" / "sh").unlink(missing_ok=True)
                (tree / "bin" / "sh").symlink_to("bash")
            (tree / "sbin").mkdir(exist_ok=True)
            shutil.copy2(e2fsck, tree / "sbin" / "e2fsck")
            (tree / "sbin" / "fsck.ext4").symlink_to("e2fsck")
            if kdir:
                add_modules(tree, kdir, version, modules)
            for d in ("proc", "sys", "dev", "run", "tmp", "root", "mnt", "var/log", "var/lib", "etc"):
                (tree / d).mkdir(parents=True, exist_ok=True)
            (tree / "tmp").chmod(0o1777)
            if layout == "initramfs":
                log.info("assembling the initramfs (the reference layout: it is the root)")
                install_init(tree)
                shutil.copytree(
                    resources.data("images/alpine/demo"), tree / "service", symlinks=True, dirs_exist_ok=True
                )
                add_recipe_files(
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
                cmdline = _base_cmdline()
            else:
                log.info("assembling the initramfs of the disk layout (it mounts root.img and switch_roots)")
                # svinit's init is process 1 from the first instruction; init-disk is its stage 1 here
                init_program("init", tree / "init")
                (tree / "usr/lib/svinit").mkdir(parents=True)
                shutil.copy2(resources.data("images/initramfs/init-disk"), tree / "usr/lib/svinit/stage1")
                init_lib_file("modules.sh", tree / "usr/lib/svinit/modules.sh")
                # no /sbin/modprobe: during its own start the kernel asks it for crypto modules it never
                # gets (hmac(sha256), cbc(aes)...), waiting each time for busybox to start and fail, six
                # times (about 0.2 s on an emulated CPU); init-disk calls busybox's modprobe by this name
                (tree / "sbin" / "modprobe").unlink(missing_ok=True)
                (tree / "usr/lib/svinit/modprobe").symlink_to("../../../bin/busybox")
                cmdline = _base_cmdline()
                cmdline += " root=LABEL=svroot"
                build_root_disk(out / "root.img", e2fsck, image=image or DEFAULT_IMAGE, overlay=overlay)
            write_initramfs(tree, out / "initramfs.img")
        if autologin:
            cmdline += " " + AUTOLOGIN
        shutil.copy2(vmlinuz, out / "vmlinuz")
        (out / "cmdline").write_text(cmdline + "\n")
        stamp.write_text(digest)
        if image is not None and out.parent == vm_dir().parent:
            _forget_older_builds(out, image)
        log.info(
            "wrote %s: vmlinuz, initramfs.img (%d KiB), cmdline%s",
            out,
            (out / "initramfs.img").stat().st_size // 1024,
            f", root.img of {image or DEFAULT_IMAGE}" if layout == "disk" else "",
        )
        return out


def _base_cmdline() -> str:
    """The kernel command line of images/initramfs/cmdline (its words; # lines are comments)."""
    text = resources.data("images/initramfs/cmdline").read_text()
    return " ".join(
        w for line in text.splitlines() if not line.lstrip().startswith("#") for w in line.split()
    )


def _forget_older_builds(out: Path, image: str) -> None:
    """In the cache, the VM of *image* is one directory per image id: those of the tag's earlier ids (the
    image rebuilt: a few hundred MB each) are removed. The tag is noted in out/image."""
    (out / "image").write_text(image + "\n")
    for other in out.parent.glob("image-*"):
        note = other / "image"
        if other != out and note.is_file() and note.read_text().strip() == image:
            log.info("removing %s: the VM of an earlier %s", other, image)
            shutil.rmtree(other, ignore_errors=True)


def autologin_of(out: Path) -> bool:
    """Does the VM built in *out* give a root shell on its console without a password?"""
    return AUTOLOGIN in (Path(out) / "cmdline").read_text().split()
