"""The simulator's admin API, for tests and the demo: accounts, users, meetings, faults."""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from devenv.zoomsim import meeting_events
from devenv.zoomsim.rest import WORLD
from devenv.zoomsim.rtms import post_signed
from devenv.zoomsim.sdk import admit, broadcast, depart, end_meeting, roster_event
from devenv.zoomsim.state import Account, Faults, Meeting, Participant, User, World

ACCOUNT_FIELDS = {f.name for f in dataclasses.fields(Account)} - {"users"}
MEETING_FIELDS = {
    "passcode",
    "auth_required",
    "waiting_room",
    "host_present",
    "join_before_host",
    "locked",
    "capacity",
    "audio_path",
    "captions",
    "recording_permission",
    "topic",
    "host_id",
    "start_time",
    "duration",
}
# Distinct, deterministic tones: the n-th person added to a meeting speaks at TONES[n % 6].
# None is a harmonic of another, so a test tells them apart by frequency alone.
TONES = (440, 620, 820, 1060, 1330, 1570)


def _account(world: World, request: web.Request) -> Account:
    account = world.accounts.get(request.match_info["account_id"])
    if account is None:
        raise web.HTTPNotFound(text="no such account")
    return account


def _user(world: World, user_id: str) -> User:
    for account in world.accounts.values():
        if user_id in account.users:
            return account.users[user_id]
    raise web.HTTPNotFound(text="no such user")


def _meeting(world: World, request: web.Request) -> Meeting:
    meeting = world.meetings.get(request.match_info["number"])
    if meeting is None:
        raise web.HTTPNotFound(text="no such meeting")
    return meeting


def _participant(meeting: Meeting, request: web.Request) -> Participant:
    participant = meeting.participants.get(request.match_info["pid"])
    if participant is None:
        raise web.HTTPNotFound(text="no such participant")
    return participant


def _account_view(account: Account) -> dict[str, Any]:
    view = {name: getattr(account, name) for name in ACCOUNT_FIELDS}
    view["users"] = [u.public() for u in account.users.values()]
    return view


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    body = await request.json()
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="a JSON object is expected")
    return body


async def create_account(request: web.Request) -> web.Response:
    body = await _body(request)
    unknown = set(body) - ACCOUNT_FIELDS
    if unknown:
        raise web.HTTPBadRequest(text=f"unknown fields: {sorted(unknown)}")
    account = request.app[WORLD].add_account(**body)
    return web.json_response(_account_view(account), status=201)


