"""The plugin's artifacts, without machines: file names from test ids, the console's last lines, and the
folder a failing test's machines leave (a fake machine)."""

from __future__ import annotations

import json
from pathlib import Path

from svinit.machine import ShutdownResult
from svinit.plugin import safe_name, save_artifacts, tail


class FakeContainer:
    def __init__(self, name: str, logs: str):
        self.name, self._logs, self.container = name, logs, object()
        self.result = ShutdownResult(exit_code=0, seconds=0.5)

    def logs(self) -> str:
        return self._logs


class Broken(FakeContainer):
    def logs(self) -> str:
        raise RuntimeError("the daemon went away")


def test_safe_name():
    assert safe_name("tests/test_x.py::test_a[1-two]") == "tests_test_x.py_test_a_1-two"
    assert safe_name("svinit:alpine (0123abcd)") == "svinit_alpine_0123abcd"
    assert safe_name("..") == "_"
    long_a, long_b = "t::" + "a" * 300, "t::" + "a" * 299 + "b"
    assert len(safe_name(long_a)) == 120 and safe_name(long_a) != safe_name(long_b)


def test_tail():
    text = "".join(f"line {i}\n" for i in range(30))
    assert tail(text).splitlines() == [f"line {i}" for i in range(10, 30)]
    assert tail("one\ntwo", 5) == "one\ntwo"


def test_save_artifacts(tmp_path: Path):
    folder = tmp_path / "arts" / "t_test"
    (folder / "stale").mkdir(parents=True)
    machines = [FakeContainer("c:1", "booted\n"), FakeContainer("c:1", "other\n"), Broken("b", "")]
    saved = save_artifacts(folder, machines, {"test": "t::test", "outcome": "failed"})  # type: ignore[arg-type]
    assert sorted(p.name for p in folder.iterdir()) == ["b", "c_1", "c_1_", "verdict.json"]
    assert (folder / "c_1" / "docker.log").read_text() == "booted\n"
    assert (folder / "c_1_" / "docker.log").read_text() == "other\n"
    assert "the daemon went away" in (folder / "b" / "docker.log").read_text()
    assert json.loads((folder / "c_1" / "shutdown.json").read_text())["exit_code"] == 0
    verdict = json.loads((folder / "verdict.json").read_text())
    assert verdict["outcome"] == "failed"
    assert [m["folder"] for m in verdict["machines"]] == ["c_1", "c_1_", "b"]
    assert saved == [("c:1", folder / "c_1"), ("c:1", folder / "c_1_"), ("b", folder / "b")]


def test_save_artifacts_of_a_vm(tmp_path: Path):
    """A VM's folder: its console and QMP events (a machine never booted: a console and a QMP faked)."""
    from types import SimpleNamespace

    from svinit.qemu.machine import QemuMachine

    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"")
    m = QemuMachine(kernel, name="vm1")
    m.console = SimpleNamespace(text="Linux version\nsvinit: booted\n", is_alive=lambda: False)  # type: ignore[assignment]
    m.qmp = SimpleNamespace(events=[{"event": "SHUTDOWN", "data": {"guest": True}}])  # type: ignore[assignment]
    save_artifacts(tmp_path / "t", [m], {"test": "t"})
    assert "svinit: booted" in (tmp_path / "t/vm1/console.log").read_text()
    assert json.loads((tmp_path / "t/vm1/qmp-events.json").read_text())[0]["event"] == "SHUTDOWN"
    assert not (tmp_path / "t/vm1/docker.log").exists()
    m.console = None
    m.qmp = None
    m.close()
