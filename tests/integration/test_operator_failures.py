"""Failures: permanent ones end in Failed with their reason and no retry; transient ones get
a new attempt with a fresh ZAK; Zoom outages and 429 storms delay without losing anything."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from kubernetes import client

from devenv.zoomsim import SimAdmin, ZoomSim
from tests.support.operator_fixtures import SECRET_USE_LABEL, Bots, account_ready, wait_for
from tests.support.scripted_bot import Scripted
from tests.support.specs import bot_spec
from tests.support.zoom_helpers import Statuses, client_for


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("wrong passcode", "WrongPasscode"),
        ("no zak on an authenticated-only meeting", "AuthenticationRequired"),
        ("unknown meeting", "MeetingNotFound"),
        ("locked meeting", "MeetingLocked"),
        ("zoom user unknown to zoom", "ZoomUserNotFound"),
        ("pending zoom user", "ZoomUserInactive"),
        ("user not in the account", "ZoomUserNotInAccount"),
        ("removed by host", "RemovedByHost"),
    ],
)
async def test_permanent_failures_end_in_failed_without_retry(
    api_client: client.ApiClient,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    case: str,
    reason: str,
    scripted: Scripted,
) -> None:
    meeting = sim.create_meeting(
        zoom["id"], passcode="right", auth_required=case.startswith("no zak")
    )
    number = meeting["number"]
    body = bot_spec(number, meeting={"number": number, "passcode": "right"})
    with_bot = True
    if case == "wrong passcode":
        body["meeting"]["passcode"] = "wrong"
    elif case.startswith("no zak"):
        body["auth"] = "none"
    elif case == "unknown meeting":
        body["meeting"]["number"] = "99999999999"
    elif case == "locked meeting":
        sim.update_meeting(number, locked=True)
    elif case in ("zoom user unknown to zoom", "pending zoom user"):
        email = "ghost@bots.example.com"
        if case == "pending zoom user":
            email = sim.add_user(zoom["id"], email="new@bots.example.com", status="pending")[
                "email"
            ]
        custom = client.CustomObjectsApi(api_client)
        users = {"spec": {"users": [zoom["users"][0]["email"], email]}}
        custom.patch_namespaced_custom_object(
            "meetingbot.dev", "v1alpha1", namespace, "zoomaccounts", "main", users
        )
        await asyncio.to_thread(
            wait_for, lambda: account_ready(api_client, namespace)["observedGeneration"] == 2, 20
        )
        body["user"] = email
        with_bot = False
    elif case == "user not in the account":
        body["user"] = "stranger@elsewhere.example.com"
        with_bot = False
    bots.apply("failing", body)
    if with_bot:
        bot = scripted("failing")
        run = asyncio.create_task(bot.run())
        if case == "removed by host":
            await asyncio.to_thread(bots.wait_phase, "failing", "InMeeting")
            (me,) = sim.participants(number, "in_meeting")
            sim.remove_participant(number, me["userId"])
        await run
    status = await asyncio.to_thread(bots.wait_phase, "failing", "Failed", "Succeeded", timeout=30)
    assert (status["phase"], status["reason"]) == ("Failed", reason), status
    assert status["attempts"] == (1 if with_bot else 0)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Failed"]["status"] == "True"
    assert conditions["Failed"]["reason"] == reason
    await asyncio.sleep(2)  # nothing more happens: no second attempt
    assert [p.metadata.name for p in bots.pods("failing")] == (["failing-1"] if with_bot else [])
    assert bots.status("failing")["attempts"] == status["attempts"]


async def test_transient_failure_then_success_with_a_fresh_zak(
    api_client: client.ApiClient,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    scripted: Scripted,
) -> None:
    number = sim.create_meeting(zoom["id"])["number"]
    bots.apply("phoenix", bot_spec(number))
    bot = scripted("phoenix")
    assert await bot.run(1, ending="crash") == "BotCrashed"
    first = bot.config
    retrying = await asyncio.to_thread(
        bots.wait_phase, "phoenix", "Pending", "Starting", timeout=30
    )
    assert retrying["reason"] in ("BotCrashed", None)
    run = asyncio.create_task(bot.run(2))
    await asyncio.to_thread(bots.wait_phase, "phoenix", "InMeeting", timeout=30)
    second = bot.config
    assert first is not None and second is not None
    assert first.zak is not None and second.zak is not None
    assert first.zak.get_secret_value() != second.zak.get_secret_value()
    assert second.bot.attempt == 2
    sim.end_meeting(number)
    await run
    status = await asyncio.to_thread(bots.wait_phase, "phoenix", "Succeeded")
    assert status["attempts"] == 2
    assert sorted(p.metadata.name for p in bots.pods("phoenix")) == ["phoenix-1", "phoenix-2"]


async def test_retries_stop_at_the_limit(
    api_client: client.ApiClient,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    scripted: Scripted,
) -> None:
    number = sim.create_meeting(zoom["id"])["number"]
    bots.apply("fragile", bot_spec(number, retry={"limit": 1}))
    bot = scripted("fragile")
    await bot.run(1, ending="crash")
    await bot.run(2, ending="crash")
    status = await asyncio.to_thread(bots.wait_phase, "fragile", "Failed", timeout=30)
    assert (status["reason"], status["attempts"]) == ("BotCrashed", 2)


async def test_zoom_outage_delays_then_recovers(
    api_client: client.ApiClient, namespace: str, bots: Bots, zoom: dict[str, Any], sim: SimAdmin
) -> None:
    number = sim.create_meeting(zoom["id"])["number"]
    sim.set_faults(outage=True)
    bots.apply("patient", bot_spec(number))
    status = await asyncio.to_thread(
        wait_for,
        lambda: (s := bots.status("patient")).get("reason") == "ZoomUnavailable" and s,
        60,
        what="ZoomUnavailable",
    )
    assert status["phase"] == "Pending"
    assert status["attempts"] == 0
    assert bots.pods("patient") == []
    failed_calls = sim.calls().get(f"{zoom['id']}:zak:failed", 0)
    await asyncio.sleep(3)
    # Backing off, not hammering: a handful of calls in 3 s, not hundreds.
    assert sim.calls().get(f"{zoom['id']}:zak:failed", 0) - failed_calls < 15
    sim.set_faults()
    await asyncio.to_thread(wait_for, lambda: bots.pods("patient"), 60, what="pod after the outage")
    assert bots.status("patient")["attempts"] == 1


async def test_429_storm_from_another_app_loses_no_bot(
    api_client: client.ApiClient,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
) -> None:
    """Another app of the same account spends the account's ZAK budget while 30 bots start."""
    number = sim.create_meeting(zoom["id"])["number"]
    sim.set_faults(rate_limit_headers="sometimes", retry_after_format="iso")

    async def other_app() -> int:
        statuses = Statuses()
        async with client_for(zoomsim.url, zoom, max_attempts=20, observer=statuses) as rival:
            await asyncio.gather(*(rival.mint_zak(zoom["users"][0]["id"]) for _ in range(150)))
            return statuses[429]

    rival = asyncio.create_task(other_app())
    await asyncio.sleep(0.3)
    for i in range(30):
        bots.apply(f"storm-{i}", bot_spec(number))
    await rival

    def all_started() -> bool:
        return all(bots.status(f"storm-{i}").get("attempts") == 1 for i in range(30))

    await asyncio.to_thread(wait_for, all_started, 90, what="30 bots started")
    assert sim.calls()[f"{zoom['id']}:429"] > 0
    for i in range(30):
        assert [p.metadata.name for p in bots.pods(f"storm-{i}")] == [f"storm-{i}-1"]