async def update_account(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    account = _account(world, request)
    for key, value in (await _body(request)).items():
        if key not in ACCOUNT_FIELDS - {"id"}:
            raise web.HTTPBadRequest(text=f"unknown field {key}")
        setattr(account, key, tuple(value) if isinstance(value, list) else value)
    return web.json_response(_account_view(account))


async def revoke_grants(request: web.Request) -> web.Response:
    """Invalidate every access token of the account (the API then answers 401, code 124)."""
    world = request.app[WORLD]
    account = _account(world, request)
    revoked = [t for t, g in world.grants.items() if g.account_id == account.id]
    for token in revoked:
        del world.grants[token]
    return web.json_response({"revoked": len(revoked)})


async def add_user(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    account = _account(world, request)
    body = await _body(request)
    email = body.pop("email", None) or f"{secrets.token_hex(4)}@bots.example.com"
    user = world.add_user(account, email, **body)
    return web.json_response(user.public(), status=201)


async def set_user_status(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    user = _user(world, request.match_info["user_id"])
    user.status = request.match_info["status"]
    return web.json_response(user.public())


async def delete_user(request: web.Request) -> web.Response:
    """An admin deletes the user in Zoom's web portal (what `DELETE /v2/users` does)."""
    world = request.app[WORLD]
    user = _user(world, request.match_info["user_id"])
    world.delete_user(world.accounts[user.account_id], user)
    return web.Response(status=204)


async def deauthorize(request: web.Request) -> web.Response:
    """The user removes the app from their Zoom account: its refresh tokens stop working, and
    each app with a deauthorization URL is told (app_deauthorized, signed as Zoom signs its
    webhooks: x-zm-signature = v0=HMAC-SHA256(secret token, "v0:{timestamp}:{body}"))."""
    world = request.app[WORLD]
    user = _user(world, request.match_info["user_id"])
    apps = world.authorized_apps(user.id)
    revoked = world.deauthorize(user.id)
    notified = []
    for app in apps:
        if not app.deauthorization_url:
            continue
        body = json.dumps(
            {
                "event": "app_deauthorized",
                "event_ts": int(time.time() * 1000),
                "payload": {
                    "account_id": user.account_id,
                    "user_id": user.id,
                    "client_id": app.user_client_id,
                    "deauthorization_time": datetime.now(UTC).isoformat(),
                },
            }
        )
        sent = await post_signed(app.deauthorization_url, app.webhook_secret_token, body, 10)
        notified.append(sent.get("status"))
    return web.json_response({"revoked": revoked, "notified": notified})


async def sign_out(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    user = _user(world, request.match_info["user_id"])
    return web.json_response({"revoked": world.sign_out_everywhere(user.id)})


async def authorize_user(request: web.Request) -> web.Response:
    """The user authorized our app with user OAuth: a user token is returned, with the scopes
    of `?scopes=` (comma-separated; default user:read:token, for OBF)."""
    world = request.app[WORLD]
    user = _user(world, request.match_info["user_id"])
    scopes = tuple(request.query.get("scopes", "user:read:token").split(","))
    token = world.grant(world.accounts[user.account_id], scopes, user_id=user.id)
    return web.json_response({"access_token": token})


async def list_account_users(request: web.Request) -> web.Response:
    """Every user of the account, whatever its status (what a pipeline checks)."""
    account = request.app[WORLD].accounts.get(request.match_info["account_id"])
    if account is None:
        raise web.HTTPNotFound(text="no such account")
    # Zoom's fields, and what only tests read (the uploaded picture's digest).
    return web.json_response(
        [
            {**user.public(), "picture_sha256": user.picture_sha256}
            for user in account.users.values()
        ]
    )


async def create_meeting(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    body = await _body(request)
    account_id = body.pop("account_id", None)
    if account_id not in world.accounts:
        raise web.HTTPBadRequest(text="account_id must name an existing account")
    number = str(body.pop("number", None) or secrets.randbelow(9 * 10**10) + 10**10)
    ends_in = body.pop("ends_in_seconds", None)
    # A recurring meeting with a fixed time: the start of each occurrence (RFC 3339).
    recurring = [str(t) for t in body.pop("occurrences_at", None) or []]
    unknown = set(body) - MEETING_FIELDS
    if unknown:
        raise web.HTTPBadRequest(text=f"unknown fields: {sorted(unknown)}")
    meeting = Meeting(number=number, account_id=account_id, **body)
    meeting.occurrences = [
        {"occurrence_id": str(int(_instant(t) * 1000)), "start_time": t,
         "duration": meeting.duration, "status": "available"}
        for t in recurring
    ]  # fmt: skip
    if recurring and not meeting.start_time:
        meeting.start_time = recurring[0]
    if ends_in is not None:
        meeting.ends_at = time.time() + float(ends_in)
    world.meetings[number] = meeting
    if meeting.start_time:
        meeting_events.notify(world, meeting, "meeting.created", _object(world, meeting))
    return web.json_response(meeting.public(), status=201)


def _object(world: World, meeting: Meeting) -> dict[str, Any]:
    return meeting_events.meeting_object(meeting, meeting_events.host_of(world, meeting))


async def delete_meeting(request: web.Request) -> web.Response:
    """The host deletes a scheduled meeting (as Zoom's `DELETE /meetings/{id}`)."""
    world = request.app[WORLD]
    meeting_events.delete_meeting(world, _meeting(world, request))
    return web.Response(status=204)


async def meeting_deliveries(request: web.Request) -> web.Response:
    return web.json_response(request.app[WORLD].meeting_deliveries)


async def update_meeting(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    meeting = _meeting(world, request)
    body = await _body(request)
    scheduled: dict[str, Any] = {
        k: body.pop(k) for k in ("topic", "start_time", "duration") if k in body
    }
    for key, value in body.items():
        if key == "ends_in_seconds":
            meeting.ends_at = time.time() + float(value)
        elif key in MEETING_FIELDS:
            setattr(meeting, key, value)
        else:
            raise web.HTTPBadRequest(text=f"unknown field {key}")
    meeting_events.reschedule(world, meeting, scheduled)
    return web.json_response(meeting.public())


async def get_meeting(request: web.Request) -> web.Response:
    return web.json_response(_meeting(request.app[WORLD], request).public())


def _instant(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _occurrence(meeting: Meeting, request: web.Request) -> dict[str, Any]:
    found = next(
        (o for o in meeting.occurrences if o["occurrence_id"] == request.match_info["occurrence"]),
        None,
    )
    if found is None:
        raise web.HTTPNotFound(text="no such occurrence")
    return found


async def move_occurrence(request: web.Request) -> web.Response:
    """The host moves one occurrence (as Zoom's `PATCH /meetings/{id}?occurrence_id=`)."""
    world = request.app[WORLD]
    meeting = _meeting(world, request)
    start = str((await _body(request))["start_time"])
    _instant(start)  # a valid time, or 500 for the test that sent it
    meeting_events.move_occurrence(world, meeting, _occurrence(meeting, request), start)
    return web.json_response(meeting.public())


async def delete_occurrence(request: web.Request) -> web.Response:
    """The host deletes one occurrence (as Zoom's `DELETE /meetings/{id}?occurrence_id=`)."""
    world = request.app[WORLD]
    meeting = _meeting(world, request)
    meeting_events.delete_occurrence(world, meeting, _occurrence(meeting, request))
    return web.json_response(meeting.public())


async def add_participant(request: web.Request) -> web.Response:
    """A person joins from a Zoom client (not through the SDK)."""
    meeting = _meeting(request.app[WORLD], request)
    body = await _body(request)
    participant = Participant(
        id=secrets.token_hex(6),
        name=str(body.get("name", "Guest")),
        kind="human",
        user_id=body.get("user_id"),
        is_host=bool(body.get("is_host", False)),
        tone_hz=TONES[sum(p.kind == "human" for p in meeting.participants.values()) % len(TONES)],
    )
    meeting.participants[participant.id] = participant
    broadcast(meeting, roster_event("user-added", participant))
    return web.json_response({**participant.public(), "toneHz": participant.tone_hz}, status=201)


async def script(request: web.Request) -> web.Response:
    """Script the meeting's media, from `start_in_seconds` (default 1) on:
    {"speech": [{"participant": pid, "from": 2, "to": 5, "text": "..."}],
     "chat": [{"participant": pid, "at": 3, "message": "..."}]}
    Each speaker is heard as its own tone (`toneHz`) on the meeting's `audio_path`; the fake
    SDK emits active-speaker, caption-message (when `captions`) and chat-on-message on time."""
    meeting = _meeting(request.app[WORLD], request)
    body = await _body(request)
    start = time.time() + float(body.get("start_in_seconds", 1.0))
    speech, chat = [], []
    try:
        for line in body.get("speech", []):
            who = meeting.participants[str(line["participant"])]
            begin, end = float(line["from"]), float(line["to"])
            if not 0 <= begin < end:
                raise ValueError(f"speech from {begin} to {end}")
            speech.append(
                {
                    "userId": who.id,
                    "displayName": who.name,
                    "toneHz": who.tone_hz,
                    "from": begin,
                    "to": end,
                    "text": str(line.get("text", "")),
                }
            )
        for line in body.get("chat", []):
            who = meeting.participants[str(line["participant"])]
            chat.append(
                {
                    "userId": who.id,
                    "displayName": who.name,
                    "at": float(line["at"]),
                    "message": str(line["message"]),
                }
            )
    except (KeyError, TypeError, ValueError) as error:
        raise web.HTTPBadRequest(text=f"bad script: {error}") from None
    meeting.script = {
        "startsAtMs": int(start * 1000),
        "audioPath": meeting.audio_path,
        "captions": meeting.captions,
        "speech": speech,
        "chat": chat,
    }
    broadcast(meeting, {"event": "sim-media-script", "payload": meeting.script})
    return web.json_response(meeting.script, status=201)


async def remove_participant(request: web.Request) -> web.Response:
    """mode=remove: the host removes them; mode=leave: they leave on their own."""
    meeting = _meeting(request.app[WORLD], request)
    participant = _participant(meeting, request)
    if request.query.get("mode", "remove") == "leave":
        depart(meeting, participant, "left", "leave meeting")
    else:
        # The real bundle's close reason, spelling included ("kicked by host" also occurs).
        depart(meeting, participant, "removed by host", "expeled by host")
    return web.json_response(participant.public())


async def admit_participant(request: web.Request) -> web.Response:
    meeting = _meeting(request.app[WORLD], request)
    participant = _participant(meeting, request)
    if participant.state != "waiting_room":
        raise web.HTTPConflict(text="participant is not in the waiting room")
    admit(meeting, participant)
    return web.json_response(participant.public())


async def admit_all(request: web.Request) -> web.Response:
    meeting = _meeting(request.app[WORLD], request)
    waiting = [p for p in meeting.present() if p.state == "waiting_room"]
    for participant in waiting:
        admit(meeting, participant)
    return web.json_response({"admitted": [p.id for p in waiting]})


async def end(request: web.Request) -> web.Response:
    meeting = _meeting(request.app[WORLD], request)
    end_meeting(meeting)
    return web.json_response(meeting.public())


async def set_faults(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    body = await _body(request)
    try:
        world.faults = Faults(**body)
    except TypeError as error:
        raise web.HTTPBadRequest(text=str(error)) from None
    return web.json_response(dataclasses.asdict(world.faults))


async def calls(request: web.Request) -> web.Response:
    return web.json_response(dict(request.app[WORLD].calls))


async def issued(request: web.Request) -> web.Response:
    """Every secret the simulator handed out: tests grep logs for these."""
    world = request.app[WORLD]
    secrets_ = list(world.issued_secrets)
    for account in world.accounts.values():
        secrets_ += [account.client_secret, account.sdk_secret]
    return web.json_response({"secrets": secrets_})


async def avatar(_: web.Request) -> web.Response:
    # A 1x1 PNG: enough for a page to show "the avatar of the ZAK's user".
    png = bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f8cf000000030101007a6cf1c80000000049454e44ae426082"
    )
    return web.Response(body=png, content_type="image/png")


def routes() -> list[web.RouteDef]:
    return [
        web.post("/sim/accounts", create_account),
        web.patch("/sim/accounts/{account_id}", update_account),
        web.post("/sim/accounts/{account_id}/revoke-tokens", revoke_grants),
        web.post("/sim/accounts/{account_id}/users", add_user),
        web.get("/sim/accounts/{account_id}/users", list_account_users),
        web.post("/sim/users/{user_id}/status/{status}", set_user_status),
        web.post("/sim/users/{user_id}/signout", sign_out),
        web.delete("/sim/users/{user_id}", delete_user),
        web.post("/sim/users/{user_id}/deauthorize", deauthorize),
        web.post("/sim/users/{user_id}/authorize", authorize_user),
        web.post("/sim/meetings", create_meeting),
        web.get("/sim/meetings/{number}", get_meeting),
        web.patch("/sim/meetings/{number}", update_meeting),
        web.delete("/sim/meetings/{number}", delete_meeting),
        web.get("/sim/meeting-deliveries", meeting_deliveries),
        web.patch("/sim/meetings/{number}/occurrences/{occurrence}", move_occurrence),
        web.delete("/sim/meetings/{number}/occurrences/{occurrence}", delete_occurrence),
        web.post("/sim/meetings/{number}/end", end),
        web.post("/sim/meetings/{number}/admit", admit_all),
        web.post("/sim/meetings/{number}/participants", add_participant),
        web.post("/sim/meetings/{number}/script", script),
        web.delete("/sim/meetings/{number}/participants/{pid}", remove_participant),
        web.post("/sim/meetings/{number}/participants/{pid}/admit", admit_participant),
        web.put("/sim/faults", set_faults),
        web.get("/sim/calls", calls),
        web.get("/sim/issued", issued),
        web.get("/sim/avatars/{name}", avatar),
    ]
