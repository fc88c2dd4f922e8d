"""An object's webhook outbox (`status.webhook`), advanced in the same pass as its status
(pure): what the deliverer got through leaves it, what this pass made true joins it. Shared by
MeetingBots (meetingbot/notifications.py) and MeetingStreams (meetingstream/notifications.py),
which decide what happened; the outbox keeps the order and the ids (`<uid>.<seq>`)."""

from __future__ import annotations

from datetime import datetime

from meetingbot_api import MAX_PENDING, EventData, EventType, PendingEvent, WebhookStatus
from meetingbot_operator.meetingbot.observed import WebhookProgress


def advance(
    old: WebhookStatus | None,
    has_endpoint: bool,
    progress: WebhookProgress | None,
    events: list[tuple[EventType, EventData]],
    now: datetime,
) -> WebhookStatus | None:
    """The new outbox (None: no endpoint, and never had one)."""
    if not has_endpoint and old is None:
        return None
    hook = (old or WebhookStatus()).model_copy(deep=True)
    if progress is not None:
        _trim(hook, progress)
    if not has_endpoint:
        if hook.pending:  # the spec no longer names an endpoint: nothing can be delivered
            hook.dropped += len(hook.pending)
            hook.delivered = hook.pending[-1].seq
            hook.pending = []
            hook.last_error = "spec.webhook was removed with events still pending"
        return hook
    for type_, data in events:
        seq = hook.delivered + len(hook.pending) + 1
        hook.pending.append(PendingEvent(seq=seq, type=type_, time=now, data=data))
    while len(hook.pending) > MAX_PENDING:  # the endpoint has been down for a long time
        oldest = hook.pending.pop(0)
        hook.delivered, hook.dropped = oldest.seq, hook.dropped + 1
        hook.last_error = f"more than {MAX_PENDING} events pending: the oldest was dropped"
    return hook


def _trim(hook: WebhookStatus, progress: WebhookProgress) -> None:
    """What the deliverer got through (delivered, or dropped after a day) leaves the outbox."""
    done = [e for e in hook.pending if e.seq <= progress.acked]
    hook.dropped += sum(1 for e in done if e.seq in progress.dropped)
    hook.pending = [e for e in hook.pending if e.seq > progress.acked]
    hook.delivered = max(hook.delivered, progress.acked)
    if progress.last_delivery_time is not None:
        hook.last_delivery_time = progress.last_delivery_time
    hook.last_error = progress.last_error
