"""A MeetingBot from apply to a finished status, against the real control plane, the operator
process and the Zoom simulator, with a scripted bot speaking the runtime contract."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import httpx

from devenv.cluster import cluster
from devenv.operator_process import OperatorProcess
from devenv.zoomsim import SimAdmin, ZoomSim
from meetingbot_contract import JoinConfig
from tests.support.operator_fixtures import (
    SECRET_USE_LABEL,
    Bots,
    Kube,
    account_ready,
    wait_for,
    zoom_account,
)
from tests.support.scripted_bot import Scripted
from tests.support.specs import bot_spec


async def test_happy_path_to_succeeded(
    operator: OperatorProcess,
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    scripted: Scripted,
) -> None:
    number = sim.create_meeting(zoom["id"], passcode="pw-1", auth_required=True)["number"]
    await bots.apply("notetaker", bot_spec(number, meeting={"number": number, "passcode": "pw-1"}))

    bot = scripted("notetaker")
    run = asyncio.create_task(bot.run())
    status = await bots.wait_phase("notetaker", "InMeeting")
    assert status["zoomUser"] == zoom["users"][0]["email"]
    assert status["attempts"] == 1
    assert status["podName"] == "notetaker-1"
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Ready"] == conditions["InMeeting"] == "True"
    # kubectl wait works on the phase, as the README says.
    waited = cluster.kubectl(
        "-n",
        namespace,
        "wait",
        "--for=jsonpath={.status.phase}=InMeeting",
        "mb/notetaker",
        "--timeout=10s",
    )
    assert "condition met" in waited.stdout

    (person,) = sim.participants(number, "in_meeting")
    assert person["displayName"] == "Notetaker"
    assert person["zoomUserId"] == zoom["users"][0]["id"]

    sim.end_meeting(number)
    assert await run == "MeetingEnded"
    status = await bots.wait_phase("notetaker", "Succeeded", "Failed")
    assert (status["phase"], status["reason"]) == ("Succeeded", "MeetingEnded")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Complete"]["status"] == "True"
    # Finished well: Ready in kstatus's sense (Current), no longer in the meeting.
    assert (conditions["Ready"]["status"], conditions["InMeeting"]["status"]) == ("True", "False")
    assert status["joinedAt"] and status["leftAt"] and status["completionTime"]

    header, row = cluster.kubectl("-n", namespace, "get", "mb").stdout.splitlines()
    assert header.split() == ["NAME", "PHASE", "REASON", "MEETING", "USER", "AGE"]
    assert row.split()[:5] == [
        "notetaker",
        "Succeeded",
        "MeetingEnded",
        number,
        zoom["users"][0]["email"],
    ]

    async with httpx.AsyncClient(timeout=5) as http:
        metrics = (await http.get(operator.metrics_url)).text
    for line in (
        'meetingbot_zak_mints_total{result="ok"}',
        'meetingbot_bots_finished_total{phase="Succeeded",reason="MeetingEnded"}',
        'meetingbot_zoom_api_seconds_count{endpoint="zak"}',
        "meetingbot_apply_to_pod_seconds_count",
        "meetingbot_apply_to_in_meeting_seconds_count",
        # Its reports and pod changes carried into status writes (Starting to Succeeded).
        "meetingbot_status_lag_seconds_count",
        'meetingbot_reports_total{result="accepted"}',
        'meetingbot_bots{phase="Succeeded"}',
        # The bot's pod and Secret, counted by resource, never by object name.
        'meetingbot_kube_requests_total{code="201",resource="pods",verb="post"}',
        'meetingbot_kube_requests_total{code="201",resource="secrets",verb="post"}',
    ):
        value = next(
            (float(m.split()[-1]) for m in metrics.splitlines() if m.startswith(line)), 0.0
        )
        assert value >= 1, f"{line} is {value}"

    expected = {"Starting", "Joining", "InMeeting", "MeetingEnded"}
    await wait_for(lambda: _includes(bots.event_reasons("notetaker"), expected), 10, what="events")


async def test_children_are_owned_and_locked_down(
    kube: Kube, namespace: str, bots: Bots, zoom: dict[str, Any], sim: SimAdmin
) -> None:
    number = sim.create_meeting(zoom["id"])["number"]
    created = await bots.apply(
        "locked",
        bot_spec(
            number, podTemplate={"nodeSelector": {"type": "kwok"}, "annotations": {"team": "notes"}}
        ),
    )
    core = kube.core
    (pod,) = await bots.wait_pods("locked", timeout=30)
    secret = await core.read_namespaced_secret("locked-join", namespace)
    for child in (pod, secret):
        (owner,) = child.metadata.owner_references
        assert (owner.kind, owner.name, owner.uid, owner.controller) == (
            "MeetingBot",
            "locked",
            created["metadata"]["uid"],
            True,
        )
    assert pod.metadata.name == "locked-1"
    assert pod.metadata.annotations["team"] == "notes"
    spec_ = pod.spec
    assert spec_.automount_service_account_token is False
    assert spec_.restart_policy == "Never"
    assert spec_.security_context.run_as_non_root is True
    assert spec_.security_context.seccomp_profile.type == "RuntimeDefault"
    assert spec_.termination_grace_period_seconds >= 30
    (container,) = spec_.containers
    assert container.security_context.read_only_root_filesystem is True
    assert container.security_context.allow_privilege_escalation is False
    assert container.security_context.capabilities.drop == ["ALL"]
    assert container.resources.requests and container.resources.limits
    mount = next(m for m in container.volume_mounts if m.name == "join")
    assert mount.read_only is True
    config = JoinConfig.model_validate_json(base64.b64decode(secret.data["join.json"]))
    assert config.meeting.number == number
    assert config.zak is not None and config.zak.get_secret_value().startswith("simzak_")
    raw = json.loads(base64.b64decode(secret.data["join.json"]))
    # The account's own secrets never reach the bot.
    assert zoom["client_secret"] not in json.dumps(raw)
    assert zoom["sdk_secret"] not in json.dumps(raw)


async def test_waiting_room_then_admitted(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    scripted: Scripted,
) -> None:
    number = sim.create_meeting(zoom["id"], waiting_room=True)["number"]
    await bots.apply("patient", bot_spec(number))
    run = asyncio.create_task(scripted("patient").run())
    await bots.wait_phase("patient", "WaitingRoom")
    sim.admit(number)
    await bots.wait_phase("patient", "InMeeting")
    sim.end_meeting(number)
    await run
    assert (await bots.wait_phase("patient", "Succeeded"))["reason"] == "MeetingEnded"


async def test_an_obf_bot_joins_on_behalf_of_a_user_in_another_accounts_meeting(
    kube: Kube,
    namespace: str,
    bots: Bots,
    sim: SimAdmin,
    zoomsim: ZoomSim,
    operator: OperatorProcess,
    scripted: Scripted,
) -> None:
    """auth: obf: the operator mints the OBF token with the authorizing user's own token (from a
    Secret) for this meeting; the bot joins a meeting hosted by another account."""
    app = await zoom_account(kube, namespace, sim, zoomsim.url, app_published=True)
    assert (await account_ready(kube, namespace))["status"] == "True"
    host = sim.create_account()
    number = sim.create_meeting(host["id"])["number"]
    alice = sim.add_user(app["id"], email="alice@customer.example.com")
    await kube.core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "alice-token", "labels": {SECRET_USE_LABEL: "obf-token"}},
            "stringData": {"token": sim.authorize_user(alice["id"])},
        },
    )
    sim.add_participant(number, "Alice", user_id=alice["id"])
    await bots.apply(
        "onbehalf",
        bot_spec(
            number, auth="obf", obf={"userTokenSecretRef": {"name": "alice-token", "key": "token"}}
        ),
    )
    bot = scripted("onbehalf")
    run = asyncio.create_task(bot.run())
    status = await bots.wait_phase("onbehalf", "InMeeting", "Failed", timeout=60)
    assert status["phase"] == "InMeeting", status
    assert bot.config is not None and bot.config.zak is None and bot.config.obf_token is not None
    me = next(p for p in sim.participants(number, "in_meeting") if p["displayName"] == "Notetaker")
    assert me["zoomUserId"] == alice["id"]
    sim.end_meeting(number)
    await run
    assert (await bots.wait_phase("onbehalf", "Succeeded"))["reason"] == "MeetingEnded"


async def _includes(reasons: Awaitable[set[str]], expected: set[str]) -> bool:
    return expected <= await reasons


async def test_an_operator_given_many_namespaces_by_name_starts_bots_in_each(
    kube: Kube, ha_namespace: str, sim: SimAdmin, zoomsim: ZoomSim, tmp_path: Path
) -> None:
    """Namespaces listed by name are watched one by one: three watches of the operator's own
    in each (MeetingBots, bot pods, credentials Secrets; kube/watch.py). Twelve of them hold
    more connections than the operator's requests may use at once, and a bot in the last one
    still gets its pod and a status that says so."""
    # Watched whether or not they exist (a list there is empty): none needs making.
    others = [f"{ha_namespace}-{i}" for i in range(11)]
    own = OperatorProcess(
        cluster.kubeconfig_path(), tmp_path / "operator.log",
        namespaces=",".join([*others, ha_namespace]), allowed_endpoints=zoomsim.url,
    )  # fmt: skip
    zoom = await zoom_account(kube, ha_namespace, sim, zoomsim.url)
    own.start()
    try:
        await account_ready(kube, ha_namespace)
        bots = Bots(kube, ha_namespace)
        await bots.apply("last", bot_spec(sim.create_meeting(zoom["id"])["number"]))
        status = await bots.wait_phase("last", "Starting", timeout=30)
        assert (status["attempts"], status["podName"]) == (1, "last-1")
        assert [p.metadata.name for p in await bots.pods("last")] == ["last-1"]
    finally:
        own.stop()
