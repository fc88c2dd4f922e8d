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
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from meetingbot_api import Condition, MeetingBot, Phase
from meetingbot_contract import AuthMode
from meetingbot_operator.meetingbot.decisions import Timing, decide
from meetingbot_operator.meetingbot.observed import AttemptStarted, Meta, Observed
from meetingbot_operator.zoomaccount.state import AccountState
from tests.bench.test_burst import (
    RESULTS,
    baseline,
    bench_env,  # noqa: F401 - the fixture test_burst's benches share
    delete_namespace,
    in_rounds,
    new_namespace,
    round_means,
)
from tests.support.operator_fixtures import Kube
from tests.support.specs import bot_spec

ROUNDS = 3
# test_burst's baseline patches this when given no document (each bot's own podName).
LEAST = {"phase": "Starting", "attempts": 1, "podName": "x"}


def operator_document() -> dict[str, Any]:
    """The status the operator writes for a bot whose attempt it has just started."""
    now = datetime.now(UTC)
    meta = Meta(name="b0000", namespace="bench", uid="0a1b2c3d-0000", generation=1)
    bot = MeetingBot.model_validate({"spec": bot_spec(displayName="Bench")})
    started = AttemptStarted(1, now, "bench@example.com", now + timedelta(hours=2), AuthMode.ZAK)
    observed = Observed(
        now=now,
        account=AccountState(True, "CredentialsVerified", "ok", ("bench@example.com",)),
        attempt_result=started,
    )
    timing = Timing(
        start_lead=timedelta(seconds=60),
        retry_base=5,
        retry_max=300,
        max_duration_grace=timedelta(seconds=120),
    )
    status = decide(bot, meta, observed, timing).status
    assert status.phase == Phase.STARTING
    return status.model_dump(mode="json", by_alias=True)


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
