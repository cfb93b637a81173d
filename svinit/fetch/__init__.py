"""Explicit, cached fetches from the package registries this machine reaches: nothing in svinit
downloads implicitly. ``cache`` (the cache and what fetches share), ``debian`` (packages, the kernel),
``ext4`` (an image's files without a mount), ``alpine`` (the root filesystem and its docker image),
``debian_base`` (a Debian 12 root made by mmdebstrap, and its docker image)."""

from svinit.fetch.alpine import ALPINE_SOURCES, alpine_image, alpine_manifest, alpine_rootfs
from svinit.fetch.cache import FetchError, cache_dir
from svinit.fetch.debian import (
    DebianKernel,
    busybox_static,
    daemontools_bin,
    debian_kernel,
    debian_kernel_package,
    debian_package,
)
from svinit.fetch.debian_base import debian_base, debian_rootfs_tar
from svinit.fetch.ext4 import rootfs_tar

__all__ = [
    "ALPINE_SOURCES",
    "DebianKernel",
    "FetchError",
    "alpine_image",
    "alpine_manifest",
    "alpine_rootfs",
    "busybox_static",
    "cache_dir",
    "daemontools_bin",
    "debian_base",
    "debian_kernel",
    "debian_kernel_package",
    "debian_package",
    "debian_rootfs_tar",
    "rootfs_tar",
]
