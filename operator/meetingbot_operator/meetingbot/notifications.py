"""What a bot's webhook is told, decided in the same pass as its status (pure).

The outbox lives in `status.webhook.pending`: an event is appended by the very status write
that makes it true (the phase change, the artifacts delivered, the final result), so it exists
exactly when its cause does, whoever leads and however often the operator restarts. The
deliverer (webhooks/service.py) sends the pending events in order and reports how far it got;
the next pass reads that as an observation and trims the outbox. A crash between a receipt and
that write sends the same event again with the same id: at least once, never lost, and a
receiver that keeps ids acts once.
"""

from __future__ import annotations

from datetime import datetime

from meetingbot_api import (
    TERMINAL_PHASES,
    EventData,
    EventType,
    MeetingBot,
    MeetingBotStatus,
    Phase,
)
from meetingbot_contract.reasons import is_transient
from meetingbot_operator.meetingbot.observed import WebhookProgress
from meetingbot_operator.webhooks.outbox import advance

ARTIFACTS_DELIVERED = "ArtifactsDelivered"


def notify(
    bot: MeetingBot,
    old: MeetingBotStatus,
    new: MeetingBotStatus,
    progress: WebhookProgress | None,
    now: datetime,
) -> bool:
    """Write `new.webhook` from the old outbox, what the deliverer reported and what this pass
    changed; True when events are left to deliver."""
    events = happened(old, new) if bot.spec.webhook is not None else []
    new.webhook = advance(old.webhook, bot.spec.webhook is not None, progress, events, now)
    return bool(new.webhook and new.webhook.pending and bot.spec.webhook is not None)


def happened(old: MeetingBotStatus, new: MeetingBotStatus) -> list[tuple[EventType, EventData]]:
    """The notifications a status change makes, in the order they happened."""
    events: list[tuple[EventType, EventData]] = []
    phase = new.phase or Phase.PENDING
    if phase != old.phase:
        events.append((EventType.PHASE, _data(new, phase)))
    if _delivered(new) and not _delivered(old):
        events.append((EventType.ARTIFACTS, _data(new, phase, artifacts=True)))
    if phase in TERMINAL_PHASES and old.phase not in TERMINAL_PHASES:
        final = _data(new, phase, artifacts=True)
        final.transient = phase == Phase.FAILED and is_transient(new.reason or "")
        events.append((EventType.FINISHED, final))
    return events


def _delivered(status: MeetingBotStatus) -> bool:
    return any(c.type == ARTIFACTS_DELIVERED and c.status == "True" for c in status.conditions)


def _data(status: MeetingBotStatus, phase: Phase, *, artifacts: bool = False) -> EventData:
    return EventData(
        phase=phase.value,
        reason=status.reason,
        message=(status.message or "")[:1024] or None,
        attempt=status.attempts,
        joined_at=status.joined_at,
        left_at=status.left_at,
        completion_time=status.completion_time,
        artifacts=status.artifacts if artifacts else None,
    )
