"""svinit.verdicts: the container verdict fed clean and unclean evidence (pure), and `svinit check
container` against the real dockerd: clean on svinit:alpine, not clean on an image whose process 1
ignores SIGTERM."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from svinit import cli
from svinit.evidence import Evidence, LogState
from svinit.svstat import Status, Tai64n
from svinit.verdicts import verdict
from tests.util import worker_tag

T0 = time.time()


def down(name: str, at: float, wait: int | None = 0) -> Status:
    """A stopped service's record: down since T0 + *at*, last wait status *wait* (0: exit 0)."""
    return Status(name, False, None, 0, "d", state="d", changed=Tai64n.from_unix(T0 + at), last_wait=wait)


def log(*lines: str, mode: int = 0o744, tail: str = "") -> LogState:
    return LogState(
        "".join(f"@4000000065a1b2c300000000 {x}\n" for x in lines).encode() + tail.encode(), (), mode
    )


def clean() -> Evidence:
    """What a clean run of the demo leaves: services down, then their loggers, then svscan-log."""
    return Evidence(
        subject="test:clean",
        boot_seconds=0.4,
        services=["heartbeat", "heartbeat/log", "svscan-log"],
        exit_code=0,
        stop_seconds=0.2,
        status_after={
            "heartbeat": down("heartbeat", 0.01, wait=15),  # ended by TERM: a service may
            "heartbeat/log": down("heartbeat/log", 0.03),
            "svscan-log": down("svscan-log", 0.05),
        },
        logs_before={"heartbeat/log/main": log("one"), "svscan-log/main": log("booted")},
        logs_after={"heartbeat/log/main": log("one", "stopping"), "svscan-log/main": log("booted")},
    )


def failing(ev: Evidence, **kw) -> dict[str, str]:
    return {c.name: c.detail for c in verdict(ev, **kw).checks if not c.ok}


def test_a_clean_run_is_clean():
    v = verdict(clean())
    assert v.clean, v.table()
    assert [c.name for c in v.checks] == ["boot", "exit code", "stop time", "order", "logs"]
    assert v["order"].detail == "1 services stopped before their loggers; svscan-log last"
    assert v.table().endswith("\nclean")
    d = json.loads(v.to_json())
    assert d["clean"] is True and d["exit_code"] == 0 and len(d["checks"]) == 5


def test_a_logger_down_before_its_service():
    ev = clean()
    ev.status_after["heartbeat/log"] = down("heartbeat/log", 0.005)
    assert failing(ev) == {"order": "heartbeat/log stopped 0.005 s before heartbeat"}


def test_svscan_log_before_another_logger():
    ev = clean()
    ev.status_after["svscan-log"] = down("svscan-log", 0.02)
    assert failing(ev) == {"order": "svscan-log stopped before heartbeat/log"}


def test_a_service_still_recorded_up():
    ev = clean()
    ev.status_after["heartbeat"] = replace(ev.status_after["heartbeat"], up=True, pid=12)
    assert "heartbeat still recorded up (pid 12)" in failing(ev)["order"]


def test_a_log_without_its_final_newline():
    ev = clean()
    ev.logs_after["heartbeat/log/main"] = log("one", tail="@4000000065a1b2c300000000 stopp")
    assert failing(ev) == {
        "logs": "heartbeat/log/main/current does not end with a newline (last bytes "
        "'@4000000065a1b2c300000000 stopp')"
    }


def test_a_log_not_finished_by_multilog():
    ev = clean()
    ev.logs_after["heartbeat/log/main"] = log("one", "stopping", mode=0o644)
    assert "has mode 0644, not 0744" in failing(ev)["logs"]


def test_a_log_that_lost_lines():
    ev = clean()
    ev.logs_before["heartbeat/log/main"] = log("one", "two")
    assert "1 lines of before the stop are gone, first '@4000000065a1b2c300000000 two'" in failing(ev)["logs"]
    # a partial last line before the stop is no loss: the logger had not finished it
    ev.logs_before["heartbeat/log/main"] = log("one", tail="@4000000065a1b2c300000000 sto")
    assert verdict(ev).clean


def test_a_logger_killed():
    ev = clean()
    ev.status_after["heartbeat/log"] = down("heartbeat/log", 0.03, wait=9)
    assert failing(ev) == {"logs": "heartbeat/log: its last exit was signal 9 (KILL), not a clean exit 0"}


