"""MeetingStreams on the real control plane with the operator: the simulator posts Zoom's RTMS
webhooks (signed as Zoom signs them) to the operator's /zoom/rtms; the endpoint is validated,
a started stream lands in the MeetingStream's status at once (one delivery, answered well
inside Zoom's 3 s), its end finishes it, and forged or replayed webhooks change nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest

from devenv.operator_process import OperatorProcess
from devenv.zoomsim import SimAdmin, ZoomSim
from meetingbot_api import GROUP, VERSION
from tests.support.operator_fixtures import Kube, account_ready, wait_for
from tests.support.operator_fixtures import zoom_account as zoom_account_in
from tests.support.streams import meetingstream, phase_is, status_of, zooms_delivery

pytestmark = pytest.mark.integration


async def test_a_stream_from_zooms_webhook_to_the_status(
    kube: Kube, namespace: str, operator: OperatorProcess, sim: SimAdmin
) -> None:
    app = sim.create_account(plan="pro")
    sim.update_account(app["id"], event_notification_url=f"{operator.oauth_url}/zoom/rtms")
    meeting = sim.create_meeting(app["id"])
    sim.add_participant(meeting["number"], "Alice", is_host=True)
    await meetingstream(kube, namespace, "standup", app, meeting={"number": meeting["number"]})
    waiting = await phase_is(kube, namespace, "standup", "Waiting")
    assert waiting["reason"] == "WaitingForStream"

    # Zoom validates the endpoint when the app's owner saves it.
    assert sim.validate_app_endpoint(app["id"])

    stream = sim.start_rtms(meeting["number"], app["id"])
    starting = await phase_is(kube, namespace, "standup", "Starting")
    [session] = starting["streams"]
    assert session["streamId"] == stream["id"]
    assert session["meetingUuid"] == stream["meetingUuid"]
    assert session["serverUrls"].endswith(f"/rtms/signaling/{stream['id']}")
    delivery = await zooms_delivery(sim, stream["id"])
    assert delivery["status"] == 200 and delivery["seconds"] < 3

    sim.end_meeting(meeting["number"])
    done = await phase_is(kube, namespace, "standup", "Succeeded")
    assert done["reason"] == "MeetingEnded"
    assert done["streams"][0]["stopReason"] == 6


async def test_forged_and_replayed_webhooks_change_nothing(
    kube: Kube, namespace: str, operator: OperatorProcess, sim: SimAdmin
) -> None:
    app = sim.create_account(plan="pro")
    meeting = sim.create_meeting(app["id"])
    await meetingstream(kube, namespace, "standup", app, meeting={"number": meeting["number"]})
    await phase_is(kube, namespace, "standup", "Waiting")
    body = json.dumps(
        {
            "event": "meeting.rtms_started",
            "event_ts": int(time.time() * 1000),
            "payload": {
                "meeting_uuid": "forged==",
                "rtms_stream_id": "f" * 32,
                "server_urls": "wss://attacker.example.com/signaling",
                "meeting_id": int(meeting["number"]),
            },
        }
    )

    def post(token: str, stamp: int) -> httpx.Response:
        digest = hmac.new(token.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
        return httpx.post(
            f"{operator.oauth_url}/zoom/rtms",
            content=body,
            headers={
                "Content-Type": "application/json",
                "x-zm-request-timestamp": str(stamp),
                "x-zm-signature": f"v0={digest}",
            },
        )

    forged = post("not-the-apps-token", int(time.time()))
    replayed = post(app["webhook_secret_token"], int(time.time()) - 3600)
    assert (forged.status_code, replayed.status_code) == (401, 401)
    assert "matches no" in forged.json()["error"] and "stale" in replayed.json()["error"]
    status = await status_of(kube, namespace, "standup")
    assert status["phase"] == "Waiting" and not status.get("streams")


async def test_the_operator_asks_zoom_to_start_the_stream_once_the_meeting_is_live(
    kube: Kube, namespace: str, operator: OperatorProcess, sim: SimAdmin, zoomsim: ZoomSim
) -> None:
    """start: Api: Zoom answers 3001 while the meeting is not live; the operator asks again
    with backoff, and once the meeting is live Zoom starts the stream and posts its webhook."""
    app = await zoom_account_in(
        kube,
        namespace,
        sim,
        zoomsim.url,
        scopes=["user:read:admin", "user:write:admin", "meeting:write:admin"],
        event_notification_url=f"{operator.oauth_url}/zoom/rtms",
    )
    await account_ready(kube, namespace, predicate=lambda c: c["status"] == "True")
    number = "98765432101"
    await meetingstream(
        kube,
        namespace,
        "weekly",
        app,
        meeting={"number": number},
        start="Api",
        accountRef={"name": "main"},
    )

    async def refused() -> dict[str, Any] | None:
        status = await status_of(kube, namespace, "weekly")
        return status if "Zoom code 3001" in str(status.get("message")) else None

    # (Before that, the operator may not have verified the account yet: said too, and retried.)
    waiting = await wait_for(refused, 60, what="Zoom's 3001 in the status")
    assert waiting["phase"] == "Waiting" and "Zoom did not start it" in waiting["message"]

    sim.create_meeting(app["id"], number=number)
    starting = await phase_is(kube, namespace, "weekly", "Starting")
    [stream] = sim.rtms_streams(number)
    assert starting["streams"][0]["streamId"] == stream["id"]
    assert sim.calls().get(f"{app['id']}:rtms_app_status", 0) >= 2


async def test_a_canceled_meetingstream_finishes_and_goes_after_its_ttl(
    kube: Kube, namespace: str, operator: OperatorProcess, sim: SimAdmin
) -> None:
    app = sim.create_account(plan="pro")
    await meetingstream(
        kube, namespace, "once", app, meeting={"number": "123456789"}, ttlSecondsAfterFinished=2
    )
    await phase_is(kube, namespace, "once", "Waiting")
    await kube.custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "meetingstreams", "once", {"spec": {"cancel": True}},
        _content_type="application/merge-patch+json",
    )  # fmt: skip
    done = await phase_is(kube, namespace, "once", "Succeeded")
    assert done["reason"] == "Canceled" and done["completionTime"]

    async def gone() -> bool:
        listed = await kube.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, "meetingstreams"
        )
        return not listed["items"]

    await wait_for(gone, 30, what="the MeetingStream deleted after its TTL")
