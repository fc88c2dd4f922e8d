"""A list-then-watch of one kind of object carrying a label, kept going for as long as the
operator runs: what kopf's watches do, with the label selector kopf's watches cannot send.

With the selector the API server sends only the labelled objects, and an object that loses its
label arrives as DELETED. Used where kopf's per-object machinery costs more than it gives:
the opted-in credentials Secrets (kopf would see every Secret in the namespaces, each bot's join
Secret included) and the bot pods (in a burst of 1000 bots, kopf's decoding and per-object
workers for their pods' events were a third of the operator's CPU; docs/benchmarks.md).

The callback receives each listed object with the type None (as kopf sends a list), then each
watch event with its type; bookmarks only move the resourceVersion on. A 410 (too old) or any
failure lists again, after a jittered backoff when it was a failure.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from meetingbot_operator.kube.client import ApiError
from meetingbot_operator.kube.verbs import Kube
from meetingbot_operator.settings import Settings

log = logging.getLogger(__name__)

# (event type, or None for an object of a list; the object)
Seen = Callable[[str | None, dict[str, Any]], Awaitable[None]]
# Each watch request ends after this long and is renewed (the API server's own limit is higher).
WATCH_SECONDS = 300
BACKOFF_MAX = 30.0
# A list is read in pages of this many objects: 10 000 pods in one answer would be one
# 50 MB body decoded at once.
PAGE = 500


class LabelledWatch:
    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        resource: str,
        selector: str,
        seen: Seen,
        *,
        first_list: bool = True,
    ) -> None:
        """`resource`: a core resource's plural ("pods", "secrets"). `first_list`: whether the
        objects of the first list are sent to `seen` (a relist's always are)."""
        self.kube = kube
        self.resource = resource
        self.selector = selector
        self.seen = seen
        self.first_list = first_list
        # Exact namespaces: one watch in each (the chart's Roles allow no more). Otherwise one
        # cluster-wide watch, filtered by the patterns as kopf filters its own watches.
        self.scopes: list[str | None] = (
            list(settings.namespaces) if settings.exact_namespaces else [None]
        )
        self._wanted = settings.watches
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._follow(scope), name=f"{self.resource}-watch {scope or '*'}")
            for scope in self.scopes
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _follow(self, namespace: str | None) -> None:
        failures = 0
        version = ""
        first = True
        path = self._path(namespace)
        while True:
            try:
                if not version:
                    version = await self._list(path, send=self.first_list or not first)
                    first = False
                options = {
                    "labelSelector": self.selector,
                    "resourceVersion": version,
                    "allowWatchBookmarks": "true",
                }
                async for event in self.kube.api.watch(path, options, WATCH_SECONDS):
                    obj = event["object"]
                    version = obj["metadata"].get("resourceVersion") or version
                    if event["type"] != "BOOKMARK":
                        await self._send(event["type"], obj)
                failures = 0
            except asyncio.CancelledError:
                raise
            except ApiError as error:
                version = ""
                if error.status == 410:  # too old: list again at once
                    continue
                failures += 1
                await self._pause(failures, f"HTTP {error.status}")
            except Exception as error:  # a watch must outlive any failure
                failures += 1
                version = ""
                await self._pause(failures, type(error).__name__)

    async def _list(self, path: str, send: bool) -> str:
        """List every labelled object, page by page; the list's resourceVersion."""
        params = {"labelSelector": self.selector, "limit": str(PAGE)}
        while True:
            page = await self.kube.api.request("GET", path, params=params)
            for obj in (page.get("items") or []) if send else []:
                await self._send(None, obj)
            more = page["metadata"].get("continue")
            if not more:
                return str(page["metadata"]["resourceVersion"])
            params = {**params, "continue": more}

    async def _send(self, event_type: str | None, obj: dict[str, Any]) -> None:
        if self._wanted(obj["metadata"].get("namespace", "")):
            await self.seen(event_type, obj)

    def _path(self, namespace: str | None) -> str:
        if namespace:
            return f"/api/v1/namespaces/{namespace}/{self.resource}"
        return f"/api/v1/{self.resource}"

    async def _pause(self, failures: int, why: str) -> None:
        delay = min(2.0**failures, BACKOFF_MAX) * random.uniform(0.5, 1.0)  # noqa: S311
        log.warning(
            "watch interrupted",
            extra={"resource": self.resource, "error": why, "retry_in": round(delay, 1)},
        )
        await asyncio.sleep(delay)
