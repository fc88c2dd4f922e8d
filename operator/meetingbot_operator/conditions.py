"""metav1.Condition lists, written whole (a merge patch replaces lists)."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from meetingbot_api import Condition

# Conditions that say something only when True: written from the first time they are, absent
# before (kstatus takes an absent Reconciling or Stalled for not True, as test_gitops_status
# checks with kstatus itself; a Job's Complete and Failed appear only once true). A starting
# MeetingBot's status then holds 3 conditions, not 6, and every field of it costs the API
# server on each status write: with 6, a 1000-bot burst cost it 1.3 s more CPU and took
# 0.4-0.6 s longer (docs/benchmarks.md, "What the status document costs").
ABSENT_UNTIL_TRUE = frozenset({"Complete", "Failed", "Reconciling", "Stalled"})


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
    """Return the list with `type_` set; lastTransitionTime moves only when status flips.
    A condition of ABSENT_UNTIL_TRUE is left out until it is True, then kept."""
    previous = next((c for c in conditions if c.type == type_), None)
    if previous is None and status is not True and type_ in ABSENT_UNTIL_TRUE:
        return conditions
    value = "Unknown" if status is None else ("True" if status else "False")
    reason = condition_reason(reason)
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
    each True only in its own case and False otherwise (absent until first True), with the
    object's own reason."""
    for type_ in (Progress.RECONCILING, Progress.STALLED):
        conditions = set_condition(
            conditions, type_.value, where == type_, reason, message, generation=generation, now=now
        )
    return conditions
