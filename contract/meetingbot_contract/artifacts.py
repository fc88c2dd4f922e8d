"""The artifact part of the runtime contract: what a bot captures and how it delivers it.

A bot never holds storage credentials. For each file it wants to keep it asks the operator
for an upload (`POST {capture.uploadsUrl}` with its report token and an `UploadRequest`); the
operator chooses the object key (`<prefix>/<namespace>/<bot>/<attempt>/<kind>-<sequence>.<ext>`)
and answers an `UploadGrant`: a presigned PUT URL, valid for minutes, bound to that key, that
size and that SHA-256 (the store refuses other bytes). The bot PUTs the file with the grant's
headers, then confirms (`POST {capture.uploadsUrl}/complete`, the same request); the operator
checks the object's size and checksum in the store, adds it to the bot's manifest and answers
200. Until then the bot keeps the file in its spool directory (an emptyDir) and retries with
backoff: a crash loses at most the segment in progress.

Files:
- audio: Opus in WebM, one self-contained file per segment (`segmentSeconds`, at most 30).
- audio-wav: the same segments as WAV (PCM16 LE, mono, the rate in its header): what an RTMS
  stream worker writes of the L16 audio Zoom sends it, unencoded (docs/rtms.md).
- speaker-wav: one speaker's audio alone, as WAV (an RTMS stream asked for one track per
  speaker): a file per stretch of that speaker's audio (cut at `segmentSeconds` or where the
  speaker pauses), with the speaker's Zoom user id in its manifest entry (`speaker`).
- events: JSON lines (`EventLine`), one file per segment window, every line stamped with the
  host's clock in milliseconds since the epoch: the clock the audio segments are stamped with.
"""

from __future__ import annotations

import itertools
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# The bot's spool directory for files not yet delivered (an emptyDir, sized for them).
SPOOL_ENV = "MEETINGBOT_SPOOL"
SPOOL_PATH = "/var/spool/meetingbot"
MAX_SEGMENT_SECONDS = 30
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
SHA256_PATTERN = r"^[0-9a-f]{64}$"
SPEAKER_PATTERN = r"^[A-Za-z0-9._:=+/-]{1,128}$"


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class ArtifactKind(StrEnum):
    AUDIO = "audio"
    AUDIO_WAV = "audio-wav"
    SPEAKER_WAV = "speaker-wav"
    EVENTS = "events"


AUDIO_KINDS = frozenset({ArtifactKind.AUDIO, ArtifactKind.AUDIO_WAV})
EXTENSIONS = {
    ArtifactKind.AUDIO: "webm",
    ArtifactKind.AUDIO_WAV: "wav",
    ArtifactKind.SPEAKER_WAV: "wav",
    ArtifactKind.EVENTS: "jsonl",
}
CONTENT_TYPES = {
    ArtifactKind.AUDIO: "audio/webm",
    ArtifactKind.AUDIO_WAV: "audio/wav",
    ArtifactKind.SPEAKER_WAV: "audio/wav",
    ArtifactKind.EVENTS: "application/x-ndjson",
}


class OnDenied(StrEnum):
    """What a bot does when the host refuses recording, or no host answers."""

    WAIT = "Wait"  # stay, record nothing, ask again when a host arrives
    LEAVE = "Leave"  # leave the meeting (reason RecordingDenied or HostAbsent)
    EVENTS_ONLY = "EventsOnly"  # stay and keep the events (speakers, captions, chat), no audio


class CaptureConfig(_Model):
    """What to capture, given to the bot in its JoinConfig (absent: the bot captures nothing)."""

    audio: bool = True
    events: bool = True
    segment_seconds: int = Field(10, alias="segmentSeconds", ge=2, le=MAX_SEGMENT_SECONDS)
    ask_permission: bool = Field(True, alias="askPermission")
    on_denied: OnDenied = Field(OnDenied.WAIT, alias="onDenied")
    announcement: str | None = Field(None, max_length=1024)
    uploads_url: str = Field(alias="uploadsUrl")


