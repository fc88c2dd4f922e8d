"""Zoom's REST side: Server-to-Server OAuth and the /v2 endpoints the operator uses."""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import hashlib
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from devenv.zoomsim import meeting_events, user_oauth
from devenv.zoomsim.state import (
    DAILY_CREATE_CAP,
    TOKEN_MAX_TTL,
    ZAK_CUSTCREATE_DEFAULT_TTL,
    ZAK_DEFAULT_TTL,
    AccessGrant,
    Account,
    Meeting,
    RateWindow,
    User,
    World,
)

WORLD: web.AppKey[World] = web.AppKey("world", World)
RATE_WINDOW: web.RequestKey[RateWindow] = web.RequestKey("rate_window", RateWindow)

ZAK_SCOPES = ("user:read:admin", "user:read:token:admin")
USER_READ_SCOPES = ("user:read:admin", "user:read:user:admin", "user:read:list_users:admin")
USER_WRITE_SCOPES = ("user:write:admin", "user:write:user:admin", "user:delete:user:admin")
OBF_SCOPES = ("user:read:token",)
MY_ZAK_SCOPES = ("user:read:zak", "user_zak:read")  # granular, and the classic name
ME_SCOPES = ("user:read:user", "user:read")
MEETING_READ_SCOPES = ("meeting:read:admin", "meeting:read:meeting:admin")
PICTURE_SCOPES = ("user:write:admin", "user:write:profile_picture:admin")
MEETING_WRITE_SCOPES = ("meeting:write:admin", "meeting:update:meeting:admin",
                        "meeting:delete:meeting:admin")  # fmt: skip
MY_MEETINGS_SCOPES = ("meeting:read", "meeting:read:list_meetings")  # user-level


def zoom_error(status: int, code: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status, headers=headers)


def validation_failed(errors: dict[str, str]) -> web.Response:
    """Zoom's 400 for a request body that fails validation: code 300 and one entry per field."""
    body = {
        "code": 300,
        "message": "Validation Failed.",
        "errors": [{"field": field, "message": message} for field, message in errors.items()],
    }
    return web.json_response(body, status=400)


async def apply_faults(world: World, account_id: str, endpoint: str) -> web.Response | None:
    """Latency, outage and random errors, counted like any other call."""
    faults = world.faults
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000)
    if faults.outage:
        world.calls[f"{account_id}:{endpoint}:failed"] += 1
        return web.json_response({"message": "Service unavailable"}, status=503)
    if faults.error_rate and world.random.random() < faults.error_rate:
        world.calls[f"{account_id}:{endpoint}:failed"] += 1
        return web.json_response({"message": "Internal error"}, status=faults.error_status)
    return None


# --- OAuth -------------------------------------------------------------------------------


