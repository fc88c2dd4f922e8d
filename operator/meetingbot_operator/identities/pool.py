"""The service users of one ZoomAccount, and which of them can mint ZAKs now.

A user Zoom refuses for reasons about the user (deleted, not in the account, pending,
deactivated) is Unavailable: bots move to another user at once, and the user is checked
again with backoff (GET /v2/users/{id}) until Zoom says it is active. Who holds which user is
the claims ledger's (claims.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from meetingbot_contract.reasons import Reason

# Refusals that are about the user, not the bot: another user can serve the bot.
USER_LEVEL = frozenset({Reason.ZOOM_USER_NOT_FOUND, Reason.ZOOM_USER_INACTIVE})
RECHECK_MAX_SECONDS = 1800.0


@dataclass
class Unavailable:
    reason: str
    message: str
    since: datetime
    next_check: float
    failures: int = 1


@dataclass(frozen=True)
class UserView:
    """One service user as the account's status shows it."""

    user: str
    state: str  # Active | Unavailable
    active_bots: int
    reason: str | None = None
    message: str | None = None
    since: datetime | None = None


@dataclass
class UserPool:
    users: tuple[str, ...] = ()
    unavailable: dict[str, Unavailable] = field(default_factory=dict)
    version: int = 0  # bumped on every change the status shows
    recheck_seconds: float = 30.0  # the first check of an Unavailable user; doubles after

    def set_users(self, users: tuple[str, ...]) -> None:
        """The spec's list; a user taken out of it keeps no state."""
        self.users = users
        for gone in set(self.unavailable) - set(users):
            del self.unavailable[gone]

    def active(self) -> tuple[str, ...]:
        return tuple(u for u in self.users if u not in self.unavailable)

    def mark_unavailable(self, user: str, reason: str, message: str, now: datetime) -> None:
        if user not in self.unavailable:
            due = time.monotonic() + self.recheck_seconds
            self.unavailable[user] = Unavailable(reason, message, now, due)
            self.version += 1

    def due(self) -> list[str]:
        """Unavailable users whose next check is due."""
        now = time.monotonic()
        return [u for u, state in self.unavailable.items() if state.next_check <= now]

    def recovered(self, user: str) -> None:
        if self.unavailable.pop(user, None) is not None:
            self.version += 1

    def still_unavailable(self, user: str, reason: str, message: str) -> None:
        state = self.unavailable.get(user)
        if state is None:
            return
        state.failures += 1
        delay = min(self.recheck_seconds * 2 ** (state.failures - 1), RECHECK_MAX_SECONDS)
        state.next_check = time.monotonic() + delay
        if (state.reason, state.message) != (reason, message):
            state.reason, state.message = reason, message
            self.version += 1

    def view(self, loads: dict[str, int]) -> list[UserView]:
        """Each user as the account's status shows it, with the loads the claims give."""
        views = []
        for user in self.users:
            down = self.unavailable.get(user)
            if down is None:
                views.append(UserView(user, "Active", loads.get(user, 0)))
            else:
                views.append(
                    UserView(
                        user, "Unavailable", loads.get(user, 0), down.reason, down.message,
                        down.since,
                    )
                )  # fmt: skip
        return views
