"""The capture's part of a MeetingBot's status, decided from what was observed: what was
delivered (`status.artifacts`) and the conditions Recording, Captions and ArtifactsDelivered.
Pure, like the rest of the decisions (decisions.py calls it on every pass)."""

from __future__ import annotations

from datetime import datetime

from meetingbot_api import (
    TERMINAL_PHASES,
    ArtifactsStatus,
    MeetingBot,
    MeetingBotStatus,
    Phase,
)
from meetingbot_contract import CaptureReport, RecordingState
from meetingbot_operator.conditions import set_condition
from meetingbot_operator.meetingbot.observed import Observed

# The Recording condition for each state a bot reports: (holds, reason).
RECORDING = {
    RecordingState.RECORDING: (True, "Recording"),
    RecordingState.WAITING: (False, "PermissionRequested"),
    RecordingState.DENIED: (False, "RecordingDenied"),
    RecordingState.HOST_ABSENT: (False, "HostAbsent"),
    RecordingState.OFF: (False, "RecordingOff"),
    RecordingState.UNAVAILABLE: (False, "CaptureUnavailable"),
}
MESSAGES = {
    "PermissionRequested": "the bot asked the host for recording permission",
    "RecordingDenied": "the host refused recording permission; no audio is recorded",
    "HostAbsent": "no host answered the recording-permission request; no audio is recorded",
    "RecordingOff": "audio is not being recorded",
    "CaptureUnavailable": "the bot's browser cannot record audio",
    "NotInMeeting": "the bot is not in the meeting",
}


def capture_status(
    bot: MeetingBot, observed: Observed, status: MeetingBotStatus, generation: int, now: datetime
) -> None:
    """Set status.artifacts and the capture conditions on `status` (a bot without capture or
    artifacts gets neither)."""
    if bot.spec.capture is None and bot.spec.artifacts is None:
        return
    terminal = (status.phase or Phase.PENDING) in TERMINAL_PHASES
    capture = observed.report.capture if observed.report else None
    # A bot that said it ended still delivers what it holds until its container exits: only
    # then is what it still held lost.
    pod = observed.pod
    over = terminal and (pod is None or pod.finished or pod.deleted)
    status.artifacts = _artifacts(status.artifacts, observed.artifacts, capture, over)
    conditions = status.conditions
    if terminal or status.phase != Phase.IN_MEETING:
        holds, reason = False, "NotInMeeting"
    elif capture is None:
        holds, reason = None, "NotReported"
    else:
        holds, reason = RECORDING[capture.recording]
    message = MESSAGES.get(reason, "the bot records the meeting's audio" if holds else "")
    conditions = set_condition(
        conditions, "Recording", holds, reason, message, generation=generation, now=now
    )
    if capture is not None and capture.captions is not None:
        conditions = set_condition(
            conditions,
            "Captions",
            capture.captions,
            "CaptionsReceived" if capture.captions else "CaptionsDisabled",
            "captions arrive"
            if capture.captions
            else "no caption arrived: the host's account may not allow automated captions",
            generation=generation,
            now=now,
        )
    delivered = status.artifacts
    if terminal and not over:
        # Left the meeting, not yet exited: it writes and delivers its last files now.
        ok, why = False, "Delivering"
        words = "the bot left the meeting and is delivering its last files"
    elif delivered.lost:
        ok, why = False, "ArtifactsLost"
        words = f"{delivered.lost} file(s) were not delivered before their attempt ended"
    elif delivered.pending:
        ok, why = False, "Pending"
        words = f"{delivered.pending} file(s) waiting to be delivered"
    elif delivered.objects:
        ok, why = True, "Delivered"
        words = f"{delivered.objects} object(s), {delivered.bytes} bytes in the manifest"
    else:
        ok, why, words = False, "NothingDelivered", "nothing delivered yet"
    status.conditions = set_condition(
        conditions, "ArtifactsDelivered", ok, why, words, generation=generation, now=now
    )


def _artifacts(
    old: ArtifactsStatus | None,
    seen: ArtifactsStatus | None,
    capture: CaptureReport | None,
    over: bool,
) -> ArtifactsStatus:
    # What this process saw delivered, else what an earlier pass (or process) wrote.
    base = seen or old or ArtifactsStatus()
    pending = capture.pending if capture is not None else (old.pending if old else 0)
    lost = old.lost if old else 0
    if over:
        # The bot is gone and its spool with it: what its last report still held is lost.
        # (A bot's last report comes after its final delivery attempt, so a bot that
        # delivered everything says 0 there.)
        lost = capture.pending if capture is not None else lost
        pending = 0
    return base.model_copy(update={"pending": pending, "lost": lost})
