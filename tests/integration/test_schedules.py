"""MeetingBotSchedules on the real control plane with the operator: a cron schedule's
occurrences across a change of clocks and its bots made ahead under deterministic names; a
recurring Zoom meeting (the simulator's) whose occurrence moves and one that is deleted; one
bot per occurrence when the operator is SIGKILLed as it makes them; the API server refusing
bad schedules at apply time."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from devenv.cluster import cluster
from devenv.operator_process import OperatorProcess
from devenv.zoomsim import SimAdmin, ZoomSim
from meetingbot_api import GROUP, VERSION
from tests.support.grants import authorize_in_browser, grant_body, make_grant, wait_grant
from tests.support.operator_fixtures import MERGE_PATCH, Kube, account_ready, wait_for
from tests.support.operator_fixtures import zoom_account as zoom_account_in
from tests.support.specs import bot_spec

pytestmark = pytest.mark.integration
NEW_YORK = ZoneInfo("America/New_York")
# The account's app may read meetings (GET /meetings/{id}) besides minting ZAKs.
SCOPES = ["user:read:admin", "user:write:admin", "meeting:read:admin"]


def template(**spec: Any) -> dict[str, Any]:
    """A bot template for the ZoomAccount "main", its pods on kwok nodes."""
    body = bot_spec(**spec)
    return {"metadata": {"labels": {"team": "sales"}}, "spec": body}


async def apply(kube: Kube, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MeetingBotSchedule",
            "metadata": {"name": name}, "spec": spec}  # fmt: skip
    created: dict[str, Any] = await kube.custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "meetingbotschedules", body
    )
    return created


async def schedule_status(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    got = await kube.custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, "meetingbotschedules", name
    )
    return dict(got.get("status") or {})


async def bots_of(kube: Kube, namespace: str, schedule: str) -> dict[str, dict[str, Any]]:
    listed = await kube.custom.list_namespaced_custom_object(
        GROUP, VERSION, namespace, "meetingbots", label_selector=f"{GROUP}/schedule={schedule}"
    )
    return {b["metadata"]["name"]: b for b in listed["items"]}


def minutes(moment: datetime) -> str:
    return f"{int(moment.timestamp() // 60):08d}"


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_a_cron_schedule_across_a_change_of_clocks_and_its_bots_made_ahead(
    kube: Kube, namespace: str, zoom: dict[str, Any]
) -> None:
    # Every Sunday of March and November at 01:30 and 02:30 in New York: within its next ten
    # occurrences, from any day of the year, a day the clocks change.
    await apply(kube, namespace, "dst", {
        "cron": {"schedule": "30 1,2 * 3,11 0", "timeZone": "America/New_York"},
        "template": template(), "leadSeconds": 0,
    })  # fmt: skip
    listed = await wait_for(
        lambda: _next(kube, namespace, "dst"), timeout=30, what="the schedule's next occurrences"
    )
    assert len(listed) == 10
    by_day: dict[Any, list[datetime]] = {}
    for entry in listed:
        local = parse(entry["start"]).astimezone(NEW_YORK)
        assert local.weekday() == 6 and local.month in (3, 11), local
        by_day.setdefault(local.date(), []).append(local)
    changes = 0
    for day, times in by_day.items():
        offsets = {t.utcoffset() for t in times}
        if day.month == 3 and len(offsets) == 2:
            # Spring forward: 02:30 does not exist; it runs as the clocks change (03:00 EDT).
            assert [t.strftime("%H:%M %Z") for t in times] == ["01:30 EST", "03:00 EDT"][
                : len(times)
            ]
            changes += 1
        elif day.month == 11 and len(offsets) == 2:
            # Fall back: 01:30 happens twice and runs once (EDT); 02:30 is EST.
            assert [t.strftime("%H:%M %Z") for t in times] == ["01:30 EDT", "02:30 EST"][
                : len(times)
            ]
            changes += 1
        else:
            assert [t.strftime("%H:%M") for t in times] in (
                ["01:30", "02:30"],
                ["01:30"],
                ["02:30"],
            )
    assert changes >= 1, by_day  # the list crossed a change of clocks

    # Every minute, made 90 s ahead: the bot of the next minute (or two) comes at once, named
    # after its minute, joining at its start, labelled and owned by the schedule.
    made = await apply(kube, namespace, "minutely", {
        "cron": {"schedule": "* * * * *"}, "template": template(), "leadSeconds": 90,
        "successfulBotsHistoryLimit": 1,
    })  # fmt: skip
    bots = await wait_for(lambda: bots_of(kube, namespace, "minutely"), timeout=30,
                          what="the schedule's first bot")  # fmt: skip
    for name, bot in bots.items():
        start = parse(bot["spec"]["joinAt"])
        assert name == f"minutely-{minutes(start)}"
        created = parse(made["metadata"]["creationTimestamp"])
        assert start.second == 0 and start >= created - timedelta(seconds=1)  # none before
        assert bot["metadata"]["labels"] == {"team": "sales", f"{GROUP}/schedule": "minutely"}
        [owner] = bot["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == (
            "MeetingBotSchedule", made["metadata"]["uid"], True
        )  # fmt: skip
        assert bot["spec"]["meeting"] == {"number": bot_spec()["meeting"]["number"]}
    status = await wait_for(lambda: _ready(kube, namespace, "minutely"), timeout=30,
                            what="Ready")  # fmt: skip
    assert set(bots) <= {b["name"] for b in status["active"]}  # (a minute may have added one)


async def _next(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]] | None:
    status = await schedule_status(kube, namespace, name)
    return status.get("nextOccurrences") or None


async def _ready(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    status = await schedule_status(kube, namespace, name)
    ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)
    return status if ready and ready["status"] == "True" else None


async def test_a_recurring_meetings_moved_and_deleted_occurrences_move_and_cancel_their_bots(
    kube: Kube, namespace: str, sim: SimAdmin, zoomsim: ZoomSim, operator: OperatorProcess
) -> None:
    """A recurring meeting of the account (in the simulator): its next two occurrences get bots
    a day ahead, named after each occurrence's original start; the host moves the first (its
    bot moves with it, same name) and deletes the second (its bot is canceled, never starts);
    the third, further off, is listed and not made. Zoom's meeting webhooks reach the operator
    signed with the account app's token and are answered 200."""
    zoom = await zoom_account_in(kube, namespace, sim, zoomsim.url, scopes=SCOPES)
    await account_ready(kube, namespace)
    # The app's secret token beside its credentials: the operator verifies Zoom's webhooks.
    await kube.core.patch_namespaced_secret("main-api", namespace, {"stringData": {
        "webhookSecretToken": zoom["webhook_secret_token"]}})  # fmt: skip
    sim.update_account(zoom["id"], meeting_events_url=f"{operator.oauth_url}/zoom/meetings")
    first = (datetime.now(UTC) + timedelta(hours=1)).replace(second=0, microsecond=0)
    starts = [first, first + timedelta(hours=5), first + timedelta(days=3)]
    meeting = sim.create_meeting(
        zoom["id"], topic="Weekly standup", host_id=zoom["users"][0]["id"],
        occurrences_at=[s.strftime("%Y-%m-%dT%H:%M:%SZ") for s in starts],
    )  # fmt: skip
    spec: dict[str, Any] = {"zoomMeeting": {"number": meeting["number"]}, "leadSeconds": 86400}
    spec["template"] = template()
    del spec["template"]["spec"]["meeting"]
    await apply(kube, namespace, "standup", spec)
    names = [f"standup-{minutes(s)}" for s in starts[:2]]

    async def both() -> dict[str, dict[str, Any]] | None:
        found = await bots_of(kube, namespace, "standup")
        return found if len(found) == 2 else None

    bots = await wait_for(both, timeout=30, what="the next two occurrences' bots")
    assert sorted(bots) == sorted(names)
    for name, start in zip(names, starts, strict=False):
        assert parse(bots[name]["spec"]["joinAt"]) == start
        assert bots[name]["spec"]["meeting"] == {"number": meeting["number"]}
    status = await wait_for(lambda: _ready(kube, namespace, "standup"), timeout=30, what="Ready")
    assert [(o["start"], o["topic"]) for o in status["nextOccurrences"]] == [
        (starts[2].strftime("%Y-%m-%dT%H:%M:%SZ"), "Weekly standup")
    ]

    # The host moves the first occurrence by an hour: its bot (not started) moves with it.
    one, two, _ = [o["occurrence_id"] for o in sim.meeting(meeting["number"])["occurrences"]]
    moved = first + timedelta(hours=1)
    sim.move_occurrence(meeting["number"], one, moved.strftime("%Y-%m-%dT%H:%M:%SZ"))

    async def joins_at_the_new_time() -> bool:
        bot = (await bots_of(kube, namespace, "standup"))[names[0]]
        return parse(bot["spec"]["joinAt"]) == moved

    await wait_for(joins_at_the_new_time, timeout=30, what="the first bot moved")
    # The host deletes the second: its bot is canceled (it never starts).
    sim.delete_occurrence(meeting["number"], two)

    async def canceled() -> dict[str, Any] | None:
        bot = (await bots_of(kube, namespace, "standup"))[names[1]]
        status = bot.get("status") or {}
        return status if bot["spec"].get("cancel") and status.get("phase") == "Succeeded" else None

    done = await wait_for(canceled, timeout=30, what="the second bot canceled")
    assert done["reason"] == "Canceled"
    first_bot = (await bots_of(kube, namespace, "standup"))[names[0]]
    assert not first_bot["spec"].get("cancel")  # the moved one goes on
    assert sorted(await bots_of(kube, namespace, "standup")) == sorted(names)
    # (meeting.created came before any schedule read that meeting: no app verified it.)
    told = {d["event"]: d.get("status") for d in sim.meeting_deliveries()
            if d["meeting"] == meeting["number"]}  # fmt: skip
    assert (told["meeting.updated"], told["meeting.deleted"]) == (200, 200)


