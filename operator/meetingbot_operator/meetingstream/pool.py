"""Which stream worker receives which stream: the one owner of the assignments (pure: time is
passed in, nothing here talks to anything).

Inputs are the workers' heartbeats (what each holds) and the streams that want a worker (those
Zoom started and has not stopped, of MeetingStreams not canceled). One decision per heartbeat:
what this worker should take and what it should let go. The rules:

- A stream is given to one worker at a time, with a generation (1, then 2 after a hand-over,
  ...; its files of each generation go in their own folder, so two workers never write the
  same object). A worker that has not been heard from for `timeout` seconds is gone: its
  streams go to others, with the next generation.
- New streams are shared out evenly: a worker heard from takes up to its fair share of all
  the streams (held and new, over the live workers), within its capacity; a worker that is
  leaving (SIGTERM) gets nothing and its streams go at once.
- After a change of leader nothing is known: for `grace` seconds streams are only adopted
  from what the workers say they hold (no stream given twice because the new leader did not
  know), then the rest is given out. A worker holding a stream given to another lets it go.
- A stream no longer known (its MeetingStream deleted or canceled) is let go; a stream Zoom
  stopped is left to end on its own (its worker sees Zoom's end first). A stream leaves the
  books once its worker says it ended and its files are delivered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from meetingbot_contract.rtms import HeldStream, StreamRef, WorkerHeartbeat


@dataclass
class _Worker:
    seen: float
    capacity: int
    leaving: bool
    held: dict[StreamRef, HeldStream] = field(default_factory=dict)


@dataclass(frozen=True)
class Given:
    worker: str
    generation: int


@dataclass
class Plan:
    """What to tell one worker, and the hand-overs decided on the way (for the statuses)."""

    take: list[tuple[StreamRef, int]] = field(default_factory=list)
    release: list[StreamRef] = field(default_factory=list)
    given: list[tuple[StreamRef, Given]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.take and not self.release


class WorkerPool:
    def __init__(self, timeout: float, grace: float, now: float) -> None:
        self.timeout = timeout
        self._ready_at = now + grace
        self._workers: dict[str, _Worker] = {}
        self._given: dict[StreamRef, Given] = {}
        # Streams whose worker said they ended (Zoom ended them, or the worker failed for
        # good): never given out again, though their statuses may not say so yet.
        self._finished: set[StreamRef] = set()
        self._generations: dict[StreamRef, int] = {}  # the last generation given out

    # --- what others read ------------------------------------------------------------------

    def given(self, ref: StreamRef) -> Given | None:
        return self._given.get(ref)

    def live_workers(self, now: float) -> list[str]:
        return sorted(n for n, w in self._workers.items() if now - w.seen <= self.timeout)

    def held(self, ref: StreamRef) -> HeldStream | None:
        given = self._given.get(ref)
        worker = self._workers.get(given.worker) if given else None
        return worker.held.get(ref) if worker else None

    # --- the decision ------------------------------------------------------------------------

    def expire(self, now: float) -> list[str]:
        """Forget workers not heard from for `timeout`; their streams are free again."""
        gone = [n for n, w in self._workers.items() if now - w.seen > self.timeout]
        for name in gone:
            del self._workers[name]
        for ref, given in list(self._given.items()):
            if given.worker not in self._workers:
                del self._given[ref]
        return gone

    def heartbeat(
        self,
        worker: str,
        beat: WorkerHeartbeat,
        wanted: Mapping[StreamRef, int],
        known: Callable[[StreamRef], bool],
        now: float,
    ) -> Plan:
        """`wanted`: the streams that want a worker, each with the last generation its status
        records (a hand-over after a change of leader continues from there); `known`: whether
        a stream's MeetingStream still wants it kept (not deleted, not canceled)."""
        self.expire(now)
        previous = self._workers.get(worker)
        self._workers[worker] = _Worker(
            now, beat.capacity, beat.leaving, {h.ref: h for h in beat.held}
        )
        if previous is not None:
            self._forget_lost(worker, previous, beat)
        plan = Plan()
        for held in beat.held:
            if not held.leftover:
                self._settle(worker, held, known, plan)
        if beat.leaving:
            for ref, given in list(self._given.items()):
                if given.worker == worker:
                    del self._given[ref]
            plan.release = [h.ref for h in beat.held if not h.ended]
            return plan
        if now >= self._ready_at:
            self._give_out(worker, wanted, now, plan)
        held_here = {h.ref for h in beat.held if not h.leftover}
        plan.take = [
            (ref, given.generation)
            for ref, given in self._given.items()
            if given.worker == worker and ref not in held_here
        ]
        return plan

    def _forget_lost(self, worker: str, previous: _Worker, beat: WorkerHeartbeat) -> None:
        """A stream the worker received at its last heartbeat and no longer does, without
        saying it ended: its process restarted (the files it had not delivered are now
        leftovers). The stream is given out again, with the next generation."""
        live = {h.ref for h in beat.held if not h.leftover}
        for ref, given in list(self._given.items()):
            before = previous.held.get(ref)
            if (
                given.worker == worker
                and before is not None
                and not before.ended
                and not before.leftover
                and ref not in live
            ):
                del self._given[ref]

    def _settle(
        self, worker: str, held: HeldStream, known: Callable[[StreamRef], bool], plan: Plan
    ) -> None:
        """One stream the worker says it holds, against the books."""
        ref, given = held.ref, self._given.get(held.ref)
        if given is None:
            if held.ended:
                return  # delivering the rest of a finished stream: its own business
            if known(ref):
                adopted = Given(worker, held.generation)  # a new leader learns it here
                self._given[ref] = adopted
                self._generations[ref] = max(self._generations.get(ref, 0), held.generation)
                plan.given.append((ref, adopted))
            else:
                plan.release.append(ref)
            return
        if given.worker != worker:
            if not held.ended:
                plan.release.append(ref)  # another worker has it now
            return
        if held.ended:
            self._finished.add(ref)
            if held.drained:
                del self._given[ref]  # done: off the books
        elif not held.ended and not known(ref):
            plan.release.append(ref)

    def _give_out(
        self, worker: str, wanted: Mapping[StreamRef, int], now: float, plan: Plan
    ) -> None:
        me = self._workers[worker]
        loads: dict[str, int] = {
            name: 0
            for name, w in self._workers.items()
            if not w.leaving and now - w.seen <= self.timeout
        }
        for given in self._given.values():
            if given.worker in loads:
                loads[given.worker] += 1
        self._finished &= wanted.keys()
        self._generations = {
            ref: g for ref, g in self._generations.items() if ref in wanted or ref in self._given
        }
        taken = self._given.keys() | self._finished
        free = [(ref, g) for ref, g in wanted.items() if ref not in taken]
        # This worker's fair share of all the streams, given at once (one stream a heartbeat
        # took 3 minutes to give out 1000 streams to five workers); the rest is the others'
        # at their next heartbeat, or this one's if they have no room.
        share = -(-(sum(loads.values()) + len(free)) // len(loads))
        others_have_room = any(
            loads[name] < self._workers[name].capacity for name in loads if name != worker
        )
        limit = min(me.capacity, share) if others_have_room else me.capacity
        for ref, recorded in free:
            if loads[worker] >= limit:
                break
            # The status may not record the last hand-over yet: the larger of the two.
            given = Given(worker, max(recorded, self._generations.get(ref, 0)) + 1)
            self._given[ref] = given
            self._generations[ref] = given.generation
            loads[worker] += 1
            plan.given.append((ref, given))
