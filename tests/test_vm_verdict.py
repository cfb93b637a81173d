"""The VM verdict is pure: fed unclean evidence, each check must fail, and clean evidence passes. The
evidence holds the machine's QemuShutdown as it is, read from a console transcript by the same code a
real run uses (QemuShutdown.read); its ended() is the one definition of a clean end."""

from __future__ import annotations

from dataclasses import replace

from svinit.disks import DiskReport
from svinit.evidence import VmEvidence
from svinit.guest import parse_stop_report
from svinit.qemu.shutdown import QemuShutdown
from svinit.verdicts import vm_verdict

REPORT = (
    "svinit: poweroff: stopping\n"
    "svinit: stopped: heartbeat @400000006b050c6d03e9ec41 log @400000006b050c6d0b6f22d7\n"
    "svinit: stopped: crond @400000006b050c6d02f8f467 log @400000006b050c6d0b379495\n"
)
CONSOLE = (
    REPORT + "svinit: poweroff: done in 1234 ms (exit code 0)\nsvinit: poweroff\n[ 9.1] reboot: Power down\n"
)
SHUTDOWN = {"guest": True, "reason": "guest-shutdown"}
CLEAN_DISK = DiskReport("data.img", True, "cleanly unmounted", False, "clean", 0)


def shutdown(how="poweroff", console=CONSOLE, event=SHUTDOWN, seconds=2.5) -> QemuShutdown:
    return QemuShutdown.read(how, 0, seconds, console, event)


def evidence(**kw) -> VmEvidence:
    base = dict(subject="vm", how="poweroff", boot_seconds=9.0, shutdown=shutdown(), disks=[CLEAN_DISK])
    base.update(kw)
    return VmEvidence(**base)


def test_clean_evidence_is_clean():
    v = vm_verdict(evidence())
    assert v.clean, v.table()
    assert "2 services stopped before their loggers" in v["order"].detail
    assert "svinit's poweroff done in 1234 ms" in v["ended"].detail
    assert shutdown().clean


def test_the_report_is_parsed_into_ordered_stamps():
    r = parse_stop_report(REPORT)
    s, lg = r["heartbeat"]
    assert s < lg and round(lg - s, 3) == 0.126


def test_a_crash_is_not_clean():
    res = shutdown(how="crash", event={"guest": False, "reason": "host-qmp-quit"})
    v = vm_verdict(evidence(how="crash", shutdown=res))
    assert not v["ended"].ok and "host-qmp-quit" in v["ended"].detail and not res.clean
    v = vm_verdict(evidence(shutdown=shutdown(event={"guest": False, "reason": "host-qmp-quit"})))
    assert not v["ended"].ok and "host-qmp-quit" in v["ended"].detail


def test_a_guest_that_ended_before_it_was_asked_is_not_clean():
    # every last word of a clean poweroff, but the guest powered itself off before the harness asked
    asked = "svinit login: svinit: poweroff asked by poweroff (pid 298 in /; its parent 297: sh)\n"
    res = QemuShutdown.read("poweroff", 0, 0.1, asked + CONSOLE, SHUTDOWN, unasked=True)
    assert res.asked_by == "poweroff (pid 298 in /; its parent 297: sh)"
    v = vm_verdict(evidence(shutdown=res))
    assert not v["ended"].ok and not res.clean
    assert v["ended"].detail == (
        "the guest ended by itself before the harness asked for poweroff: "
        "svinit's shutdown was asked by poweroff (pid 298 in /; its parent 297: sh)"
    )
    assert shutdown(console=asked + CONSOLE).clean  # the same words, asked for: clean


def test_no_event_is_not_clean():
    assert not vm_verdict(evidence(shutdown=shutdown(event=None)))["ended"].ok


def test_no_shutdown_record_is_not_clean():
    v = vm_verdict(evidence(shutdown=None))
    assert [c.name for c in v.failed] == ["ended", "time", "order"]


def test_without_svinits_last_words_it_is_not_clean():
    """The kernel powered off, but svinit's shutdown never said it was done (no final stage)."""
    res = shutdown(console=CONSOLE.replace("svinit: poweroff: done in 1234 ms (exit code 0)\n", ""))
    assert not res.clean and not vm_verdict(evidence(shutdown=res))["ended"].ok
    failed = shutdown(console=CONSOLE.replace("(exit code 0)", "(exit code 3)"))
    assert not failed.clean and "exit code 3" in vm_verdict(evidence(shutdown=failed))["ended"].detail


def test_a_reboot_when_a_poweroff_was_asked_is_not_clean():
    v = vm_verdict(evidence(shutdown=shutdown(event={"guest": True, "reason": "guest-reset"})))
    assert not v["ended"].ok
    console = CONSOLE.replace("poweroff", "reboot").replace("Power down", "Restarting system")
    rebooted = shutdown("ctrl-alt-del", console, {"guest": True, "reason": "guest-reset"})
    assert vm_verdict(evidence(how="ctrl-alt-del", shutdown=rebooted)).clean


