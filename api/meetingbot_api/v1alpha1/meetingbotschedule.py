"""MeetingBotSchedule: MeetingBots made per occurrence, as a CronJob makes Jobs (docs/schedules.md).

A template of a MeetingBot and one source of occurrences: a cron expression in a time zone; a
recurring Zoom meeting of the account, whose occurrences the operator reads from Zoom (a moved
occurrence moves its bot, a cancelled one cancels it); or the upcoming meetings of a user who
authorized the app (a ZoomUserGrant), filtered by simple rules. One MeetingBot per occurrence,
made `leadSeconds` before it starts, named after the schedule and the occurrence so that no
restart makes two; CronJob's concurrency policies, suspend, a starting deadline, history
limits, and a cap on how many bots one schedule makes a day.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import cast

from pydantic import ConfigDict, Field

from meetingbot_api.v1alpha1.common import (
    CONDITIONS_LIST,
    GROUP,
    KEYS_BOUNDED,
    LABEL_MAP,
    Condition,
    LocalObjectRef,
    Model,
    ObjectMeta,
    SecretKeyRef,
    cel,
)
from meetingbot_api.v1alpha1.meetingbot import MEETING_NUMBER, Meeting, MeetingBotSpec
from meetingbot_contract import DAY_SECONDS

# A schedule's name, a dash and an 8-digit occurrence key (epoch minutes, or 8 hex digits of a
# calendar meeting's key) make its bots' names: within a MeetingBot's 63 characters.
MAX_SCHEDULE_NAME = 54
MAX_LISTED = 10  # next occurrences and last bots listed in the status
MAX_BOTS_PER_DAY = 1000
# Five fields (minute hour day-of-month month day-of-week), numbers, names, ranges, steps and
# lists; the operator parses it (cronsim) and says what is wrong in a condition.
CRON = r"^\s*\S+\s+\S+\s+\S+\s+\S+\s+\S+\s*$"
TIME_ZONE = r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$"


def _template_rules() -> list[tuple[str, str, str]]:
    """A MeetingBot's CEL rules that hold for a template too: not those comparing with the old
    object (a template may change) nor those of joinAt (the schedule sets it)."""
    extra = MeetingBotSpec.model_config.get("json_schema_extra")
    rules = cast(list[dict[str, str]], (extra or {}).get("x-kubernetes-validations", []))  # type: ignore[union-attr]
    return [
        (r["rule"], r["message"], r["fieldPath"])
        for r in rules
        if "oldSelf" not in r["rule"] and "joinAt" not in r["rule"]
    ]


class ConcurrencyPolicy(StrEnum):
    """What happens when an occurrence's time comes while an earlier bot of the schedule has not
    finished (CronJob's policies)."""

    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


class CronSource(Model):
    schedule: str = Field(
        pattern=CRON,
        max_length=256,
        description="Five cron fields: minute hour day-of-month month day-of-week (e.g. "
        "'0 9 * * 1-5'). Across a change of clocks, cron's rules: a time that does not exist "
        "runs when the clocks have changed, a time that happens twice runs once.",
    )
    time_zone: str = Field(
        "UTC",
        alias="timeZone",
        pattern=TIME_ZONE,
        max_length=64,
        description="An IANA time zone (e.g. 'Europe/Berlin') the fields are read in.",
    )


class ZoomMeetingSource(Model):
    number: str = Field(
        pattern=MEETING_NUMBER,
        max_length=12,
        description="A recurring meeting of the template's account: the operator reads its "
        "occurrences from Zoom (`GET /meetings/{id}`), so a moved occurrence moves its bot "
        "and a cancelled one cancels it.",
    )
    passcode_secret_ref: SecretKeyRef | None = Field(
        None,
        alias="passcodeSecretRef",
        description="The meeting's passcode, from a Secret (as a MeetingBot's).",
    )


class CalendarRules(Model):
    """Which of the user's upcoming meetings get a bot; all rules must hold."""

    host_is_user: bool = Field(
        True, alias="hostIsUser", description="Only meetings the user hosts."
    )
    topic: str | None = Field(
        None,
        max_length=256,
        description="A shell-style pattern the topic must match ('*standup*'; case-insensitive).",
    )


class CalendarSource(Model):
    grant_ref: LocalObjectRef = Field(
        alias="grantRef",
        description="A ZoomUserGrant whose user's upcoming meetings (`GET /users/me/meetings`) "
        "are joined; its app needs a meeting-read scope.",
    )
    rules: CalendarRules = Field(
        default_factory=CalendarRules,
        description="Which meetings get a bot.",
        json_schema_extra={"default": {}},
    )


# The operator's own labels and annotations on the bots it makes (meetingbot.dev/schedule, ...).
_NOT_OURS = cel(
    (f"self.all(k, !k.startsWith('{GROUP}/'))", f"keys under {GROUP}/ are the operator's"),
    KEYS_BOUNDED,
)


class TemplateMetadata(Model):
    labels: dict[str, str] | None = Field(
        None,
        max_length=32,
        description="Labels each MeetingBot gets (none under meetingbot.dev/).",
        json_schema_extra={**LABEL_MAP, **_NOT_OURS},
    )
    annotations: dict[str, str] | None = Field(
        None,
        max_length=32,
        description="Annotations each MeetingBot gets (none under meetingbot.dev/).",
        json_schema_extra={
            "additionalProperties": {"type": "string", "maxLength": 4096},
            **_NOT_OURS,
        },
    )


class BotTemplateSpec(MeetingBotSpec):
    """A MeetingBot's spec, without its meeting when the source names the meetings and without
    joinAt (each bot joins at its occurrence's start). Editing it changes the bots made after."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            *_template_rules(),
            ("!has(self.joinAt)", "joinAt is set per occurrence by the schedule", ".joinAt"),
            ("!has(self.cancel) || !self.cancel", "cancel a schedule with suspend", ".cancel"),
        )
    )

    meeting: Meeting | None = Field(  # type: ignore[assignment]
        None,
        description="The meeting (cron schedules only: the other sources name the meetings).",
    )


class BotTemplate(Model):
    metadata: TemplateMetadata = Field(
        default_factory=TemplateMetadata, description="Labels and annotations of each bot."
    )
    spec: BotTemplateSpec = Field(description="Each bot's spec.")


class MeetingBotScheduleSpec(Model):
    """Where occurrences come from, the bot made for each, and CronJob's rules."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "[has(self.cron), has(self.zoomMeeting), has(self.calendar)]"
                ".filter(x, x).size() == 1",
                "exactly one of cron, zoomMeeting or calendar",
            ),
            (
                "!has(self.cron) || has(self.template.spec.meeting)",
                "a cron schedule's template needs spec.meeting",
                ".template.spec.meeting",
            ),
            (
                "has(self.cron) || !has(self.template.spec.meeting)",
                "zoomMeeting and calendar name the meetings: leave the template's meeting out",
                ".template.spec.meeting",
            ),
        )
    )

    cron: CronSource | None = Field(None, description="Occurrences from a cron expression.")
    zoom_meeting: ZoomMeetingSource | None = Field(
        None, alias="zoomMeeting", description="The occurrences of a recurring Zoom meeting."
    )
    calendar: CalendarSource | None = Field(
        None, description="A user's upcoming meetings (someone who authorized the app)."
    )
    template: BotTemplate = Field(description="The MeetingBot made for each occurrence.")
    lead_seconds: int = Field(
        300,
        alias="leadSeconds",
        ge=0,
        le=DAY_SECONDS,
        description="How long before an occurrence starts its bot is made (it joins at the "
        "start: spec.joinAt).",
    )
    concurrency_policy: ConcurrencyPolicy = Field(
        ConcurrencyPolicy.ALLOW,
        alias="concurrencyPolicy",
        description="When an occurrence comes while an earlier bot has not finished: Allow "
        "(both run), Forbid (the new one waits until the earlier finishes, and is skipped "
        "past its starting deadline), Replace (the earlier is canceled at the new start).",
    )
    suspend: bool = Field(
        False, description="Make no more bots (those made go on; cancel them to stop them)."
    )
    starting_deadline_seconds: int = Field(
        600,
        alias="startingDeadlineSeconds",
        ge=0,
        le=DAY_SECONDS,
        description="An occurrence whose bot could not be made within this long after its "
        "start (an outage, Forbid, suspend) is missed, not made late.",
    )
    max_bots_per_day: int = Field(
        48,
        alias="maxBotsPerDay",
        ge=1,
        le=MAX_BOTS_PER_DAY,
        description="At most this many bots made in any 24 hours; past it occurrences are "
        "skipped (reason DailyCapReached).",
    )
    successful_bots_history_limit: int = Field(
        3,
        alias="successfulBotsHistoryLimit",
        ge=0,
        le=100,
        description="Finished bots that Succeeded kept; older ones are deleted.",
    )
    failed_bots_history_limit: int = Field(
        1,
        alias="failedBotsHistoryLimit",
        ge=0,
        le=100,
        description="Finished bots that Failed kept; older ones are deleted.",
    )


