"""auth: auto's meeting lookups: whose meeting a number is (`GET /meetings/{id}` with the
account's token), kept per account for an hour and at most a thousand at a time."""

from __future__ import annotations

import logging
import time

from meetingbot_contract.reasons import Reason
from meetingbot_operator.zoom import ZoomClient, ZoomError
from meetingbot_operator.zoomaccount.state import MeetingOwner

log = logging.getLogger(__name__)

MEETING_CACHE_SECONDS = 3600.0
MEETING_CACHE_SIZE = 1000


class MeetingLookups:
    def __init__(self) -> None:
        self._found: dict[str, tuple[MeetingOwner, float]] = {}  # number -> (owner, until)

    def owner(self, number: str) -> MeetingOwner | None:
        """What a lookup found for this meeting, while it is fresh."""
        found = self._found.get(number)
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]

    async def lookup(self, client: ZoomClient, number: str, account: str) -> None:
        """A missing scope is an answer too (UNKNOWN); any other failure leaves nothing cached
        (looked up again)."""
        try:
            own = await client.meeting_is_own(number)
        except ZoomError as error:
            if error.reason != Reason.ZOOM_SCOPE_MISSING:
                log.warning(
                    "meeting lookup failed", extra={"account": account, "reason": error.reason}
                )
                return
            owner = MeetingOwner.UNKNOWN
        else:
            owner = MeetingOwner.OWN if own else MeetingOwner.EXTERNAL
        if len(self._found) >= MEETING_CACHE_SIZE:
            self._found.pop(next(iter(self._found)))  # the oldest entry
        self._found[number] = (owner, time.monotonic() + MEETING_CACHE_SECONDS)
