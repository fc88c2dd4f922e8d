"""The Zoom client against the simulator: tokens, ZAKs, users, rate limits, faults, secrecy."""

from __future__ import annotations

import asyncio
import email.utils
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from devenv.zoomsim import SimAdmin, ZoomSim
from meetingbot_contract.reasons import Reason
from meetingbot_operator.zoom import ZoomError
from tests.support.zoom_helpers import Statuses, account_token, client_for


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record) + " " + repr(record.__dict__))


@pytest.fixture(scope="module", autouse=True)
def no_secret_in_logs(zoomsim: ZoomSim) -> Iterator[None]:
    """Every log record of this module's run, at DEBUG from every library, is checked at the
    end against every token and secret the simulator handed out."""
    capture = _Capture()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    yield
    root.removeHandler(capture)
    root.setLevel(previous)
    admin = SimAdmin(zoomsim.url)
    secrets = admin.issued_secrets()
    admin.close()
    assert len(capture.lines) > 100, "the capture saw too little to prove anything"
    assert len(secrets) > 200
    # One text searched once a secret, as the resilience test searches the operator's log
    # (it finds whatever a line would): every line searched for every secret took 16.6 s.
    text = "\n".join(capture.lines)
    leaked = [s for s in secrets if s in text]
    assert not leaked, f"{len(leaked)} secrets appeared in log records"


