"""User OAuth, as Zoom runs it for a user-managed app: the consent page, the authorization
code grant with PKCE (S256), refresh-token rotation, and the user-token endpoints OBF needs.

Error bodies follow Zoom's OAuth error table ({"reason", "error"}; 4709 for a redirect URL
off the app's list); where Zoom publishes no number, only the `error` string is promised.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from devenv.zoomsim.state import ACCESS_TOKEN_SECONDS, Account, World

AUTHORIZE_FIELDS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
)


def _error(error: str, reason: str, status: int = 400, code: int | None = None) -> web.Response:
    body: dict[str, Any] = {"error": error, "reason": reason}
    if code is not None:
        body["code"] = code
    return web.json_response(body, status=status)


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=f"<!doctype html><html><head><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>",
        content_type="text/html",
        status=status,
    )


def _check_request(world: World, query: Any) -> tuple[Account, dict[str, str]] | web.Response:
    params = {k: str(query.get(k, "")) for k in AUTHORIZE_FIELDS}
    app = world.app_for_client(params["client_id"])
    if app is None:
        return _page("Invalid client_id", "<p>4702: Invalid client.</p>", 400)
    if params["redirect_uri"] not in app.redirect_urls:
        return _page("Redirect URI mismatch", "<p>4709: Redirect URI mismatch.</p>", 400)
    if params["response_type"] != "code":
        return _page("Unsupported response type", "<p>Use response_type=code.</p>", 400)
    if params["code_challenge"] and params["code_challenge_method"] != "S256":
        return _page("Invalid code challenge", "<p>Only S256 is supported.</p>", 400)
    return app, params


async def authorize_page(request: web.Request, world: World) -> web.Response:
    """What a person sees: the app's name and a sign-in; "Allow" or "Decline"."""
    checked = _check_request(world, request.query)
    if isinstance(checked, web.Response):
        return checked
    _, params = checked
    hidden = "".join(
        f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in params.items()
    )
    form = (
        f'<form method="post" action="/oauth/authorize">{hidden}'
        '<label>Email <input name="email" id="email" type="email"></label>'
        '<button name="decision" value="allow" id="allow">Allow</button>'
        '<button name="decision" value="decline" id="decline">Decline</button></form>'
    )
    return _page("Authorize the app", form)


async def authorize_submit(request: web.Request, world: World) -> web.Response:
    form = await request.post()
    checked = _check_request(world, form)
    if isinstance(checked, web.Response):
        return checked
    app, params = checked
    target = params["redirect_uri"]
    answer: dict[str, str] = {}
    if form.get("decision") != "allow":
        answer["error"] = "access_denied"
    else:
        user = world.find_any_user(str(form.get("email", "")))
        if user is None or user.status != "active":
            return _page("Sign-in failed", "<p>No active user with that email.</p>", 400)
        answer["code"] = world.new_code(app, user, target, params["code_challenge"])
    if params["state"]:
        answer["state"] = params["state"]
    separator = "&" if "?" in target else "?"
    raise web.HTTPFound(f"{target}{separator}{urlencode(answer)}")


def _tokens(access: str, refresh: str, scopes: tuple[str, ...]) -> web.Response:
    return web.json_response(
        {
            "access_token": access,
            "token_type": "bearer",
            "refresh_token": refresh,
            "expires_in": ACCESS_TOKEN_SECONDS,
            "scope": " ".join(scopes),
        }
    )


def _client(world: World, credentials: tuple[str, str] | None) -> Account | None:
    """The user-managed app whose id and secret the Basic auth header carries."""
    app = world.app_for_client(credentials[0]) if credentials else None
    if credentials is None or app is None or credentials[1] != app.user_client_secret:
        return None
    return app


def exchange_code(
    world: World, credentials: tuple[str, str] | None, params: dict[str, Any]
) -> web.Response:
    """grant_type=authorization_code: the code once, with its redirect URL and verifier."""
    app = _client(world, credentials)
    if app is None:
        return _error("invalid_client", "Invalid client_id or client_secret", 401, 4702)
    code = world.auth_codes.pop(str(params.get("code", "")), None)
    if code is None or code.account_id != app.id or code.expires_at < time.time():
        return _error("invalid_request", "Invalid authorization code")
    if str(params.get("redirect_uri", "")) != code.redirect_uri:
        return _error("invalid_request", "Redirect URI mismatch.", code=4709)
    if code.challenge:
        verifier = str(params.get("code_verifier", "")).encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
        if not hmac.compare_digest(digest.decode(), code.challenge):
            return _error("invalid_request", "Invalid code_verifier")
    world.calls[f"{app.id}:user_oauth"] += 1
    access, refresh = world.user_tokens(app, code.user_id, code.user_account_id, app.user_scopes)
    return _tokens(access, refresh, app.user_scopes)


def refresh(
    world: World, credentials: tuple[str, str] | None, params: dict[str, Any]
) -> web.Response:
    """grant_type=refresh_token: a new access token and a new refresh token; the old refresh
    token is spent, and a second use of it is refused (invalid_grant)."""
    app = _client(world, credentials)
    if app is None:
        return _error("invalid_client", "Invalid client_id or client_secret", 401, 4702)
    grant = world.refresh_tokens.pop(str(params.get("refresh_token", "")), None)
    if grant is None or grant.app_account_id != app.id or grant.expires_at < time.time():
        return _error("invalid_grant", "Invalid Token!")
    world.calls[f"{app.id}:user_oauth"] += 1
    access, new = world.user_tokens(app, grant.user_id, grant.user_account_id, grant.scopes)
    return _tokens(access, new, grant.scopes)
