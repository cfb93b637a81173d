"""svinit:debian (`svinit build container --base debian`): the archive on Debian 12 minbase (dash as
/bin/sh, no busybox, no procps), nginx and cron with their loggers. It keeps merged /usr, boots, runs
CMD with its exit code, stops cleanly with every line logged, as root or a user, on a read-only root,
without capabilities; a service that cannot run so says why in its log; `svinit check container` is
clean on it and not clean when the stop is too slow for its limit."""

from __future__ import annotations

import json
import os
import time

import pytest

from svinit import cli
from svinit.build import DEBIAN_IMAGE, build_container
from svinit.fetch import FetchError, debian_rootfs_tar
from tests.dockerrun import boot_and_stop, docker, docker_run

slow = pytest.mark.slow

#: One HTTP GET of 127.0.0.1:8080/PATH from inside the container (perl-base is in minbase; no curl).
GET = (
    'use IO::Socket::INET; my $s = IO::Socket::INET->new("127.0.0.1:8080") or die "connect: $!\\n";'
    ' print $s "GET /$ARGV[0] HTTP/1.0\\r\\n\\r\\n"; my $l = <$s>; print $l; exit($l =~ / 404 / ? 0 : 1)'
)
REQUESTS = 20
#: cat of a file under the scan directory, wherever stage 1 put it.
SCANDIR_CAT = '. /usr/lib/svinit/lib.sh; cat "$(sv_scandir)"/'

ROOT_UP = ["nginx", "nginx/log", "cron", "cron/log", "svscan-log"]
USER_UP = ["nginx", "nginx/log", "cron/log", "svscan-log"]
NO_CAPS_UP = ["cron", "cron/log", "nginx/log", "svscan-log"]

CRON_NEEDS_ROOT = "cron: not started: cron needs root (it runs each crontab as its owner)"
NGINX_NEEDS_CAPS = (
    "nginx: not started: as root, nginx runs its workers as www-data, which needs the capabilities"
)


@pytest.fixture(scope="session")
def debian_image(svinit_docker) -> str:
    """svinit:debian, built once per session (skipped when its sources did not change); its base,
    svinit-base:debian12, is made by mmdebstrap once and cached."""
    build_container(base="debian", client=svinit_docker)
    return DEBIAN_IMAGE