async def oauth_token(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    form = dict(await request.post())
    params = {**request.query, **form}
    fault = await apply_faults(world, str(params.get("account_id", "-")), "oauth")
    if fault is not None:
        return fault
    if params.get("grant_type") == "authorization_code":
        return user_oauth.exchange_code(world, _basic_auth(request), params)
    if params.get("grant_type") == "refresh_token":
        await asyncio.sleep(world.faults.refresh_delay_before_ms / 1000)
        answer = user_oauth.refresh(world, _basic_auth(request), params)
        await asyncio.sleep(world.faults.refresh_delay_after_ms / 1000)
        return answer
    if params.get("grant_type") != "account_credentials":
        return _oauth_error(4705, "unsupported_grant_type", "Unsupported grant type")
    account_id = str(params.get("account_id", ""))
    if not account_id:
        return _oauth_error(4706, "invalid_request", "Missing account_id")
    credentials = _basic_auth(request)
    account = world.accounts.get(account_id)
    if credentials is None:
        return _oauth_error(4706, "invalid_request", "Missing client credentials", status=401)
    if account is None:
        return _oauth_error(4700, "invalid_request", "Invalid account_id", status=400)
    if credentials != (account.client_id, account.client_secret):
        return _oauth_error(4702, "invalid_client", "Invalid client_id or client_secret", 401)
    if account.app_disabled:
        return _oauth_error(4717, "invalid_client", "The app has been disabled", 401)
    world.calls[f"{account.id}:oauth"] += 1
    token = world.grant(account, account.scopes)
    return web.json_response(
        {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": 3599,
            "scope": " ".join(account.scopes),
            "api_url": f"{request.scheme}://{request.host}",
        }
    )


def _oauth_error(code: int, error: str, reason: str, status: int = 400) -> web.Response:
    return web.json_response({"code": code, "error": error, "reason": reason}, status=status)


def _basic_auth(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


# --- the API gate: token, scopes, rate limits, faults -----------------------------------


class Gate:
    """Checks every /v2 call as Zoom does, in Zoom's order, and counts it."""

    def __init__(self, request: web.Request, endpoint: str, category: str) -> None:
        self.request = request
        self.world = request.app[WORLD]
        self.endpoint = endpoint
        self.category = category

    async def open(
        self, scopes: tuple[str, ...], *, user_token: bool = False
    ) -> AccessGrant | web.Response:
        world = self.world
        header = self.request.headers.get("Authorization", "")
        grant = world.grants.get(header[7:]) if header.startswith("Bearer ") else None
        if grant is None or grant.expires_at < time.monotonic():
            return zoom_error(401, 124, "Invalid access token.")
        if (grant.user_id is not None) != user_token:
            return zoom_error(401, 124, "Invalid access token.")
        fault = await apply_faults(world, grant.account_id, self.endpoint)
        if fault is not None:
            return fault
        account = world.accounts[grant.account_id]
        window = world.count_request(account, self.category)
        if window is not None:
            self.request[RATE_WINDOW] = window  # the middleware's X-RateLimit-* headers
            if window.over:
                world.calls[f"{account.id}:429"] += 1
                return self._too_many(window)
        world.calls[f"{account.id}:{self.endpoint}"] += 1
        if not any(scope in grant.scopes for scope in scopes):
            return zoom_error(
                400, 4711, f"Invalid access token, does not contain scopes:[{', '.join(scopes)}]."
            )
        return grant

    def _too_many(self, window: RateWindow) -> web.Response:
        # Its X-RateLimit-* and Retry-After headers come from the middleware (zoom_headers).
        return zoom_error(
            429, 429, "You have reached the maximum per-second rate limit for this API."
        )


def retry_after(world: World, seconds: float) -> dict[str, str]:
    """Retry-After as Zoom sends it: HTTP allows integer seconds or an HTTP date (never a
    fraction); Zoom's own example shows an ISO date. The fault settings pick one, or none."""
    fmt = world.faults.retry_after_format
    when = datetime.now(UTC) + timedelta(seconds=seconds)
    if fmt == "seconds":
        return {"Retry-After": str(max(math.ceil(seconds), 1))}
    if fmt == "http-date":
        return {"Retry-After": email.utils.format_datetime(when, usegmt=True)}
    if fmt == "iso":
        return {"Retry-After": when.isoformat(timespec="seconds").replace("+00:00", "Z")}
    return {}


@web.middleware
async def zoom_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Headers Zoom puts on its API responses: the tracking id on every one (what Zoom's
    support asks for), and X-RateLimit-* where a rate-limit window was counted: on every
    response, not only on 429s, unless the fault settings hide them (Zoom sends them only
    sometimes, docs/zoom.md, Rate limits)."""
    response = await handler(request)
    if not request.path.startswith(("/v2/", "/oauth/")):
        return response
    world = request.app[WORLD]
    response.headers["x-zm-trackingid"] = f"v=2.0;clid=us06;rid={secrets.token_hex(16)}"
    window = request.get(RATE_WINDOW)
    show = world.faults.rate_limit_headers == "always" or (
        world.faults.rate_limit_headers == "sometimes" and world.random.random() < 0.5
    )
    if window is not None and show and "X-RateLimit-Type" not in response.headers:
        response.headers.update(
            {
                "X-RateLimit-Category": window.category,
                "X-RateLimit-Type": "QPS",
                "X-RateLimit-Limit": str(window.limit),
                "X-RateLimit-Remaining": str(window.remaining),
            }
        )
        if window.over:
            response.headers.update(retry_after(world, window.reset_in))
    return response


# --- /v2 ---------------------------------------------------------------------------------


def path_user(account: Account, request: web.Request) -> User | web.Response:
    """The account's user the path names (`{userId}`: an id, an email or `me`), or Zoom's 404."""
    user = account.find_user(request.match_info["user_id"])
    if user is None:
        return zoom_error(404, 1001, f"User does not exist: {request.match_info['user_id']}.")
    return user


async def user_token(request: web.Request) -> web.Response:
    kind = request.query.get("type", "")
    if kind == "onbehalf":
        return await _obf_token(request)
    gate = Gate(request, "zak", "Light")
    grant = await gate.open(ZAK_SCOPES)
    if isinstance(grant, web.Response):
        return grant
    if kind != "zak":
        return zoom_error(400, 300, f"Invalid token type: {kind or 'missing'}.")
    world = gate.world
    account = world.accounts[grant.account_id]
    user = path_user(account, request)
    if isinstance(user, web.Response):
        return user
    if user.status != "active":
        # Not documented by Zoom (docs/zoom.md, ZAK); the message names the user's state.
        return zoom_error(400, 1120, f"User is {user.status} and cannot get a token.")
    default = ZAK_CUSTCREATE_DEFAULT_TTL if user.created_by == "custCreate" else ZAK_DEFAULT_TTL
    try:
        ttl = int(request.query.get("ttl", default))
    except ValueError:
        return zoom_error(400, 300, "Invalid field: ttl.")
    if not 1 <= ttl <= TOKEN_MAX_TTL:
        return zoom_error(400, 300, "Invalid field: ttl.")
    return web.json_response({"token": world.issue("zak", user, ttl, None)})


async def _obf_token(request: web.Request) -> web.Response:
    gate = Gate(request, "obf", "Light")
    grant = await gate.open(OBF_SCOPES, user_token=True)
    if isinstance(grant, web.Response):
        return grant
    account = gate.world.accounts[grant.account_id]
    key = request.match_info["user_id"]
    user = account.users.get(grant.user_id or "")
    if user is None or key not in ("me", user.id, user.email):
        return zoom_error(400, 300, "An OBF token can only be requested for the token's user.")
    meeting = request.query.get("meeting_id") or None
    return web.json_response({"token": gate.world.issue("obf", user, 7200, meeting)})


async def get_user(request: web.Request) -> web.Response:
    gate = Gate(request, "user", "Light")
    grant = await gate.open(USER_READ_SCOPES)
    if isinstance(grant, web.Response):
        return grant
    user = path_user(gate.world.accounts[grant.account_id], request)
    if isinstance(user, web.Response):
        return user
    if user.status == "pending":
        # As Zoom documents: only id and created_at (the time of the call) for a pending user.
        now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return web.json_response({"id": user.id, "created_at": now})
    return web.json_response(user.public())


async def upload_picture(request: web.Request) -> web.Response:
    """`POST /v2/users/{userId}/picture`: multipart/form-data with the image as pic_file; a
    JPEG, PNG or GIF of at most 2 MB (Zoom's rules), else 400 (code 120)."""
    gate = Gate(request, "user_picture", "Medium")
    grant = await gate.open(PICTURE_SCOPES)
    if isinstance(grant, web.Response):
        return grant
    user = path_user(gate.world.accounts[grant.account_id], request)
    if isinstance(user, web.Response):
        return user
    if not request.content_type.startswith("multipart/form-data"):
        return zoom_error(400, 300, "Request Body should be a valid multipart/form-data.")
    form = await request.post()
    upload = form.get("pic_file")
    if not isinstance(upload, web.FileField):
        return zoom_error(400, 300, "pic_file is required.")
    data = upload.file.read()
    if len(data) > 2 * 1024 * 1024:
        return zoom_error(400, 120, "File size cannot exceed 2M.")
    if upload.content_type not in ("image/jpeg", "image/png", "image/gif") or not data.startswith(
        (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8")
    ):
        return zoom_error(400, 120, "Invalid file type: only jpg/jpeg, gif or png.")
    user.picture_sha256 = "sha256:" + hashlib.sha256(data).hexdigest()
    user.pic_url = f"https://zoom.us/p/{user.id}/{user.picture_sha256[7:19]}"
    return web.Response(status=201)


async def list_users(request: web.Request) -> web.Response:
    gate = Gate(request, "users", "Medium")
    grant = await gate.open(USER_READ_SCOPES)
    if isinstance(grant, web.Response):
        return grant
    status = request.query.get("status", "active")
    size = min(int(request.query.get("page_size", "30")), 300)
    start = int(request.query.get("next_page_token") or 0)
    users = [u for u in gate.world.accounts[grant.account_id].users.values() if u.status == status]
    page = users[start : start + size]
    next_token = str(start + size) if start + size < len(users) else ""
    return web.json_response(
        {
            "page_size": size,
            "total_records": len(users),
            "next_page_token": next_token,
            "users": [u.public() for u in page],
        }
    )


async def create_user(request: web.Request) -> web.Response:
    gate = Gate(request, "create_user", "Light")
    grant = await gate.open(USER_WRITE_SCOPES)
    if isinstance(grant, web.Response):
        return grant
    world = gate.world
    account = world.accounts[grant.account_id]
    try:
        body: dict[str, Any] | Any = await request.json()
    except ValueError:
        return zoom_error(400, 300, "Request Body should be a valid JSON object.")
    body = body if isinstance(body, dict) else {}
    info: dict[str, Any] = body["user_info"] if isinstance(body.get("user_info"), dict) else {}
    # Required by the documented schema: action, user_info.email and user_info.type.
    missing = {
        name: "must not be null"
        for name, value in (
            ("action", body.get("action")),
            ("user_info.email", info.get("email")),
            ("user_info.type", info.get("type")),
        )
        if value in (None, "")
    }
    if missing:
        return validation_failed(missing)
    action, email = body["action"], str(info["email"])
    try:
        user_type = int(info["type"])
    except (TypeError, ValueError):
        return validation_failed({"user_info.type": "must be an integer"})
    if action not in ("create", "autoCreate", "custCreate", "ssoCreate"):
        return zoom_error(400, 300, f"Invalid action: {action}.")
    if user_type not in (1, 2, 4, 99) or (user_type == 99 and action != "ssoCreate"):
        return zoom_error(400, 300, f"Invalid user type: {user_type}.")
    if account.plan not in ("pro", "business", "unlimited"):
        return zoom_error(400, 200, "Only paid accounts can create users.")
    if action == "autoCreate" and email.split("@")[-1] not in account.managed_domains:
        return zoom_error(400, 200, "autoCreate needs a managed domain for this email.")
    if action == "custCreate" and not account.isv_partner:
        return zoom_error(400, 200, "custCreate is only available to ISV partners.")
    if action == "ssoCreate" and not account.sso_enabled:
        return zoom_error(400, 200, "ssoCreate needs SSO to be enabled.")
    if account.find_user(email) is not None:
        return zoom_error(409, 1005, f"User already in the account: {email}.")
    if account.plan != "unlimited" and action == "create":
        day = int(time.time() // 86400)
        world.daily_creates[(account.id, day)] += 1
        if world.daily_creates[(account.id, day)] > DAILY_CREATE_CAP[account.plan]:
            midnight = (day + 1) * 86400 - time.time()  # the daily limit resets at 00:00 UTC
            return zoom_error(
                429,
                429,
                "You have reached the maximum daily rate limit for this API.",
                **{"X-RateLimit-Type": "Daily-limit", "X-RateLimit-Category": "Light"},
                **retry_after(world, midnight),
            )
    user = world.add_user(
        account,
        email,
        type=user_type,
        # `create` sends a confirmation email: the user stays pending until they accept.
        status="pending" if action == "create" else "active",
        first_name=str(info.get("first_name", "")),
        last_name=str(info.get("last_name", "")),
        display_name=str(info.get("display_name", "")),
        created_by=action,
    )
    public = user.public()
    return web.json_response(
        {k: public[k] for k in ("id", "email", "first_name", "last_name", "type")}, status=201
    )


async def delete_user(request: web.Request) -> web.Response:
    gate = Gate(request, "delete_user", "Light")
    grant = await gate.open(USER_WRITE_SCOPES)
    if isinstance(grant, web.Response):
        return grant
    account = gate.world.accounts[grant.account_id]
    user = path_user(account, request)
    if isinstance(user, web.Response):
        return user
    if request.query.get("action", "disassociate") not in ("disassociate", "delete"):
        return zoom_error(400, 300, "Invalid action.")
    gate.world.delete_user(account, user)
    return web.Response(status=204)


async def me(request: web.Request) -> web.Response:
    """`GET /v2/users/me` with a user-level token: who authorized the app."""
    gate = Gate(request, "me", "Light")
    grant = await gate.open(ME_SCOPES, user_token=True)
    if isinstance(grant, web.Response):
        return grant
    user = gate.world.accounts[grant.account_id].users.get(grant.user_id or "")
    if user is None:
        return zoom_error(404, 1001, "User does not exist: me.")
    return web.json_response(user.public())


async def get_meeting(request: web.Request) -> web.Response:
    """`GET /v2/meetings/{meetingId}` with the account's token: only the account's own
    meetings are found; another account's meeting is "not found" (3001), as in Zoom. A
    recurring meeting lists its occurrences that have not ended (all of them with
    show_previous_occurrences=true)."""
    found = await _account_meeting(request, "meeting", MEETING_READ_SCOPES)
    if isinstance(found, web.Response):
        return found
    gate, meeting, _ = found
    previous = request.query.get("show_previous_occurrences") == "true"
    return web.json_response(meeting_body(gate.world, meeting, previous=previous))


def meeting_body(world: World, meeting: Meeting, *, previous: bool = False) -> dict[str, Any]:
    """A meeting as Zoom's REST API shows it (the fields the operator reads)."""
    host = meeting.host_id or next(iter(world.accounts[meeting.account_id].users), "")
    body: dict[str, Any] = {
        "id": int(meeting.number),
        "host_id": host,
        "topic": meeting.topic,
        "type": 8 if meeting.occurrences else 2,
        "status": "started" if not meeting.ended else "finished",
        "duration": meeting.duration,
        "timezone": "UTC",
        "join_url": f"https://zoom.us/j/{meeting.number}",
        "settings": {"waiting_room": meeting.waiting_room},
    }
    if meeting.start_time:
        body["start_time"] = meeting.start_time
    if meeting.occurrences:
        now = time.time()
        body["occurrences"] = [
            dict(o)
            for o in meeting.occurrences
            if previous or _ends(o["start_time"], o["duration"]) > now
        ]
        upcoming = [o for o in body["occurrences"] if o["status"] == "available"]
        if upcoming:
            body["start_time"] = upcoming[0]["start_time"]
    return body


def _ends(start: str, minutes: int) -> float:
    return datetime.fromisoformat(start).timestamp() + minutes * 60


async def update_meeting(request: web.Request) -> web.Response:
    """`PATCH /v2/meetings/{meetingId}` (meeting:write): the topic, start or duration of a
    scheduled meeting; with `occurrence_id`, one occurrence's start_time. 204, no body."""
    found = await _account_meeting(request, "meeting_update", MEETING_WRITE_SCOPES)
    if isinstance(found, web.Response):
        return found
    gate, meeting, occurrence = found
    try:
        body = await request.json()
        start = body.get("start_time")
        if start is not None:
            datetime.fromisoformat(str(start))
    except ValueError:
        return zoom_error(400, 300, "Request Body should be a valid JSON object.")
    if occurrence is not None:
        if start is None:
            return zoom_error(400, 300, "start_time is required to update an occurrence.")
        meeting_events.move_occurrence(gate.world, meeting, occurrence, str(start))
    else:
        fields = {k: body[k] for k in ("topic", "start_time", "duration") if k in body}
        meeting_events.reschedule(gate.world, meeting, fields)
    return web.Response(status=204)


async def delete_meeting(request: web.Request) -> web.Response:
    """`DELETE /v2/meetings/{meetingId}` (meeting:write): the meeting, or with
    `occurrence_id` one occurrence (then listed as deleted). 204."""
    found = await _account_meeting(request, "meeting_delete", MEETING_WRITE_SCOPES)
    if isinstance(found, web.Response):
        return found
    gate, meeting, occurrence = found
    if occurrence is not None:
        meeting_events.delete_occurrence(gate.world, meeting, occurrence)
    else:
        meeting_events.delete_meeting(gate.world, meeting)
    return web.Response(status=204)


async def _account_meeting(
    request: web.Request, endpoint: str, scopes: tuple[str, ...]
) -> tuple[Gate, Meeting, dict[str, Any] | None] | web.Response:
    """The meeting of the path if it is the token's account's (Light), and the occurrence
    `occurrence_id` names; else Zoom's answer (the gate's, or 404)."""
    gate = Gate(request, endpoint, "Light")
    grant = await gate.open(scopes)
    if isinstance(grant, web.Response):
        return grant
    number = request.match_info["meeting_id"]
    meeting = gate.world.meetings.get(number)
    if meeting is None or meeting.account_id != grant.account_id:
        return zoom_error(404, 3001, f"Meeting does not exist: {number}.")
    wanted = request.query.get("occurrence_id")
    if wanted is None:
        return gate, meeting, None
    occurrence = next((o for o in meeting.occurrences if o["occurrence_id"] == wanted), None)
    if occurrence is None:
        return zoom_error(404, 3000, f"Invalid occurrence_id: {wanted}.")
    return gate, meeting, occurrence


async def my_meetings(request: web.Request) -> web.Response:
    """`GET /v2/users/me/meetings?type=upcoming` with a user-level token (meeting:read): the
    scheduled meetings the user hosts that have not ended, a recurring one once with its next
    occurrence's start (Zoom lists recurring meetings once), pages by next_page_token."""
    gate = Gate(request, "my_meetings", "Medium")
    grant = await gate.open(MY_MEETINGS_SCOPES, user_token=True)
    if isinstance(grant, web.Response):
        return grant
    if request.query.get("type", "scheduled") not in ("upcoming", "scheduled", "live"):
        return zoom_error(400, 300, "Invalid type.")
    now = time.time()
    listed = []
    for meeting in gate.world.meetings.values():
        if meeting.account_id != grant.account_id or not meeting.start_time:
            continue
        body = meeting_body(gate.world, meeting)
        if body["host_id"] != grant.user_id or meeting.ended:
            continue
        if _ends(body["start_time"], meeting.duration) <= now:
            continue
        listed.append({k: body[k] for k in ("id", "host_id", "topic", "type", "start_time",
                                            "duration", "timezone", "join_url")})  # fmt: skip
    size = max(1, min(int(request.query.get("page_size", "30")), 300))
    offset = int(request.query.get("next_page_token") or 0)
    page = listed[offset : offset + size]
    token = str(offset + size) if offset + size < len(listed) else ""
    return web.json_response(
        {"page_size": size, "total_records": len(listed), "next_page_token": token,
         "meetings": page}
    )  # fmt: skip


async def authorize_page(request: web.Request) -> web.Response:
    return await user_oauth.authorize_page(request, request.app[WORLD])


async def authorize_submit(request: web.Request) -> web.Response:
    return await user_oauth.authorize_submit(request, request.app[WORLD])


async def my_zak(request: web.Request) -> web.Response:
    """`GET /v2/users/me/zak`: a ZAK with a user-level token (scope user:read:zak)."""
    gate = Gate(request, "my_zak", "Light")
    grant = await gate.open(MY_ZAK_SCOPES, user_token=True)
    if isinstance(grant, web.Response):
        return grant
    account = gate.world.accounts[grant.account_id]
    user = account.users.get(grant.user_id or "")
    if user is None:
        return zoom_error(404, 1001, "User does not exist: me.")
    return web.json_response({"token": gate.world.issue("zak", user, ZAK_DEFAULT_TTL, None)})


def routes() -> list[web.RouteDef]:
    return [
        web.post("/oauth/token", oauth_token),
        web.get("/oauth/authorize", authorize_page),
        web.post("/oauth/authorize", authorize_submit),
        web.get("/v2/users/me/zak", my_zak),
        web.get("/v2/users/me/meetings", my_meetings),
        web.get("/v2/users/me", me),
        web.get("/v2/meetings/{meeting_id}", get_meeting),
        web.patch("/v2/meetings/{meeting_id}", update_meeting),
        web.delete("/v2/meetings/{meeting_id}", delete_meeting),
        web.get("/v2/users/{user_id}/token", user_token),
        web.get("/v2/users", list_users),
        web.post("/v2/users", create_user),
        web.get("/v2/users/{user_id}", get_user),
        web.post("/v2/users/{user_id}/picture", upload_picture),
        web.delete("/v2/users/{user_id}", delete_user),
    ]
