"""A replica's life under leader election: standby until it leads a shard, then the operator
(kopf) for the shards it leads, until a shutdown, a change of shards, or a lost Lease.

With one shard (the default) this is one leader and cold standbys. With N shards
(ha/shard_election.py) each replica leads the shards assigned to it and stands by for the rest.

A cold standby on purpose: it keeps no watches and no cache, so two replicas never both act
on a shard, and memory is spent once. A leader that is to lead more shards (another replica
died, or left) takes them in place when its watches are cluster-wide (namespace patterns, or
none): its operator lists them and leads them too, and what it led goes on meanwhile
(app.py's Operator.gain). One that is to give a shard up (another replica came), or whose
watches are per namespace (watchNamespaces by name: the shard taken needs watches kopf
cannot add), stops its operator, gives up what is no longer its own, takes what is, and
starts again: what it knows is rebuilt from the watches, as any restart does (the state lives
in the objects), and nothing it gives up is acted on after its Lease is released. Losing a
Lease stops the operator and exits with 1: the kubelet restarts the container, which comes
back as a standby (client-go's controllers do the same).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import signal
from typing import Any

import kopf
from pydantic import SecretStr

from meetingbot_operator import keys, metrics
from meetingbot_operator.ha.lease import LeadershipLost, LeaseTiming
from meetingbot_operator.ha.renewer import Renewer, Stopped
from meetingbot_operator.ha.routing import Router, signed_endpoints
from meetingbot_operator.ha.shard_election import ShardElector
from meetingbot_operator.ha.shards import ShardSet
from meetingbot_operator.ha.standby import Standby
from meetingbot_operator.kube.client import KubeClient
from meetingbot_operator.kube.verbs import Kube
from meetingbot_operator.settings import Settings

log = logging.getLogger(__name__)
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Ended(enum.Enum):
    SHUTDOWN = "shutdown"  # a signal: everything given up, exit 0
    LOST = "lost"  # a Lease lost: exit 1
    MOVED = "moved"  # the shards this replica should lead changed: stand by, start again


def endpoints(settings: Settings) -> dict[str, str]:
    host = f"[{settings.pod_ip}]" if ":" in settings.pod_ip else settings.pod_ip
    found = {"report": f"http://{host}:{settings.report_port}"}
    if settings.oauth_port:
        found["oauth"] = f"http://{host}:{settings.oauth_port}"
    return found


async def run(settings: Settings, identity: str, kopf_options: dict[str, Any]) -> int:
    """The process's exit code: 0 after a shutdown, 1 after a Lease was lost."""
    api = KubeClient.connect()
    timing = LeaseTiming(
        duration=settings.lease_duration_seconds,
        renew_deadline=settings.lease_renew_deadline_seconds,
        retry=settings.lease_retry_seconds,
    )
    # The report key the release's replicas share signs the endpoints this replica publishes
    # when it leads: the others forward bots' tokens to nowhere else (ha/routing.py).
    key = await keys.load_key(settings, Kube(api))
    elector = ShardElector(
        api, settings.pod_namespace, settings.leader_lease_name, identity,
        signed_endpoints(key, endpoints(settings)), timing, settings.shards, settings.pod_uid,
    )  # fmt: skip
    shards = ShardSet(settings.shards, frozenset())
    router = Router(shards, elector.holder, identity, key)
    for shard in range(settings.shards):
        metrics.SHARD_LEADER.labels(str(shard)).set(0)
    try:
        while True:
            try:
                if not await _stand_by(settings, elector, router):
                    await elector.leave()
                    return 0
            except LeadershipLost as lost:
                log.error("lost a shard while standing by: %s; exiting", lost)
                return 1
            shards.lead(elector.held)
            ended = await _lead(settings, elector, shards, router, kopf_options, key)
            if ended is Ended.LOST:
                return 1
            if ended is Ended.SHUTDOWN:
                return 0
    finally:
        metrics.LEADER.set(0)
        await router.close()
        await api.close()


