"""Shards, measured (`make bench`): three replicas leading a shard each, a thousand bots (333
in each shard's namespace) applied at once, the leader of one shard SIGKILLed once a third of
the pods exist. Every check of the shard test holds (tests/support/shards.py: one pod per bot,
every bot finished, every report accepted, caps held, and from the audit log no bot written by
a replica that did not hold its shard's Lease at that moment); the takeover, the time to every
bot in its meeting, and each surviving replica's CPU and peak RSS go to
bench-results/shards.json.

The simulator runs as a process of its own here (tests/support/sim_process.py): on the
test's thread, with every bot a scripted bot in this process, its pings to the bots' websockets
went unanswered for its 15 s at 750 and 1000 bots and it closed them (2026-12-05): the runs
measured the harness (docs/benchmarks.md says what else the thousand took).
BENCH_SHARD_BOTS=N for another number."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import pytest

from devenv.cluster import cluster
from meetingbot_operator.settings import Settings
from tests.support.operator_fixtures import Kube
from tests.support.shards import SHARDS, killed_mid_burst
from tests.support.sim_process import SimulatorProcess

# Three namespaces, one per shard: 333 bots each by default; BENCH_SHARD_BOTS=N for others.
PER_TENANT = int(os.environ.get("BENCH_SHARD_BOTS", "1000")) // SHARDS
RESULTS = Path(__file__).resolve().parents[2] / "bench-results"


@pytest.mark.timeout(1200)  # its own waits (up to 600 s for every bot InMeeting) say why first
async def test_three_shards_a_replica_killed_mid_burst(
    kube: Kube,
    kubeconfig: Path,
    tmp_path: Path,
    ha_namespace: str,
    shard_namespaces: list[str],
    handed_secrets: list[str],
) -> None:
    # Every bot's pod fits (a retried attempt's replaces its predecessor's, deleted first).
    cluster.scale(cluster.nodes_for(PER_TENANT * SHARDS, Settings().bot_cpu_request))
    async with SimulatorProcess() as zoomsim:
        result = await killed_mid_burst(
            kube, kubeconfig, tmp_path, ha_namespace, shard_namespaces, zoomsim.admin, zoomsim,
            handed_secrets, per_tenant=PER_TENANT,
        )  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "shards.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    print(json.dumps(asdict(result), indent=2))
