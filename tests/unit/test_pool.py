"""The service-user pool: claims, the cap, Unavailable users and their checks."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from meetingbot_operator.pool import UserPool

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def test_claims_count_per_user_and_respect_the_cap() -> None:
    pool = UserPool()
    pool.set_users(("a", "b"))
    assert pool.claim("bot1", "a", cap=2) and pool.claim("bot2", "a", cap=2)
    assert not pool.claim("bot3", "a", cap=2)
    assert pool.claim("bot1", "a", cap=2)  # a bot that holds the user keeps it
    assert pool.loads() == {"a": 2, "b": 0}
    pool.release("bot1")
    pool.release("bot1")  # idempotent
    assert pool.loads() == {"a": 1, "b": 0}
    pool.adopt("old", "a")  # after a restart: whatever the cap
    pool.adopt("older", "a")
    assert pool.loads()["a"] == 3
    pool.claim("bot2", "b", cap=None)  # moving a bot moves its claim
    assert pool.loads() == {"a": 2, "b": 1}


def test_an_unavailable_user_is_skipped_until_it_recovers() -> None:
    pool = UserPool(recheck_seconds=0.01)
    pool.set_users(("a", "b"))
    pool.mark_unavailable("a", "ZoomUserInactive", "the user is not active", NOW)
    assert pool.active() == ("b",)
    assert not pool.claim("bot", "a", cap=None)
    (a, b) = pool.view()
    assert (a.state, a.reason, a.since, b.state) == (
        "Unavailable",
        "ZoomUserInactive",
        NOW,
        "Active",
    )
    time.sleep(0.02)
    assert pool.due() == ["a"]
    pool.still_unavailable("a", "ZoomUserInactive", "Zoom says the user is pending")
    assert pool.due() == []  # the next check doubles
    assert pool.unavailable["a"].message == "Zoom says the user is pending"
    pool.recovered("a")
    assert pool.active() == ("a", "b")


def test_a_user_taken_out_of_the_spec_keeps_no_state() -> None:
    pool = UserPool()
    pool.set_users(("a", "b"))
    pool.mark_unavailable("b", "ZoomUserNotFound", "gone", NOW)
    pool.set_users(("a",))
    assert pool.unavailable == {} and [v.user for v in pool.view()] == ["a"]