async def _stand_by(settings: Settings, elector: ShardElector, router: Router) -> bool:
    """Serve as a standby (forwarding to the shards' leaders) until this replica leads a shard
    (True) or a signal says stop (False). The shards it still holds are renewed meanwhile."""
    metrics.LEADER.set(0)
    standby = Standby(settings, router)
    await standby.start()
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in SIGNALS:
        loop.add_signal_handler(sig, stopping.set)
    log.info("standing by", extra={"lease": elector.base, "identity": elector.identity})
    try:
        while not stopping.is_set():
            wanted = await elector.look()
            await elector.release(elector.held - wanted)
            await elector.acquire(wanted - elector.held)
            if elector.held:
                return not stopping.is_set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), elector.timing.retry)
        return False
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)  # kopf installs its own
        await standby.stop()


async def _lead(
    settings: Settings,
    elector: ShardElector,
    shards: ShardSet,
    router: Router,
    kopf_options: dict[str, Any],
    key: SecretStr | None,
) -> Ended:
    metrics.LEADER.set(1)
    for shard in shards.held:
        metrics.SHARD_LEADER.labels(str(shard)).set(1)
    stop = asyncio.Event()
    ended: list[tuple[Stopped, str]] = []

    def told(why: Stopped, message: str) -> None:
        ended.append((why, message))
        stop.set()

    memo = kopf.Memo(step_down=None, report_key=keys.LoadedKey(key), shards=shards, router=router)

    def gained(taken: frozenset[int]) -> None:
        """Shards the renewals took to lead in place: the running operator leads them too."""
        for shard in taken:
            metrics.SHARD_LEADER.labels(str(shard)).set(1)
        if stop.is_set():
            return  # stopping: a shutdown releases them, a move takes them when it starts
        runtime = memo.get("runtime")
        if runtime is None:  # still starting: it cannot list them yet, so it starts again
            renewer.restart("a shard was taken before the operator had started")
            return
        runtime.gain(taken, incomplete=lambda why: None if stop.is_set() else renewer.restart(why))

    # In place only with cluster-wide watches: kopf's namespaces are fixed while it runs.
    renewer = Renewer(elector, told, None if settings.exact_namespaces else gained)
    renewer.start()
    log.info("leading", extra={"shards": sorted(shards.held), "identity": elector.identity})
    stepped_down = False

    async def step_down() -> None:
        """Called by the cleanup handler once the operator has stopped acting (its watches
        are closed, its runtime stopped): what this replica gives up may be taken now, without
        waiting for kopf's grace period for leftover tasks (5 s)."""
        nonlocal stepped_down
        if stepped_down:
            return
        stepped_down = True
        # kopf waits on the stop flag in a task of its own: after a signal (kopf's handlers,
        # not the flag, stopped it) that task was still waiting, and kopf gave it 5 s before
        # cancelling it, so every shutdown took 5 s longer than it needed.
        stop.set()
        metrics.LEADER.set(0)
        for shard in shards.held | elector.held:
            metrics.SHARD_LEADER.labels(str(shard)).set(0)
        await renewer.halt()
        if renewer.stopped is None:  # a shutdown: everything given up at once
            await elector.leave()
        # Lost: not ours to release. Moved: given up and taken when standing by.

    options = {**kopf_options, "namespaces": _namespaces(settings, shards)}
    memo.step_down = step_down
    try:
        await kopf.operator(**options, stop_flag=stop, memo=memo)
    finally:
        await step_down()  # if kopf stopped before its cleanup ran
    if renewer.stopped is Stopped.LOST:
        log.error("stopped leading: %s; exiting to come back as a standby", ended[0][1])
        return Ended.LOST
    if renewer.stopped is Stopped.MOVED:
        log.info("the shards to lead changed; starting again")
        return Ended.MOVED
    return Ended.SHUTDOWN


def _namespaces(settings: Settings, shards: ShardSet) -> list[str]:
    """What kopf watches: with exact namespaces, only the ones of the shards held (the API
    server filters); with patterns or none, everything (the handlers filter, ha/shards.py)."""
    if shards.sharded and settings.exact_namespaces:
        owned = [n for n in settings.namespaces if shards.owns(n)]
        if owned:
            return owned
    return settings.namespaces
