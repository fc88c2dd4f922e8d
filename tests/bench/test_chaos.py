"""The chaos run (`make chaos`, CHAOS_SECONDS, default 240): the chart's two replicas on the
real node, 50 bots in a meeting (scripted, on kwok nodes, reporting through the Service),
and one fault every CHAOS_INTERVAL seconds, in turn:

  the leader's pod deleted · the leader's container SIGKILLed · kube-apiserver, etcd and the
  rest of the control plane stopped and started · the kubelet restarted · containerd
  restarted · Zoom failing 30% of calls · a 429 storm · bot pods deleted at random

Then the meeting ends and the invariants are checked and printed as a table: every bot in a
terminal phase with the right reason, never two pods for one attempt, no orphaned Secret or
pod, no secret in any operator log, operator memory bounded. Loopback only. Not part of
`make test` (it restarts the cluster under everything).

The bots are scripted and live in the test process, so their partition is an iptables rule
on the host's traffic to the pod network's report port, not a pod's network namespace.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from devenv.cluster import cluster, node
from devenv.zoomsim import SimAdmin, ZoomSim
from tests.support.chart import RELEASE, SYSTEM, Release, leader_pod
from tests.support.operator_fixtures import Bots, Kube, account_ready, wait_for, zoom_account
from tests.support.processes import rss_mb
from tests.support.scripted_bot import ScriptedBot
from tests.support.specs import bot_spec

BOTS = 50
SECONDS = float(os.environ.get("CHAOS_SECONDS", "240"))
INTERVAL = float(os.environ.get("CHAOS_INTERVAL", "20"))
MEMORY_BOUND_MB = 400.0
TERMINAL_REASONS = {"Succeeded": {"MeetingEnded"}}
# A Failed bot is right only when its retries ran out on a fault the run injected.
INJECTED = {"PodDisrupted", "ZoomUnavailable", "ZoomRateLimited", "BotUnresponsive"}


async def test_chaos(
    kube: Kube, running: Release, sim: SimAdmin, zoomsim: ZoomSim, handed_secrets: list[str]
) -> None:
    namespace = running.namespace
    zoom = await zoom_account(kube, namespace, sim, running.sandbox, plan="business", users=2)
    await account_ready(kube, namespace, timeout=60)
    number = sim.create_meeting(zoom["id"])["number"]
    service = await kube.core.read_namespaced_service(RELEASE, SYSTEM)
    report_base = f"http://{service.spec.cluster_ip}:8081"
    bots = Bots(kube, namespace)
    names = [f"c{i:02d}" for i in range(BOTS)]
    for name in names:
        await bots.apply(name, bot_spec(number, displayName=name, retry={"limit": 10}))
    plays = [
        asyncio.create_task(_play(kube, namespace, name, zoomsim.url, report_base, handed_secrets))
        for name in names
    ]
    watch = _Watch(kube, namespace)
    watching = asyncio.create_task(watch.run())

    async def all_in() -> bool:
        phases = Counter((b.get("status") or {}).get("phase") for b in await bots.all())
        return phases["InMeeting"] == BOTS

    await wait_for(all_in, 180, 1, what=f"{BOTS} bots InMeeting")
    faults = _faults(kube, namespace, sim)
    done: list[tuple[str, float]] = []
    started = time.monotonic()
    turn = 0
    while time.monotonic() - started < SECONDS:
        name, inject = faults[turn % len(faults)]
        began = time.monotonic()
        print(f"[chaos {began - started:5.0f}s] {name}", flush=True)
        await inject()
        done.append((name, round(time.monotonic() - began, 1)))
        turn += 1
        await asyncio.sleep(max(0.0, INTERVAL - (time.monotonic() - began)))
    sim.set_faults()  # Zoom healthy again
    # Settle: every bot back in the meeting (or ended), then the meeting ends.
    await wait_for(all_in, 300, 2, what="the bots back in the meeting after the chaos")
    sim.end_meeting(number)
    await asyncio.wait_for(asyncio.gather(*plays), 300)

    async def terminal() -> bool:
        listing = await bots.all()
        return all((b.get("status") or {}).get("phase") in ("Succeeded", "Failed") for b in listing)

    await wait_for(terminal, 300, 2, what="every bot terminal")
    await asyncio.sleep(10)  # anything doubled or orphaned late would show now
    watching.cancel()
    rows = await _invariants(kube, namespace, bots, watch, sim, handed_secrets)
    print(f"\nfaults injected ({len(done)} in {SECONDS:.0f}s):")
    for name, count in Counter(n for n, _ in done).items():
        print(f"  {name:<40} x{count}")
    print(f"\n{'invariant':<52} {'result':<8} detail")
    for check, ok, detail in rows:
        print(f"{check:<52} {'ok' if ok else 'FAILED':<8} {detail}")
    assert all(ok for _, ok, _ in rows), [r for r in rows if not r[1]]


async def _play(
    kube: Kube, namespace: str, name: str, sim_url: str, report_base: str, seen: list[str]
) -> list[str]:
    """One bot's scripted life across attempts: a pod deleted under it ends the attempt
    ("Canceled"); the next attempt's pod gets a new run; no pod for a while: the bot is done."""
    bot = ScriptedBot(kube, namespace, name, sim_url, seen)
    bot.report_through(report_base)
    bot.config_timeout = 240.0
    reasons: list[str] = []
    attempt = 1
    while True:
        try:
            reason = await bot.run(attempt)
        except TimeoutError:
            return reasons
        reasons.append(reason)
        if reason != "Canceled":
            return reasons
        attempt += 1


