"""svinit.build.modules: the load order the build resolves, on a kernel tree made here (modules.dep,
modules.alias and .ko files whose .modinfo names a softdep, as Debian's kernel has them)."""

from __future__ import annotations

from pathlib import Path

from svinit.build.modules import kernel_modules

VERSION = "6.1.0-test"


def kernel_tree(tmp_path: Path) -> Path:
    """ext4 needs crc16 and, by softdep, crc32c: an alias two modules provide, crc32c_intel only for a CPU
    with SSE4.2 (feature 0094; also listed for 0099 here, to show both); virtio_net is for a device."""
    mdir = tmp_path / "lib" / "modules" / VERSION
    files = {
        "kernel/fs/ext4/ext4.ko": b"\0license=GPL\0softdep=pre: crc32c\0",
        "kernel/lib/crc16.ko": b"",
        "kernel/arch/x86/crypto/crc32c-intel.ko": b"",
        "kernel/crypto/crc32c_generic.ko": b"",
        "kernel/drivers/net/virtio_net.ko": b"",
    }
    for path, data in files.items():
        (mdir / path).parent.mkdir(parents=True, exist_ok=True)
        (mdir / path).write_bytes(data)
    (mdir / "modules.dep").write_text(
        "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko\nkernel/lib/crc16.ko:\n"
        "kernel/arch/x86/crypto/crc32c-intel.ko:\nkernel/crypto/crc32c_generic.ko:\n"
        "kernel/drivers/net/virtio_net.ko:\n"
    )
    (mdir / "modules.alias").write_text(
        "alias crc32c crc32c_intel\n"
        "alias cpu:type:x86,ven*fam*mod*:feature:*0094* crc32c_intel\n"
        "alias cpu:type:x86,ven*fam*mod*:feature:*0099* crc32c_intel\n"
        "alias cpu:type:x86,ven0000fam0006mod0086:feature:* intel_uncore\n"
        "alias crc32c crc32c_generic\n"
    )
    return tmp_path


def test_an_alias_provider_made_for_a_cpu_feature_is_tried_only_on_such_a_cpu(tmp_path):
    mods = kernel_modules(kernel_tree(tmp_path), VERSION, [("ext4", "", ""), ("virtio_net", "", "virtio:1")])
    assert [m.line() for m in mods] == [
        "load crc16",
        "try@cpu:0094,0099 crc32c_intel",
        "try crc32c_generic",
        "load ext4",
        "load@virtio:1 virtio_net",
    ]
