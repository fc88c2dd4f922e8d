"""One decision pass for a MeetingBotSchedule (pure): from the spec, the time, the source's
occurrences and the schedule's bots, every action to take and the status to write.

The executor (service.py) only carries the actions out; the bots it makes are the next pass's
observation. Nothing here remembers: a restart decides the same from the same objects, and a
bot's name is the schedule's and its occurrence's, so a pass repeated after a crash makes no
second bot (the API server refuses the name).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from meetingbot_api import (
    ConcurrencyPolicy,
    MeetingBotScheduleSpec,
    MeetingBotScheduleStatus,
    MissedOccurrence,
    OccurrenceStatus,
    Phase,
    ScheduledBot,
)
from meetingbot_api.v1alpha1.meetingbotschedule import MAX_LISTED
from meetingbot_operator.meetingbotschedule.occurrences import Occurrence

DAY = timedelta(days=1)
MAX_ACTIVE_LISTED = 100
# Why an occurrence got no bot (status.missed[].reason).
DEADLINE_EXCEEDED = "DeadlineExceeded"  # the operator was not running in time
CONCURRENCY_FORBIDDEN = "ConcurrencyForbidden"  # Forbid, and an earlier bot did not finish
DAILY_CAP_REACHED = "DailyCapReached"
SUSPENDED = "Suspended"
# Why a bot was canceled.
REPLACED = "Replaced"
OCCURRENCE_CANCELLED = "OccurrenceCancelled"
# A bot that has not started: its joinAt can still move.
NOT_STARTED = frozenset({None, Phase.PENDING, Phase.SCHEDULED})


@dataclass(frozen=True)
class BotView:
    """What a pass reads of one of the schedule's MeetingBots."""

    name: str
    key: str  # its occurrence (annotation meetingbot.dev/occurrence)
    start: datetime  # its spec.joinAt
    made_at: datetime | None  # annotation meetingbot.dev/made-at
    phase: Phase | None
    cancel: bool

    @property
    def finished(self) -> bool:
        return self.phase in (Phase.SUCCEEDED, Phase.FAILED)


@dataclass(frozen=True)
class Make:
    name: str
    occurrence: Occurrence


@dataclass(frozen=True)
class Cancel:
    name: str
    why: str


@dataclass(frozen=True)
class Move:
    name: str
    start: datetime


@dataclass(frozen=True)
class Delete:
    name: str


@dataclass
class Plan:
    make: list[Make] = field(default_factory=list)
    cancel: list[Cancel] = field(default_factory=list)
    move: list[Move] = field(default_factory=list)
    delete: list[Delete] = field(default_factory=list)
    status: MeetingBotScheduleStatus = field(default_factory=MeetingBotScheduleStatus)
    wake_at: datetime | None = None  # the next time something is due (None: only on a change)


def bot_name(schedule: str, key: str) -> str:
    return f"{schedule}-{key}"


