"""High availability: leader election on a real Lease, and two operator processes, one
leading and one standing by, through a graceful handover and a SIGKILL.

The Lease tests drive leader.Lease directly against the API server; the replica test runs
two operators (as the chart's two pods do) on one namespace of their own, with scripted bots
that report through the standby's port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from devenv.operator_process import OperatorProcess, install_crds
from devenv.zoomsim import SimAdmin, ZoomSim
from meetingbot_operator.ha.lease import LeadershipLost, Lease, LeaseTiming
from meetingbot_operator.ha.shard_election import ShardElector
from meetingbot_operator.kube.client import KubeClient
from meetingbot_operator.meetingbot.reports import uploads_path
from tests.support.artifacts import bucket_for, deliver_one
from tests.support.operator_fixtures import Bots, Kube, account_ready, wait_for, zoom_account
from tests.support.replicas import holder_of, leads, replica_pair
from tests.support.scripted_bot import ScriptedBot
from tests.support.specs import bot_spec
from tests.support.streams import meetingstream, phase_is, zooms_delivery
from tests.support.webhook_receiver import (
    Receiver,
    a_whole_story,
    phases_told,
    signing_secret,
    webhook,
)

QUICK = LeaseTiming(duration=4, renew_deadline=3, retry=0.5)


def lease(api: KubeClient, namespace: str, identity: str) -> Lease:
    return Lease(api, namespace, "election", identity, {"report": f"http://{identity}"}, QUICK)


async def test_one_replica_wins_a_race_for_the_lease(
    kube: Kube, operator_api: KubeClient, namespace: str
) -> None:
    replicas = [lease(operator_api, namespace, f"r{i}") for i in range(4)]
    won = await asyncio.gather(*(r.try_acquire_or_renew() for r in replicas))
    assert won.count(True) == 1
    winner = replicas[won.index(True)]
    assert await holder_of(kube, namespace, "election") == winner.identity
    # The others see it held; the holder renews.
    assert [await r.try_acquire_or_renew() for r in replicas if r is not winner] == [False] * 3
    assert await winner.try_acquire_or_renew()
    found = replicas[0].current_holder()  # as its last look saw it
    assert found is not None and found.endpoints == {"report": f"http://{winner.identity}"}


async def test_a_released_lease_is_taken_at_once_an_abandoned_one_after_it_expires(
    kube: Kube, operator_api: KubeClient, namespace: str
) -> None:
    first, second = (
        lease(operator_api, namespace, "first"),
        lease(operator_api, namespace, "second"),
    )
    assert await first.try_acquire_or_renew()
    assert not await second.try_acquire_or_renew()
    await first.release()
    assert await holder_of(kube, namespace, "election") is None
    assert await second.try_acquire_or_renew()  # no wait
    # `second` stops renewing (as a SIGKILLed process would): `first` waits one lease
    # duration from when it first saw the record unchanged, by its own clock.
    assert not await first.try_acquire_or_renew()
    seen = time.monotonic()
    await wait_for(first.try_acquire_or_renew, QUICK.duration * 3, QUICK.retry, what="taken")
    assert time.monotonic() - seen >= QUICK.duration - QUICK.retry
    assert await holder_of(kube, namespace, "election") == "first"


async def test_a_holder_that_lost_its_lease_stops_leading(
    kube: Kube, operator_api: KubeClient, namespace: str
) -> None:
    """The leader's look at its Leases (ha/renewer.py runs it every `retry` seconds) says the
    Lease is lost once another replica holds it."""
    holder = ShardElector(operator_api, namespace, "election", "holder", {}, QUICK, 1)
    usurper = lease(operator_api, namespace, "usurper")
    await holder.acquire(await holder.look())
    assert holder.held == {0}
    assert await holder.look() == {0}  # renewed
    # Another replica writes the Lease (as after a partition: ours had expired for it).
    api: Any = client.CoordinationV1Api(kube.api)
    for _ in range(20):
        body = await api.read_namespaced_lease("election", namespace)
        body.spec.holder_identity = "usurper"
        try:
            await api.replace_namespaced_lease("election", namespace, body)
            break
        except ApiException as error:
            if error.status != 409:
                raise
    else:
        raise AssertionError("the Lease kept changing under 20 writes")
    with pytest.raises(LeadershipLost, match="another replica"):
        await holder.look()
    assert not await holder.shards[0].try_acquire_or_renew()
    assert await usurper.try_acquire_or_renew()  # it renews what it holds


def _metric(process: OperatorProcess, name: str) -> float:
    text = httpx.get(process.metrics_url, timeout=5).text
    (line,) = [x for x in text.splitlines() if x.startswith(f"{name} ")]
    return float(line.split()[1])


async def test_the_standby_forwards_reports_and_takes_over_without_losing_a_bot(
    kube: Kube,
    kubeconfig: Path,
    tmp_path: Path,
    ha_namespace: str,
    sim: SimAdmin,
    zoomsim: ZoomSim,
    handed_secrets: list[str],
    receiver: Receiver,
) -> None:
    namespace = ha_namespace
    install_crds()

    a, b = replica_pair(
        kubeconfig,
        tmp_path,
        zoomsim,
        namespace,
        namespace,
        webhook_endpoints=receiver.url,
        webhook_timeout_seconds="2",
        webhook_backoff_max_seconds="2",
    )
    a.start()

    async def leader_is(name: str) -> bool:
        return await holder_of(kube, namespace, "meetingbot-operator") == name

    await wait_for(lambda: leader_is("a"), 30, what="a leads")
    b.start()  # healthy as a standby
    try:
        await _handover(kube, namespace, a, b, sim, zoomsim, handed_secrets, leader_is, receiver)
    finally:
        for process in (a, b):
            process.stop()


async def _handover(
    kube: Kube,
    namespace: str,
    a: OperatorProcess,
    b: OperatorProcess,
    sim: SimAdmin,
    zoomsim: ZoomSim,
    handed_secrets: list[str],
    leader_is: Any,
    receiver: Receiver,
) -> None:
    assert (_metric(a, "meetingbot_leader"), _metric(b, "meetingbot_leader")) == (1.0, 0.0)
    zoom = await zoom_account(kube, namespace, sim, zoomsim.url)
    await account_ready(kube, namespace)
    number = sim.create_meeting(zoom["id"])["number"]
    bots = Bots(kube, namespace)
    await signing_secret(kube, namespace)
    path = f"/hooks/{namespace}/"
    scripted: dict[str, ScriptedBot] = {}
    runs: list[asyncio.Task[str]] = []

    async def start(name: str, via: OperatorProcess) -> None:
        await bots.apply(name, {**bot_spec(number), "webhook": webhook(receiver, path + name)})
        bot = scripted[name] = ScriptedBot(kube, namespace, name, zoomsim.url, handed_secrets)
        bot.report_through(via.report_url)
        run = asyncio.create_task(bot.run())
        runs.append(run)

        async def in_meeting() -> bool:
            if run.done():
                run.result()  # a scripted bot that failed says why
            return (await bots.status(name)).get("phase") == "InMeeting"

        await wait_for(in_meeting, 60, what=f"{name} InMeeting")

    # Reports sent to the standby reach the leader.
    for name in ("x", "y"):
        await start(name, via=b)
    # The bots' webhook receiver goes down: from here on, every notification waits in its
    # bot's status through a handover and a SIGKILL.
    receiver.stop()
    # A graceful handover (a rolling update, a drain): the Lease is released, b leads.
    stopped = time.monotonic()
    a.stop()
    await wait_for(lambda: leader_is("b"), 30, 0.1, what="b leads")
    print(f"\ngraceful handover: b led {time.monotonic() - stopped:.1f}s after a's SIGTERM")
    await start("z", via=b)  # the new leader starts bots
    # a comes back as the standby; b is SIGKILLed: a leads once the Lease expires.
    a.start()
    assert _metric(a, "meetingbot_leader") == 0.0
    for bot in scripted.values():
        bot.report_through(a.report_url)
    killed = time.monotonic()
    b.kill()
    await wait_for(lambda: leader_is("a"), 30, 0.1, what="a leads")
    print(f"after a SIGKILL: a led {time.monotonic() - killed:.1f}s later (lease 6 s)")
    sim.end_meeting(number)
    assert sorted(await asyncio.gather(*runs)) == ["MeetingEnded"] * 3
    for name in scripted:
        status = await bots.wait_phase(name, "Succeeded", timeout=60)
        assert (status["reason"], status["attempts"]) == ("MeetingEnded", 1), name
        assert [p.metadata.name for p in await bots.pods(name)] == [f"{name}-1"]
        # No report lost: every one was accepted, through the standby, a takeover or a kill.
        assert set(scripted[name].answers) == {202}, (name, scripted[name].answers)
    assert _metric(a, "meetingbot_leader") == 1.0
    # Back up: every bot's notifications arrive, in order, none lost to the leader changes.
    pending = {name: (await bots.status(name))["webhook"]["pending"] for name in scripted}
    assert all(pending.values()), pending
    receiver.start()
    for name in scripted:

        async def delivered(name: str = name) -> bool:
            hook = (await bots.status(name)).get("webhook") or {}
            return not hook.get("pending")

        await wait_for(delivered, 60, what=f"{name}'s webhook delivered")
        events = receiver.accepted(path + name)
        assert a_whole_story(phases_told(events)), (name, phases_told(events))
        assert [e["sequence"] for e in events] == list(range(1, len(events) + 1)), name


async def test_a_standby_forwards_a_bots_uploads_to_the_leader(
    kube: Kube,
    kubeconfig: Path,
    tmp_path: Path,
    ha_namespace: str,
    sim: SimAdmin,
    zoomsim: ZoomSim,
    handed_secrets: list[str],
) -> None:
    """The chart's Service sends a bot's upload requests to any replica, like its reports."""
    namespace = ha_namespace
    async with leader_and_standby(kube, kubeconfig, tmp_path, zoomsim, namespace) as (_, b):
        await zoom_account(kube, namespace, sim, zoomsim.url)
        await account_ready(kube, namespace)
        bucket = await bucket_for(kube, namespace)
        bots = Bots(kube, namespace)
        await bots.apply("w", bot_spec(capture={"askPermission": False}, artifacts=bucket.spec()))
        config = await ScriptedBot(kube, namespace, "w", zoomsim.url, handed_secrets).read_config(1)
        assert config.capture is not None
        through_b = b.report_url + uploads_path(namespace, "w")
        key = await deliver_one(config, through_b)
        status = await bots.wait_status(
            "w", lambda s: (s.get("artifacts") or {}).get("objects") == 1
        )
        manifest = await bucket.manifest(status["artifacts"]["manifestKey"])
        assert manifest is not None and [e.key for e in manifest.entries] == [key]
        await bucket.store.close()


@contextlib.asynccontextmanager
async def leader_and_standby(
    kube: Kube, kubeconfig: Path, logs: Path, zoomsim: ZoomSim, namespace: str
) -> AsyncIterator[tuple[OperatorProcess, OperatorProcess]]:
    """Replicas "a" (leading) and "b" (standing by) on one namespace, stopped afterwards."""
    install_crds()
    a, b = replica_pair(kubeconfig, logs, zoomsim, namespace, namespace)
    a.start()
    try:
        await wait_for(lambda: leads(kube, namespace, "a"), 30, what="a leads")
        b.start()
        yield a, b
    finally:
        for process in (a, b):
            process.stop()


async def test_a_standby_forwards_zooms_rtms_webhooks_to_the_leader(
    kube: Kube,
    kubeconfig: Path,
    tmp_path: Path,
    ha_namespace: str,
    sim: SimAdmin,
    zoomsim: ZoomSim,
) -> None:
    """Zoom posts to whichever replica the Service picks: the standby forwards an RTMS webhook
    (and Zoom's URL validation) to the leader, which records the stream."""
    namespace = ha_namespace
    async with leader_and_standby(kube, kubeconfig, tmp_path, zoomsim, namespace) as (_, b):
        app = sim.create_account(plan="pro")
        sim.update_account(app["id"], event_notification_url=f"{b.oauth_url}/zoom/rtms")
        meeting = sim.create_meeting(app["id"])
        await meetingstream(kube, namespace, "standup", app, meeting={"number": meeting["number"]})
        await phase_is(kube, namespace, "standup", "Waiting")
        assert sim.validate_app_endpoint(app["id"])
        stream = sim.start_rtms(meeting["number"], app["id"])
        starting = await phase_is(kube, namespace, "standup", "Starting")
        assert [s["streamId"] for s in starting["streams"]] == [stream["id"]]
        delivery = await zooms_delivery(sim, stream["id"])
        assert delivery["status"] == 200


async def test_a_leader_stopped_by_sigterm_leaves_kopf_no_task_to_wait_for(
    kube: Kube, kubeconfig: Path, tmp_path: Path, ha_namespace: str, zoomsim: ZoomSim
) -> None:
    """A SIGTERM stops a leader's kopf through kopf's own signal handlers, not the stop flag
    the election hands it (ha/election.py): the task waiting on that flag was left behind,
    and kopf gave it 5 s before cancelling it, on every shutdown (every rolling update, every
    pod deleted). Stepping down sets the flag: kopf has no hung task, and the Lease is free."""
    leader, _ = replica_pair(kubeconfig, tmp_path, zoomsim, ha_namespace, ha_namespace)
    leader.start()
    await wait_for(lambda: leads(kube, ha_namespace, "a"), 30, what="a leads")
    leader.stop()
    assert leader.process is not None and leader.process.returncode == 0
    log = (tmp_path / "a.log").read_text()
    assert "Hung tasks stopping is skipped: no tasks given" in log
    assert "Hung tasks are stopped" not in log
    assert await holder_of(kube, ha_namespace, "meetingbot-operator") is None


def test_a_replica_whose_port_was_taken_since_it_was_made_starts_on_others(
    kubeconfig: Path, tmp_path: Path
) -> None:
    """The harness: a replica's ports are picked when it is made, and a test may start it
    minutes later, when an outgoing connection can hold one (CI saw a standby exit with 1
    there). It starts again on new ports instead of failing the test."""
    replica = OperatorProcess(kubeconfig, tmp_path / "op.log", None, namespaces="nowhere")
    taken = replica.health_port
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        replica.start()
        try:
            assert replica.health_port != taken
            assert b"address already in use" in (tmp_path / "op.log").read_bytes()
        finally:
            replica.stop()
