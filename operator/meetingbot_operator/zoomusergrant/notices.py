"""Zoom's deauthorization notices (`/oauth/deauthorize`): a user who removes the app in Zoom
has their grants revoked at once and their refresh tokens deleted."""

from __future__ import annotations

import json
import logging
from typing import Any

from meetingbot_operator.zoom.webhooks import (
    URL_VALIDATION,
    Unverifiable,
    check_form,
    signed_by,
    url_validation_answer,
)
from meetingbot_operator.zoomusergrant.state import (
    REFRESH_TOKEN,
    REVOKED,
    GrantEntry,
    GrantProblem,
    GrantState,
    Key,
)
from meetingbot_operator.zoomusergrant.store import GrantStore

log = logging.getLogger(__name__)


class Notices:
    def __init__(self, store: GrantStore) -> None:
        self.store = store

    async def notice(self, body: bytes, timestamp: str, signature: str) -> dict[str, Any]:
        """A webhook from Zoom on /oauth/deauthorize: either the endpoint's URL validation, or
        app_deauthorized: the user's grants of that app are revoked at once and their refresh
        tokens deleted. Unverifiable or stale notices are refused.

        Verification and revocation are bound together, grant by grant: a notice is checked
        against each grant's own app Secret (its webhookSecretToken), and it can revoke only
        the grants whose own Secret verified it. Whoever creates a grant chooses its app
        Secret, and with it the client id it claims; so a notice signed with one tenant's
        token never touches another tenant's grants, whatever client id it names."""
        try:
            check_form(timestamp, signature)
        except Unverifiable as error:
            raise GrantProblem("NoticeRefused", str(error), status=401) from None
        verified: list[tuple[Key, GrantEntry, dict[str, str]]] = []
        for key, entry in list(self.store.entries.items()):
            data = await self.store.app_secret(key, entry)
            if signed_by(data.get("webhookSecretToken", ""), timestamp, body, signature):
                verified.append((key, entry, data))
        if not verified:
            raise GrantProblem("NoticeRefused", "the signature matches no app", status=401)
        try:
            event = json.loads(body)
        except ValueError:
            raise GrantProblem("NoticeRefused", "not JSON") from None
        payload = event.get("payload") or {}
        if event.get("event") == URL_VALIDATION:
            token = verified[0][2]["webhookSecretToken"]
            return url_validation_answer(token, str(payload.get("plainToken", "")))
        if event.get("event") != "app_deauthorized":
            return {}
        client_id, user = str(payload.get("client_id", "")), str(payload.get("user_id", ""))
        for key, entry, data in verified:
            if data.get("clientId") != client_id or entry.grant.status.user_id != user:
                continue
            await self._revoke(key, entry)
        return {}

    async def _revoke(self, key: Key, entry: GrantEntry) -> None:
        """Zoom's notice: forget the user's tokens (Zoom asks apps to delete their data)."""
        async with entry.lock:
            entry.access = None
            stored = await self.store.secret(key, entry)
            stored.pop(REFRESH_TOKEN, None)
            await self.store.write_secret(key, entry, stored)
            await self.store.set_state(
                key,
                entry,
                GrantState(
                    False,
                    REVOKED,
                    "the user removed the app in Zoom (Zoom's deauthorization notice); the "
                    "user must authorize again at the authorizationUrl",
                ),
            )
        log.info("grant revoked by Zoom's notice", extra={"grant": f"{key[0]}/{key[1]}"})
