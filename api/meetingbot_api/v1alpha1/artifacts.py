"""What a MeetingBot captures, where its artifacts go, and what was delivered (status)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from meetingbot_api.v1alpha1.common import LocalObjectRef, Model
from meetingbot_contract import OnDenied
from meetingbot_contract.artifacts import MAX_SEGMENT_SECONDS

BUCKET_NAME = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
PREFIX = r"^([A-Za-z0-9!_.*'()-]+/)*[A-Za-z0-9!_.*'()-]*$"
REGION = r"^[a-z0-9-]{1,32}$"


class Capture(Model):
    """What the bot captures. The reference bot records mixed audio and the meeting's events
    (speaker timeline, participants, captions, chat); video is not captured."""

    audio: bool = Field(True, description="Record the meeting's mixed audio (Opus in WebM).")
    events: bool = Field(
        True,
        description="Keep the speaker timeline, participants joining and leaving, captions "
        "(when the host's account allows them) and chat, as JSON lines.",
    )
    segment_seconds: int = Field(
        10,
        alias="segmentSeconds",
        ge=2,
        le=MAX_SEGMENT_SECONDS,
        description="Length of each uploaded segment: at most this much is lost if the pod dies.",
    )
    ask_permission: bool = Field(
        True,
        alias="askPermission",
        description="Ask the host for recording permission and record audio only once granted.",
    )
    on_denied: OnDenied = Field(
        OnDenied.WAIT,
        alias="onDenied",
        description="When the host refuses, or no host answers: Wait (stay, record nothing, ask "
        "again later), Leave (RecordingDenied or HostAbsent), or EventsOnly (keep the events).",
    )
    announcement: str | None = Field(
        None,
        max_length=1024,
        description="A chat message the bot sends on joining, e.g. 'Notetaker is recording'.",
    )


class Artifacts(Model):
    """Where the bot's artifacts go: an S3-compatible bucket. The bot never sees its keys: it
    asks the operator for presigned uploads to keys the operator chooses."""

    bucket: str = Field(max_length=63, pattern=BUCKET_NAME, description="The bucket's name.")
    prefix: str = Field(
        "",
        max_length=512,
        pattern=PREFIX,
        description="Objects go under <prefix>/<namespace>/<bot>/<attempt>/.",
    )
    region: str = Field(
        "us-east-1", max_length=32, pattern=REGION, description="The bucket's region."
    )
    endpoint: str | None = Field(
        None,
        max_length=2048,
        description="A custom S3-compatible endpoint; only one the operator allows "
        "(MEETINGBOT_STORAGE_ENDPOINTS). Default: AWS, https://s3.<region>.amazonaws.com.",
    )
    delete_on_delete: bool = Field(
        False,
        alias="deleteOnDelete",
        description="Delete the bot's objects (every attempt's, and the manifest) when the "
        "MeetingBot is deleted. Default: they stay in the bucket.",
    )
    credentials_secret_ref: LocalObjectRef = Field(
        alias="credentialsSecretRef",
        description="A Secret opted in with the label meetingbot.dev/secret-for="
        "storage-credentials, with the keys accessKeyId and secretAccessKey.",
    )

    def endpoint_url(self) -> str:
        """The S3 endpoint requests go to: `endpoint`, or AWS's for the region."""
        return (self.endpoint or f"https://s3.{self.region}.amazonaws.com").rstrip("/")


class ArtifactsStatus(Model):
    """What was delivered to the bucket, across attempts (the manifest has every object)."""

    manifest_key: str | None = Field(
        None, alias="manifestKey", max_length=1024, description="The manifest's key."
    )
    objects: int = Field(0, description="Objects delivered.")
    bytes: int = Field(0, description="Bytes delivered.")
    audio_segments: int = Field(0, alias="audioSegments", description="Audio segments delivered.")
    event_files: int = Field(0, alias="eventFiles", description="Event files delivered.")
    last_upload_time: datetime | None = Field(
        None, alias="lastUploadTime", description="When the last object was confirmed."
    )
    pending: int = Field(0, description="Files the bot holds that are not delivered yet.")
    lost: int = Field(
        0,
        description="Files an attempt still held when it ended (lost with its pod), as it last "
        "reported them.",
    )
