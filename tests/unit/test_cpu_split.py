"""The bench's split of the cores (tests/support/cpu_split.py): the control plane's processes
on one core, the bench and what it started on the others, and everything back afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from devenv.cluster import cluster
from tests.support import cpu_split
from tests.support.processes import descendants

CPUS = set(os.sched_getaffinity(0))


def _sleeper(new_session: bool = False) -> Iterator[subprocess.Popen[bytes]]:
    command = [sys.executable, "-c", "import time; time.sleep(60)"]
    process = subprocess.Popen(command, start_new_session=new_session)
    try:
        yield process
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    """A process this one started, as the operator the bench starts."""
    yield from _sleeper()


@pytest.fixture
def plane() -> Iterator[subprocess.Popen[bytes]]:
    """A process standing for the API server; started by this one, so among its descendants,
    where the control plane's processes stay on their core all the same."""
    yield from _sleeper(new_session=True)


def test_descendants_are_the_process_and_those_it_started(
    child: subprocess.Popen[bytes],
) -> None:
    found = descendants(os.getpid())
    assert os.getpid() in found and child.pid in found
    assert os.getppid() not in found


def test_nothing_is_pinned_unless_asked(
    monkeypatch: pytest.MonkeyPatch, plane: subprocess.Popen[bytes]
) -> None:
    monkeypatch.setattr(cpu_split, "ENABLED", False)
    monkeypatch.setattr(cluster, "control_plane_pids", lambda: {"etcd": plane.pid})
    with cpu_split.split_cpus() as cpus:
        assert cpus is None
        assert os.sched_getaffinity(plane.pid) == CPUS
        assert os.sched_getaffinity(0) == CPUS


@pytest.mark.skipif(len(CPUS) < 2, reason="needs two cores")
def test_the_control_plane_gets_one_core_and_the_bench_the_rest(
    monkeypatch: pytest.MonkeyPatch,
    plane: subprocess.Popen[bytes],
    child: subprocess.Popen[bytes],
) -> None:
    monkeypatch.setattr(cpu_split, "ENABLED", True)
    monkeypatch.setattr(cluster, "control_plane_pids", lambda: {"etcd": plane.pid})
    first = min(CPUS)
    with cpu_split.split_cpus() as cpus:
        assert cpus == {"control_plane": [first], "bench_and_operator": sorted(CPUS - {first})}
        assert os.sched_getaffinity(plane.pid) == {first}
        assert os.sched_getaffinity(0) == CPUS - {first}
        assert os.sched_getaffinity(child.pid) == CPUS - {first}
    for pid in (plane.pid, 0, child.pid):
        assert os.sched_getaffinity(pid) == CPUS