def test_without_mmdebstrap_the_fetch_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("SVINIT_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(FetchError) as e:
        debian_rootfs_tar()
    assert "mmdebstrap not found" in str(e.value) and "apt-get install mmdebstrap" in str(e.value)


@slow
def test_merged_usr_is_kept(debian_image):
    r = docker_run("--entrypoint", "readlink", debian_image, "/bin", "/sbin", "/lib", "/init")
    assert r.stdout.split() == ["usr/bin", "usr/sbin", "usr/lib", "usr/lib/svinit/bin/init"], r.stderr


@slow
@pytest.mark.parametrize("cmd,code", [("exit 0", 0), ("exit 7", 7), ("kill -TERM $$", 128 + 15)])
def test_cmd_exit_code_passes_through(debian_image, cmd, code):
    r = docker_run(debian_image, "sh", "-c", cmd)
    assert r.returncode == code, r.stderr


def requests(name: str) -> None:
    """REQUESTS GETs to nginx, each answered (404: /var/www/html has no such file), just before the stop."""
    for i in range(REQUESTS):
        r = docker("exec", name, "perl", "-e", GET, f"req-{i}")
        assert r.returncode == 0, r.stdout + r.stderr


@slow
def test_cmd_as_a_user_is_not_held_back_by_a_service_that_takes_itself_down(debian_image):
    """cron as a user says why and takes itself down (`exec svc -d .`): it is up for a moment only. CMD
    must not wait SVINIT_WAIT_UP (30 s) for it: it did, 8 runs of 12 (3 of 12 before supervise got
    faster), when the front process's wait missed that moment. Three runs."""
    for _ in range(3):
        t0 = time.monotonic()
        r = docker("run", "--rm", "--user", "1000:1000", debian_image, "sh", "-c", "exit 3")
        took = time.monotonic() - t0
        assert r.returncode == 3 and took < 10 and "not all up" not in r.stderr, (took, r.stderr)


@slow
@pytest.mark.parametrize(
    "opts,uid,up,down,said",
    [
        ([], 0, ROOT_UP, (), None),
        (["--read-only", "--tmpfs", "/run"], 0, ROOT_UP, (), None),
        (["--user", "1000:1000"], 1000, USER_UP, ("cron",), CRON_NEEDS_ROOT),
        (["--user", "12345:0"], 12345, USER_UP, ("cron",), CRON_NEEDS_ROOT),
        (
            ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"],
            0,
            NO_CAPS_UP,
            ("nginx",),
            NGINX_NEEDS_CAPS,
        ),
        (
            ["--user", "1000:1000", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"],
            1000,
            USER_UP,
            ("cron",),
            CRON_NEEDS_ROOT,
        ),
    ],
    ids=["root", "read-only", "user", "uid-gid0", "no-caps", "user-no-caps"],
)
def test_boots_and_stops_cleanly_with_every_line_logged(debian_image, opts, uid, up, down, said):
    seen = {}

    def while_up(name: str) -> None:
        if "nginx" in up:
            pid = docker("exec", name, "sh", "-c", SCANDIR_CAT + "nginx/nginx.pid").stdout.strip()
            seen["uids"] = docker("exec", name, "sh", "-c", f"grep ^Uid: /proc/{pid}/status").stdout.split()
            requests(name)
        if said:
            seen["said"] = docker(
                "exec", name, "sh", "-c", SCANDIR_CAT + f"{down[0]}/log/main/current"
            ).stdout

    r = boot_and_stop(debian_image, opts, up=up, down=down, while_up=while_up)
    assert r.code == "0" and r.took < 5, f"exit {r.code} after {r.took:.1f} s\n{r.logs}"
    assert "(exit code 0)" in r.logs, r.logs
    if "nginx" in up:  # nginx runs as the container's user (as root, its workers as www-data)
        assert seen["uids"][1:] == [str(uid)] * 4, seen
    if said:  # the service that cannot run says why, once, and stays down ("normally up")
        assert seen["said"].count(said) == 1, seen["said"]
        assert f"{down[0]}: down " in r.svstat and "normally up" in r.svstat, r.svstat
    if r.scandir is not None:  # not on a read-only root, whose logs were in /run, a tmpfs gone now
        if said:
            assert r.log(down[0]).endswith("\n") and said in r.log(down[0])
        if "nginx" in up:  # every request answered before the stop is in nginx's log, whole
            text = r.log("nginx")
            access = [ln for ln in text.splitlines() if '"GET /req-' in ln]
            got = [ln.split('"GET /')[1].split()[0] for ln in access]
            assert got == [f"req-{i}" for i in range(REQUESTS)] and text.endswith("\n"), text[-2000:]


@slow
def test_a_service_that_needs_root_says_why_in_its_log(debian_image, tmp_path):
    """nginx as a user binds 8080, but not 80 where ports under 1024 need root: told to listen on 80
    too, it says why in its log, and its finish names it and the user (it is started again every
    second, as supervise does); the container
    still stops cleanly. Docker (20.10 on) lets any user bind any port in a container
    (net.ipv4.ip_unprivileged_port_start=0); the kernel's own default, 1024, is set back here, as
    other runtimes and hosts have it."""
    conf = tmp_path / "port80.conf"
    conf.write_text("server { listen 80; }\n")
    conf.chmod(0o644)
    os.chmod(tmp_path, 0o755)
    seen = {}

    def while_up(name: str) -> None:
        deadline = time.monotonic() + 10
        while "running as uid" not in seen.setdefault("log", "") and time.monotonic() < deadline:
            time.sleep(0.2)
            seen["log"] = docker("exec", name, "sh", "-c", SCANDIR_CAT + "nginx/log/main/current").stdout

    opts = ["--user", "1000:1000", "--sysctl", "net.ipv4.ip_unprivileged_port_start=1024"]
    opts += ["-v", f"{conf}:/etc/nginx/conf.d/port80.conf:ro"]
    r = boot_and_stop(debian_image, opts, up=["nginx/log", "cron/log"], while_up=while_up)
    lines = [ln.split(" ", 1)[1] for ln in seen["log"].splitlines()]  # without multilog's stamps
    i = next(i for i, ln in enumerate(lines) if "bind() to 0.0.0.0:80 failed (13: Permission denied)" in ln)
    assert lines[i + 1] == "nginx: exited with code 1, running as uid 1000: the line above says why", lines
    assert r.code == "0" and "(exit code 0)" in r.logs, r.logs


@slow
def test_check_container_is_clean_on_svinit_debian_and_not_with_a_too_short_stop_limit(
    debian_image, capsys, tmp_path
):
    assert cli.main(["check", "container", "--image", debian_image, "--artifacts", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert out.endswith("\nclean\n") and "2 services and 3 loggers up" in out, out
    assert "ok    order      2 services stopped before their loggers; svscan-log last" in out, out
    assert not (tmp_path / "a").exists()
    # the counter-case: the same image, a stop limit no stop meets: not clean (exit 1), with artifacts
    argv = ["check", "container", "--image", debian_image, "--stop-limit", "0.001", "--json"]
    assert cli.main([*argv, "--artifacts", str(tmp_path / "b")]) == 1
    d = json.loads(capsys.readouterr().out)
    assert not d["clean"] and [c["name"] for c in d["checks"] if not c["ok"]] == ["stop time"], d
    assert (tmp_path / "b" / "verdict.json").exists() and (tmp_path / "b" / "docker.log").exists()