async def test_join_at_in_the_future_waits(
    api_client: client.ApiClient, namespace: str, bots: Bots, zoom: dict[str, Any], sim: SimAdmin
) -> None:
    number = sim.create_meeting(zoom["id"])["number"]
    join_at = time.time() + 10  # the test operator starts bots 2 s before joinAt
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(join_at))
    bots.apply("later", bot_spec(number, joinAt=stamp))
    status = await asyncio.to_thread(bots.wait_phase, "later", "Scheduled")
    assert status["attempts"] == 0
    assert bots.pods("later") == []
    await asyncio.to_thread(wait_for, lambda: bots.pods("later"), 20, what="pod at joinAt")
    assert time.time() >= join_at - 2 - 1.5


async def test_deleting_a_bot_mid_meeting_makes_it_leave(
    api_client: client.ApiClient,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    scripted: Scripted,
) -> None:
    number = sim.create_meeting(zoom["id"])["number"]
    bots.apply("goner", bot_spec(number))
    run = asyncio.create_task(scripted("goner").run())
    await asyncio.to_thread(bots.wait_phase, "goner", "InMeeting")
    bots.delete("goner")
    assert await run == "Canceled"
    left = sim.participants(number, "left")
    assert [p["leftReason"] for p in left] == ["left"]
    await asyncio.to_thread(
        wait_for, lambda: bots.children_gone("goner"), 60, what="pod and Secret garbage-collected"
    )


async def test_ttl_after_finished_deletes_the_bot(
    api_client: client.ApiClient,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    scripted: Scripted,
) -> None:
    number = sim.create_meeting(zoom["id"], passcode="x")["number"]
    bots.apply(
        "brief",
        bot_spec(number, ttlSecondsAfterFinished=2, meeting={"number": number, "passcode": "nope"}),
    )
    await scripted("brief").run()

    def gone() -> bool:
        try:
            bots.get("brief")
        except client.ApiException as error:
            return error.status == 404
        return False

    await asyncio.to_thread(wait_for, gone, 30, what="MeetingBot deleted after its TTL")


async def test_passcode_from_a_secret(
    api_client: client.ApiClient,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    scripted: Scripted,
) -> None:
    number = sim.create_meeting(zoom["id"], passcode="from-secret")["number"]
    bots.apply(
        "secretive",
        bot_spec(
            number,
            meeting={"number": number, "passcodeSecretRef": {"name": "pw", "key": "passcode"}},
        ),
    )
    status = await asyncio.to_thread(
        wait_for,
        lambda: (s := bots.status("secretive")).get("reason") == "SecretNotFound" and s,
        30,
        what="SecretNotFound",
    )
    assert "'pw'" in status["message"]
    client.CoreV1Api(api_client).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="pw", labels={SECRET_USE_LABEL: "meeting-passcode"}),
            string_data={"passcode": "from-secret"},
        ),
    )
    bot = scripted("secretive")
    run = asyncio.create_task(bot.run())
    await asyncio.to_thread(bots.wait_phase, "secretive", "InMeeting", timeout=60)
    sim.end_meeting(number)
    await run
    # The passcode the bot read from its join Secret (deleted now that the bot is done).
    assert bot.config is not None
    assert bot.config.meeting.passcode.get_secret_value() == "from-secret"
