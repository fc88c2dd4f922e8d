"""What the bot cache keeps as watch events arrive (no API calls are made here)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from meetingbot_operator.meetingbot.cache import BotCache, parse_pod
from meetingbot_operator.meetingbot.observed import AttemptStarted


def service() -> BotCache:
    return BotCache()


def pod(name: str, attempt: int, bot: str = "b", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "labels": {"meetingbot.dev/bot": bot, "meetingbot.dev/attempt": str(attempt)},
        },
        "status": status,
    }


async def test_pods_of_deleted_bots_are_not_kept() -> None:
    bots = service()
    bots.observe_pod("DELETED", pod("b-1", 1))
    assert bots.records == {}
    bots.observe_pod("ADDED", pod("b-1", 1))
    bots.observe_pod("ADDED", pod("b-2", 2))
    bots.observe_pod("DELETED", pod("b-1", 1))
    assert list(bots.records[("ns", "b")].pods) == [2]
    bots.observe_pod("DELETED", pod("b-2", 2))
    assert bots.records == {}
    await asyncio.sleep(0)


async def test_unlabelled_pods_are_ignored() -> None:
    bots = service()
    bots.observe_pod("ADDED", {"metadata": {"name": "x", "namespace": "ns", "labels": {}}})
    assert bots.records == {}


def test_parse_pod_reads_what_the_decisions_need() -> None:
    observed = parse_pod(
        pod(
            "b-1",
            1,
            phase="Failed",
            reason="Evicted",
            containerStatuses=[
                {
                    "name": "bot",
                    "state": {
                        "terminated": {"exitCode": 137, "reason": "OOMKilled", "message": "{}"}
                    },
                }
            ],
        )
    )
    assert (
        observed.attempt,
        observed.exit_code,
        observed.terminated_reason,
        observed.status_reason,
    ) == (1, 137, "OOMKilled", "Evicted")
    assert observed.finished


def test_only_a_bot_yet_to_start_is_unstarted() -> None:
    """What the work queue lets go first in a burst (meetingbot/workqueue.py)."""
    bots = service()
    body = {"metadata": {"name": "b", "namespace": "ns", "uid": "u", "resourceVersion": "1"}}
    assert not bots.unstarted(("ns", "b"))  # never seen
    bots.observe_bot("ADDED", body)
    assert bots.unstarted(("ns", "b"))
    bots.observe_pod("ADDED", pod("b-1", 1))
    assert not bots.unstarted(("ns", "b"))  # its pod exists
    bots.observe_bot("ADDED", {**body, "metadata": {**body["metadata"], "name": "c"}})
    bots.observe_bot(
        "MODIFIED",
        {
            "metadata": {"name": "c", "namespace": "ns", "uid": "u", "resourceVersion": "2"},
            "status": {"attempts": 1},
        },
    )
    assert not bots.unstarted(("ns", "c"))  # an attempt in its status


def test_a_start_awaiting_its_status_ranks_first_then_bots_yet_to_start() -> None:
    """The work queue's line (meetingbot/workqueue.py): a bot whose Secret and Pod were just
    made goes ahead, so its status (what `kubectl get mb` shows) follows its pod at once."""
    bots = service()
    body = {"metadata": {"name": "b", "namespace": "ns", "uid": "u", "resourceVersion": "1"}}
    bots.observe_bot("ADDED", body)
    assert bots.rank(("ns", "b")) == 1  # yet to start
    record = bots.get(("ns", "b"))
    assert record is not None
    record.attempt_result = AttemptStarted(1, datetime.now(UTC))
    bots.observe_pod("ADDED", pod("b-1", 1))
    assert bots.rank(("ns", "b")) == 0  # started: its status write goes first
    record.attempt_result = None  # the status was written
    assert bots.rank(("ns", "b")) == 2
