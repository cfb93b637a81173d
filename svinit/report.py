"""A verdict as a JUnit XML report, for CI systems that show test results: one test suite (the run's
subject), one test case per :class:`~svinit.verdicts.Check`, a failed check a ``<failure>`` carrying its
detail. Pure: :func:`junit_xml` turns a Verdict into text; :func:`write_junit` writes it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from svinit.verdicts import Verdict

#: The classname of every test case: the check's kind (``svinit.check.container``).
CLASSNAME = "svinit.check"


def junit_xml(v: Verdict, kind: str = "") -> str:
    """*v* as JUnit XML: ``<testsuites>`` holding one ``<testsuite>`` named after the verdict's subject,
    a ``<testcase>`` per check (classname ``svinit.check.KIND``), each failed check with a ``<failure>``
    whose message is its detail's first line and whose text is the whole detail. The verdict's facts go
    into ``<properties>``.

    Args:
        v: the verdict.
        kind: ``container`` or ``vm``: part of each test case's classname.
    """
    classname = f"{CLASSNAME}.{kind}" if kind else CLASSNAME
    failures = len(v.failed)
    suites = ET.Element("testsuites", name="svinit check", tests=str(len(v.checks)), failures=str(failures))
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"svinit check {kind}: {v.subject}" if kind else f"svinit check: {v.subject}",
        tests=str(len(v.checks)),
        failures=str(failures),
        errors="0",
        skipped="0",
    )
    if v.facts:
        props = ET.SubElement(suite, "properties")
        for key, value in v.facts.items():
            ET.SubElement(props, "property", name=str(key), value=_text(value))
    for c in v.checks:
        case = ET.SubElement(suite, "testcase", classname=classname, name=c.name)
        if c.ok:
            ET.SubElement(case, "system-out").text = _text(c.detail)
        else:
            failure = ET.SubElement(
                case, "failure", message=_text(c.detail).split("\n", 1)[0], type="NotClean"
            )
            failure.text = _text(c.detail)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def write_junit(v: Verdict, path: Path, kind: str = "") -> Path:
    """Writes :func:`junit_xml` of *v* to *path* (its directory made if missing); returns *path*."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(junit_xml(v, kind), encoding="utf-8")
    return path


def _text(value: object) -> str:
    """A value as XML text: characters XML 1.0 cannot hold (a log's control bytes) become U+FFFD."""
    s = value if isinstance(value, str) else str(value)
    return "".join(ch if _xml_char(ch) else "\ufffd" for ch in s)


def _xml_char(ch: str) -> bool:
    o = ord(ch)
    return o in (0x9, 0xA, 0xD) or 0x20 <= o <= 0xD7FF or 0xE000 <= o <= 0xFFFD or 0x10000 <= o <= 0x10FFFF
