"""The operator's own list-then-watch (kube/watch.py) against a small API server over real
HTTP: paged lists, long lines, bookmarks, a 410 that lists again (and tells what went while
nothing was watched), kopf's namespace patterns."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import kopf
import pytest
from aiohttp import web

from meetingbot_operator.kube.client import KubeClient
from meetingbot_operator.kube.verbs import Kube
from meetingbot_operator.kube.watch import ObjectWatch, core
from meetingbot_operator.settings import Settings
from tests.support.operator_fixtures import wait_for

SELECTOR = "meetingbot.dev/bot"


def pod(namespace: str, name: str, version: str, note: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": namespace, "name": name, "resourceVersion": version}
    meta |= {"uid": f"u-{name}", "labels": {SELECTOR: name}}
    return {"metadata": {**meta, "annotations": {"note": note}}}


class ApiServer:
    """Lists in two pages; the first watch sends three events and a bookmark, the second is
    refused as too old (410), the third stays open."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.watches = 0

    async def pods(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        self.requests.append(query)
        if query.get("labelSelector") != SELECTOR:
            return web.json_response({"kind": "Status", "code": 400}, status=400)
        if query.get("watch") != "true":
            if "continue" not in query:
                first = {"resourceVersion": "10", "continue": "page-2"}
                return web.json_response({"metadata": first, "items": [pod("bots-a", "one", "5")]})
            rest = [pod("elsewhere", "x", "6"), pod("bots-b", "two", "7")]
            return web.json_response({"metadata": {"resourceVersion": "10"}, "items": rest})
        self.watches += 1
        if self.watches == 2:
            assert query["resourceVersion"] == "13"  # the bookmark's
            return web.json_response({"kind": "Status", "code": 410}, status=410)
        response = web.StreamResponse()
        await response.prepare(request)
        if self.watches == 1:
            assert query["resourceVersion"] == "10"
            for event in (
                {"type": "ADDED", "object": pod("bots-a", "three", "11", note="n" * 300_000)},
                {"type": "MODIFIED", "object": pod("elsewhere", "x", "12")},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "13"}}},
            ):
                line = json.dumps(event).encode() + b"\n"
                for start in range(0, len(line), 7000):  # a line arrives in many chunks
                    await response.write(line[start : start + 7000])
            return response
        await asyncio.sleep(3600)
        return response


@pytest.fixture
async def api() -> AsyncIterator[tuple[ApiServer, Kube]]:
    server = ApiServer()
    app = web.Application()
    app.router.add_get("/api/v1/pods", server.pods)
    runner = web.AppRunner(app, shutdown_timeout=0.1)  # the open watch is cut, not awaited
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    kube = Kube(KubeClient(kopf.ConnectionInfo(server=f"http://127.0.0.1:{port}")))
    yield server, kube
    await kube.close()
    await runner.cleanup()


async def events(
    kube: Kube, settings: Settings, count: int = 6, **options: Any
) -> list[tuple[str | None, Any]]:
    """The first `count` events an ObjectWatch of the pods sends: (type, the object's
    metadata)."""
    seen: list[tuple[str | None, Any]] = []
    done = asyncio.Event()

    async def record(event_type: str | None, obj: dict[str, Any]) -> None:
        seen.append((event_type, obj["metadata"]))
        if len(seen) == count:
            done.set()

    watch = ObjectWatch(kube, settings, "pods", core("pods"), record, selector=SELECTOR, **options)
    watch.start()
    try:
        await asyncio.wait_for(done.wait(), 10)
    finally:
        await watch.stop()
    return seen


async def test_lists_in_pages_watches_and_lists_again_when_too_old(
    api: tuple[ApiServer, Kube],
) -> None:
    server, kube = api
    sent = await events(kube, Settings(namespaces=["bots-*"]))
    seen = [(t, m["name"], len(m.get("annotations", {}).get("note", ""))) for t, m in sent]
    assert seen == [
        (None, "one", 0),  # the first page
        (None, "two", 0),  # the second; "x" is in a namespace not watched
        ("ADDED", "three", 300_000),  # a line longer than aiohttp's 128 KiB
        (None, "one", 0),  # listed again after the 410
        (None, "two", 0),
        ("DELETED", "three", 0),  # gone from the list: deleted while nothing was watched
    ]
    deleted = sent[-1][1]
    assert deleted["uid"] == "u-three" and deleted["labels"] == {SELECTOR: "three"}
    assert server.watches == 3
    assert all(r.get("limit") == "500" for r in server.requests if r.get("watch") != "true")