def decide(
    name: str,
    spec: MeetingBotScheduleSpec,
    status: MeetingBotScheduleStatus,
    now: datetime,
    occurrences: list[Occurrence],
    bots: list[BotView],
    *,
    since: datetime,
) -> Plan:
    """`occurrences`: the source's, from `since` (the schedule's creation, or a day ago) on.
    `bots`: every MeetingBot the schedule made that still exists."""
    plan = Plan()
    lead = timedelta(seconds=spec.lead_seconds)
    deadline = timedelta(seconds=spec.starting_deadline_seconds)
    by_key = {bot.key: bot for bot in bots}
    listed = {o.key: o for o in occurrences}
    wakes: list[datetime] = []
    # Bots made in the last day: as the status recorded them, and as the bots still there say
    # (the most of either for each second: a crash between making and writing loses none).
    recorded, seen = Counter(status.made), Counter(b.made_at for b in bots if b.made_at)
    made = [at for at in sorted((recorded | seen).elements()) if at > now - DAY]
    missed = list(status.missed)
    missed_keys = {m.key for m in missed}
    active = [b for b in bots if not b.finished]
    last_made = status.last_schedule_time

    # Occurrences Zoom cancelled or moved, whose bots are made and have not started.
    for bot in bots:
        if bot.finished or bot.cancel:
            continue
        occurrence = listed.get(bot.key)
        if spec.cron is None and bot.start > now and (occurrence is None or occurrence.cancelled):
            plan.cancel.append(Cancel(bot.name, OCCURRENCE_CANCELLED))
        elif occurrence and occurrence.start != bot.start and bot.phase in NOT_STARTED:
            plan.move.append(Move(bot.name, occurrence.start))

    # Bots for the occurrences that are due.
    cancelled = {c.name for c in plan.cancel}
    for occurrence in sorted(occurrences, key=lambda o: o.start):
        if occurrence.cancelled or occurrence.key in by_key or occurrence.key in missed_keys:
            continue
        if occurrence.start <= since:
            continue
        opens, closes = occurrence.start - lead, occurrence.start + deadline
        if now < opens:
            wakes.append(opens)
            continue
        held = _held_back(spec, occurrence, made, active, cancelled)
        if now > closes:
            if last_made is not None and occurrence.start <= last_made:
                continue  # its bot was made (and since deleted), or it was recorded before
            # Past its deadline: recorded once, with what held it back.
            missed.insert(0, MissedOccurrence(start=occurrence.start, key=occurrence.key,
                                              reason=held or DEADLINE_EXCEEDED))  # fmt: skip
            missed_keys.add(occurrence.key)
        elif held is None:
            plan.make.append(Make(bot_name(name, occurrence.key), occurrence))
            made.append(now)
            active.append(_made_view(name, occurrence, now))
        else:
            # Held back for now: looked at again on a change of its bots, and at its deadline.
            wakes.append(closes + timedelta(seconds=1))
            if held == DAILY_CAP_REACHED and made:
                wakes.append(made[0] + DAY)

    # Replace: an earlier bot still running when a later one's start comes is canceled.
    if spec.concurrency_policy == ConcurrencyPolicy.REPLACE:
        latest = max((b.start for b in active if b.start <= now), default=None)
        for bot in bots:
            if latest is None or bot.finished or bot.cancel or bot.name in cancelled:
                continue
            if bot.start < latest:
                plan.cancel.append(Cancel(bot.name, REPLACED))
                cancelled.add(bot.name)
        wakes += [b.start for b in active if b.start > now]

    # History: the oldest finished bots past the limits, never one whose occurrence could
    # still be made (its bot gone, the next pass would make it again).
    plan.delete = _past_history(spec, bots, now, deadline)

    all_bots = [*bots, *(_made_view(name, m.occurrence, now) for m in plan.make)]
    moved = {m.name: m.start for m in plan.move}
    shown = sorted(all_bots, key=lambda b: moved.get(b.name, b.start), reverse=True)
    phase_of = {b.name: b.phase for b in all_bots}
    upcoming = [
        OccurrenceStatus(start=o.start, key=o.key, meeting=o.meeting, topic=_short(o.topic))
        for o in sorted(occurrences, key=lambda o: o.start)
        if o.start > now and not o.cancelled and o.key not in by_key
        and o.key not in {m.occurrence.key for m in plan.make}
    ][:MAX_LISTED]  # fmt: skip
    made_starts = [b.start for b in all_bots]
    plan.status = status.model_copy(
        update={
            "next_occurrences": upcoming,
            "active": [
                ScheduledBot(name=b.name, start=moved.get(b.name, b.start), phase=phase_of[b.name])
                for b in shown
                if not b.finished
            ][:MAX_ACTIVE_LISTED],
            "last_bots": [
                ScheduledBot(name=b.name, start=moved.get(b.name, b.start), phase=phase_of[b.name])
                for b in shown[:MAX_LISTED]
            ],
            "last_schedule_time": max(made_starts, default=status.last_schedule_time),
            "missed": missed[:MAX_LISTED],
            "made": made,
        }
    )
    plan.wake_at = min(wakes, default=None)
    return plan


def _made_view(schedule: str, occurrence: Occurrence, now: datetime) -> BotView:
    return BotView(bot_name(schedule, occurrence.key), occurrence.key, occurrence.start, now,
                   None, False)  # fmt: skip


def _held_back(
    spec: MeetingBotScheduleSpec,
    occurrence: Occurrence,
    made: list[datetime],
    active: list[BotView],
    cancelled: set[str],
) -> str | None:
    """What keeps an occurrence's bot from being made now, if anything."""
    if spec.suspend:
        return SUSPENDED
    if len(made) >= spec.max_bots_per_day:
        return DAILY_CAP_REACHED
    if spec.concurrency_policy == ConcurrencyPolicy.FORBID and any(
        b.start < occurrence.start and b.name not in cancelled for b in active
    ):
        return CONCURRENCY_FORBIDDEN
    return None


def _past_history(
    spec: MeetingBotScheduleSpec, bots: list[BotView], now: datetime, deadline: timedelta
) -> list[Delete]:
    deletes = []
    for phase, keep in (
        (Phase.SUCCEEDED, spec.successful_bots_history_limit),
        (Phase.FAILED, spec.failed_bots_history_limit),
    ):
        done = sorted((b for b in bots if b.phase == phase), key=lambda b: b.start, reverse=True)
        deletes += [Delete(b.name) for b in done[keep:] if b.start + deadline < now]
    return deletes


def _short(topic: str | None) -> str | None:
    return topic[:300] if topic else None
