"""The plugin's network fixtures (svinit.plugin documents them): private networks that the container
and VM factories' machines join (``network=net``), removed once those machines are gone."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from svinit.network import Network


@pytest.fixture
def svinit_network_factory() -> Iterator[Callable[..., Network]]:
    """Makes private networks: ``factory(name="net") -> Network``; each is removed at teardown (after
    the factories' machines: they depend on this fixture)."""
    made: list[Network] = []

    def make(name: str = "net") -> Network:
        net = Network(name)
        made.append(net)
        return net

    yield make
    for net in made:
        net.close()


@pytest.fixture
def svinit_network(svinit_network_factory) -> Network:
    """One private network (``svinit_container_factory(network=svinit_network)`` and
    ``svinit_vm_factory(network=svinit_network)`` put machines on it)."""
    return svinit_network_factory("net")
