"""What the operator's watches and owner references cost the API server (`make bench` with
BENCH_WATCH_COSTS=1; about 10 minutes, so not in the default set).

The operator's burst costs the API server more CPU than the bot baseline of test_burst for
the same writes (docs/benchmarks.md). Besides its writes, the operator adds two things the
baseline has not: its watches (every bot pod's and MeetingBot's events, about 4.5 a bot, sent
to it as JSON), and owner references to each bot's MeetingBot (the baseline's Secrets and Pods
name one ConfigMap), with blockOwnerDeletion, which the admission plugin
OwnerReferencesPermissionEnforcement checks on every create. This runs the bot baseline with
each of them added alone:

- plain: the bot baseline as test_burst runs it;
- watched: with the operator's two watches (kube/watch.py's paths and selector) open
  throughout, their events decoded as the operator decodes them;
- watched, pods as protobuf: the pods' watch in protobuf, the encoding Kubernetes' own
  components ask for (so the API server may encode each event once for all of them);
- watched, metadata only: both watches as PartialObjectMetadata (what "decode only what
  decisions read" could ask the API server for);
- owned: each Secret and Pod owned by its MeetingBot, as the operator writes them;
- owned, not blocking: the same without blockOwnerDeletion.

Three rounds, each in an order rotated from the last (test_burst.in_rounds: the cluster slows
through a run, and a fixed order charges the drift to whoever comes last). Prints each run and the means, writes
bench-results/watch-costs.json. Timings are reported, never asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from statistics import mean
from typing import Any

import pytest

from meetingbot_operator.kube.client import KubeClient, custom_path
from meetingbot_operator.meetingbot.children import BOT_LABEL
from tests.bench.test_burst import (
    BOTS,
    RESULTS,
    Owner,
    baseline,
    bench_env,  # noqa: F401 - the fixture test_burst's benches share
    client,
    delete_namespace,
    in_rounds,
    new_namespace,
    round_means,
)
from tests.support.operator_fixtures import Kube

ROUNDS = 3
JSON = "application/json"
PROTOBUF = "application/vnd.kubernetes.protobuf;stream=watch"
METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
# variant -> (the pods' watch, the MeetingBots' watch) as the Accept header asks; None: none.
WATCHES: dict[str, tuple[str, str] | None] = {
    "plain": None,
    "watched": (JSON, JSON),
    "watched, pods as protobuf": (PROTOBUF, JSON),
    "watched, metadata only": (METADATA, METADATA),
    "owned": None,
    "owned, not blocking": None,
}
OWNERS = {"owned": Owner.BOT, "owned, not blocking": Owner.BOT_NOT_BLOCKING}


async def follow(
    api: KubeClient, path: str, params: dict[str, str], accept: str, counts: dict[str, int]
) -> None:
    """Watch `path` from now on until cancelled, counting in `counts[path]` what arrives:
    events when decoded as JSON (as the operator's client does, orjson), else bytes."""
    listing = await api.request("GET", path, params={**params, "limit": "1"})
    version = listing["metadata"]["resourceVersion"]
    counts[path] = 0
    if accept == JSON:
        async for _ in api.watch(path, {**params, "resourceVersion": version}, 600):
            counts[path] += 1
        return
    query = {**params, "resourceVersion": version, "watch": "true", "timeoutSeconds": "600"}
    # The client's own watch session (its TLS and credentials); only the Accept header differs.
    async with api._watches.get(
        api.server + path, params=query, headers={"Accept": accept}
    ) as response:
        assert response.status == 200, f"{path} as {accept}: HTTP {response.status}"
        async for chunk in response.content.iter_any():
            counts[path] += len(chunk)


@contextlib.asynccontextmanager
async def watches(accepts: tuple[str, str] | None) -> AsyncIterator[dict[str, int]]:
    """The operator's two watches (all namespaces; the pods by its label), open meanwhile;
    yields what each has seen so far."""
    counts: dict[str, int] = {}
    if accepts is None:
        yield counts
        return
    api = client()
    pods, bots = accepts
    tasks = [
        asyncio.create_task(
            follow(api, "/api/v1/pods", {"labelSelector": BOT_LABEL}, pods, counts)
        ),
        asyncio.create_task(follow(api, custom_path("meetingbots", None), {}, bots, counts)),
    ]
    try:
        await asyncio.sleep(0.5)  # established before the first write
        yield counts
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await api.close()


@pytest.mark.skipif(not os.environ.get("BENCH_WATCH_COSTS"), reason="BENCH_WATCH_COSTS=1 runs it")
@pytest.mark.timeout(1800)
async def test_watch_and_owner_costs(kube: Kube, bench_env: Any) -> None:  # noqa: F811

    async def one(name: str) -> dict[str, Any]:
        ns = await new_namespace(kube)
        async with watches(WATCHES[name]) as counts:
            _, statuses, apiserver = await baseline(
                ns, with_bot=True, owner=OWNERS.get(name, Owner.CONFIGMAP)
            )
            seen = dict(counts)
        await delete_namespace(kube, ns)
        return {"status_seconds": round(statuses, 2), **apiserver, "watched": seen}

    runs = await in_rounds(list(WATCHES), ROUNDS, one)
    assert all(len(done) == ROUNDS for done in runs.values())
    for name, accepts in WATCHES.items():  # each watch saw the burst: its cost was measured
        assert accepts is None or all(min(r["watched"].values()) >= BOTS for r in runs[name])
    results: dict[str, dict[str, Any]] = {
        name: {
            **round_means(done),
            "mean_requests": round(mean(r["requests"] for r in done)),
            "mean_watch_events": round(mean(r["watch_events"] for r in done)),
        }
        for name, done in runs.items()
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "watch-costs.json").write_text(json.dumps(results, indent=2) + "\n")
    print()
    for name, row in results.items():
        print(
            f"  {name:<28} {row['mean_status_seconds']:>6} s  API server CPU "
            f"{row['mean_apiserver_cpu_seconds']} s  (runs "
            f"{', '.join(map(str, row['status_seconds']))} s; "
            f"{', '.join(map(str, row['apiserver_cpu_seconds']))} s)"
        )
