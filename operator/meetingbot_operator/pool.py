"""The service-user pool of one ZoomAccount: which users can mint ZAKs now, and which bots
hold which user.

A user Zoom refuses for reasons about the user (deleted, not in the account, pending,
deactivated) is Unavailable: bots move to another user at once, and the user is checked
again with backoff (GET /v2/users/{id}) until Zoom says it is active. A bot claims its user
when its attempt starts and releases it when the attempt is over, so the load of each user
is the number of running attempts it serves; `maxBotsPerUser` caps it. The claims are
rebuilt from the MeetingBots' statuses after a restart.
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
    claims: dict[str, str] = field(default_factory=dict)  # bot uid -> user
    unavailable: dict[str, Unavailable] = field(default_factory=dict)
    version: int = 0  # bumped on every change the status shows
    recheck_seconds: float = 30.0  # the first check of an Unavailable user; doubles after
    # Claims per user, kept with the claims: decisions read it on every pass.
    counts: dict[str, int] = field(default_factory=dict)

    def set_users(self, users: tuple[str, ...]) -> None:
        """The spec's list; a user taken out of it keeps no state."""
        self.users = users
        for gone in set(self.unavailable) - set(users):
            del self.unavailable[gone]

    def active(self) -> tuple[str, ...]:
        return tuple(u for u in self.users if u not in self.unavailable)

    def loads(self) -> dict[str, int]:
        return {user: self.counts.get(user, 0) for user in self.users}

    def _hold(self, uid: str, user: str) -> None:
        self._drop(uid)
        self.claims[uid] = user
        self.counts[user] = self.counts.get(user, 0) + 1
        self.version += 1

    def _drop(self, uid: str) -> None:
        user = self.claims.pop(uid, None)
        if user is not None:
            self.counts[user] -= 1
            self.version += 1

    def claim(self, uid: str, user: str, cap: int | None) -> bool:
        """Hold `user` for the bot `uid`: refused when the user is Unavailable or serves `cap`
        bots already (a bot that holds it already keeps it)."""
        if self.claims.get(uid) == user:
            return True
        if user in self.unavailable:
            return False
        if cap is not None and self.counts.get(user, 0) >= cap:
            return False
        self._hold(uid, user)
        return True

    def adopt(self, uid: str, user: str) -> None:
        """A running attempt found after a restart: it holds its user whatever the cap."""
        if self.claims.get(uid) != user:
            self._hold(uid, user)

    def release(self, uid: str) -> None:
        self._drop(uid)

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

    def view(self) -> list[UserView]:
        loads = self.loads()
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
