"""The MeetingBot a schedule makes for an occurrence (pure): what the API server is sent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from meetingbot_api import API_VERSION, GROUP
from meetingbot_operator.meetingbotschedule.occurrences import Occurrence

SCHEDULE_LABEL = f"{GROUP}/schedule"  # the schedule that made the bot (its pass lists them)
OCCURRENCE_ANNOTATION = f"{GROUP}/occurrence"  # which occurrence (its key)
MADE_AT_ANNOTATION = f"{GROUP}/made-at"  # when (the daily cap counts it)


def bot_body(
    schedule: dict[str, Any], name: str, occurrence: Occurrence, now: datetime
) -> dict[str, Any]:
    """The template as the user wrote it (the schedule's raw JSON: no defaults filled in), the
    occurrence's meeting and start (joinAt), our label and annotations, and the schedule as its
    controller: deleting the schedule deletes its bots."""
    meta = schedule["metadata"]
    template = schedule["spec"]["template"]
    spec = dict(template["spec"])
    if occurrence.meeting is not None:
        meeting: dict[str, Any] = {"number": occurrence.meeting}
        source = schedule["spec"].get("zoomMeeting") or {}
        if source.get("passcodeSecretRef"):
            meeting["passcodeSecretRef"] = source["passcodeSecretRef"]
        spec["meeting"] = meeting
    spec["joinAt"] = iso(occurrence.start)
    extra = template.get("metadata") or {}
    return {
        "apiVersion": API_VERSION,
        "kind": "MeetingBot",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": {**(extra.get("labels") or {}), SCHEDULE_LABEL: meta["name"]},
            "annotations": {
                **(extra.get("annotations") or {}),
                OCCURRENCE_ANNOTATION: occurrence.key,
                MADE_AT_ANNOTATION: iso(now),
            },
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "MeetingBotSchedule",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
