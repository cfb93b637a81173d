"""The init package's shared sh (init/sh/lib/lib.sh) under the shells it must run on: dash (Debian's
/bin/sh) and busybox ash. Failing paths fail, and reading svinit's state files says nothing when a file
is missing (`read x < file 2>/dev/null` does not silence a missing file: the `<` fails first)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from svinit import ROOT

LIB = ROOT / "init" / "sh" / "lib" / "lib.sh"
SHELLS = [s for s in (["dash"], ["busybox", "sh"]) if shutil.which(s[0])]


def sh(shell: list[str], script: str, run: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "SVINIT_RUN": str(run), "SVINIT_LIB": str(LIB.parent)}
    return subprocess.run([*shell, "-c", f". {LIB}\n{script}"], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
def test_sv_error_reports_and_fails(shell, tmp_path):
    r = sh(shell, 'false || sv_error "it broke"; echo "rc=$?"', tmp_path)
    assert r.stdout == "rc=1\n" and r.stderr == "svinit: error: it broke\n"


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
def test_state_files_missing_or_present_are_read_quietly(shell, tmp_path):
    r = sh(shell, "sv_scandir; sv_virt", tmp_path / "nosuch")
    assert (r.stdout, r.stderr) == ("/service\nvm\n", "")
    (tmp_path / "scandir").write_text("/run/svinit/service with space\n")
    (tmp_path / "virt").write_text("container\n")
    r = sh(shell, "sv_scandir; sv_virt", tmp_path)
    assert (r.stdout, r.stderr) == ("/run/svinit/service with space\ncontainer\n", "")


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
def test_sv_mount_of_reads_this_hosts_mounts(shell, tmp_path):
    """The last mount on a mount point, from this host's /proc/mounts; nothing mounted: false, empty."""
    last = {}
    for line in Path("/proc/mounts").read_text().splitlines():
        dev, mp, fstype, opts = line.split()[:4]
        last[mp] = (dev, fstype, opts)
    script = (
        'for m in / /proc "$1"; do if sv_mount_of "$m"; then r=yes; else r=no; fi; '
        'echo "$r|$SV_MOUNT_DEV|$SV_MOUNT_TYPE|$SV_MOUNT_OPTS"; done; sv_mounted /proc && echo mounted'
    )
    r = subprocess.run(
        [*shell, "-c", f". {LIB}\n{script}", "sh", str(tmp_path)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "SVINIT_RUN": str(tmp_path), "SVINIT_LIB": str(LIB.parent)},
    )
    assert r.stdout.splitlines() == [
        "yes|{}|{}|{}".format(*last["/"]),
        "yes|{}|{}|{}".format(*last["/proc"]),
        "no|||",
        "mounted",
    ], r.stderr


