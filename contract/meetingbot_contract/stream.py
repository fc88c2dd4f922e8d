"""The live stream: what a bot sends, while it is in the meeting, to the WebSocket endpoint its
MeetingBot's spec.stream names (docs/streaming.md says the same for the receiver's author).

- The bot connects with `Authorization: Bearer <token>`: a JWT (HS256) the operator issued for
  this attempt, signed with the stream's signing secret, which the receiver holds too. Claims:
  iss "meetingbot-operator", aud the endpoint's URL, sub "<namespace>/<name>", uid, attempt,
  iat and exp. The bot never holds the secret, only its own token.
- Its first message is a text frame, the `Hello` (who it is, the audio format).
- Audio: binary frames, each AUDIO_HEADER_BYTES (the capture time of its first sample, ms
  since the epoch, unsigned big-endian) then PCM: signed 16-bit little-endian, mono, at
  SAMPLE_RATE. The mixed audio of the meeting, the same the recording has, and only while the
  bot may record (the host's consent); none is sent twice, none is buffered across a
  disconnection (a live stream: the recording has it all).
- Events: text frames `{"type": "event", "event": EventLine}` (artifacts.EventLine: speech,
  join, leave, caption, chat, recording, and `speaking` the moment someone starts), in the
  order they happened; up to MAX_PENDING_EVENTS wait across a disconnection.
- At the end: a text frame `{"type": "end", "reason": ...}`, then the bot closes.
The bot reconnects with backoff and jitter; a receiver sees a new Hello each time.
"""

from __future__ import annotations

import struct
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

PROTOCOL = "meetingbot.dev/stream/v1"
SAMPLE_RATE = 16000
AUDIO_HEADER_BYTES = 8
MAX_PENDING_EVENTS = 1000
TOKEN_ISSUER = "meetingbot-operator"  # noqa: S105 - an issuer name, not a secret


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class StreamConfig(_Model):
    """Where and what to stream, given to the bot in its JoinConfig (absent: no stream)."""

    url: str
    token: SecretStr
    audio: bool = True
    events: bool = True


class AudioFormat(_Model):
    encoding: Literal["pcm_s16le"] = "pcm_s16le"
    sample_rate: int = Field(SAMPLE_RATE, alias="sampleRate")
    channels: int = 1


class Hello(_Model):
    """The first frame of every connection."""

    type: Literal["hello"] = "hello"
    protocol: str = PROTOCOL
    namespace: str
    name: str
    uid: str
    attempt: int
    audio: AudioFormat | None = None
    # A MeetingStream's (docs/rtms.md): which of its streams this is; `attempt` is then the
    # stream's generation (another after a stream worker's hand-over).
    stream: int | None = None


def audio_frame(first_sample_ms: int, pcm: bytes) -> bytes:
    return struct.pack(">Q", first_sample_ms) + pcm


def parse_audio_frame(frame: bytes) -> tuple[int, bytes]:
    """(the capture time of the first sample in ms, the PCM)."""
    (first_sample_ms,) = struct.unpack(">Q", frame[:AUDIO_HEADER_BYTES])
    return first_sample_ms, frame[AUDIO_HEADER_BYTES:]
