"""Webhooks, against the real control plane, the operator process and a real receiver that
fails, times out and restarts: every notification arrives, signed, in order, each id acted on
once. (The operator SIGKILLed and the leader changed with deliveries pending: test_operator_ha.)"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from devenv.operator_process import OperatorProcess
from devenv.zoomsim import SimAdmin
from tests.support.artifacts import bucket_for
from tests.support.operator_fixtures import Bots, Kube, wait_for
from tests.support.scripted_bot import Scripted
from tests.support.specs import bot_spec
from tests.support.webhook_receiver import (
    SLOW,
    Receiver,
    phases_told,
    signing_secret,
    webhook,
)


async def delivered(bots: Bots, name: str, timeout: float = 60) -> dict[str, Any]:
    """The bot's status.webhook once nothing is pending."""

    async def done() -> dict[str, Any] | None:
        hook = (await bots.status(name)).get("webhook") or {}
        return hook if hook.get("delivered") and not hook.get("pending") else None

    found: dict[str, Any] = await wait_for(done, timeout, what=f"{name}'s webhook delivered")
    return found


def _metric(operator: OperatorProcess, result: str) -> float:
    text = httpx.get(operator.metrics_url, timeout=5).text
    line = f'meetingbot_webhook_deliveries_total{{result="{result}"}}'
    return sum(float(row.split()[-1]) for row in text.splitlines() if row.startswith(line))


async def test_every_event_arrives_signed_and_in_order_through_failures_and_a_restart(
    operator: OperatorProcess,
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    scripted: Scripted,
    receiver: Receiver,
) -> None:
    path = f"/hooks/{uuid.uuid4().hex[:8]}"
    retried = _metric(operator, "retried")
    await signing_secret(kube, namespace)
    # The first tries fail: two 500s, a 429 with Retry-After, one too slow to wait for.
    receiver.script(path, 500, 503, 429, SLOW)
    number = sim.create_meeting(zoom["id"], passcode="pw-9")["number"]
    spec = bot_spec(number, meeting={"number": number, "passcode": "pw-9"})
    await bots.apply("hooked", {**spec, "webhook": webhook(receiver, path)})
    bot = scripted("hooked")
    run = asyncio.create_task(bot.run())
    await bots.wait_phase("hooked", "InMeeting")
    # The receiver goes down (a restart of the team's service) while the bot is in the
    # meeting; what happens meanwhile waits in the bot's status.
    receiver.stop()
    sim.end_meeting(number)
    assert await run == "MeetingEnded"
    await bots.wait_phase("hooked", "Succeeded")

    async def waiting() -> dict[str, Any] | None:
        hook = (await bots.status("hooked")).get("webhook") or {}
        return hook if hook.get("pending") and hook.get("lastError") else None

    pending = await wait_for(waiting, 30, what="events pending while the receiver is down")
    assert "127.0.0.1" in pending["lastError"]
    receiver.start()
    hook = await delivered(bots, "hooked")

    events = receiver.accepted(path)
    # The whole story, in order (a start's pass writes no status: Starting is the first).
    assert phases_told(events) == ["Starting", "Joining", "InMeeting", "Succeeded", "finished"], (
        phases_told(events)
    )
    uid = (await bots.get("hooked"))["metadata"]["uid"]
    # Sequence numbers without a gap, ids stable across retries, nothing out of order.
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert [e["id"] for e in events] == [f"{uid}.{e['sequence']}" for e in events]
    assert hook["delivered"] == len(events) and hook["dropped"] == 0
    # Every request was signed right (the receiver checks with Standard Webhooks' library).
    assert all(d.verified for d in receiver.seen(path))
    # Retries resent the same ids: more requests than events, each id acted on once.
    assert len(receiver.seen(path)) > len(events)
    final = events[-1]
    assert final["type"] == "dev.meetingbot.bot.finished"
    assert final["data"]["reason"] == "MeetingEnded" and final["data"]["transient"] is False
    assert final["source"].endswith(f"/namespaces/{namespace}/meetingbots/hooked")
    # The body never carries a secret: not the passcode, not the signing key.
    for delivery in receiver.seen(path):
        assert b"pw-9" not in delivery.raw and b"whsec_" not in delivery.raw
    assert _metric(operator, "retried") > retried


async def test_an_endpoint_not_allowed_or_a_secret_not_opted_in_is_said_in_status(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    receiver: Receiver,
) -> None:
    await kube.core.create_namespaced_secret(
        namespace, {"metadata": {"name": "plain"}, "stringData": {"secret": "whsec_AAAA"}}
    )
    path = f"/hooks/{uuid.uuid4().hex[:8]}"
    elsewhere = {
        "url": "https://hooks.example.com/x",
        "signingSecretRef": {"name": "plain", "key": "secret"},
    }
    await bots.apply("far", {**bot_spec(), "webhook": elsewhere})
    await bots.apply("unlabelled", {**bot_spec(), "webhook": webhook(receiver, path, "plain")})

    async def error_of(name: str) -> str | None:
        hook = (await bots.status(name)).get("webhook") or {}
        return hook.get("lastError")

    far = await wait_for(lambda: error_of("far"), 30, what="far's lastError")
    assert (
        "not under an endpoint the operator allows" in far and "MEETINGBOT_WEBHOOK_ENDPOINTS" in far
    )
    unlabelled = await wait_for(lambda: error_of("unlabelled"), 30, what="unlabelled's lastError")
    assert "meetingbot.dev/secret-for=webhook-signing" in unlabelled
    assert receiver.seen(path) == []


async def test_a_stream_to_an_endpoint_not_allowed_fails_the_bot_with_the_fix(
    kube: Kube, namespace: str, bots: Bots, zoom: dict[str, Any]
) -> None:
    await signing_secret(kube, namespace)
    bucket = await bucket_for(kube, namespace)
    stream = {
        "url": "wss://live.example.com/in",
        "signingSecretRef": {"name": "hook-signing", "key": "secret"},
    }
    spec = bot_spec(capture={}, artifacts=bucket.spec(), stream=stream)
    await bots.apply("far-stream", spec)
    status = await bots.wait_phase("far-stream", "Failed")
    assert status["reason"] == "StreamEndpointNotAllowed"
    assert "MEETINGBOT_WEBHOOK_ENDPOINTS" in status["message"]
    await bucket.store.close()
