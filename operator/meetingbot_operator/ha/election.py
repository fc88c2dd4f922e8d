"""A replica's life under leader election: standby until it holds the Lease, then the
operator (kopf) until a shutdown or the loss of the Lease.

A cold standby on purpose: it keeps no watches and no cache, so two replicas never both act,
and memory is spent once. A new leader rebuilds what it knows from the watches, as any
restart does (the state lives in the objects). Losing the Lease stops the operator and exits
with 1: the kubelet restarts the container, which comes back as a standby (client-go's
controllers do the same).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

import kopf
from pydantic import SecretStr

from meetingbot_operator import keys, metrics
from meetingbot_operator.ha.lease import Lease, LeaseTiming
from meetingbot_operator.ha.standby import Standby, signed_endpoints
from meetingbot_operator.kube.client import KubeClient
from meetingbot_operator.kube.verbs import Kube
from meetingbot_operator.settings import Settings

log = logging.getLogger(__name__)
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def endpoints(settings: Settings) -> dict[str, str]:
    host = f"[{settings.pod_ip}]" if ":" in settings.pod_ip else settings.pod_ip
    found = {"report": f"http://{host}:{settings.report_port}"}
    if settings.oauth_port:
        found["oauth"] = f"http://{host}:{settings.oauth_port}"
    return found


async def run(settings: Settings, identity: str, kopf_options: dict[str, Any]) -> int:
    """The process's exit code: 0 after a shutdown, 1 after the Lease was lost."""
    api = KubeClient.connect()
    timing = LeaseTiming(
        duration=settings.lease_duration_seconds,
        renew_deadline=settings.lease_renew_deadline_seconds,
        retry=settings.lease_retry_seconds,
    )
    # The report key the release's replicas share signs the endpoints this replica publishes
    # when it leads: standbys forward bots' tokens to nowhere else (ha/standby.py).
    key = await keys.load_key(settings, Kube(api))
    lease = Lease(
        api, settings.pod_namespace, settings.leader_lease_name, identity,
        signed_endpoints(key, endpoints(settings)), timing,
    )  # fmt: skip
    try:
        if not await _wait_for_leadership(settings, lease, key):
            return 0
        return await _lead(lease, kopf_options, keys.LoadedKey(key))
    finally:
        await api.close()


async def _wait_for_leadership(settings: Settings, lease: Lease, key: SecretStr | None) -> bool:
    """Serve as a standby until the Lease is ours (True) or a signal says stop (False)."""
    metrics.LEADER.set(0)
    standby = Standby(settings, lease, key)
    await standby.start()
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in SIGNALS:
        loop.add_signal_handler(sig, stopping.set)
    acquiring = asyncio.create_task(lease.acquire(), name="acquire the Lease")
    told_to_stop = asyncio.create_task(stopping.wait())
    log.info("standing by", extra={"lease": lease.name, "identity": lease.identity})
    try:
        await asyncio.wait({acquiring, told_to_stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)  # kopf installs its own
        for task in (acquiring, told_to_stop):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await standby.stop()
    acquired = acquiring.done() and not acquiring.cancelled() and acquiring.exception() is None
    if acquired and stopping.is_set():  # both at once: the signal wins
        await lease.release()
        return False
    return acquired


async def _lead(lease: Lease, kopf_options: dict[str, Any], key: keys.LoadedKey) -> int:
    metrics.LEADER.set(1)
    stop = asyncio.Event()
    holding = asyncio.create_task(lease.hold(), name="renew the Lease")
    holding.add_done_callback(lambda _: stop.set())

    async def step_down() -> None:
        """Called by the cleanup handler once the operator has stopped acting (its watches
        are closed, its runtime stopped): the next replica may start now, without waiting
        for kopf's grace period for leftover tasks (5 s)."""
        metrics.LEADER.set(0)
        if holding.done():
            return  # lost: not ours to release
        holding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await holding
        await lease.release()

    try:
        memo = kopf.Memo(step_down=step_down, report_key=key)
        await kopf.operator(**kopf_options, stop_flag=stop, memo=memo)
    finally:
        if not holding.done():  # kopf stopped before its cleanup ran
            await step_down()
    lost = not holding.cancelled() and holding.exception()
    if lost:
        log.error("stopped leading: %s; exiting to come back as a standby", lost)
        return 1
    return 0
