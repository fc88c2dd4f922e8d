"""A network outside the cluster, on this host: a network namespace behind a veth pair that
holds the cloud metadata address and an address standing for the Internet, each with a TCP
server that answers every connection. Routed from the host, so pods reach it through the node
as they would reach a cloud's metadata server or Zoom: a policy agent judges that traffic on
its way out (tests/e2e/test_network_policy.py)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

NETNS = "mb-outside"
HOST_END, NS_END = "mbout-h", "mbout-n"
LINK_HOST, LINK_NS = "203.0.113.1", "203.0.113.2"  # TEST-NET-3, the link between them
METADATA = "169.254.169.254"  # every cloud's instance metadata service
INTERNET = "198.51.100.7"  # TEST-NET-2: outside every private range, as Zoom's addresses are
# (address, port) pairs with a server behind them: metadata over HTTP, the Internet on Zoom's
# HTTPS port and on a port no bot needs.
SERVED = ((METADATA, 80), (INTERNET, 443), (INTERNET, 8080))

_SERVER = """
import socket, sys, threading
def serve(address, port):
    listener = socket.create_server((address, port))
    while True:
        connection, _ = listener.accept()
        connection.sendall(b"reached\\n")
        connection.close()
for pair in sys.argv[1:]:
    address, port = pair.rsplit(":", 1)
    threading.Thread(target=serve, args=(address, int(port)), daemon=True).start()
print("serving", flush=True)
threading.Event().wait()
"""


@dataclass(frozen=True)
class Outside:
    metadata: str = METADATA
    internet: str = INTERNET


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def _remove() -> None:
    for address, _ in SERVED:
        subprocess.run(["ip", "route", "del", f"{address}/32"], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "delete", NETNS], capture_output=True, check=False)


@contextlib.contextmanager
def outside_network() -> Iterator[Outside]:
    _remove()  # whatever an interrupted run left
    _ip("netns", "add", NETNS)
    server = None
    try:
        _ip("link", "add", HOST_END, "type", "veth", "peer", "name", NS_END)
        _ip("link", "set", NS_END, "netns", NETNS)
        _ip("addr", "add", f"{LINK_HOST}/30", "dev", HOST_END)
        _ip("link", "set", HOST_END, "up")
        for address in (f"{LINK_NS}/30", f"{METADATA}/32", f"{INTERNET}/32"):
            _ip("-n", NETNS, "addr", "add", address, "dev", NS_END)
        _ip("-n", NETNS, "link", "set", NS_END, "up")
        _ip("-n", NETNS, "link", "set", "lo", "up")
        _ip("-n", NETNS, "route", "add", "default", "via", LINK_HOST)
        for address in (METADATA, INTERNET):
            _ip("route", "add", f"{address}/32", "via", LINK_NS)
        server = subprocess.Popen(
            ["ip", "netns", "exec", NETNS, sys.executable, "-c", _SERVER]
            + [f"{a}:{p}" for a, p in SERVED],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        if server.stdout.readline().strip() != "serving":
            raise RuntimeError("the outside network's servers did not start")
        time.sleep(0.2)
        yield Outside()
    finally:
        if server is not None:
            server.kill()
            server.wait(10)
        _remove()
