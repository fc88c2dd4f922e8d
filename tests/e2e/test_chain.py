"""apply -> Secret -> Pod -> container -> Chromium -> meeting -> status, for real."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

from devenv.cluster import node
from devenv.operator_process import OperatorProcess
from devenv.zoomsim import SimAdmin, ZoomSim
from meetingbot_contract import JoinConfig
from tests.support.grants import authorize_in_browser, grant_body, make_grant, wait_grant
from tests.support.operator_fixtures import Bots, Kube, patch_account, wait_for
from tests.support.specs import bot_spec


def spec(zoomsim: ZoomSim, image: str, number: str, **extra: Any) -> dict[str, Any]:
    """The tests' spec: the bot image on the real node."""
    meeting = {"number": number, **extra.pop("meeting", {})}
    template = {"image": image, **extra.pop("podTemplate", {})}
    return bot_spec(number, on_kwok=False, meeting=meeting, podTemplate=template, **extra)


def exit_of(bots: Bots, pod_name: str) -> Any:
    """A predicate for wait_for: the container's terminated state, once there is one."""

    async def state() -> Any:
        status = await bots.container_status(pod_name)
        return status.state.terminated if status else None

    return state


async def zak_of(kube: Kube, namespace: str, name: str) -> str:
    secret = await kube.core.read_namespaced_secret(f"{name}-join", namespace)
    config = JoinConfig.model_validate_json(base64.b64decode(secret.data["join.json"]))
    assert config.zak is not None
    return config.zak.get_secret_value()


async def test_in_meeting_then_succeeded_when_the_host_ends(
    bots: Bots, zoom: dict[str, Any], sim: SimAdmin, zoomsim: ZoomSim, image: str
) -> None:
    number = sim.create_meeting(zoom["id"], passcode="pw", auth_required=True)["number"]
    started = time.monotonic()
    await bots.apply("real", spec(zoomsim, image, number, meeting={"passcode": "pw"}))
    status = await bots.wait_phase("real", "InMeeting", timeout=120)
    print(f"\napply to InMeeting through the whole chain: {time.monotonic() - started:.1f}s")
    (person,) = sim.participants(number, "in_meeting")
    assert (person["displayName"], person["zoomUserId"]) == ("Notetaker", zoom["users"][0]["id"])
    assert status["joinedAt"]
    sim.end_meeting(number)
    done = await bots.wait_phase("real", "Succeeded", "Failed", timeout=60)
    assert (done["phase"], done["reason"]) == ("Succeeded", "MeetingEnded")
    terminated = await wait_for(exit_of(bots, "real-1"), 60, what="the container's exit")
    assert terminated.exit_code == 0
    assert '"reason":"MeetingEnded"' in terminated.message


async def test_waiting_room_with_admission(
    bots: Bots, zoom: dict[str, Any], sim: SimAdmin, zoomsim: ZoomSim, image: str
) -> None:
    number = sim.create_meeting(zoom["id"], waiting_room=True)["number"]
    await bots.apply("patient", spec(zoomsim, image, number))
    await bots.wait_phase("patient", "WaitingRoom", timeout=120)
    sim.admit(number)
    await bots.wait_phase("patient", "InMeeting", timeout=30)
    sim.end_meeting(number)
    assert (await bots.wait_phase("patient", "Succeeded", timeout=60))["reason"] == "MeetingEnded"


async def test_wrong_passcode_fails_without_retry(
    bots: Bots, zoom: dict[str, Any], sim: SimAdmin, zoomsim: ZoomSim, image: str
) -> None:
    number = sim.create_meeting(zoom["id"], passcode="right")["number"]
    await bots.apply("wrong", spec(zoomsim, image, number, meeting={"passcode": "wrong"}))
    status = await bots.wait_phase("wrong", "Failed", "Succeeded", timeout=120)
    assert (status["phase"], status["reason"], status["attempts"]) == ("Failed", "WrongPasscode", 1)
    await asyncio.sleep(3)
    assert [p.metadata.name for p in await bots.pods("wrong")] == ["wrong-1"]
    terminated = await wait_for(exit_of(bots, "wrong-1"), 60, what="the container's exit")
    assert terminated.exit_code == 3


