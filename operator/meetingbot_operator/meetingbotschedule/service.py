"""MeetingBotSchedules: one loop per schedule runs decision passes (decisions.py) when the
schedule changes, when one of its bots changes, when something is due, and every
schedule_poll_seconds for the Zoom sources; each pass reads the source and the schedule's bots,
decides, carries the plan out and writes the status (docs/schedules.md).

The bots are read from the API server in each pass (by their schedule label), not from a cache:
a schedule's pass is rare (minutes apart) and must see every bot it made, also right after a
restart. Zoom is read at most once per poll interval per schedule, through the account's
rate-limited client (the calendar with the user's own token).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from meetingbot_api import (
    MeetingBotSchedule,
    MeetingBotScheduleStatus,
    Phase,
    first_error,
)
from meetingbot_api.v1alpha1.meetingbotschedule import MAX_LISTED
from meetingbot_operator import metrics
from meetingbot_operator.conditions import Progress, progress, set_condition
from meetingbot_operator.kube.client import ApiError
from meetingbot_operator.kube.verbs import Kube, NameTaken
from meetingbot_operator.meetingbotschedule import decisions
from meetingbot_operator.meetingbotschedule.children import (
    MADE_AT_ANNOTATION,
    OCCURRENCE_ANNOTATION,
    SCHEDULE_LABEL,
    bot_body,
    iso,
)
from meetingbot_operator.meetingbotschedule.decisions import BotView, Plan
from meetingbot_operator.meetingbotschedule.notices import Reader
from meetingbot_operator.meetingbotschedule.occurrences import (
    HORIZON,
    Occurrence,
    SourceProblem,
    calendar_occurrences,
    cron_occurrences,
    meeting_occurrences,
    parse_time,
)
from meetingbot_operator.settings import Settings
from meetingbot_operator.zoom import ZoomError
from meetingbot_operator.zoomaccount.service import AccountService
from meetingbot_operator.zoomusergrant.service import GrantService
from meetingbot_operator.zoomusergrant.state import GrantProblem

log = logging.getLogger(__name__)
Key = tuple[str, str]
PLURAL = "meetingbotschedules"
DEBOUNCE = 1.0  # a burst of bot events makes one pass
RETRY_BASE, RETRY_MAX = 5.0, 300.0  # a pass that failed (Zoom, the API server) is tried again
PAST = timedelta(days=1)  # how far back occurrences are looked at (late bots, missed ones)
MAX_PAST = 1500  # a cron of every minute has 1440 a day
NOTICE_REREAD = timedelta(seconds=2)  # webhooks read Zoom again at most this often


class ScheduleProblem(Exception):
    """Why a pass cannot go on: Stalled (the user must change something) or not."""

    def __init__(self, reason: str, message: str, *, stalled: bool) -> None:
        super().__init__(message)
        self.reason, self.message, self.stalled = reason, message, stalled


@dataclass
class Entry:
    body: dict[str, Any]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    # The Zoom source's last reading: (when, for which source, what it said).
    read: tuple[datetime, str, list[Occurrence]] | None = None
    # A meeting webhook came: Zoom is read again at this time (at once, or NOTICE_REREAD after
    # the last read, so that a burst or a replay of webhooks costs one read).
    read_again_at: datetime | None = None
    failures: int = 0


class ScheduleService:
    def __init__(
        self, kube: Kube, accounts: AccountService, grants: GrantService, settings: Settings
    ) -> None:
        self.kube = kube
        self.accounts = accounts
        self.grants = grants
        self.settings = settings
        self.entries: dict[Key, Entry] = {}

    # --- what the watches say --------------------------------------------------------------

    def observe(self, event_type: str, body: dict[str, Any]) -> None:
        meta = body.get("metadata", {})
        key = (meta.get("namespace", ""), meta.get("name", ""))
        entry = self.entries.get(key)
        if event_type == "DELETED":
            if entry is not None and entry.task is not None:
                entry.task.cancel()
            self.entries.pop(key, None)
            return
        if entry is None or entry.body.get("metadata", {}).get("uid") != meta.get("uid"):
            if entry is not None and entry.task is not None:
                entry.task.cancel()
            entry = self.entries[key] = Entry(body)
            entry.task = asyncio.create_task(self._run(key, entry), name=f"schedule {key}")
            return
        changed = entry.body.get("metadata", {}).get("generation") != meta.get("generation")
        entry.body = body
        if changed:
            entry.read = None  # the source may have changed: read it again
            entry.wake.set()

    def bot_changed(self, body: dict[str, Any]) -> None:
        """A MeetingBot event: the pass of the schedule that made it looks again."""
        meta = body.get("metadata", {})
        schedule = (meta.get("labels") or {}).get(SCHEDULE_LABEL)
        entry = self.entries.get((meta.get("namespace", ""), schedule or ""))
        if schedule and entry is not None:
            entry.wake.set()

    def readers(self) -> dict[Key, Reader]:
        """The schedules that read Zoom, and with what (for the meeting webhooks)."""
        found = {}
        for key, entry in self.entries.items():
            spec = entry.body.get("spec") or {}
            account = ((spec.get("template") or {}).get("spec") or {}).get("accountRef") or {}
            if spec.get("zoomMeeting"):
                number = str(spec["zoomMeeting"].get("number", ""))
                found[key] = Reader(key[0], account.get("name"), None, number)
            elif spec.get("calendar"):
                grant = (spec["calendar"].get("grantRef") or {}).get("name")
                found[key] = Reader(key[0], None, grant, None)
        return found

    def read_again(self, key: Key) -> bool:
        """A meeting webhook: the schedule reads Zoom again now, unless it read it within
        NOTICE_REREAD (a replayed or repeated webhook costs no more than that)."""
        entry = self.entries.get(key)
        if entry is None:
            return False
        at = datetime.now(UTC)
        if entry.read is not None:
            at = max(at, entry.read[0] + NOTICE_REREAD)
        if entry.read_again_at is not None and entry.read_again_at <= at:
            return False  # a read is due already: this webhook is told by it
        entry.read_again_at = at
        entry.wake.set()
        return True

    async def close(self) -> None:
        tasks = [e.task for e in self.entries.values() if e.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.entries.clear()

    # --- the loop ----------------------------------------------------------------------------

    async def _run(self, key: Key, entry: Entry) -> None:
        while True:
            entry.wake.clear()  # what comes during the pass makes another one
            try:
                wake_at = await self._pass(key, entry)
            except asyncio.CancelledError:
                raise
            except Exception:
                entry.failures += 1
                log.exception("schedule pass failed; trying again", extra={"schedule": key})
                wake_at = datetime.now(UTC) + timedelta(seconds=self._backoff(entry))
            timeout = None
            if wake_at is not None:
                timeout = max((wake_at - datetime.now(UTC)).total_seconds(), 0.05)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entry.wake.wait(), timeout)
            await asyncio.sleep(DEBOUNCE)

    def _backoff(self, entry: Entry) -> float:
        ceiling = min(RETRY_MAX, RETRY_BASE * 2 ** min(entry.failures - 1, 10))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret

    async def _pass(self, key: Key, entry: Entry) -> datetime | None:
        """Observe, decide, act; the next time a pass is due."""
        now = datetime.now(UTC).replace(microsecond=0)
        body = entry.body
        generation = body.get("metadata", {}).get("generation")
        try:
            schedule = MeetingBotSchedule.model_validate(body)
        except ValidationError as error:
            await self._write(key, body, _problem(
                MeetingBotScheduleStatus.model_validate(body.get("status") or {}),
                ScheduleProblem("SpecInvalid", first_error(error), stalled=True), generation, now,
            ))  # fmt: skip
            return None
        created = schedule.metadata.creation_timestamp or now
        since = max(created - timedelta(seconds=1), now - PAST)
        try:
            occurrences, read_again = await self._occurrences(schedule, entry, now, since)
            bots, uids = await self._bots(schedule)
        except ScheduleProblem as problem:
            await self._write(key, body, _problem(schedule.status, problem, generation, now))
            if problem.stalled and schedule.spec.cron is not None:
                return None  # only a change of the spec can help
            if problem.stalled:
                # A scope added in Zoom's Marketplace, a meeting created: seen at the next poll.
                entry.read = None
                return now + timedelta(seconds=self.settings.schedule_poll_seconds)
            entry.failures += 1
            return now + timedelta(seconds=self._backoff(entry))
        plan = decisions.decide(
            schedule.metadata.name, schedule.spec, schedule.status, now, occurrences, bots,
            since=since,
        )  # fmt: skip
        refused = await self._act(schedule, plan, uids, now)
        status = plan.status.model_copy(update={"observed_generation": generation})
        if refused:
            # The bots the API server refused are not made: this pass's status must not say so.
            for _ in refused:
                status.made.remove(now)  # decide counted each bot it named as made now
            status.active = [b for b in status.active if b.name not in refused]
            status.last_bots = [b for b in status.last_bots if b.name not in refused]
        if schedule.spec.cron is None and entry.read is not None:
            status.last_read_at = entry.read[0]
        status.conditions = _ready(status, schedule, refused, generation, now)
        await self._write(key, body, status)
        wakes = [w for w in (plan.wake_at, read_again) if w is not None]
        if refused:
            entry.failures += 1
            wakes.append(now + timedelta(seconds=self._backoff(entry)))
        else:
            entry.failures = 0
        return min(wakes, default=None)

    # --- observe -----------------------------------------------------------------------------

    async def _occurrences(
        self, schedule: MeetingBotSchedule, entry: Entry, now: datetime, since: datetime
    ) -> tuple[list[Occurrence], datetime | None]:
        """The source's occurrences, and when the Zoom source is to be read again."""
        spec = schedule.spec
        if spec.cron is not None:
            try:
                past = cron_occurrences(spec.cron.schedule, spec.cron.time_zone, since, now,
                                        MAX_PAST)  # fmt: skip
                ahead = max(spec.lead_seconds, 0)
                future = cron_occurrences(
                    spec.cron.schedule, spec.cron.time_zone, now, now + HORIZON,
                    spec.max_bots_per_day + MAX_LISTED if ahead else MAX_LISTED,
                )  # fmt: skip
            except SourceProblem as problem:
                raise ScheduleProblem(problem.reason, str(problem), stalled=True) from None
            return past + future, None
        source = _source_id(schedule)
        poll = timedelta(seconds=self.settings.schedule_poll_seconds)
        due = entry.read_again_at
        fresh = entry.read is not None and entry.read[1] == source and entry.read[0] + poll > now
        if entry.read is not None and fresh and (due is None or due > now):
            next_read = entry.read[0] + poll
            return entry.read[2], min(next_read, due) if due else next_read
        if due is not None and due <= now:
            entry.read_again_at = None
        occurrences = await self._read_zoom(schedule)
        entry.read = (now, source, occurrences)
        return occurrences, now + poll

    async def _read_zoom(self, schedule: MeetingBotSchedule) -> list[Occurrence]:
        namespace, spec = schedule.metadata.namespace, schedule.spec
        try:
            if spec.zoom_meeting is not None:
                account = spec.template.spec.account_ref.name
                client = self.accounts.client(namespace, account)
                if client is None:
                    raise ScheduleProblem(
                        "ZoomAccountNotReady", f"ZoomAccount {account} is not ready", stalled=False
                    )
                return meeting_occurrences(await client.get_meeting(spec.zoom_meeting.number))
            assert spec.calendar is not None
            grant = spec.calendar.grant_ref.name
            labels = spec.template.metadata.labels or {}
            if self.grants.state(namespace, grant) is None:
                raise ScheduleProblem(
                    "ZoomUserGrantNotFound", f"no ZoomUserGrant {grant}", stalled=False
                )
            labels = {**labels, SCHEDULE_LABEL: schedule.metadata.name}  # what its bots carry
            if not self.grants.allows(namespace, grant, labels):
                raise ScheduleProblem(
                    "ZoomUserGrantNotForThisSchedule",
                    f"ZoomUserGrant {grant}'s botSelector does not select the template's labels",
                    stalled=True,
                )
            user_id, meetings = await self.grants.upcoming_meetings(namespace, grant)
            return calendar_occurrences(meetings, user_id, spec.calendar.rules)
        except ZoomError as error:
            stalled = error.status == 404 or error.reason == "ZoomScopeMissing"
            what = "the meeting" if spec.zoom_meeting else "the user's meetings"
            raise ScheduleProblem(
                "MeetingNotFound" if error.status == 404 and spec.zoom_meeting else error.reason,
                f"reading {what} from Zoom: {error}",
                stalled=stalled,
            ) from None
        except GrantProblem as problem:
            raise ScheduleProblem(problem.reason, problem.message, stalled=False) from None

    async def _bots(self, schedule: MeetingBotSchedule) -> tuple[list[BotView], dict[str, str]]:
        """The schedule's MeetingBots (those it controls), and their uids by name."""
        meta = schedule.metadata
        try:
            items = await self.kube.list_custom(
                "meetingbots", meta.namespace, f"{SCHEDULE_LABEL}={meta.name}"
            )
        except ApiError as error:
            raise ScheduleProblem("ApiError", f"listing its MeetingBots: {error.message}",
                                  stalled=False) from None  # fmt: skip
        views, uids = [], {}
        for item in items:
            owners = item["metadata"].get("ownerReferences") or []
            if not any(o.get("uid") == meta.uid and o.get("controller") for o in owners):
                continue  # labelled by hand, not made by this schedule
            view = _view(item)
            if view is not None:
                views.append(view)
                uids[view.name] = item["metadata"]["uid"]
        return views, uids

    # --- act ---------------------------------------------------------------------------------

    async def _act(
        self, schedule: MeetingBotSchedule, plan: Plan, uids: dict[str, str], now: datetime
    ) -> dict[str, str]:
        """Carry the plan out; the bots that could not be made, and why (a name taken by a
        MeetingBot that is not the schedule's, a quota, a policy)."""
        namespace = schedule.metadata.namespace
        refused: dict[str, str] = {}
        for make in plan.make:
            entry = self.entries[(namespace, schedule.metadata.name)]
            body = bot_body(entry.body, make.name, make.occurrence, now)
            try:
                if await self.kube.create_custom("meetingbots", body):
                    metrics.SCHEDULED_BOTS.labels("made").inc()
                    log.info("made a bot", extra={"schedule": (namespace, schedule.metadata.name),
                                                  "bot": make.name})  # fmt: skip
            except NameTaken as taken:
                refused[make.name] = str(taken)
            except ApiError as error:
                if error.status not in (403, 422):
                    raise
                refused[make.name] = f"the API server refused it: {error.message}"
        metrics.SCHEDULED_BOTS.labels("refused").inc(len(refused))
        known = {m.key for m in schedule.status.missed}
        for missed in plan.status.missed:
            if missed.key not in known:
                metrics.SCHEDULED_BOTS.labels(f"missed:{missed.reason}").inc()
        for cancel in plan.cancel:
            patch: dict[str, Any] = {"spec": {"cancel": True}}
            await self.kube.patch_custom("meetingbots", namespace, cancel.name, uids[cancel.name],
                                         patch)  # fmt: skip
            metrics.SCHEDULED_BOTS.labels("canceled").inc()
            log.info("canceled a bot", extra={"bot": cancel.name, "reason": cancel.why})
        for move in plan.move:
            patch = {"spec": {"joinAt": iso(move.start)}}  # the bot has not started
            await self.kube.patch_custom("meetingbots", namespace, move.name, uids[move.name],
                                         patch)  # fmt: skip
            metrics.SCHEDULED_BOTS.labels("moved").inc()
            log.info("moved a bot", extra={"bot": move.name, "joinAt": iso(move.start)})
        for delete in plan.delete:
            await self.kube.delete_custom_of("meetingbots", namespace, delete.name,
                                             uids[delete.name])  # fmt: skip
        return refused

    async def _write(
        self, key: Key, body: dict[str, Any], status: MeetingBotScheduleStatus
    ) -> None:
        new = status.model_dump(by_alias=True, mode="json", exclude_none=True)
        if new == (body.get("status") or {}):
            return
        written = await self.kube.patch_status(PLURAL, key[0], key[1], new)
        entry = self.entries.get(key)
        if written is not None and entry is not None and entry.body is body:
            # What the next pass starts from, before the watch brings it back.
            entry.body = {**body, "status": written.get("status") or new}


