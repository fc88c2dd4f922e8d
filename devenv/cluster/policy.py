"""The real node's NetworkPolicy agent: kube-router's policy controller, on the host.

The node's bridge CNI ignores NetworkPolicies. kube-router run with `--run-firewall` alone (its
BGP router and service proxy off) turns them into iptables chains and ipsets on this host,
judging every packet a local pod sends or receives: forwarded (to other pods, off the node), and
delivered to the host itself (the API server, the kubelet, CoreDNS run here), through its INPUT,
FORWARD and OUTPUT hooks. Traffic is judged after kube-proxy's DNAT, so a Service is judged by
the endpoint it was sent to. Version and why this one: versions.env. What it proves:
tests/e2e/test_network_policy.py and docs/security.md.

It runs while a test needs it (`enforcing()`), not always: the rest of the suite keeps the
node's plain bridge. `stop()` (also run by `make cluster-down`) removes its chains and ipsets.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from devenv.cluster import node

PIDFILE = node.RUN_DIR / "kube-router.pid"
# The API server's Service range (kube-apiserver's default). Its NodePort range is
# cluster.NODE_PORT_RANGE: kube-router lets traffic to NodePorts reach the host unjudged, so the
# control plane's own ports lie outside it.
SERVICE_RANGE = "10.0.0.0/24"


def _log_path(root: Path) -> Path:
    return root / "logs" / "kube-router.log"


def start(binary: Path, kubeconfig: Path, root: Path, node_port_range: str) -> None:
    """Start the agent (unless it runs) and wait until its chains are in place."""
    if running():
        return
    log = _log_path(root)
    log.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(  # our own binary, fixed arguments
        [
            str(binary),
            "--run-firewall=true",
            "--run-router=false",
            "--run-service-proxy=false",
            f"--kubeconfig={kubeconfig}",
            f"--hostname-override={node.NODE_NAME}",
            f"--service-cluster-ip-range={SERVICE_RANGE}",
            f"--service-node-port-range={node_port_range}",
            "--health-port=0",
            "--iptables-sync-period=30s",
            "-v=1",
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    PIDFILE.write_text(str(process.pid))
    deadline = time.monotonic() + 30
    while "KUBE-ROUTER-FORWARD" not in _iptables_rules():
        if process.poll() is not None:
            raise RuntimeError(f"kube-router exited ({process.returncode}); see {log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"kube-router set up no chains in 30 s; see {log}")
        time.sleep(0.2)
    node.log(f"NetworkPolicies enforced by kube-router (pid {process.pid}; log {log})")


def running() -> bool:
    return PIDFILE.exists() and Path(f"/proc/{PIDFILE.read_text().strip()}").exists()


def stop() -> None:
    """Stop the agent and remove what it set up (a no-op when it never ran)."""
    if PIDFILE.exists():
        with contextlib.suppress(ValueError):
            node.stop_pid(int(PIDFILE.read_text()), grace=10)
        PIDFILE.unlink(missing_ok=True)
    _remove_rules()


# What kube-router's policy controller makes in the filter table, and its ipsets. Its own
# `--cleanup-config` (v2.1.0) leaves the top-level chains and jumps in place on this host's
# iptables-nft and then panics in the service proxy's cleanup, so they are removed here.
_CHAIN_PREFIXES = ("KUBE-ROUTER-", "KUBE-POD-FW-", "KUBE-NWPLCY-")
_IPSET_PREFIXES = ("KUBE-SRC-", "KUBE-DST-", "kube-router-")


def _remove_rules() -> None:
    rules = _iptables_rules().splitlines()
    for rule in rules:
        args = shlex.split(rule)
        if (
            args[:2] in (["-A", "INPUT"], ["-A", "FORWARD"], ["-A", "OUTPUT"])
            and "-j" in args
            and args[args.index("-j") + 1].startswith(_CHAIN_PREFIXES)
        ):
            _iptables("-D", *args[1:])
    ours = [
        r.split()[1]
        for r in rules
        if r.startswith("-N ") and r.split()[1].startswith(_CHAIN_PREFIXES)
    ]
    for chain in ours:  # flushed first: they jump to one another
        _iptables("-F", chain)
    for chain in ours:
        _iptables("-X", chain)
    if shutil.which("ipset") is None:
        return  # never installed: kube-router cannot have run here
    listed = subprocess.run(["ipset", "list", "-n"], capture_output=True, text=True, check=False)
    for name in listed.stdout.split():
        if name.startswith(_IPSET_PREFIXES):
            subprocess.run(["ipset", "destroy", name], capture_output=True, check=False)


def _iptables(*args: str) -> None:
    subprocess.run(["iptables", *args], capture_output=True, timeout=30, check=False)


@contextlib.contextmanager
def enforcing(binary: Path, kubeconfig: Path, root: Path, node_port_range: str) -> Iterator[None]:
    start(binary, kubeconfig, root, node_port_range)
    try:
        yield
    finally:
        stop()


def _iptables_rules() -> str:
    return subprocess.run(
        ["iptables", "-S"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
