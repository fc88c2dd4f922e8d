"""The bots that existed when this process started and that its watches have not shown yet.

A report from one of them is answered "not yet" (503, retried), never "unknown" (401, which
makes a bot stop reporting). The wait ends when every one has been seen, or when `patience`
seconds pass with nothing listed: one deleted in between never shows. It is counted from the
last object a watch's list brought, not from the start, because a new leader of a loaded shard
can take longer than that to list its bots (docs/operations.md, "High availability").
"""

from __future__ import annotations

import time
from collections.abc import Callable

Key = tuple[str, str]


class ExpectedBots:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._keys: set[Key] = set()
        self._patience = 0.0
        self._until = 0.0
        self._holding = False

    def hold(self) -> None:
        """Every bot not seen yet is awaited until `expect` names the ones to wait for: a
        shard taken in place is listed by its watches while its bots' names are read."""
        self._holding = True

    def expect(self, keys: set[Key], patience: float) -> None:
        """These too (at the start, the bots there; when a shard is taken, its bots)."""
        self._keys |= keys
        self._patience = patience
        self._until = self._clock() + patience
        self._holding = False

    def seen(self, key: Key) -> None:
        self._keys.discard(key)

    def listing(self) -> None:
        """An object of a watch's list came: the lists are still bringing what was expected."""
        if self._keys:
            self._until = self._clock() + self._patience

    def waiting(self) -> bool:
        if self._holding:
            return True
        if self._keys and self._clock() > self._until:
            self._keys.clear()
        return bool(self._keys)
