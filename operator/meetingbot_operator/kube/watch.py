"""A list-then-watch of one kind of object, kept going for as long as the operator runs: what
kopf's watches do, without kopf's per-object machinery and with a label selector if asked.

Used for the objects that come by the thousand: MeetingBots and their pods (in a burst of 1000
bots, kopf's decoding and per-object workers for their events were about half of the
operator's CPU; docs/benchmarks.md), and the opted-in credentials Secrets, for the selector:
kopf would see every Secret in the namespaces, each bot's join Secret included. With a selector
the API server sends only the labelled objects, and one that loses its label arrives as DELETED.

The callback receives each listed object with the type None (as kopf sends a list), then each
watch event with its type; bookmarks only move the resourceVersion on. A 410 (too old) or any
failure lists again, after a jittered backoff when it was a failure; an object the list no
longer holds was deleted while nothing was watched, and is sent as DELETED (kopf's relist sends
nothing for it: the operator kept such a MeetingBot, and its claim on a service user).
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from meetingbot_operator.kube.client import ApiError
from meetingbot_operator.kube.verbs import Kube
from meetingbot_operator.settings import Settings

log = logging.getLogger(__name__)

# (event type, or None for an object of a list; the object)
Seen = Callable[[str | None, dict[str, Any]], Awaitable[None]]
# The path of the collection watched in a namespace (None: in all of them).
Collection = Callable[[str | None], str]
# Each watch request ends after this long and is renewed (the API server's own limit is higher).
WATCH_SECONDS = 300
BACKOFF_MAX = 30.0
# A list is read in pages of this many objects: 10 000 pods in one answer would be one
# 50 MB body decoded at once.
PAGE = 500

Key = tuple[str, str]
# What is kept of each object seen, to tell a DELETED event for one that went unwatched: its
# uid, labels (values interned: most repeat from object to object) and its controller's uid,
# what the consumers read of a deleted object. 0.7 KB a pod, against 1.4 KB with the decoded
# labels and ownerReferences kept as they came (tracemalloc, 10 000 bot pods).
Kept = tuple[str, dict[str, str], str | None]


def core(resource: str) -> Collection:
    """A core resource's collection ("pods", "secrets")."""
    return lambda ns: f"/api/v1/namespaces/{ns}/{resource}" if ns else f"/api/v1/{resource}"


class ObjectWatch:
    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        resource: str,
        collection: Collection,
        seen: Seen,
        *,
        selector: str | None = None,
        first_list: bool = True,
        owns: Callable[[str], bool] = lambda _: True,
    ) -> None:
        """`resource`: the name logs give it. `first_list`: whether the objects of the first
        list are sent to `seen` (a relist's always are). `owns(namespace)`: whether this
        replica leads the namespace's shard (ha/shards.py; it grows when a shard is taken in
        place, then `relist` is called). Other shards' namespaces are not watched when the
        namespaces are exact (the API server filters, as for kopf's watches, ha/election.py),
        and their objects are neither sent nor remembered otherwise."""
        self.kube = kube
        self.resource = resource
        self.collection = collection
        self.selector = {"labelSelector": selector} if selector else {}
        self.seen = seen
        self.first_list = first_list
        # Exact namespaces: one watch in each (the chart's Roles allow no more). Otherwise one
        # cluster-wide watch, filtered by the patterns as kopf filters its own watches.
        self.scopes: list[str | None] = (
            [n for n in settings.namespaces if owns(n)] if settings.exact_namespaces else [None]
        )
        self._settings, self._owns = settings, owns
        self._tasks: list[asyncio.Task[None]] = []
        self._known: dict[Key, Kept] = {}
        # Whether a namespace is wanted, by namespace: fixed until a relist (above), and asked
        # on every event (matching kopf's patterns each time was 1.5 % of a burst's CPU).
        self._wanted_namespaces: dict[str, bool] = {}

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._follow(scope), name=f"{self.resource}-watch {scope or '*'}")
            for scope in self.scopes
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def relist(self) -> None:
        """List again now and watch on from there, as at the start: this replica took a shard
        in place (app.py's Operator.gain), whose objects the watch had dropped unread until
        then. The list is sent as a first list is (`first_list`), an object already known is
        sent again (its consumer finds nothing new in it), and what was known and is gone is
        sent as DELETED. Only cluster-wide: with exact namespaces a shard taken needs watches
        in other namespaces, and the operator starts again instead (ha/election.py)."""
        await self.stop()
        self._wanted_namespaces.clear()
        self.start()

    async def _follow(self, namespace: str | None) -> None:
        failures = 0
        version = ""
        first = True
        path = self.collection(namespace)
        while True:
            try:
                if not version:
                    version = await self._list(namespace, send=self.first_list or not first)
                    first = False
                options = {
                    **self.selector,
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

    async def _list(self, namespace: str | None, send: bool) -> str:
        """List every (labelled) object, page by page; the list's resourceVersion. When the
        list is whole, what was known and is no longer there is sent as DELETED."""
        params = {**self.selector, "limit": str(PAGE)}
        listed: set[Key] = set()
        while True:
            page = await self.kube.api.request(
                "GET", self.collection(namespace), params=params, listing=True
            )
            for obj in page.get("items") or []:
                meta = obj["metadata"]
                listed.add((meta.get("namespace", ""), meta["name"]))
                if send:
                    await self._send(None, obj)
                elif self._wanted(meta.get("namespace", "")):
                    self._keep(None, obj)
            more = page["metadata"].get("continue")
            if not more:
                break
            params = {**params, "continue": more}
        for key in [k for k in self._known if k not in listed and namespace in (None, k[0])]:
            uid, labels, controller = self._known[key]
            owners = [{"uid": controller, "controller": True}] if controller else []
            meta = {"namespace": key[0], "name": key[1], "uid": uid, "labels": labels}
            await self._send("DELETED", {"metadata": {**meta, "ownerReferences": owners}})
        return str(page["metadata"]["resourceVersion"])

    async def _send(self, event_type: str | None, obj: dict[str, Any]) -> None:
        if self._wanted(obj["metadata"].get("namespace", "")):
            self._keep(event_type, obj)
            await self.seen(event_type, obj)

    def _keep(self, event_type: str | None, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        if event_type == "DELETED":
            self._known.pop(key, None)
        else:
            controller = next(
                (o.get("uid") for o in meta.get("ownerReferences") or [] if o.get("controller")),
                None,
            )
            labels = {k: sys.intern(v) for k, v in (meta.get("labels") or {}).items()}
            self._known[key] = (meta.get("uid", ""), labels, controller)

    def _wanted(self, namespace: str) -> bool:
        wanted = self._wanted_namespaces.get(namespace)
        if wanted is None:
            wanted = self._settings.watches(namespace) and self._owns(namespace)
            self._wanted_namespaces[namespace] = wanted
        return wanted

    async def _pause(self, failures: int, why: str) -> None:
        delay = min(2.0**failures, BACKOFF_MAX) * random.uniform(0.5, 1.0)  # noqa: S311
        log.warning(
            "watch interrupted",
            extra={"resource": self.resource, "error": why, "retry_in": round(delay, 1)},
        )
        await asyncio.sleep(delay)
