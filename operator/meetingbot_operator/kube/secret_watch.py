"""Watches the opted-in Secrets (label `meetingbot.dev/secret-for`) and tells the accounts.

A watch of its own rather than a kopf handler: kopf's watches carry no label selector, so it
would see every Secret in the watched namespaces, every bot's join Secret included (a burst
of 1000 bots is 1000 events and 1000 kopf workers for nothing). With the selector the API
server sends only labelled Secrets, and a Secret that loses its label arrives as DELETED, so
a withdrawn opt-in is noticed as surely as a deleted Secret.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from meetingbot_operator.kube.client import ApiError
from meetingbot_operator.kube.secrets import USE_LABEL
from meetingbot_operator.kube.verbs import Kube
from meetingbot_operator.settings import Settings

log = logging.getLogger(__name__)

Changed = Callable[[str, str], Awaitable[None]]
# Each watch request ends after this long and is renewed (the API server's own limit is higher).
WATCH_SECONDS = 300
BACKOFF_MAX = 30.0


class SecretWatch:
    def __init__(self, kube: Kube, settings: Settings, on_change: Changed) -> None:
        self.kube = kube
        self.on_change = on_change
        # Exact namespaces: one watch in each (the chart's Roles allow no more). Otherwise one
        # cluster-wide watch, filtered by the patterns as kopf filters its own watches.
        exact = settings.exact_namespaces
        self.scopes: list[str | None] = list(settings.namespaces) if exact else [None]
        self._wanted = settings.watches
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._follow(scope), name=f"secret-watch {scope or '*'}")
            for scope in self.scopes
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _follow(self, namespace: str | None) -> None:
        failures = 0
        version = ""
        first = True  # at start the accounts verify on their own events: nothing changed yet
        while True:
            try:
                if not version:
                    # Relist: whatever changed while not watching counts as changed.
                    listed = await self.kube.api.request(
                        "GET", self._path(namespace), params={"labelSelector": USE_LABEL}
                    )
                    version = listed["metadata"]["resourceVersion"]
                    for secret in [] if first else listed.get("items", []):
                        await self._changed(
                            secret["metadata"]["namespace"], secret["metadata"]["name"]
                        )
                    first = False
                options = {
                    "labelSelector": USE_LABEL,
                    "resourceVersion": version,
                    "allowWatchBookmarks": "true",
                }
                events = self.kube.api.watch(self._path(namespace), options, WATCH_SECONDS)
                async for event in events:
                    meta = event["object"]["metadata"]
                    version = meta.get("resourceVersion") or version
                    if event["type"] != "BOOKMARK":
                        await self._changed(meta["namespace"], meta["name"])
                failures = 0
            except asyncio.CancelledError:
                raise
            except ApiError as error:
                if error.status == 410:  # too old: list again
                    version = ""
                    continue
                failures += 1
                version = ""
                await self._pause(failures, f"HTTP {error.status}")
            except Exception as error:  # a watch must outlive any failure
                failures += 1
                version = ""
                await self._pause(failures, type(error).__name__)

    @staticmethod
    def _path(namespace: str | None) -> str:
        return f"/api/v1/namespaces/{namespace}/secrets" if namespace else "/api/v1/secrets"

    async def _changed(self, namespace: str, name: str) -> None:
        if self._wanted(namespace):
            await self.on_change(namespace, name)

    @staticmethod
    async def _pause(failures: int, why: str) -> None:
        delay = min(2.0**failures, BACKOFF_MAX) * random.uniform(0.5, 1.0)  # noqa: S311
        log.warning("secret watch interrupted", extra={"error": why, "retry_in": round(delay, 1)})
        await asyncio.sleep(delay)
