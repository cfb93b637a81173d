"""The root disk of the VM's disk layout: an ext4 image (label svroot) of a container image that holds
svinit (svinit:alpine, or any local image with svinit's archive ADDed)."""

from __future__ import annotations

import logging
import shutil
import stat
import tarfile
import tempfile
from pathlib import Path

from svinit.build.container import build_container
from svinit.build.sources import BuildError, add_recipe_files, run
from svinit.dockerd import DEFAULT_IMAGE, docker_client, require_image

log = logging.getLogger(__name__)


#: What a root must hold to boot with svinit: its init (the archive's /init links to it).
SVINIT_INIT = "usr/lib/svinit/bin/init"


def build_root_disk(
    dest: Path,
    e2fsck: Path,
    image: str = DEFAULT_IMAGE,
    size_mb: int | None = None,
    overlay: Path | None = None,
) -> Path:
    """Makes an ext4 image (label svroot) of the container image *image*: `docker export`, the files a VM
    needs added (images/initramfs/fstab.disk as /etc/fstab, a host name when the image has none, a static
    e2fsck when it has none), `mkfs.ext4 -d`, then every owner and mode set from the export's tar headers
    with debugfs, so the result is exact even when this runs without root. Nothing else of the VM goes
    into the root: the initramfs loads the kernel's modules before it switches to it.

    Raises:
        ImageMissing: *image* is not present locally (never pulled).
        BuildError: the image holds no svinit, or a step (mkfs.ext4, debugfs) failed.
    """
    client = docker_client()
    if image == DEFAULT_IMAGE:
        build_container(tag=image, client=client)
    else:
        require_image(client, image)
    with tempfile.TemporaryDirectory(prefix="svinit-disk-") as tmp:
        tmp = Path(tmp)
        tar_path = tmp / "export.tar"
        # never started: a command of its own, for an image that has none (docker import)
        container = client.containers.create(image, entrypoint=["true"])
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
        if not (tree / SVINIT_INIT).is_file():
            raise BuildError(
                f"image {image} holds no svinit (no /{SVINIT_INIT}): ADD svinit's archive to it "
                "(make -C init dist; ADD svinit-VERSION-x86_64.tar.gz / in its Dockerfile)"
            )
        add_recipe_files(tree, {"etc/fstab": "fstab.disk"})
        hostname = tree / "etc" / "hostname"
        if not hostname.is_file() or not hostname.read_text().strip():  # docker export leaves it empty
            add_recipe_files(tree, {"etc/hostname": "hostname"})
        if overlay is not None:
            shutil.copytree(overlay, tree, symlinks=True, dirs_exist_ok=True)
            for p in Path(overlay).rglob("*"):  # the overlay's own files keep their modes, owned by root
                meta["/" + str(p.relative_to(overlay))] = (0, 0, p.lstat().st_mode & 0o7777)
        if not (tree / "sbin" / "e2fsck").exists():
            (tree / "sbin").mkdir(exist_ok=True)
            shutil.copy2(e2fsck, tree / "sbin" / "e2fsck")
        used = sum(p.lstat().st_size for p in tree.rglob("*"))
        size_mb = size_mb or max(128, int(used * 1.6 / 2**20) + 64)
        # made aside, then renamed over dest: a run booting the previous disk meanwhile (another svinit
        # sharing the cache) keeps reading it whole, and nobody sees a disk half made
        new = dest.with_name(dest.name + ".new")
        new.unlink(missing_ok=True)
        with open(new, "wb") as f:
            f.truncate(size_mb * 2**20)
        log.info("making %s: ext4, label svroot, %d MiB", dest, size_mb)
        run(["mkfs.ext4", "-q", "-F", "-L", "svroot", "-d", str(tree), str(new)], "mkfs.ext4 -d")
        script = tmp / "owners.debugfs"
        with open(script, "w") as f:
            for path, (uid, gid, mode) in meta.items():
                if path == "/":
                    continue
                f.write(f'set_inode_field "{path}" uid {uid}\nset_inode_field "{path}" gid {gid}\n')
                f.write(f'set_inode_field "{path}" mode 0{mode | _type_bits(tree / path.lstrip("/")):o}\n')
        run(["debugfs", "-w", "-f", str(script), str(new)], "debugfs (owners and modes)")
        new.replace(dest)
    return dest


def _type_bits(path: Path) -> int:
    try:
        return stat.S_IFMT(path.lstat().st_mode)
    except OSError:
        return 0
