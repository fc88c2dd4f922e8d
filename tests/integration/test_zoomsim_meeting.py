"""The simulator's meeting side follows docs/zoom.md, including the practitioners' facts about ZAKs
(docs/zoom.md, ZAK) as executable checks, and its REST side answers 429 as Zoom does."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import aiohttp
import httpx
import jwt
import pytest

from devenv.zoomsim import SimAdmin, ZoomSim
from meetingbot_operator.zoom import SdkCredentials, sdk_signature
from tests.support.zoom_helpers import JoinFailed, SdkSession, client_for


def signature_for(account: dict[str, Any], number: str, **options: Any) -> str:
    credentials = SdkCredentials(sdk_key=account["sdk_key"], sdk_secret=account["sdk_secret"])
    return sdk_signature(credentials, number, **options).get_secret_value()


async def mint(zoomsim: ZoomSim, account: dict[str, Any], ttl: int = 7200) -> str:
    async with client_for(zoomsim.url, account) as zoom:
        return (
            await zoom.mint_zak(account["user"]["id"], ttl_seconds=ttl)
        ).token.get_secret_value()


def raw_zak(zoomsim: ZoomSim, account: dict[str, Any], ttl: int) -> str:
    """Straight through the REST API, below the client's own lower bound on ttl."""
    token = httpx.post(
        f"{zoomsim.url}/oauth/token",
        data={"grant_type": "account_credentials", "account_id": account["id"]},
        auth=(account["client_id"], account["client_secret"]),
    ).json()["access_token"]
    response = httpx.get(
        f"{zoomsim.url}/v2/users/{account['user']['id']}/token",
        params={"type": "zak", "ttl": ttl},
        headers={"Authorization": f"Bearer {token}"},
    )
    return str(response.json()["token"])


async def join(zoomsim: ZoomSim, account: dict[str, Any], number: str, **params: Any) -> SdkSession:
    session = SdkSession(zoomsim.url)
    params.setdefault("signature", signature_for(account, number))
    params.setdefault("userName", "Notetaker")
    try:
        await session.join(meetingNumber=number, **params)
    except BaseException:
        await session.close()
        raise
    return session


