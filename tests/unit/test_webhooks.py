"""Webhook notifications: what a status change adds to the outbox, how the deliverer's
progress trims it, and the signed envelope (checked with Standard Webhooks' own library)."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from standardwebhooks import Webhook as Verifier

from meetingbot_api import (
    MAX_PENDING,
    Condition,
    EventData,
    EventType,
    MeetingBot,
    MeetingBotStatus,
    PendingEvent,
    Phase,
    WebhookStatus,
)
from meetingbot_operator.meetingbot.notifications import notify
from meetingbot_operator.meetingbot.observed import WebhookProgress
from meetingbot_operator.webhooks.envelope import (
    BadSigningSecret,
    envelope,
    signed_headers,
    signing_key,
)
from meetingbot_operator.webhooks.stream_token import stream_allowed, stream_token

pytestmark = pytest.mark.unit
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def bot(webhook: bool = True, status: MeetingBotStatus | None = None) -> MeetingBot:
    spec: dict[str, object] = {
        "accountRef": {"name": "main"},
        "meeting": {"number": "123456789"},
        "displayName": "Notetaker",
    }
    if webhook:
        spec["webhook"] = {
            "url": "https://hooks.example.com/b",
            "signingSecretRef": {"name": "s", "key": "secret"},
        }
    return MeetingBot.model_validate(
        {
            "metadata": {"name": "b", "namespace": "n"},
            "spec": spec,
            "status": (status or MeetingBotStatus()).model_dump(by_alias=True),
        }
    )


def status(phase: Phase | None, **fields: object) -> MeetingBotStatus:
    return MeetingBotStatus(phase=phase, **fields)


def pending(*seqs: int) -> list[PendingEvent]:
    return [
        PendingEvent(seq=s, type=EventType.PHASE, time=NOW, data=EventData(phase="Joining"))
        for s in seqs
    ]


def test_a_phase_change_is_appended_with_the_next_sequence_number() -> None:
    old = status(Phase.STARTING, webhook=WebhookStatus(delivered=3, pending=pending(4)))
    new = status(Phase.JOINING, attempts=1)
    assert notify(bot(status=old), old, new, None, NOW)
    assert new.webhook is not None
    assert [(e.seq, e.data.phase) for e in new.webhook.pending] == [(4, "Joining"), (5, "Joining")]
    # The same inputs decide the same outbox (a pass run twice, or after a restart).
    again = status(Phase.JOINING, attempts=1)
    notify(bot(status=old), old, again, None, NOW)
    assert again.webhook == new.webhook


def test_the_end_tells_the_phase_then_the_final_result() -> None:
    old = status(Phase.LEAVING)
    new = status(Phase.FAILED, reason="MeetingNotFound", attempts=2)
    notify(bot(status=old), old, new, None, NOW)
    assert new.webhook is not None
    kinds = [(e.type, e.data.phase) for e in new.webhook.pending]
    assert kinds == [(EventType.PHASE, "Failed"), (EventType.FINISHED, "Failed")]
    final = new.webhook.pending[-1].data
    assert final.transient is False and final.attempt == 2
    transient = status(Phase.FAILED, reason="BotUnresponsive")
    notify(bot(status=old), old, transient, None, NOW)
    assert transient.webhook is not None and transient.webhook.pending[-1].data.transient


def test_artifacts_delivered_is_told_once() -> None:
    done = Condition(
        type="ArtifactsDelivered",
        status="True",
        reason="Delivered",
        message="",
        last_transition_time=NOW,
    )
    old = status(Phase.SUCCEEDED)
    new = status(Phase.SUCCEEDED, conditions=[done])
    notify(bot(status=old), old, new, None, NOW)
    assert new.webhook is not None
    assert [e.type for e in new.webhook.pending] == [EventType.ARTIFACTS]
    later = status(Phase.SUCCEEDED, conditions=[done], webhook=new.webhook)
    notify(bot(status=new), new, later, None, NOW)
    assert later.webhook == new.webhook


def test_progress_trims_the_outbox_and_counts_what_was_dropped() -> None:
    old = status(Phase.IN_MEETING, webhook=WebhookStatus(delivered=1, pending=pending(2, 3, 4)))
    new = status(Phase.IN_MEETING)
    progress = WebhookProgress(acked=3, dropped=frozenset({2}), last_delivery_time=NOW)
    assert notify(bot(status=old), old, new, progress, NOW)
    assert new.webhook is not None
    assert [e.seq for e in new.webhook.pending] == [4]
    assert (new.webhook.delivered, new.webhook.dropped) == (3, 1)
    assert new.webhook.last_delivery_time == NOW
    # All through: nothing left to deliver.
    done = status(Phase.IN_MEETING)
    assert not notify(bot(status=old), old, done, WebhookProgress(acked=4), NOW)


def test_a_full_outbox_drops_its_oldest() -> None:
    old = status(Phase.STARTING, webhook=WebhookStatus(pending=pending(*range(1, MAX_PENDING + 1))))
    new = status(Phase.JOINING)
    notify(bot(status=old), old, new, None, NOW)
    assert new.webhook is not None
    assert len(new.webhook.pending) == MAX_PENDING
    assert (new.webhook.pending[0].seq, new.webhook.pending[-1].seq) == (2, MAX_PENDING + 1)
    assert (new.webhook.delivered, new.webhook.dropped) == (1, 1)


def test_no_webhook_no_outbox_and_a_removed_one_drops_what_was_pending() -> None:
    new = status(Phase.JOINING)
    assert not notify(bot(webhook=False), status(Phase.STARTING), new, None, NOW)
    assert new.webhook is None
    old = status(Phase.STARTING, webhook=WebhookStatus(delivered=1, pending=pending(2, 3)))
    removed = status(Phase.JOINING)
    assert not notify(bot(webhook=False, status=old), old, removed, None, NOW)
    assert removed.webhook is not None
    assert (removed.webhook.pending, removed.webhook.dropped, removed.webhook.delivered) == (
        [],
        2,
        3,
    )


def test_the_envelope_is_a_cloudevent_signed_as_standard_webhooks_verify_it() -> None:
    (event,) = pending(7)
    body = envelope("team", "notetaker", "uid-1", event)
    headers = signed_headers(signing_key(SECRET), "uid-1.7", int(time.time()), body)
    document = json.loads(body)
    assert document["specversion"] == "1.0" and document["id"] == "uid-1.7"
    assert (
        document["source"] == "/apis/meetingbot.dev/v1alpha1/namespaces/team/meetingbots/notetaker"
    )
    assert document["data"]["phase"] == "Joining" and document["sequence"] == 7
    verifier = Verifier(SECRET)
    verifier.verify(body, headers)
    with pytest.raises(Exception, match="signature"):
        verifier.verify(body.replace(b"Joining", b"Leaving"), headers)


def test_a_signing_secret_that_is_not_base64_is_refused_without_showing_it() -> None:
    with pytest.raises(BadSigningSecret) as refused:
        signing_key("whsec_n0t-base64-at-all!")
    assert "n0t-base64-at-all" not in str(refused.value)
    with pytest.raises(BadSigningSecret, match="shorter"):
        signing_key("whsec_" + base64.b64encode(b"short").decode())
    assert signing_key(SECRET) == b"k" * 32
    assert signing_key(SECRET.removeprefix("whsec_")) == b"k" * 32


def test_old_events_keep_their_time() -> None:
    old = status(Phase.STARTING)
    new = status(Phase.JOINING)
    notify(bot(status=old), old, new, None, NOW - timedelta(hours=2))
    assert new.webhook is not None and new.webhook.pending[0].time == NOW - timedelta(hours=2)


def test_a_stream_url_is_allowed_by_the_http_entry_of_its_host() -> None:
    allowed = ["http://10.0.0.5:9000/live", "https://hooks.example.com"]
    assert stream_allowed("ws://10.0.0.5:9000/live/team", allowed)
    assert stream_allowed("wss://hooks.example.com/x", allowed)
    assert not stream_allowed("wss://10.0.0.5:9000/live/team", allowed)  # another scheme
    assert not stream_allowed("ws://10.0.0.5:9001/live", allowed)  # another port
    assert not stream_allowed("https://hooks.example.com/x", allowed)  # not a WebSocket


def test_the_stream_token_is_for_one_attempt_at_one_endpoint() -> None:
    key = signing_key(SECRET)
    token = stream_token(
        key,
        url="wss://live.example.com/in",
        namespace="team",
        name="notetaker",
        uid="uid-1",
        attempt=2,
        now=datetime.now(UTC),
        lifetime=timedelta(hours=4),
    ).get_secret_value()
    claims = jwt.decode(token, key, algorithms=["HS256"], audience="wss://live.example.com/in")
    assert (claims["sub"], claims["uid"], claims["attempt"]) == ("team/notetaker", "uid-1", 2)
    assert claims["exp"] - claims["iat"] == 5 * 3600  # the stay, and an hour's margin
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, key, algorithms=["HS256"], audience="wss://elsewhere.example.com/in")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, b"x" * 32, algorithms=["HS256"], audience="wss://live.example.com/in")