class UploadRequest(_Model):
    """One file a bot wants delivered (also the body of the confirmation)."""

    attempt: int = Field(ge=1)
    kind: ArtifactKind
    sequence: int = Field(ge=1, le=1_000_000)
    size: int = Field(ge=1, le=MAX_UPLOAD_BYTES)
    sha256: str = Field(pattern=SHA256_PATTERN)
    start_ms: int = Field(alias="startMs", ge=0)
    end_ms: int = Field(alias="endMs", ge=0)
    # speaker-wav only: whose audio it is (Zoom's user id).
    speaker: str | None = Field(None, pattern=SPEAKER_PATTERN)


class UploadGrant(_Model):
    key: str
    url: str
    # Send exactly these with the PUT (they are signed: the checksum and the length).
    headers: dict[str, str]
    expires_in_seconds: int = Field(alias="expiresInSeconds")


class EventLine(_Model):
    """One line of an events file. `type` says which fields are set:
    speech (userId, name, startMs, endMs), join and leave (userId, name), caption (userId,
    name, text), chat (userId, name, text, to), recording (state: Started, Denied, Stopped,
    HostAbsent, Unavailable), captions (state: Unavailable when none came); speaking (userId,
    name) on the live stream only, the moment someone starts speaking."""

    t: int
    type: Literal["speech", "join", "leave", "caption", "chat", "recording", "captions", "speaking"]
    user_id: str | None = Field(None, alias="userId")
    name: str | None = None
    text: str | None = None
    to: str | None = None
    state: str | None = None
    start_ms: int | None = Field(None, alias="startMs")
    end_ms: int | None = Field(None, alias="endMs")

    def line(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


def object_key(
    prefix: str, namespace: str, bot: str, attempt: int, kind: ArtifactKind, sequence: int
) -> str:
    """The one place object keys are made (the operator's; a bot never chooses one)."""
    head = prefix.strip("/")
    name = f"{namespace}/{bot}/{attempt}/{kind.value}-{sequence:06d}.{EXTENSIONS[kind]}"
    return f"{head}/{name}" if head else name


def stream_folder(name: str, index: int) -> str:
    """Where one stream of a MeetingStream keeps its files, in place of a bot's name in the
    keys above: `_streams/<name>/<index>` (no Kubernetes name holds `_`, so it is never a
    MeetingBot's folder), with the hand-over generation in place of the attempt."""
    return f"_streams/{name}/{index}"


def manifest_key(prefix: str, namespace: str, bot: str) -> str:
    head = prefix.strip("/")
    name = f"{namespace}/{bot}/manifest.json"
    return f"{head}/{name}" if head else name


class ManifestEntry(_Model):
    key: str
    attempt: int
    kind: ArtifactKind
    sequence: int
    size: int
    sha256: str
    start_ms: int = Field(alias="startMs")
    end_ms: int = Field(alias="endMs")
    speaker: str | None = None  # speaker-wav: whose audio (Zoom's user id)


class Manifest(_Model):
    """Every object delivered for one MeetingBot, across its attempts, in order; `gaps` are the
    spans between attempts (and inside one, between audio segments) that no audio covers."""

    api_version: Literal["meetingbot.dev/v1"] = Field("meetingbot.dev/v1", alias="apiVersion")
    namespace: str
    name: str
    uid: str
    entries: list[ManifestEntry] = []
    gaps: list[dict[str, Any]] = []

    def with_entry(self, entry: ManifestEntry) -> Manifest:
        kept = [e for e in self.entries if e.key != entry.key] + [entry]
        kept.sort(key=lambda e: (e.attempt, e.kind.value, e.sequence))
        return self.model_copy(update={"entries": kept, "gaps": audio_gaps(kept)})


# Audio segments closer than this are continuous (a recorder hands over to the next).
CONTINUOUS_MS = 1000


def audio_gaps(entries: list[ManifestEntry]) -> list[dict[str, Any]]:
    audio = sorted((e for e in entries if e.kind in AUDIO_KINDS), key=lambda e: e.start_ms)
    gaps: list[dict[str, Any]] = []
    for before, after in itertools.pairwise(audio):
        if after.start_ms - before.end_ms > CONTINUOUS_MS:
            gaps.append(
                {
                    "startMs": before.end_ms,
                    "endMs": after.start_ms,
                    "afterKey": before.key,
                    "betweenAttempts": before.attempt != after.attempt,
                }
            )
    return gaps
