"""The RTMS part of the runtime contract: what a stream worker is given to receive one of
Zoom's Realtime Media Streams (docs/rtms.md).

The operator receives Zoom's signed `meeting.rtms_started` webhook, and hands the worker what
it needs to connect to that one stream: the signaling server's URL, the meeting's UUID, the
stream's id and the handshake signature, HMAC-SHA256 over `client_id,meeting_uuid,
rtms_stream_id` with the app's client secret. The signature opens this stream and no other:
the worker never holds the app's client secret, as a bot never holds the account's.

What the worker captures is written as a bot's capture is (artifacts.py): audio segments (as
`audio-wav`: Zoom's L16 audio, unencoded) and events files of `EventLine`s, uploaded through
the operator with the same grants, so a MeetingStream's manifest reads like a MeetingBot's.
"""

from __future__ import annotations

import json
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from meetingbot_contract.stream import StreamConfig


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class RtmsAudio(StrEnum):
    """Which audio Zoom is asked for: the meeting mixed, one track per speaker (Zoom sends
    only who speaks, up to three at a time; kept as `speaker-wav` files), or none."""

    MIXED = "Mixed"
    PER_SPEAKER = "PerSpeaker"
    NONE = "None"


# RTMS_STATUS_CODE of a handshake refused because of its signature.
INVALID_SIGNATURE = 15
# Zoom's default and what the contract promises downstream (the live stream's rate too).
RTMS_SAMPLE_RATE = 16000


class RtmsJoin(_Model):
    """One stream, as the operator hands it to a worker. Holds the handshake signature: never
    log it whole."""

    server_urls: str = Field(alias="serverUrls", description="The signaling server (wss://).")
    meeting_uuid: str = Field(alias="meetingUuid")
    stream_id: str = Field(alias="streamId")
    signature: SecretStr
    audio: RtmsAudio = RtmsAudio.MIXED
    transcript: bool = True
    chat: bool = True
    # Milliseconds of audio per message Zoom sends (a multiple of 20): larger frames mean
    # fewer messages per stream.
    send_rate_ms: int = Field(20, alias="sendRateMs", ge=20, le=1000, multiple_of=20)


# --- the stream workers' pool (docs/rtms.md#the-stream-workers) --------------------------------
#
# Stream workers are pods of one Deployment; none is told in advance which streams it gets.
# Each asks the operator's leader for work (`POST /v1/rtms/workers/{worker}`, a long poll that
# is also its heartbeat) with what it holds; the leader answers with what it should take and
# what it should let go. The leader owns the assignments, and rebuilds them after a change of
# leader from what the workers say they hold. A worker authenticates with its service
# account's token, bound to WORKER_AUDIENCE (the operator checks it with a TokenReview).

WORKER_AUDIENCE = "meetingbot-operator"
WORKERS_PATH = "/v1/rtms/workers"
STREAMS_PATH = "/v1/rtms/streams"


def worker_path(worker: str) -> str:
    return f"{WORKERS_PATH}/{worker}"


def stream_uploads_path(namespace: str, name: str, index: int | str) -> str:
    """Where a worker asks for uploads of one stream's files (and `/complete` confirms)."""
    return f"{STREAMS_PATH}/{namespace}/{name}/{index}/uploads"


class StreamRef(_Model):
    """One stream of one MeetingStream: its `index` in the MeetingStream's status (1 for the
    first stream it received). Ids of objects, never secrets."""

    namespace: str = Field(max_length=63)
    name: str = Field(max_length=253)
    index: int = Field(ge=1)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}#{self.index}"


class HeldStream(_Model):
    """What a worker says of a stream it holds: `generation` is the hand-over it holds it by
    (1, then 2 after a worker took it over, ...); `connected` while both sockets are up;
    `ended` once the session is over (Zoom ended it, the leader let it go, or it was lost),
    `drained` once every file of it is delivered; `error` why it ended, if it failed;
    `over`: it ended because the stream did (Zoom ended it, or it failed for good), not
    because the worker let it go; `refused`: Zoom's RTMS_STATUS_CODE when it refused the
    handshake for good (15: the signature, so the app's client secret, is wrong); `leftover`:
    files an earlier process of this worker left (no session), being delivered."""

    ref: StreamRef
    generation: int = Field(ge=1)
    connected: bool = False
    ended: bool = False
    drained: bool = False
    error: str | None = Field(None, max_length=512)
    audio_ms: int = Field(0, alias="audioMs", ge=0)
    over: bool = False
    refused: int | None = None
    leftover: bool = False


class WorkerHeartbeat(_Model):
    held: list[HeldStream] = []
    capacity: int = Field(ge=0, le=10_000)
    leaving: bool = False  # SIGTERM: take my streams elsewhere, give me nothing new


class StreamAssignment(_Model):
    """A stream to receive: the handshake (join), what to keep, where its files go, and the
    live stream to forward it to, if the MeetingStream names one (with its own token)."""

    ref: StreamRef
    uid: str = Field(description="The MeetingStream's uid (the live stream's hello says it).")
    generation: int = Field(ge=1)
    join: RtmsJoin
    segment_seconds: int = Field(alias="segmentSeconds", ge=2, le=30)
    keep_events: bool = Field(True, alias="keepEvents")
    live: StreamConfig | None = None


class WorkerOrders(_Model):
    take: list[StreamAssignment] = []
    release: list[StreamRef] = []
    # The next heartbeat at the latest this many seconds after this answer.
    interval_seconds: float = Field(alias="intervalSeconds", gt=0)

    def to_json(self) -> str:
        """The answer with the handshake signatures revealed: only for the worker's answer."""
        data = self.model_dump(mode="json", by_alias=True)
        for given, assignment in zip(data["take"], self.take, strict=True):
            given["join"]["signature"] = assignment.join.signature.get_secret_value()
            if assignment.live is not None:
                given["live"]["token"] = assignment.live.token.get_secret_value()
        return json.dumps(data, separators=(",", ":"))
