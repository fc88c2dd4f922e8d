"""One reconcile at a time per bot, coalesced: a burst of triggers for one bot runs at most one
pass now and one after it. Timers ask again later; the sweep asks about every bot.

Passes take turns through a gate of `concurrency` places, and a bot that has yet to start
goes ahead of the others: in a burst, the passes that create a bot's Secret and Pod do not
wait behind status-only passes (the pod events of bots already started), which can wait."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass

from meetingbot_operator.kube.client import ApiError

log = logging.getLogger(__name__)

Key = tuple[str, str]
# After a pass that raised, the bot is tried again this soon (and by the sweep after that).
RETRY_AFTER_ERROR = 10.0


@dataclass
class _Slot:
    dirty: bool = False
    task: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None
    last_pass: float = 0.0  # time.monotonic() when a pass of this bot last ended


class PriorityGate:
    """At most `places` holders at once; a waiter asking with `first=True` is let in before
    every waiter that did not, and waiters of one kind are let in in the order they came."""

    def __init__(self, places: int) -> None:
        self._free = places
        self._waiting: tuple[deque[asyncio.Future[None]], deque[asyncio.Future[None]]] = (
            deque(),
            deque(),
        )

    @contextlib.asynccontextmanager
    async def turn(self, first: bool = False) -> AsyncIterator[None]:
        if self._free > 0 and not any(self._waiting):
            self._free -= 1
        else:
            waiter = asyncio.get_running_loop().create_future()
            line = self._waiting[0 if first else 1]
            line.append(waiter)
            try:
                await waiter  # the place is handed over by the holder that leaves
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._leave()  # handed a place just as it was cancelled: pass it on
                else:
                    with contextlib.suppress(ValueError):  # already passed over by _leave
                        line.remove(waiter)
                raise
        try:
            yield
        finally:
            self._leave()

    def _leave(self) -> None:
        for line in self._waiting:
            while line:
                waiter = line.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._free += 1


class WorkQueue:
    def __init__(
        self,
        work: Callable[[Key], Awaitable[None]],
        concurrency: int,
        first: Callable[[Key], bool] = lambda _: False,
    ) -> None:
        """`first(key)`: whether the bot's pass goes ahead of the others (see the module)."""
        self._work = work
        self._first = first
        self._slots: dict[Key, _Slot] = {}
        # At most this many passes at once: in a burst of 1000 bots, the others wait with
        # nothing built yet (no bodies, no models), instead of all holding theirs while the
        # connection pool sends a hundred at a time.
        self._passes = PriorityGate(concurrency)

    def trigger(self, key: Key) -> None:
        slot = self._slots.setdefault(key, _Slot())
        slot.dirty = True
        if slot.task is None or slot.task.done():
            slot.task = asyncio.create_task(self._run(key), name=f"reconcile {key[0]}/{key[1]}")

    def later(self, key: Key, delay: float) -> None:
        """Trigger again after `delay` seconds (replacing any earlier timer of this bot)."""
        slot = self._slots.setdefault(key, _Slot())
        if slot.timer:
            slot.timer.cancel()
        slot.timer = asyncio.get_running_loop().call_later(max(delay, 0.05), self.trigger, key)

    def forget(self, key: Key) -> None:
        slot = self._slots.pop(key, None)
        if slot and slot.timer:
            slot.timer.cancel()

    def sweep(self, keys: Iterable[Key], idle_for: float = 0.0) -> int:
        """Trigger every bot that has had no pass for `idle_for` seconds; how many. Bots that
        events or timers keep busy need no safety net: at 10 000 bots, sweeping them all every
        30 s was a reconcile storm of its own."""
        horizon = time.monotonic() - idle_for
        swept = 0
        for key in list(keys):
            slot = self._slots.get(key)
            if slot is None or slot.last_pass <= horizon:
                self.trigger(key)
                swept += 1
        return swept

    async def stop(self) -> None:
        tasks = [s.task for s in self._slots.values() if s.task and not s.task.done()]
        for slot in self._slots.values():
            if slot.timer:
                slot.timer.cancel()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, key: Key) -> None:
        slot = self._slots.get(key)
        while slot is not None and slot.dirty:
            async with self._passes.turn(self._first(key)):
                slot.dirty = False  # triggers while waiting for a turn are this pass
                try:
                    await self._work(key)
                except Exception as error:
                    if isinstance(error, ApiError) and b"NamespaceTerminating" in error.body:
                        return  # the bot goes with its namespace
                    # Never lost: tried again by a timer, and by the sweep after that.
                    log.exception("reconcile failed", extra={"bot": f"{key[0]}/{key[1]}"})
                    self.later(key, RETRY_AFTER_ERROR)
            slot = self._slots.get(key)
            if slot is not None:
                slot.last_pass = time.monotonic()
