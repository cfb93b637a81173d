"""Building svinit: ``sources`` (what a build is made from, and when it is up to date), ``init`` (the
init package), ``container`` (the Alpine and Debian images), ``modules`` (the one resolver of kernel
modules), ``cpio`` (the initramfs writer), ``disk`` (the root disk) and ``vm`` (kernel + initramfs +
command line)."""

from svinit.build.container import DEBIAN_IMAGE, build_container, container_tag
from svinit.build.init import build_init, dist, install_init
from svinit.build.sources import BuildError
from svinit.build.vm import AUTOLOGIN, autologin_of, build_vm, vm_dir

__all__ = [
    "AUTOLOGIN",
    "DEBIAN_IMAGE",
    "BuildError",
    "autologin_of",
    "build_container",
    "build_init",
    "build_vm",
    "container_tag",
    "dist",
    "install_init",
    "vm_dir",
]
