"""Shards, measured (`make bench`): three replicas leading a shard each, 1000 bots applied at
once across the three shards' namespaces, the leader of one shard SIGKILLed once a third of
the pods exist. Every check of the shard test holds (tests/support/shards.py: one pod per bot,
every bot finished, every report accepted, caps held, and from the audit log no bot written by
a replica that did not hold its shard's Lease at that moment); the takeover, the time to every
bot in its meeting, and each surviving replica's CPU and peak RSS go to
bench-results/shards.json."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from devenv.zoomsim import SimAdmin, ZoomSim
from tests.support.operator_fixtures import Kube
from tests.support.shards import killed_mid_burst

PER_TENANT = 334  # three namespaces, one per shard: 1002 bots
RESULTS = Path(__file__).resolve().parents[2] / "bench-results"


async def test_three_shards_a_replica_killed_mid_burst_of_1000(
    kube: Kube,
    kubeconfig: Path,
    tmp_path: Path,
    ha_namespace: str,
    shard_namespaces: list[str],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    handed_secrets: list[str],
) -> None:
    result = await killed_mid_burst(
        kube, kubeconfig, tmp_path, ha_namespace, shard_namespaces, sim, zoomsim, handed_secrets,
        per_tenant=PER_TENANT,
    )  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "shards.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    print(json.dumps(asdict(result), indent=2))
