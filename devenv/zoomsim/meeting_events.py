"""Zoom's meeting webhooks: meeting.created, meeting.updated and meeting.deleted, posted to
the apps subscribed to them (their `meeting_events_url`), signed as Zoom signs every webhook.

Who is told, as Zoom tells it: the meeting's own account's app (an account-level app sees
the account's meetings), and each user-managed app the host authorized (it sees its users'
meetings). The payload follows Zoom's event reference: `payload.object` is the meeting (its
id, host, topic, type, start and occurrences); meeting.updated has `old_object` too, with the
fields as they were, and an occurrence's change names it (`object.occurrences`).
"""

from __future__ import annotations

import json
import time
from typing import Any

from devenv.zoomsim.rtms import post_signed
from devenv.zoomsim.state import Account, Meeting, World
from devenv.zoomsim.webhook_sender import SENDER

TIMEOUT = 3.0  # Zoom's: an answer after 3 s counts as failed


def notify(
    world: World,
    meeting: Meeting,
    event: str,
    obj: dict[str, Any],
    old: dict[str, Any] | None = None,
) -> None:
    """Post the event to every app subscribed to it, in the background (as Zoom does: the
    change is made whether or not an endpoint answers)."""
    body: dict[str, Any] = {
        "event": event,
        "event_ts": int(time.time() * 1000),
        "payload": {"account_id": meeting.account_id, "operator": "host@sim", "object": obj},
    }
    if old is not None:
        body["payload"]["old_object"] = old
        body["payload"]["time_stamp"] = body["event_ts"]
    for app in _subscribers(world, meeting):
        SENDER.send(_post(world, app, meeting, event, body))


def meeting_object(meeting: Meeting, host_id: str) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": int(meeting.number),
        "host_id": host_id,
        "topic": meeting.topic,
        "type": 8 if meeting.occurrences else 2,
        "start_time": meeting.start_time,
        "duration": meeting.duration,
        "timezone": "UTC",
    }
    if meeting.occurrences:
        obj["occurrences"] = [dict(o) for o in meeting.occurrences]
    return obj


def _subscribers(world: World, meeting: Meeting) -> list[Account]:
    apps = {meeting.account_id: world.accounts[meeting.account_id]}
    if meeting.host_id:
        apps.update((app.id, app) for app in world.authorized_apps(meeting.host_id))
    return [app for app in apps.values() if app.meeting_events_url]


async def _post(
    world: World, app: Account, meeting: Meeting, event: str, body: dict[str, Any]
) -> None:
    sent = await post_signed(app.meeting_events_url, app.webhook_secret_token, json.dumps(body),
                             TIMEOUT)  # fmt: skip
    world.meeting_deliveries.append(
        {"event": event, "meeting": meeting.number, "app": app.id, **sent}
    )


# --- the host's changes (Zoom's REST API and the admin API both make them) -------------------


def host_of(world: World, meeting: Meeting) -> str:
    return meeting.host_id or next(iter(world.accounts[meeting.account_id].users), "")


def reschedule(world: World, meeting: Meeting, fields: dict[str, Any]) -> None:
    """`PATCH /meetings/{id}` of a scheduled meeting's topic, start or duration."""
    old = {"id": int(meeting.number), **{k: getattr(meeting, k) for k in fields}}
    for key, value in fields.items():
        setattr(meeting, key, value)
    if fields and meeting.start_time:
        notify(world, meeting, "meeting.updated", {"id": int(meeting.number), **fields}, old)


def move_occurrence(world: World, meeting: Meeting, occurrence: dict[str, Any], start: str) -> None:
    """`PATCH /meetings/{id}?occurrence_id=` with a start_time: the occurrence keeps its id."""
    old = dict(occurrence)
    occurrence["start_time"] = start
    ident = int(meeting.number)
    notify(world, meeting, "meeting.updated", {"id": ident, "occurrences": [dict(occurrence)]},
           {"id": ident, "occurrences": [old]})  # fmt: skip


def delete_occurrence(world: World, meeting: Meeting, occurrence: dict[str, Any]) -> None:
    """`DELETE /meetings/{id}?occurrence_id=`: listed with status "deleted" from then on."""
    occurrence["status"] = "deleted"
    deleted = {k: occurrence[k] for k in ("occurrence_id", "start_time")}
    obj = {"id": int(meeting.number), "host_id": host_of(world, meeting), "occurrences": [deleted]}
    notify(world, meeting, "meeting.deleted", obj)


def delete_meeting(world: World, meeting: Meeting) -> None:
    """`DELETE /meetings/{id}`: the meeting is gone."""
    world.meetings.pop(meeting.number, None)
    obj = meeting_object(meeting, host_of(world, meeting))
    notify(world, meeting, "meeting.deleted",
           {k: obj[k] for k in ("id", "host_id", "topic", "type", "start_time")})  # fmt: skip