async def test_a_watch_that_skips_its_first_list_sends_the_next(
    api: tuple[ApiServer, Kube],
) -> None:
    _, kube = api
    sent = await events(kube, Settings(), first_list=False)
    assert [(t, m["name"]) for t, m in sent] == [
        ("ADDED", "three"),
        ("MODIFIED", "x"),
        (None, "one"),  # the list after the 410 is sent
        (None, "x"),
        (None, "two"),
        ("DELETED", "three"),  # and what the first list and the watch showed, gone from it
    ]


async def test_another_shards_namespaces_are_neither_sent_nor_remembered(
    api: tuple[ApiServer, Kube],
) -> None:
    """With patterns every replica's watch sees every namespace; a replica leading bots-a's
    shard only sends (and keeps, for telling deletions) bots-a's objects."""
    _, kube = api
    sent = await events(kube, Settings(namespaces=["bots-*"]), 4, owns=lambda n: n == "bots-a")
    assert [(t, m["name"]) for t, m in sent] == [
        (None, "one"),
        ("ADDED", "three"),
        (None, "one"),  # listed again after the 410: "two" (bots-b) is not this shard's
        ("DELETED", "three"),
    ]


async def test_with_exact_namespaces_a_replica_watches_only_its_shards(
    api: tuple[ApiServer, Kube],
) -> None:
    _, kube = api

    async def ignore(_: str | None, __: dict[str, Any]) -> None:
        return None

    settings = Settings(namespaces=["team-a", "team-b", "team-c"])
    watch = ObjectWatch(kube, settings, "pods", core("pods"), ignore, owns=lambda n: n != "team-b")
    assert watch.scopes == ["team-a", "team-c"]
    assert ObjectWatch(kube, settings, "pods", core("pods"), ignore).scopes == [
        "team-a",
        "team-b",
        "team-c",
    ]


class QuietApiServer:
    """Lists one pod in bots-a and one in bots-b; every watch stays open with nothing to say."""

    def __init__(self) -> None:
        self.lists = 0

    async def pods(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "true":
            self.lists += 1
            items = [pod("bots-a", "one", "5"), pod("bots-b", "two", "6")]
            return web.json_response({"metadata": {"resourceVersion": "10"}, "items": items})
        response = web.StreamResponse()
        await response.prepare(request)
        await asyncio.sleep(3600)
        return response


async def test_a_shard_taken_in_place_is_listed_again_and_kept_from_then_on() -> None:
    """A replica that takes bots-b's shard while it runs (app.py's Operator.gain) relists:
    bots-b's objects, dropped unread until then, are sent as a list's."""
    server = QuietApiServer()
    app = web.Application()
    app.router.add_get("/api/v1/pods", server.pods)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    kube = Kube(KubeClient(kopf.ConnectionInfo(server=f"http://127.0.0.1:{port}")))
    owned = {"bots-a"}
    seen: list[tuple[str | None, str]] = []

    async def record(event_type: str | None, obj: dict[str, Any]) -> None:
        seen.append((event_type, obj["metadata"]["name"]))

    watch = ObjectWatch(
        kube, Settings(namespaces=["bots-*"]), "pods", core("pods"), record,
        selector=SELECTOR, owns=lambda n: n in owned,
    )  # fmt: skip
    watch.start()
    try:
        await wait_for(lambda: seen == [(None, "one")], 10, 0.01, what="the first list")
        owned.add("bots-b")
        await watch.relist()
        await wait_for(lambda: len(seen) == 3, 10, 0.01, what="the list again")
        assert seen == [(None, "one"), (None, "one"), (None, "two")]
        assert server.lists == 2
    finally:
        await watch.stop()
        await kube.close()
        await runner.cleanup()
