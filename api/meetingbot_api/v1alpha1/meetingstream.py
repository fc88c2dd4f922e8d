"""MeetingStream: a meeting received through Zoom's Realtime Media Streams (RTMS) instead of
a bot: no participant joins; Zoom streams the meeting's audio, transcript and chat to the app,
and the operator's stream workers keep them as a MeetingBot's capture is kept (docs/rtms.md).

Which app (its client id and secret, and the secret token Zoom signs its webhooks with), which
meeting (or every stream the app is sent that no other MeetingStream names, for accounts where
the app starts on its own), which media, and the same artifacts, webhook and live
stream as a MeetingBot's (docs/rtms.md).
Its status has the same phases, reasons and conditions style.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import ConfigDict, Field

from meetingbot_api.v1alpha1.artifacts import Artifacts, ArtifactsStatus
from meetingbot_api.v1alpha1.common import (
    CONDITIONS_LIST,
    Condition,
    LocalObjectRef,
    Model,
    ObjectMeta,
    cel,
)
from meetingbot_api.v1alpha1.meetingbot import MEETING_NUMBER
from meetingbot_api.v1alpha1.webhooks import Stream, Webhook, WebhookStatus
from meetingbot_contract import DAY_SECONDS
from meetingbot_contract.artifacts import MAX_SEGMENT_SECONDS

# Streams a MeetingStream's status lists (the latest); older ones stay in its manifest.
MAX_LISTED_STREAMS = 20


class StreamStart(StrEnum):
    """How the stream starts: Zoom starts it (the host, or the account's auto-start) and the
    operator is told by webhook; or the operator asks Zoom to start it (REST), as soon as the
    meeting is live."""

    WEBHOOK = "Webhook"
    API = "Api"


class StreamAudio(StrEnum):
    MIXED = "Mixed"
    PER_SPEAKER = "PerSpeaker"
    NONE = "None"


class StreamMedia(Model):
    """What Zoom is asked to send. Video is not received."""

    audio: StreamAudio = Field(
        StreamAudio.MIXED,
        description="Mixed: the meeting's mixed audio (L16, 16 kHz, mono; kept as WAV "
        "segments); PerSpeaker: one track per speaker (Zoom sends who speaks, up to three at "
        "a time; kept as speaker-wav files naming the speaker; the live stream then carries "
        "no audio); None: no audio.",
    )
    transcript: bool = Field(
        True, description="Zoom's live transcript, kept as caption lines with who said it."
    )
    chat: bool = Field(True, description="The meeting's chat messages.")
    send_rate_ms: int = Field(
        20,
        alias="sendRateMs",
        ge=20,
        le=1000,
        multiple_of=20,
        description="Milliseconds of audio in each message Zoom sends (Zoom's send_rate; 20 "
        "by default): larger messages cost a stream worker less CPU, and make the live "
        "stream's audio arrive in larger pieces.",
    )


class StreamMeeting(Model):
    number: str = Field(
        max_length=12,
        pattern=MEETING_NUMBER,
        description="The meeting's number (the digits of its join URL).",
    )


class MeetingStreamSpec(Model):
    """The app, the meeting, the media, and where results go."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.start != 'Api' || (has(self.meeting) && has(self.accountRef))",
                "start Api needs meeting.number and accountRef (the account whose API starts "
                "the stream)",
                ".start",
            ),
            (
                "has(self.meeting) == has(oldSelf.meeting) && "
                "(!has(self.meeting) || self.meeting == oldSelf.meeting)",
                "meeting is immutable; create a new MeetingStream",
                ".meeting",
            ),
            (
                "self.appCredentialsSecretRef == oldSelf.appCredentialsSecretRef",
                "appCredentialsSecretRef is immutable",
                ".appCredentialsSecretRef",
            ),
            (
                "self.artifacts == oldSelf.artifacts",
                "artifacts is immutable (every stream's objects belong in one place)",
                ".artifacts",
            ),
            (
                "!has(oldSelf.cancel) || !oldSelf.cancel || (has(self.cancel) && self.cancel)",
                "cancel cannot be undone; create a new MeetingStream",
                ".cancel",
            ),
        )
    )

    app_credentials_secret_ref: LocalObjectRef = Field(
        alias="appCredentialsSecretRef",
        description="A Secret with clientId, clientSecret and webhookSecretToken of the Zoom "
        "app that receives the streams (a General app subscribed to meeting.rtms_started and "
        "meeting.rtms_stopped, its event notification endpoint the operator's /zoom/rtms), "
        "labelled meetingbot.dev/secret-for=zoom-credentials.",
    )
    account_ref: LocalObjectRef | None = Field(
        None,
        alias="accountRef",
        description="The ZoomAccount whose API starts the stream (start: Api).",
    )
    meeting: StreamMeeting | None = Field(
        None,
        description="The meeting to receive. Unset: every stream the app is sent for a "
        "meeting no other MeetingStream of the namespace names (accounts where the app starts "
        "on its own).",
    )
    start: StreamStart = Field(
        StreamStart.WEBHOOK,
        description="Webhook: Zoom starts the stream and tells the operator; Api: the operator "
        "asks Zoom to start it once the meeting is live.",
    )
    media: StreamMedia = Field(default_factory=StreamMedia, description="What Zoom sends.")
    segment_seconds: int = Field(
        10,
        alias="segmentSeconds",
        ge=2,
        le=MAX_SEGMENT_SECONDS,
        description="Length of each audio segment and events file: at most this much is lost "
        "if a stream worker dies.",
    )
    artifacts: Artifacts = Field(description="Where the stream's files go.")
    webhook: Webhook | None = Field(
        None,
        description="Where the operator POSTs the MeetingStream's notifications (phase "
        "changes, each stream's files delivered, the final result), signed as a MeetingBot's "
        "are (docs/results.md).",
    )
    stream: Stream | None = Field(
        None,
        description="Where the stream worker forwards each stream live (mixed audio and "
        "events), as a MeetingBot's live stream (docs/streaming.md); its hello names the "
        "stream's index.",
    )
    cancel: bool = Field(
        False,
        description="Stop receiving: the MeetingStream finishes (Succeeded, Canceled) and takes "
        "no more streams; with start: Api, Zoom is asked to stop the current one.",
    )
    ttl_seconds_after_finished: int | None = Field(
        None,
        alias="ttlSecondsAfterFinished",
        ge=0,
        le=DAY_SECONDS * 30,
        description="Delete the MeetingStream this long after it finished (its objects in the "
        "bucket stay).",
    )


