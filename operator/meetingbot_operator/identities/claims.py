"""Who holds which service user: the claims ledger, and the only writer of it.

A bot holds a user while its attempt runs, so a user's load is the number of running attempts
it serves, and `maxBotsPerUser` caps it. The ledger is kept as kueue keeps its cache: what the
objects say (a running attempt in a MeetingBot's status holds its user, `observe`), plus the
starts in flight, assumed from the decision on (`hold` before any await), so the bots decided
next in a burst see the load and spread over the users. After a restart it is rebuilt from the
MeetingBots' statuses and their live pods (ZOOM_USER_ANNOTATION) as the watches list them.

Each pass says which user its bot holds after it (`Hold`, or none); the ledger makes it so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container
from dataclasses import dataclass

AccountKey = tuple[str, str]  # (namespace, ZoomAccount name)

# What a bot pod made for a ZAK start says it holds: its service user and ZoomAccount. Pods
# are written before their MeetingBot's status says which user they hold, so after a restart
# (or a shard's move) the ledger reads the pods too: a pod whose status was never written
# still counts against its user's cap, and its start, decided again, keeps that user.
ZOOM_USER_ANNOTATION = "meetingbot.dev/zoom-user"
ZOOM_ACCOUNT_ANNOTATION = "meetingbot.dev/zoom-account"


@dataclass(frozen=True)
class Hold:
    """The user a bot holds after its pass.

    capped: a new claim, refused when the user serves `maxBotsPerUser` bots already or is
    Unavailable. Not capped: a running attempt, or a start pinned to `spec.user`, which holds
    its user whatever the cap (the pin is the user's choice; the cap is for spreading)."""

    user: str
    capped: bool


class ClaimsLedger:
    def __init__(self) -> None:
        self._claims: dict[str, tuple[AccountKey, str]] = {}  # bot uid -> (account, user)
        # Claims per user, kept beside the claims (only _take and release change either):
        # every pass reads the loads, which a count of the claims would make O(bots).
        self._counts: dict[AccountKey, Counter[str]] = {}
        self._versions: Counter[AccountKey] = Counter()  # bumped on every change of loads

    def hold(
        self,
        account: AccountKey,
        uid: str,
        hold: Hold | None,
        *,
        cap: int | None,
        unavailable: Container[str] = (),
    ) -> bool:
        """Make the bot `uid` hold what its pass decided; False when a capped claim is refused
        (the bot then holds nothing)."""
        if hold is None:
            self.release(uid)
            return True
        if self._claims.get(uid) == (account, hold.user):
            return True
        if hold.capped:
            if hold.user in unavailable:
                self.release(uid)
                return False
            if cap is not None and self._counts.get(account, Counter())[hold.user] >= cap:
                self.release(uid)
                return False
        self._take(account, uid, hold.user)
        return True

    def observe(self, account: AccountKey, uid: str, user: str) -> None:
        """A running attempt seen in a MeetingBot's status, or its live pod, holds its user,
        whatever the cap."""
        if self._claims.get(uid) != (account, user):
            self._take(account, uid, user)

    def release(self, uid: str) -> None:
        held = self._claims.pop(uid, None)
        if held is not None:
            account, user = held
            self._counts[account][user] -= 1
            self._versions[account] += 1

    def held(self, uid: str) -> str | None:
        held = self._claims.get(uid)
        return held[1] if held else None

    def loads(self, account: AccountKey, users: tuple[str, ...]) -> dict[str, int]:
        counts = self._counts.get(account, Counter())
        return {user: counts[user] for user in users}

    def version(self, account: AccountKey) -> int:
        return self._versions[account]

    def _take(self, account: AccountKey, uid: str, user: str) -> None:
        self.release(uid)
        self._claims[uid] = (account, user)
        self._counts.setdefault(account, Counter())[user] += 1
        self._versions[account] += 1
