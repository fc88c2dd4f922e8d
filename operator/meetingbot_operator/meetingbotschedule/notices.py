"""Zoom's meeting webhooks (`POST /zoom/meetings`): meeting.created, meeting.updated and
meeting.deleted make the schedules that read that meeting, or that user's calendar, read Zoom
again at once instead of at their next poll (docs/schedules.md).

A webhook is a hint, never a fact: the operator acts only on what it then reads from Zoom with
the schedule's own credentials, so a forged or replayed webhook can at most cost a read (and
at most one every few seconds per schedule). Still, a webhook must be signed: it is checked
against the secret tokens of the apps the schedules read with (the ZoomAccount's API Secret
`webhookSecretToken` for a recurring meeting, the ZoomUserGrant's app Secret for a calendar),
and wakes only the schedules whose own app's token verified it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from meetingbot_operator.zoom.webhooks import (
    URL_VALIDATION,
    NoticeRefused,
    Unverifiable,
    check_form,
    signed_by,
    url_validation_answer,
)
from meetingbot_operator.zoomaccount.credentials import WEBHOOK_TOKEN_KEY
from meetingbot_operator.zoomaccount.service import AccountService
from meetingbot_operator.zoomusergrant.service import GrantService

log = logging.getLogger(__name__)
EVENTS = frozenset({"meeting.created", "meeting.updated", "meeting.deleted"})
TOKEN_KEY = WEBHOOK_TOKEN_KEY  # the key of a grant's app Secret too


@dataclass(frozen=True)
class Reader:
    """What a schedule reads Zoom with, and so which webhooks it may be woken by."""

    namespace: str
    account: str | None  # a recurring meeting: the template's ZoomAccount
    grant: str | None  # a calendar: the ZoomUserGrant
    meeting: str | None  # the recurring meeting's number


class MeetingNotices:
    def __init__(
        self,
        accounts: AccountService,
        grants: GrantService,
        readers: Callable[[], dict[tuple[str, str], Reader]],
        wake: Callable[[tuple[str, str]], bool],
    ) -> None:
        self.accounts = accounts
        self.grants = grants
        self.readers = readers
        self.wake = wake

    async def notice(self, body: bytes, timestamp: str, signature: str) -> dict[str, Any]:
        try:
            check_form(timestamp, signature)
        except Unverifiable as error:
            raise NoticeRefused(str(error)) from None
        readers = self.readers()
        verified: dict[tuple[str, str], str] = {}  # schedule -> the token that verified it
        tokens: dict[tuple[str, str, str], str] = {}  # (namespace, kind, name) -> token
        for key, reader in readers.items():
            source = (reader.namespace, "account" if reader.account else "grant",
                      reader.account or reader.grant or "")  # fmt: skip
            if source not in tokens:
                tokens[source] = await self._token(*source)
            if signed_by(tokens[source], timestamp, body, signature):
                verified[key] = tokens[source]
        if not verified:
            raise NoticeRefused("the signature matches no schedule's app")
        try:
            event = json.loads(body)
        except ValueError:
            raise NoticeRefused("not JSON", status=400) from None
        payload = event.get("payload") or {}
        if event.get("event") == URL_VALIDATION:
            token = next(iter(verified.values()))
            return url_validation_answer(token, str(payload.get("plainToken", "")))
        if event.get("event") not in EVENTS:
            return {}
        obj = payload.get("object") or {}
        number, host = str(obj.get("id", "")), str(obj.get("host_id", ""))
        woken = [key for key in verified if self._concerns(readers[key], number, host)]
        read_again = [key for key in woken if self.wake(key)]
        log.info(
            "Zoom meeting webhook",
            extra={"event": event.get("event"), "schedules": len(woken), "read": len(read_again)},
        )
        return {}

    def _concerns(self, reader: Reader, number: str, host: str) -> bool:
        """Whether a change of that meeting (by that host) may change what the schedule reads:
        its recurring meeting, or a meeting its calendar's user hosts."""
        if reader.meeting is not None:
            return reader.meeting == number
        entry = self.grants.store.entries.get((reader.namespace, reader.grant or ""))
        return bool(host) and entry is not None and entry.grant.status.user_id == host

    async def _token(self, namespace: str, kind: str, name: str) -> str:
        """The secret token of the app a schedule reads with ("" when there is none to use):
        a grant's app Secret (read at most once a minute by the grants' store), or the
        account's, as its last verification read it."""
        if kind == "account":
            return self.accounts.webhook_token(namespace, name)
        entry = self.grants.store.entries.get((namespace, name))
        if entry is None:
            return ""
        data = await self.grants.store.app_secret((namespace, name), entry)
        return data.get(TOKEN_KEY, "")
