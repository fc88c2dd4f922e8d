"""The operator survives a SIGKILL in the middle of a burst: nothing lost, nothing duplicated.
And no token or secret appears in any line it logged."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from devenv.operator_process import OperatorProcess
from devenv.zoomsim import SimAdmin, ZoomSim
from tests.support.operator_fixtures import Bots, Kube, account_ready, wait_for, zoom_account
from tests.support.scripted_bot import ScriptedBot
from tests.support.specs import bot_spec

BURST = 200
OWN_BOTS = 10


async def test_sigkill_mid_burst_then_restart(
    kube: Kube,
    namespace: str,
    bots: Bots,
    sim: SimAdmin,
    zoomsim: ZoomSim,
    operator: OperatorProcess,
) -> None:
    zoom = await zoom_account(kube, namespace, sim, zoomsim.url, plan="business", users=3)
    await account_ready(kube, namespace)
    number = sim.create_meeting(zoom["id"])["number"]
    spec = bot_spec(number, displayName="Burst")

    async def pods() -> list[Any]:
        listed = await kube.core.list_namespaced_pod(namespace, label_selector="meetingbot.dev/bot")
        return list(listed.items)

    async def apply_all() -> None:
        await asyncio.gather(*(bots.apply(f"b{i:03d}", spec) for i in range(BURST)))

    async def forty() -> bool:
        return len(await pods()) >= 40

    applying = asyncio.create_task(apply_all())
    await wait_for(forty, 120, 0.05, "40 pods")
    operator.kill()
    killed_at = len(await pods())
    await applying
    print(f"\nSIGKILL with {killed_at}/{BURST} pods created")
    assert killed_at < BURST, "the burst finished before the kill: nothing was proven"
    operator.start()

    async def settled() -> bool:
        listing = await bots.all()
        started = all((b.get("status") or {}).get("attempts") == 1 for b in listing)
        return len(listing) == BURST and started and len(await pods()) >= BURST

    started = time.monotonic()
    await wait_for(settled, 180, 0.5, "every bot started once")
    print(f"all {BURST} bots had their pod {time.monotonic() - started:.1f}s after the restart")
    await asyncio.sleep(3)  # anything duplicated late would show now

    names = Counter(p.metadata.name for p in await pods() if p.metadata.deletion_timestamp is None)
    assert sorted(names) == sorted(f"b{i:03d}-1" for i in range(BURST))
    assert set(names.values()) == {1}
    secrets = [
        s.metadata.name
        for s in (await kube.core.list_namespaced_secret(namespace)).items
        if s.metadata.name.endswith("-join")
    ]
    assert sorted(secrets) == sorted(f"b{i:03d}-join" for i in range(BURST))
    for item in await bots.all():
        assert item["status"]["podName"] == f"{item['metadata']['name']}-1"


async def test_a_start_backoff_survives_a_sigkill(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    operator: OperatorProcess,
) -> None:
    """The failure count and the next try live in status: a restarted operator neither resets
    the backoff nor tries before the time the previous one set."""
    core = kube.core
    await core.create_namespaced_resource_quota(
        namespace,
        {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}},
    )
    await bots.apply(
        "patient",
        bot_spec(sim.create_meeting(zoom["id"])["number"]),
    )
    # With the test operator's 1 s base: 1, 2, 4, 8 s... wait for a wait of several seconds.
    before = await bots.wait_status(
        "patient", lambda s: s.get("startFailures", 0) >= 4, 60, "four failed starts"
    )
    scheduled = datetime.fromisoformat(before["nextAttemptAt"])
    operator.kill()
    operator.start()
    restarted = datetime.now(UTC)
    assert scheduled - restarted > timedelta(seconds=1), "restarted too late: nothing proven"

    async def next_failure() -> dict[str, Any] | None:
        status = await bots.status("patient")
        return status if status.get("startFailures", 0) > before["startFailures"] else None

    after = await wait_for(next_failure, 90, 0.1, "the next failed start after the restart")
    seen = datetime.now(UTC)
    assert after["startFailures"] == before["startFailures"] + 1  # counted on, not from 1
    assert after["reason"] == "PodQuotaExceeded"
    # Not tried at once on restart: only once the time the killed operator had set came.
    assert seen >= scheduled - timedelta(milliseconds=500), (seen, scheduled)
    await core.delete_namespaced_resource_quota("no-pods", namespace)
    await bots.wait_pods("patient", timeout=90)


async def test_no_secret_in_any_operator_log_line(
    kube: Kube,
    namespace: str,
    bots: Bots,
    sim: SimAdmin,
    zoomsim: ZoomSim,
    operator: OperatorProcess,
    handed_secrets: list[str],
) -> None:
    """Every token the simulator issued (account tokens, ZAKs, OBF tokens), every account
    secret, and every signature and report token a bot was handed, against every line the
    operator logged. The test makes its own: bots that mint a ZAK each (reuse off), join a
    meeting with a passcode, and leave when the host ends it (whatever else ran before it in
    the session is checked too)."""
    zoom = await zoom_account(
        kube, namespace, sim, zoomsim.url, users=2, extra_spec={"zak": {"reuse": False}}
    )
    await account_ready(kube, namespace)
    meeting = sim.create_meeting(zoom["id"], passcode="s3cret-pass")
    spec = bot_spec(meeting["number"], displayName="Hygiene")
    spec["meeting"]["passcode"] = "s3cret-pass"
    names = [f"h{i}" for i in range(OWN_BOTS)]
    await asyncio.gather(*(bots.apply(name, spec) for name in names))
    mine: list[str] = []  # what this test's bots were handed
    players = [
        asyncio.create_task(ScriptedBot(kube, namespace, name, zoomsim.url, mine).run())
        for name in names
    ]
    await wait_for(
        lambda: bots.all_in_phase(names, "InMeeting"), 90, 0.2, "every bot in the meeting"
    )
    sim.end_meeting(meeting["number"])
    assert await asyncio.gather(*players) == ["MeetingEnded"] * OWN_BOTS
    await wait_for(lambda: bots.all_in_phase(names, "Succeeded"), 60, 0.2, "every bot done")

    handed_secrets.extend(mine)
    # A ZAK (reuse off) and a report token per bot, all distinct (signatures made in the same
    # second may coincide).
    assert len(set(mine)) >= 2 * OWN_BOTS
    own = {zoom["client_secret"], zoom["sdk_secret"], "s3cret-pass", *mine}
    secrets = set(sim.issued_secrets()) | set(handed_secrets) | own
    log = operator.log_path.read_text()
    assert all(name in log for name in names), "the operator logged nothing of these bots"
    leaked = sorted(s for s in secrets if s in log)
    assert not leaked, f"{len(leaked)} secrets in the operator's log"
