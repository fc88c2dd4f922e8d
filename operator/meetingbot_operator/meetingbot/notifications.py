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
    MAX_PENDING,
    TERMINAL_PHASES,
    EventData,
    EventType,
    MeetingBot,
    MeetingBotStatus,
    PendingEvent,
    Phase,
    WebhookStatus,
)
from meetingbot_contract.reasons import is_transient
from meetingbot_operator.meetingbot.observed import WebhookProgress

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
    if bot.spec.webhook is None and old.webhook is None:
        return False
    hook = (old.webhook or WebhookStatus()).model_copy(deep=True)
    if progress is not None:
        _trim(hook, progress)
    if bot.spec.webhook is None:
        if hook.pending:  # the spec no longer names an endpoint: nothing can be delivered
            hook.dropped += len(hook.pending)
            hook.delivered = hook.pending[-1].seq
            hook.pending = []
            hook.last_error = "spec.webhook was removed with events still pending"
        new.webhook = hook
        return False
    for type_, data in happened(old, new):
        seq = hook.delivered + len(hook.pending) + 1
        hook.pending.append(PendingEvent(seq=seq, type=type_, time=now, data=data))
    while len(hook.pending) > MAX_PENDING:  # the endpoint has been down for a long time
        oldest = hook.pending.pop(0)
        hook.delivered, hook.dropped = oldest.seq, hook.dropped + 1
        hook.last_error = f"more than {MAX_PENDING} events pending: the oldest was dropped"
    new.webhook = hook
    return bool(hook.pending)


def _trim(hook: WebhookStatus, progress: WebhookProgress) -> None:
    """What the deliverer got through (delivered, or dropped after a day) leaves the outbox."""
    done = [e for e in hook.pending if e.seq <= progress.acked]
    hook.dropped += sum(1 for e in done if e.seq in progress.dropped)
    hook.pending = [e for e in hook.pending if e.seq > progress.acked]
    hook.delivered = max(hook.delivered, progress.acked)
    if progress.last_delivery_time is not None:
        hook.last_delivery_time = progress.last_delivery_time
    hook.last_error = progress.last_error


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
