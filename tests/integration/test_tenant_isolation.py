"""The second adversarial pass against real operator processes and the real API server: one
tenant's largest legal bots across a leader handover, a podTemplate too large for the cache
still reaching its pod, and a status written by someone else.

Figures (RSS, seconds) are printed, never asserted, except the one bound that is the finding
itself: the new leader stays under the chart's default memory limit."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from devenv.operator_process import install_crds
from devenv.zoomsim import SimAdmin, ZoomSim
from tests.support.operator_fixtures import (
    MERGE_PATCH,
    Bots,
    Kube,
    account_ready,
    wait_for,
    zoom_account,
)
from tests.support.replicas import replica_pair
from tests.support.scripted_bot import Scripted
from tests.support.specs import bot_spec, largest_pod_template

# The chart's default memory limit for the operator (values.yaml resources.limits.memory).
CHART_MEMORY_LIMIT_MB = 512
LARGEST_BOTS = 300
FAR_AHEAD = "2199-01-01T00:00:00Z"  # nothing starts (the CRD's latest joinAt is 2200)


@pytest.fixture
async def namespaces(kube: Kube) -> AsyncIterator[tuple[str, str]]:
    """A tenant's and another tenant's namespace, watched by this test's replicas only."""
    names = tuple(f"iso-{uuid.uuid4().hex[:8]}" for _ in range(2))
    for name in names:
        await kube.core.create_namespace({"metadata": {"name": name}})
    yield names[0], names[1]
    for name in names:
        await kube.core.delete_namespace(name)


async def test_the_largest_legal_bots_of_one_tenant_do_not_take_a_new_leader_down(
    kube: Kube,
    kubeconfig: Path,
    tmp_path: Path,
    namespaces: tuple[str, str],
    sim: SimAdmin,
    zoomsim: ZoomSim,
) -> None:
    """300 MeetingBots at every cap of the CRD, scheduled far ahead, then an ordinary handover
    (the leader stops, the standby leads and lists them all). The new leader stays well under
    the chart's memory limit, and another tenant's bot gets its pod."""
    tenant, other = namespaces
    install_crds()

    template = largest_pod_template()
    spec = {**bot_spec(), "joinAt": FAR_AHEAD, "podTemplate": template}
    bots = Bots(kube, tenant)
    started = time.monotonic()
    created = 0
    for batch in range(0, LARGEST_BOTS, 20):
        await asyncio.gather(
            *(bots.apply(f"big-{i}", spec) for i in range(batch, min(batch + 20, LARGEST_BOTS)))
        )
        created = min(batch + 20, LARGEST_BOTS)
    print(f"\n{created} largest legal MeetingBots applied in {time.monotonic() - started:.0f}s")
    a, b = replica_pair(kubeconfig, tmp_path, zoomsim, f"{tenant},{other}", other)
    a.start()
    try:

        async def all_scheduled() -> bool:
            listed = await bots.all()
            phases = [(x.get("status") or {}).get("phase") for x in listed]
            return phases.count("Scheduled") == LARGEST_BOTS

        await wait_for(all_scheduled, 180, 1, what="the first leader scheduling every bot")
        b.start()
        first_peak = a.peak_rss_mb()
        handover = time.monotonic()
        a.stop()  # a drain or a rolling upgrade: the standby leads and lists everything
        zoom = await zoom_account(kube, other, sim, zoomsim.url)
        await account_ready(kube, other, timeout=90)
        number = sim.create_meeting(zoom["id"])["number"]
        others = Bots(kube, other)
        await others.apply("neighbour", bot_spec(number))
        await others.wait_pods("neighbour", timeout=90)
        print(
            f"another tenant's bot had its pod {time.monotonic() - handover:.1f}s after the "
            "handover began"
        )
        # Every one of the 300 is still Scheduled under the new leader (it read them all).
        await wait_for(all_scheduled, 60, 1, what="the new leader keeping every bot")
        assert b.running(), "the new leader exited"
        peak = b.peak_rss_mb()
        print(
            f"peak RSS: first leader {first_peak:.0f} MB, "
            f"new leader {peak:.0f} MB (chart limit {CHART_MEMORY_LIMIT_MB} MB)"
        )
        assert peak < CHART_MEMORY_LIMIT_MB
    finally:
        for process in (a, b):
            process.stop()


async def test_a_pod_template_too_large_for_the_cache_still_reaches_the_pod(
    bots: Bots, zoom: dict[str, Any], sim: SimAdmin
) -> None:
    """The cache keeps a large podTemplate out (about 100 KB at the caps); the start reads
    the MeetingBot again and the pod gets every variable and annotation."""
    number = sim.create_meeting(zoom["id"])["number"]
    env = [{"name": f"SETTING_{i}", "value": f"{i}-" + "v" * 400} for i in range(48)]
    annotations = {f"example.com/note-{i}": "a" * 400 for i in range(16)}
    spec = bot_spec(number)
    spec["podTemplate"] = {**spec.get("podTemplate", {}), "env": env, "annotations": annotations}
    await bots.apply("large", spec)
    (pod,) = await bots.wait_pods("large", timeout=60)
    container_env = {e.name: e.value for e in pod.spec.containers[0].env}
    assert all(container_env.get(e["name"]) == e["value"] for e in env)
    assert all(pod.metadata.annotations.get(k) == v for k, v in annotations.items())


async def test_a_status_written_by_someone_else_is_not_believed(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    scripted: Scripted,
) -> None:
    """A principal allowed to patch meetingbots/status marks a bot in a meeting Succeeded:
    the operator restores its own status, the join Secret stays, the bot stays supervised and
    ends as the meeting does."""
    number = sim.create_meeting(zoom["id"])["number"]
    await bots.apply("watched", bot_spec(number))
    bot = scripted("watched")
    run = asyncio.create_task(bot.run())
    await bots.wait_phase("watched", "InMeeting", timeout=60)
    await kube.custom.patch_namespaced_custom_object_status(
        "meetingbot.dev",
        "v1alpha1",
        namespace,
        "meetingbots",
        "watched",
        {"status": {"phase": "Succeeded", "reason": "MeetingEnded", "message": "forged"}},
        _content_type=MERGE_PATCH,
    )

    async def restored() -> bool:
        status = await bots.status("watched")
        return status.get("phase") == "InMeeting" and status.get("message") != "forged"

    await wait_for(restored, 30, what="the operator's own status restored")
    assert len(await bots.secrets("watched-join")) == 1
    assert [p.metadata.deletion_timestamp for p in await bots.pods("watched")] == [None]
    sim.end_meeting(number)
    assert await run == "MeetingEnded"
    done = await bots.wait_phase("watched", "Succeeded", "Failed", timeout=60)
    assert (done["phase"], done["reason"]) == ("Succeeded", "MeetingEnded")
