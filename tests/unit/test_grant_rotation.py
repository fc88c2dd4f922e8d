"""A ZoomUserGrant's refresh-token rotation, killed at each point of it, then started again
(a new GrantService on the same stored Secret), against a token endpoint that rotates as
Zoom's does: each refresh answers a new refresh token and the old one dies at once."""

from __future__ import annotations

from itertools import count
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from meetingbot_api import Cloud
from meetingbot_operator.kube.secrets import USE_LABEL, SecretView
from meetingbot_operator.settings import Settings
from meetingbot_operator.zoom import Endpoints
from meetingbot_operator.zoom.client import ZoomUser
from meetingbot_operator.zoomusergrant.links import GrantLinks
from meetingbot_operator.zoomusergrant.service import GrantService
from meetingbot_operator.zoomusergrant.state import (
    INTERRUPTED,
    REFRESH_TOKEN,
    REFRESHING,
    REVOKED,
    GrantProblem,
    secret_name,
)
from tests.support.fakes import Crash, FakeKube

NAMESPACE, GRANT = "team-a", "alice"
KEY = (NAMESPACE, secret_name(GRANT))


class TokenEndpoint:
    """Zoom's user-OAuth token endpoint, for refreshes."""

    def __init__(self, valid: str) -> None:
        self.valid = {valid}
        self.numbers = count(1)
        self.requests = 0
        self.crash_before_rotating = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.crash_before_rotating:
            raise Crash("killed while the request was being sent")
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        token = form.get("refresh_token", "")
        if token not in self.valid:
            return httpx.Response(400, json={"error": "invalid_grant", "reason": "Invalid Token!"})
        self.valid.discard(token)  # rotated: the old one stops working at once
        n = next(self.numbers)
        self.valid.add(f"refresh-{n}")
        return httpx.Response(
            200,
            json={
                "access_token": f"access-{n}",
                "refresh_token": f"refresh-{n}",
                "expires_in": 3599,
                "scope": "user:read:token",
            },
        )


class Account:
    """What a grant reads of its ZoomAccount: the client (its cloud, its HTTP, /users/me)."""

    def __init__(self, endpoint: TokenEndpoint) -> None:
        self.http = httpx.AsyncClient(transport=httpx.MockTransport(endpoint.handle))
        self.endpoints = Endpoints.for_cloud(Cloud.COMMERCIAL)

    async def get_me(self, token: Any) -> ZoomUser:
        return ZoomUser(id="alice-id", email="alice@example.com", status="active")

    def client(self, namespace: str, name: str) -> Account:
        return self


def _grant() -> dict[str, Any]:
    return {
        "metadata": {"namespace": NAMESPACE, "name": GRANT, "uid": "grant-uid", "generation": 1},
        "spec": {
            "accountRef": {"name": "main"},
            "appCredentialsSecretRef": {"name": "app"},
            "email": "alice@example.com",
        },
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Authorized",
                    "message": "authorized by alice@example.com",
                    "lastTransitionTime": "2026-12-01T00:00:00Z",
                }
            ]
        },
    }


def _kube() -> FakeKube:
    kube = FakeKube()
    kube.secrets[(NAMESPACE, "app")] = SecretView(
        {USE_LABEL: "zoom-credentials"}, {"clientId": "c", "clientSecret": "s"}
    )
    kube.owned[KEY] = {REFRESH_TOKEN: "refresh-0"}
    return kube


async def _start(kube: FakeKube, endpoint: TokenEndpoint) -> GrantService:
    """A process starting: a new service, the grant seen in the watch's first list."""

    async def changed(namespace: str, name: str) -> None:
        return None

    grants = GrantService(
        kube,  # type: ignore[arg-type]
        Account(endpoint),  # type: ignore[arg-type]
        Settings(oauth_public_url="https://bots.example.com"),
        GrantLinks(b"a key"),
        on_change=changed,
    )
    await grants.observe("ADDED", _grant())
    return grants


