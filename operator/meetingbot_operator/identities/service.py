"""Zoom identities, one owner: each account's pool, the claims ledger and the ZAK cache.

The ZoomAccount wing keeps each pool's users and their availability up to date; the MeetingBot
wing says which user each bot holds (a decision's `hold`) and asks for ZAKs. Neither reaches
into the other: both go through this object.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from meetingbot_api import RUNNING_PHASES
from meetingbot_operator.identities.claims import AccountKey, ClaimsLedger, Hold
from meetingbot_operator.identities.pool import UserPool, UserView
from meetingbot_operator.identities.zaks import ZakCache


class HeldPod(Protocol):
    """What the ledger reads of a bot pod (meetingbot/observed.py's PodObservation)."""

    @property
    def zoom_user(self) -> str | None: ...

    @property
    def zoom_account(self) -> str | None: ...

    @property
    def live(self) -> bool: ...


class Identities:
    def __init__(self, recheck_seconds: float = 30.0) -> None:
        self.claims = ClaimsLedger()
        self.zaks = ZakCache()
        self._pools: dict[AccountKey, UserPool] = {}
        self._recheck_seconds = recheck_seconds

    # --- the pools (written by the ZoomAccount wing) ---------------------------------------

    def pool(self, account: AccountKey) -> UserPool:
        pool = self._pools.get(account)
        if pool is None:
            pool = self._pools[account] = UserPool(recheck_seconds=self._recheck_seconds)
        return pool

    def has_pool(self, account: AccountKey) -> bool:
        return account in self._pools

    def forget_account(self, account: AccountKey) -> None:
        """A deleted ZoomAccount: its pool and ZAKs go (its bots' claims go as they pass)."""
        self._pools.pop(account, None)
        self.zaks.forget_account(account)

    def user_refused(
        self, account: AccountKey, user: str, reason: str, message: str, now: datetime
    ) -> None:
        """Zoom refused the user for a reason about the user: Unavailable until a check says
        otherwise."""
        if account in self._pools:
            self._pools[account].mark_unavailable(user, reason, message, now)

    def loads(self, account: AccountKey) -> dict[str, int]:
        return self.claims.loads(account, self.pool(account).users)

    def view(self, account: AccountKey) -> list[UserView]:
        return self.pool(account).view(self.loads(account))

    def version(self, account: AccountKey) -> tuple[int, int]:
        """Changes since: what the account's status shows (availability, loads)."""
        return self.pool(account).version, self.claims.version(account)

    # --- the claims (the MeetingBot wing's decisions) ---------------------------------------

    def hold(self, account: AccountKey, uid: str, hold: Hold | None, cap: int | None) -> bool:
        """Carry out a pass's `hold`; False when a capped claim was refused."""
        unavailable = self._pools[account].unavailable if account in self._pools else {}
        return self.claims.hold(account, uid, hold, cap=cap, unavailable=unavailable)

    def observe_bot(self, body: dict[str, Any]) -> None:
        """A MeetingBot from a watch event: a running attempt in its status holds its user at
        once, so after a restart the loads are whole before any new bot starts."""
        status = body.get("status") or {}
        user, account = status.get("zoomUser"), (body.get("spec") or {}).get("accountRef", {})
        if user and status.get("phase") in RUNNING_PHASES and account.get("name"):
            key = (body["metadata"]["namespace"], account["name"])
            self.claims.observe(key, body["metadata"]["uid"], user)

    def observe_pod(self, namespace: str, owner: str | None, pod: HeldPod) -> None:
        """A bot pod from a watch event (its controller's UID, what was read of it): a live pod
        made for a ZAK start holds its user at once when its bot holds none, as after a
        restart when its MeetingBot's status does not say so yet (the operator that started
        it stopped before writing it). Never instead of what the bot holds (an older attempt's
        pod, not yet gone, does not take its claim back); a finished pod holds nothing (its
        bot's next pass lets the user go)."""
        user, account = pod.zoom_user, pod.zoom_account
        if user and account and owner and pod.live and self.claims.held(owner) is None:
            self.claims.observe((namespace, account), owner, user)

    def release(self, uid: str) -> None:
        """A deleted MeetingBot holds nothing."""
        self.claims.release(uid)
