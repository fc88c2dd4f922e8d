"""metav1.Condition lists, written whole (a merge patch replaces lists)."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from meetingbot_api import Condition


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: bool | None,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """Return the list with `type_` set; lastTransitionTime moves only when status flips."""
    value = "Unknown" if status is None else ("True" if status else "False")
    reason = condition_reason(reason)
    previous = next((c for c in conditions if c.type == type_), None)
    changed_at = previous.last_transition_time if previous and previous.status == value else now
    updated = Condition(
        type=type_,
        status=value,
        reason=reason,
        message=message[:32768],
        observed_generation=generation,
        last_transition_time=changed_at,
    )
    return [c for c in conditions if c.type != type_] + [updated]


# metav1.Condition's reason: CamelCase-ish, what the API server accepts.
REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")


def condition_reason(reason: str) -> str:
    """`reason` if the API server accepts it as a condition's reason, else its letters and
    digits (a bot of someone else's may report anything; the status must still be written)."""
    if REASON.match(reason):
        return reason[:1024]
    cleaned = re.sub(r"[^A-Za-z0-9_]", "", reason).lstrip("0123456789_")
    return cleaned[:1024] or "Unknown"


class Progress(StrEnum):
    """Where an object stands, as kstatus (Flux, the `kstatus` tool) tells it."""

    RECONCILING = "Reconciling"  # on its way: InProgress
    STALLED = "Stalled"  # cannot get there unless someone changes something: Failed
    CURRENT = "Current"  # where it should be (or waiting for a time, not for us): Current


def progress(
    conditions: list[Condition],
    where: Progress,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """The two conditions kstatus reads besides observedGeneration, Reconciling and Stalled,
    each True only in its own case and False otherwise, with the object's own reason."""
    for type_ in (Progress.RECONCILING, Progress.STALLED):
        conditions = set_condition(
            conditions, type_.value, where == type_, reason, message, generation=generation, now=now
        )
    return conditions