def test_a_disk_left_unclean_fails():
    dirty = DiskReport("root.img", False, "needs_recovery is set", True, "clean", 0)
    v = vm_verdict(evidence(disks=[CLEAN_DISK, dirty]))
    assert not v["disks"].ok and "root.img: needs_recovery" in v["disks"].detail


def test_a_logger_down_before_its_service_fails():
    swapped = CONSOLE.replace(
        "@400000006b050c6d03e9ec41 log @400000006b050c6d0b6f22d7",
        "@400000006b050c6d0b6f22d7 log @400000006b050c6d03e9ec41",
    )
    v = vm_verdict(evidence(shutdown=shutdown(console=swapped)))
    assert not v["order"].ok and "heartbeat" in v["order"].detail


def test_no_report_and_slow_and_no_boot_fail():
    quiet = shutdown(console=CONSOLE.replace(REPORT, ""), seconds=99.0)
    v = vm_verdict(evidence(shutdown=quiet, boot_seconds=None, boot_problem="getty never came up"))
    assert [c.name for c in v.failed] == ["boot", "time", "order"]


def test_halt_is_judged_by_the_kernels_last_words():
    quit_ = {"guest": False, "reason": "host-qmp-quit"}
    halted = CONSOLE.replace("poweroff", "halt").replace("reboot: Power down", "reboot: System halted")
    assert vm_verdict(evidence(how="halt", shutdown=shutdown("halt", halted, quit_))).clean
    silent = shutdown("halt", halted.replace("reboot: System halted", ""), quit_)
    assert not vm_verdict(evidence(how="halt", shutdown=silent))["ended"].ok


def test_a_panic_or_silence_is_not_clean():
    panic = CONSOLE + "Kernel panic - not syncing: Attempted to kill init!\n"
    v = vm_verdict(evidence(shutdown=shutdown(console=panic)))
    assert not v["ended"].ok and "Kernel panic" in v["ended"].detail
    silent = replace(shutdown(), kernel_line=None)
    assert not vm_verdict(evidence(shutdown=silent))["ended"].ok


def test_a_service_restarting_in_the_vm_fails_the_boot_with_its_log():
    """acpid restarting every second (exec: acpid: not found): the same pure check as a container's."""
    from svinit.evidence import LogState
    from svinit.svstat import Status

    def up(pid: int) -> dict:
        return {
            "acpid": Status("acpid", True, pid, 0, "u"),
            "acpid/log": Status("acpid/log", True, 7, 3, "u"),
        }

    down = {
        "acpid": Status("acpid", False, None, 0, "u", normally_up=True),
        **{k: v for k, v in up(0).items() if k != "acpid"},
    }
    logs = {"acpid/log/main": LogState(b"@400000006b050c6d03e9ec41 ./run: exec: acpid: not found\n" * 2)}
    ev = evidence(watch=[(0.0, up(90)), (0.5, down), (1.2, up(95))], observe_seconds=1.2, logs=logs)
    v = vm_verdict(ev)
    assert [c.name for c in v.failed] == ["boot"], v.table()
    assert v["boot"].detail == (
        "acpid is restarting: 2 pids (90, 95), down in 1 of 3 looks in 1.2 s; up (pid 95) 0 seconds; "
        "last lines of acpid/log/main: './run: exec: acpid: not found' | './run: exec: acpid: not found'"
    )
    steady = evidence(watch=[(0.0, up(90)), (1.5, up(90))], observe_seconds=1.5)
    assert vm_verdict(steady)["boot"].detail == "every service up 9.0 s after QEMU started, steady for 1.5 s"


def test_a_vm_log_that_must_log_but_is_empty_or_missing_fails():
    from svinit.evidence import LogState

    logs = {
        "heartbeat/log/main": LogState(b"@400000006b050c6d03e9ec41 beat\n"),
        "quiet/log/main": LogState(b""),
    }
    v = vm_verdict(evidence(logs=logs))
    assert v["logs"].ok and v["logs"].detail == (
        "1 logs hold lines while up; empty (their loggers received nothing): quiet/log/main"
    )
    assert vm_verdict(evidence(logs=logs), expect_log=["heartbeat"])["logs"].ok
    bad = vm_verdict(evidence(logs=logs), expect_log=["quiet", "nolog"])
    assert [c.name for c in bad.failed] == ["logs"]
    assert bad["logs"].detail.startswith(
        "quiet/log/main is empty: quiet's logger received nothing, and it must log; "
        "nolog: no nolog/log/*/current, and it must log"
    )
    unread = vm_verdict(evidence(), expect_log=["heartbeat"])["logs"]
    assert not unread.ok and "no log was read from the guest" in unread.detail
    assert vm_verdict(evidence())["logs"].ok
