"""The stream workers' pool (meetingstream/pool.py): one worker per stream, balanced, a lost
or leaving worker's streams handed over with the next generation, a new leader adopting what
workers hold before it gives anything out, finished streams never given again."""

from __future__ import annotations

from meetingbot_contract.rtms import HeldStream, StreamRef, WorkerHeartbeat
from meetingbot_operator.meetingstream.pool import Given, WorkerPool

A, B, C = (StreamRef(namespace="t", name="s", index=i) for i in (1, 2, 3))


def beat(*held: HeldStream, capacity: int = 10, leaving: bool = False) -> WorkerHeartbeat:
    return WorkerHeartbeat(held=list(held), capacity=capacity, leaving=leaving)


def holding(ref: StreamRef, generation: int = 1, **state: bool) -> HeldStream:
    return HeldStream(ref=ref, generation=generation, **state)


def ready_pool() -> WorkerPool:
    return WorkerPool(timeout=10, grace=0, now=0)


def known(_: StreamRef) -> bool:
    return True


def test_streams_are_spread_over_the_live_workers_one_each() -> None:
    pool = ready_pool()
    wanted = {A: 0, B: 0, C: 0}
    assert pool.heartbeat("w1", beat(), {}, known, now=1).take == []
    assert pool.heartbeat("w2", beat(), {}, known, now=1).take == []
    one = pool.heartbeat("w1", beat(), wanted, known, now=2)
    two = pool.heartbeat("w2", beat(), wanted, known, now=2)
    taken = [ref for ref, _ in one.take] + [ref for ref, _ in two.take]
    assert sorted(taken, key=lambda r: r.index) == [A, B, C]  # each stream once
    assert sorted([len(one.take), len(two.take)]) == [1, 2]
    assert all(generation == 1 for _, generation in one.take + two.take)


def test_capacity_is_respected() -> None:
    pool = ready_pool()
    plan = pool.heartbeat("w1", beat(capacity=2), {A: 0, B: 0, C: 0}, known, now=1)
    assert [ref for ref, _ in plan.take] == [A, B]


def test_a_silent_worker_s_streams_go_to_another_with_the_next_generation() -> None:
    pool = ready_pool()
    pool.heartbeat("w1", beat(), {A: 0}, known, now=1)
    pool.heartbeat("w2", beat(), {A: 1}, known, now=1)
    assert pool.given(A) == Given("w1", 1)
    # w1 is not heard from again; w2 is, past w1's timeout.
    plan = pool.heartbeat("w2", beat(), {A: 1}, known, now=12)
    assert plan.take == [(A, 2)]
    assert pool.given(A) == Given("w2", 2)


def test_a_leaving_worker_lets_go_and_its_streams_move_at_once() -> None:
    pool = ready_pool()
    pool.heartbeat("w1", beat(), {A: 0}, known, now=1)
    leaving = pool.heartbeat("w1", beat(holding(A), leaving=True), {A: 1}, known, now=2)
    assert leaving.release == [A] and leaving.take == []
    plan = pool.heartbeat("w2", beat(), {A: 1}, known, now=2)
    assert plan.take == [(A, 2)]


def test_a_new_leader_adopts_what_workers_hold_before_giving_anything_out() -> None:
    pool = WorkerPool(timeout=10, grace=5, now=0)
    early = pool.heartbeat("w2", beat(), {A: 1, B: 0}, known, now=1)
    assert early.take == []  # w1 may hold them: wait for it
    adopted = pool.heartbeat("w1", beat(holding(A)), {A: 1, B: 0}, known, now=2)
    assert adopted.given == [(A, Given("w1", 1))] and adopted.take == []
    later = pool.heartbeat("w2", beat(), {A: 1, B: 0}, known, now=6)
    assert later.take == [(B, 1)]


def test_a_worker_holding_a_stream_given_to_another_lets_it_go() -> None:
    pool = ready_pool()
    pool.heartbeat("w1", beat(), {A: 0}, known, now=1)
    plan = pool.heartbeat("w2", beat(holding(A)), {A: 1}, known, now=2)
    assert plan.release == [A]
    assert pool.given(A) == Given("w1", 1)


def test_a_stream_no_longer_known_is_let_go() -> None:
    pool = ready_pool()
    pool.heartbeat("w1", beat(), {A: 0}, known, now=1)
    plan = pool.heartbeat("w1", beat(holding(A)), {}, lambda _: False, now=2)
    assert plan.release == [A]


def test_an_ended_stream_is_never_given_again_and_leaves_the_books_once_delivered() -> None:
    pool = ready_pool()
    pool.heartbeat("w1", beat(), {A: 0}, known, now=1)
    # The worker's handshake was refused; the status does not say so yet (A still wanted).
    ended = holding(A, ended=True)
    assert pool.heartbeat("w1", beat(ended), {A: 1}, known, now=2).take == []
    assert pool.heartbeat("w2", beat(), {A: 1}, known, now=2).take == []
    pool.heartbeat("w1", beat(holding(A, ended=True, drained=True)), {A: 1}, known, now=3)
    assert pool.given(A) is None
    assert pool.heartbeat("w2", beat(), {A: 1}, known, now=3).take == []


def test_a_worker_that_restarted_gets_its_stream_again_with_the_next_generation() -> None:
    pool = ready_pool()
    pool.heartbeat("w1", beat(), {A: 0}, known, now=1)
    pool.heartbeat("w1", beat(holding(A)), {A: 0}, known, now=2)  # the status lags behind
    # The process restarted: it delivers generation 1's leftovers, and holds no session.
    plan = pool.heartbeat("w1", beat(holding(A, ended=True, leftover=True)), {A: 0}, known, now=3)
    assert plan.take == [(A, 2)]
    assert pool.given(A) == Given("w1", 2)


def test_a_worker_takes_its_fair_share_at_once_and_the_rest_when_the_others_are_full() -> None:
    pool = ready_pool()
    refs = [StreamRef(namespace="t", name="s", index=i) for i in range(1, 11)]
    wanted = dict.fromkeys(refs, 0)
    pool.heartbeat("small", beat(capacity=2), {}, known, now=1)
    pool.heartbeat("large", beat(capacity=100), {}, known, now=1)
    first = pool.heartbeat("large", beat(capacity=100), wanted, known, now=2)
    assert len(first.take) == 5  # half of ten, in one heartbeat
    small = pool.heartbeat("small", beat(capacity=2), wanted, known, now=2)
    assert len(small.take) == 2  # its capacity
    held = [holding(ref) for ref, _ in first.take]
    rest = pool.heartbeat("large", beat(*held, capacity=100), wanted, known, now=3)
    assert len(rest.take) == 3  # the small one is full: the rest here
    given = {pool.given(ref) for ref in refs}
    assert None not in given