async def test_a_refresh_stores_the_new_token_before_using_it() -> None:
    kube, endpoint = _kube(), TokenEndpoint("refresh-0")
    grants = await _start(kube, endpoint)
    order: list[str] = []
    kube.before = order.append
    token = await grants.access_token(NAMESPACE, GRANT)
    assert token.get_secret_value() == "access-1"
    assert kube.owned[KEY] == {REFRESH_TOKEN: "refresh-1"}
    # The mark, then the new token, and only then the status that says it worked.
    writes = [verb for verb in order if verb in ("upsert_secret", "patch_status")]
    assert writes == ["upsert_secret", "upsert_secret", "patch_status"]
    assert (await grants.access_token(NAMESPACE, GRANT)).get_secret_value() == "access-1"
    assert endpoint.requests == 1  # the access token is used while it lives


async def test_killed_before_the_request_reached_zoom_the_stored_token_still_works() -> None:
    kube, endpoint = _kube(), TokenEndpoint("refresh-0")
    grants = await _start(kube, endpoint)
    endpoint.crash_before_rotating = True
    with pytest.raises(Crash):
        await grants.access_token(NAMESPACE, GRANT)
    assert kube.owned[KEY][REFRESHING]  # the mark was written first
    endpoint.crash_before_rotating = False
    restarted = await _start(kube, endpoint)
    assert (await restarted.access_token(NAMESPACE, GRANT)).get_secret_value() == "access-1"
    assert kube.owned[KEY] == {REFRESH_TOKEN: "refresh-1"}  # the mark is gone


async def test_killed_after_zoom_rotated_but_before_the_new_token_was_stored() -> None:
    """The one refresh token Zoom accepts now was lost with the process: the grant says so
    (RefreshInterrupted, not GrantRevoked) and the user must authorize again."""
    kube, endpoint = _kube(), TokenEndpoint("refresh-0")
    grants = await _start(kube, endpoint)
    writes = 0

    def die_at_the_second_write(verb: str) -> None:
        nonlocal writes
        if verb == "upsert_secret":
            writes += 1
            if writes == 2:
                raise Crash("killed before the new refresh token was stored")

    kube.before = die_at_the_second_write
    with pytest.raises(Crash):
        await grants.access_token(NAMESPACE, GRANT)
    assert endpoint.valid == {"refresh-1"}  # Zoom rotated
    kube.before = lambda verb: None
    restarted = await _start(kube, endpoint)
    with pytest.raises(GrantProblem) as problem:
        await restarted.access_token(NAMESPACE, GRANT)
    assert problem.value.reason == INTERRUPTED
    condition = kube.statuses[("zoomusergrants", NAMESPACE, GRANT)]["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", INTERRUPTED)
    assert "authorize again" in condition["message"]


async def test_killed_after_the_new_token_was_stored_nothing_is_lost() -> None:
    kube, endpoint = _kube(), TokenEndpoint("refresh-0")
    grants = await _start(kube, endpoint)

    def die_at_the_status(verb: str) -> None:
        if verb == "patch_status":
            raise Crash("killed before the status was written")

    kube.before = die_at_the_status
    with pytest.raises(Crash):
        await grants.access_token(NAMESPACE, GRANT)
    assert kube.owned[KEY] == {REFRESH_TOKEN: "refresh-1"}
    kube.before = lambda verb: None
    restarted = await _start(kube, endpoint)
    assert (await restarted.access_token(NAMESPACE, GRANT)).get_secret_value() == "access-2"


async def test_a_token_zoom_refuses_without_an_interrupted_refresh_is_a_revocation() -> None:
    kube, endpoint = _kube(), TokenEndpoint("some-other-token")  # the user removed the app
    grants = await _start(kube, endpoint)
    with pytest.raises(GrantProblem) as problem:
        await grants.access_token(NAMESPACE, GRANT)
    assert problem.value.reason == REVOKED
    with pytest.raises(GrantProblem):  # and it is not tried again until re-authorized
        await grants.access_token(NAMESPACE, GRANT)
    assert endpoint.requests == 1