async def test_a_crash_mid_meeting_gets_a_second_attempt_with_a_fresh_zak(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    image: str,
) -> None:
    await patch_account(kube, namespace, {"zak": {"reuse": False}})  # one ZAK per attempt
    number = sim.create_meeting(zoom["id"])["number"]
    await bots.apply("phoenix", spec(zoomsim, image, number))
    await bots.wait_phase("phoenix", "InMeeting", timeout=120)
    first_zak = await zak_of(kube, namespace, "phoenix")
    node.kill_container(await bots.wait_running_container("phoenix-1"))
    await wait_for(_attempts(bots, "phoenix", 2), 60, what="a second attempt")
    await bots.wait_phase("phoenix", "InMeeting", timeout=120)
    assert await zak_of(kube, namespace, "phoenix") != first_zak
    assert (await exit_of(bots, "phoenix-1")()).exit_code == 137
    sim.end_meeting(number)
    status = await bots.wait_phase("phoenix", "Succeeded", timeout=60)
    assert status["attempts"] == 2


async def test_deleting_the_bot_mid_meeting_makes_it_leave(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    image: str,
) -> None:
    number = sim.create_meeting(zoom["id"])["number"]
    await bots.apply("goner", spec(zoomsim, image, number))
    await bots.wait_phase("goner", "InMeeting", timeout=120)
    await bots.delete("goner")
    # The bot leaves the meeting (SIGTERM), it does not just drop off.
    left = await wait_for(lambda: sim.participants(number, "left"), 60, what="the bot leaving")
    assert [p["leftReason"] for p in left] == ["left"]
    await wait_for(lambda: bots.children_gone("goner"), 90, what="everything removed")


def _attempts(bots: Bots, name: str, attempts: int) -> Any:
    async def reached() -> bool:
        return (await bots.status(name)).get("attempts") == attempts

    return reached


async def test_an_obf_bot_joins_on_behalf_of_its_user_and_leaves_with_them(
    kube: Kube,
    namespace: str,
    bots: Bots,
    sim: SimAdmin,
    zoomsim: ZoomSim,
    operator: OperatorProcess,
    image: str,
) -> None:
    """The whole OBF chain: a person authorizes in a browser, the operator mints an OBF token
    with the grant, the real bot joins another account's meeting on the user's behalf, and
    leaves when the user does (4019): AuthorizingUserLeft, a success."""
    _, host, alice = await make_grant(
        kube, namespace, sim, zoomsim, operator, extra_spec={"botImages": [image]}
    )
    url = (await grant_body(kube, namespace))["status"]["authorizationUrl"]
    assert await authorize_in_browser(url, alice["email"]) == "Authorized"
    await wait_grant(kube, namespace, ready="True")
    number = sim.create_meeting(host["id"])["number"]
    alice_in = sim.add_participant(number, "Alice", user_id=alice["id"])
    obf = {"grantRef": {"name": "alice"}}
    await bots.apply("onbehalf", spec(zoomsim, image, number, auth="obf", obf=obf))
    status = await bots.wait_phase("onbehalf", "InMeeting", "Failed", timeout=120)
    assert status["phase"] == "InMeeting", status
    (me,) = [p for p in sim.participants(number, "in_meeting") if p["displayName"] == "Notetaker"]
    assert me["zoomUserId"] == alice["id"]
    sim.remove_participant(number, alice_in["userId"], mode="leave")
    done = await bots.wait_phase("onbehalf", "Succeeded", "Failed", timeout=60)
    assert (done["phase"], done["reason"]) == ("Succeeded", "AuthorizingUserLeft")