def test_no_script_of_the_init_package_needs_busybox():
    """A root without busybox (Debian) must still boot, stop and power off: svinit's sh calls no
    `busybox APPLET` (svpower powers off, svacpid hears the power button; the getty is the base's)."""
    calls = []
    for f in (ROOT / "init" / "sh").rglob("*"):
        if f.is_file():
            for n, line in enumerate(f.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if "busybox " in code:
                    calls.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not calls, "\n".join(calls)


RESOLVE = ROOT / "init" / "sh" / "lib" / "resolve.sh"


def order(shell: list[str], d: Path, *files: str) -> subprocess.CompletedProcess:
    """sv_order with the cache d/boot.order over the drop-ins d/boot.d/*.sh and d/etc/*.sh."""
    script = f'. {RESOLVE}; sv_order "$1/boot.order" "$1"/boot.d/*.sh "$1"/etc/*.sh; printf %s "$SV_ORDER"'
    return subprocess.run([*shell, "-c", f". {LIB}\n{script}", "sh", str(d)], capture_output=True, text=True)


def dropins(d: Path) -> list[str]:
    """Three drop-ins, c needing a; the cache written for them in the reverse order (which the
    resolver would never give: it proves the cache was read)."""
    (d / "boot.d").mkdir()
    (d / "etc").mkdir()
    (d / "boot.d/10-a.sh").write_text("# provides: a\n")
    (d / "boot.d/20-b.sh").write_text("# provides: b\n")
    (d / "boot.d/30-c.sh").write_text("# needs: a\n")
    names = [str(d / "boot.d" / n) for n in ("10-a.sh", "20-b.sh", "30-c.sh")]
    (d / "boot.order").write_text("\n".join([*names, f"{d}/etc/*.sh", "--", *reversed(names)]) + "\n")
    old = time.time() - 100
    for n in names:
        os.utime(n, (old, old))
    os.utime(d / "boot.order", (old + 50, old + 50))
    return names


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
def test_the_boot_order_comes_from_the_cache_while_no_drop_in_changed(shell, tmp_path):
    names = dropins(tmp_path)
    r = order(shell, tmp_path)
    assert (r.stdout.split(), r.stderr) == (list(reversed(names)), "")


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
def test_a_changed_or_added_drop_in_is_resolved_again(shell, tmp_path):
    names = dropins(tmp_path)
    os.utime(names[1])  # edited after the cache was written
    assert order(shell, tmp_path).stdout.split() == names
    os.utime(names[1], (0, 0))
    (tmp_path / "etc/40-d.sh").write_text("# needs: e\n")  # the user's drop-in, in a cycle
    (tmp_path / "etc/41-e.sh").write_text("# needs: d\n")
    r = order(shell, tmp_path)
    assert r.stdout.split() == names
    assert "boot scripts in a dependency cycle, not run: 40-d.sh -> 41-e.sh -> 40-d.sh" in r.stderr
    (tmp_path / "etc/40-d.sh").unlink()
    (tmp_path / "etc/41-e.sh").unlink()
    (tmp_path / "boot.d/20-b.sh").unlink()  # one fewer
    assert order(shell, tmp_path).stdout.split() == [names[0], names[2]]


def wheres(shell: list[str], d: Path) -> subprocess.CompletedProcess:
    """sv_where of each drop-in, in the order sv_order gives, as NAME=WHERE words."""
    script = (
        f'. {RESOLVE}; sv_order "$1/boot.order" "$1"/boot.d/*.sh "$1"/etc/*.sh\n'
        'for f in $SV_ORDER; do sv_where "$f"; printf "%s=%s\\n" "${f##*/}" "$SV_WHERE"; done'
    )
    return subprocess.run([*shell, "-c", f". {LIB}\n{script}", "sh", str(d)], capture_output=True, text=True)


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
def test_the_order_and_where_headers_come_from_the_sh_cache_while_no_drop_in_changed(shell, tmp_path):
    names = dropins(tmp_path)
    (tmp_path / "boot.d/20-b.sh").write_text("# provides: b\n# where: vm\n")
    os.utime(names[1], (time.time() - 100,) * 2)
    # boot.order.sh says otherwise than the files and than boot.order (it proves it was read); a quote
    # in it survives
    args = "".join(f"{a}\n" for a in [*names, f"{tmp_path}/etc/*.sh"])
    order = f"{names[1]}\n{names[0]}\n{names[2]}\n"
    where = f"\n{names[0]}\ncontainer\n{names[1]}\n\n{names[2]}\nvm it'\\''s\n"
    (tmp_path / "boot.order.sh").write_text(f"_sv_cargs='{args}'\n_sv_corder='{order}'\n_sv_wc='{where}'\n")
    os.utime(tmp_path / "boot.order.sh", (time.time() - 50,) * 2)
    r = wheres(shell, tmp_path)
    assert (r.stdout.split(), r.stderr) == (["20-b.sh=", "10-a.sh=container", "30-c.sh=vm", "it's"], "")
    os.utime(names[2])  # edited after the cache: resolved, every header read from its file again
    r = wheres(shell, tmp_path)
    assert (r.stdout.split(), r.stderr) == (["10-a.sh=", "20-b.sh=vm", "30-c.sh="], "")
    os.utime(names[2], (0, 0))
    (tmp_path / "etc/40-d.sh").write_text("\n")  # one more drop-in than the cache was made from
    r = wheres(shell, tmp_path)
    assert (r.stdout.split(), r.stderr) == (["10-a.sh=", "20-b.sh=vm", "30-c.sh=", "40-d.sh="], "")


def test_install_writes_the_order_the_resolver_gives(tmp_path):
    dest = tmp_path / "root"
    make = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "init"), "install-dist", f"DESTDIR={dest}"],
        capture_output=True,
        text=True,
    )
    assert make.returncode == 0, make.stderr
    cache = (dest / "usr/lib/svinit/boot.order").read_text().splitlines()
    resolved = subprocess.run(
        [
            "sh",
            "-c",
            f'. {LIB}; . {RESOLVE}; sv_resolve {dest}/usr/lib/svinit/boot.d/*.sh; printf %s "$SV_ORDER"',
        ],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert cache[cache.index("--") + 1 :] == [p.removeprefix(str(dest)) for p in resolved] != []
    assert cache[: cache.index("--")][-1] == "/etc/svinit/boot.d/*.sh"
    # and the same as sh that sv_order sources, with the headers of each: what sv_where reads in the files
    sourced = subprocess.run(
        [
            "sh",
            "-c",
            f'. {dest}/usr/lib/svinit/boot.order.sh; printf "%s--\\n%s|" "$_sv_cargs" "$_sv_corder"'
            ' && printf %s "$_sv_wc"',
        ],
        capture_output=True,
        text=True,
    ).stdout
    assert sourced.split("|")[0].splitlines() == cache
    where = sourced.split("|", 1)[1].split("\n")[1:-1]
    for path, words in zip(where[::2], where[1::2], strict=True):
        r = subprocess.run(
            [
                "sh",
                "-c",
                f'. {LIB}; . {RESOLVE}; sv_where "$1"; printf %s "$SV_WHERE"',
                "sh",
                f"{dest}{path}",
            ],
            capture_output=True,
            text=True,
        )
        assert r.stdout == words, path
    assert where[::2] == cache[cache.index("--") + 1 :] and "vm" in where and "container" in where


MODULES = ROOT / "init" / "sh" / "boot.d" / "10-modules.sh"


# (Debian's busybox sh runs its own modprobe applet before PATH's: not this fake one)
@pytest.mark.parametrize("shell", [["dash"], ["bash", "--posix"]], ids=lambda s: s[0])
def test_modules_load_in_batches_and_a_failure_names_its_module(shell, tmp_path):
    """A fake modprobe (it logs its arguments; 'bad' and 'nocpu' fail to load): a line with parameters
    loads alone, when read; then every "try" and "load" line with one modprobe -a, in order; when that
    fails, the "try" lines again with modprobe -qa (their failure only said: modprobe -a went on past
    the module that failed) and the "load" lines one by one, naming the failure."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "modprobe").write_text(
        '#!/bin/sh\necho "$*" >> "$LOG"\nfor a; do case $a in bad | nocpu) exit 1 ;; esac; done\n'
    )
    (bin_ / "modprobe").chmod(0o755)
    (tmp_path / "modules.load").write_text(
        "# comment\nload a\nload b\ntry nocpu\ntry c\nload d opt=1\nload e\nload bad\nload f\n"
    )
    env = {"PATH": f"{bin_}:/usr/bin:/bin", "LOG": str(tmp_path / "log"), "SVINIT_RUN": str(tmp_path)}
    env |= {"SVINIT_ETC": str(tmp_path), "SVINIT_LIB": str(LIB.parent), "SVINIT_VERBOSE": "1"}
    script = f'. {LIB}; virt=vm; SV_SCRIPT=10-modules.sh; run() {{ . {MODULES}; }}; run; echo "rc=$?"'
    r = subprocess.run([*shell, "-c", script], capture_output=True, text=True, env=env)
    calls = (tmp_path / "log").read_text().splitlines()
    assert calls == ["d opt=1", "-a a b nocpu c e bad f", "-qa nocpu c", "a", "b", "e", "bad", "f"]
    assert r.stdout == "rc=1\n"
    assert "svinit: error: unable to load module bad" in r.stderr
    assert "skipped: not every optional module loaded (they may not on this CPU): nocpu c" in r.stderr


@pytest.mark.parametrize("shell", [["dash"], ["bash", "--posix"]], ids=lambda s: s[0])
def test_modules_for_a_virtio_device_load_only_when_the_vm_has_one(shell, tmp_path):
    """load@virtio:N lines load after the unconditional ones, and only when a virtio device of type N
    is there (its sysfs 'device' file: 0x0009 for a 9p share); the others are skipped without a call."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "modprobe").write_text('#!/bin/sh\necho "$*" >> "$LOG"\n')
    (bin_ / "modprobe").chmod(0o755)
    devices = tmp_path / "virtio"
    for n, kind in (("virtio0", "0x0002"), ("virtio1", "0x0009")):
        (devices / n).mkdir(parents=True)
        (devices / n / "device").write_text(kind + "\n")
    (tmp_path / "modules.load").write_text(
        "load virtio_pci\nload@virtio:1 failover\nload@virtio:1 virtio_net\nload ext4\n"
        "load@virtio:9 9pnet\nload@virtio:9 9p\ntry@virtio:9 opt9\nload evdev\n"
    )
    env = {"PATH": f"{bin_}:/usr/bin:/bin", "LOG": str(tmp_path / "log"), "SVINIT_RUN": str(tmp_path)}
    env |= {"SVINIT_ETC": str(tmp_path), "SVINIT_LIB": str(LIB.parent), "SV_VIRTIO_DEVICES": str(devices)}
    script = f'. {LIB}; virt=vm; SV_SCRIPT=10-modules.sh; run() {{ . {MODULES}; }}; run; echo "rc=$?"'
    r = subprocess.run([*shell, "-c", script], capture_output=True, text=True, env=env)
    calls = (tmp_path / "log").read_text().splitlines()
    assert calls == ["-a virtio_pci ext4 evdev", "-a 9pnet 9p opt9"]
    assert (r.stdout, r.stderr) == ("rc=0\n", "")


@pytest.mark.parametrize("shell", [["dash"], ["bash", "--posix"]], ids=lambda s: s[0])
@pytest.mark.parametrize(
    "modalias, tried",
    [
        ("cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0093,0094,0095\n", "fast fast2 generic"),
        ("cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0099\n", "fast2 generic"),
        ("cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0093\n", "generic"),
        (None, "fast fast2 generic"),  # no modalias to read: tried, as before
    ],
    ids=["sse4.2", "other", "neither", "unknown"],
)
def test_a_module_for_a_cpu_feature_is_tried_only_on_a_cpu_that_has_it(shell, modalias, tried, tmp_path):
    """try@cpu:F[,F...] lines (crc32c_intel needs SSE4.2, feature 0094: a failed load costs ~80 ms under
    TCG) join the "try" batch only when the kernel's cpu modalias lists one of the features."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "modprobe").write_text('#!/bin/sh\necho "$*" >> "$LOG"\n')
    (bin_ / "modprobe").chmod(0o755)
    if modalias is not None:
        (tmp_path / "modalias").write_text(modalias)
    (tmp_path / "modules.load").write_text(
        "load a\ntry@cpu:0094 fast\ntry@cpu:0099,0094 fast2\ntry generic\nload b\n"
    )
    env = {"PATH": f"{bin_}:/usr/bin:/bin", "LOG": str(tmp_path / "log"), "SVINIT_RUN": str(tmp_path)}
    env |= {"SVINIT_ETC": str(tmp_path), "SVINIT_LIB": str(LIB.parent)}
    env |= {"SV_CPU_MODALIAS": str(tmp_path / "modalias"), "SV_VIRTIO_DEVICES": str(tmp_path / "none")}
    script = f'. {LIB}; virt=vm; SV_SCRIPT=10-modules.sh; run() {{ . {MODULES}; }}; run; echo "rc=$?"'
    r = subprocess.run([*shell, "-c", script], capture_output=True, text=True, env=env)
    calls = (tmp_path / "log").read_text().splitlines()
    assert calls == [f"-a a {tried} b"]
    assert (r.stdout, r.stderr) == ("rc=0\n", "")


SWAP = ROOT / "init" / "sh" / "boot.d" / "32-swap.sh"


@pytest.mark.parametrize(
    "fstab, calls",
    [
        ("LABEL=sw none swap sw 0 0\n", ["-a"]),
        ("# a swap line: none swap sw\n/dev/vdb /data ext4 defaults 0 2\n", []),
        ("", []),
    ],
    ids=["swap", "comment-only", "empty"],
)
def test_swap_is_turned_on_only_when_fstab_has_a_swap_line(fstab, calls, tmp_path):
    """32-swap.sh reads fstab itself (no grep): swapon -a for a swap line, nothing for a comment that
    says swap or an fstab without one. The fstab is given by a private mount namespace's /etc."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "swapon").write_text('#!/bin/sh\necho "$*" >> "$LOG"\n')
    (bin_ / "swapon").chmod(0o755)
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "fstab").write_text(fstab)
    (tmp_path / "log").write_text("")
    script = f"mount --bind {etc} /etc && . {LIB} && virt=vm && run() {{ . {SWAP}; }} && run; echo rc=$?"
    r = subprocess.run(
        ["unshare", "--mount", "dash", "-c", script],
        capture_output=True,
        text=True,
        env={"PATH": f"{bin_}:/usr/bin:/bin", "LOG": str(tmp_path / "log"), "SVINIT_RUN": str(tmp_path)},
    )
    assert (r.stdout, r.stderr) == ("rc=0\n", "")
    assert (tmp_path / "log").read_text().splitlines() == calls


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
def test_sv_now_without_proc_gives_0_and_the_shell_goes_on(shell, tmp_path):
    """Stage 1 can start before /proc is mounted (a chroot whose /proc another process mounts): reading
    the time then must not end it (an arithmetic error on an empty value ends a POSIX sh)."""
    r = subprocess.run(
        [
            "unshare",
            "--mount",
            *shell,
            "-c",
            f"mount -t tmpfs none /proc && . {LIB} && sv_now && echo ms=$SV_MS",
        ],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "SVINIT_RUN": str(tmp_path)},
    )
    assert (r.returncode, r.stdout, r.stderr) == (0, "ms=0\n", "")
    r = sh(shell, "sv_now && echo $SV_MS; sv_ms", tmp_path)
    a, b = map(int, r.stdout.split())
    assert 0 < a <= b
