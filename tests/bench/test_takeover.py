"""High availability, measured (`make bench`): the chart's two replicas on the real node, the
leading pod deleted mid-burst of 100 bots, five times. The takeover time (delete → another
replica holds the Lease) is printed and written to bench-results/takeover.json with its
median; every run also checks what the HA test checks (tests/support/takeover.py)."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from pathlib import Path

from devenv.zoomsim import SimAdmin, ZoomSim
from tests.support.chart import Release
from tests.support.operator_fixtures import Kube, account_ready, zoom_account
from tests.support.takeover import leader_deleted_mid_burst

RUNS = 5
RESULTS = Path(__file__).resolve().parents[2] / "bench-results"


async def test_takeover_mid_burst(
    kube: Kube, running: Release, sim: SimAdmin, zoomsim: ZoomSim, handed_secrets: list[str]
) -> None:
    zoom = await zoom_account(kube, running.namespace, sim, running.sandbox)
    await account_ready(kube, running.namespace, timeout=60)
    runs = []
    for run in range(RUNS):
        number = sim.create_meeting(zoom["id"])["number"]
        result = await leader_deleted_mid_burst(
            kube, running.namespace, sim, zoomsim.url, number, handed_secrets, prefix=f"r{run}"
        )
        print(f"\nrun {run + 1}/{RUNS}: {result}", flush=True)
        runs.append(asdict(result))
    summary = {
        "runs": runs,
        "takeover_seconds_median": statistics.median(r["takeover_seconds"] for r in runs),
        "all_in_meeting_seconds_median": statistics.median(
            r["all_in_meeting_seconds"] for r in runs
        ),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "takeover.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