def _view(item: dict[str, Any]) -> BotView | None:
    meta, spec = item["metadata"], item.get("spec") or {}
    key = (meta.get("annotations") or {}).get(OCCURRENCE_ANNOTATION)
    start = parse_time(spec.get("joinAt"))
    if not key or start is None:
        return None
    try:
        phase: Phase | None = Phase(str((item.get("status") or {}).get("phase")))
    except ValueError:
        phase = None
    return BotView(
        name=meta["name"],
        key=key,
        start=start,
        made_at=parse_time((meta.get("annotations") or {}).get(MADE_AT_ANNOTATION)),
        phase=phase,
        cancel=bool(spec.get("cancel")),
    )


def _ready(
    status: MeetingBotScheduleStatus,
    schedule: MeetingBotSchedule,
    refused: dict[str, str],
    generation: int | None,
    now: datetime,
) -> list[Any]:
    if refused:
        message = "; ".join(f"{name}: {why}" for name, why in sorted(refused.items()))
        reason, ready, where = "BotRefused", False, Progress.RECONCILING
    elif schedule.spec.suspend:
        reason, ready, where = "Suspended", True, Progress.CURRENT
        message = "suspended: no bots are made"
    else:
        upcoming = status.next_occurrences
        message = "no occurrence ahead"
        if upcoming:
            message = f"next occurrence at {iso(upcoming[0].start)}"
        reason, ready, where = "Scheduled", True, Progress.CURRENT
    conditions = set_condition(status.conditions, "Ready", ready, reason, message,
                               generation=generation, now=now)  # fmt: skip
    return progress(conditions, where, reason, message, generation=generation, now=now)


def _problem(
    status: MeetingBotScheduleStatus,
    problem: ScheduleProblem,
    generation: int | None,
    now: datetime,
) -> MeetingBotScheduleStatus:
    conditions = set_condition(status.conditions, "Ready", False, problem.reason, problem.message,
                               generation=generation, now=now)  # fmt: skip
    where = Progress.STALLED if problem.stalled else Progress.RECONCILING
    conditions = progress(conditions, where, problem.reason, problem.message,
                          generation=generation, now=now)  # fmt: skip
    return status.model_copy(update={"conditions": conditions, "observed_generation": generation})


def _source_id(schedule: MeetingBotSchedule) -> str:
    spec = schedule.spec
    if spec.zoom_meeting is not None:
        return f"meeting:{spec.zoom_meeting.number}:{spec.template.spec.account_ref.name}"
    assert spec.calendar is not None
    return f"calendar:{spec.calendar.grant_ref.name}:{spec.calendar.rules.model_dump_json()}"
