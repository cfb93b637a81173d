"""The VM verdict is pure: fed unclean evidence, each check must fail, and clean evidence passes."""

from __future__ import annotations

from svinit.checks import DiskReport, VmEvidence, parse_stop_report, vm_verdict

REPORT = (
    "svinit: poweroff: stopping\n"
    "svinit: stopped: heartbeat @400000006b050c6d03e9ec41 log @400000006b050c6d0b6f22d7\n"
    "svinit: stopped: crond @400000006b050c6d02f8f467 log @400000006b050c6d0b379495\n"
)
CLEAN_DISK = DiskReport("data.img", True, "cleanly unmounted", False, "clean", 0)


def evidence(**kw) -> VmEvidence:
    base = dict(
        subject="vm",
        how="poweroff",
        boot_seconds=9.0,
        shutdown_event={"guest": True, "reason": "guest-shutdown"},
        shutdown_seconds=2.5,
        disks=[CLEAN_DISK],
        stop_report=parse_stop_report(REPORT),
        kernel_final="reboot: Power down",
    )
    base.update(kw)
    return VmEvidence(**base)


def test_clean_evidence_is_clean():
    v = vm_verdict(evidence())
    assert v.clean, v.table()
    assert "2 services stopped before their loggers" in v["order"].detail


def test_the_report_is_parsed_into_ordered_stamps():
    r = parse_stop_report(REPORT)
    s, lg = r["heartbeat"]
    assert s < lg and round(lg - s, 3) == 0.126


def test_a_crash_is_not_clean():
    v = vm_verdict(evidence(shutdown_event={"guest": False, "reason": "host-qmp-quit"}))
    assert not v["ended"].ok and "host-qmp-quit" in v["ended"].detail


def test_no_event_is_not_clean():
    assert not vm_verdict(evidence(shutdown_event=None))["ended"].ok


def test_a_reboot_when_a_poweroff_was_asked_is_not_clean():
    v = vm_verdict(evidence(shutdown_event={"guest": True, "reason": "guest-reset"}))
    assert not v["ended"].ok
    rebooted = evidence(
        how="ctrl-alt-del",
        shutdown_event={"guest": True, "reason": "guest-reset"},
        kernel_final="reboot: Restarting system",
    )
    assert vm_verdict(rebooted).clean


def test_a_disk_left_unclean_fails():
    dirty = DiskReport("root.img", False, "needs_recovery is set", True, "clean", 0)
    v = vm_verdict(evidence(disks=[CLEAN_DISK, dirty]))
    assert not v["disks"].ok and "root.img: needs_recovery" in v["disks"].detail


def test_a_logger_down_before_its_service_fails():
    swapped = REPORT.replace(
        "@400000006b050c6d03e9ec41 log @400000006b050c6d0b6f22d7",
        "@400000006b050c6d0b6f22d7 log @400000006b050c6d03e9ec41",
    )
    v = vm_verdict(evidence(stop_report=parse_stop_report(swapped)))
    assert not v["order"].ok and "heartbeat" in v["order"].detail


def test_no_report_and_slow_and_no_boot_fail():
    v = vm_verdict(
        evidence(stop_report={}, shutdown_seconds=99.0, boot_seconds=None, boot_problem="getty never came up")
    )
    assert [c.name for c in v.failed] == ["boot", "time", "order"]


def test_halt_is_judged_by_the_kernels_last_words():
    quit_ = {"guest": False, "reason": "host-qmp-quit"}
    assert vm_verdict(evidence(how="halt", shutdown_event=quit_, kernel_final="reboot: System halted")).clean
    assert not vm_verdict(evidence(how="halt", shutdown_event=quit_, kernel_final=""))["ended"].ok


def test_a_panic_or_silence_is_not_clean():
    v = vm_verdict(evidence(kernel_final="Kernel panic - not syncing: Attempted to kill init!"))
    assert not v["ended"].ok and "Kernel panic" in v["ended"].detail
