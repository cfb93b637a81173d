"""The archive (`make -C init dist`): only svinit's own files, owned by root, no entry for the directories
merged-/usr bases make symlinks; `ADD` to an Alpine root and to a root holding only busybox-static, it
boots, runs CMD with its exit code, stops cleanly, as root or not, on a read-only root."""

from __future__ import annotations

import io
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import docker
import pytest

from svinit import cli
from svinit.build.init import dist_archive
from svinit.fetch import alpine_image, busybox_static
from tests.dockerrun import boot_and_stop, docker_run
from tests.util import worker_tag

pytestmark = pytest.mark.slow

OWN = ("init", "usr/lib/svinit", "usr/local/bin/", "service", "etc/svinit")


@pytest.fixture(scope="session")
def dist(init_bin) -> Path:
    return dist_archive()


def test_the_archive_is_never_seen_half_written(dist):
    """Under pytest-xdist one worker packs the archive (make dist) while another reads it (a docker
    build's context): make dist renames a whole archive into place, so a reader never sees a partial
    one (the busybox images of this module were once built from a cut archive: no /init)."""
    stop, errors, reads = threading.Event(), [], 0

    def repack() -> None:
        while not stop.is_set():
            dist_archive()

    packer = threading.Thread(target=repack)
    packer.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            reads += 1
            try:
                with tarfile.open(dist) as t:
                    assert "init" in t.getnames()
            except (tarfile.TarError, EOFError, OSError, AssertionError) as e:
                errors.append(repr(e))
    finally:
        stop.set()
        packer.join()
    assert not errors, f"{len(errors)} of {reads} reads saw a partial archive, first: {errors[0]}"


def test_the_archive_holds_only_svinit_files_owned_by_root(dist):
    with tarfile.open(dist) as t:
        members = t.getmembers()
    names = {m.name for m in members}
    assert "init" in names and "usr/lib/svinit/bin/svscan" in names and "service/svscan-log/run" in names
    for m in members:
        assert m.name.startswith(OWN), f"{m.name} is not svinit's"
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "", ""), m.name
    for top in ("bin", "sbin", "lib", "lib64", "usr", "usr/lib", "usr/local", "usr/local/bin", "etc"):
        assert top not in names, f"an entry for /{top} would replace a merged-/usr symlink"
    assert {m.name: m.mode for m in members}["usr/lib/svinit/bin/svscan"] == 0o755


def test_extracted_over_a_merged_usr_root_it_keeps_the_links_and_every_file(dist, tmp_path):
    root = tmp_path / "root"
    for d in ("usr/bin", "usr/lib", "usr/sbin", "usr/local/bin", "etc"):
        (root / d).mkdir(parents=True)
    for link in ("bin", "lib", "sbin"):
        (root / link).symlink_to(f"usr/{link}")
    (root / "usr/bin/sh").write_text("the base's own\n")
    subprocess.run(["tar", "-xzf", str(dist), "-C", str(root)], check=True)
    assert all((root / link).is_symlink() for link in ("bin", "lib", "sbin"))
    assert (root / "usr/bin/sh").read_text() == "the base's own\n"
    assert (root / "init").resolve() == (root / "usr/lib/svinit/bin/init").resolve()


