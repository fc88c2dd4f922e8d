"""The ZAK cache: the latest ZAK per service user, shared by the bots that start while it has
time left (`spec.zak.reuse`), in memory only.

Zoom checks a ZAK only when a bot joins, several ZAKs of one user are valid at once, and one
user may serve many bots (docs/zoom.md, ZAK): so bots starting together wait for one mint (a
burst on one user costs one Zoom call, not one per bot). A join refused for the ZAK forgets it
(the decision names that action), and an account that stops being Ready forgets all of its.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from meetingbot_operator.identities.claims import AccountKey
from meetingbot_operator.zoom import Zak, ZoomError

# Bots that waited on a shared mint that failed fail with it for this long.
SHARED_FAILURE_SECONDS = 2.0

Key = tuple[AccountKey, str]  # (account, user)


class ZakCache:
    def __init__(self) -> None:
        self._zaks: dict[Key, Zak] = {}
        self._locks: dict[Key, asyncio.Lock] = {}
        self._failures: dict[Key, tuple[ZoomError, float]] = {}

    def reusable(self, account: AccountKey, user: str, margin: timedelta) -> Zak | None:
        """The user's cached ZAK while it has more than `margin` to live."""
        cached = self._zaks.get((account, user))
        if cached is not None and cached.expires_at - datetime.now(UTC) > margin:
            return cached
        return None

    async def shared(
        self,
        account: AccountKey,
        user: str,
        margin: timedelta,
        mint: Callable[[], Awaitable[Zak]],
    ) -> tuple[Zak, bool]:
        """The user's ZAK: the cached one, else one minted now for every bot waiting on it;
        (the ZAK, whether it was reused)."""
        key = (account, user)
        async with self._locks.setdefault(key, asyncio.Lock()):
            cached = self.reusable(account, user, margin)
            if cached is not None:
                return cached, True
            failed = self._failures.get(key)
            if failed is not None and time.monotonic() - failed[1] < SHARED_FAILURE_SECONDS:
                # The mint the others waited for just failed (after its own retries): they
                # fail with it and take their own jittered backoff, rather than each retrying
                # in turn under the lock.
                raise failed[0]
            try:
                minted = await mint()
            except ZoomError as error:
                self._failures[key] = (error, time.monotonic())
                raise
            self._failures.pop(key, None)
            self._zaks[key] = minted
            return minted, False

    def forget(self, account: AccountKey, user: str, expires_at: datetime | None = None) -> None:
        """Drop the user's ZAK (a join refused it); with `expires_at`, only that one: a newer
        ZAK minted meanwhile stays."""
        cached = self._zaks.get((account, user))
        if cached is not None and (expires_at is None or cached.expires_at == expires_at):
            del self._zaks[(account, user)]

    def forget_account(self, account: AccountKey) -> None:
        for key in [k for k in self._zaks if k[0] == account]:
            del self._zaks[key]
        for key in [k for k in self._locks if k[0] == account and not self._locks[k].locked()]:
            del self._locks[key]
        for key in [k for k in self._failures if k[0] == account]:
            del self._failures[key]
