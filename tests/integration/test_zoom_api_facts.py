"""Every simulator response to the operations the product calls, checked against the facts
recorded from Zoom's API reference (tests/fixtures/zoom_api_v2.json): status codes, body
shapes, required fields, the rate-limit category, required request fields refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devenv.zoomsim import SimAdmin, ZoomSim
from tests.support.zoom_helpers import account_token

FACTS = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "zoom_api_v2.json").read_text()
)
TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "array": list,
    "object": dict,
}


def check_shape(body: Any, shape: dict[str, Any], where: str) -> None:
    assert isinstance(body, dict), f"{where}: not an object: {body!r}"
    required, optional = shape.get("required", {}), shape.get("optional", {})
    for name, kind in required.items():
        assert name in body, f"{where}: missing {name}"
        assert isinstance(body[name], TYPES[kind]), f"{where}: {name} is not {kind}"
    unknown = set(body) - set(required) - set(optional)
    assert not unknown, f"{where}: fields the reference does not list: {sorted(unknown)}"
    for name in set(body) & set(optional):
        assert isinstance(body[name], TYPES[optional[name]]), f"{where}: {name} type"


def check(operation: str, response: httpx.Response) -> None:
    """One response against the facts of its operation."""
    facts = FACTS["operations"][operation]
    allowed = {
        *facts["statuses"],
        *map(int, facts.get("undocumented", {})),
        *map(int, FACTS["global_statuses"]),
    }
    where = f"{operation} -> {response.status_code}"
    assert response.status_code in allowed, f"{where}: not a status Zoom lists for it"
    if response.status_code == 204 or (response.status_code == 201 and not response.content):
        assert not response.content
        return
    body = response.json()
    if response.is_success:
        check_shape(body, facts["response"], where)
    else:
        check_shape(body, FACTS[facts.get("errors", "error_body")], where)
    category = facts.get("category")
    if category and "X-RateLimit-Category" in response.headers:
        assert response.headers["X-RateLimit-Category"] == category, where


@pytest.fixture
def api(zoomsim: ZoomSim, zoom_account: dict[str, Any]) -> Iterator[httpx.Client]:
    token = account_token(zoomsim.url, zoom_account)
    with httpx.Client(base_url=zoomsim.url, headers={"Authorization": f"Bearer {token}"}) as c:
        yield c


def test_oauth(zoomsim: ZoomSim, zoom_account: dict[str, Any]) -> None:
    url = f"{zoomsim.url}/oauth/token"
    params = {"grant_type": "account_credentials", "account_id": zoom_account["id"]}
    good = (zoom_account["client_id"], zoom_account["client_secret"])
    for auth, status in ((good, 200), ((good[0], "wrong"), 401)):
        response = httpx.post(url, params=params, auth=auth)
        assert response.status_code == status
        check("POST /oauth/token", response)
    wrong_grant = httpx.post(url, params={**params, "grant_type": "password"}, auth=good)
    assert wrong_grant.status_code == 400
    check("POST /oauth/token", wrong_grant)


def test_zak(api: httpx.Client, zoom_account: dict[str, Any], sim: SimAdmin) -> None:
    op = "GET /v2/users/{userId}/token"
    user = zoom_account["user"]
    for path, params, status in (
        (user["id"], {"type": "zak"}, 200),
        (user["email"], {"type": "zak", "ttl": "3600"}, 200),
        ("nobody@example.com", {"type": "zak"}, 404),
        (user["id"], {"type": "zak", "ttl": "0"}, 400),
    ):
        response = api.get(f"/v2/users/{path}/token", params=params)
        assert response.status_code == status, response.text
        check(op, response)
    sim.set_user_status(user["id"], "pending")
    response = api.get(f"/v2/users/{user['id']}/token", params={"type": "zak"})
    assert response.status_code == 400
    check(op, response)


def test_my_zak(zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin) -> None:
    for scopes, status in (("user:read:zak", 200), ("user_zak:read", 200), ("meeting:read", 400)):
        token = sim.authorize_user(zoom_account["user"]["id"], scopes=scopes)
        response = httpx.get(
            f"{zoomsim.url}/v2/users/me/zak", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == status
        check("GET /v2/users/me/zak", response)


def test_users(api: httpx.Client, zoom_account: dict[str, Any], sim: SimAdmin) -> None:
    user = zoom_account["user"]
    for path, status in ((user["id"], 200), (user["email"], 200), ("nobody", 404)):
        response = api.get(f"/v2/users/{path}")
        assert response.status_code == status
        check("GET /v2/users/{userId}", response)
    sim.set_user_status(user["id"], "pending")
    pending = api.get(f"/v2/users/{user['id']}")
    check("GET /v2/users/{userId}", pending)
    assert set(pending.json()) == {"id", "created_at"}  # what Zoom returns for a pending user
    listed = api.get("/v2/users", params={"status": "pending"})
    check("GET /v2/users", listed)
    for entry in listed.json()["users"]:
        check_shape(entry, FACTS["operations"]["GET /v2/users/{userId}"]["response"], "users[]")


def test_create_and_delete_users(api: httpx.Client, sim: SimAdmin) -> None:
    op = "POST /v2/users"
    account = sim.create_account(plan="pro", managed_domains=["bots.example.com"])
    token = account_token(sim.url, account)
    headers = {"Authorization": f"Bearer {token}"}
    body = {"action": "autoCreate", "user_info": {"email": "n1@bots.example.com", "type": 1}}
    created = api.post("/v2/users", json=body, headers=headers)
    assert created.status_code == 201
    check(op, created)
    again = api.post("/v2/users", json=body, headers=headers)
    assert (again.status_code, again.json()["code"]) == (409, 1005)
    check(op, again)
    for field in FACTS["operations"][op]["body_required"]:
        incomplete = json.loads(json.dumps(body))
        *parents, leaf = field.split(".")
        target = incomplete
        for parent in parents:
            target = target[parent]
        del target[leaf]
        refused = api.post("/v2/users", json=incomplete, headers=headers)
        assert refused.status_code == 400, field
        check(op, refused)
        assert [e["field"] for e in refused.json()["errors"]] == [field]
    deleted = api.delete(f"/v2/users/{created.json()['id']}", headers=headers)
    assert deleted.status_code == 204
    check("DELETE /v2/users/{userId}", deleted)
    missing = api.delete("/v2/users/nobody", headers=headers)
    check("DELETE /v2/users/{userId}", missing)


def test_meetings_and_their_occurrences(zoomsim: ZoomSim, sim: SimAdmin) -> None:
    """What a MeetingBotSchedule reads (a recurring meeting's occurrences) and what a host
    does to them (move one, delete one, delete the meeting), through Zoom's REST API."""
    scopes = ["user:read:admin", "meeting:read:admin", "meeting:write:admin"]
    account = sim.create_account(plan="pro", scopes=scopes)
    host = sim.add_user(account["id"], email=f"host-{account['id'][:6]}@example.com")
    starts = ["2030-01-07T09:00:00Z", "2030-01-14T09:00:00Z", "2030-01-21T09:00:00Z"]
    number = sim.create_meeting(account["id"], topic="Standup", host_id=host["id"],
                                occurrences_at=starts)["number"]  # fmt: skip
    token = account_token(zoomsim.url, account)
    facts = FACTS["operations"]["GET /v2/meetings/{meetingId}"]
    with httpx.Client(base_url=zoomsim.url, headers={"Authorization": f"Bearer {token}"}) as api:

        def read() -> dict[str, Any]:
            response = api.get(f"/v2/meetings/{number}")
            check("GET /v2/meetings/{meetingId}", response)
            body: dict[str, Any] = response.json()
            for occurrence in body["occurrences"]:
                check_shape(occurrence, facts["occurrence"], "occurrences[]")
            return body

        first = read()
        assert (first["type"], first["host_id"]) == (8, host["id"])
        ids = [o["occurrence_id"] for o in first["occurrences"]]
        moved = api.patch(f"/v2/meetings/{number}", params={"occurrence_id": ids[0]},
                          json={"start_time": "2030-01-07T10:00:00Z"})  # fmt: skip
        assert moved.status_code == 204
        check("PATCH /v2/meetings/{meetingId}", moved)
        deleted = api.delete(f"/v2/meetings/{number}", params={"occurrence_id": ids[1]})
        assert deleted.status_code == 204
        check("DELETE /v2/meetings/{meetingId}", deleted)
        after = {o["occurrence_id"]: o for o in read()["occurrences"]}
        assert after[ids[0]]["start_time"] == "2030-01-07T10:00:00Z"  # same id, moved
        assert (after[ids[1]]["status"], after[ids[2]]["status"]) == ("deleted", "available")
        unknown = api.patch(f"/v2/meetings/{number}", params={"occurrence_id": "1"},
                            json={"start_time": "2030-01-07T10:00:00Z"})  # fmt: skip
        assert unknown.status_code == 404
        check("PATCH /v2/meetings/{meetingId}", unknown)
        other = sim.create_account(plan="pro")
        theirs = sim.create_meeting(other["id"], start_time=starts[0])["number"]
        not_found = api.get(f"/v2/meetings/{theirs}")  # another account's: not found
        assert (not_found.status_code, not_found.json()["code"]) == (404, 3001)
        check("GET /v2/meetings/{meetingId}", not_found)
        gone = api.delete(f"/v2/meetings/{number}")
        assert gone.status_code == 204
        assert api.get(f"/v2/meetings/{number}").status_code == 404


def test_my_meetings_and_pictures(zoomsim: ZoomSim, sim: SimAdmin) -> None:
    account = sim.create_account(plan="pro", scopes=["user:read:admin", "user:write:admin"])
    user = sim.add_user(account["id"], email=f"dana-{account['id'][:6]}@example.com")
    sim.create_meeting(account["id"], topic="Planning", host_id=user["id"],
                       start_time="2030-01-07T09:00:00Z")  # fmt: skip
    for scopes, status in (("meeting:read:list_meetings", 200), ("meeting:read", 200),
                           ("user:read:user", 400)):  # fmt: skip
        token = sim.authorize_user(user["id"], scopes=scopes)
        listed = httpx.get(f"{zoomsim.url}/v2/users/me/meetings", params={"type": "upcoming"},
                           headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert listed.status_code == status, listed.text
        check("GET /v2/users/me/meetings", listed)
        if status == 200:
            [meeting] = listed.json()["meetings"]
            check_shape(
                meeting, FACTS["operations"]["GET /v2/users/me/meetings"]["meeting"], "meetings[]"
            )
            assert (meeting["topic"], meeting["host_id"]) == ("Planning", user["id"])

    op = "POST /v2/users/{userId}/picture"
    token = account_token(zoomsim.url, account)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    for path, files, status in (
        (user["id"], {"pic_file": ("face.png", png, "image/png")}, 201),
        (user["id"], {"pic_file": ("notes.txt", b"hello", "text/plain")}, 400),
        ("nobody@example.com", {"pic_file": ("face.png", png, "image/png")}, 404),
    ):
        response = httpx.post(f"{zoomsim.url}/v2/users/{path}/picture", files=files,
                              headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert response.status_code == status, response.text
        check(op, response)
