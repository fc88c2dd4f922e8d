"""The control plane on one core, the bench and the operator it starts on the other
(`BENCH_SPLIT_CPUS=1`; docs/benchmarks.md, "The control plane on a core of its own").

On this machine the API server, etcd, the operator and the bench share two cores, so every
second of CPU the operator spends is a second the API server writing its objects does not
get; in a cluster the operator runs on a node of its own. With the cores split, the baseline
and the operator's run are measured alike (the control plane alone on its core in both, the
writer or the operator alone on the other), so their ratio is the operator's pipeline against
the writes, without that competition. Processes are pinned thread by thread (a process's
affinity is its threads'; Go's runtime and Python's to_thread workers are threads), and
put back on every core afterwards.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator

from devenv.cluster import cluster
from tests.support.processes import descendants

ENABLED = os.environ.get("BENCH_SPLIT_CPUS", "") == "1"


def _threads(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []  # gone


def _pin(pids: Iterable[int], cpus: set[int]) -> None:
    for pid in pids:
        for thread in _threads(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.sched_setaffinity(thread, cpus)


@contextlib.contextmanager
def split_cpus() -> Iterator[dict[str, list[int]] | None]:
    """With BENCH_SPLIT_CPUS=1: the control plane's processes on the first core this process
    may use, this process and its children (and the ones they start meanwhile) on the rest;
    which, as recorded in the results. Otherwise nothing is changed (None)."""
    if not ENABLED:
        yield None
        return
    every = set(os.sched_getaffinity(0))
    if len(every) < 2:
        raise RuntimeError(f"BENCH_SPLIT_CPUS=1 needs two cores; this process may use {every}")
    plane = {min(every)}
    bench = every - plane
    control_plane = set(cluster.control_plane_pids().values())
    _pin(control_plane, plane)
    # The control plane stays on its core even were it under this process (started by it).
    _pin([p for p in descendants(os.getpid()) if p not in control_plane], bench)
    try:
        yield {"control_plane": sorted(plane), "bench_and_operator": sorted(bench)}
    finally:
        _pin({*cluster.control_plane_pids().values(), *descendants(os.getpid())}, every)
