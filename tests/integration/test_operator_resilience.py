"""The operator survives a SIGKILL in the middle of a burst: nothing lost, nothing duplicated.
And no token or secret appears in any line it logged during the whole test run."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client

from devenv.operator_process import OperatorProcess
from devenv.zoomsim import SimAdmin, ZoomSim
from tests.support.operator_fixtures import Bots, account_ready, wait_for, zoom_account
from tests.support.specs import bot_spec

BURST = 200


async def test_sigkill_mid_burst_then_restart(
    api_client: client.ApiClient,
    namespace: str,
    bots: Bots,
    sim: SimAdmin,
    zoomsim: ZoomSim,
    operator: OperatorProcess,
) -> None:
    zoom = zoom_account(api_client, namespace, sim, zoomsim.url, plan="business", users=3)
    account_ready(api_client, namespace)
    number = sim.create_meeting(zoom["id"])["number"]
    core = client.CoreV1Api(api_client)
    spec = bot_spec(number, displayName="Burst")

    def pods() -> list[client.V1Pod]:
        return core.list_namespaced_pod(namespace, label_selector="meetingbot.dev/bot").items

    async def apply_all() -> None:
        await asyncio.gather(
            *(asyncio.to_thread(bots.apply, f"b{i:03d}", spec) for i in range(BURST))
        )

    applying = asyncio.create_task(apply_all())
    await asyncio.to_thread(wait_for, lambda: len(pods()) >= 40, 120, 0.05, "40 pods")
    operator.kill()
    killed_at = len(pods())
    await applying
    print(f"\nSIGKILL with {killed_at}/{BURST} pods created")
    assert killed_at < BURST, "the burst finished before the kill: nothing was proven"
    operator.start()

    def settled() -> bool:
        listing = bots.custom.list_namespaced_custom_object(
            "meetingbot.dev", "v1alpha1", namespace, "meetingbots"
        )["items"]
        started = all((b.get("status") or {}).get("attempts") == 1 for b in listing)
        return len(listing) == BURST and started and len(pods()) >= BURST

    started = time.monotonic()
    await asyncio.to_thread(wait_for, settled, 180, 0.5, "every bot started once")
    print(f"all {BURST} bots had their pod {time.monotonic() - started:.1f}s after the restart")
    await asyncio.sleep(3)  # anything duplicated late would show now

    names = Counter(p.metadata.name for p in pods() if p.metadata.deletion_timestamp is None)
    assert sorted(names) == sorted(f"b{i:03d}-1" for i in range(BURST))
    assert set(names.values()) == {1}
    secrets = [
        s.metadata.name
        for s in core.list_namespaced_secret(namespace).items
        if s.metadata.name.endswith("-join")
    ]
    assert sorted(secrets) == sorted(f"b{i:03d}-join" for i in range(BURST))
    for item in bots.custom.list_namespaced_custom_object(
        "meetingbot.dev", "v1alpha1", namespace, "meetingbots"
    )["items"]:
        assert item["status"]["podName"] == f"{item['metadata']['name']}-1"


async def test_a_start_backoff_survives_a_sigkill(
    api_client: client.ApiClient,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    operator: OperatorProcess,
) -> None:
    """The failure count and the next try live in status: a restarted operator neither resets
    the backoff nor tries before the time the previous one set."""
    core = client.CoreV1Api(api_client)
    core.create_namespaced_resource_quota(
        namespace,
        client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name="no-pods"),
            spec=client.V1ResourceQuotaSpec(hard={"pods": "0"}),
        ),
    )
    bots.apply(
        "patient",
        bot_spec(sim.create_meeting(zoom["id"])["number"]),
    )
    # With the test operator's 1 s base: 1, 2, 4, 8 s... wait for a wait of several seconds.
    before = await asyncio.to_thread(
        wait_for,
        lambda: (s := bots.status("patient")).get("startFailures", 0) >= 4 and s,
        60,
        what="four failed starts",
    )
    scheduled = datetime.fromisoformat(before["nextAttemptAt"])
    operator.kill()
    operator.start()
    restarted = datetime.now(UTC)
    assert scheduled - restarted > timedelta(seconds=1), "restarted too late: nothing proven"
    after = await asyncio.to_thread(
        wait_for,
        lambda: (
            (s := bots.status("patient")).get("startFailures", 0) > before["startFailures"] and s
        ),
        90,
        0.1,
        "the next failed start after the restart",
    )
    seen = datetime.now(UTC)
    assert after["startFailures"] == before["startFailures"] + 1  # counted on, not from 1
    assert after["reason"] == "PodQuotaExceeded"
    # Not tried at once on restart: only once the time the killed operator had set came.
    assert seen >= scheduled - timedelta(milliseconds=500), (seen, scheduled)
    core.delete_namespaced_resource_quota("no-pods", namespace)
    await asyncio.to_thread(wait_for, lambda: bots.pods("patient"), 90, what="the bot starts")


def test_no_secret_in_any_operator_log_line(
    operator: OperatorProcess, sim: SimAdmin, handed_secrets: list[str]
) -> None:
    """Every token the simulator issued (account tokens, ZAKs, OBF tokens), every account
    secret, and every signature and report token a bot was handed, against every log line."""
    secrets = set(sim.issued_secrets()) | set(handed_secrets)
    log = operator.log_path.read_text()
    assert len(log.splitlines()) > 1000
    assert len(secrets) > 100
    leaked = sorted(s for s in secrets if s in log)
    assert not leaked, f"{len(leaked)} secrets in the operator's log"
