"""Where a MeetingBot's results are pushed (spec.webhook) and what is still to be delivered
(status.webhook): an outbox kept in the bot's own status, so delivery survives an operator
restart or a change of leader (the new leader reads what is left from the cluster)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from meetingbot_api.v1alpha1.artifacts import ArtifactsStatus
from meetingbot_api.v1alpha1.common import Model, SecretKeyRef

# Events held in status at most; beyond, the oldest are dropped (and counted). A bot sees
# about ten phase changes per attempt, so this is an endpoint down for several attempts.
MAX_PENDING = 32


class EventType(StrEnum):
    """The CloudEvents `type` of each notification."""

    PHASE = "dev.meetingbot.bot.phase"  # the bot's phase changed
    ARTIFACTS = "dev.meetingbot.bot.artifacts"  # every file of the bot reached its bucket
    FINISHED = "dev.meetingbot.bot.finished"  # the final result (Succeeded or Failed)
    # A MeetingStream's (docs/rtms.md):
    STREAM_PHASE = "dev.meetingbot.stream.phase"  # its phase changed
    STREAM_ARTIFACTS = "dev.meetingbot.stream.artifacts"  # every file of one stream delivered
    STREAM_FINISHED = "dev.meetingbot.stream.finished"  # the final result


class Webhook(Model):
    """An HTTPS endpoint the operator POSTs the bot's notifications to, signed (Standard
    Webhooks: HMAC-SHA256 over id, timestamp and body)."""

    url: str = Field(
        max_length=2048,
        pattern=r"^https?://[^\s]+$",
        description="The endpoint; https://, or http:// only for a host the operator allows "
        "(MEETINGBOT_WEBHOOK_ENDPOINTS lists the endpoints bots may name).",
    )
    signing_secret_ref: SecretKeyRef = Field(
        alias="signingSecretRef",
        description="The signing secret (whsec_<base64>, as Standard Webhooks writes it) in a "
        "Secret labelled meetingbot.dev/secret-for=webhook-signing.",
    )


class Stream(Model):
    """A WebSocket endpoint the bot streams to while it is in the meeting: mixed audio (PCM16,
    16 kHz, mono) and the capture's events, live (docs/streaming.md). It connects with a token
    the operator issues per attempt, a JWT signed with the signing secret (which the receiver
    verifies it with); the bot never holds the secret."""

    url: str = Field(
        max_length=2048,
        pattern=r"^wss?://[^\s]+$",
        description="The endpoint; wss://, or ws:// only for a host the operator allows "
        "(MEETINGBOT_WEBHOOK_ENDPOINTS, with http for ws and https for wss).",
    )
    signing_secret_ref: SecretKeyRef = Field(
        alias="signingSecretRef",
        description="The secret the bot's token is signed with (whsec_<base64>), in a Secret "
        "labelled meetingbot.dev/secret-for=webhook-signing.",
    )
    audio: bool = Field(True, description="Stream the mixed audio (while recording is allowed).")
    events: bool = Field(True, description="Stream the events (speakers, captions, chat...).")


class EventData(Model):
    """What a notification says about the bot (never a secret)."""

    phase: str | None = Field(None, max_length=32, description="The bot's phase.")
    reason: str | None = Field(None, max_length=256, description="Why, in one word.")
    message: str | None = Field(None, max_length=1024, description="The same, in words.")
    transient: bool | None = Field(
        None, description="FINISHED only: whether another attempt might succeed."
    )
    attempt: int = Field(0, description="The attempt it is about.")
    joined_at: datetime | None = Field(None, alias="joinedAt", description="When it joined.")
    left_at: datetime | None = Field(None, alias="leftAt", description="When it left.")
    completion_time: datetime | None = Field(
        None, alias="completionTime", description="When it finished."
    )
    artifacts: ArtifactsStatus | None = Field(None, description="What reached the bucket.")
    # A MeetingStream's events: which stream they are about.
    stream_index: int | None = Field(
        None, alias="streamIndex", description="The stream's index (MeetingStreams)."
    )
    stream_id: str | None = Field(
        None, alias="streamId", max_length=128, description="Zoom's stream id (MeetingStreams)."
    )
    meeting_number: str | None = Field(
        None, alias="meetingNumber", max_length=16, description="The meeting (MeetingStreams)."
    )


class PendingEvent(Model):
    """One notification not delivered yet."""

    seq: int = Field(ge=1, description="Its place in the bot's sequence (the id's suffix).")
    type: EventType = Field(description="The CloudEvents type.")
    time: datetime = Field(description="When it happened.")
    data: EventData = Field(description="The event's data.")


class WebhookStatus(Model):
    """Delivery to spec.webhook: what is delivered, dropped and still pending, in order."""

    delivered: int = Field(
        0, description="The sequence number of the last event delivered or dropped."
    )
    dropped: int = Field(
        0, description="Events given up on (the endpoint refused them for a whole day)."
    )
    pending: list[PendingEvent] = Field(
        default_factory=list,
        max_length=MAX_PENDING,
        description="Events not delivered yet, oldest first.",
    )
    last_delivery_time: datetime | None = Field(
        None, alias="lastDeliveryTime", description="When the endpoint last accepted one."
    )
    last_error: str | None = Field(
        None, alias="lastError", max_length=1024, description="Why the last try failed."
    )


def event_id(uid: str, seq: int) -> str:
    """The notification's id (CloudEvents `id`, Standard Webhooks `webhook-id`): the same on
    every retry, so a receiver that keeps ids never acts twice."""
    return f"{uid}.{seq}"
