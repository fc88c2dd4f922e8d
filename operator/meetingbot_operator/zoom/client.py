"""The Zoom REST client: ZAKs, users, OBF tokens. The only code that speaks Zoom's HTTP API.

One `ZoomClient` per account, built once and shared: it holds the account token cache and the
rate limiters, so every caller of the process shares one budget. Every call has a timeout,
bounded retries with jittered backoff for 429/5xx/network failures, and ends either in a
result or in a `ZoomError` whose reason says what happened.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, SecretStr
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_random_exponential

from meetingbot_api.v1alpha1.zoomaccount import ZAK_MAX_TTL_SECONDS, ZAK_MIN_TTL_SECONDS, RatePlan
from meetingbot_contract.reasons import Reason
from meetingbot_operator import outbound
from meetingbot_operator.zoom.credentials import AccessToken, ApiCredentials, Zak
from meetingbot_operator.zoom.endpoints import Endpoints
from meetingbot_operator.zoom.errors import ZoomError, describe
from meetingbot_operator.zoom.oauth import TokenProvider
from meetingbot_operator.zoom.ratelimit import AccountLimiter, Category, OutageOpen

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
DEFAULT_ATTEMPTS = 6
BACKOFF = wait_random_exponential(multiplier=0.5, max=10)

# Pages of a list read at most (300 meetings each): past 3000 upcoming meetings, the rest
# are left out rather than read without end.
MAX_PAGES = 10

CREATE_ACTIONS = frozenset({"create", "autoCreate", "custCreate", "ssoCreate"})
USER_STATE_WORDS = ("pending", "inactive", "deactivated", "not active", "disabled")


class ZoomUser(BaseModel):
    id: str
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    display_name: str = ""
    type: int = 1
    # Zoom answers a pending user with only id and created_at: no status means pending.
    status: str = "pending"


@dataclass(frozen=True)
class Upload:
    """A multipart/form-data body of one file (Zoom's picture uploads)."""

    field: str
    filename: str
    data: bytes
    content_type: str


class ZoomClient:
    def __init__(
        self,
        credentials: ApiCredentials,
        endpoints: Endpoints,
        *,
        plan: RatePlan = RatePlan.PRO,
        http: httpx.AsyncClient | None = None,
        max_attempts: int = DEFAULT_ATTEMPTS,
        observer: Callable[[str, float, int], None] | None = None,
        rate_limits: dict[Category, int] | None = None,
    ) -> None:
        self._http = http or outbound.client(timeout=DEFAULT_TIMEOUT)
        self._owns_http = http is None
        self.endpoints = endpoints
        self.tokens = TokenProvider(self._http, endpoints.oauth_url, credentials)
        self.limiter = AccountLimiter(plan, rate_limits)
        self.max_attempts = max_attempts
        # (endpoint, seconds, HTTP status) of every API response: the operator's metrics.
        self._observer = observer

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> ZoomClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- operations -----------------------------------------------------------------------

    async def verify(self) -> frozenset[str]:
        """Request a token now; return its scopes. Raises ZoomError if the credentials fail."""
        return (await self.tokens.get()).scopes

    async def mint_zak(self, user_id: str, ttl_seconds: int = 7200) -> Zak:
        """`GET /users/{id}/token?type=zak&ttl=`: a ZAK for a service user, minted now."""
        if not ZAK_MIN_TTL_SECONDS <= ttl_seconds <= ZAK_MAX_TTL_SECONDS:
            raise ValueError(
                f"ZAK ttl must be {ZAK_MIN_TTL_SECONDS}..{ZAK_MAX_TTL_SECONDS} s, got {ttl_seconds}"
            )
        issued = datetime.now(UTC)
        body = await self._call(
            Category.LIGHT,
            "GET",
            f"/users/{_segment(user_id)}/token",
            endpoint="zak",
            params={"type": "zak", "ttl": str(ttl_seconds)},
        )
        token = body.get("token")
        if not isinstance(token, str) or not token:
            raise ZoomError(Reason.ZOOM_UNAVAILABLE, "ZAK response without a token")
        return Zak(
            token=SecretStr(token),
            user_id=user_id,
            expires_at=issued + timedelta(seconds=ttl_seconds),
        )

    async def mint_obf(
        self, user_access_token: SecretStr, user_id: str = "me", meeting_number: str | None = None
    ) -> SecretStr:
        """`GET /users/{id}/token?type=onbehalf`, called with the authorizing user's own token."""
        params = {"type": "onbehalf"}
        if meeting_number:
            params["meeting_id"] = meeting_number
        body = await self._call(
            Category.LIGHT,
            "GET",
            f"/users/{_segment(user_id)}/token",
            endpoint="obf",
            params=params,
            bearer=user_access_token,
        )
        token = body.get("token")
        if not isinstance(token, str) or not token:
            raise ZoomError(Reason.ZOOM_UNAVAILABLE, "OBF response without a token")
        return SecretStr(token)

    async def get_me(self, user_access_token: SecretStr) -> ZoomUser:
        """`GET /users/me` with a user's own token: who authorized the app."""
        body = await self._call(
            Category.LIGHT, "GET", "/users/me", endpoint="me", bearer=user_access_token
        )
        return ZoomUser.model_validate(body)

    async def meeting_is_own(self, meeting_number: str) -> bool:
        """`GET /meetings/{id}` with the account's token: True for a meeting of the account;
        False when Zoom does not find it (another account's meeting is not found: 3001)."""
        try:
            await self._call(
                Category.LIGHT, "GET", f"/meetings/{_segment(meeting_number)}", endpoint="meeting"
            )
        except ZoomError as error:
            if error.status == 404:
                return False
            raise
        return True

    async def get_meeting(self, meeting_number: str) -> dict[str, Any]:
        """`GET /meetings/{id}` with the account's token: a meeting of the account, with its
        upcoming occurrences when it recurs (`occurrences[]`: occurrence_id, start_time,
        duration, status)."""
        return await self._call(
            Category.LIGHT, "GET", f"/meetings/{_segment(meeting_number)}", endpoint="meeting"
        )

    async def upcoming_meetings(self, user_access_token: SecretStr) -> list[dict[str, Any]]:
        """`GET /users/me/meetings?type=upcoming` with a user's own token (a meeting-read
        scope): the meetings they have coming, live ones included, every page."""
        meetings: list[dict[str, Any]] = []
        token = ""
        for _ in range(MAX_PAGES):
            params = {"type": "upcoming", "page_size": "300"}
            if token:
                params["next_page_token"] = token
            body = await self._call(
                Category.MEDIUM, "GET", "/users/me/meetings", endpoint="my_meetings",
                params=params, bearer=user_access_token,
            )  # fmt: skip
            meetings += body.get("meetings") or []
            token = body.get("next_page_token") or ""
            if not token:
                break
        return meetings

    async def upload_picture(self, user_id: str, data: bytes, content_type: str) -> None:
        """`POST /users/{userId}/picture` (multipart, field pic_file): the user's profile
        picture, which meeting participants see beside the name (a ZAK keeps the profile)."""
        extension = content_type.split("/")[-1]
        await self._call(
            Category.MEDIUM,
            "POST",
            f"/users/{_segment(user_id)}/picture",
            endpoint="user_picture",
            json=Upload("pic_file", f"picture.{extension}", data, content_type),
        )

    async def rtms_app_status(self, meeting_number: str, client_id: str, action: str) -> None:
        """`PATCH /live_meetings/{id}/rtms_app/status` {"action": "start" | "stop"}: Zoom starts
        (or stops) the app's realtime media stream of a live meeting, and posts
        meeting.rtms_started (or _stopped) to the app (docs/rtms.md). 3001 while the meeting is
        not live."""
        if action not in ("start", "stop"):
            raise ValueError("action must be 'start' or 'stop'")
        await self._call(
            Category.LIGHT,
            "PATCH",
            f"/live_meetings/{_segment(meeting_number)}/rtms_app/status",
            endpoint="rtms_app_status",
            json={"action": action, "settings": {"client_id": client_id}},
        )

    @property
    def http(self) -> httpx.AsyncClient:
        """The account's HTTP client (its timeouts), for the user OAuth token requests."""
        return self._http

    async def get_user(self, user_id: str) -> ZoomUser:
        body = await self._call(
            Category.LIGHT, "GET", f"/users/{_segment(user_id)}", endpoint="user"
        )
        return ZoomUser.model_validate(body)

    async def list_users(self, status: str = "active") -> list[ZoomUser]:
        users: list[ZoomUser] = []
        page_token = ""
        while True:
            params = {"status": status, "page_size": "300"}
            if page_token:
                params["next_page_token"] = page_token
            body = await self._call(
                Category.MEDIUM, "GET", "/users", endpoint="users", params=params
            )
            users.extend(ZoomUser.model_validate(u) for u in body.get("users", []))
            page_token = str(body.get("next_page_token") or "")
            if not page_token:
                return users

    async def create_user(
        self,
        action: str,
        email: str,
        *,
        user_type: int = 1,
        first_name: str = "",
        last_name: str = "",
        display_name: str = "",
        password: SecretStr | None = None,
    ) -> ZoomUser:
        if action not in CREATE_ACTIONS:
            raise ValueError(f"action must be one of {sorted(CREATE_ACTIONS)}, got {action!r}")
        info: dict[str, Any] = {"email": email, "type": user_type}
        for key, value in (
            ("first_name", first_name),
            ("last_name", last_name),
            ("display_name", display_name),
        ):
            if value:
                info[key] = value
        if password is not None:
            info["password"] = password.get_secret_value()
        body = await self._call(
            Category.LIGHT,
            "POST",
            "/users",
            endpoint="create_user",
            json={"action": action, "user_info": info},
        )
        return ZoomUser.model_validate(body)

    async def disassociate_user(self, user_id: str, action: str = "disassociate") -> None:
        if action not in ("disassociate", "delete"):
            raise ValueError("action must be 'disassociate' or 'delete'")
        await self._call(
            Category.LIGHT,
            "DELETE",
            f"/users/{_segment(user_id)}",
            endpoint="delete_user",
            params={"action": action},
        )

    # --- transport ------------------------------------------------------------------------

    async def _call(
        self,
        category: Category,
        method: str,
        path: str,
        *,
        endpoint: str,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | Upload | None = None,
        bearer: SecretStr | None = None,
    ) -> dict[str, Any]:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=_wait,
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(category, method, path, endpoint, params, json, bearer)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self,
        category: Category,
        method: str,
        path: str,
        endpoint: str,
        params: dict[str, str] | None,
        json: dict[str, Any] | Upload | None,
        bearer: SecretStr | None,
    ) -> dict[str, Any]:
        limiter = self.limiter[category]
        await limiter.acquire()
        account_token = None if bearer is not None else await self.tokens.get()
        started = time.monotonic()
        token = bearer or _value(account_token)
        try:
            response = await self.limiter.outage.call(
                lambda: self._send(method, path, params, json, token), _server_failed
            )
        except OutageOpen as refused:
            raise ZoomError(
                Reason.ZOOM_UNAVAILABLE, f"{method} {endpoint}: {refused}", retry_after=refused.wait
            ) from None
        if account_token is not None and _zoom_code(response) == 124:
            # The cached token was revoked or expired early: refresh once and try again.
            self.tokens.invalidate(account_token)
            account_token = await self.tokens.get()
            response = await self._send(method, path, params, json, account_token.value)
        elapsed = time.monotonic() - started
        log.debug(
            "zoom call",
            extra={
                "endpoint": endpoint,
                "status": response.status_code,
                "seconds": round(elapsed, 4),
            },
        )
        if self._observer is not None:
            self._observer(endpoint, elapsed, response.status_code)
        error = _classify(response, f"{method} {endpoint}")
        if error is None:
            return _body(response)
        if error.reason is Reason.ZOOM_RATE_LIMITED:
            # Everyone in this category waits, not just this caller.
            limiter.pause(error.retry_after if error.retry_after is not None else 1.0)
        raise error

    async def _send(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        json: dict[str, Any] | Upload | None,
        token: SecretStr,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"}
        url = self.endpoints.api_url + path
        try:
            if isinstance(json, Upload):
                files = {json.field: (json.filename, json.data, json.content_type)}
                return await self._http.request(
                    method, url, params=params, files=files, headers=headers
                )
            return await self._http.request(method, url, params=params, json=json, headers=headers)
        except httpx.HTTPError as error:
            # The exception's text is dropped on purpose: only its kind is safe and useful.
            raise ZoomError(
                Reason.ZOOM_UNAVAILABLE, f"{method} {path.split('/')[1]}: {type(error).__name__}"
            ) from None


def _segment(value: str) -> str:
    return quote(value, safe="@")


def _value(token: AccessToken | None) -> SecretStr:
    assert token is not None
    return token.value


def _body(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _zoom_code(response: httpx.Response) -> int | None:
    if response.status_code < 400:
        return None
    code = _body(response).get("code")
    return code if isinstance(code, int) else None


def _classify(response: httpx.Response, what: str) -> ZoomError | None:
    """Map a response to None (success) or the ZoomError that names what went wrong."""
    status = response.status_code
    if status < 400:
        return None
    body = _body(response)
    code = _zoom_code(response)
    # Zoom's own text is read to classify, never repeated (see errors.CODE_MEANINGS).
    message = str(body.get("message") or "")[:300]
    if status == 429:
        retry_after = _retry_after(response.headers)
        if response.headers.get("X-RateLimit-Type", "").lower().startswith("daily"):
            return ZoomError(
                Reason.ZOOM_DAILY_LIMIT,
                f"{what}: daily limit reached",
                status=status,
                code=code,
                retry_after=retry_after,
            )
        return ZoomError(
            Reason.ZOOM_RATE_LIMITED,
            f"{what}: rate limited ({response.headers.get('X-RateLimit-Category', 'unknown')})",
            status=status,
            code=code,
            retry_after=retry_after,
        )
    if status >= 500:
        return ZoomError(
            Reason.ZOOM_UNAVAILABLE,
            f"{what}: {describe(status, code, 'server error')}",
            status=status,
            code=code,
        )
    fallback = ""
    if code == 4711 or "does not contain scopes" in message:
        reason, fallback = Reason.ZOOM_SCOPE_MISSING, "the token lacks a required scope"
    elif code == 124 or status == 401:
        reason, fallback = Reason.ZOOM_CREDENTIALS_INVALID, "the credentials were refused"
    elif code == 1001 or (status == 404 and "user" in message.lower()):
        reason, fallback = Reason.ZOOM_USER_NOT_FOUND, "the user does not exist"
    elif code == 1005:
        reason = Reason.ZOOM_USER_EXISTS
    elif "user" in message.lower() and any(w in message.lower() for w in USER_STATE_WORDS):
        reason, fallback = Reason.ZOOM_USER_INACTIVE, "the user is not active"
    else:
        reason = Reason.ZOOM_REQUEST_INVALID
    return ZoomError(
        reason, f"{what}: {describe(status, code, fallback)}", status=status, code=code
    )


def _retry_after(headers: httpx.Headers) -> float | None:
    """Retry-After as seconds: Zoom has sent plain seconds, HTTP dates and ISO dates."""
    raw = headers.get("Retry-After")
    if not raw:
        return None
    raw = raw.strip()
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    when: datetime | None
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        try:
            when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _server_failed(response: httpx.Response) -> str | None:
    """Zoom itself failing (not a refusal of this request): the account's callers back off."""
    return f"HTTP {response.status_code}" if response.status_code >= 500 else None


def _retryable(error: BaseException) -> bool:
    return isinstance(error, ZoomError) and error.reason in (
        Reason.ZOOM_RATE_LIMITED,
        Reason.ZOOM_UNAVAILABLE,
    )


def _wait(state: RetryCallState) -> float:
    """Retry-After when Zoom gave one (plus jitter so callers spread out), else backoff."""
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, ZoomError) and error.retry_after is not None:
        return error.retry_after + random.uniform(0, 0.5)  # noqa: S311 - jitter, not crypto
    return float(BACKOFF(state))