def test_exit_137_and_a_slow_stop():
    ev = clean()
    ev.exit_code, ev.stop_seconds = 137, 10.13
    f = failing(ev)
    assert f["exit code"] == "137 (SIGKILL, Docker's after its 10 s grace: process 1 did not end on SIGTERM)"
    assert f["stop time"] == "10.13 s (limit 5 s; Docker kills at 10 s)"
    assert verdict(replace(ev, exit_code=0, stop_seconds=4.0), stop_limit=3)["stop time"].ok is False


def test_a_boot_that_never_finished_and_no_services():
    ev = Evidence("test:none", None, boot_problem="not up: heartbeat (down 1 seconds, normally up)")
    ev.exit_code, ev.stop_seconds = 0, 0.1
    f = failing(ev)
    assert f["boot"] == "not up: heartbeat (down 1 seconds, normally up)"
    assert set(f) == {"boot", "order", "logs"}
    assert verdict(ev).table().endswith("NOT CLEAN (boot, order, logs)")


def up(name: str, pid: int, seconds: int = 0) -> Status:
    return Status(name, True, pid, seconds, "u", normally_up=True)


def watched(*views: dict[str, Status | str], every: float = 0.25) -> list:
    return [(i * every, v) for i, v in enumerate(views)]


def test_a_steady_boot_says_so():
    ev = clean()
    ev.watch = watched(*({"heartbeat": up("heartbeat", 12, i // 4)} for i in range(7)))
    ev.observe_seconds = 1.5
    v = verdict(ev)
    assert v.clean, v.table()
    assert v["boot"].detail == "1 services and 2 loggers up 0.40 s after start, steady for 1.5 s"


def test_a_crash_loop_is_not_a_clean_boot():
    """run exits after half a second, supervise restarts it each second: seen down (want up), then up
    with a new pid; named with its status, its last exit and its log's last lines."""
    ev = clean()
    lines = ("starting", "oops: no config", "starting", "oops: no config")
    ev.logs_before["heartbeat/log/main"] = ev.logs_after["heartbeat/log/main"] = log(*lines)
    ev.status_before["heartbeat"] = replace(down("heartbeat", 0.0, wait=1 << 8), want="u")
    wait = Status("heartbeat", False, None, 0, "u", normally_up=True)
    ev.watch = watched(
        {"heartbeat": up("heartbeat", 12)}, {"heartbeat": wait}, {"heartbeat": up("heartbeat", 15)}
    )
    f = failing(ev)
    assert f == {
        "boot": "heartbeat is restarting: 2 pids (12, 15), down in 1 of 3 looks in 0.5 s; "
        "up (pid 15) 0 seconds, last exit 1; last lines of heartbeat/log/main: "
        "'oops: no config' | 'starting' | 'oops: no config'"
    }


def test_a_restart_between_two_looks_is_seen():
    """A new pid alone (the down moment fell between two looks), or the same pid with its uptime fallen
    back (a reused pid), is a restart; a service never seen down or new is steady."""
    ev = clean()
    ev.watch = watched({"heartbeat": up("heartbeat", 12, 3)}, {"heartbeat": up("heartbeat", 13, 0)})
    assert failing(ev)["boot"].startswith("heartbeat is restarting: 2 pids (12, 13) in 0.2 s; up (pid 13)")
    ev.watch = watched({"heartbeat": up("heartbeat", 12, 3)}, {"heartbeat": up("heartbeat", 12, 0)})
    assert "its uptime fell back from 3 to 0 s" in failing(ev)["boot"]
    ev.watch = watched({"heartbeat": up("heartbeat", 12, 3)}, {"heartbeat": "supervise not running"})
    assert "down in 1 of 2 looks in 0.2 s; supervise not running" in failing(ev)["boot"]


def test_a_service_not_up_at_boot_shows_its_status_and_log():
    ev = Evidence("test:none", None, boot_problem="timed out: not up: heartbeat (down 0 seconds)")
    ev.exit_code, ev.stop_seconds = 0, 0.1
    ev.watch = watched({"heartbeat": Status("heartbeat", False, None, 0, "u", normally_up=True)})
    ev.logs_before = {"heartbeat/log/main": log("cannot bind port 80")}
    assert failing(ev)["boot"] == (
        "timed out: not up: heartbeat (down 0 seconds); heartbeat: down 0 seconds, normally up, want up; "
        "last lines of heartbeat/log/main: 'cannot bind port 80'"
    )
    ev.logs_before = {"heartbeat/log/main": log()}
    assert failing(ev)["boot"].endswith("want up; heartbeat/log/main is empty")


def test_an_empty_log_is_reported_and_fails_when_it_must_log():
    ev = clean()
    ev.logs_before["svscan-log/main"] = ev.logs_after["svscan-log/main"] = log()
    v = verdict(ev)
    assert v.clean
    assert v["logs"].detail.startswith("1 logs complete (2 lines)")
    assert v["logs"].detail.endswith("empty (their loggers received nothing): svscan-log/main")
    assert verdict(ev, expect_log=["heartbeat"]).clean
    ev.logs_after["heartbeat/log/main"] = log()
    ev.logs_before["heartbeat/log/main"] = log()
    assert failing(replace(ev), expect_log=["heartbeat", "nosuch"]) == {
        "logs": "heartbeat/log/main is empty: heartbeat's logger received nothing, and it must log; "
        "nosuch: no log directory (nosuch/log/*/current), and it must log"
    }


# The command, against the real dockerd.


@pytest.mark.slow
def test_check_container_on_svinit_alpine_is_clean(svinit_image, capsys, tmp_path):
    assert cli.main(["check", "container", "--image", svinit_image, "--artifacts", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"svinit check: {svinit_image}\n") and out.endswith("\nclean\n")
    assert "ok    order      3 services stopped before their loggers; svscan-log last" in out
    assert cli.main(["check", "container", "--image", svinit_image, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["clean"] and all(c["ok"] for c in d["checks"]) and d["exit_code"] == 0
    assert d["stop_seconds"] < 5 and "heartbeat/log" in d["services"]
    assert not (tmp_path / "a").exists(), "artifacts only when not clean"


@pytest.fixture(scope="session")
def sleep_image(svinit_docker, tmp_path_factory) -> str:
    """FROM alpine:3.23, with sleep as process 1: it has no SIGTERM handler, so docker stop waits for its
    grace and kills it (exit 137). Built from a temporary context, never pulled."""
    from svinit.build import build_container

    build_container(client=svinit_docker)  # provisions alpine:3.23 when missing
    ctx = tmp_path_factory.mktemp("sleep-image")
    (ctx / "Dockerfile").write_text('FROM alpine:3.23\nENTRYPOINT ["sleep", "1000"]\n')
    tag = worker_tag("sleep-pid1")
    svinit_docker.images.build(path=str(ctx), tag=tag, pull=False, rm=True)
    return tag


@pytest.mark.slow
def test_check_container_says_not_clean_when_pid1_ignores_term(sleep_image, capsys, tmp_path):
    art = tmp_path / "artifacts"
    argv = ["check", "container", "--image", sleep_image, "--stop-limit", "5", "--boot-timeout", "2"]
    assert cli.main([*argv, "--stop-timeout", "6", "--json", "--artifacts", str(art)]) == 1
    captured = capsys.readouterr()
    d = json.loads(captured.out)
    assert d["clean"] is False and d["exit_code"] == 137 and d["stop_seconds"] >= 6
    bad = {c["name"] for c in d["checks"] if not c["ok"]}
    assert bad == {"boot", "exit code", "stop time", "order", "logs"}
    assert "is it an svinit system?" in d["checks"][0]["detail"]
    assert f"artifacts (docker.log, service/, verdict.json) in {art}" in captured.err
    assert json.loads((art / "verdict.json").read_text())["clean"] is False
    assert (art / "docker.log").exists() and (art / "service.missing").exists()


def test_check_container_on_a_missing_image_names_the_fix(capsys):
    assert cli.main(["check", "container", "--image", "svinit-nosuch:1"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "svinit: image svinit-nosuch:1 is not present locally, and svinit never pulls: "
        "build or load it (docker build -t svinit-nosuch:1 ..., docker load)"
    )


@pytest.mark.slow
def test_check_artifacts_of_an_unclean_svinit_run(svinit_image, tmp_path):
    """A logger that is not multilog (cat) dies of TERM and never marks its log complete: the check says
    so and keeps the logs tree."""
    from svinit.runs import check_container

    svc = tmp_path / "svc"
    (svc / "log").mkdir(parents=True)
    (svc / "run").write_text("#!/bin/sh\necho hello\nexec sleep 100000\n")
    (svc / "log" / "run").write_text("#!/bin/sh\nmkdir -p main\nexec cat > main/current\n")
    for f in (svc / "run", svc / "log" / "run"):
        f.chmod(0o755)
    art = tmp_path / "art"
    v = check_container(
        svinit_image, artifacts=art, volumes={str(svc): {"bind": "/service/catlog", "mode": "rw"}}
    )
    assert not v.clean and [c.name for c in v.failed] == ["logs"], v.table()
    assert "catlog/log: its last exit was signal 15 (TERM), not a clean exit 0" in v["logs"].detail
    assert "catlog/log/main/current has mode 0644, not 0744" in v["logs"].detail
    assert (art / "service" / "heartbeat" / "log" / "main" / "current").read_text().endswith("\n")
    assert Path(art / "docker.log").read_text().startswith("svinit: booted")


def _image_with(docker, base: str, tmp: Path, tag: str, services: dict[str, dict[str, str]]) -> str:
    """*base* with more services under /service (NAME: {relative path: script}), built, never pulled."""
    ctx = tmp / tag.replace(":", "-")
    for name, files in services.items():
        for rel, text in files.items():
            f = ctx / "svc" / name / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(text)
            f.chmod(0o755)
    (ctx / "Dockerfile").write_text(f"FROM {base}\nCOPY svc/ /service/\n")
    docker.images.build(path=str(ctx), tag=tag, pull=False, rm=True)
    return tag


LOGGER = "#!/bin/sh\nexec multilog t ./main\n"


@pytest.fixture(scope="session")
def crashloop_image(svinit_docker, svinit_image, tmp_path_factory) -> str:
    """svinit:alpine with a service whose run exits after half a second: supervise restarts it every
    second, a crash loop."""
    run = "#!/bin/sh\necho starting\nsleep 0.5\necho 'oops: no config'\nexit 1\n"
    return _image_with(
        svinit_docker,
        svinit_image,
        tmp_path_factory.mktemp("img"),
        worker_tag("crashloop"),
        {"crashy": {"run": run, "log/run": LOGGER}},
    )


@pytest.fixture(scope="session")
def silent_image(svinit_docker, svinit_image, tmp_path_factory) -> str:
    """svinit:alpine with a service that runs and says nothing: its logger receives nothing."""
    return _image_with(
        svinit_docker,
        svinit_image,
        tmp_path_factory.mktemp("img"),
        worker_tag("silent"),
        {"quiet": {"run": "#!/bin/sh\nexec sleep 100000\n", "log/run": LOGGER}},
    )


@pytest.mark.slow
def test_check_container_catches_a_crash_loop(crashloop_image, capsys, tmp_path):
    argv = ["check", "container", "--image", crashloop_image, "--artifacts", str(tmp_path / "a")]
    assert cli.main(argv) == 1
    out = capsys.readouterr().out
    boot = next(line for line in out.splitlines() if line.startswith("  FAIL  boot"))
    assert "crashy is restarting: " in boot, out
    assert "last exit 1" in boot and "last lines of crashy/log/main: " in boot, out
    assert "'oops: no config'" in boot, out
    assert out.endswith("NOT CLEAN (boot)\n"), out


@pytest.mark.slow
def test_check_container_fails_a_silent_log_that_must_log(silent_image, capsys):
    assert cli.main(["check", "container", "--image", silent_image]) == 0
    out = capsys.readouterr().out
    assert "empty (their loggers received nothing): quiet/log/main" in out, out
    argv = [
        "check",
        "container",
        "--image",
        silent_image,
        "--expect-log",
        "quiet",
        "--expect-log",
        "heartbeat",
    ]
    assert cli.main([*argv, "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in d["checks"] if not c["ok"]] == ["logs"]
    assert d["checks"][-1]["detail"] == (
        "quiet/log/main is empty: quiet's logger received nothing, and it must log"
    )
