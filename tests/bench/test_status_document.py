"""What a MeetingBot's status document costs the API server (`make bench` with
BENCH_STATUS_DOCUMENTS=1; about 5 minutes, so not in the default set).

The bot baseline of test_burst (each bot's MeetingBot, Secret, Pod and one status patch,
written directly with the operator's client), patching in turn three status documents: the
least that tells the truth (phase, attempt, pod), the one the operator writes for a starting
bot (decided by `decide`, as the operator's first status write), and that one with the three
conditions it used to write as False before they were True (Complete, Failed, Stalled;
conditions.ABSENT_UNTIL_TRUE). Three rounds, each in an order rotated from the last
(test_burst.in_rounds): on this machine the same baseline moves between runs by as much as what
is measured. Prints each run and the means, writes bench-results/status-documents.json.
Timings are reported, never asserted.

test_status_changes_at_a_fleets_report_rate (make bench-large) is the ceiling under
test_burst's report round: the same changes (every bot Starting -> InMeeting, BENCH_BOTS of
them spread over BENCH_REPORT_SECONDS), written straight to the status subresource with the
operator's client and connections, no operator running. For the least document and for the
operator's: from each change's time to its answer and to the bench's watch showing it, and the
API server's CPU for each write. Writes bench-results/status-changes-<bots>.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from meetingbot_api import Condition
from meetingbot_operator.kube.client import CONNECTIONS, MERGE_PATCH, custom_path
from tests.bench.test_burst import (
    BOTS,
    LARGE,
    REPORT_INTERVAL,
    RESULTS,
    apiserver_usage,
    baseline,
    bench_env,  # noqa: F401 - the fixture test_burst's benches share
    bounded,
    client,
    delete_namespace,
    in_rounds,
    new_namespace,
    pod_to_status,
    progress,
    round_means,
    used_since,
    watch_until,
)
from tests.support.operator_fixtures import Kube
from tests.support.specs import bot_spec
from tests.support.status_documents import LEAST, operator_document

ROUNDS = 3


def in_meeting(document: dict[str, Any]) -> dict[str, Any]:
    """`document` as the operator writes it once the bot reports InMeeting: the phase, its
    joinedAt, and Ready and InMeeting True, Reconciling False (its conditions' shape); a
    document without conditions only gets the phase."""
    if "conditions" not in document:
        return {**document, "phase": "InMeeting"}
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    holds = {"Ready": "True", "InMeeting": "True", "Reconciling": "False"}
    conditions = [
        {
            **c,
            "status": holds[c["type"]],
            "reason": "InMeeting",
            "message": "in the meeting",
            "lastTransitionTime": now,
        }
        for c in document["conditions"]
    ]
    return {
        **document,
        "phase": "InMeeting",
        "joinedAt": now,
        "message": "in the meeting",
        "conditions": conditions,
    }


async def write_changes(
    namespace: str, start: dict[str, Any], changed: dict[str, Any]
) -> dict[str, Any]:
    """BOTS MeetingBots with `start` as their status, then each changed to `changed` at its
    time in one report interval (as test_burst.every_bot_reports paces its reports), through
    CONNECTIONS connections as the operator writes."""
    api = client()
    path = custom_path("meetingbots", namespace)

    def create(i: int) -> Any:
        async def one() -> None:
            body = {
                "apiVersion": "meetingbot.dev/v1alpha1",
                "kind": "MeetingBot",
                "metadata": {"name": f"b{i:05d}"},
                "spec": bot_spec(displayName="Bench"),
            }
            await api.request("POST", path, body=body)
            await api.request(
                "PATCH", f"{path}/b{i:05d}/status", body={"status": start}, content_type=MERGE_PATCH
            )

        return one

    try:
        progress(f"{BOTS} MeetingBots with their starting status ({namespace})")
        await bounded([create(i) for i in range(BOTS)], limit=CONNECTIONS)
        shown: dict[str, float] = {}
        watcher = asyncio.create_task(
            watch_until(
                path,
                {},
                BOTS,
                lambda b: (b.get("status") or {}).get("phase") == "InMeeting",
                "changed",
                shown,
            )
        )
        await asyncio.sleep(0.5)  # the watch is established
        due: dict[str, float] = {}
        answered: dict[str, float] = {}

        async def change(name: str) -> None:
            # The client takes its CONNECTIONS connections in turn (kube/client.py), as the
            # operator's writes do.
            await api.request(
                "PATCH", f"{path}/{name}/status", body={"status": changed}, content_type=MERGE_PATCH
            )
            answered[name] = time.monotonic()

        usage = apiserver_usage()
        began = time.monotonic()
        writes = []
        for i in range(BOTS):
            name = f"b{i:05d}"
            due[name] = began + REPORT_INTERVAL * i / BOTS
            await asyncio.sleep(max(0.0, due[name] - time.monotonic()))
            writes.append(asyncio.create_task(change(name)))
        await asyncio.gather(*writes)
        await asyncio.wait_for(watcher, 600)
        seconds = max(shown.values()) - began
        apiserver = used_since(usage)
    finally:
        await api.close()
    return {
        "bytes": len(json.dumps(changed, separators=(",", ":"))),
        "changes_per_second": round(BOTS / REPORT_INTERVAL, 1),
        "seconds": round(seconds, 1),
        "written_per_second": round(BOTS / seconds, 1),
        "change_to_answer_seconds": pod_to_status(due, answered),
        "change_to_status_seconds": pod_to_status(due, shown),
        "apiserver_cpu_ms_per_write": round(1000 * apiserver["cpu_seconds"] / BOTS, 2),
        "apiserver": apiserver,
    }


def with_false_conditions(document: dict[str, Any]) -> dict[str, Any]:
    """The same document with Complete, Failed and Stalled written as False (as before)."""
    ready = Condition.model_validate(document["conditions"][0])
    extra = [
        ready.model_copy(update={"type": kind, "status": "False"}).model_dump(
            mode="json", by_alias=True
        )
        for kind in ("Complete", "Failed", "Stalled")
    ]
    return {**document, "conditions": [*document["conditions"], *extra]}


@pytest.mark.skipif(
    not os.environ.get("BENCH_STATUS_DOCUMENTS"), reason="BENCH_STATUS_DOCUMENTS=1 runs it"
)
@pytest.mark.timeout(1200)
async def test_status_document_cost(kube: Kube, bench_env: Any) -> None:  # noqa: F811
    now = operator_document()
    documents: dict[str, dict[str, Any]] = {
        "least (phase, attempts, podName)": LEAST,
        "the operator's (3 conditions)": now,
        "the operator's before (6 conditions)": with_false_conditions(now),
    }

    async def one(name: str) -> dict[str, Any]:
        ns = await new_namespace(kube)
        _, statuses, apiserver = await baseline(ns, with_bot=True, status_document=documents[name])
        await delete_namespace(kube, ns)
        return {"status_seconds": round(statuses, 2), **apiserver}

    runs = await in_rounds(list(documents), ROUNDS, one)
    assert all(len(done) == ROUNDS for done in runs.values())
    results: dict[str, dict[str, Any]] = {
        name: {
            "bytes": len(json.dumps(documents[name], separators=(",", ":"))),
            **round_means(done),
        }
        for name, done in runs.items()
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "status-documents.json").write_text(json.dumps(results, indent=2) + "\n")
    print()
    for name, row in results.items():
        print(
            f"  {name:<40} {row['mean_status_seconds']:>6} s  API server CPU "
            f"{row['mean_apiserver_cpu_seconds']} s  ({row['bytes']} bytes; runs "
            f"{', '.join(map(str, row['status_seconds']))} s)"
        )


@pytest.mark.skipif(not LARGE, reason="BENCH_BOTS above 2000 only (make bench-large)")
@pytest.mark.timeout(3600)
async def test_status_changes_at_a_fleets_report_rate(kube: Kube, bench_env: Any) -> None:  # noqa: F811
    documents = {
        "least (phase, attempts)": {"phase": "Starting", "attempts": 1},
        "the operator's": operator_document(),
    }
    results: dict[str, Any] = {"bots": BOTS}
    for name, start in documents.items():
        ns = await new_namespace(kube)
        results[name] = await write_changes(ns, start, in_meeting(start))
        progress(f"{name}: {json.dumps(results[name])}")
        await delete_namespace(kube, ns)
        assert results[name]["change_to_status_seconds"]["bots"] == BOTS
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"status-changes-{BOTS}.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n" + json.dumps(results, indent=2))
