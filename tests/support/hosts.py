"""
Hosts for a split's groups on one machine: each group in a network namespace
of its own, with its own address, joined by one bridge, so the network
between two groups can fail while both keep running.

    with Hosts.create(["shop", "payments"]) as hosts:
        argv = hosts.wrap("payments", argv)        # run a command on that host
        hosts.cut("shop", "payments")              # nothing passes between them
        hosts.cut("shop", "payments", answers_only=True)   # requests arrive, answers never
        hosts.cut_server("shop", 5672)             # shop loses the broker
        hosts.heal()                               # every cut undone

The layout (addresses from 10.213.<n>.0/24, n from the run's tag):

- a bridge `clb<tag>` in the root namespace at `.1`, the *gateway*: the test
  itself, nginx if any, and the database and broker servers, which listen on
  127.0.0.1 only. Connections from the hosts to the gateway's address on a
  server's port are forwarded to 127.0.0.1 (nftables DNAT, with
  `route_localnet` on the bridge) and seen by the server as coming from
  127.0.0.1 (SNAT at the input hook), so PostgreSQL's and RabbitMQ's loopback
  rules (`pg_hba.conf`, RabbitMQ's `guest`) admit them as they admit a local
  client;
- a namespace `cleave-<tag>-<group>` per group, with a veth pair whose outer
  end is on the bridge, at `.2`, `.3`, ...

Cuts are nftables rules inside the namespaces (table `inet cleave_cut`), so
healing is deleting that table, and a namespace's rules die with it. Every
name carries the run's tag; `close()` removes the namespaces, the bridge and
the root table by name, also after a failed test (the context manager), and
`sweep()` removes what an earlier run that was killed left behind.

Needs root, `ip` (iproute2) and `nft` (nftables); `available()` says why not.
Written here: the tests need exactly these few commands, and no library for
network namespaces covers nftables too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

# the servers the hosts may reach through the gateway (PostgreSQL, MariaDB, Redis, RabbitMQ)
SERVER_PORTS = (5432, 3306, 6379, 5672)
PREFIX = "cleave-"


def available() -> str | None:
    """None when hosts can be made here; otherwise why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"`{tool}` is not installed (Debian: iproute2, nftables)"
    try:
        _run("ip", "netns", "list")
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"`ip netns` does not work here: {exc}"
    return None