class OccurrenceStatus(Model):
    start: datetime = Field(description="When it starts (the bot's joinAt).")
    key: str = Field(max_length=64, description="What identifies it (the bot name's suffix).")
    meeting: str | None = Field(None, max_length=16, description="Its meeting number.")
    topic: str | None = Field(None, max_length=300, description="Its topic, from Zoom.")


class ScheduledBot(Model):
    name: str = Field(max_length=63, description="The MeetingBot.")
    start: datetime = Field(description="Its occurrence's start.")
    phase: str | None = Field(None, max_length=32, description="Its phase when last seen.")


class MissedOccurrence(Model):
    start: datetime = Field(description="The occurrence's start.")
    key: str = Field(max_length=64, description="What identifies it.")
    reason: str = Field(
        max_length=64,
        description="DeadlineExceeded, ConcurrencyForbidden, DailyCapReached or Suspended.",
    )


class MeetingBotScheduleStatus(Model):
    """The next occurrences, the bots made and those that were not. Written by the operator."""

    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready (the source is read and bots are made as it says), Reconciling, "
        "Stalled (a problem the user must fix, e.g. a bad cron expression or time zone); "
        "Reconciling and Stalled only once True (absent before).",
        json_schema_extra=CONDITIONS_LIST,
    )
    observed_generation: int | None = Field(
        None, alias="observedGeneration", description="The generation last acted on."
    )
    next_occurrences: list[OccurrenceStatus] = Field(
        default_factory=list,
        alias="nextOccurrences",
        max_length=MAX_LISTED,
        description=f"The next occurrences (at most {MAX_LISTED}), their bots not made yet.",
    )
    active: list[ScheduledBot] = Field(
        default_factory=list,
        max_length=100,
        description="Bots made and not finished.",
    )
    last_bots: list[ScheduledBot] = Field(
        default_factory=list,
        alias="lastBots",
        max_length=MAX_LISTED,
        description=f"The last bots made (at most {MAX_LISTED}), newest first.",
    )
    last_schedule_time: datetime | None = Field(
        None,
        alias="lastScheduleTime",
        description="The start of the last occurrence a bot was made for.",
    )
    missed: list[MissedOccurrence] = Field(
        default_factory=list,
        max_length=MAX_LISTED,
        description="The last occurrences no bot was made for, and why, newest first.",
    )
    made: list[datetime] = Field(
        default_factory=list,
        max_length=MAX_BOTS_PER_DAY,
        description="When each bot of the last 24 hours was made (the daily cap counts them).",
    )
    last_read_at: datetime | None = Field(
        None, alias="lastReadAt", description="When the source was last read from Zoom."
    )


class MeetingBotSchedule(Model):
    """MeetingBots made per occurrence."""

    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: MeetingBotScheduleSpec
    status: MeetingBotScheduleStatus = Field(default_factory=MeetingBotScheduleStatus)