async def test_one_bot_per_occurrence_when_the_operator_is_killed_as_it_makes_them(
    kube: Kube, ha_namespace: str, zoomsim: ZoomSim, tmp_path: Path
) -> None:
    """An operator of its own for a namespace the session's does not watch: SIGKILLed the
    moment its bots appear (before or after it wrote the status), three times, with more
    minutes coming within the lead each time:
    every occurrence has one bot, and the status counts each once."""
    own = OperatorProcess(
        cluster.kubeconfig_path(), tmp_path / "operator.log", namespaces=ha_namespace,
        allowed_endpoints=zoomsim.url, retry_base_seconds="1",
    )  # fmt: skip
    await apply(kube, ha_namespace, "burst", {
        "cron": {"schedule": "* * * * *"}, "template": template(), "leadSeconds": 300,
        "maxBotsPerDay": 100,
    })  # fmt: skip
    try:
        made = 0
        for lead in (300, 420, 540):
            # More minutes come within the lead: the operator makes their bots, and is killed
            # the moment the API server has the first of them.
            await kube.custom.patch_namespaced_custom_object(
                GROUP, VERSION, ha_namespace, "meetingbotschedules", "burst",
                {"spec": {"leadSeconds": lead}}, _content_type=MERGE_PATCH,
            )  # fmt: skip
            own.start()

            async def more(before: int = made) -> int:
                return max(len(await bots_of(kube, ha_namespace, "burst")) - before, 0)

            await wait_for(more, timeout=60, interval=0.05, what="another bot")
            own.kill()
            made = len(await bots_of(kube, ha_namespace, "burst"))
        own.start()

        async def settled() -> tuple[dict[str, Any], dict[str, dict[str, Any]]] | None:
            """The status once it lists every bot there is, counting each once (a minute
            may bring another bot meanwhile: both are read again)."""
            status = await schedule_status(kube, ha_namespace, "burst")
            bots = await bots_of(kube, ha_namespace, "burst")
            listed = sorted(b["name"] for b in status.get("active", []))
            return (status, bots) if listed == sorted(bots) and len(
                status.get("made", [])) == len(bots) else None  # fmt: skip

        status, bots = await wait_for(settled, timeout=60, what="the status counting each bot")
        keys = [b["metadata"]["annotations"][f"{GROUP}/occurrence"] for b in bots.values()]
        assert len(keys) == len(set(keys)) >= 9  # nine minutes ahead, one bot each
        assert sorted(b.rsplit("-", 1)[1] for b in bots) == sorted(keys)  # named after it
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("True", "Scheduled")
    finally:
        own.stop()


