"""What the plugin's fixtures share (svinit.plugin, svinit.pytest_vm, svinit.pytest_network): machines
kept for a failing test's report, and a factory's boot."""

from __future__ import annotations

from typing import TypeVar

import pytest

from svinit.machine import Machine

#: the machines whose output goes into the report of a failing test under a node
MACHINES = pytest.StashKey[list]()
M = TypeVar("M", bound=Machine)


def keep_for_report(node: pytest.Item | pytest.Collector, machine: Machine) -> None:
    """Puts *machine*'s output in the report of a test that fails: every test's under *node* if *node* is
    the test, else (a module's or a session's fixture passes its request.node) every test's that has the
    machine as an argument."""
    node.stash.setdefault(MACHINES, []).append(machine)


def boot(m: M, machines: list, node, wait: bool, boot_timeout: float, then=None) -> M:
    """Starts a factory's machine: kept for teardown and for the failure report, booted (then
    ``then(m)``: a resumed machine's refresh), and with *wait* returned once every service and logger
    is up."""
    machines.append(m)
    keep_for_report(node, m)
    m.start()
    if then is not None:
        then(m)
    if wait:
        m.wait_for_all_services(boot_timeout)
    return m


def networks_of(network) -> list:
    """A factory's ``network=`` argument as a list: None, one Network, or several."""
    if network is None:
        return []
    return list(network) if isinstance(network, (list, tuple)) else [network]