class StreamPhase(StrEnum):
    WAITING = "Waiting"  # no stream yet (or, with no meeting named, between streams)
    STARTING = "Starting"  # Zoom said it started; a worker is connecting
    STREAMING = "Streaming"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


STREAM_TERMINAL_PHASES = frozenset({StreamPhase.SUCCEEDED, StreamPhase.FAILED})


class StreamSession(Model):
    """One stream Zoom sent (ids are not secrets: the handshake needs the app's secret)."""

    stream_id: str = Field(alias="streamId", max_length=128, description="Zoom's stream id.")
    index: int = Field(
        1,
        ge=1,
        description="Which stream of this MeetingStream it is (1 for the first): its files are "
        "under <prefix>/<namespace>/_streams/<name>/<index>/.",
    )
    meeting_number: str | None = Field(
        None, alias="meetingNumber", max_length=16, description="The meeting's number."
    )
    meeting_uuid: str = Field(
        alias="meetingUuid", max_length=128, description="This occurrence of the meeting."
    )
    server_urls: str = Field(
        alias="serverUrls", max_length=2048, description="Zoom's signaling server for it."
    )
    started_at: datetime = Field(alias="startedAt", description="When Zoom said it started.")
    ended_at: datetime | None = Field(
        None, alias="endedAt", description="When Zoom said it stopped."
    )
    stop_reason: int | None = Field(
        None, alias="stopReason", description="Zoom's RTMS_STOP_REASON, once it ended."
    )
    worker: str | None = Field(
        None, max_length=253, description="The stream worker receiving it (its pod)."
    )
    generation: int | None = Field(
        None,
        ge=1,
        description="How many times a worker took it (more than 1: a worker was lost or left, "
        "and another took over).",
    )
    artifacts: ArtifactsStatus | None = Field(None, description="What of it reached the bucket.")
    delivered: bool = Field(
        False, description="Every file of the stream reached the bucket (the stream is over)."
    )


class MeetingStreamStatus(Model):
    """The stream's phase and facts."""

    phase: StreamPhase | None = Field(None, description="Where the MeetingStream is.")
    reason: str | None = Field(
        None, max_length=64, description="Why (CamelCase; see docs/reasons.md)."
    )
    message: str | None = Field(None, max_length=32768, description="The same, in words.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready (Waiting or Streaming as asked), Streaming, Complete, Failed, and "
        "kstatus' Reconciling and Stalled; all but Ready and Streaming only once True.",
        json_schema_extra=CONDITIONS_LIST,
    )
    observed_generation: int | None = Field(
        None, alias="observedGeneration", description="The generation this status describes."
    )
    streams: list[StreamSession] = Field(
        default_factory=list,
        max_length=MAX_LISTED_STREAMS,
        description="The streams received, the latest last.",
    )
    completion_time: datetime | None = Field(
        None, alias="completionTime", description="When it finished."
    )
    artifacts: ArtifactsStatus | None = Field(None, description="What reached the bucket.")
    webhook: WebhookStatus | None = Field(
        None, description="Delivery to spec.webhook: what is delivered and what is pending."
    )


class MeetingStream(Model):
    """A meeting received through Zoom's RTMS."""

    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: MeetingStreamSpec
    status: MeetingStreamStatus = Field(default_factory=MeetingStreamStatus)
