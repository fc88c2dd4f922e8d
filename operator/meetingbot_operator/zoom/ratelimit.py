"""Client-side rate limiting per account and category, shared by every caller in the process.

Zoom's limits are per account and shared by every app of it (docs/zoom.md, Rate limits), so
the client paces itself below the plan's limit and, when Zoom still answers 429 (another app
spent the budget), pauses the whole category for every caller instead of letting each retry
on its own.

Zoom failing (5xx, or no answer) is treated alike, for the whole account, as a circuit
breaker: after failures in a row, calls fail at once without being sent (OutageOpen, a
transient ZoomUnavailable whose caller retries when the pause ends) for a growing, jittered pause;
once it ends, one request at a time goes through as a probe, and the first that works closes
the breaker. Twenty bots starting during an outage made 242 failing calls in 25 s before this.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TypeVar

from aiolimiter import AsyncLimiter

from meetingbot_api.v1alpha1.zoomaccount import RatePlan

T = TypeVar("T")


class Category(StrEnum):
    LIGHT = "Light"
    MEDIUM = "Medium"
    HEAVY = "Heavy"
    RESOURCE_INTENSIVE = "Resource-intensive"


# Requests per period (seconds) for each plan and category.
LIMITS: dict[RatePlan, dict[Category, tuple[int, float]]] = {
    RatePlan.PRO: {
        Category.LIGHT: (30, 1.0),
        Category.MEDIUM: (20, 1.0),
        Category.HEAVY: (10, 1.0),
        Category.RESOURCE_INTENSIVE: (10, 60.0),
    },
    RatePlan.BUSINESS_PLUS: {
        Category.LIGHT: (80, 1.0),
        Category.MEDIUM: (60, 1.0),
        Category.HEAVY: (40, 1.0),
        Category.RESOURCE_INTENSIVE: (20, 60.0),
    },
}

# Pace at this share of the limit, evenly spaced (a bucket of one): Zoom counts per window, and a
# bucket that allowed a full burst could put more than the limit into one window.
HEADROOM = 0.95


class CategoryLimiter:
    """Even pacing below the limit, plus a shared pause set by a 429's Retry-After."""

    def __init__(self, limit: int, period: float) -> None:
        rate = max(limit * HEADROOM, 0.001) / period
        self._limiter = AsyncLimiter(1, 1 / rate)
        self._paused_until = 0.0

    async def acquire(self) -> None:
        # A loop, not an Event: a later 429 may push the pause further while we sleep.
        while (delay := self._paused_until - time.monotonic()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)
        await self._limiter.acquire()

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)


# Failures in a row that open the breaker: Zoom failing, not one unlucky answer.
OPEN_AFTER = 3


# A caller refused while the one probe is out comes back after about this long: the probe's
# answer, not the next pause, decides whether it may send.
PROBE_WAIT = 0.2


class OutageOpen(Exception):
    """Zoom failed again while this caller waited: its request was not sent.

    `wait` is when to come back: the rest of the pause, or PROBE_WAIT while a probe is out.
    A caller that retried on its own backoff instead spent its attempts on refusals (a 30 %
    502 run of 30 callers with 12 attempts each failed one in CI so)."""

    def __init__(self, message: str, wait: float) -> None:
        super().__init__(message)
        self.wait = wait


class OutageBreaker:
    """One account's view of whether Zoom is answering (see the module's docstring)."""

    def __init__(self, base: float = 1.0, cap: float = 30.0) -> None:
        self.base, self.cap = base, cap
        self.failures = 0
        self.last_failure = ""  # what the last failure was (safe to show: no request data)
        self._until = 0.0
        self._probe = asyncio.Lock()

    async def call(self, send: Callable[[], Awaitable[T]], failed: Callable[[T], str | None]) -> T:
        """`send()`, unless Zoom is known to be failing: then OutageOpen, nothing sent."""
        if self.failures < OPEN_AFTER:  # a stray 5xx among answers does not stop everyone
            return self._record(await self._observe(send), failed)
        if (pause := self._until - time.monotonic()) > 0 or self._probe.locked():
            wait = max(pause, PROBE_WAIT)
            raise OutageOpen(
                f"Zoom failed {self.failures} times in a row (last: {self.last_failure}); "
                f"not sent (next try in {wait:.0f}s)",
                wait,
            )
        async with self._probe:  # half-open: one request at a time tells whether Zoom is back
            return self._record(await self._observe(send), failed)

    async def _observe(self, send: Callable[[], Awaitable[T]]) -> T:
        try:
            return await send()
        except Exception as error:
            self.fail(str(getattr(error, "message", "")) or type(error).__name__)
            raise

    def _record(self, result: T, failed: Callable[[T], str | None]) -> T:
        failure = failed(result)
        if failure is not None:
            self.fail(failure)
        else:
            self.failures = 0
        return result

    def fail(self, what: str) -> None:
        self.last_failure = what
        self.failures += 1
        if self.failures < OPEN_AFTER:
            return
        pause = min(self.cap, self.base * 2 ** (self.failures - OPEN_AFTER))
        jittered = pause * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not crypto
        self._until = max(self._until, time.monotonic() + jittered)


class AccountLimiter:
    def __init__(self, plan: RatePlan, overrides: dict[Category, int] | None = None) -> None:
        self.plan = plan
        self.outage = OutageBreaker()
        limits = {**LIMITS[plan], **{c: (n, 1.0) for c, n in (overrides or {}).items()}}
        self._categories = {
            category: CategoryLimiter(limit, period) for category, (limit, period) in limits.items()
        }

    def __getitem__(self, category: Category) -> CategoryLimiter:
        return self._categories[category]
