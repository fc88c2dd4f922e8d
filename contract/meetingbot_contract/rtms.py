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

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class RtmsAudio(StrEnum):
    """Which audio Zoom is asked for: the meeting mixed, or none. (Zoom can also send one
    track per speaker, up to three per 20 ms; the recorder does not keep those apart yet.)"""

    MIXED = "Mixed"
    NONE = "None"


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