async def test_a_new_zak_does_not_invalidate_an_older_one(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    first = await mint(zoomsim, zoom_account)
    second = await mint(zoomsim, zoom_account)
    assert first != second
    a = sim.create_meeting(zoom_account["id"], auth_required=True)["number"]
    b = sim.create_meeting(zoom_account["id"], auth_required=True)["number"]
    async with (
        await join(zoomsim, zoom_account, a, zak=first),
        await join(zoomsim, zoom_account, b, zak=second),
    ):
        assert len(sim.participants(a, "in_meeting")) == 1
        assert len(sim.participants(b, "in_meeting")) == 1


async def test_a_zak_expiring_after_join_does_not_eject(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    zak = raw_zak(zoomsim, zoom_account, ttl=2)
    number = sim.create_meeting(zoom_account["id"], auth_required=True)["number"]
    async with await join(zoomsim, zoom_account, number, zak=zak):
        await asyncio.sleep(2.5)
        assert [p["state"] for p in sim.participants(number, state="in_meeting")] == ["in_meeting"]
        # The same ZAK is refused at the next join: it is checked at join time only.
        with pytest.raises(JoinFailed) as rejoin:
            await join(zoomsim, zoom_account, number, zak=zak)
        assert rejoin.value.code == 3265


async def test_one_user_joins_seven_meetings_at_once(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    zak = await mint(zoomsim, zoom_account)
    numbers = [
        sim.create_meeting(zoom_account["id"], auth_required=True)["number"] for _ in range(7)
    ]
    sessions = [
        await join(zoomsim, zoom_account, n, zak=zak, userName=f"Bot {i}")
        for i, n in enumerate(numbers)
    ]
    try:
        for i, number in enumerate(numbers):
            (person,) = sim.participants(number, "in_meeting")
            assert person["zoomUserId"] == zoom_account["user"]["id"]
            assert person["displayName"] == f"Bot {i}"
            assert person["avatar"].endswith(f"{zoom_account['user']['id']}.png")
    finally:
        for session in sessions:
            await session.close()


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("wrong passcode", 3004),
        ("no zak on an authenticated-only meeting", 3100),
        ("expired signature", 3705),
        ("signature for another meeting", 3706),
        ("signature with another secret", 3712),
        ("signature lifetime too short", 3712),
        ("unknown meeting", 3001),
        ("host not there", 3008),
        ("locked", 4006),
        ("full", 4005),
        ("revoked zak", 3265),
        ("zak and obf together", 4018),
        ("other account, unpublished app", 4011),
    ],
)
async def test_join_failures_carry_zooms_codes(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin, case: str, code: int
) -> None:
    meeting: dict[str, Any] = {"passcode": "s3cret", "auth_required": True}
    number = sim.create_meeting(zoom_account["id"], **meeting)["number"]
    zak = await mint(zoomsim, zoom_account)
    params: dict[str, Any] = {"password": "s3cret", "zak": zak}
    if case == "wrong passcode":
        params["password"] = "guess"
    elif case == "no zak on an authenticated-only meeting":
        del params["zak"]
    elif case == "expired signature":
        params["signature"] = signature_for(
            zoom_account, number, lifetime_seconds=1800, now=time.time() - 7200
        )
    elif case == "signature for another meeting":
        params["signature"] = signature_for(zoom_account, "99999999999")
    elif case == "signature with another secret":
        params["signature"] = signature_for(
            {**zoom_account, "sdk_secret": "another-secret-of-sufficient-length!"}, number
        )
    elif case == "signature lifetime too short":
        now = int(time.time())
        claims = {
            "appKey": zoom_account["sdk_key"],
            "mn": number,
            "role": 0,
            "iat": now,
            "exp": now + 600,
        }
        params["signature"] = jwt.encode(claims, zoom_account["sdk_secret"], algorithm="HS256")
    elif case == "unknown meeting":
        number = "11111111111"
        params["signature"] = signature_for(zoom_account, number)
    elif case == "host not there":
        sim.update_meeting(number, host_present=False)
    elif case == "locked":
        sim.update_meeting(number, locked=True)
    elif case == "full":
        sim.update_meeting(number, capacity=1)
        sim.add_participant(number, "Host", is_host=True)
    elif case == "revoked zak":
        sim.sign_out_everywhere(zoom_account["user"]["id"])
    elif case == "zak and obf together":
        params["obfToken"] = "simobf_x"
    elif case == "other account, unpublished app":
        other = sim.create_account()
        params["signature"] = signature_for(other, number)
    params.setdefault("signature", signature_for(zoom_account, number))
    with pytest.raises(JoinFailed) as failed:
        await join(zoomsim, zoom_account, number, **params)
    assert failed.value.code == code


async def test_anonymous_join_works_only_inside_the_account(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    number = sim.create_meeting(zoom_account["id"])["number"]
    async with await join(zoomsim, zoom_account, number) as session:
        assert session.joined["currentUser"]["zoomUserId"] is None
    published = sim.create_account(app_published=True)
    with pytest.raises(JoinFailed) as anonymous:
        await join(zoomsim, published, number)
    assert anonymous.value.code == 4012


async def test_obf_join_needs_the_authorizing_user_in_the_meeting(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    host_account = sim.create_account()
    number = sim.create_meeting(host_account["id"])["number"]
    app = sim.create_account(app_published=True)
    person = sim.add_user(app["id"], email="alice@customer.example.com")
    from pydantic import SecretStr

    async with client_for(zoomsim.url, app) as zoom:
        token = SecretStr(sim.authorize_user(person["id"]))
        obf = (await zoom.mint_obf(token, meeting_number=number)).get_secret_value()
        elsewhere = (await zoom.mint_obf(token, meeting_number="22222222222")).get_secret_value()
    with pytest.raises(JoinFailed) as absent:
        await join(zoomsim, app, number, obfToken=obf)
    assert absent.value.code == 4017
    sim.add_participant(number, "Alice", user_id=person["id"])
    with pytest.raises(JoinFailed) as mismatch:
        await join(zoomsim, app, number, obfToken=elsewhere)
    assert mismatch.value.code == 4015
    async with await join(zoomsim, app, number, obfToken=obf) as session:
        assert session.joined["currentUser"]["zoomUserId"] == person["id"]
        # Alice leaves: Zoom removes the bot she authorized (4019, the bundle's reason).
        alice = next(p for p in sim.participants(number, "in_meeting") if p["kind"] == "human")
        sim.remove_participant(number, alice["userId"], mode="leave")
        event = await session.next_event()
        while event["event"] != "connection-change":
            event = await session.next_event()
        assert event["payload"] == {
            "state": "Closed",
            "reason": "bot user kicked due to master leaving",
        }
        assert [p["leftReason"] for p in sim.participants(number, "left")] == [
            "left",
            "authorizing user left",
        ]


async def test_waiting_room_admission_is_pushed(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    number = sim.create_meeting(zoom_account["id"], waiting_room=True)["number"]
    async with await join(zoomsim, zoom_account, number) as session:
        me = session.joined["currentUser"]
        assert me["bHold"] is True
        assert sim.participants(number, "in_meeting") == []
        sim.admit(number, me["userId"])
        event = await session.next_event()
        assert event["event"] == "user-updated"
        assert event["payload"][0]["userId"] == me["userId"]
        assert event["payload"][0]["bHold"] is False


async def test_roster_removal_and_end_are_pushed(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    number = sim.create_meeting(zoom_account["id"])["number"]
    async with (
        await join(zoomsim, zoom_account, number) as kept,
        await join(zoomsim, zoom_account, number, userName="Other") as removed,
    ):
        assert (await kept.next_event())["event"] == "user-added"
        guest = sim.add_participant(number, "Guest")
        assert (await kept.next_event())["payload"][0]["displayName"] == "Guest"
        sim.remove_participant(number, guest["userId"], mode="leave")
        assert (await kept.next_event())["event"] == "user-removed"

        sim.remove_participant(number, removed.joined["currentUser"]["userId"])
        closed = await removed.wait_for("connection-change")
        assert closed == {
            "event": "connection-change",
            "payload": {"state": "Closed", "reason": "expeled by host"},
        }
        gone = await kept.next_event()
        assert (gone["event"], gone["payload"][0]["displayName"]) == ("user-removed", "Other")

        sim.end_meeting(number)
        ended = await kept.next_event()
        assert ended["payload"] == {"state": "Closed", "reason": "ended by host"}
    with pytest.raises(JoinFailed) as after:
        await join(zoomsim, zoom_account, number)
    assert after.value.code == 3001


async def test_meeting_ends_at_its_scheduled_time(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    number = sim.create_meeting(zoom_account["id"], ends_in_seconds=1)["number"]
    async with await join(zoomsim, zoom_account, number) as session:
        event = await session.next_event(timeout=5)
        assert event["payload"]["reason"] == "ended by host"
    assert sim.meeting(number)["ended"] is True


async def test_leaving_and_dropping_remove_the_participant(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    number = sim.create_meeting(zoom_account["id"])["number"]
    session = await join(zoomsim, zoom_account, number)
    await session.leave()
    await session.close()
    dropped = await join(zoomsim, zoom_account, number)
    await dropped.close()  # the browser died: no leave, the socket just closes
    await asyncio.sleep(0.3)
    reasons = sorted(p["leftReason"] for p in sim.participants(number, "left"))
    assert reasons == ["connection lost", "left"]


def test_rest_side_answers_429_with_zooms_headers(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    token = httpx.post(
        f"{zoomsim.url}/oauth/token",
        data={"grant_type": "account_credentials", "account_id": zoom_account["id"]},
        auth=(zoom_account["client_id"], zoom_account["client_secret"]),
    ).json()["access_token"]

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
            url = f"{zoomsim.url}/v2/users/{zoom_account['user']['id']}/token?type=zak"
            return await asyncio.gather(*(http.get(url) for _ in range(70)))

    responses = asyncio.run(burst())
    limited = [r for r in responses if r.status_code == 429]
    assert len(responses) - len(limited) <= 60  # never more than 30 in any window
    # 70 at once against 30 per second: a burst shorter than a second spans at most two
    # windows, so one of them got at least 35 and refused some.
    assert limited, "no 429 in a burst of 70 against a limit of 30/s"
    sample = limited[0]
    assert sample.json()["code"] == 429
    assert sample.headers["X-RateLimit-Category"] == "Light"
    assert sample.headers["X-RateLimit-Type"] == "QPS"
    assert sample.headers["X-RateLimit-Limit"] == "30"
    assert float(sample.headers["Retry-After"]) <= 1.0


async def test_removal_before_the_client_connects_is_still_told(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    number = sim.create_meeting(zoom_account["id"])["number"]
    async with aiohttp.ClientSession() as http:
        params = {
            "signature": signature_for(zoom_account, number),
            "meetingNumber": number,
            "userName": "Bot",
        }
        async with http.post(f"{zoomsim.url}/sim/sdk/join", json=params) as response:
            joined = await response.json()
        sim.remove_participant(number, joined["currentUser"]["userId"])
        ws = await http.ws_connect(
            zoomsim.url.replace("http", "ws", 1) + "/sim/sdk/events",
            params={"session": joined["session"]},
        )
        message = await ws.receive_json(timeout=5)
        assert message == {
            "event": "connection-change",
            "payload": {"state": "Closed", "reason": "expeled by host"},
        }
        await ws.close()


def test_the_simulator_chooses_another_port_when_its_own_is_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A port free when chosen but taken before the simulator listens (containerd's streaming
    server takes an ephemeral loopback port: a bench once failed on it) is chosen again."""
    from devenv.zoomsim import server

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1], server.free_port()])
        monkeypatch.setattr(server, "free_port", lambda: next(ports))
        with ZoomSim() as sim:
            assert sim.port != taken.getsockname()[1]
            assert sim.world.rtms_base_url.endswith(f":{sim.port}")
            assert httpx.get(f"{sim.url}/oauth/token").status_code < 500
