"""The guest contract, tied: the real sh of the init package (lib.sh and the shutdown drop-ins that
print the report lines) runs here, and svinit.guest's parsers read what it printed. A change to either
side that the other does not follow fails here."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from svinit import ROOT, guest
from svinit.tai64n import Tai64n

SH = ROOT / "init" / "sh"


def run_sh(script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """*script* after sourcing the real lib.sh, in POSIX sh; stderr is where sv_say writes."""
    full = f". {SH / 'lib' / 'lib.sh'}\n{script}"
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})}
    return subprocess.run(["sh", "-c", full], capture_output=True, text=True, env=e, timeout=30)


def test_the_names_and_paths_are_the_same_on_both_sides():
    r = run_sh('printf "%s\\n" "$SVINIT_LIB" "$SVINIT_RUN" "$SVINIT_SHUTDOWN_SERVICE" "$(sv_scandir)"')
    want = [guest.LIB, guest.RUN, guest.SHUTDOWN_SERVICE, guest.DEFAULT_SCANDIR]
    assert r.stdout.split() == want, r.stderr


def test_sv_scandir_and_the_harness_read_the_same_file(tmp_path):
    """sv_scandir reads $SVINIT_RUN/scandir; the harness's expression is sv_scandir itself (with lib.sh
    where it is in the guest), and /service where there is no svinit."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "scandir").write_text("/run/svinit/service with space\n")
    r = run_sh("sv_scandir", {"SVINIT_RUN": str(run)})
    assert r.stdout == "/run/svinit/service with space\n"
    assert guest.SCANDIR_FILE == f"{guest.RUN}/scandir"
    here = guest.SCANDIR_SH.replace(guest.LIB, str(SH / "lib"))
    env = {"PATH": "/usr/bin:/bin", "SVINIT_RUN": str(run)}
    r = subprocess.run(["sh", "-c", f"printf '%s\\n' {here}"], capture_output=True, text=True, env=env)
    assert r.stdout == "/run/svinit/service with space\n", r.stderr
    r = subprocess.run(["sh", "-c", f"printf '%s\\n' {guest.SCANDIR_SH}"], capture_output=True, text=True)
    assert r.stdout == f"{guest.DEFAULT_SCANDIR}\n", "no svinit here: /service"


def test_the_report_lines_of_lib_sh_parse():
    s, lg = Tai64n.from_unix(1_800_000_000.25), Tai64n.from_unix(1_800_000_000.5)
    r = run_sh(
        f"sv_report_stopped heartbeat {s.label[1:]} {lg.label[1:]}\n"
        "sv_report_stopped crond '' ''\n"
        "sv_report_done poweroff 1234 0\n"
    )
    assert r.returncode == 0, r.stderr
    assert guest.parse_stop_report(r.stderr) == {"heartbeat": (s, lg), "crond": (None, None)}
    assert guest.parse_done(r.stderr) == guest.Done("poweroff", 1234, 0)


def status_record(t: Tai64n, pid: int = 0) -> bytes:
    """A daemontools supervise/status record (18 bytes): down since *t* when pid is 0."""
    return t.sec.to_bytes(8, "big") + t.nano.to_bytes(4, "big") + pid.to_bytes(4, "little") + b"\0d"


def test_45_report_prints_what_parse_stop_report_reads(tmp_path, init_bin):
    """The real shutdown drop-in, on a scan directory with real status records (the shutdown service
    is left out, as are services without a logger)."""
    service, run = tmp_path / "service", tmp_path / "run"
    run.mkdir()
    (run / "scandir").write_text(f"{service}\n")
    s, lg = Tai64n.from_unix(1_800_000_000.125), Tai64n.from_unix(1_800_000_001)
    for d, t in ((service / "web", s), (service / "web" / "log", lg)):
        (d / "supervise").mkdir(parents=True)
        (d / "supervise" / "status").write_bytes(status_record(t))
    (service / "nolog" / "supervise").mkdir(parents=True)
    (service / guest.SHUTDOWN_SERVICE / "log").mkdir(parents=True)
    # svstamp as in the guest: svinit's programs come first in the shutdown's PATH
    path = f"{init_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    env = {"SVINIT_RUN": str(run), "SVINIT_HARNESS": "ttyS1", "PATH": path}
    r = run_sh(f"scandir=$(sv_scandir)\n. {SH / 'shutdown.d' / '45-report.sh'}", env)
    assert r.returncode == 0, r.stderr
    assert guest.parse_stop_report(r.stderr) == {"web": (s, lg)}, r.stderr


def test_90_final_prints_what_parse_done_reads(tmp_path):
    """The real final drop-in: its line, then (no svinit svscan to take the control here) the final
    stage, which is a script that exits with the code it is given."""
    lib, run = tmp_path / "lib", tmp_path / "run"
    (lib / "svscan").mkdir(parents=True)
    run.mkdir()
    (run / "exitcode").write_text("3\n")
    finish = lib / "svscan" / "finish"
    finish.write_text('#!/bin/sh\nexit "$1"\n')
    finish.chmod(0o755)
    env = {"SVINIT_RUN": str(run), "SVINIT_LIB": str(lib)}
    script = f"action=reboot t0=$(sv_ms) scandir={tmp_path}\n. {SH / 'shutdown.d' / '90-final.sh'}"
    r = run_sh(script, env)
    assert r.returncode == 3, r.stderr
    done = guest.parse_done(r.stderr)
    assert done is not None and (done.action, done.code) == ("reboot", 3) and done.ms >= 0, r.stderr


def test_a_console_without_report_lines_parses_to_nothing():
    assert guest.parse_stop_report("svinit: poweroff\nreboot: Power down\n") == {}
    assert guest.parse_done("svinit: poweroff: stopping\n") is None


def test_the_harness_svstat_script_is_posix_sh(tmp_path):
    """guest.SVSTAT_ALL parses in sh (it runs in the guest; a syntax error there would cost a boot)."""
    r = subprocess.run(["sh", "-n", "-c", guest.SVSTAT_ALL], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert Path(guest.DEFAULT_SCANDIR).is_absolute()
