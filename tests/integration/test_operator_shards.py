"""Shards: three operator replicas splitting namespaces into three shards, each shard led on a
Lease of its own, on the real API server with bots on kwok nodes played by scripted bots that
report through any replica (as the chart's Service sends them).

What is proven, and from where: every bot joins and finishes on its first attempt with one pod
(the API server's objects); every report is accepted wherever it landed (the bots' answers);
no service user goes past its account's cap (the bots' statuses); and no bot is ever written
by two replicas at once: the API server's audit log, where each replica is its own service
account, with the bodies of the Leases' writes, shows that every write to a bot's status, pod or
Secret was made by the replica holding its shard's Lease at that moment. The same with 1000 bots: `make bench`
(tests/bench/test_shards_bench.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from devenv.zoomsim import SimAdmin, ZoomSim
from tests.support.operator_fixtures import Kube
from tests.support.shards import (
    IN_PLACE,
    SHARDS,
    Burst,
    ShardedReplicas,
    killed_mid_burst,
    now_rfc3339,
    outside_tenure,
    tenant,
    tenures,
    writes_by_bot,
)

BOTS_PER_TENANT = 20
CAP = BOTS_PER_TENANT // 2  # two users per account: every seat taken, none past the cap


async def test_a_replica_killed_mid_burst_its_shard_moves_and_no_bot_is_written_by_two_at_once(
    kube: Kube,
    kubeconfig: Path,
    tmp_path: Path,
    ha_namespace: str,
    shard_namespaces: list[str],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    handed_secrets: list[str],
) -> None:
    killed = await killed_mid_burst(
        kube, kubeconfig, tmp_path, ha_namespace, shard_namespaces, sim, zoomsim, handed_secrets,
        per_tenant=BOTS_PER_TENANT,
    )  # fmt: skip
    print(f"\n{killed}")


@pytest.mark.parametrize("listed", [False, True], ids=["pattern", "namespaces-by-name"])
async def test_scaling_from_one_replica_to_three_and_back_moves_shards_without_losing_a_bot(
    kube: Kube,
    kubeconfig: Path,
    tmp_path: Path,
    ha_namespace: str,
    shard_namespaces: list[str],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    handed_secrets: list[str],
    listed: bool,
) -> None:
    """`listed`: the namespaces named one by one (as the chart's watchNamespaces), so that a
    replica watches only its shards' and opens new watches each time its shards move."""
    since = now_rfc3339()
    watched = ",".join(shard_namespaces) if listed else f"{ha_namespace}-*"
    async with ShardedReplicas(
        kube, kubeconfig, tmp_path, zoomsim, watched, ha_namespace
    ) as replicas:
        await replicas.add("a")
        await replicas.wait_led({"a"})  # one replica leads every shard
        opened = [await tenant(kube, n, sim, zoomsim, CAP) for n in shard_namespaces]
        async with Burst(kube, replicas, zoomsim, handed_secrets) as burst:
            third = BOTS_PER_TENANT // 3
            batches = [
                [f"bot-{i:02d}" for i in range(third)],
                [f"bot-{i:02d}" for i in range(third, 2 * third)],
                [f"bot-{i:02d}" for i in range(2 * third, BOTS_PER_TENANT)],
            ]
            await asyncio.gather(*(burst.launch(t, n) for n in batches[0] for t in opened))
            # Scale to three mid-run: "a" keeps one shard, "b" and "c" take one each.
            for name in ("b", "c"):
                await replicas.add(name)
            led = await replicas.wait_led({"a", "b", "c"})
            assert sorted(str(r) for r in led.values()) == ["a", "b", "c"]
            await asyncio.gather(*(burst.launch(t, n) for n in batches[1] for t in opened))
            # And back to one (a scale-down: SIGTERM, the Leases released): "a" leads them all.
            burst.reroute(leaving={"b", "c"})  # terminating pods leave the Service at once
            for name in ("b", "c"):
                replicas.processes[name].stop()
            await replicas.wait_led({"a"})
            await asyncio.gather(*(burst.launch(t, n) for n in batches[2] for t in opened))
            await burst.all_in_meeting(opened, timeout=180)
            await burst.finish(opened, sim)
            finished = now_rfc3339()  # the replica's own shutdown releases them all after this

    writes = writes_by_bot({t.namespace for t in opened}, since)
    assert len(writes) == SHARDS * BOTS_PER_TENANT
    held = tenures(ha_namespace, since)
    # Each shard began and ended with "a"; "a" kept one, and the two it gave up came back.
    spans = {shard: [r for r, start, _ in each if start < finished] for shard, each in held.items()}
    assert all(s[0] == s[-1] == "a" for s in spans.values()), held
    assert sorted(len(s) > 1 for s in spans.values()) == [False, True, True], held
    assert not outside_tenure(writes, held)
    # Scaled back, "a" took the two shards in place when its watches were cluster-wide, and
    # started again to watch their namespaces when they were named one by one.
    assert (IN_PLACE in (tmp_path / "a.log").read_text()) is not listed
