"""User OAuth for OBF: the authorization URL (with PKCE), the code exchange, and the refresh.

Zoom rotates refresh tokens: every refresh answers a new one and the old one stops working
(docs/zoom.md, OBF tokens). So a refresh is never retried once the request may have reached
Zoom: a second try with the old token would be refused and look like a revocation. Only
failures before anything was sent (no connection) are retried here; the grant service decides
the rest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from meetingbot_contract.logs import redact
from meetingbot_operator.zoom.credentials import AccessToken

CONNECT_ATTEMPTS = 3


@dataclass(frozen=True)
class AppCredentials:
    """A user-managed ("General") OAuth app."""

    client_id: str
    client_secret: SecretStr


@dataclass(frozen=True)
class UserTokens:
    access: AccessToken
    refresh: SecretStr


class UserOAuthError(Exception):
    """The token endpoint refused. `revoked`: the grant itself is gone (invalid_grant), so
    only a new authorization helps. The message holds our words and Zoom's numbers only."""

    def __init__(self, message: str, *, revoked: bool = False, transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.revoked = revoked
        self.transient = transient


def authorize_url(
    token_url: str, app: AppCredentials, redirect_uri: str, state: str, challenge: str
) -> str:
    """Zoom's consent page lives next to its token endpoint (…/oauth/authorize)."""
    base = token_url.rsplit("/", 1)[0] + "/authorize"
    query = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{base}?{urlencode(query)}"


async def exchange_code(
    http: httpx.AsyncClient,
    token_url: str,
    app: AppCredentials,
    code: str,
    redirect_uri: str,
    verifier: str,
) -> UserTokens:
    return await _token_request(
        http,
        token_url,
        app,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
    )


async def refresh(
    http: httpx.AsyncClient, token_url: str, app: AppCredentials, refresh_token: SecretStr
) -> UserTokens:
    return await _token_request(
        http,
        token_url,
        app,
        {"grant_type": "refresh_token", "refresh_token": refresh_token.get_secret_value()},
    )


async def _token_request(
    http: httpx.AsyncClient, token_url: str, app: AppCredentials, form: dict[str, str]
) -> UserTokens:
    started = time.monotonic()
    response: httpx.Response | None = None
    try:
        # Retried only when nothing reached Zoom (see the module's docstring).
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(httpx.ConnectError),
            stop=stop_after_attempt(CONNECT_ATTEMPTS),
            wait=wait_random_exponential(multiplier=0.5, max=5),
            reraise=True,
        ):
            with attempt:
                response = await http.post(
                    token_url,
                    data=form,
                    auth=(app.client_id, app.client_secret.get_secret_value()),
                )
    except httpx.ConnectError:
        raise UserOAuthError("the token endpoint could not be reached", transient=True) from None
    except httpx.HTTPError as failure:
        raise UserOAuthError(
            f"the token request failed after it was sent ({type(failure).__name__})",
            transient=True,
        ) from None
    assert response is not None
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    if response.status_code >= 500 or response.status_code == 429:
        raise UserOAuthError(f"token endpoint answered HTTP {response.status_code}", transient=True)
    access, new_refresh = body.get("access_token"), body.get("refresh_token")
    if response.status_code != 200 or not isinstance(access, str):
        kind = body.get("error")
        code = body.get("code")
        words = {
            "invalid_grant": "the refresh token was refused (revoked, expired or already used)",
            "invalid_client": "the app's client id or secret was refused",
            "invalid_request": "the request was refused (code, redirect URL or PKCE verifier)",
        }.get(str(kind), "refused")
        number = f", Zoom code {code}" if isinstance(code, int) else ""
        raise UserOAuthError(
            f"HTTP {response.status_code}{number}: {words}", revoked=kind == "invalid_grant"
        )
    if not isinstance(new_refresh, str) or not new_refresh:
        raise UserOAuthError("the token endpoint answered without a refresh token")
    redact(access, new_refresh)  # masked in any log line, whatever happens next
    raw_expires = body.get("expires_in", 3599)
    expires_in = float(raw_expires) if isinstance(raw_expires, int | float | str) else 3599.0
    return UserTokens(
        access=AccessToken(
            value=SecretStr(access),
            expires_at=started + max(expires_in - 60.0, 1.0),
            scopes=frozenset(str(body.get("scope", "")).split()[:100]),
        ),
        refresh=SecretStr(new_refresh),
    )
