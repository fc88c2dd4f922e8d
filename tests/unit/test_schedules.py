"""MeetingBotSchedule's decisions and sources (pure): cron across clock changes, Zoom's
occurrences moved and cancelled, a calendar's rules, lead time, CronJob's concurrency policies,
suspend, the starting deadline, the daily cap and the history limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from meetingbot_api import CalendarRules, MeetingBotScheduleSpec, MeetingBotScheduleStatus, Phase
from meetingbot_operator.meetingbotschedule import decisions
from meetingbot_operator.meetingbotschedule.decisions import BotView, Plan
from meetingbot_operator.meetingbotschedule.occurrences import (
    Occurrence,
    SourceProblem,
    calendar_occurrences,
    cron_occurrences,
    meeting_occurrences,
    minutes_key,
)

T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
TEMPLATE = {"spec": {"accountRef": {"name": "acme"}, "displayName": "Notetaker"}}


def spec(**fields: Any) -> MeetingBotScheduleSpec:
    template = {"spec": {**TEMPLATE["spec"], "meeting": {"number": "12345678901"}}}
    body = {"cron": {"schedule": "0 9 * * *"}, "template": template, **fields}
    return MeetingBotScheduleSpec.model_validate(body)


def occ(start: datetime, **fields: Any) -> Occurrence:
    return Occurrence(key=minutes_key(start), start=start, **fields)


def bot(start: datetime, phase: Phase | None = None, *, cancel: bool = False) -> BotView:
    key = minutes_key(start)
    return BotView(f"standup-{key}", key, start, start - timedelta(minutes=5), phase, cancel)


def decide(
    s: MeetingBotScheduleSpec,
    now: datetime,
    occurrences: list[Occurrence],
    bots: list[BotView] | None = None,
    status: MeetingBotScheduleStatus | None = None,
) -> Plan:
    return decisions.decide(
        "standup", s, status or MeetingBotScheduleStatus(), now, occurrences, bots or [],
        since=T0 - timedelta(days=30),
    )  # fmt: skip


# --- sources ---------------------------------------------------------------------------------


def test_cron_in_a_time_zone_follows_cron_across_both_changes_of_clocks() -> None:
    """New York springs forward on 2027-03-14 (02:00 -> 03:00) and falls back on 2027-11-07
    (02:00 -> 01:00): 02:30 does not exist that day and runs as the clocks change; 01:30
    happens twice and runs once; the time stays 02:30 / 01:30 local on the days around."""
    spring = cron_occurrences("30 2 * * *", "America/New_York",
                              datetime(2027, 3, 12, tzinfo=UTC), datetime(2027, 3, 16, tzinfo=UTC))  # fmt: skip
    assert [o.start.isoformat() for o in spring] == [
        "2027-03-12T07:30:00+00:00",  # 02:30 EST
        "2027-03-13T07:30:00+00:00",
        "2027-03-14T07:00:00+00:00",  # 03:00 EDT: the moment the clocks changed
        "2027-03-15T06:30:00+00:00",  # 02:30 EDT
    ]
    fall = cron_occurrences("30 1 * * *", "America/New_York",
                            datetime(2027, 11, 6, tzinfo=UTC), datetime(2027, 11, 9, tzinfo=UTC))  # fmt: skip
    assert [o.start.isoformat() for o in fall] == [
        "2027-11-06T05:30:00+00:00",  # 01:30 EDT
        "2027-11-07T05:30:00+00:00",  # 01:30 EDT, once (not again at 01:30 EST)
        "2027-11-08T06:30:00+00:00",  # 01:30 EST
    ]
    assert len({o.key for o in spring + fall}) == 7  # a key per occurrence


@pytest.mark.parametrize(
    ("schedule", "zone", "reason"),
    [("61 9 * * *", "UTC", "InvalidSchedule"), ("0 9 * * *", "Mars/Olympus", "InvalidTimeZone")],
)
def test_a_bad_expression_or_zone_is_named(schedule: str, zone: str, reason: str) -> None:
    with pytest.raises(SourceProblem) as raised:
        cron_occurrences(schedule, zone, T0, T0 + timedelta(days=1))
    assert raised.value.reason == reason


def test_zoom_occurrences_keep_their_key_when_moved_and_say_when_deleted() -> None:
    first, second = datetime(2027, 3, 1, 9, tzinfo=UTC), datetime(2027, 3, 8, 9, tzinfo=UTC)
    meeting = {
        "id": 81234567890,
        "type": 8,
        "topic": "Standup",
        "occurrences": [
            {"occurrence_id": str(int(first.timestamp() * 1000)),
             "start_time": "2027-03-01T10:30:00Z", "duration": 15, "status": "available"},
            {"occurrence_id": str(int(second.timestamp() * 1000)),
             "start_time": "2027-03-08T09:00:00Z", "duration": 15, "status": "deleted"},
        ],
    }  # fmt: skip
    moved, deleted = meeting_occurrences(meeting)
    assert (moved.key, moved.start) == (
        minutes_key(first),
        datetime(2027, 3, 1, 10, 30, tzinfo=UTC),
    )
    assert (moved.meeting, moved.topic, moved.cancelled) == ("81234567890", "Standup", False)
    assert (deleted.key, deleted.cancelled) == (minutes_key(second), True)
    one_time = {"id": 81234567890, "type": 2, "start_time": "2027-03-01T09:00:00Z"}
    assert [o.start for o in meeting_occurrences(one_time)] == [first]
    assert meeting_occurrences({"id": 81234567890, "type": 3}) == []


def test_a_calendars_rules_keep_only_the_meetings_they_name() -> None:
    listed = [
        {"id": 1111111111, "host_id": "dana", "topic": "Weekly Standup",
         "start_time": "2027-03-01T09:00:00Z"},
        {"id": 2222222222, "host_id": "erin", "topic": "Standup (Erin)",
         "start_time": "2027-03-01T10:00:00Z"},
        {"id": 3333333333, "host_id": "dana", "topic": "1:1", "start_time": "2027-03-01T11:00:00Z"},
    ]  # fmt: skip
    mine = calendar_occurrences(listed, "dana", CalendarRules())
    assert [o.meeting for o in mine] == ["1111111111", "3333333333"]
    standups = calendar_occurrences(
        listed, "dana", CalendarRules(host_is_user=False, topic="*STANDUP*")
    )
    assert [o.meeting for o in standups] == ["1111111111", "2222222222"]
    again = calendar_occurrences(listed, "dana", CalendarRules())
    assert [o.key for o in again] == [o.key for o in mine]  # the same key each read


# --- decisions -------------------------------------------------------------------------------


def test_a_bot_is_made_lead_seconds_ahead_named_after_its_occurrence_and_only_once() -> None:
    s = spec(leadSeconds=300)
    start = T0 + timedelta(hours=1)
    early = decide(s, start - timedelta(seconds=301), [occ(start)])
    assert early.make == [] and early.wake_at == start - timedelta(seconds=300)
    assert [o.start for o in early.status.next_occurrences] == [start]
    due = decide(s, start - timedelta(seconds=300), [occ(start)])
    assert [m.name for m in due.make] == [f"standup-{minutes_key(start)}"]
    assert due.status.last_schedule_time == start and len(due.status.made) == 1
    assert due.status.next_occurrences == []
    # The next pass sees the bot: nothing more is made.
    again = decide(s, start - timedelta(seconds=200), [occ(start)], [bot(start)], due.status)
    assert again.make == [] and [b.name for b in again.status.active] == [due.make[0].name]


@pytest.mark.parametrize(
    ("policy", "made", "canceled"),
    [("Allow", 1, 0), ("Forbid", 0, 0), ("Replace", 1, 0)],
)
def test_concurrency_policies_when_the_next_occurrence_comes(
    policy: str, made: int, canceled: int
) -> None:
    s = spec(concurrencyPolicy=policy, leadSeconds=60)
    earlier, later = T0, T0 + timedelta(hours=1)
    running = bot(earlier, Phase.IN_MEETING)
    plan = decide(s, later - timedelta(seconds=30), [occ(earlier), occ(later)], [running])
    assert (len(plan.make), len(plan.cancel)) == (made, canceled)
    if policy == "Forbid":
        # Held back until the earlier finishes, looked at again at its deadline at the latest.
        assert plan.wake_at == later + timedelta(seconds=601)
        done = bot(earlier, Phase.SUCCEEDED)
        assert len(decide(s, later, [occ(earlier), occ(later)], [done]).make) == 1


def test_replace_cancels_the_earlier_bot_at_the_later_start_not_before() -> None:
    s = spec(concurrencyPolicy="Replace", leadSeconds=60)
    earlier, later = T0, T0 + timedelta(hours=1)
    bots = [bot(earlier, Phase.IN_MEETING), bot(later, Phase.SCHEDULED)]
    before = decide(s, later - timedelta(seconds=10), [occ(earlier), occ(later)], bots)
    assert before.cancel == [] and before.wake_at == later
    at = decide(s, later, [occ(earlier), occ(later)], bots)
    assert [(c.name, c.why) for c in at.cancel] == [(bots[0].name, decisions.REPLACED)]


def test_forbid_past_the_deadline_records_the_occurrence_as_missed_and_why() -> None:
    s = spec(concurrencyPolicy="Forbid", startingDeadlineSeconds=600)
    earlier, later = T0, T0 + timedelta(hours=1)
    running = bot(earlier, Phase.IN_MEETING)
    plan = decide(s, later + timedelta(seconds=601), [occ(earlier), occ(later)], [running])
    assert plan.make == []
    assert [(m.key, m.reason) for m in plan.status.missed] == [
        (minutes_key(later), decisions.CONCURRENCY_FORBIDDEN)
    ]
    again = decide(s, later + timedelta(seconds=700), [occ(earlier), occ(later)], [running],
                   plan.status)  # fmt: skip
    assert again.status.missed == plan.status.missed  # recorded once


def test_after_an_outage_a_late_occurrence_is_made_within_its_deadline_and_missed_past_it() -> None:
    s = spec(startingDeadlineSeconds=600)
    long_ago, recently = T0, T0 + timedelta(minutes=50)
    now = T0 + timedelta(minutes=55)
    plan = decide(s, now, [occ(long_ago), occ(recently)])
    assert [m.occurrence.start for m in plan.make] == [recently]  # 5 minutes late: made
    assert [(m.start, m.reason) for m in plan.status.missed] == [
        (long_ago, decisions.DEADLINE_EXCEEDED)
    ]


def test_suspend_makes_nothing_and_the_daily_cap_holds() -> None:
    start = T0 + timedelta(minutes=1)
    suspended = decide(spec(suspend=True), start, [occ(start)])
    assert suspended.make == []
    missed = decide(spec(suspend=True), start + timedelta(seconds=601), [occ(start)])
    assert [m.reason for m in missed.status.missed] == [decisions.SUSPENDED]
    # Every minute, a cap of 3: three made, the fourth waits for the window to move.
    s = spec(maxBotsPerDay=3, leadSeconds=0)
    starts = [T0 + timedelta(minutes=i) for i in range(4)]
    plan = decide(s, starts[-1], [occ(t) for t in starts])
    assert len(plan.make) == 3
    made_before = [T0 - timedelta(hours=23)] * 3  # three bots made 23 h ago, since deleted
    status = MeetingBotScheduleStatus(made=made_before)
    capped = decide(s, starts[0], [occ(starts[0])], status=status)
    assert capped.make == [] and capped.wake_at is not None
    assert capped.wake_at <= made_before[0] + timedelta(days=1)


def test_zoom_moving_or_cancelling_an_occurrence_moves_or_cancels_its_bot() -> None:
    s = MeetingBotScheduleSpec.model_validate(
        {"zoomMeeting": {"number": "81234567890"}, "template": TEMPLATE}
    )
    original = T0 + timedelta(days=1)
    moved_to = original + timedelta(hours=2)
    waiting = bot(original, Phase.SCHEDULED)
    moved = decide(s, T0, [Occurrence(waiting.key, moved_to, "81234567890")], [waiting])
    assert [(m.name, m.start) for m in moved.move] == [(waiting.name, moved_to)]
    deleted = Occurrence(waiting.key, original, "81234567890", cancelled=True)
    cancelled = decide(s, T0, [deleted], [waiting])
    assert [(c.name, c.why) for c in cancelled.cancel] == [
        (waiting.name, decisions.OCCURRENCE_CANCELLED)
    ]
    gone = decide(s, T0, [], [waiting])  # no longer listed at all
    assert [c.name for c in gone.cancel] == [waiting.name]
    # A bot already in its meeting is neither moved nor canceled.
    started = bot(original, Phase.IN_MEETING)
    late = original + timedelta(minutes=1)
    assert decide(s, late, [Occurrence(started.key, moved_to, "81234567890")], [started]).move == []
    assert decide(s, late, [], [started]).cancel == []


def test_history_limits_delete_the_oldest_finished_bots_once_their_deadline_passed() -> None:
    s = spec(successfulBotsHistoryLimit=2, failedBotsHistoryLimit=0)
    days = [T0 - timedelta(days=d) for d in range(4)]
    bots = [bot(d, Phase.SUCCEEDED) for d in days] + [bot(T0 - timedelta(hours=5), Phase.FAILED)]
    plan = decide(s, T0 + timedelta(minutes=5), [occ(d) for d in days], bots)
    deleted = {d.name for d in plan.delete}
    assert deleted == {bots[2].name, bots[3].name, bots[4].name}
    # The newest succeeded one is within its deadline: kept even with a limit of 0.
    none_kept = spec(successfulBotsHistoryLimit=0)
    plan = decide(none_kept, T0 + timedelta(minutes=5), [occ(T0)], [bot(T0, Phase.SUCCEEDED)])
    assert plan.delete == [] and plan.make == []


def test_an_occurrence_whose_bot_was_made_and_deleted_is_not_reported_missed() -> None:
    s = spec()
    status = MeetingBotScheduleStatus(last_schedule_time=T0)
    plan = decide(s, T0 + timedelta(hours=2), [occ(T0)], [], status)
    assert plan.make == [] and plan.status.missed == []
