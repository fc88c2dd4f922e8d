"""Where a schedule's occurrences come from: a cron expression in a time zone, a recurring Zoom
meeting's occurrences, or a user's upcoming meetings (docs/schedules.md).

Each source gives the same thing: occurrences with a key that stays the same for the same
occurrence (so its bot's name does not change when it moves) and a start. Pure: the Zoom reads
are in service.py; what Zoom answered is parsed here.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from meetingbot_api import CalendarRules

# How far ahead a source is looked at: the status lists what comes within it, and bots are made
# only leadSeconds (at most a day) ahead.
HORIZON = timedelta(days=400)


class SourceProblem(ValueError):
    """The spec names a source that cannot be read as it is (a user's mistake, not Zoom's)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Occurrence:
    key: str  # the bot name's suffix: 8 characters, the same for the same occurrence
    start: datetime  # aware, UTC
    meeting: str | None = None  # the meeting number, when the source names the meeting
    topic: str | None = None
    cancelled: bool = False  # Zoom says it was deleted: its bot, if made, is canceled


def minutes_key(moment: datetime) -> str:
    """Minutes since the epoch, as a CronJob names its Jobs (8 digits until the year 2160)."""
    return f"{int(moment.timestamp() // 60):08d}"


def cron_occurrences(
    schedule: str, time_zone: str, after: datetime, until: datetime, limit: int = 1000
) -> list[Occurrence]:
    """Every time in (after, until] the expression names, at most `limit`, keyed by the minute.

    cronsim follows cron across a change of clocks: a wall time that does not exist that day
    runs as the clocks change, one that happens twice runs once (the first), and an expression
    with a wildcard hour runs in both."""
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SourceProblem("InvalidTimeZone", f"unknown time zone {time_zone!r}") from None
    try:
        times = CronSim(schedule, after.astimezone(zone))
    except CronSimError as error:
        raise SourceProblem("InvalidSchedule", f"cron expression {schedule!r}: {error}") from None
    found: list[Occurrence] = []
    for moment in times:
        start = moment.astimezone(UTC)
        if start > until or len(found) >= limit:
            break
        found.append(Occurrence(key=minutes_key(start), start=start))
    return found


def meeting_occurrences(meeting: dict[str, Any]) -> list[Occurrence]:
    """The occurrences of `GET /meetings/{id}` (a recurring meeting with a fixed time, type 8).

    Zoom's occurrence_id is the occurrence's original start in milliseconds and does not change
    when the occurrence is moved: the key is made from it, so a moved occurrence keeps its bot.
    A meeting of one time (type 2) is its own single occurrence; one of no fixed time (type 3)
    has none."""
    number = str(meeting.get("id", ""))
    topic = meeting.get("topic")
    raw = meeting.get("occurrences")
    if raw is None:
        start = parse_time(meeting.get("start_time"))
        if meeting.get("type") == 2 and start is not None:
            return [Occurrence(minutes_key(start), start, number, topic)]
        return []
    found = []
    for item in raw:
        start = parse_time(item.get("start_time"))
        ident = str(item.get("occurrence_id", ""))
        if start is None or not ident.isdigit():
            continue
        original = datetime.fromtimestamp(int(ident) / 1000, UTC)
        found.append(
            Occurrence(
                key=minutes_key(original),
                start=start,
                meeting=number,
                topic=topic,
                cancelled=item.get("status") == "deleted",
            )
        )
    return found


def calendar_occurrences(
    meetings: Iterable[dict[str, Any]], user_id: str, rules: CalendarRules
) -> list[Occurrence]:
    """The meetings of `GET /users/me/meetings?type=upcoming` the rules keep. A meeting's key is
    a hash of its number and its start: the list has no occurrence ids, so a moved meeting is a
    new occurrence, and the old one, gone from the list, has its bot canceled."""
    found = []
    for meeting in meetings:
        start = parse_time(meeting.get("start_time"))
        number = str(meeting.get("id", ""))
        if start is None or not number.isdigit():
            continue
        if rules.host_is_user and meeting.get("host_id") != user_id:
            continue
        topic = str(meeting.get("topic") or "")
        if rules.topic and not fnmatch.fnmatchcase(topic.casefold(), rules.topic.casefold()):
            continue
        digest = hashlib.sha256(f"{number}@{minutes_key(start)}".encode()).hexdigest()[:8]
        found.append(Occurrence(key=digest, start=start, meeting=number, topic=topic or None))
    return found


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time (Zoom's, or an annotation's) in UTC; None if it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
