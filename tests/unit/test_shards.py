"""Shards: which shard a namespace is in, who should lead each shard, and where a request that
reached any replica goes (ha/shards.py, ha/shard_election.py, ha/routing.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer, make_mocked_request
from pydantic import SecretStr

from meetingbot_operator.ha import renewer
from meetingbot_operator.ha.lease import Holder, LeaseTiming
from meetingbot_operator.ha.routing import Router, shard_of_request, signed_endpoints
from meetingbot_operator.ha.shard_election import assign
from meetingbot_operator.ha.shards import ShardSet, shard_of
from meetingbot_operator.kube.client import KubeClient
from meetingbot_operator.settings import Settings
from tests.support.operator_fixtures import wait_for

KEY = SecretStr("the-release-key")


def test_a_namespace_is_in_one_shard_the_same_everywhere_and_the_shards_are_used_evenly() -> None:
    spread = Counter(shard_of(f"team-{i}", 3) for i in range(3000))
    assert set(spread) == {0, 1, 2}
    assert min(spread.values()) > 900  # within 10 % of a third
    # Stable: a value computed once is the value every replica of every release computes.
    assert [shard_of("team-a", 3), shard_of("team-b", 3), shard_of("meetingbot-test", 7)] == [
        shard_of("team-a", 3),
        shard_of("team-b", 3),
        shard_of("meetingbot-test", 7),
    ]
    assert shard_of("anything", 1) == 0
    assert ShardSet(3, frozenset({shard_of("team-a", 3)})).owns("team-a")
    assert not ShardSet(3, frozenset()).owns("team-a")
    assert ShardSet().owns("team-a")  # unsharded: everything


def test_each_replica_leads_its_fair_share_and_a_holder_keeps_its_shards() -> None:
    one = assign(3, ["a"], {})
    assert one == {0: "a", 1: "a", 2: "a"}
    # Two more replicas come: "a" keeps one shard (its fair share), the others take one each.
    three = assign(3, ["a", "b", "c"], one)
    assert Counter(three.values()) == {"a": 1, "b": 1, "c": 1}
    assert three[0] == "a"
    # "b" dies: only its shard moves, to whoever leads least.
    survivors = assign(3, ["a", "c"], {s: m for s, m in three.items() if m != "b"})
    moved = [s for s in range(3) if survivors[s] != three[s]]
    assert moved == [s for s in range(3) if three[s] == "b"]
    assert sorted(Counter(survivors.values()).values()) == [1, 2]
    # Back to one: everything to it. Nobody alive: nothing assigned.
    assert assign(3, ["c"], survivors) == {0: "c", 1: "c", 2: "c"}
    assert assign(3, [], {}) == {}


def test_every_replica_computes_the_same_assignment_whatever_order_it_lists_in() -> None:
    members = ["r1", "r2", "r3", "r4"]
    holders = {0: "r2", 5: "r2", 6: "r2", 7: "r3"}
    first = assign(8, members, holders)
    assert assign(8, list(reversed(members)), holders) == first
    assert max(Counter(first.values()).values()) == 2  # ceil(8 / 4)
    assert first[0] == "r2" and first[5] == "r2" and first[7] == "r3"  # kept, within the share


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/namespaces/team-a/meetingbots/b/report", "team-a"),
        ("/v1/namespaces/team-b/meetingbots/b/uploads/complete", "team-b"),
        ("/v1/rtms/streams/team-c/s/0/uploads", "team-c"),
        ("/oauth/start/team-d/grant?t=x", "team-d"),
        ("/oauth/callback?code=c&state=team-e/grant/n.1.m", "team-e"),
        ("/zoom/meetings", None),
        ("/zoom/rtms", None),
        ("/oauth/deauthorize", None),
        ("/v1/rtms/workers/w-1", 0),
    ],
)
def test_a_request_goes_to_the_shard_its_namespace_names(
    path: str, expected: str | int | None
) -> None:
    request = make_mocked_request("POST", path)
    wanted = shard_of(expected, 5) if isinstance(expected, str) else expected
    assert shard_of_request(request, 5) == wanted
    assert shard_of_request(request, 1) == 0  # unsharded: the one leader


async def test_a_request_is_handled_by_the_leader_of_its_shard_and_a_webhook_by_every_leader() -> (
    None
):
    """Three shards: this replica leads the shard of `mine`, a second replica (one server)
    leads the shard of `theirs`, and nobody leads the third yet."""
    count = 3
    namespaces = {shard_of(f"ns-{i}", count): f"ns-{i}" for i in range(50)}
    assert len(namespaces) == count
    mine, theirs, nobodys = namespaces[0], namespaces[1], namespaces[2]
    received: list[str] = []

    async def other_leader(request: web.Request) -> web.Response:
        received.append(request.path)
        return web.json_response({"who": "other"}, status=202)

    async def here(request: web.Request) -> web.Response:
        return web.json_response({"who": "here"}, status=200)

    other = web.Application()
    other.router.add_post("/{tail:.*}", other_leader)
    async with TestServer(other) as other_server:
        base = str(other_server.make_url("")).rstrip("/")
        published = signed_endpoints(KEY, {"report": base, "oauth": base})
        holders = {0: Holder("me", {}), 1: Holder("other", published), 2: None}
        router = Router(ShardSet(count, frozenset({0})), holders.get, "me", KEY)
        front = web.Application(middlewares=[router.middleware("report")])
        front.router.add_post("/{tail:.*}", here)
        try:
            async with TestServer(front) as front_server, httpx.AsyncClient() as http:

                async def post(path: str, **headers: str) -> httpx.Response:
                    url = str(front_server.make_url(path))
                    return await http.post(url, content=b"{}", headers=headers)

                assert (await post(f"/v1/namespaces/{mine}/meetingbots/b/report")).json() == {
                    "who": "here"
                }
                forwarded = await post(f"/v1/namespaces/{theirs}/meetingbots/b/report")
                assert (forwarded.status_code, forwarded.json()) == (202, {"who": "other"})
                # A shard without a leader: the bot is told to retry.
                waiting = await post(f"/v1/namespaces/{nobodys}/meetingbots/b/report")
                assert (waiting.status_code, waiting.headers["Retry-After"]) == (503, "2")
                # A webhook goes to every leader; with a shard unled, Zoom is told to retry.
                assert (await post("/zoom/meetings")).status_code == 503
                # Sent here by another replica for a shard this one does not lead: refused,
                # never passed on again.
                bounced = await post(
                    f"/v1/namespaces/{theirs}/meetingbots/b/report",
                    **{"X-Meetingbot-Forwarded": "1"},
                )
                assert bounced.status_code == 503
                # Once every shard has a leader, the webhook's answer is a leader's success.
                holders[2] = Holder("other", published)
                assert (await post("/zoom/meetings")).status_code == 200
        finally:
            await router.close()
    assert received == [
        f"/v1/namespaces/{theirs}/meetingbots/b/report",
        "/zoom/meetings",
        "/zoom/meetings",  # once per other leader, though it leads two shards now
    ]


def test_a_namespace_is_watched_by_kopfs_own_rule_for_its_patterns() -> None:
    patterns = Settings(namespaces=["team-*, !team-pr-*", "ops"])
    assert [patterns.watches(n) for n in ("team-a", "team-pr-1", "ops", "other")] == [
        True,
        False,
        True,
        False,
    ]
    assert Settings().watches("anything")  # no namespaces: all of them


class _MovingElector:
    """Our seam (ha/shard_election.py's ShardElector) as the renewals see it: holds shard 0,
    and from the first look on wants none (another replica should lead it)."""

    timing = LeaseTiming(duration=15, renew_deadline=10, retry=0.01)

    def __init__(self) -> None:
        self.held = {0}
        self.looks = 0

    @contextlib.contextmanager
    def bound(self, api: object) -> Iterator[None]:
        yield

    async def look(self) -> set[int]:
        self.looks += 1  # renews the shards held and the membership
        return set()

    def moves(self, wanted: set[int]) -> bool:
        return wanted != self.held


class _GainingElector(_MovingElector):
    """Holds shard 0, and from the first look on is to lead shard 1 too (its leader died)."""

    async def look(self) -> set[int]:
        self.looks += 1
        return {0, 1}

    async def acquire(self, shards: set[int]) -> None:
        self.held |= shards


class _Api:
    async def close(self) -> None:
        return None


async def test_a_replica_whose_shards_move_renews_what_it_holds_until_it_has_stopped_acting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The operator is told once to stop; its shutdown may outlast a Lease, so the renewals
    go on until it halts them (then its step-down releases the shard): until then no other
    replica may take a shard it may still act on."""
    monkeypatch.setattr(KubeClient, "connect", staticmethod(_Api))
    elector = _MovingElector()
    told: list[renewer.Stopped] = []
    moving = renewer.Renewer(elector, lambda why, _: told.append(why))  # type: ignore[arg-type]
    moving.start()
    await wait_for(lambda: told, 5, 0.01, what="told to stop")
    looks = elector.looks
    await wait_for(lambda: elector.looks >= looks + 5, 5, 0.01, what="renewals after the move")
    await moving.halt()
    assert told == [renewer.Stopped.MOVED] and moving.stopped is renewer.Stopped.MOVED
    halted = elector.looks
    await asyncio.sleep(0.1)
    assert elector.looks == halted  # none after the halt


@pytest.mark.parametrize("in_place", [True, False], ids=["cluster-wide", "namespaces-by-name"])
async def test_a_replica_to_lead_more_shards_takes_them_in_place_when_its_watches_can(
    monkeypatch: pytest.MonkeyPatch, in_place: bool
) -> None:
    """Another replica died: a survivor whose watches are cluster-wide takes its shard and
    hands it to the running operator, which goes on (never told to stop); one whose watches
    are per namespace must start again to watch more."""
    monkeypatch.setattr(KubeClient, "connect", staticmethod(_Api))
    elector = _GainingElector()
    told: list[renewer.Stopped] = []
    gained: list[frozenset[int]] = []
    taking = renewer.Renewer(
        elector,  # type: ignore[arg-type]
        lambda why, _: told.append(why),
        gained.append if in_place else None,
    )
    taking.start()
    await wait_for(lambda: gained or told, 5, 0.01, what="a shard taken or a stop")
    looks = elector.looks
    await wait_for(lambda: elector.looks >= looks + 3, 5, 0.01, what="renewals after it")
    await taking.halt()
    if in_place:
        assert (gained, told, taking.stopped) == ([frozenset({1})], [], None)
        assert elector.held == {0, 1}
    else:
        assert (gained, told, taking.stopped) == (
            [],
            [renewer.Stopped.MOVED],
            renewer.Stopped.MOVED,
        )


def test_a_shard_taken_in_place_is_led_from_then_on() -> None:
    """A bot's patience counts from when its shard was taken, not from the process's start."""
    mine = ShardSet(3)
    mine.lead({shard_of("team-a", 3)})
    other = next(f"team-{i}" for i in range(100) if shard_of(f"team-{i}", 3) not in mine.held)
    started = mine.leading_since("team-a")
    assert started is not None and mine.leading_since(other) is None and not mine.owns(other)
    assert mine.take({shard_of(other, 3), shard_of("team-a", 3)}) == {shard_of(other, 3)}
    taken = mine.leading_since(other)
    assert mine.owns(other) and taken is not None and taken >= started
    assert mine.leading_since("team-a") == started  # what was led is led on, from before
