"""The service-user pool through the operator: a user Zoom refuses is failed over and comes
back when Zoom says it is fine; maxBotsPerUser makes bots wait and start as slots free."""

from __future__ import annotations

import asyncio
from typing import Any

from devenv.operator_process import OperatorProcess
from devenv.zoomsim import SimAdmin, ZoomSim
from tests.support.operator_fixtures import (
    Bots,
    Kube,
    account_ready,
    wait_for,
    zoom_account,
)
from tests.support.scripted_bot import ScriptedBot
from tests.support.specs import bot_spec

GROUP, VERSION = "meetingbot.dev", "v1alpha1"
SHOWN = ("phase", "reason", "attempts", "zoomUser", "message")


async def account_status(kube: Kube, namespace: str) -> dict[str, Any]:
    body = await kube.custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, "zoomaccounts", "main"
    )
    return dict(body.get("status") or {})


async def test_a_refused_user_is_failed_over_and_comes_back(
    kube: Kube, namespace: str, bots: Bots, sim: SimAdmin, zoomsim: ZoomSim, scripted: Any
) -> None:
    zoom = await zoom_account(kube, namespace, sim, zoomsim.url, users=2)
    await account_ready(kube, namespace)
    down, up = zoom["users"]
    sim.set_user_status(down["id"], "inactive")  # deactivated in Zoom, still in the spec
    number = sim.create_meeting(zoom["id"])["number"]
    runs = []
    for name in ("first", "second"):  # one after the other: the second sees the first's load
        await bots.apply(name, bot_spec(number))
        runs.append(asyncio.create_task(scripted(name).run()))
        await bots.wait_phase(name, "InMeeting", timeout=60)
    for name in ("first", "second"):
        status = await bots.status(name)
        # Both on the user Zoom accepts; the refusal cost neither bot an attempt.
        assert (status["zoomUser"], status["attempts"]) == (up["email"], 1)
        assert status.get("startFailures", 0) == 0

    async def marked() -> dict[str, Any] | None:
        status = await account_status(kube, namespace)
        users = {u["user"]: u for u in status.get("users", [])}
        return status if users.get(down["email"], {}).get("state") == "Unavailable" else None

    status = await wait_for(marked, 30, what="the refused user Unavailable in status")
    entry = next(u for u in status["users"] if u["user"] == down["email"])
    assert entry["reason"] == "ZoomUserInactive" and entry["since"]
    assert status["activeUsers"] == 1
    sim.set_user_status(down["id"], "active")

    async def back() -> bool:
        users = {u["user"]: u for u in (await account_status(kube, namespace)).get("users", [])}
        return bool(users.get(down["email"], {}).get("state") == "Active")

    await wait_for(back, 60, what="the user Active again after a check")
    sim.end_meeting(number)
    assert await asyncio.gather(*runs) == ["MeetingEnded", "MeetingEnded"]


async def test_max_bots_per_user_makes_bots_wait_until_a_slot_frees(
    kube: Kube, namespace: str, bots: Bots, sim: SimAdmin, zoomsim: ZoomSim, scripted: Any
) -> None:
    zoom = await zoom_account(
        kube, namespace, sim, zoomsim.url, extra_spec={"pool": {"maxBotsPerUser": 1}}
    )
    await account_ready(kube, namespace)
    first_meeting = sim.create_meeting(zoom["id"])["number"]
    await bots.apply("holder", bot_spec(first_meeting))
    holder = asyncio.create_task(scripted("holder").run())
    await bots.wait_phase("holder", "InMeeting", timeout=60)
    second_meeting = sim.create_meeting(zoom["id"])["number"]
    await bots.apply("waiter", bot_spec(second_meeting))
    waiting = await bots.wait_reason("waiter", "NoServiceUserAvailable", timeout=30)
    assert (waiting["phase"], waiting.get("attempts", 0)) == ("Pending", 0)
    assert "maxBotsPerUser (1)" in waiting["message"]
    await asyncio.sleep(3)
    assert await bots.pods("waiter") == []  # no pod, no ZAK, no hot loop of attempts
    sim.end_meeting(first_meeting)
    assert await holder == "MeetingEnded"
    waiter: ScriptedBot = scripted("waiter")
    run = asyncio.create_task(waiter.run())
    status = await bots.wait_phase("waiter", "InMeeting", timeout=60)
    assert (status["attempts"], status["zoomUser"]) == (1, zoom["users"][0]["email"])
    sim.end_meeting(second_meeting)
    assert await run == "MeetingEnded"


