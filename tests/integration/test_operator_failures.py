"""Failures: permanent ones end in Failed with their reason and no retry; transient ones get
a new attempt with a fresh ZAK; Zoom outages and 429 storms delay without losing anything."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from devenv.zoomsim import SimAdmin, ZoomSim
from tests.support.operator_fixtures import (
    SECRET_USE_LABEL,
    Bots,
    Kube,
    account_ready,
    patch_account,
    wait_for,
)
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
    kube: Kube,
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
        await patch_account(kube, namespace, {"users": [zoom["users"][0]["email"], email]})
        await account_ready(
            kube, namespace, predicate=lambda r: r["observedGeneration"] == 2, timeout=20
        )
        body["user"] = email
        with_bot = False
    elif case == "user not in the account":
        body["user"] = "stranger@elsewhere.example.com"
        with_bot = False
    await bots.apply("failing", body)
    if with_bot:
        bot = scripted("failing")
        run = asyncio.create_task(bot.run())
        if case == "removed by host":
            await bots.wait_phase("failing", "InMeeting")
            (me,) = sim.participants(number, "in_meeting")
            sim.remove_participant(number, me["userId"])
        await run
    status = await bots.wait_phase("failing", "Failed", "Succeeded", timeout=30)
    assert (status["phase"], status["reason"]) == ("Failed", reason), status
    assert status["attempts"] == (1 if with_bot else 0)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Failed"]["status"] == "True"
    assert conditions["Failed"]["reason"] == reason
    await asyncio.sleep(2)  # nothing more happens: no second attempt
    assert [p.metadata.name for p in await bots.pods("failing")] == (
        ["failing-1"] if with_bot else []
    )
    assert (await bots.status("failing"))["attempts"] == status["attempts"]


async def test_transient_failure_then_success_with_a_fresh_zak(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    scripted: Scripted,
) -> None:
    """With ZAK reuse off, every attempt mints its own ZAK."""
    await patch_account(kube, namespace, {"zak": {"reuse": False}})
    number = sim.create_meeting(zoom["id"])["number"]
    await bots.apply("phoenix", bot_spec(number))
    bot = scripted("phoenix")
    assert await bot.run(1, ending="crash") == "BotCrashed"
    first = bot.config
    retrying = await bots.wait_phase("phoenix", "Pending", "Starting", timeout=30)
    assert retrying["reason"] in ("BotCrashed", None)
    run = asyncio.create_task(bot.run(2))
    await bots.wait_phase("phoenix", "InMeeting", timeout=30)
    second = bot.config
    assert first is not None and second is not None
    assert first.zak is not None and second.zak is not None
    assert first.zak.get_secret_value() != second.zak.get_secret_value()
    assert second.bot.attempt == 2
    sim.end_meeting(number)
    await run
    status = await bots.wait_phase("phoenix", "Succeeded")
    assert status["attempts"] == 2
    assert sorted(p.metadata.name for p in await bots.pods("phoenix")) == ["phoenix-1", "phoenix-2"]


async def test_retries_stop_at_the_limit(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    scripted: Scripted,
) -> None:
    number = sim.create_meeting(zoom["id"])["number"]
    await bots.apply("fragile", bot_spec(number, retry={"limit": 1}))
    bot = scripted("fragile")
    await bot.run(1, ending="crash")
    await bot.run(2, ending="crash")
    status = await bots.wait_phase("fragile", "Failed", timeout=30)
    assert (status["reason"], status["attempts"]) == ("BotCrashed", 2)


async def test_zoom_outage_delays_then_recovers(
    kube: Kube, namespace: str, bots: Bots, zoom: dict[str, Any], sim: SimAdmin
) -> None:
    number = sim.create_meeting(zoom["id"])["number"]
    sim.set_faults(outage=True)
    await bots.apply("patient", bot_spec(number))
    status = await bots.wait_reason("patient", "ZoomUnavailable")
    assert status["phase"] == "Pending"
    assert status["attempts"] == 0
    assert await bots.pods("patient") == []
    failed_calls = sim.calls().get(f"{zoom['id']}:zak:failed", 0)
    await asyncio.sleep(3)
    # Backing off, not hammering: a handful of calls in 3 s, not hundreds.
    assert sim.calls().get(f"{zoom['id']}:zak:failed", 0) - failed_calls < 15
    sim.set_faults()
    (pod,) = await bots.wait_pods("patient")
    # The pod is created before the status patch that records its attempt, so the status is
    # waited for too: the outage spent no attempt, and the first one is attempt 1.
    assert pod.metadata.labels["meetingbot.dev/attempt"] == "1"
    await bots.wait_status("patient", lambda s: s.get("attempts") == 1, 10, "attempt 1")


async def test_429_storm_from_another_app_loses_no_bot(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
) -> None:
    """Another app of the same account spends the account's ZAK budget while 30 bots start,
    each minting its own ZAK (reuse off: with reuse the 30 share one mint)."""
    await patch_account(kube, namespace, {"zak": {"reuse": False}})
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
        await bots.apply(f"storm-{i}", bot_spec(number))
    await rival

    async def all_started() -> bool:
        statuses = [await bots.status(f"storm-{i}") for i in range(30)]
        return all(s.get("attempts") == 1 for s in statuses)

    await wait_for(all_started, 90, what="30 bots started")
    assert sim.calls()[f"{zoom['id']}:429"] > 0
    for i in range(30):
        assert [p.metadata.name for p in await bots.pods(f"storm-{i}")] == [f"storm-{i}-1"]


async def test_join_at_in_the_future_waits(
    kube: Kube, namespace: str, bots: Bots, zoom: dict[str, Any], sim: SimAdmin
) -> None:
    number = sim.create_meeting(zoom["id"])["number"]
    join_at = time.time() + 10  # the test operator starts bots 2 s before joinAt
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(join_at))
    await bots.apply("later", bot_spec(number, joinAt=stamp))
    status = await bots.wait_phase("later", "Scheduled")
    assert status["attempts"] == 0
    assert await bots.pods("later") == []
    await bots.wait_pods("later", timeout=20)
    assert time.time() >= join_at - 2 - 1.5


async def test_deleting_a_bot_mid_meeting_makes_it_leave(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    scripted: Scripted,
) -> None:
    number = sim.create_meeting(zoom["id"])["number"]
    await bots.apply("goner", bot_spec(number))
    run = asyncio.create_task(scripted("goner").run())
    await bots.wait_phase("goner", "InMeeting")
    await bots.delete("goner")
    assert await run == "Canceled"
    left = sim.participants(number, "left")
    assert [p["leftReason"] for p in left] == ["left"]
    await wait_for(lambda: bots.children_gone("goner"), 60, what="children garbage-collected")


async def test_ttl_after_finished_deletes_the_bot(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    scripted: Scripted,
) -> None:
    number = sim.create_meeting(zoom["id"], passcode="x")["number"]
    await bots.apply(
        "brief",
        bot_spec(number, ttlSecondsAfterFinished=2, meeting={"number": number, "passcode": "nope"}),
    )
    await scripted("brief").run()

    async def gone() -> bool:
        return not await bots.exists("brief")

    await wait_for(gone, 30, what="MeetingBot deleted after its TTL")


async def test_passcode_from_a_secret(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    scripted: Scripted,
) -> None:
    number = sim.create_meeting(zoom["id"], passcode="from-secret")["number"]
    await bots.apply(
        "secretive",
        bot_spec(
            number,
            meeting={"number": number, "passcodeSecretRef": {"name": "pw", "key": "passcode"}},
        ),
    )
    status = await bots.wait_reason("secretive", "SecretNotFound")
    assert "'pw'" in status["message"]
    await kube.core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "pw", "labels": {SECRET_USE_LABEL: "meeting-passcode"}},
            "stringData": {"passcode": "from-secret"},
        },
    )
    bot = scripted("secretive")
    run = asyncio.create_task(bot.run())
    await bots.wait_phase("secretive", "InMeeting", timeout=60)
    sim.end_meeting(number)
    await run
    # The passcode the bot read from its join Secret (deleted now that the bot is done).
    assert bot.config is not None
    assert bot.config.meeting.passcode.get_secret_value() == "from-secret"


async def test_a_passcode_secret_with_control_characters_fails_the_bot_clearly(
    kube: Kube, namespace: str, bots: Bots, zoom: dict[str, Any], sim: SimAdmin
) -> None:
    """The CRD refuses a newline or NUL in spec.meeting.passcode; a Secret's value is checked
    at the start: the bot fails SpecInvalid, naming the Secret and never its value."""
    number = sim.create_meeting(zoom["id"], passcode="pass")["number"]
    await kube.core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "pw", "labels": {SECRET_USE_LABEL: "meeting-passcode"}},
            "stringData": {"passcode": "pass\nword"},
        },
    )
    await bots.apply(
        "tricky",
        bot_spec(
            number,
            meeting={"number": number, "passcodeSecretRef": {"name": "pw", "key": "passcode"}},
        ),
    )
    status = await bots.wait_phase("tricky", "Failed", timeout=30)
    assert status["reason"] == "SpecInvalid"
    assert "'pw'" in status["message"] and "pass\nword" not in status["message"]
    assert await bots.pods("tricky") == []
