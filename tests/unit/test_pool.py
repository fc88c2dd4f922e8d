"""The service-user pool: claims, the cap, Unavailable users and their checks."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from meetingbot_operator.identities.claims import ClaimsLedger, Hold
from meetingbot_operator.identities.pool import UserPool

NOW = datetime(2026, 11, 23, tzinfo=UTC)
A = ("team-a", "main")


def test_claims_count_per_user_and_respect_the_cap() -> None:
    ledger = ClaimsLedger()
    assert ledger.hold(A, "bot1", Hold("a", capped=True), cap=2)
    assert ledger.hold(A, "bot2", Hold("a", capped=True), cap=2)
    assert not ledger.hold(A, "bot3", Hold("a", capped=True), cap=2)
    assert ledger.held("bot3") is None
    assert ledger.hold(A, "bot1", Hold("a", capped=True), cap=2)  # a holder keeps its user
    assert ledger.loads(A, ("a", "b")) == {"a": 2, "b": 0}
    ledger.release("bot1")
    ledger.release("bot1")  # idempotent
    assert ledger.loads(A, ("a", "b")) == {"a": 1, "b": 0}
    ledger.observe(A, "old", "a")  # a running attempt seen after a restart: whatever the cap
    assert ledger.hold(A, "pinned", Hold("a", capped=False), cap=2)  # spec.user: no cap
    assert ledger.loads(A, ("a",)) == {"a": 3}
    ledger.hold(A, "bot2", Hold("b", capped=True), cap=None)  # moving a bot moves its claim
    assert ledger.loads(A, ("a", "b")) == {"a": 2, "b": 1}
    ledger.hold(A, "bot2", None, cap=None)  # a pass that holds nothing lets it go
    assert ledger.loads(A, ("a", "b")) == {"a": 2, "b": 0}


def test_claims_of_two_accounts_never_mix() -> None:
    """One user address in two namespaces' accounts: two users, two loads, one cap each."""
    ledger = ClaimsLedger()
    other = ("team-b", "main")
    assert ledger.hold(A, "bot1", Hold("a", capped=True), cap=1)
    assert ledger.hold(other, "bot2", Hold("a", capped=True), cap=1)
    assert ledger.loads(A, ("a",)) == {"a": 1} and ledger.loads(other, ("a",)) == {"a": 1}
    before = ledger.version(other)
    ledger.release("bot1")
    assert ledger.version(other) == before and ledger.loads(A, ("a",)) == {"a": 0}


def test_an_unavailable_user_is_skipped_until_it_recovers() -> None:
    pool = UserPool(recheck_seconds=0.01)
    pool.set_users(("a", "b"))
    pool.mark_unavailable("a", "ZoomUserInactive", "the user is not active", NOW)
    assert pool.active() == ("b",)
    ledger = ClaimsLedger()
    assert not ledger.hold(A, "bot", Hold("a", capped=True), cap=None, unavailable=pool.unavailable)
    (a, b) = pool.view({"a": 0, "b": 0})
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
    assert pool.unavailable == {} and [v.user for v in pool.view({"a": 0})] == ["a"]
