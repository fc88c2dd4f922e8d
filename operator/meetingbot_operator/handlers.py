"""kopf registrations only: each a few lines that hand the event to the services.

Level-based: watch events for MeetingBotSchedules, MeetingStreams, ZoomAccounts and
ZoomUserGrants (and, through watches of the operator's own, MeetingBots, bot Pods and
credentials Secrets: kube/watch.py) update what the services know and trigger a reconcile;
nothing depends on catching a particular change, so no handler progress is stored on the
objects and no finalizer is added (deleting a MeetingBot lets the garbage collector delete its
pod, whose SIGTERM makes the bot leave).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from meetingbot_api import GROUP, VERSION
from meetingbot_operator import allocations
from meetingbot_operator.app import KOPF_KINDS, Operator, health
from meetingbot_operator.kube import client as kube_client
from meetingbot_operator.settings import Settings

log = logging.getLogger(__name__)


class NoDiffBase(kopf.AnnotationsDiffBaseStorage):
    """No diff base: only watch-event handlers are registered here, and kopf would otherwise
    deep-copy every object on every event to compute one (a tenth of the CPU in a burst)."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    # The same credentials as the operator's own client: one way to the API server.
    return kube_client.connection()


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Our own prefix, chosen before any release: changing it later makes objects look new.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = NoDiffBase(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    # Only warnings from kopf itself become Events; ours are posted by events.EventRecorder.
    settings.posting.level = logging.WARNING
    settings.networking.request_timeout = 60
    # Each watch request ends after 30 s (the API server's timeoutSeconds) and resumes from
    # its resourceVersion: a stream that stalls, as measured on a just-started API server
    # (events held back for two minutes), is recycled instead of waited out.
    settings.watching.server_timeout = 30
    settings.watching.client_timeout = 45
    # A watch's (re)list comes in pages, as client-go's reflector pages it: after an
    # API-server restart at 10 000 bots, one unpaginated LIST of every MeetingBot and every
    # bot pod was held whole, as JSON and parsed, beside the cache it refreshes. Pages of 100:
    # a page of the largest legal MeetingBots (about 100 KB each within the CRD's caps) is
    # then at most ~10 MB of JSON, where 300 specs of 650 KB in one page of 500 had taken a
    # new leader past its memory limit.
    settings.watching.chunk_size = 100
    config = Settings()
    if config.exact_namespaces:
        # Exact namespaces: nothing to discover, so no cluster-wide RBAC (namespaces, CRDs).
        settings.scanning.disabled = True
    memo.runtime = await Operator.start(
        config, memo.get("report_key"), memo.get("shards"), memo.get("router")
    )


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    runtime: Operator | None = memo.get("runtime")
    if runtime is not None:
        await runtime.stop()
    step_down = memo.get("step_down")  # under leader election: release the Lease now
    if step_down is not None:
        await step_down()
    allocations.write_report()
    if log.isEnabledFor(logging.DEBUG):
        # kopf gives tasks still running after this 5 s before it cancels them: a shard's
        # move waits for them, so they are named here.
        current = asyncio.current_task()
        left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        log.debug("tasks left after cleanup", extra={"tasks": [repr(t.get_coro()) for t in left]})


@kopf.on.probe(id="state")
async def probe(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    return health(memo.runtime)


def _ours(event: kopf.RawEvent, memo: kopf.Memo) -> bool:
    """Whether the object is in a shard this process leads (always, unsharded): the others'
    events are dropped here, before anything is decoded into a model or kept."""
    namespace = (event["object"].get("metadata") or {}).get("namespace", "")
    return bool(memo.runtime.owns(namespace))


def _handed_on(plural: str) -> Callable[..., Awaitable[None]]:
    async def event_handler(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
        if _ours(event, memo):
            await memo.runtime.observe(plural, event["type"] or "ADDED", dict(event["object"]))

    return event_handler


# MeetingBotSchedules, MeetingStreams, ZoomAccounts and ZoomUserGrants: to their services.
for _plural in KOPF_KINDS:
    kopf.on.event(GROUP, VERSION, _plural, id=f"{_plural}-event")(_handed_on(_plural))
