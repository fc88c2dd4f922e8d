"""What tenants cost an idle operator (`make bench`), in bench-results/tenants.json
(docs/benchmarks.md, "What tenants cost an idle operator").

Namespaces listed by name: the operator watches each on its own, kopf's four kinds and its own
three (MeetingBots, bot pods, credentials Secrets; kube/watch.py), seven TLS connections a
namespace, each with asyncio's read buffer (kube/client.py, TLS_READ_BUFFER). Given 1, 100
and 300 namespaces: seconds from its start until it writes a probe's status in the last of
them, then its open sockets and peak RSS.

ZoomAccounts: each has a Zoom client of its own (its token, pacing and breaker), on the TLS
context all outbound clients share (outbound.py). 100 accounts made in one namespace: RSS
before and once every one is Ready."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from devenv.operator_process import OperatorProcess
from devenv.zoomsim import SimAdmin, ZoomSim
from meetingbot_api import GROUP, VERSION
from tests.support.operator_fixtures import Kube, wait_for, zoom_account

COUNTS = (1, 100, 300)
ACCOUNTS = 100
RESULTS = Path(__file__).resolve().parents[2] / "bench-results"


def sockets(operator: OperatorProcess) -> int:
    assert operator.process is not None
    fds = Path(f"/proc/{operator.process.pid}/fd")
    return sum(1 for fd in fds.iterdir() if os.readlink(fd).startswith("socket:"))


def settled_sockets(operator: OperatorProcess, quiet: float = 3.0) -> int:
    """The operator's sockets once their number has not changed for `quiet` seconds (its
    watches opened: the probe proved one of the last namespace's, not all of them)."""
    count, since = sockets(operator), time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.5)
        now = sockets(operator)
        if now != count:
            count, since = now, time.monotonic()
    return count


def record(name: str, result: object) -> None:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "tenants.json"
    recorded = json.loads(path.read_text()) if path.exists() else {}
    recorded[name] = result
    path.write_text(json.dumps(recorded, indent=2) + "\n")


def test_idle_memory_by_namespaces_listed(kubeconfig: Path, tmp_path: Path) -> None:
    results = []
    for count in COUNTS:
        last = f"nsbench-{uuid.uuid4().hex[:6]}"
        # Watched whether they exist or not (a list there is empty); the last is made by the
        # probe, which the operator must see.
        names = [f"{last}-{i}" for i in range(count - 1)] + [last]
        operator = OperatorProcess(
            kubeconfig, tmp_path / f"operator-{count}.log", namespaces=",".join(names)
        )
        began = time.monotonic()
        operator.start()
        try:
            operator.wait_until_watching(last)
            watching = time.monotonic() - began
            opened = settled_sockets(operator)
            result = {
                "namespaces": count,
                "watching_seconds": round(watching, 1),
                "sockets": opened,
                "peak_rss_mb": round(operator.peak_rss_mb(), 1),
            }
        finally:
            operator.stop()
        print(f"\n[bench] {result}", flush=True)
        results.append(result)
    record("namespaces", results)


async def test_idle_memory_by_zoom_accounts(
    kubeconfig: Path,
    kube: Kube,
    ha_namespace: str,
    sim: SimAdmin,
    zoomsim: ZoomSim,
    tmp_path: Path,
) -> None:
    probe = f"{ha_namespace}-probe"
    operator = OperatorProcess(
        kubeconfig, tmp_path / "operator.log", namespaces=f"{ha_namespace},{probe}",
        allowed_endpoints=zoomsim.url,
    )  # fmt: skip
    operator.start()
    try:
        operator.wait_until_watching(probe)
        before = round(operator.rss_mb(), 1)
        for i in range(ACCOUNTS):
            await zoom_account(kube, ha_namespace, sim, zoomsim.url, name=f"a{i:03d}")

        async def all_ready() -> bool:
            listed = await kube.custom.list_namespaced_custom_object(
                GROUP, VERSION, ha_namespace, "zoomaccounts"
            )
            ready = [
                c for a in listed["items"] for c in (a.get("status") or {}).get("conditions", [])
                if c["type"] == "Ready" and c["status"] == "True"
            ]  # fmt: skip
            return len(ready) == ACCOUNTS

        await wait_for(all_ready, 120, 1.0, f"{ACCOUNTS} ZoomAccounts Ready")
        after = round(operator.rss_mb(), 1)
    finally:
        operator.stop()
    result = {
        "accounts": ACCOUNTS,
        "rss_before_mb": before,
        "rss_after_mb": after,
        "mb_per_account": round((after - before) / ACCOUNTS, 2),
    }
    print(f"\n[bench] {result}", flush=True)
    record("zoom_accounts", result)
