"""The leader's pod deleted in the middle of a burst, on the chart's two replicas on the real
node: what the HA test checks once and the takeover benchmark measures five times.

Bots sit on kwok nodes and are played by scripted bots that report through the chart's
Service (its ClusterIP, routed by the real node's kube-proxy), so a report may land on
either replica, before, during and after the takeover.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from devenv.zoomsim import SimAdmin
from tests.support.chart import RELEASE, SYSTEM, leader_pod, operator_pods
from tests.support.operator_fixtures import Bots, Kube, wait_for
from tests.support.scripted_bot import ScriptedBot
from tests.support.specs import bot_spec


@dataclass
class Takeover:
    bots: int
    pods_at_delete: int
    takeover_seconds: float  # from the delete call to another pod holding the Lease
    all_in_meeting_seconds: float  # from the first apply to the last bot InMeeting


async def leader_deleted_mid_burst(
    kube: Kube,
    namespace: str,
    sim: SimAdmin,
    sim_url: str,
    number: str,
    seen: list[str],
    *,
    prefix: str,
    count: int = 100,
) -> Takeover:
    """Apply `count` bots, delete the leading operator's pod once a tenth have their pod, and
    check: another replica leads, every bot joins and ends Succeeded on its first attempt,
    one pod per bot, every report accepted."""
    await _two_ready_replicas(kube)
    leader = await leader_pod(kube)
    assert leader is not None, "no replica leads"
    service = await kube.core.read_namespaced_service(RELEASE, SYSTEM)
    report_base = f"http://{service.spec.cluster_ip}:8081"
    bots = Bots(kube, namespace)
    names = [f"{prefix}-{i:03d}" for i in range(count)]
    scripted: dict[str, ScriptedBot] = {}
    runs: list[asyncio.Task[str]] = []
    started = time.monotonic()

    async def launch(name: str) -> None:
        await bots.apply(name, bot_spec(number, displayName=name))
        bot = scripted[name] = ScriptedBot(kube, namespace, name, sim_url, seen)
        bot.report_through(report_base)
        bot.config_timeout = 180.0  # pods wait for the takeover
        runs.append(asyncio.create_task(bot.run()))

    async def pods() -> list[Any]:
        listed = await kube.core.list_namespaced_pod(namespace, label_selector="meetingbot.dev/bot")
        return [p for p in listed.items if p.metadata.name.startswith(prefix)]

    applying = asyncio.gather(*(launch(name) for name in names))

    async def a_tenth() -> bool:
        return len(await pods()) >= count // 10

    await wait_for(a_tenth, 120, 0.02, what="a tenth of the pods")
    pods_at_delete = len(await pods())
    deleted = time.monotonic()
    await kube.core.delete_namespaced_pod(leader.metadata.name, SYSTEM)

    async def successor() -> bool:
        now = await leader_pod(kube)
        return now is not None and now.metadata.uid != leader.metadata.uid

    await wait_for(successor, 60, 0.05, what="another replica leading")
    takeover = time.monotonic() - deleted
    await applying

    async def all_in_meeting() -> bool:
        for run in runs:
            if run.done():
                run.result()  # a scripted bot that failed says why
        phases = Counter((b.get("status") or {}).get("phase") for b in await bots.all())
        return phases["InMeeting"] >= count

    await wait_for(all_in_meeting, 240, 0.5, what=f"{count} bots InMeeting")
    in_meeting = time.monotonic() - started
    sim.end_meeting(number)
    assert Counter(await asyncio.gather(*runs)) == {"MeetingEnded": count}

    async def all_succeeded() -> bool:
        listing = [b for b in await bots.all() if b["metadata"]["name"].startswith(prefix)]
        return all((b.get("status") or {}).get("phase") == "Succeeded" for b in listing)

    await wait_for(all_succeeded, 120, 0.5, what="every bot Succeeded")
    for body in await bots.all():
        if body["metadata"]["name"].startswith(prefix):
            status = body["status"]
            assert (status["reason"], status["attempts"]) == ("MeetingEnded", 1), body
    # Never a second pod for a bot, and every report accepted (202), none lost to the takeover.
    assert sorted(p.metadata.name for p in await pods()) == sorted(f"{n}-1" for n in names)
    refused = {n: b.answers for n, b in scripted.items() if set(b.answers) != {202}}
    assert not refused, refused
    return Takeover(count, pods_at_delete, round(takeover, 2), round(in_meeting, 1))


async def _two_ready_replicas(kube: Kube) -> None:
    async def ready() -> bool:
        pods = await operator_pods(kube)
        ready = [p for p in pods if _ready(p)]
        return len(ready) == 2 and len(pods) == 2 and await leader_pod(kube) is not None

    await wait_for(ready, 120, what="two Ready operator replicas, one leading")


def _ready(pod: Any) -> bool:
    statuses = pod.status.container_statuses or []
    return bool(statuses) and all(c.ready for c in statuses)
