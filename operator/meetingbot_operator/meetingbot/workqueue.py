"""One reconcile at a time per bot, coalesced: a burst of triggers for one bot runs at most one
pass now and one after it. Timers ask again later; the sweep asks about every bot.

Bots waiting for a pass are keys in two lines, served by at most `concurrency` workers (as
client-go's work queue is): a waiting bot costs a line entry, not a task. At 10 000 bots, a
task per waiting pass held 22 MB at the burst's peak and at every sweep (measured with
tracemalloc: 2.2 KB each).

A bot that has yet to start goes ahead of the others: in a burst, the passes that create a
bot's Secret and Pod do not wait behind the passes of bots already started (their pod events),
which can wait, but not for long: those that have waited `patience` seconds go first. At
10 000 bots, starts first and nothing else kept every status pass waiting until the burst's
last start, 60-120 s behind its pod; letting the lines alternate instead still left 1 % of the
status writes 30-60 s behind: a started bot's pod brings several watch events, each a pass
of the others' line, most with nothing to write (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from meetingbot_operator.kube.client import ApiError

log = logging.getLogger(__name__)

Key = tuple[str, str]
# After a pass that raised, the bot is tried again this soon (and by the sweep after that).
RETRY_AFTER_ERROR = 10.0


@dataclass
class _Slot:
    timer: asyncio.TimerHandle | None = None
    last_pass: float = 0.0  # time.monotonic() when a pass of this bot last ended


class WorkQueue:
    def __init__(
        self,
        work: Callable[[Key], Awaitable[None]],
        concurrency: int,
        first: Callable[[Key], bool] = lambda _: False,
        patience: float = 2.0,
    ) -> None:
        """`first(key)`: whether the bot's pass goes ahead of the others, `patience` how long
        the others wait before they go first (see the module). At most
        `concurrency` passes at once: in a burst of 1000 bots, the others wait with nothing
        built yet (no bodies, no models), instead of all holding theirs while the connection
        pool sends a hundred at a time."""
        self._work = work
        self._first = first
        self._patience = patience
        self._concurrency = concurrency
        self._slots: dict[Key, _Slot] = {}
        # The two lines: (bot, when it joined). An entry counts only while `_waiting` holds
        # that same time for the bot (forgotten or served bots leave stale entries behind).
        self._lines: tuple[deque[tuple[Key, float]], deque[tuple[Key, float]]] = (
            deque(),
            deque(),
        )
        self._waiting: dict[Key, float] = {}
        self._running: set[Key] = set()
        self._again: set[Key] = set()  # triggered during its pass: one more after it
        self._follow: set[Key] = set()  # its next pass follows at once, in the same place
        # Workers serving now (counted down the moment one finds the lines empty, so a bot
        # that arrives just then gets a worker of its own), and their tasks, for stop().
        self._active = 0
        self._workers: set[asyncio.Task[None]] = set()
        self._stopped = False

    def trigger(self, key: Key) -> None:
        self._slots.setdefault(key, _Slot())
        if key in self._running:
            self._again.add(key)
        elif key not in self._waiting:
            self._enqueue(key)

    def follow(self, key: Key) -> None:
        """Called during a bot's pass: its next pass runs as soon as this one ends, in the
        same worker, ahead of every line (a trigger during this pass is part of it). A start's
        pass hands its result to the pass that writes the status: at 10 000 bots, that pass
        waiting its turn in the line left statuses 30-60 s behind their pods."""
        if key in self._running:
            self._follow.add(key)
        else:
            self.trigger(key)

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
        self._waiting.pop(key, None)
        self._again.discard(key)
        self._follow.discard(key)

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
        self._stopped = True
        for slot in self._slots.values():
            if slot.timer:
                slot.timer.cancel()
        workers = list(self._workers)
        for task in workers:
            task.cancel()
        for task in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _enqueue(self, key: Key) -> None:
        joined = time.monotonic()
        self._waiting[key] = joined
        self._lines[0 if self._first(key) else 1].append((key, joined))
        if self._active < self._concurrency and not self._stopped:
            self._active += 1
            worker = asyncio.create_task(self._serve(), name="reconcile worker")
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)

    def _next(self) -> Key | None:
        """The next bot to pass: the first line's, unless the oldest of the others has waited
        `patience`; None when both lines are empty."""
        firsts, others = self._lines
        for line in (firsts, others):
            while line and self._waiting.get(line[0][0]) != line[0][1]:
                line.popleft()  # stale: forgotten, or served from an earlier entry
        overdue = bool(others) and time.monotonic() - others[0][1] >= self._patience
        for line in (others, firsts) if overdue else (firsts, others):
            if line:
                key, _ = line.popleft()
                del self._waiting[key]
                return key
        return None

    async def _serve(self) -> None:
        """A worker: passes bots from the lines until both are empty."""
        try:
            while (key := self._next()) is not None:
                self._running.add(key)
                try:
                    await self._pass(key)
                    while key in self._follow:
                        self._follow.discard(key)
                        self._again.discard(key)
                        await self._pass(key)
                finally:
                    self._follow.discard(key)
                    self._running.discard(key)
                    slot = self._slots.get(key)
                    if slot is not None:
                        slot.last_pass = time.monotonic()
                        if key in self._again:
                            self._again.discard(key)
                            self._enqueue(key)
        finally:
            self._active -= 1

    async def _pass(self, key: Key) -> None:
        try:
            await self._work(key)
        except Exception as error:
            if isinstance(error, ApiError) and b"NamespaceTerminating" in error.body:
                return  # the bot goes with its namespace
            # Never lost: tried again by a timer, and by the sweep after that.
            log.exception("reconcile failed", extra={"bot": f"{key[0]}/{key[1]}"})
            self.later(key, RETRY_AFTER_ERROR)
