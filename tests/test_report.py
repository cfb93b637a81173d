"""svinit.report: a verdict as JUnit XML, one test case per check; and `svinit check container --junit`
against the real dockerd."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from svinit import cli
from svinit.report import junit_xml, write_junit
from svinit.verdicts import Check, Verdict


def parse(text: str) -> ET.Element:
    root = ET.fromstring(text.encode())
    assert root.tag == "testsuites"
    return root


def test_a_clean_verdict_is_one_passing_case_per_check(tmp_path):
    v = Verdict(
        "svinit:alpine", [Check("boot", True, "up in 0.4 s"), Check("exit code", True, "0")], {"x": 1}
    )
    path = write_junit(v, tmp_path / "sub" / "j.xml", kind="container")
    text = path.read_text()
    assert text.startswith("<?xml")
    root = parse(text)
    (suite,) = root.findall("testsuite")
    assert (root.get("tests"), root.get("failures")) == ("2", "0")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "0", "0")
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("svinit.check.container", "boot"),
        ("svinit.check.container", "exit code"),
    ]
    assert not list(root.iter("failure"))
    assert suite.find("properties/property[@name='x']").get("value") == "1"


def test_an_unclean_verdict_carries_each_failures_detail():
    detail = 'heartbeat/log stopped before heartbeat <&> "quoted"\nsecond line \x1b[0m'
    v = Verdict(
        "img & co",
        [Check("boot", True, "ok"), Check("order", False, detail), Check("logs", False, "lost a line")],
    )
    root = parse(junit_xml(v, "vm"))
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("3", "2")
    assert suite.get("name") == "svinit check vm: img & co"
    failed = {
        c.get("name"): c.find("failure") for c in suite.findall("testcase") if c.find("failure") is not None
    }
    assert set(failed) == {"order", "logs"}
    assert failed["order"].get("message") == 'heartbeat/log stopped before heartbeat <&> "quoted"'
    assert failed["order"].text == detail.replace("\x1b", "\ufffd")  # XML 1.0 holds no ESC
    assert failed["logs"].text == "lost a line"


@pytest.mark.slow
def test_check_container_junit_of_a_real_run(svinit_image, capsys, tmp_path):
    out = tmp_path / "junit.xml"
    assert cli.main(["check", "container", "--image", svinit_image, "--junit", str(out)]) == 0
    capsys.readouterr()
    suite = parse(out.read_text()).find("testsuite")
    names = [c.get("name") for c in suite.findall("testcase")]
    assert names == ["boot", "exit code", "stop time", "order", "logs"]
    assert (suite.get("tests"), suite.get("failures")) == ("5", "0")
    assert suite.find("properties/property[@name='exit_code']").get("value") == "0"
