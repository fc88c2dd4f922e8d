"""Pure pieces of the Zoom layer: the SDK signature, error classification, the reason table."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from pydantic import SecretStr

from meetingbot_contract.reasons import (
    SDK_ERROR_REASONS,
    TRANSIENT,
    Reason,
    is_transient,
    reason_for_sdk_error,
)
from meetingbot_operator.zoom import SdkCredentials, ZoomError, sdk_signature
from meetingbot_operator.zoom.client import _classify, _retry_after
from meetingbot_operator.zoom.credentials import ApiCredentials
from meetingbot_operator.zoom.ratelimit import OPEN_AFTER, PROBE_WAIT, OutageBreaker, OutageOpen

SDK = SdkCredentials(sdk_key="key123", sdk_secret=SecretStr("a-secret-long-enough-for-hs256-keys"))


def test_signature_claims() -> None:
    token = sdk_signature(SDK, "12345678901", now=1_800_000_000).get_secret_value()
    claims = jwt.decode(
        token,
        SDK.sdk_secret.get_secret_value(),
        algorithms=["HS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["appKey"] == claims["sdkKey"] == "key123"
    assert claims["mn"] == "12345678901"
    assert claims["role"] == 0
    assert claims["exp"] - claims["iat"] == 7200
    assert claims["tokenExp"] == claims["exp"]
    assert claims["iat"] < 1_800_000_000  # backdated for clock skew


@pytest.mark.parametrize("lifetime", [1799, 48 * 3600 + 1])
def test_signature_lifetime_bounds(lifetime: int) -> None:
    with pytest.raises(ValueError, match="lifetime"):
        sdk_signature(SDK, "123", lifetime_seconds=lifetime)


def test_signature_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="role"):
        sdk_signature(SDK, "123", role=2)
    with pytest.raises(ValueError, match="digits"):
        sdk_signature(SDK, "123-456")


def test_secrets_do_not_show_in_reprs() -> None:
    credentials = ApiCredentials(
        account_id="acc", client_id="cid", client_secret=SecretStr("TOPSECRET")
    )
    assert "TOPSECRET" not in repr(credentials) + str(credentials)
    assert "a-secret" not in repr(SDK)
    assert "eyJ" not in repr(sdk_signature(SDK, "123"))


def test_every_reason_is_classified() -> None:
    assert set(TRANSIENT) == set(Reason)
    assert is_transient("SomethingNewFromABot")  # the open set: unknown means retry, bounded
    assert not is_transient("WrongPasscode")
    assert is_transient("ZoomRateLimited")


def test_sdk_error_codes() -> None:
    assert reason_for_sdk_error(3004) is Reason.WRONG_PASSCODE
    assert reason_for_sdk_error(3634) is Reason.BLOCKED_BY_ZOOM
    assert not is_transient(reason_for_sdk_error(3634))  # bot detection is never retried blindly
    assert reason_for_sdk_error(9999) is Reason.JOIN_FAILED
    assert all(isinstance(r, Reason) for r in SDK_ERROR_REASONS.values())


def response(status: int, body: dict[str, object] | None = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body or {}, headers=headers)


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (401, {"code": 124, "message": "Invalid access token."}, Reason.ZOOM_CREDENTIALS_INVALID),
        (
            400,
            {"code": 4711, "message": "Invalid access token, does not contain scopes:[x]"},
            Reason.ZOOM_SCOPE_MISSING,
        ),
        (404, {"code": 1001, "message": "User does not exist: a@b"}, Reason.ZOOM_USER_NOT_FOUND),
        (409, {"code": 1005, "message": "User already in the account"}, Reason.ZOOM_USER_EXISTS),
        (
            400,
            {"code": 1120, "message": "User is pending and cannot get a token."},
            Reason.ZOOM_USER_INACTIVE,
        ),
        (400, {"code": 300, "message": "Invalid field"}, Reason.ZOOM_REQUEST_INVALID),
        (503, {}, Reason.ZOOM_UNAVAILABLE),
        (429, {"code": 429}, Reason.ZOOM_RATE_LIMITED),
    ],
)
def test_classification(status: int, body: dict[str, object], reason: Reason) -> None:
    error = _classify(response(status, body), "GET zak")
    assert isinstance(error, ZoomError)
    assert error.reason is reason
    assert error.status == status


@pytest.mark.parametrize("status", [400, 401, 404, 500])
def test_a_remote_body_is_never_repeated(status: int) -> None:
    """Messages end up in status: an endpoint's own text (an internal service's answer, when a
    ZoomAccount points somewhere it should not) must not come back through them."""
    body = {"code": 1001, "message": "user INTERNAL-ANSWER-7f3a does not exist"}
    error = _classify(response(status, body), "GET zak")
    assert error is not None
    assert "INTERNAL-ANSWER" not in str(error) and "INTERNAL-ANSWER" not in error.message
    assert f"HTTP {status}" in error.message


def test_daily_limit_is_not_a_qps_limit() -> None:
    error = _classify(
        response(429, {"code": 429}, **{"X-RateLimit-Type": "Daily-limit"}), "POST users"
    )
    assert error is not None and error.reason is Reason.ZOOM_DAILY_LIMIT


def test_success_is_not_an_error() -> None:
    assert _classify(response(200, {"token": "x"}), "GET zak") is None


def test_retry_after_forms() -> None:
    assert _retry_after(httpx.Headers({"Retry-After": "2.5"})) == 2.5
    soon = datetime.now(UTC) + timedelta(seconds=30)
    iso = _retry_after(httpx.Headers({"Retry-After": soon.isoformat().replace("+00:00", "Z")}))
    assert iso is not None and 28 < iso <= 30
    http_date = _retry_after(
        httpx.Headers({"Retry-After": soon.strftime("%a, %d %b %Y %H:%M:%S GMT")})
    )
    assert http_date is not None and 27 < http_date <= 30
    assert _retry_after(httpx.Headers({"Retry-After": "whenever"})) is None
    assert _retry_after(httpx.Headers({})) is None
    past = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
    assert _retry_after(httpx.Headers({"Retry-After": past})) == 0.0


async def test_a_refusal_by_the_outage_breaker_says_when_to_come_back() -> None:
    """Refused callers wait for the pause's end (or the probe's answer), not their own
    backoff: on their own they spent their attempts on refusals while Zoom answered 70 %."""
    breaker = OutageBreaker(base=4.0)
    for _ in range(OPEN_AFTER):
        breaker.fail("HTTP 502")
    with pytest.raises(OutageOpen) as paused:
        await breaker.call(_never_sent, lambda _: None)
    assert 3.0 < paused.value.wait <= 4.8

    breaker = OutageBreaker(base=0.01)
    for _ in range(OPEN_AFTER):
        breaker.fail("HTTP 502")
    await asyncio.sleep(0.05)  # the pause (at most 12 ms) is over: the next caller probes
    probing = asyncio.Event()
    answer = asyncio.Event()

    async def probe() -> str:
        probing.set()
        await answer.wait()
        return "ok"

    probe_call = asyncio.create_task(breaker.call(probe, lambda _: None))
    await probing.wait()
    with pytest.raises(OutageOpen) as behind_probe:
        await breaker.call(_never_sent, lambda _: None)
    assert behind_probe.value.wait == PROBE_WAIT
    answer.set()
    assert await probe_call == "ok"
    assert await breaker.call(lambda: _sent("next"), lambda _: None) == "next"


async def _never_sent() -> str:
    raise AssertionError("sent while the breaker was open")


async def _sent(value: str) -> str:
    return value
