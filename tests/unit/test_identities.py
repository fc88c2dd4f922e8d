"""Zoom identities without a cluster: the claims ledger under a burst and after a restart,
and the ZAK cache's reuse, sharing and invalidation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from meetingbot_contract.reasons import Reason
from meetingbot_operator.identities.claims import (
    ZOOM_ACCOUNT_ANNOTATION,
    ZOOM_USER_ANNOTATION,
    Hold,
)
from meetingbot_operator.identities.service import Identities
from meetingbot_operator.identities.zaks import ZakCache
from meetingbot_operator.meetingbot.cache import controller_uid, parse_pod
from meetingbot_operator.meetingbot.decisions import pick_user
from meetingbot_operator.zoom import Zak, ZoomError

A = ("team-a", "main")
USERS = ("u1", "u2", "u3")
MARGIN = timedelta(minutes=10)


def _identities() -> Identities:
    identities = Identities()
    identities.pool(A).set_users(USERS)
    return identities


async def test_a_burst_on_a_capped_pool_never_exceeds_the_cap() -> None:
    """60 bots decide at once, 3 users capped at 10: each pass reads the loads, picks, and
    holds before the next runs (as the controller's passes do, an await apart)."""
    identities = _identities()

    async def one_pass(uid: str) -> str | None:
        await asyncio.sleep(0)  # other passes run in between
        user = pick_user(None, USERS, uid, identities.loads(A), cap=10)
        if user is None:
            return None
        assert identities.hold(A, uid, Hold(user, capped=True), cap=10)
        return user

    picked = await asyncio.gather(*(one_pass(f"{i:08x}-bot") for i in range(60)))
    assert identities.loads(A) == {"u1": 10, "u2": 10, "u3": 10}
    assert picked.count(None) == 30


def test_decisions_made_on_stale_loads_are_refused_at_the_cap() -> None:
    """Passes that all read the loads before any held (the worst interleaving): the ledger
    still holds the cap, and a refused bot holds nothing."""
    identities = _identities()
    stale = identities.loads(A)
    picks = {f"bot{i}": pick_user(None, USERS, f"{i:08x}", stale, cap=2) for i in range(12)}
    held = {
        uid: identities.hold(A, uid, Hold(user, capped=True), cap=2)
        for uid, user in picks.items()
        if user is not None
    }
    assert max(identities.loads(A).values()) == 2
    assert sum(held.values()) == sum(identities.loads(A).values())
    assert all(identities.claims.held(uid) is None for uid, ok in held.items() if not ok)


def test_an_unavailable_user_is_refused_to_a_new_claim_but_kept_by_a_running_bot() -> None:
    identities = _identities()
    assert identities.hold(A, "running", Hold("u1", capped=False), cap=None)
    identities.user_refused(A, "u1", Reason.ZOOM_USER_INACTIVE, "deactivated", datetime.now(UTC))
    assert not identities.hold(A, "new", Hold("u1", capped=True), cap=None)
    assert identities.hold(A, "running", Hold("u1", capped=False), cap=None)
    assert identities.loads(A)["u1"] == 1


def _running(uid: str, user: str, phase: str = "InMeeting") -> dict[str, object]:
    return {
        "metadata": {"namespace": "team-a", "name": uid, "uid": uid},
        "spec": {"accountRef": {"name": "main"}},
        "status": {"phase": phase, "zoomUser": user},
    }


def test_a_restart_rebuilds_the_loads_from_the_statuses_before_any_start() -> None:
    """A new process sees running bots in the watch's first list, before the account's own
    event: their users are held at once, whatever the cap; finished bots hold nothing."""
    identities = Identities()
    for i in range(4):
        identities.observe_bot(_running(f"r{i}", "u1"))
    identities.observe_bot(_running("done", "u2", phase="Succeeded"))
    identities.observe_bot(_running("r0", "u1"))  # the same event twice counts once
    identities.pool(A).set_users(USERS)  # the ZoomAccount arrives after its bots
    assert identities.loads(A) == {"u1": 4, "u2": 0, "u3": 0}
    assert not identities.hold(A, "new", Hold("u1", capped=True), cap=4)
    identities.release("r0")  # a deleted bot
    assert identities.loads(A)["u1"] == 3


def _pod(owner: str, user: str, phase: str = "Running", **meta: object) -> dict[str, object]:
    return {
        "metadata": {
            "namespace": "team-a",
            "name": f"{owner}-1",
            "annotations": {ZOOM_USER_ANNOTATION: user, ZOOM_ACCOUNT_ANNOTATION: "main"},
            "ownerReferences": [{"uid": owner, "controller": True}],
            **meta,
        },
        "status": {"phase": phase},
    }


def _seen(identities: Identities, event_type: str, body: dict[str, Any]) -> None:
    """A pod event, read as the controller reads it (cache.parse_pod) and given to the ledger."""
    pod = parse_pod(body, deleted=event_type == "DELETED")
    identities.observe_pod("team-a", controller_uid(body), pod)


def test_a_restart_counts_live_pods_whose_status_was_never_written() -> None:
    """Pods are written before their bot's status names the user: after a restart the watch's
    first list of pods holds their users, so a new claim cannot take a seat a pod has."""
    identities = _identities()
    _seen(identities, "ADDED", _pod("p0", "u1"))
    _seen(identities, "ADDED", _pod("p1", "u1"))
    _seen(identities, "ADDED", _pod("p1", "u1"))  # the same pod twice counts once
    _seen(identities, "ADDED", _pod("done", "u1", phase="Succeeded"))
    _seen(identities, "ADDED", _pod("going", "u1", deletionTimestamp="2026-12-05T00:00:00Z"))
    _seen(identities, "DELETED", _pod("gone", "u1"))
    _seen(identities, "ADDED", {"metadata": {"namespace": "team-a", "name": "obf-1"}})
    assert identities.loads(A) == {"u1": 2, "u2": 0, "u3": 0}
    assert not identities.hold(A, "new", Hold("u1", capped=True), cap=2)
    # An older attempt's pod, still there, never takes a bot's claim back from its new user.
    assert identities.hold(A, "p0", Hold("u2", capped=True), cap=2)
    _seen(identities, "MODIFIED", _pod("p0", "u1"))
    assert identities.claims.held("p0") == "u2"
    assert identities.loads(A) == {"u1": 1, "u2": 1, "u3": 0}


def _zak(user: str, minutes: float) -> Zak:
    return Zak(
        token=SecretStr(f"zak-{user}-{minutes}"),
        user_id=user,
        expires_at=datetime.now(UTC) + timedelta(minutes=minutes),
    )


async def test_bots_starting_together_share_one_mint() -> None:
    cache = ZakCache()
    mints = 0

    async def mint() -> Zak:
        nonlocal mints
        mints += 1
        await asyncio.sleep(0.01)
        return _zak("u1", 120)

    results = await asyncio.gather(*(cache.shared(A, "u1", MARGIN, mint) for _ in range(20)))
    assert mints == 1
    assert {zak.token.get_secret_value() for zak, _ in results} == {"zak-u1-120"}
    assert [reused for _, reused in results].count(False) == 1


async def test_a_zak_close_to_expiry_is_not_handed_out() -> None:
    cache = ZakCache()
    calls: list[float] = []

    async def mint() -> Zak:
        minutes = 5.0 if not calls else 120.0
        calls.append(minutes)
        return _zak("u1", minutes)

    first, _ = await cache.shared(A, "u1", MARGIN, mint)
    assert cache.reusable(A, "u1", MARGIN) is None  # 5 minutes left, 10 wanted
    second, reused = await cache.shared(A, "u1", MARGIN, mint)
    assert not reused and second != first and calls == [5.0, 120.0]


async def test_a_failed_mint_fails_its_waiters_then_is_tried_again() -> None:
    cache = ZakCache()
    attempts = 0

    async def failing() -> Zak:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        raise ZoomError(Reason.ZOOM_UNAVAILABLE, "HTTP 503", status=503)

    outcomes = await asyncio.gather(
        *(cache.shared(A, "u1", MARGIN, failing) for _ in range(5)), return_exceptions=True
    )
    assert attempts == 1 and all(isinstance(o, ZoomError) for o in outcomes)

    async def working() -> Zak:
        return _zak("u1", 120)

    await asyncio.sleep(2.1)  # SHARED_FAILURE_SECONDS: the next start mints again
    zak, reused = await cache.shared(A, "u1", MARGIN, working)
    assert not reused and zak.token.get_secret_value() == "zak-u1-120"


async def test_a_refused_zak_is_forgotten_but_a_newer_one_stays() -> None:
    cache = ZakCache()
    old, new = _zak("u1", 60), _zak("u1", 120)

    async def mint_old() -> Zak:
        return old

    async def mint_new() -> Zak:
        return new

    await cache.shared(A, "u1", MARGIN, mint_old)
    cache.forget(A, "u1", expires_at=old.expires_at)
    assert cache.reusable(A, "u1", MARGIN) is None
    await cache.shared(A, "u1", MARGIN, mint_new)
    cache.forget(A, "u1", expires_at=old.expires_at)  # a second bot refused the old one
    assert cache.reusable(A, "u1", MARGIN) == new
    cache.forget_account(A)  # the account is no longer Ready
    assert cache.reusable(A, "u1", MARGIN) is None


@pytest.mark.parametrize("other", [("team-b", "main"), ("team-a", "other")])
async def test_zaks_of_two_accounts_never_mix(other: tuple[str, str]) -> None:
    cache = ZakCache()

    async def mint() -> Zak:
        return _zak("u1", 120)

    await cache.shared(A, "u1", MARGIN, mint)
    assert cache.reusable(other, "u1", MARGIN) is None