def busybox_root_image(client: docker.DockerClient, tag: str) -> str:
    """A root holding only Debian's busybox-static, an applet link for each of its applets."""
    bb = busybox_static()
    applets = subprocess.run([bb, "--list-full"], capture_output=True, text=True, check=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for d, mode in (
            ("bin", 0o755),
            ("sbin", 0o755),
            ("usr/bin", 0o755),
            ("usr/sbin", 0o755),
            ("etc", 0o755),
            ("tmp", 0o1777),
            ("proc", 0o555),
            ("sys", 0o555),
            ("dev", 0o755),
            ("run", 0o755),
            ("root", 0o700),
        ):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, mode
            t.addfile(info)
        t.add(bb, "bin/busybox")
        for a in applets:
            if a != "bin/busybox":
                info = tarfile.TarInfo(a)
                info.type, info.linkname = tarfile.SYMTYPE, "/bin/busybox"
                t.addfile(info)
        for name, text in (
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"),
            ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    client.api.import_image_from_data(buf.getvalue(), repository=tag.split(":")[0], tag=tag.split(":")[1])
    return tag


@pytest.fixture(scope="session")
def images(dist, tmp_path_factory) -> dict[str, str]:
    """For each base, the base with the archive ADDed and ENTRYPOINT ["/init"], and a service with a log."""
    client = docker.from_env()
    bases = {
        "alpine": alpine_image(client=client),
        "busybox": busybox_root_image(client, worker_tag("busybox")),
    }
    out = {}
    for name, base in bases.items():
        ctx = tmp_path_factory.mktemp(f"ctx-{name}")
        (ctx / dist.name).write_bytes(dist.read_bytes())
        svc = ctx / "ticker"
        (svc / "log").mkdir(parents=True)
        (svc / "run").write_text(
            "#!/bin/sh\nexec 2>&1\ntrap 'echo stopping; exit 0' TERM\n"
            "while :; do echo tick; sleep 0.1 & wait $!; done\n"
        )
        (svc / "log" / "run").write_text("#!/bin/sh\nexec multilog t ./main\n")
        (svc / "run").chmod(0o755)
        (svc / "log" / "run").chmod(0o755)
        (ctx / "Dockerfile").write_text(
            f'FROM {base}\nADD {dist.name} /\nCOPY ticker /service/ticker\nENTRYPOINT ["/init"]\n'
        )
        tag = worker_tag(f"dist-{name}")
        client.images.build(path=str(ctx), tag=tag, pull=False, rm=True, nocache=True)
        out[name] = tag
    return out


@pytest.mark.parametrize("base", ["alpine", "busybox"])
@pytest.mark.parametrize("cmd,code", [("exit 0", 0), ("exit 7", 7), ("kill -TERM $$", 128 + 15)])
def test_cmd_exit_code_passes_through(images, base, cmd, code):
    r = docker_run(images[base], "sh", "-c", cmd)
    assert r.returncode == code, r.stderr


@pytest.mark.parametrize("base", ["alpine", "busybox"])
@pytest.mark.parametrize(
    "opts",
    [
        [],
        ["--user", "1000:1000"],
        ["--user", "12345:0"],
        ["--read-only", "--tmpfs", "/run"],
        ["--user", "1000:1000", "--read-only", "--tmpfs", "/run:uid=1000,gid=1000,mode=0755"],
        ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"],
    ],
    ids=["root", "user", "uid-gid0", "read-only", "user-read-only", "no-caps"],
)
def test_boots_and_stops_cleanly_with_every_line_logged(images, base, opts):
    r = boot_and_stop(images[base], opts, up=["ticker", "ticker/log"], while_up=lambda _: time.sleep(0.5))
    assert r.code == "0" and r.took < 5, f"exit {r.code} after {r.took:.1f} s\n{r.logs}"
    assert "(exit code 0)" in r.logs, r.logs
    if "--read-only" not in opts:  # a read-only root keeps its logs in /run, a tmpfs gone now
        text = r.log("ticker")
        assert text.rstrip("\n").endswith("stopping"), text[-200:]


def broken(image: str, tag: str, damage: str) -> str:
    """*image* with *damage* (a busybox sh script) done to its root, committed as *tag*."""
    name = f"svinit-dist-break-{time.monotonic_ns()}"
    subprocess.run(
        ["docker", "run", "--name", name, "--entrypoint", "/bin/busybox", image, "sh", "-c", damage],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            ["docker", "commit", "--change", 'ENTRYPOINT ["/init"]', name, tag],
            check=True,
            capture_output=True,
        )
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    return tag


@pytest.mark.parametrize(
    "damage,opts,says",
    [
        ("rm /bin/sh", [], "/bin/sh: file does not exist: svinit's boot"),
        (
            "echo 0.0.9 > /usr/lib/svinit/VERSION",
            [],
            "/usr/lib/svinit/VERSION says 0.0.9, but this init is",
        ),
        ("rm /usr/lib/svinit/stage1", [], "the init package is not installed there"),
        ("rm -rf /service && echo oops > /service", [], "/service is not a directory"),
        ("rm -rf /service", ["--read-only", "--tmpfs", "/run"], "there is no /service and it cannot be made"),
        ("true", ["--read-only"], "/run/svinit cannot be made: the root is read-only"),
        ("rm -rf /run", ["--read-only"], "/run/svinit cannot be made: the root is read-only"),
        ("true", ["--read-only", "--user", "1000:1000"], "no place for svinit's state: /run/svinit"),
    ],
    ids=[
        "no-sh",
        "other-version",
        "no-stage1",
        "service-a-file",
        "no-service-ro",
        "ro-no-tmpfs",
        "ro-no-run",
        "user-ro",
    ],
)
def test_bad_input_says_the_cause_and_exits_1(images, damage, opts, says, request):
    """An image svinit cannot boot in: one sentence naming the cause and the fix on the container's
    stderr, exit code 1, never a hang."""
    tag = broken(images["busybox"], worker_tag(f"broken-{request.node.callspec.id}"), damage)
    r = docker_run(*opts, tag, timeout=20)
    assert r.returncode == 1 and says in r.stderr, (r.returncode, r.stderr)


@pytest.mark.parametrize("base", ["alpine", "busybox"])
def test_check_container_is_clean_on_each_base(images, base, tmp_path):
    """`svinit check container --image` on the archive ADDed to each base (Debian: tests/test_debian.py)."""
    argv = ["check", "container", "--image", images[base], "--json"]
    assert cli.main([*argv, "--artifacts", str(tmp_path / "a")]) == 0
    assert not (tmp_path / "a").exists()


def test_a_read_only_root_whose_log_directory_holds_an_earlier_boots_files_still_logs(images):
    """An image committed after a boot has the logger's ./main (current, lock): on a read-only root its
    mirror in /run gets an empty, writable ./main, so the logger starts (it used to fail on links to the
    read-only files, and CMD waited SVINIT_WAIT_UP for it)."""
    main = "/service/ticker/log/main"
    tag = broken(
        images["busybox"],
        worker_tag("logged"),
        f"mkdir -p {main} && echo old > {main}/current && : > {main}/lock",
    )
    state = '. /usr/lib/svinit/lib.sh; svstat "$(sv_scandir)/ticker/log"'
    r = docker_run("--read-only", "--tmpfs", "/run", "-e", "SVINIT_WAIT_UP=5", tag, "sh", "-c", state)
    assert r.returncode == 0 and ": up (pid" in r.stdout, r.stdout + r.stderr
    assert "not all up" not in r.stderr, r.stderr
