"""What listing namespaces by name costs an idle operator (`make bench`). Given exact
namespaces it watches each on its own: kopf's four kinds and its own three (MeetingBots, bot
pods, credentials Secrets; kube/watch.py), seven TLS connections a namespace, each with
asyncio's read buffer (kube/client.py, TLS_READ_BUFFER). The operator given 1, 100 and 300
namespaces: seconds from its start until it writes a probe's status in the last of them, then
its open sockets and peak RSS, printed and written to bench-results/namespaces.json
(docs/benchmarks.md)."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from devenv.operator_process import OperatorProcess

COUNTS = (1, 100, 300)
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
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "namespaces.json").write_text(json.dumps(results, indent=2) + "\n")