async def test_bots_of_one_user_share_a_zak_until_a_join_refuses_it(
    kube: Kube, namespace: str, bots: Bots, sim: SimAdmin, zoomsim: ZoomSim, scripted: Any
) -> None:
    """spec.zak.reuse (on by default): three bots, one ZAK minted; the user signs out
    everywhere (every ZAK revoked), the next join is refused (ZakInvalid), that ZAK is
    dropped and the retry gets a new one."""
    zoom = await zoom_account(kube, namespace, sim, zoomsim.url)
    await account_ready(kube, namespace)
    minted = f"{zoom['id']}:zak"
    before = sim.calls().get(minted, 0)
    runs, zaks = [], set()
    for i in range(3):
        number = sim.create_meeting(zoom["id"])["number"]
        await bots.apply(f"shared{i}", bot_spec(number))
        bot = scripted(f"shared{i}")
        runs.append((number, asyncio.create_task(bot.run())))
        await bots.wait_phase(f"shared{i}", "InMeeting", timeout=60)
        assert bot.config is not None and bot.config.zak is not None
        zaks.add(bot.config.zak.get_secret_value())
    assert len(zaks) == 1 and sim.calls().get(minted, 0) - before == 1
    sim.sign_out_everywhere(zoom["users"][0]["id"])
    number = sim.create_meeting(zoom["id"])["number"]
    await bots.apply("after", bot_spec(number))
    late = scripted("after")
    assert await late.run(1) == "ZakInvalid"
    run = asyncio.create_task(late.run(2))
    await bots.wait_phase("after", "InMeeting", timeout=60)
    assert late.config is not None and late.config.zak is not None
    assert late.config.zak.get_secret_value() not in zaks
    assert sim.calls().get(minted, 0) - before == 2
    for meeting, _ in runs:
        sim.end_meeting(meeting)
    sim.end_meeting(number)
    await asyncio.gather(run, *(task for _, task in runs))


async def test_ten_bots_on_three_users_capped_at_two_never_exceed_the_cap(
    kube: Kube, namespace: str, bots: Bots, sim: SimAdmin, zoomsim: ZoomSim, scripted: Any
) -> None:
    zoom = await zoom_account(
        kube, namespace, sim, zoomsim.url, users=3, extra_spec={"pool": {"maxBotsPerUser": 2}}
    )
    await account_ready(kube, namespace)
    meetings = {f"b{i}": sim.create_meeting(zoom["id"])["number"] for i in range(10)}
    for name, number in meetings.items():
        await bots.apply(name, bot_spec(number))
    running: dict[str, asyncio.Task[str]] = {}
    peak: dict[str, int] = {}
    deadline = asyncio.get_running_loop().time() + 120
    while len(running) < 10 or not all(t.done() for t in running.values()):
        assert asyncio.get_running_loop().time() < deadline, f"stuck: {sorted(running)}"
        statuses = {b["metadata"]["name"]: b.get("status") or {} for b in await bots.all()}
        holding: dict[str, int] = {}
        for name, status in statuses.items():
            if status.get("phase") in ("Starting", "Joining", "InMeeting") and status.get(
                "zoomUser"
            ):
                holding[status["zoomUser"]] = holding.get(status["zoomUser"], 0) + 1
                if name not in running:
                    running[name] = asyncio.create_task(scripted(name).run())
        assert all(count <= 2 for count in holding.values()), holding
        for user, count in holding.items():
            peak[user] = max(peak.get(user, 0), count)
        waiting = [s for s in statuses.values() if s.get("reason") == "NoServiceUserAvailable"]
        assert all(s.get("attempts", 0) == 0 for s in waiting)
        # End the meetings of bots that are in: slots free, waiting bots start.
        for name, status in statuses.items():
            if status.get("phase") == "InMeeting" and not sim.meeting(meetings[name])["ended"]:
                sim.end_meeting(meetings[name])
        await asyncio.sleep(0.5)
    # Every user served bots, none over the cap (checked at every poll above).
    assert set(peak) == {u["email"] for u in zoom["users"]} and max(peak.values()) <= 2
    for name in meetings:
        status = await bots.wait_phase(name, "Succeeded", timeout=30)
        assert status["attempts"] == 1


async def test_provisioning_creates_users_up_to_max_users_even_across_a_sigkill(
    kube: Kube,
    namespace: str,
    bots: Bots,
    sim: SimAdmin,
    zoomsim: ZoomSim,
    scripted: Any,
    operator: OperatorProcess,
) -> None:
    """spec.pool.provisioning: bots that find every user busy make the operator create users
    (autoCreate, a managed domain) up to maxUsers; the operator is SIGKILLed once the first
    exists, and its successor counts them in Zoom: exactly maxUsers exist at the end."""
    provisioning = {
        "maxUsers": 3,
        "action": "autoCreate",
        "emailTemplate": "prov-{n}@bots.example.com",
    }
    zoom = await zoom_account(
        kube,
        namespace,
        sim,
        zoomsim.url,
        managed_domains=["bots.example.com"],
        extra_spec={"pool": {"maxBotsPerUser": 1, "provisioning": provisioning}},
    )
    await account_ready(kube, namespace)

    def created() -> list[str]:
        users = sim.account_users(zoom["id"])
        return sorted(u["email"] for u in users if u["email"].startswith("prov-"))

    runs: dict[str, asyncio.Task[str]] = {}
    for i in range(5):  # 1 listed user + 3 to create = 4 slots; the 5th bot waits
        number = sim.create_meeting(zoom["id"])["number"]
        await bots.apply(f"p{i}", bot_spec(number))
        if i == 1:
            await wait_for(created, 30, what="the first user created")
            operator.kill()  # mid-provisioning: the next run must count from Zoom
            operator.start()
    deadline = asyncio.get_running_loop().time() + 90
    while len(runs) < 4:
        assert asyncio.get_running_loop().time() < deadline, f"started: {sorted(runs)}"
        assert len(created()) <= 3
        for bot in await bots.all():
            name, status = bot["metadata"]["name"], bot.get("status") or {}
            if status.get("phase") == "Starting" and name not in runs:
                runs[name] = asyncio.create_task(scripted(name).run())
        await asyncio.sleep(0.5)
    assert created() == [f"prov-{n}@bots.example.com" for n in (1, 2, 3)]
    (waiting,) = [b for b in await bots.all() if b["metadata"]["name"] not in runs]
    assert (waiting.get("status") or {}).get("reason") == "NoServiceUserAvailable"
    users = {u["user"] for u in (await account_status(kube, namespace)).get("users", [])}
    assert {f"prov-{n}@bots.example.com" for n in (1, 2, 3)} <= users
    for bot in await bots.all():
        number = bot["spec"]["meeting"]["number"]
        sim.end_meeting(number)
    await asyncio.gather(*runs.values())


