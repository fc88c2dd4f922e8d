"""What the bot cache keeps as watch events arrive (no API calls are made here)."""

from __future__ import annotations

import asyncio
from typing import Any

from meetingbot_operator.meetingbot.cache import BotCache, parse_pod


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
