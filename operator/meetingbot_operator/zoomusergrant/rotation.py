"""Rotation: user access tokens for OBF, and the refresh-token rotation behind them.

Zoom rotates the refresh token on every refresh and the old one dies at once (docs/zoom.md,
OBF tokens). One refresh runs at a time per grant; the new refresh token is written to the
Secret before the access token is used; a `refreshing` mark is written before the request and
cleared with the new token. A mark found by the next refresh means a refresh was cut off
between Zoom's answer and the write: if Zoom then refuses the stored token, the status says
exactly that (RefreshInterrupted), not a generic revocation. Ready grants are refreshed at
least every `grant_refresh_seconds`, so a refresh token never lapses unused and a revocation
shows before a bot needs the grant.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from pydantic import SecretStr

from meetingbot_operator.settings import Settings
from meetingbot_operator.zoom import user_oauth
from meetingbot_operator.zoom.credentials import AccessToken
from meetingbot_operator.zoom.user_oauth import UserOAuthError
from meetingbot_operator.zoomusergrant.state import (
    AWAITING,
    INTERRUPTED,
    NOT_USABLE,
    REFRESH_TOKEN,
    REFRESHING,
    REVOKED,
    GrantEntry,
    GrantProblem,
    GrantState,
    Key,
)
from meetingbot_operator.zoomusergrant.store import GrantStore

log = logging.getLogger(__name__)


class Rotation:
    def __init__(self, store: GrantStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def access_token(self, namespace: str, name: str) -> SecretStr:
        """A user access token for the grant, refreshed when due (one refresh at a time)."""
        key = (namespace, name)
        entry = self.store.entry(key)
        access = entry.access
        if access is not None and access.expires_at > time.monotonic():
            return access.value
        async with entry.lock:
            access = entry.access
            if access is None or access.expires_at <= time.monotonic():
                access = await self._refresh(key, entry)
            return access.value

    def token_refused(self, namespace: str, name: str, token: SecretStr) -> None:
        """Zoom said the access token is invalid (124): the next use refreshes."""
        entry = self.store.entries.get((namespace, name))
        if entry is not None and entry.access is not None and entry.access.value == token:
            entry.access = None

    async def keep_fresh(self) -> None:
        """Rotate every Ready grant not refreshed for grant_refresh_seconds: a refresh token
        left unused lapses (Zoom: about 90 days), and a revocation shows in the status."""
        horizon = datetime.now(UTC) - timedelta(seconds=self.settings.grant_refresh_seconds)
        for key, entry in list(self.store.entries.items()):
            last = entry.grant.status.last_refresh_time or entry.grant.status.authorized_time
            if not entry.state.ready or (last is not None and last > horizon):
                continue
            try:
                async with entry.lock:
                    await self._refresh(key, entry)
            except GrantProblem:
                continue  # already in the status
            except Exception as error:  # isolation: one grant's failure stays with it
                log.warning(
                    "grant refresh failed; trying it again at the next sweep",
                    extra={"grant": "/".join(key), "error": type(error).__name__},
                )

    async def _refresh(self, key: Key, entry: GrantEntry) -> AccessToken:
        """Rotate the refresh token; the caller holds the grant's lock."""
        if not entry.state.ready and entry.state.reason in (REVOKED, INTERRUPTED, AWAITING):
            raise GrantProblem(entry.state.reason, entry.state.message)
        token_url, app = await self.store.app(key, entry)
        data = await self.store.secret(key, entry)
        stored = data.get(REFRESH_TOKEN)
        if not stored:
            await self.store.set_state(
                key, entry, GrantState(False, AWAITING, "not authorized yet")
            )
            raise GrantProblem(AWAITING, "not authorized yet")
        interrupted = bool(data.get(REFRESHING))
        # The mark first: if we die after Zoom rotates the token, the next run knows why the
        # stored token no longer works.
        data[REFRESHING] = datetime.now(UTC).isoformat(timespec="seconds")
        await self.store.write_secret(key, entry, data)
        try:
            tokens = await user_oauth.refresh(
                self.store.http(key, entry), token_url, app, SecretStr(stored)
            )
        except UserOAuthError as error:
            if error.revoked:
                state = (
                    GrantState(
                        False,
                        INTERRUPTED,
                        "a refresh was cut off after Zoom rotated the refresh token (the "
                        "operator stopped before it could store the new one); the user must "
                        "authorize again at the authorizationUrl",
                    )
                    if interrupted
                    else GrantState(
                        False,
                        REVOKED,
                        f"{error.message}: the user removed the app or the grant expired; the "
                        "user must authorize again at the authorizationUrl",
                    )
                )
                await self.store.set_state(key, entry, state)
                raise GrantProblem(state.reason, state.message) from None
            # Not sent, or no answer: the stored token may or may not be spent. The mark stays.
            raise GrantProblem(NOT_USABLE, f"refresh failed: {error.message}") from None
        data.pop(REFRESHING, None)
        data[REFRESH_TOKEN] = tokens.refresh.get_secret_value()
        await self.store.write_secret(key, entry, data)  # before the access token is used
        entry.access = tokens.access
        await self.store.authorized(key, entry, tokens.access, first=False)
        return tokens.access
