"""Server-to-Server OAuth: one cached account token, refreshed ahead of expiry, one request in
flight however many callers want it at once."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import httpx
from pydantic import SecretStr

from meetingbot_contract.reasons import Reason
from meetingbot_operator.zoom.credentials import AccessToken, ApiCredentials
from meetingbot_operator.zoom.errors import ZoomError, describe

log = logging.getLogger(__name__)

# What a scope looks like ("user:read:token:admin"): anything else is not repeated in status.
SCOPE = re.compile(r"^[a-z][a-z_]{0,40}(:[a-z_]{1,40}){0,4}$")
# Refresh this long before Zoom's stated expiry (tokens live 3599 s).
REFRESH_MARGIN_SECONDS = 60.0


class TokenProvider:
    def __init__(self, http: httpx.AsyncClient, oauth_url: str, credentials: ApiCredentials):
        self._http = http
        self._oauth_url = oauth_url
        self._credentials = credentials
        self._token: AccessToken | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> AccessToken:
        token = self._token
        if token is not None and token.expires_at > time.monotonic():
            return token
        async with self._lock:
            # Whoever held the lock before us may have refreshed already.
            token = self._token
            if token is None or token.expires_at <= time.monotonic():
                token = self._token = await self._request()
            return token

    def invalidate(self, token: AccessToken) -> None:
        """Forget `token` (Zoom said 124: invalid); a newer one fetched meanwhile is kept."""
        if self._token is token:
            self._token = None

    async def _request(self) -> AccessToken:
        started = time.monotonic()
        try:
            response = await self._http.post(
                self._oauth_url,
                data={
                    "grant_type": "account_credentials",
                    "account_id": self._credentials.account_id,
                },
                auth=(
                    self._credentials.client_id,
                    self._credentials.client_secret.get_secret_value(),
                ),
            )
        except httpx.HTTPError as error:
            raise ZoomError(
                Reason.ZOOM_UNAVAILABLE, f"token request failed: {type(error).__name__}"
            ) from None
        if response.status_code == 429:
            raise ZoomError(Reason.ZOOM_RATE_LIMITED, "token request rate limited", status=429)
        if response.status_code >= 500:
            raise ZoomError(
                Reason.ZOOM_UNAVAILABLE, "token endpoint unavailable", status=response.status_code
            )
        body = _json(response)
        access_token = body.get("access_token")
        if response.status_code != 200 or not isinstance(access_token, str):
            raw_code = body.get("code")
            code = raw_code if isinstance(raw_code, int) else None
            # The endpoint's own words are not repeated (they end up in status): ours are.
            raise ZoomError(
                Reason.ZOOM_CREDENTIALS_INVALID,
                f"token request rejected: {describe(response.status_code, code, 'refused')}",
                status=response.status_code,
                code=code,
            )
        raw_expires = body.get("expires_in", 3599)
        expires_in = float(raw_expires) if isinstance(raw_expires, int | float | str) else 3599.0
        log.debug("account token obtained", extra={"expires_in": expires_in})
        return AccessToken(
            value=SecretStr(access_token),
            expires_at=started + max(expires_in - REFRESH_MARGIN_SECONDS, 1.0),
            scopes=frozenset(
                scope for scope in str(body.get("scope", "")).split()[:200] if SCOPE.match(scope)
            ),
        )


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
