"""Real-node benchmarks (`make bench`): pod create -> Running for the bot image (median of 5)
and the memory of the node's own processes (kubelet, containerd, kube-proxy, CoreDNS) with
and without running pods. Printed and written to bench-results/node.json; never asserted."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from devenv.cluster import node
from tests.support.operator_fixtures import Kube, wait_for
from tests.support.processes import rss_mb

RUNS = 5
RESULTS = Path(__file__).resolve().parents[2] / "bench-results"


def node_memory() -> dict[str, float]:
    memory = {
        name: round(rss_mb(int((node.RUN_DIR / f"{name}.pid").read_text())), 1)
        for name in node.PROCESSES
    }
    shims = [rss_mb(pid) for pid in node.pids_of("containerd-shim-runc-v2")]
    memory["shims"] = round(sum(shims), 1)
    memory["shim_count"] = len(shims)
    return memory


def pod(name: str, image: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "bot",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["sleep", "600"],
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                }
            ],
        },
    }


async def test_pod_create_to_running_and_node_memory(
    kube: Kube, namespace: str, image: str
) -> None:
    idle = node_memory()
    times = []
    for run in range(RUNS):
        name = f"timing-{run}"
        started = time.monotonic()
        await kube.core.create_namespaced_pod(namespace, pod(name, image))

        async def running(name: str = name) -> bool:
            current = await kube.core.read_namespaced_pod(name, namespace)
            return bool(current.status.phase == "Running")

        await wait_for(running, 60, 0.05, f"pod {name} Running")
        times.append(time.monotonic() - started)
    busy = node_memory()
    values = {
        "pod_create_to_running_s": [round(t, 2) for t in times],
        "median_s": round(statistics.median(times), 2),
        "node_rss_mb_idle": idle,
        f"node_rss_mb_with_{RUNS}_pods": busy,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "node.json").write_text(json.dumps(values, indent=2) + "\n")
    print(f"\nbot image pod create -> Running: median {values['median_s']} s of {times}")
    print(f"node processes RSS (MB), idle: {idle}")
    print(f"node processes RSS (MB), {RUNS} pods running: {busy}")
