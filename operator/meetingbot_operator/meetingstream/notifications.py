"""What a MeetingStream's webhook is told, decided with each status write (pure): its phase
changes, each stream's files all delivered, and its final result. The outbox is the
MeetingStream's `status.webhook` (webhooks/outbox.py), written with the change that causes the
event, as a MeetingBot's is: nothing is lost to a restart or a change of leader.

A stream's files are delivered after Zoom ends it (its worker delivers the last segment then),
so `dev.meetingbot.stream.artifacts` for a stream may come after the MeetingStream's
`dev.meetingbot.stream.finished`."""

from __future__ import annotations

from datetime import datetime

from meetingbot_api import (
    STREAM_TERMINAL_PHASES,
    ArtifactsStatus,
    EventData,
    EventType,
    MeetingStream,
    MeetingStreamStatus,
    StreamSession,
)
from meetingbot_operator.meetingbot.observed import WebhookProgress
from meetingbot_operator.webhooks.outbox import advance


def notify(
    stream: MeetingStream,
    new: MeetingStreamStatus,
    progress: WebhookProgress | None,
    now: datetime,
) -> MeetingStreamStatus:
    """`new` with its outbox advanced from the MeetingStream's current status."""
    old = stream.status
    has_endpoint = stream.spec.webhook is not None
    events = happened(old, new) if has_endpoint else []
    hook = advance(old.webhook, has_endpoint, progress, events, now)
    return new if hook == new.webhook else new.model_copy(update={"webhook": hook})


def happened(
    old: MeetingStreamStatus, new: MeetingStreamStatus
) -> list[tuple[EventType, EventData]]:
    """The notifications a status change makes, in the order they happened."""
    events: list[tuple[EventType, EventData]] = []
    latest = new.streams[-1] if new.streams else None
    if new.phase is not None and new.phase != old.phase:
        events.append((EventType.STREAM_PHASE, _data(new, latest)))
    delivered_before = {s.index for s in old.streams if s.delivered}
    for session in new.streams:
        if session.delivered and session.index not in delivered_before:
            events.append(
                (EventType.STREAM_ARTIFACTS, _data(new, session, artifacts=session.artifacts))
            )
    if new.phase in STREAM_TERMINAL_PHASES and old.phase not in STREAM_TERMINAL_PHASES:
        events.append((EventType.STREAM_FINISHED, _data(new, latest, artifacts=new.artifacts)))
    return events


def _data(
    status: MeetingStreamStatus,
    session: StreamSession | None,
    *,
    artifacts: ArtifactsStatus | None = None,
) -> EventData:
    return EventData(
        phase=status.phase.value if status.phase else None,
        reason=status.reason,
        message=(status.message or "")[:1024] or None,
        completion_time=status.completion_time,
        artifacts=artifacts,
        stream_index=session.index if session else None,
        stream_id=session.stream_id if session else None,
        meeting_number=session.meeting_number if session else None,
    )
