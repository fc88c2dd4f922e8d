"""Shards, measured (`make bench`): three replicas leading a shard each, 300 bots applied at
once across the three shards' namespaces, the leader of one shard SIGKILLed once a third of
the pods exist. Every check of the shard test holds (tests/support/shards.py: one pod per bot,
every bot finished, every report accepted, caps held, and from the audit log no bot written by
a replica that did not hold its shard's Lease at that moment); the takeover, the time to every
bot in its meeting, and each surviving replica's CPU and peak RSS go to
bench-results/shards.json.

Why 300 and not the 1000 the scale issue asks for: every bot here is a scripted bot in this
test process, with its own websocket to the simulator; at 1000 and at 750 (2026-12-05, one
run each, on two cores shared with the three replicas and the API server) those websockets
timed out or reset in this process before every bot was in its meeting: the run measured the
harness. The operator's side of 1000 bots is `test_burst` (pods, no scripted bots)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from devenv.cluster import cluster
from devenv.zoomsim import SimAdmin, ZoomSim
from tests.support.operator_fixtures import Kube
from tests.support.shards import SHARDS, killed_mid_burst

# Three namespaces, one per shard: 300 bots by default (see above); BENCH_SHARD_BOTS=N for more.
PER_TENANT = int(os.environ.get("BENCH_SHARD_BOTS", "300")) // SHARDS
RESULTS = Path(__file__).resolve().parents[2] / "bench-results"


async def test_three_shards_a_replica_killed_mid_burst(
    kube: Kube,
    kubeconfig: Path,
    tmp_path: Path,
    ha_namespace: str,
    shard_namespaces: list[str],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    handed_secrets: list[str],
) -> None:
    cluster.scale(PER_TENANT * SHARDS // 100 + 3)  # kwok nodes take 110 pods each
    result = await killed_mid_burst(
        kube, kubeconfig, tmp_path, ha_namespace, shard_namespaces, sim, zoomsim, handed_secrets,
        per_tenant=PER_TENANT,
    )  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "shards.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    print(json.dumps(asdict(result), indent=2))
