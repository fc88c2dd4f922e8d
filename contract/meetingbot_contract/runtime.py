"""The bot runtime contract, version 1: what a bot reads and what it reports.

Any bot image can implement it (the README documents it for teams who bring their own bot):

- In: one JSON document, `JoinConfig`, the key `join.json` of the Secret `<bot>-join`, mounted
  read-only at `/var/run/meetingbot/` (the path is also in the env var MEETINGBOT_CONFIG).
- Out, while running: `POST {report.url}` with `Authorization: Bearer {report.token}` and a
  `BotReport` body, the whole current state each time (safe to repeat), retried with backoff.
- Out, on exit: an exit code from `ExitCode` and a one-line JSON `BotResult` in the container's
  termination message (/dev/termination-log), so the outcome survives lost reports.
- SIGTERM means "leave now": leave the meeting and exit within the pod's grace period.

This package imports nothing but pydantic: the reference bot uses it, and so can any bot.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from meetingbot_contract.artifacts import CaptureConfig
from meetingbot_contract.stream import StreamConfig

CONTRACT_VERSION = "meetingbot.dev/v1"
CONFIG_KEY = "join.json"
CONFIG_MOUNT_PATH = "/var/run/meetingbot"
CONFIG_ENV = "MEETINGBOT_CONFIG"
# The bot answers GET /healthz on this port while its event loop runs (the pod's liveness
# probe); the port is also in the env var MEETINGBOT_HEALTH_PORT.
HEALTH_PORT_ENV = "MEETINGBOT_HEALTH_PORT"
HEALTH_PATH = "/healthz"
# Sandbox option of the reference bot: load this Meeting SDK script (the simulator's fake).
SDK_URL_ENV = "MEETINGBOT_SDK_URL"
DAY_SECONDS = 24 * 3600
MAX_DURATION_SECONDS = 7 * DAY_SECONDS


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class AuthMode(StrEnum):
    ZAK = "zak"
    NONE = "none"
    OBF = "obf"


class LeaveRules(_Model):
    """When the bot leaves on its own. Zero disables a rule."""

    # Upper bounds keep every deadline computable (and refused at apply time, not at runtime).
    waiting_room_timeout_seconds: int = Field(
        900,
        alias="waitingRoomTimeoutSeconds",
        ge=0,
        le=DAY_SECONDS,
        description="Leave when not admitted from the waiting room within this long.",
    )
    no_one_joined_timeout_seconds: int = Field(
        900,
        alias="noOneJoinedTimeoutSeconds",
        ge=0,
        le=DAY_SECONDS,
        description="Leave when nobody else joined within this long of the bot.",
    )
    everyone_left_timeout_seconds: int = Field(
        60,
        alias="everyoneLeftTimeoutSeconds",
        ge=0,
        le=DAY_SECONDS,
        description="Leave this long after the last other participant left.",
    )
    max_duration_seconds: int = Field(
        4 * 3600,
        alias="maxDurationSeconds",
        ge=60,
        le=MAX_DURATION_SECONDS,
        description="Leave after this long in the meeting, whatever happens (the operator "
        "stops the pod soon after, as a backstop).",
    )


class MeetingInfo(_Model):
    number: str
    passcode: SecretStr = SecretStr("")


class ReportTarget(_Model):
    url: str
    token: SecretStr
    # A bot re-sends its state at this interval even without a change (a heartbeat).
    interval_seconds: int = Field(30, alias="intervalSeconds", ge=1)


class BotIdentity(_Model):
    namespace: str
    name: str
    uid: str
    attempt: int = Field(ge=1)


class JoinConfig(_Model):
    """Everything a bot needs to join one meeting once. Holds secrets: never log it whole."""

    api_version: Literal["meetingbot.dev/v1"] = Field("meetingbot.dev/v1", alias="apiVersion")
    bot: BotIdentity
    meeting: MeetingInfo
    display_name: str = Field(alias="displayName")
    auth: AuthMode
    sdk_key: str = Field(alias="sdkKey")
    signature: SecretStr
    zak: SecretStr | None = None
    obf_token: SecretStr | None = Field(None, alias="obfToken")
    zoom_user: str | None = Field(None, alias="zoomUser")
    leave: LeaveRules = LeaveRules()
    report: ReportTarget
    # What to capture and where to ask for uploads (artifacts.py); absent: capture nothing.
    capture: CaptureConfig | None = None
    # The live stream (stream.py); absent: none.
    stream: StreamConfig | None = None

    def to_json(self) -> str:
        """The document with secrets revealed: only for writing into the Secret."""
        data = self.model_dump(mode="json", by_alias=True)
        data["meeting"]["passcode"] = self.meeting.passcode.get_secret_value()
        data["signature"] = self.signature.get_secret_value()
        data["report"]["token"] = self.report.token.get_secret_value()
        data["zak"] = self.zak.get_secret_value() if self.zak else None
        data["obfToken"] = self.obf_token.get_secret_value() if self.obf_token else None
        if self.stream is not None:
            data["stream"]["token"] = self.stream.token.get_secret_value()
        return json.dumps(data, separators=(",", ":"))


class BotState(StrEnum):
    STARTING = "Starting"
    JOINING = "Joining"
    WAITING_ROOM = "WaitingRoom"
    IN_MEETING = "InMeeting"
    LEAVING = "Leaving"
    ENDED = "Ended"


class BotReport(_Model):
    """What a bot POSTs: its whole current state. `reason` is set once it is Leaving or Ended."""

    api_version: Literal["meetingbot.dev/v1"] = Field("meetingbot.dev/v1", alias="apiVersion")
    attempt: int = Field(ge=1)
    state: BotState
    reason: str | None = Field(None, max_length=64, pattern=r"^[A-Z][A-Za-z0-9]*$")
    message: str | None = Field(None, max_length=1024)
    joined_at: datetime | None = Field(None, alias="joinedAt")
    left_at: datetime | None = Field(None, alias="leftAt")
    participants: int | None = Field(None, ge=0)
    capture: CaptureReport | None = None


class RecordingState(StrEnum):
    WAITING = "Waiting"  # asked the host, no answer yet
    RECORDING = "Recording"
    DENIED = "Denied"  # the host refused
    HOST_ABSENT = "HostAbsent"  # nobody answered the request
    OFF = "Off"  # audio capture not asked for, or stopped
    UNAVAILABLE = "Unavailable"  # the page cannot record (no MediaRecorder for Opus)


class CaptureReport(_Model):
    """What a capturing bot says about its capture, in every report."""

    recording: RecordingState
    # Captions arrived; False once the meeting ran for a while without any (account setting).
    captions: bool | None = None
    # No capture hook found any audio source yet (the SDK's audio path was not recognised).
    audio_sources: int = Field(0, alias="audioSources", ge=0)
    # Files delivered (confirmed) and still waiting in the spool, by this attempt.
    delivered: int = Field(0, ge=0)
    pending: int = Field(0, ge=0)
    pending_bytes: int = Field(0, alias="pendingBytes", ge=0)


class ExitCode(IntEnum):
    """The bot's exit codes. The termination message's `reason` refines each of them."""

    LEFT = 0  # left normally: meeting ended, everyone left, max duration, SIGTERM
    CONFIG_INVALID = 2  # the join configuration could not be read or validated
    JOIN_FAILED = 3  # Zoom refused the join (reason says why)
    LEFT_EARLY = 4  # left on a rule that means the job was not done (waiting room, removed)
    BROWSER_FAILED = 5  # the browser or the page failed


class BotResult(_Model):
    """The one-line JSON a bot writes to its termination message on exit. `attempt` is 0 when
    the bot could not even read its configuration (it then stands for the current attempt)."""

    api_version: Literal["meetingbot.dev/v1"] = Field("meetingbot.dev/v1", alias="apiVersion")
    attempt: int = Field(ge=0)
    reason: str = Field(max_length=64, pattern=r"^[A-Z][A-Za-z0-9]*$")
    message: str | None = Field(None, max_length=1024)
    joined_at: datetime | None = Field(None, alias="joinedAt")
    left_at: datetime | None = Field(None, alias="leftAt")
