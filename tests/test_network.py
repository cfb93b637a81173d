"""Private networks between machines (svinit.network), for real: two VMs on a QEMU link through the
harness's hub (no privileges, no bridge), two containers on a Docker network of their own; a server
reached by name and by address, a blocked link that fails and an unblocked one that works again."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from svinit.machine import MachineError
from svinit.network import Network, NetworkError

#: a web page the VM's busybox httpd serves (Debian's busybox-static has httpd)
WEB = "mkdir -p /www && echo hello-from-$(hostname)-vm > /www/index.html && httpd -p 80 -h /www"
#: a server in a container: a supervised nc answering each connection (Alpine's busybox has no httpd)
NC_SERVICE = (
    "mkdir -p /srv /service/hello && printf '#!/bin/sh\\necho hello-from-server\\n' > /srv/hello && "
    "printf '#!/bin/sh\\nexec nc -lk -p 8000 -e /srv/hello\\n' > /service/hello/run && "
    "chmod +x /srv/hello /service/hello/run && kill -HUP 1"
)


def test_two_vms_reach_each_other_by_name_and_address_and_a_blocked_link_fails(
    svinit_vm_factory, svinit_network
):
    server = svinit_vm_factory(network=svinit_network, name="server")
    client = svinit_vm_factory(network=svinit_network, name="client")
    addr = server.address(svinit_network)
    assert addr == server.address() and addr != client.address(svinit_network)
    assert addr.startswith("10.") and f"inet {addr}/24" in server.succeed("ip addr")
    server.succeed(WEB)
    # the second machine knows the first from its kernel command line, the first the second from the
    # harness (its /etc/hosts, through the command channel)
    assert f"svinit.host=server,{addr}" in client.succeed("cat /proc/cmdline")
    assert f"{client.address()} client" in server.succeed("cat /etc/hosts")
    # an HTTP GET with nc (busybox-static's wget crashes in its static NSS lookups)
    get = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {} 80"
    assert "\nhello-from-svinit-vm" in client.succeed(get.format("server"))
    assert "\nhello-from-svinit-vm" in client.succeed(get.format(addr))
    server.succeed(f"ping -c 1 -W 3 {client.address()}", "ping -c 1 -W 3 client")

    server.block()
    client.fail(get.format(addr), timeout=30)
    server.unblock()
    assert "hello-from-svinit-vm" in client.wait_until_succeeds(get.format("server"), timeout=30)


@pytest.fixture
def forwarding():
    """Lets a Docker network's bridge pass its own traffic on this host (FACTS.md: the private dockerds
    run with --iptables=false, and the host's FORWARD chain, policy DROP, sees bridged frames through
    br_netfilter; a dockerd that manages iptables adds this rule itself): allow(bridge) inserts it,
    the teardown removes it. Nothing is changed where the chain accepts."""
    added: list[list[str]] = []
    chain = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True).stdout
    nf = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    needed = (
        shutil.which("iptables") and "-P FORWARD DROP" in chain and nf.exists() and nf.read_text() == "1\n"
    )

    def allow(bridge: str) -> None:
        if needed:
            rule = ["FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"]
            subprocess.run(["iptables", "-I", *rule], check=True)
            added.append(rule)

    yield allow
    for rule in added:
        subprocess.run(["iptables", "-D", *rule], check=False)


def test_two_containers_reach_each_other_by_name_and_address_and_a_blocked_link_fails(
    svinit_container_factory, svinit_network, svinit_docker, forwarding
):
    server = svinit_container_factory(network=svinit_network, name="server")
    client = svinit_container_factory(network=svinit_network, name="client")
    forwarding(svinit_network.bridge)
    addr = server.address(svinit_network)
    # the harness gave the address, in the subnet of a Docker network of the test's own, labelled
    net = svinit_docker.networks.get(svinit_network.docker_network.name)
    assert net.attrs["Labels"]["org.svinit.harness"] == "1"
    assert f"inet {addr}/" in server.succeed("ip addr")
    assert client.succeed("hostname").strip() == "client"
    server.succeed(NC_SERVICE)
    server.wait_for_service("hello")
    get = "nc -w 3 {} 8000"
    assert client.wait_until_succeeds(get.format("server"), timeout=10).strip() == "hello-from-server"
    assert client.succeed(get.format(addr)).strip() == "hello-from-server"
    client.succeed(f"ping -c 1 -W 3 {client.address()}")  # itself, and the other way round
    server.succeed("ping -c 1 -W 3 client")

    server.block()
    assert server.networks == [svinit_network] and svinit_network.member(server).blocked
    client.fail(get.format(addr), get.format("server"), timeout=30)
    server.unblock()
    assert server.address() == addr
    assert client.wait_until_succeeds(get.format("server"), timeout=20).strip() == "hello-from-server"


def test_a_network_is_for_containers_or_vms_and_names_are_host_names(svinit_container_factory):
    net = Network("mixed")
    try:
        m = svinit_container_factory(network=net, name="one", wait=False)
        with pytest.raises(NetworkError, match="a vm cannot join it"):
            net._take("vm", "other")
        with pytest.raises(NetworkError, match="has a machine named one already"):
            net._take("container", "one")
        with pytest.raises(NetworkError, match="is no host name"):
            net._take("container", "no_such name")
        with pytest.raises(MachineError, match="is not on network"):
            m.address(Network("other"))
    finally:
        m.close()
        net.close()