async def test_bad_schedules_are_refused_at_apply_time(kube: Kube, namespace: str) -> None:
    bad = [
        ({"template": template()}, "exactly one of cron, zoomMeeting or calendar"),
        ({"cron": {"schedule": "0 9 * *"}, "template": template()}, "spec.cron.schedule"),
        ({"zoomMeeting": {"number": "81234567890"}, "template": template()},
         "leave the template's meeting out"),
        ({"cron": {"schedule": "0 9 * * *"}, "template": template(joinAt="2027-01-01T00:00:00Z")},
         "joinAt is set per occurrence"),
        ({"cron": {"schedule": "0 9 * * *"}, "template": {**template(), "metadata": {
            "labels": {f"{GROUP}/schedule": "other"}}}}, "operator's"),
    ]  # fmt: skip
    for spec, message in bad:
        with pytest.raises(ApiException) as refused:
            await apply(kube, namespace, f"bad-{uuid.uuid4().hex[:6]}", spec)
        assert refused.value.status == 422 and message in str(refused.value.body), (
            refused.value.body
        )
    long_name = "x" * 55
    with pytest.raises(ApiException):
        await apply(kube, namespace, long_name, {"cron": {"schedule": "0 9 * * *"},
                                                 "template": template()})  # fmt: skip


async def test_a_calendar_picks_up_a_meeting_created_in_zoom_from_its_webhook(
    kube: Kube, ha_namespace: str, sim: SimAdmin, zoomsim: ZoomSim, tmp_path: Path
) -> None:
    """An operator of its own that reads Zoom only once an hour: a user authorizes the app
    (in Chromium), a calendar schedule follows their meetings; they schedule a standup in
    Zoom, and Zoom's meeting.created webhook (signed with the app's token) makes the bot at
    once. A webhook signed with another token is refused and wakes nothing."""
    own = OperatorProcess(
        cluster.kubeconfig_path(), tmp_path / "operator.log", namespaces=ha_namespace,
        allowed_endpoints=zoomsim.url, retry_base_seconds="1", schedule_poll_seconds="3600",
    )  # fmt: skip
    own.start()
    try:
        app, host, alice = await make_grant(kube, ha_namespace, sim, zoomsim, own, webhook=True)
        sim.update_account(
            app["id"],
            user_scopes=["user:read:token", "user:read:user", "meeting:read:list_meetings"],
            meeting_events_url=f"{own.oauth_url}/zoom/meetings",
        )
        url = (await grant_body(kube, ha_namespace))["status"]["authorizationUrl"]
        assert await authorize_in_browser(url, alice["email"]) == "Authorized"
        await wait_grant(kube, ha_namespace, ready="True", timeout=30)
        obf = {"auth": "obf", "obf": {"grantRef": {"name": "alice"}}}
        spec: dict[str, Any] = {"calendar": {"grantRef": {"name": "alice"}, "rules": {"topic": "*standup*"}},
                "template": template(**obf), "leadSeconds": 86400}  # fmt: skip
        del spec["template"]["spec"]["meeting"]
        await apply(kube, ha_namespace, "alice-notes", spec)
        read = await wait_for(lambda: _ready(kube, ha_namespace, "alice-notes"), timeout=30,
                              what="Ready")  # fmt: skip
        assert not read.get("nextOccurrences") and read["lastReadAt"]

        start = (datetime.now(UTC) + timedelta(hours=2)).replace(second=0, microsecond=0)
        when = start.strftime("%Y-%m-%dT%H:%M:%SZ")
        lunch = sim.create_meeting(host["id"], host_id=alice["id"], topic="Lunch", start_time=when)
        standup = sim.create_meeting(host["id"], host_id=alice["id"], topic="Team Standup",
                                     start_time=when)  # fmt: skip
        bots = await wait_for(lambda: bots_of(kube, ha_namespace, "alice-notes"), timeout=20,
                              what="the standup's bot, from the webhook")  # fmt: skip
        [bot] = bots.values()
        assert bot["spec"]["meeting"] == {"number": standup["number"]}
        assert parse(bot["spec"]["joinAt"]) == start
        assert bot["spec"]["obf"] == {"grantRef": {"name": "alice"}}
        counted = httpx.get(own.metrics_url, timeout=10).text
        assert 'meetingbot_schedule_bots_total{result="made"} 1.0' in counted
        delivered = [d for d in sim.meeting_deliveries() if d["app"] == app["id"]]
        assert {(d["meeting"], d["status"]) for d in delivered} >= {
            (lunch["number"], 200), (standup["number"], 200)
        }  # fmt: skip

        # Signed with a token that is not the app's: refused, nothing read again.
        forged = json.dumps({"event": "meeting.created", "event_ts": int(time.time() * 1000),
                             "payload": {"object": {"id": 1, "host_id": alice["id"]}}})  # fmt: skip
        stamp = str(int(time.time()))
        mac = hmac.new(b"not-the-apps-token", f"v0:{stamp}:{forged}".encode(), hashlib.sha256)
        answer = httpx.post(
            f"{own.oauth_url}/zoom/meetings", content=forged,
            headers={"x-zm-request-timestamp": stamp, "x-zm-signature": f"v0={mac.hexdigest()}"},
        )  # fmt: skip
        assert answer.status_code == 401
    finally:
        own.stop()