class _Watch:
    """Every pod and operator process seen during the run."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.uids: dict[str, set[str]] = defaultdict(set)  # pod name (bot-attempt) -> uids
        self.peak_rss_mb = 0.0

    async def run(self) -> None:
        while True:
            try:
                listed = await self.kube.core.list_namespaced_pod(
                    self.namespace, label_selector="meetingbot.dev/bot"
                )
                for pod in listed.items:
                    self.uids[pod.metadata.name].add(pod.metadata.uid)
            except Exception as error:  # the API server restarting: look again later
                print(f"  (watch: {type(error).__name__})", flush=True)
            self.peak_rss_mb = max(self.peak_rss_mb, _operator_rss_mb())
            await asyncio.sleep(1)


def _operator_rss_mb() -> float:
    """The largest RSS among the operator processes (containers on the real node are host
    processes too)."""
    largest = 0.0
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"meetingbot_operator" in (proc / "cmdline").read_bytes():
                largest = max(largest, rss_mb(int(proc.name)))
        except OSError:
            continue  # gone meanwhile
    return largest


def _faults(
    kube: Kube, namespace: str, sim: SimAdmin
) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
    real_node = cluster.real_node()

    async def delete_leader() -> None:
        leader = await leader_pod(kube)
        if leader is not None:
            await kube.core.delete_namespaced_pod(leader.metadata.name, SYSTEM)

    async def kill_leader() -> None:
        leader = await leader_pod(kube)
        if leader is not None and leader.status.container_statuses:
            node.kill_container(leader.status.container_statuses[0].container_id)

    async def restart_control_plane() -> None:
        seconds = await asyncio.to_thread(cluster.restart_control_plane)
        print(f"  API server ready {seconds:.1f}s after the stop", flush=True)

    async def restart(name: str) -> None:
        await asyncio.to_thread(real_node.restart, name)

    async def zoom_errors() -> None:
        sim.set_faults(error_rate=0.3, error_status=503)
        await asyncio.sleep(INTERVAL / 2)
        sim.set_faults()

    async def rate_limit_storm() -> None:
        sim.set_faults(error_rate=1.0, error_status=429)
        await asyncio.sleep(INTERVAL / 4)
        sim.set_faults()

    async def partition() -> None:
        """The bots cut off from the operator: their reports (host -> pod network, port 8081)
        dropped for half an interval, then let through again."""
        rule = ["OUTPUT", "-d", node.POD_CIDR, "-p", "tcp", "--dport", "8081", "-j", "DROP"]
        subprocess.run(["iptables", "-w", "-I", *rule], check=True)
        try:
            await asyncio.sleep(INTERVAL / 2)
        finally:
            subprocess.run(["iptables", "-w", "-D", *rule], check=True)

    async def delete_bot_pods() -> None:
        listed = await kube.core.list_namespaced_pod(namespace, label_selector="meetingbot.dev/bot")
        live = [p for p in listed.items if p.metadata.deletion_timestamp is None]
        for pod in random.sample(live, min(3, len(live))):
            await kube.core.delete_namespaced_pod(pod.metadata.name, namespace)

    return [
        ("the leader's pod deleted", delete_leader),
        ("Zoom fails 30% of calls", zoom_errors),
        ("API server, etcd, controllers stopped+started", restart_control_plane),
        ("3 bot pods deleted", delete_bot_pods),
        ("the leader's container SIGKILLed", kill_leader),
        ("kubelet restarted", lambda: restart("kubelet")),
        ("429 storm", rate_limit_storm),
        ("containerd restarted", lambda: restart("containerd")),
        ("bots cut off from the operator", partition),
    ]


async def _invariants(
    kube: Kube,
    namespace: str,
    bots: Bots,
    watch: _Watch,
    sim: SimAdmin,
    seen: list[str],
) -> list[tuple[str, bool, str]]:
    listing = await bots.all()
    outcomes = Counter(
        (b["status"].get("phase"), b["status"].get("reason")) for b in listing if b.get("status")
    )
    wrong = [
        f"{b['metadata']['name']}: {b['status'].get('phase')}/{b['status'].get('reason')}"
        for b in listing
        if not _right_outcome(b.get("status") or {})
    ]
    doubled = {name: len(uids) for name, uids in watch.uids.items() if len(uids) > 1}
    pods = (
        await kube.core.list_namespaced_pod(namespace, label_selector="meetingbot.dev/bot")
    ).items
    uids = {b["metadata"]["uid"] for b in listing}
    orphan_pods = [
        p.metadata.name
        for p in pods
        if not any(o.uid in uids for o in p.metadata.owner_references or [])
    ]
    live_pods = [
        p.metadata.name
        for p in pods
        if p.metadata.deletion_timestamp is None and p.status.phase in ("Pending", "Running")
    ]
    secrets = (await kube.core.list_namespaced_secret(namespace)).items
    join_secrets = [s.metadata.name for s in secrets if s.metadata.name.endswith("-join")]
    logs = _operator_logs()
    leaked = [s for s in {*seen, *sim.issued_secrets()} if s and s in logs]
    attempts = Counter(b["status"].get("attempts") for b in listing if b.get("status"))
    return [
        (
            f"all {BOTS} bots terminal, with the right reason",
            not wrong and len(listing) == BOTS,
            f"{dict(outcomes)}; attempts per bot {dict(sorted(attempts.items()))}"
            + (f"; wrong: {wrong[:5]}" if wrong else ""),
        ),
        (
            "never two pods for one attempt",
            not doubled,
            f"{len(watch.uids)} pods seen" + (f"; doubled: {doubled}" if doubled else ""),
        ),
        ("no pod without its bot", not orphan_pods, f"{len(pods)} pods" + _list(orphan_pods)),
        ("no bot pod still running", not live_pods, _list(live_pods) or "none"),
        ("no join Secret left", not join_secrets, _list(join_secrets) or "none"),
        (
            "no secret in any operator log",
            not leaked and bool(logs),
            f"{len(logs.splitlines())} lines, {len({*seen})} secrets looked for",
        ),
        (
            f"operator memory below {MEMORY_BOUND_MB:.0f} MB",
            0 < watch.peak_rss_mb < MEMORY_BOUND_MB,
            f"peak RSS {watch.peak_rss_mb:.0f} MB",
        ),
    ]


def _right_outcome(status: dict[str, Any]) -> bool:
    phase, reason = status.get("phase"), status.get("reason")
    if phase == "Succeeded":
        return reason in TERMINAL_REASONS["Succeeded"]
    return phase == "Failed" and reason in INJECTED


def _list(names: list[str]) -> str:
    return f": {names[:5]}" if names else ""


def _operator_logs() -> str:
    """The current and previous containers' logs of every operator pod."""
    text = ""
    for previous in ("false", "true"):
        result = cluster.kubectl(
            "-n", SYSTEM, "logs", "-l", "app.kubernetes.io/name=meetingbot-operator",
            "--tail", "-1", f"--previous={previous}", check=False,
        )  # fmt: skip
        text += result.stdout
    return text