async def test_200_concurrent_zaks_under_pro_limits(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    statuses = Statuses()
    async with client_for(zoomsim.url, zoom_account, observer=statuses) as zoom:
        zaks = await asyncio.gather(
            *(zoom.mint_zak(zoom_account["user"]["id"]) for _ in range(200))
        )
        print(f"\n200 concurrent ZAKs: 429s seen by the client: {statuses[429]}")
    assert len({z.token.get_secret_value() for z in zaks}) == 200
    calls = sim.calls()
    assert calls[f"{zoom_account['id']}:oauth"] == 1
    assert calls[f"{zoom_account['id']}:zak"] == 200
    assert all(z.user_id == zoom_account["user"]["id"] for z in zaks)


async def test_revoked_token_is_refreshed_once(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    async with client_for(zoomsim.url, zoom_account) as zoom:
        await zoom.mint_zak(zoom_account["user"]["id"])
        assert sim.revoke_tokens(zoom_account["id"]) == 1
        await zoom.mint_zak(zoom_account["user"]["id"])
    assert sim.calls()[f"{zoom_account['id']}:oauth"] == 2


async def test_bad_client_secret_is_a_permanent_credentials_error(
    zoomsim: ZoomSim, zoom_account: dict[str, Any]
) -> None:
    wrong = {**zoom_account, "client_secret": "not-the-secret"}
    async with client_for(zoomsim.url, wrong) as zoom:
        with pytest.raises(ZoomError) as caught:
            await zoom.mint_zak(zoom_account["user"]["id"])
    assert caught.value.reason is Reason.ZOOM_CREDENTIALS_INVALID
    assert not caught.value.transient
    assert caught.value.code == 4702
    assert "not-the-secret" not in str(caught.value) + repr(caught.value)


async def test_disabled_app_and_unknown_account(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    async with client_for(zoomsim.url, {**zoom_account, "id": "nope"}) as zoom:
        with pytest.raises(ZoomError) as unknown:
            await zoom.verify()
    assert (unknown.value.reason, unknown.value.code) == (Reason.ZOOM_CREDENTIALS_INVALID, 4700)
    sim.update_account(zoom_account["id"], app_disabled=True)
    async with client_for(zoomsim.url, zoom_account) as zoom:
        with pytest.raises(ZoomError) as disabled:
            await zoom.verify()
    assert disabled.value.code == 4717


async def test_missing_scope(zoomsim: ZoomSim, sim: SimAdmin) -> None:
    account = sim.create_account(scopes=["meeting:read:admin"])
    user = sim.add_user(account["id"], email="scopeless@bots.example.com")
    async with client_for(zoomsim.url, account) as zoom:
        assert await zoom.verify() == frozenset({"meeting:read:admin"})
        with pytest.raises(ZoomError) as caught:
            await zoom.mint_zak(user["id"])
    assert caught.value.reason is Reason.ZOOM_SCOPE_MISSING
    assert caught.value.code == 4711


async def test_unknown_and_pending_users(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    pending = sim.add_user(zoom_account["id"], email="new@bots.example.com", status="pending")
    async with client_for(zoomsim.url, zoom_account) as zoom:
        with pytest.raises(ZoomError) as unknown:
            await zoom.mint_zak("ghost@bots.example.com")
        with pytest.raises(ZoomError) as inactive:
            await zoom.mint_zak(pending["id"])
        by_email = await zoom.mint_zak(zoom_account["user"]["email"])
    assert (unknown.value.reason, unknown.value.code) == (Reason.ZOOM_USER_NOT_FOUND, 1001)
    assert inactive.value.reason is Reason.ZOOM_USER_INACTIVE
    assert not unknown.value.transient and not inactive.value.transient
    assert by_email.token.get_secret_value()


async def test_zak_ttl_bounds_are_checked_before_calling(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    async with client_for(zoomsim.url, zoom_account) as zoom:
        for ttl in (0, 59, 365 * 24 * 3600 + 1):
            with pytest.raises(ValueError, match="ttl"):
                await zoom.mint_zak(zoom_account["user"]["id"], ttl_seconds=ttl)
        zak = await zoom.mint_zak(zoom_account["user"]["id"], ttl_seconds=600)
    lifetime = (zak.expires_at - zak.expires_at.now(zak.expires_at.tzinfo)).total_seconds()
    assert 590 < lifetime <= 600
    assert f"{zoom_account['id']}:zak" in sim.calls()


@pytest.mark.parametrize("headers", ["always", "never", "sometimes"])
@pytest.mark.parametrize("retry_after", ["seconds", "iso"])
async def test_429_storm_from_a_second_app_is_absorbed(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin, headers: str, retry_after: str
) -> None:
    """Two apps of one account (two clients, two budgets) share Zoom's 30/s: Zoom answers 429
    and every request still succeeds, whatever headers Zoom chose to send."""
    sim.set_faults(rate_limit_headers=headers, retry_after_format=retry_after)
    user = zoom_account["user"]["id"]
    statuses = Statuses()  # both apps' answers
    async with (
        client_for(zoomsim.url, zoom_account, max_attempts=10, observer=statuses) as a,
        client_for(zoomsim.url, zoom_account, max_attempts=10, observer=statuses) as b,
    ):
        results = await asyncio.gather(*(c.mint_zak(user) for c in (a, b) for _ in range(60)))
        limited = statuses[429]
    assert len(results) == 120
    assert limited > 0
    assert sim.calls()[f"{zoom_account['id']}:429"] == limited


async def test_server_errors_are_retried(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    # 12 attempts: with 30 % failures, one of 30 calls failing every time is a 1-in-60,000 event
    # (with the default 6 it would be 1 in 45: a test must not flake).
    async with client_for(zoomsim.url, zoom_account, max_attempts=12) as zoom:
        await zoom.verify()
        sim.set_faults(error_rate=0.3, error_status=502)
        zaks = await asyncio.gather(*(zoom.mint_zak(zoom_account["user"]["id"]) for _ in range(30)))
    assert len(zaks) == 30
    assert sim.calls()[f"{zoom_account['id']}:zak:failed"] > 0


async def test_an_outage_is_waited_out_by_the_whole_account_not_by_each_caller(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    """Zoom answers 503 to every ZAK call: 20 bots starting at once, 3 attempts each (60
    calls, were each caller on its own). The first failure opens the account's breaker: the
    others fail at once, unsent, and one probe at a time goes out when its pause ends (a 5xx
    now backs off per account as a 429 does)."""
    async with client_for(zoomsim.url, zoom_account, max_attempts=3) as zoom:
        await zoom.verify()
        sim.set_faults(error_rate=1.0, error_status=503)
        results = await asyncio.gather(
            *(zoom.mint_zak(zoom_account["user"]["id"]) for _ in range(20)),
            return_exceptions=True,
        )
    assert all(isinstance(r, ZoomError) and r.reason is Reason.ZOOM_UNAVAILABLE for r in results), (
        results
    )
    failed = sim.calls()[f"{zoom_account['id']}:zak:failed"]
    print(f"\n20 callers x 3 attempts during an outage: {failed} calls reached Zoom")
    assert 1 <= failed <= 10


async def test_outage_ends_in_a_transient_error(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    sim.set_faults(outage=True)
    async with client_for(zoomsim.url, zoom_account, max_attempts=3) as zoom:
        with pytest.raises(ZoomError) as caught:
            await zoom.mint_zak(zoom_account["user"]["id"])
    assert caught.value.reason is Reason.ZOOM_UNAVAILABLE
    assert caught.value.transient


async def test_timeouts_end_in_a_transient_error(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    async with client_for(
        zoomsim.url, zoom_account, max_attempts=2, http=httpx.AsyncClient(timeout=0.3)
    ) as zoom:
        await zoom.verify()
        sim.set_faults(latency_ms=1000)
        with pytest.raises(ZoomError) as caught:
            await zoom.mint_zak(zoom_account["user"]["id"])
    assert caught.value.reason is Reason.ZOOM_UNAVAILABLE
    assert "Timeout" in caught.value.message


async def test_create_user_actions_follow_their_rules(zoomsim: ZoomSim, sim: SimAdmin) -> None:
    account = sim.create_account(managed_domains=["corp.example.com"])
    async with client_for(zoomsim.url, account) as zoom:
        created = await zoom.create_user("create", "a@elsewhere.example.com", first_name="A")
        assert (await zoom.get_user(created.id)).status == "pending"
        with pytest.raises(ZoomError) as pending:
            await zoom.mint_zak(created.id)
        assert pending.value.reason is Reason.ZOOM_USER_INACTIVE
        sim.set_user_status(created.id, "active")
        assert (await zoom.mint_zak(created.id)).token.get_secret_value()

        auto = await zoom.create_user(
            "autoCreate", "b@corp.example.com", password=SecretStr("Pw-1234567")
        )
        assert (await zoom.get_user(auto.id)).status == "active"
        for action, email in (
            ("autoCreate", "c@other.example.com"),
            ("custCreate", "d@x.example.com"),
            ("ssoCreate", "e@x.example.com"),
        ):
            with pytest.raises(ZoomError) as refused:
                await zoom.create_user(action, email)
            assert refused.value.reason is Reason.ZOOM_REQUEST_INVALID, action
        with pytest.raises(ZoomError) as duplicate:
            await zoom.create_user("create", "a@elsewhere.example.com")
        assert (duplicate.value.reason, duplicate.value.code) == (Reason.ZOOM_USER_EXISTS, 1005)

        await zoom.disassociate_user(auto.id)
        with pytest.raises(ZoomError) as gone:
            await zoom.get_user(auto.id)
        assert gone.value.reason is Reason.ZOOM_USER_NOT_FOUND

    partner = sim.create_account(isv_partner=True, sso_enabled=True)
    async with client_for(zoomsim.url, partner) as zoom:
        cust = await zoom.create_user("custCreate", "f@x.example.com")
        sso = await zoom.create_user("ssoCreate", "g@x.example.com", user_type=99)
        zak = await zoom.mint_zak(cust.id)
        assert zak.token.get_secret_value()
        assert (await zoom.get_user(sso.id)).type == 99


async def test_list_users_follows_pages(zoomsim: ZoomSim, sim: SimAdmin) -> None:
    account = sim.create_account(plan="business")
    for i in range(320):
        sim.add_user(account["id"], email=f"u{i}@bots.example.com")
    sim.add_user(account["id"], email="pending@bots.example.com", status="pending")
    async with client_for(zoomsim.url, account) as zoom:
        users = await zoom.list_users()
    assert len(users) == 320
    assert len({u.id for u in users}) == 320


async def test_obf_token_is_minted_with_the_users_own_token(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    user_token = SecretStr(sim.authorize_user(zoom_account["user"]["id"]))
    async with client_for(zoomsim.url, zoom_account) as zoom:
        obf = await zoom.mint_obf(user_token, meeting_number="12345678901")
        assert obf.get_secret_value().startswith("simobf_")
        with pytest.raises(ZoomError) as wrong_token:
            # The account token cannot mint OBF tokens: only the authorizing user's can.
            await zoom.mint_obf((await zoom.tokens.get()).value)
    assert wrong_token.value.reason is Reason.ZOOM_CREDENTIALS_INVALID


# --- the simulator's REST side as Zoom documents it (docs/zoom.md, Server-to-Server OAuth to Rate limits) ------------------------


def test_every_api_response_carries_a_tracking_id_and_rate_limit_headers(
    zoomsim: ZoomSim, zoom_account: dict[str, Any]
) -> None:
    token = account_token(zoomsim.url, zoom_account)
    response = httpx.get(
        f"{zoomsim.url}/v2/users/{zoom_account['user']['id']}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    assert response.headers["x-zm-trackingid"].startswith("v=2.0;")
    assert response.headers["X-RateLimit-Category"] == "Light"
    assert response.headers["X-RateLimit-Type"] == "QPS"
    assert int(response.headers["X-RateLimit-Remaining"]) < int(
        response.headers["X-RateLimit-Limit"]
    )


@pytest.mark.parametrize(
    ("fmt", "check"),
    [
        ("seconds", lambda v: v.isdigit() and int(v) >= 1),  # integer seconds, never "0.897"
        ("http-date", lambda v: email.utils.parsedate_to_datetime(v).tzinfo is not None),
        ("none", lambda v: v is None),
    ],
)
def test_retry_after_is_an_integer_or_a_date_as_http_allows(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin, fmt: str, check: Any
) -> None:
    sim.set_faults(retry_after_format=fmt, rate_limit_headers="always")
    token = account_token(zoomsim.url, zoom_account)
    url = f"{zoomsim.url}/v2/users/{zoom_account['user']['id']}"
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as http:
        limited = next(
            r for r in (http.get(url) for _ in range(100)) if r.status_code == 429
        )  # Pro: 30 requests a second in the Light category
    assert limited.json()["code"] == 429
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert check(limited.headers.get("Retry-After"))


def test_a_user_without_type_is_refused_with_zoom_validation_errors(
    zoomsim: ZoomSim, zoom_account: dict[str, Any]
) -> None:
    token = account_token(zoomsim.url, zoom_account)
    response = httpx.post(
        f"{zoomsim.url}/v2/users",
        headers={"Authorization": f"Bearer {token}"},
        json={"action": "autoCreate", "user_info": {"email": "x@bots.example.com"}},
    )
    assert response.status_code == 400
    body = response.json()
    assert (body["code"], body["message"]) == (300, "Validation Failed.")
    assert body["errors"] == [{"field": "user_info.type", "message": "must not be null"}]


def test_my_zak_needs_a_user_level_token_with_its_scope(
    zoomsim: ZoomSim, zoom_account: dict[str, Any], sim: SimAdmin
) -> None:
    url = f"{zoomsim.url}/v2/users/me/zak"
    user = zoom_account["user"]["id"]
    own = sim.authorize_user(user, scopes="user:read:zak")
    response = httpx.get(url, headers={"Authorization": f"Bearer {own}"})
    assert response.status_code == 200 and response.json()["token"]
    obf_only = sim.authorize_user(user)
    assert httpx.get(url, headers={"Authorization": f"Bearer {obf_only}"}).json()["code"] == 4711
    account = account_token(zoomsim.url, zoom_account)
    assert httpx.get(url, headers={"Authorization": f"Bearer {account}"}).status_code == 401
