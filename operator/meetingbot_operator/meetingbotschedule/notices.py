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
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from meetingbot_operator.kube.client import InvalidName
from meetingbot_operator.kube.secrets import SecretProblem, SecretUse, read_opted_in
from meetingbot_operator.kube.verbs import Kube
from meetingbot_operator.zoom.webhooks import (
    URL_VALIDATION,
    Unverifiable,
    check_form,
    signed_by,
    url_validation_answer,
)
from meetingbot_operator.zoomaccount.service import AccountService
from meetingbot_operator.zoomusergrant.service import GrantService

log = logging.getLogger(__name__)
EVENTS = frozenset({"meeting.created", "meeting.updated", "meeting.deleted"})
TOKEN_KEY = "webhookSecretToken"  # noqa: S105 - the key's name, not a token
SECRET_SECONDS = 60.0  # an account's Secret is read at most once a minute for notices


class NoticeRefused(Exception):
    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


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
        kube: Kube,
        accounts: AccountService,
        grants: GrantService,
        readers: Callable[[], dict[tuple[str, str], Reader]],
        wake: Callable[[tuple[str, str]], bool],
    ) -> None:
        self.kube = kube
        self.accounts = accounts
        self.grants = grants
        self.readers = readers
        self.wake = wake
        self._account_tokens: dict[tuple[str, str], tuple[float, str]] = {}

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
        """The secret token of the app a schedule reads with ("" when there is none to use)."""
        if kind == "grant":
            entry = self.grants.store.entries.get((namespace, name))
            if entry is None:
                return ""
            return (await self.grants.store.app_secret((namespace, name), entry)).get(TOKEN_KEY, "")
        cached = self._account_tokens.get((namespace, name))
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        token = ""
        account = self.accounts.entries.get((namespace, name))
        if account is not None:
            secret = account.spec.api_credentials_secret_ref.name
            try:
                data = await read_opted_in(self.kube, namespace, secret, SecretUse.ZOOM_CREDENTIALS)
                token = data.get(TOKEN_KEY, "")
            except (SecretProblem, InvalidName):
                token = ""  # this account cannot verify anything; the others still can
        self._account_tokens[(namespace, name)] = (time.monotonic() + SECRET_SECONDS, token)
        return token
