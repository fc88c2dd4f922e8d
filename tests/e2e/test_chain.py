"""apply -> Secret -> Pod -> container -> Chromium -> meeting -> status, for real."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import time
from typing import Any

import pytest
from kubernetes import client

from devenv.cluster.node_agent import pod_template_for
from devenv.zoomsim import SimAdmin, ZoomSim
from meetingbot_contract import JoinConfig
from tests.support.operator_fixtures import Bots, wait_for

pytestmark = pytest.mark.usefixtures("node_agent")


def spec(zoomsim: ZoomSim, image: str, number: str, **extra: Any) -> dict[str, Any]:
    return {
        "accountRef": {"name": "main"},
        "meeting": {"number": number, **extra.pop("meeting", {})},
        "displayName": "Notetaker",
        "podTemplate": pod_template_for(image),
        **extra,
    }


def terminated_state(bots: Bots, pod_name: str) -> Any:
    pod = next(
        (p for p in bots.pods(pod_name.rsplit("-", 1)[0]) if p.metadata.name == pod_name), None
    )
    statuses = (pod.status.container_statuses or []) if pod else []
    return statuses[0].state.terminated if statuses else None


def zak_of(api_client: client.ApiClient, namespace: str, name: str) -> str:
    secret = client.CoreV1Api(api_client).read_namespaced_secret(f"{name}-join", namespace)
    config = JoinConfig.model_validate_json(base64.b64decode(secret.data["join.json"]))
    assert config.zak is not None
    return config.zak.get_secret_value()


async def test_in_meeting_then_succeeded_when_the_host_ends(
    bots: Bots, zoom: dict[str, Any], sim: SimAdmin, zoomsim: ZoomSim, image: str
) -> None:
    number = sim.create_meeting(zoom["id"], passcode="pw", auth_required=True)["number"]
    started = time.monotonic()
    bots.apply("real", spec(zoomsim, image, number, meeting={"passcode": "pw"}))
    status = await asyncio.to_thread(bots.wait_phase, "real", "InMeeting", timeout=120)
    print(f"\napply to InMeeting through the whole chain: {time.monotonic() - started:.1f}s")
    (person,) = sim.participants(number, "in_meeting")
    assert (person["displayName"], person["zoomUserId"]) == ("Notetaker", zoom["users"][0]["id"])
    assert status["joinedAt"]
    sim.end_meeting(number)
    done = await asyncio.to_thread(bots.wait_phase, "real", "Succeeded", "Failed", timeout=60)
    assert (done["phase"], done["reason"]) == ("Succeeded", "MeetingEnded")
    terminated = await asyncio.to_thread(
        wait_for, lambda: terminated_state(bots, "real-1"), 60, what="the container's exit"
    )
    assert terminated.exit_code == 0
    assert '"reason":"MeetingEnded"' in terminated.message


async def test_waiting_room_with_admission(
    bots: Bots, zoom: dict[str, Any], sim: SimAdmin, zoomsim: ZoomSim, image: str
) -> None:
    number = sim.create_meeting(zoom["id"], waiting_room=True)["number"]
    bots.apply("patient", spec(zoomsim, image, number))
    await asyncio.to_thread(bots.wait_phase, "patient", "WaitingRoom", timeout=120)
    sim.admit(number)
    await asyncio.to_thread(bots.wait_phase, "patient", "InMeeting", timeout=30)
    sim.end_meeting(number)
    assert (await asyncio.to_thread(bots.wait_phase, "patient", "Succeeded", timeout=60))[
        "reason"
    ] == "MeetingEnded"


async def test_wrong_passcode_fails_without_retry(
    bots: Bots, zoom: dict[str, Any], sim: SimAdmin, zoomsim: ZoomSim, image: str
) -> None:
    number = sim.create_meeting(zoom["id"], passcode="right")["number"]
    bots.apply("wrong", spec(zoomsim, image, number, meeting={"passcode": "wrong"}))
    status = await asyncio.to_thread(bots.wait_phase, "wrong", "Failed", "Succeeded", timeout=120)
    assert (status["phase"], status["reason"], status["attempts"]) == ("Failed", "WrongPasscode", 1)
    await asyncio.sleep(3)
    assert [p.metadata.name for p in bots.pods("wrong")] == ["wrong-1"]
    terminated = await asyncio.to_thread(
        wait_for, lambda: terminated_state(bots, "wrong-1"), 60, what="the container's exit"
    )
    assert terminated.exit_code == 3


async def test_a_crash_mid_meeting_gets_a_second_attempt_with_a_fresh_zak(
    api_client: client.ApiClient,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    image: str,
) -> None:
    number = sim.create_meeting(zoom["id"])["number"]
    bots.apply("phoenix", spec(zoomsim, image, number))
    await asyncio.to_thread(bots.wait_phase, "phoenix", "InMeeting", timeout=120)
    first_zak = zak_of(api_client, namespace, "phoenix")
    (pod,) = bots.pods("phoenix")
    container = f"k8s_{namespace}_{pod.metadata.name}_{pod.metadata.uid[:8]}"
    subprocess.run(
        ["podman", "kill", "--signal", "KILL", container], check=True, capture_output=True
    )
    await asyncio.to_thread(
        wait_for, lambda: bots.status("phoenix").get("attempts") == 2, 60, what="a second attempt"
    )
    await asyncio.to_thread(bots.wait_phase, "phoenix", "InMeeting", timeout=120)
    assert zak_of(api_client, namespace, "phoenix") != first_zak
    assert terminated_state(bots, "phoenix-1").exit_code == 137
    sim.end_meeting(number)
    status = await asyncio.to_thread(bots.wait_phase, "phoenix", "Succeeded", timeout=60)
    assert status["attempts"] == 2


async def test_deleting_the_bot_mid_meeting_makes_it_leave(
    api_client: client.ApiClient,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    image: str,
) -> None:
    number = sim.create_meeting(zoom["id"])["number"]
    bots.apply("goner", spec(zoomsim, image, number))
    await asyncio.to_thread(bots.wait_phase, "goner", "InMeeting", timeout=120)
    bots.delete("goner")
    # The bot leaves the meeting (SIGTERM), it does not just drop off.
    left = await asyncio.to_thread(
        wait_for, lambda: sim.participants(number, "left"), 60, what="the bot leaving"
    )
    assert [p["leftReason"] for p in left] == ["left"]
    await asyncio.to_thread(
        wait_for, lambda: bots.children_gone("goner"), 90, what="everything removed"
    )