def _tool(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _run(*argv: str, input: str | None = None, check: bool = True) -> str:
    done = subprocess.run(
        [_tool(argv[0]), *argv[1:]],
        input=input,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if check and done.returncode != 0:
        raise subprocess.CalledProcessError(
            done.returncode, argv, output=done.stdout, stderr=done.stderr
        )
    return done.stdout


@dataclass
class Host:
    group: str
    namespace: str
    address: str
    veth: str  # inside the namespace
    outer: str  # its peer, on the bridge


@dataclass
class Hosts:
    tag: str
    subnet: str  # "10.213.<n>"
    hosts: dict[str, Host] = field(default_factory=dict)

    # --- making and removing -------------------------------------------------

    @classmethod
    def create(cls, groups: Iterable[str]) -> Hosts:
        tag = uuid.uuid4().hex[:4]
        hosts = cls(tag=tag, subnet=f"10.213.{int(tag, 16) % 250 + 1}")
        try:
            hosts._make_gateway()
            for index, group in enumerate(groups, start=2):
                hosts._make_host(group, index)
        except BaseException:
            hosts.close()
            raise
        return hosts

    @property
    def bridge(self) -> str:
        return f"clb{self.tag}"

    @property
    def gateway(self) -> str:
        """The root namespace's address on the bridge: the servers, as the hosts reach them."""
        return f"{self.subnet}.1"

    @property
    def table(self) -> str:
        return f"cleave_{self.tag}"

    def _make_gateway(self) -> None:
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        _run("sysctl", "-qw", f"net.ipv4.conf.{self.bridge}.route_localnet=1")
        ports = ", ".join(str(port) for port in SERVER_PORTS)
        _run(
            "nft",
            "-f",
            "-",
            input=f"""
table ip {self.table} {{
    chain servers {{
        type nat hook prerouting priority dstnat;
        iifname "{self.bridge}" ip daddr {self.gateway} tcp dport {{ {ports} }} dnat to 127.0.0.1
    }}
    chain as_local {{
        type nat hook input priority 100;
        ip saddr {self.subnet}.0/24 ip daddr 127.0.0.1 snat to 127.0.0.1
    }}
}}
""",
        )

    def _make_host(self, group: str, index: int) -> None:
        namespace = f"{PREFIX}{self.tag}-{group}"
        veth, outer = f"clv{self.tag}{index}", f"clp{self.tag}{index}"
        address = f"{self.subnet}.{index}"
        _run("ip", "netns", "add", namespace)
        self.hosts[group] = Host(group, namespace, address, veth, outer)
        _run("ip", "link", "add", veth, "type", "veth", "peer", "name", outer)
        _run("ip", "link", "set", veth, "netns", namespace)
        _run("ip", "link", "set", outer, "master", self.bridge, "up")
        _run("ip", "-n", namespace, "addr", "add", f"{address}/24", "dev", veth)
        _run("ip", "-n", namespace, "link", "set", veth, "up")
        _run("ip", "-n", namespace, "link", "set", "lo", "up")
        _run("ip", "-n", namespace, "route", "add", "default", "via", self.gateway)

    def close(self) -> None:
        """Remove every namespace, link and rule of this run, by name."""
        for host in self.hosts.values():
            # the pair by its outer end: the kernel may tear a namespace down later
            _run("ip", "link", "delete", host.outer, check=False)
            _run("ip", "netns", "delete", host.namespace, check=False)
        _run("ip", "link", "delete", self.bridge, check=False)
        _run("nft", "delete", "table", "ip", self.table, check=False)
        self.hosts.clear()

    def __enter__(self) -> Hosts:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def sweep() -> None:
        """What a killed earlier run left: every `cleave-` namespace, `clb` bridge, root table."""
        for line in _run("ip", "netns", "list", check=False).splitlines():
            name = line.split()[0] if line.split() else ""
            if name.startswith(PREFIX):
                _run("ip", "netns", "delete", name, check=False)
        for line in _run("ip", "-o", "link", "show", check=False).splitlines():
            name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
            if name.startswith(("clb", "clp")):
                _run("ip", "link", "delete", name, check=False)
        for line in _run("nft", "list", "tables", check=False).splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2].startswith("cleave_"):
                _run("nft", "delete", "table", parts[1], parts[2], check=False)

    # --- using them --------------------------------------------------------------

    def address(self, group: str) -> str:
        return self.hosts[group].address

    def wrap(self, group: str, argv: list[str]) -> list[str]:
        """`argv` run on `group`'s host (`ip netns exec` execs it: the pid is the command's)."""
        return [_tool("ip"), "netns", "exec", self.hosts[group].namespace, *argv]

    def _rules(self, group: str, chain: str, rule: str) -> None:
        namespace = self.hosts[group].namespace
        _run(
            "ip",
            "netns",
            "exec",
            namespace,
            _tool("nft"),
            "-f",
            "-",
            input=f"""
table inet cleave_cut {{
    chain input {{ type filter hook input priority filter; }}
    chain output {{ type filter hook output priority filter; }}
}}
add rule inet cleave_cut {chain} {rule}
""",
        )

    def cut(self, a: str, b: str, *, answers_only: bool = False, port: int | None = None) -> None:
        """
        Nothing passes between `a` and `b`, both ways; or, with `answers_only`,
        `a`'s requests still reach `b` (TCP opens, the request is read) but no
        byte of `b`'s answers on `port` reaches `a` (acknowledgements only).
        """
        if answers_only:
            if port is None:
                raise ValueError("answers_only needs the port `b` answers on")
            # a pure ACK or FIN is 52 bytes (IPv4, TCP with timestamps); data is more
            self._rules(
                b, "output", f"ip daddr {self.address(a)} tcp sport {port} ip length > 52 drop"
            )
            return
        self._rules(a, "output", f"ip daddr {self.address(b)} drop")
        self._rules(a, "input", f"ip saddr {self.address(b)} drop")

    def cut_server(self, group: str, port: int) -> None:
        """`group` can no longer reach the gateway's server on `port` (the broker: 5672)."""
        self._rules(group, "output", f"ip daddr {self.gateway} tcp dport {port} drop")

    def heal(self, groups: Iterable[str] | None = None) -> None:
        """Every cut on these hosts (all by default) undone."""
        for group in groups or list(self.hosts):
            with contextlib.suppress(subprocess.CalledProcessError):
                _run(
                    "ip",
                    "netns",
                    "exec",
                    self.hosts[group].namespace,
                    _tool("nft"),
                    "delete",
                    "table",
                    "inet",
                    "cleave_cut",
                )
