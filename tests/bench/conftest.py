"""Every benchmark leaves the cluster as it found it, or says it did not and repairs it: a
bench that stops the control plane (the relist bench, chaos) and fails half-way would leave
the benches after it erroring against a cluster without an API server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devenv.cluster import cluster


@pytest.fixture(autouse=True)
def cluster_left_working(request: pytest.FixtureRequest, kubeconfig: Path) -> Iterator[None]:
    yield
    problem = cluster.problem()
    if problem is None:
        return
    print(
        f"\n[bench] {request.node.nodeid} left the cluster broken: {problem}; repairing it "
        "(cluster down, then up)",
        flush=True,
    )
    cluster.repair()
    still = cluster.problem()
    if still is not None:
        pytest.fail(f"the cluster is still broken after a repair: {still}")
    print("[bench] the cluster works again (a fresh control plane)", flush=True)