async def test_a_user_deleted_in_zoom_mid_burst_loses_no_bot(
    kube: Kube, namespace: str, bots: Bots, sim: SimAdmin, zoomsim: ZoomSim, scripted: Any
) -> None:
    """Nine bots spread over three users; one user is deleted in Zoom while its bots' pods
    hold its (now dead) ZAK and more bots arrive. Its bots are refused at join, retried on the
    users that remain, and the late bots never go to it: every bot succeeds."""
    zoom = await zoom_account(kube, namespace, sim, zoomsim.url, users=3)
    await account_ready(kube, namespace)
    doomed = zoom["users"][1]
    number = sim.create_meeting(zoom["id"])["number"]
    names = [f"d{i}" for i in range(9)]
    for name in names:
        await bots.apply(name, bot_spec(number))
    runs: dict[tuple[str, int], asyncio.Task[str]] = {}
    held: list[str] = []  # the doomed user's bots: their pods wait to join until it is gone
    deleted = False

    async def drive() -> None:
        """Play the pod of every new attempt (held ones are started by the test)."""
        for bot in await bots.all():
            name, status = bot["metadata"]["name"], bot.get("status") or {}
            key = (name, int(status.get("attempts", 0)))
            if status.get("phase") != "Starting" or key in runs or (name in held and key[1] == 1):
                continue
            if status.get("zoomUser") == doomed["email"] and key[1] == 1 and not deleted:
                held.append(name)
                continue
            runs[key] = asyncio.create_task(scripted(name).run(key[1]))

    async def settled() -> bool:
        await drive()
        return len(runs) + len(held) == len(names)

    await wait_for(settled, 60, what="every bot started or held")
    # The least-loaded choice spreads a burst evenly, whatever order the passes run in.
    assert len(held) == 3, held
    sim.delete_user(doomed["id"])
    deleted = True
    for name in held:  # their pods join now, with a ZAK Zoom no longer knows
        runs[(name, 1)] = asyncio.create_task(scripted(name).run(1))
    for name in ("late0", "late1", "late2"):
        await bots.apply(name, bot_spec(number))
        names.append(name)

    async def all_in() -> bool:
        await drive()
        statuses = [b.get("status") or {} for b in await bots.all()]
        failed = [{k: s.get(k) for k in SHOWN} for s in statuses if s.get("phase") == "Failed"]
        assert not failed, failed
        return len(statuses) == len(names) and all(s.get("phase") == "InMeeting" for s in statuses)

    try:
        await wait_for(all_in, 120, what="every bot in the meeting")
    except TimeoutError:
        summary = {
            b["metadata"]["name"]: {k: (b.get("status") or {}).get(k) for k in SHOWN}
            for b in await bots.all()
        }
        ran = {k: t.done() and (t.exception() or t.result()) for k, t in runs.items()}
        raise AssertionError(f"not every bot in: {summary}; runs: {ran}") from None
    for bot in await bots.all():
        status = bot["status"]
        assert status["zoomUser"] != doomed["email"], bot["metadata"]["name"]
        # A bot lost at most the attempt whose ZAK died with the user (a late bot may have
        # been given that user before the operator learned it was gone); held ones did.
        if bot["metadata"]["name"] in held:
            assert status["attempts"] == 2
        else:
            assert status["attempts"] <= 2

    async def marked() -> dict[str, Any] | None:
        users = {u["user"]: u for u in (await account_status(kube, namespace)).get("users", [])}
        entry = users.get(doomed["email"], {})
        return entry if entry.get("state") == "Unavailable" else None

    entry = await wait_for(marked, 30, what="the deleted user Unavailable in status")
    assert entry["reason"] == "ZoomUserNotFound"
    sim.end_meeting(number)
    outcomes = await asyncio.gather(*runs.values())
    assert outcomes.count("MeetingEnded") == len(names)
    assert outcomes.count("ZakInvalid") >= len(held)
    for name in names:
        await bots.wait_phase(name, "Succeeded", timeout=30)
