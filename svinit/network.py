"""Private networks between the harness's machines: containers on a Docker network of their own, VMs on
a QEMU link that needs no host privileges and no bridge.

A :class:`Network` is joined by containers or by VMs (not both: a container and a VM on one link would
need a bridge or a tap, which need privileges):

- **containers**: a Docker network (bridge driver, labelled ``org.svinit.harness`` and its owner, as the
  harness's containers, so that ``svinit clean`` removes a killed run's), its subnet the one Docker
  picks; each container gets an address of it, given by the harness, and its name as an alias, which
  Docker's DNS answers. ``block()`` is ``docker network disconnect``, ``unblock()`` connects it again
  with the same address and alias.
- **VMs**: each QEMU has a virtio-net device whose backend is ``-netdev dgram`` on a unix datagram socket
  of its own; a hub in the harness (:class:`Hub`, a thread) passes every frame to the other members, as
  an Ethernet hub. Nothing leaves the host's files: no multicast, no port, no tap. The harness gives each
  VM a MAC and an address (``10.N.0.0/24``, N the network's number in this process) that the kernel
  command line carries (``svinit.net=MAC,ADDR/PREFIX``), with its peers' names
  (``svinit.host=NAME,ADDR``); ``boot.d/16-network.sh`` sets them. A peer that joins later is added to
  the others' ``/etc/hosts`` through their command channel. ``block()`` is QMP ``set_link`` (the
  device's link down: the guest sees the carrier go), ``unblock()`` sets it up again.

>>> net = Network("lan")
>>> server = svinit_vm_factory(network=net, name="server")
>>> client = svinit_vm_factory(network=net, name="client")
>>> client.succeed(f"ping -c1 {server.address(net)}", "ping -c1 server")
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import os
import re
import select
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from svinit.leftovers import container_labels, make_temp_dir, remove_temp_dir
from svinit.machine import Machine, MachineError
from svinit.qemu.machine import SOCKET_NAME_MAX

log = logging.getLogger(__name__)

#: numbers this process's networks (their VM subnets, 10.N.0.0/24, and the MACs' fourth byte)
_numbers = itertools.count(1)
#: a name peers can use: a DNS label
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


class NetworkError(MachineError):
    """A network could not be made, joined or changed; the message names it and the fix."""


@dataclass
class Member:
    """One machine on a network: its name there, its address and, for a VM, its MAC and netdev id."""

    machine: Machine | None
    name: str
    address: str
    mac: str = ""
    netdev: str = ""
    socket: Path | None = None
    blocked: bool = False


class Hub:
    """An Ethernet hub for QEMU's ``-netdev dgram`` unix sockets: every datagram from a member goes to
    every other member, as it came. A thread; :meth:`close` stops it."""

    def __init__(self, path: Path, name: str):
        self.path = path
        self.name = name
        self.members: set[str] = set()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self._stop_r, self._stop_w = os.pipe()
        self.frames = 0
        self.thread = threading.Thread(target=self._loop, name=f"svinit hub {name}", daemon=True)
        self.thread.start()

    def add(self, path: Path) -> None:
        self.members.add(str(path))

    def _loop(self) -> None:
        while True:
            r, _, _ = select.select([self.sock, self._stop_r], [], [])
            if self._stop_r in r:
                return
            try:
                data, src = self.sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return
            self.frames += 1
            for dest in list(self.members):
                if dest == src:
                    continue
                try:
                    self.sock.sendto(data, dest)
                except OSError:  # not started yet, ended, or its queue full: a lost frame, as on a wire
                    pass

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self.thread.join(5)
        self.sock.close()
        os.close(self._stop_r)
        os.close(self._stop_w)


class Network:
    """A private network for the harness's machines (see the module's docstring).

    Args:
        name: how messages name it (and part of the Docker network's name).
        client: a docker client, for containers (default: the machine's).
    """

    def __init__(self, name: str = "net", client=None):
        self.number = next(_numbers)
        self.name = name
        self.kind: str | None = None
        self.members: dict[str, Member] = {}
        self._client = client
        self.docker_network = None
        self.bridge: str | None = None
        self.subnet: ipaddress.IPv4Network | None = None
        self.state_dir: Path | None = None
        self.hub: Hub | None = None
        self._hosts = itertools.count(10)

    def __repr__(self) -> str:
        return f"<Network {self.name} ({self.kind or 'empty'}, {len(self.members)} members)>"

    # Joining.

    def _take(self, kind: str, name: str) -> None:
        if self.kind not in (None, kind):
            raise NetworkError(
                f"network {self.name} has {self.kind}s: a {kind} cannot join it (containers and VMs "
                "share no link without a bridge, which needs privileges): give it a network of its own"
            )
        if not _NAME.match(name):
            raise NetworkError(
                f"network {self.name}: {name!r} is no host name (letters, digits and '-'): name the "
                "machine so that its peers can reach it (name=...)"
            )
        if name in self.members:
            raise NetworkError(f"network {self.name} has a machine named {name} already: name it otherwise")
        self.kind = kind

    def _next_address(self) -> str:
        assert self.subnet is not None
        host = next(self._hosts)
        if host >= self.subnet.num_addresses - 1:
            raise NetworkError(f"network {self.name}: no address left in {self.subnet}")
        return str(self.subnet.network_address + host)

    def join_vm(self, machine: Machine) -> Member:
        """The VM *machine* (created, not started) joins: its QEMU gets a virtio-net device on the hub
        (its socket in the machine's state directory) and its kernel command line its address and its
        peers' names."""
        self._take("vm", machine.name)
        if self.hub is None:
            self.state_dir = make_temp_dir("svinit-net-", sockets=SOCKET_NAME_MAX)
            self.subnet = ipaddress.ip_network(f"10.{self.number % 250}.0.0/24")
            self.hub = Hub(self.state_dir / "hub.sock", self.name)
        assert self.subnet is not None
        index = len(self.members) + 1
        netdev = f"net{self.number}"
        member = Member(
            None,
            machine.name,
            self._next_address(),
            mac=f"52:54:00:{self.number % 256:02x}:{index // 256:02x}:{index % 256:02x}",
            netdev=netdev,
            socket=machine.state_dir / f"{netdev}.sock",
        )
        machine.extra_args += [
            "-netdev",
            f"dgram,id={netdev},local.type=unix,local.path={member.socket},"
            f"remote.type=unix,remote.path={self.hub.path}",
            "-device",
            f"virtio-net-pci,netdev={netdev},mac={member.mac},id={netdev}-nic",
        ]
        words = [f"svinit.net={member.mac},{member.address}/{self.subnet.prefixlen}"]
        words += [f"svinit.host={m.name},{m.address}" for m in self.members.values()]
        machine.cmdline += " " + " ".join(words)
        self.hub.add(member.socket)
        self.attach(machine, member)
        return member

    def join_container(self, machine: Machine) -> Member:
        """The container *machine* (created, not started: a ContainerMachine) joins: it is started on
        this network alone, with an address the harness gives and its name as an alias."""
        self._take("container", machine.name)
        options = machine.options  # type: ignore[attr-defined]
        if options.get("network") or options.get("network_mode"):
            raise NetworkError(f"{machine.name}: give either network= or docker's network options, not both")
        self._client = self._client or machine.client  # type: ignore[attr-defined]
        if self.docker_network is None:
            self._create_docker_network()
        member = Member(None, machine.name, self._next_address())
        endpoint = self._client.api.create_endpoint_config(
            aliases=[machine.name], ipv4_address=member.address
        )
        options["network"] = self.docker_network.name
        options["networking_config"] = {self.docker_network.name: endpoint}
        self.attach(machine, member)
        return member

    def _create_docker_network(self) -> None:
        """A Docker network in a subnet Docker picks (free of the host's routes), made again with that
        subnet given, so that an address can be asked for (Docker takes one only in a subnet given)."""
        import docker.errors
        import docker.types

        name = f"svinit-{os.getpid()}-{self.number}-{self.name}"
        labels = container_labels()
        # the bridge's name (at most 15 characters), for a host whose firewall must be told of it
        self.bridge = f"svn{os.getpid() % 10**7}-{self.number % 100}"
        options = {"com.docker.network.bridge.name": self.bridge}
        try:
            probe = self._client.networks.create(name, driver="bridge", labels=labels)
            probe.reload()
            subnet = probe.attrs["IPAM"]["Config"][0]["Subnet"]
            probe.remove()
            ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
            self.docker_network = self._client.networks.create(
                name, driver="bridge", labels=labels, ipam=ipam, options=options
            )
        except (docker.errors.APIError, KeyError, IndexError) as e:
            raise NetworkError(f"network {self.name}: docker could not make a network: {e}") from e
        self.subnet = ipaddress.ip_network(subnet)
        log.info("network %s: docker network %s, %s", self.name, name, subnet)

    def attach(self, machine: Machine, member: Member) -> None:
        """*machine* is on the network (it has started, or will): it can be asked its address, blocked."""
        member.machine = machine
        self.members[member.name] = member
        machine.networks.append(self)

    def introduce(self, member: Member) -> None:
        """Tells the VMs already running the new *member*'s name (their /etc/hosts); a container needs
        none (Docker's DNS)."""
        if self.kind != "vm":
            return
        line = f"{member.address} {member.name}"
        for other in self.members.values():
            if other is member or other.machine is None or not other.machine.is_running():
                continue
            other.machine.succeed(f"grep -qx '{line}' /etc/hosts || echo '{line}' >> /etc/hosts")

    # What a test asks.

    def member(self, machine: Machine) -> Member:
        for m in self.members.values():
            if m.machine is machine:
                return m
        raise NetworkError(f"{machine.name} is not on network {self.name}: join it through the factory")

    def address_of(self, machine: Machine) -> str:
        """*machine*'s address on this network."""
        return self.member(machine).address

    def block(self, machine: Machine) -> None:
        """Cuts *machine*'s link to this network (VM: QMP set_link down; container: docker network
        disconnect)."""
        self._set_link(self.member(machine), False)

    def unblock(self, machine: Machine) -> None:
        """Restores *machine*'s link (same address, same name)."""
        self._set_link(self.member(machine), True)

    def _set_link(self, member: Member, up: bool) -> None:
        import docker.errors
        import docker.types

        m = member.machine
        assert m is not None
        if member.blocked != up:
            return
        if self.kind == "vm":
            qmp = getattr(m, "qmp", None)
            if qmp is None:
                raise NetworkError(f"{m.name}: not running: its link cannot be changed")
            qmp.command("set_link", name=f"{member.netdev}-nic", up=up)
        else:
            container = getattr(m, "container", None)
            try:
                if up:
                    self.docker_network.connect(container, aliases=[member.name], ipv4_address=member.address)
                else:
                    self.docker_network.disconnect(container, force=True)
            except docker.errors.APIError as e:
                raise NetworkError(f"{m.name}: docker could not change its link to {self.name}: {e}") from e
        member.blocked = not up
        log.info("network %s: %s %s", self.name, m.name, "unblocked" if up else "blocked")

    def close(self) -> None:
        """Removes the Docker network and stops the hub (once its machines are gone)."""
        import docker.errors
        import docker.types

        if self.docker_network is not None:
            try:
                self.docker_network.remove()
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as e:
                log.warning("network %s: could not remove %s: %s", self.name, self.docker_network.name, e)
            self.docker_network = None
        if self.hub is not None:
            self.hub.close()
            self.hub = None
        if self.state_dir is not None:
            remove_temp_dir(self.state_dir)
            self.state_dir = None
