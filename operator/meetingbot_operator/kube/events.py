"""Kubernetes Events about our objects, posted in the background.

Posting never blocks or fails a reconcile: events go into a bounded queue drained by a few
workers, and one that cannot be posted is logged and dropped (events are informational; the
status is the record). As client-go's recorder does, posting is rate-limited (a token bucket,
`MEETINGBOT_EVENTS_PER_SECOND` with a burst of `EVENTS_BURST`), so a burst of bots spends the
API server on Secrets and Pods first; 0 posts no Events (the operator's log has the same lines).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from aiolimiter import AsyncLimiter

from meetingbot_operator import metrics
from meetingbot_operator.kube.client import ApiError
from meetingbot_operator.kube.verbs import Kube

log = logging.getLogger(__name__)
COMPONENT = "meetingbot-operator"
# Events waiting for the rate limit, at most (client-go's recorder queues 1000 too): at 10/s,
# a minute and a half of them; more are dropped and counted. 10 000 held 14 MB in a burst of
# 10 000 bots, of Events that would have been minutes stale when posted.
QUEUE_SIZE = 1000
WORKERS = 2  # informational: kept light so a burst of events does not slow the bots
EVENTS_BURST = 25  # client-go's spam filter allows a burst of 25


class EventRecorder:
    def __init__(self, kube: Kube, per_second: float = 10.0) -> None:
        self.kube = kube
        self.enabled = per_second > 0
        burst = min(EVENTS_BURST, max(1.0, per_second))
        self.limiter = AsyncLimiter(burst, burst / per_second) if self.enabled else None
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._workers = [
            asyncio.create_task(self._work(), name=f"events-{i}") for i in range(WORKERS)
        ]

    def post(self, body: dict[str, Any], type_: str, reason: str, message: str) -> None:
        if not self.enabled:
            return
        meta = body["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": body["apiVersion"],
                "kind": body["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": COMPONENT,
            "action": reason,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            metrics.EVENTS_DROPPED.inc()

    async def _work(self) -> None:
        while True:
            event = await self.queue.get()
            try:
                assert self.limiter is not None
                async with self.limiter:
                    await self.kube.create_event(event)
            except (TimeoutError, ApiError, OSError) as error:
                metrics.EVENTS_DROPPED.inc()
                log.warning(
                    "event not posted",
                    extra={"reason": event["reason"], "error": type(error).__name__},
                )
            finally:
                self.queue.task_done()

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
