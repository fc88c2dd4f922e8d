"""Client-side rate limiting per account and category, shared by every caller in the process.

Zoom's limits are per account and shared by every app of it (ZOOM.md §6), so the client paces
itself below the plan's limit and, when Zoom still answers 429 (another app spent the budget),
pauses the whole category for every caller instead of letting each retry on its own.
"""

from __future__ import annotations

import asyncio
import time
from enum import StrEnum

from aiolimiter import AsyncLimiter


class Category(StrEnum):
    LIGHT = "Light"
    MEDIUM = "Medium"
    HEAVY = "Heavy"
    RESOURCE_INTENSIVE = "Resource-intensive"


class RatePlan(StrEnum):
    """The account's plan, as far as rate limits go (the ZoomAccount's spec.plan)."""

    PRO = "pro"
    BUSINESS_PLUS = "business"


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


class AccountLimiter:
    def __init__(self, plan: RatePlan, overrides: dict[Category, int] | None = None) -> None:
        self.plan = plan
        limits = {**LIMITS[plan], **{c: (n, 1.0) for c, n in (overrides or {}).items()}}
        self._categories = {
            category: CategoryLimiter(limit, period) for category, (limit, period) in limits.items()
        }

    def __getitem__(self, category: Category) -> CategoryLimiter:
        return self._categories[category]
