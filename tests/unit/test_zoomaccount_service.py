"""The ZoomAccount service without a cluster: verification into the pool, provisioning within
its limits across restarts, and Unavailable users checked again (against fakes of the
Kubernetes verbs and the Zoom client)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from meetingbot_contract.reasons import Reason
from meetingbot_operator.identities.service import Identities
from meetingbot_operator.kube.secrets import USE_LABEL, SecretView
from meetingbot_operator.settings import Settings
from meetingbot_operator.zoom import ZoomError
from meetingbot_operator.zoomaccount.service import AccountService
from tests.support.fakes import FakeKube, FakeZoom

NAMESPACE = "team-a"
TEMPLATE = "bot-{n}@bots.example.com"


def _account(provisioning: dict[str, Any] | None = None) -> dict[str, Any]:
    pool = {"provisioning": provisioning} if provisioning else {}
    return {
        "metadata": {"namespace": NAMESPACE, "name": "main", "uid": "u", "generation": 1},
        "spec": {
            "sdkCredentialsSecretRef": {"name": "sdk"},
            "apiCredentialsSecretRef": {"name": "api"},
            "users": ["listed@bots.example.com"],
            "pool": pool,
        },
    }


def _kube() -> FakeKube:
    kube = FakeKube()
    labels = {USE_LABEL: "zoom-credentials"}
    kube.secrets[(NAMESPACE, "sdk")] = SecretView(labels, {"sdkKey": "k", "sdkSecret": "s"})
    kube.secrets[(NAMESPACE, "api")] = SecretView(
        labels, {"accountId": "a", "clientId": "c", "clientSecret": "s"}
    )
    return kube


async def _service(
    kube: FakeKube, zoom: FakeZoom, monkeypatch: pytest.MonkeyPatch, body: dict[str, Any]
) -> tuple[AccountService, Identities, list[tuple[str, str]]]:
    """A fresh process's service (a restart is a new one), its Zoom client the fake."""
    monkeypatch.setattr(
        "meetingbot_operator.zoomaccount.credentials.ZoomClient", lambda *a, **k: zoom
    )
    changes: list[tuple[str, str]] = []

    async def changed(namespace: str, name: str) -> None:
        changes.append((namespace, name))

    identities = Identities()
    accounts = AccountService(kube, Settings(), identities, on_change=changed)  # type: ignore[arg-type]
    await accounts.observe("ADDED", body)
    return accounts, identities, changes


async def _provision_until_full(accounts: AccountService) -> None:
    """Bots keep asking for users, as passes that find none do."""
    for _ in range(10):
        accounts.want_more_users(NAMESPACE, "main")
        task = accounts.entries[(NAMESPACE, "main")].provisioning
        if task is None:
            return
        await task


async def test_a_verified_account_is_ready_with_its_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    kube, zoom = _kube(), FakeZoom()
    accounts, _, changes = await _service(kube, zoom, monkeypatch, _account())
    state = accounts.state(NAMESPACE, "main")
    assert state is not None and state.ready and state.users == ("listed@bots.example.com",)
    assert not state.can_provision
    assert accounts.ready(NAMESPACE, "main") is not None
    assert changes == [(NAMESPACE, "main")]
    written = kube.statuses[("zoomaccounts", NAMESPACE, "main")]
    assert written["activeUsers"] == 1 and written["conditions"][0]["status"] == "True"


async def test_provisioning_stops_at_max_users_even_across_restarts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The count of created users is Zoom's (the template's addresses), never memory's: a new
    process finds the users the last one made and creates none beyond maxUsers."""
    kube, zoom = _kube(), FakeZoom()
    provisioning = {"maxUsers": 2, "emailTemplate": TEMPLATE, "action": "autoCreate"}
    accounts, identities, _ = await _service(kube, zoom, monkeypatch, _account(provisioning))
    accounts.want_more_users(NAMESPACE, "main")
    task = accounts.entries[(NAMESPACE, "main")].provisioning
    assert task is not None
    await task
    assert zoom.users == {"bot-1@bots.example.com": "active"}
    state = accounts.state(NAMESPACE, "main")
    assert state is not None and state.can_provision

    restarted, identities, _ = await _service(kube, zoom, monkeypatch, _account(provisioning))
    assert identities.pool((NAMESPACE, "main")).users == (
        "listed@bots.example.com",
        "bot-1@bots.example.com",
    )
    await _provision_until_full(restarted)
    assert sorted(zoom.users) == ["bot-1@bots.example.com", "bot-2@bots.example.com"]
    assert zoom.calls["create_user"] == 2
    state = restarted.state(NAMESPACE, "main")
    assert state is not None and not state.can_provision
    before = restarted.entries[(NAMESPACE, "main")].provisioning
    restarted.want_more_users(NAMESPACE, "main")  # full: nothing is asked of Zoom
    assert restarted.entries[(NAMESPACE, "main")].provisioning is before
    assert zoom.calls["create_user"] == 2 and zoom.calls["list_users"] > 0


async def test_a_user_zoom_already_has_is_adopted(monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator killed after POST /users but before it counted the user: the address is
    fixed, so the next run's creation answers 1005 and the user is taken as created."""
    kube, zoom = _kube(), FakeZoom()
    provisioning = {"maxUsers": 1, "emailTemplate": TEMPLATE, "action": "autoCreate"}
    accounts, identities, _ = await _service(kube, zoom, monkeypatch, _account(provisioning))
    zoom.users["bot-1@bots.example.com"] = "active"  # created, but not yet listed by Zoom
    real_list = zoom.list_users

    async def not_yet_listed(status: str = "active") -> list[Any]:
        return [u for u in await real_list(status) if u.email != "bot-1@bots.example.com"]

    zoom.list_users = not_yet_listed  # type: ignore[method-assign]
    await _provision_until_full(accounts)
    assert zoom.calls["create_user"] == 1  # answered 1005
    assert "bot-1@bots.example.com" in identities.pool((NAMESPACE, "main")).users
    assert kube.statuses[("zoomaccounts", NAMESPACE, "main")].get("provisioningError") is None


async def test_an_invited_user_is_unavailable_until_zoom_says_active(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """action create: Zoom emails an invitation; the user waits as Unavailable (pending), is
    checked again when due, and joins the pool once active."""
    kube, zoom = _kube(), FakeZoom()
    provisioning = {"maxUsers": 1, "emailTemplate": TEMPLATE, "action": "create"}
    accounts, identities, _ = await _service(kube, zoom, monkeypatch, _account(provisioning))
    await _provision_until_full(accounts)
    pool = identities.pool((NAMESPACE, "main"))
    assert pool.unavailable["bot-1@bots.example.com"].reason == Reason.ZOOM_USER_INACTIVE
    assert "bot-1@bots.example.com" not in pool.active()
    zoom.users["bot-1@bots.example.com"] = "active"  # accepted
    pool.unavailable["bot-1@bots.example.com"].next_check = 0.0
    await accounts.recheck_due()
    assert "bot-1@bots.example.com" in pool.active()


async def test_a_failed_creation_is_said_in_the_status_and_paced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kube, zoom = _kube(), FakeZoom()
    provisioning = {"maxUsers": 3, "emailTemplate": TEMPLATE, "action": "autoCreate"}
    accounts, _, _ = await _service(kube, zoom, monkeypatch, _account(provisioning))

    async def daily_limit(*args: Any, **kwargs: Any) -> Any:
        zoom.calls["create_user"] += 1
        raise ZoomError(Reason.ZOOM_RATE_LIMITED, "HTTP 429 (daily limit)", status=429)

    zoom.create_user = daily_limit  # type: ignore[method-assign]
    monkeypatch.setattr(
        "meetingbot_operator.zoomaccount.provisioning.PROVISION_BACKOFF_SECONDS", 0.3
    )
    accounts.want_more_users(NAMESPACE, "main")
    await asyncio.sleep(0.1)
    accounts.want_more_users(NAMESPACE, "main")  # asked again while the run backs off
    task = accounts.entries[(NAMESPACE, "main")].provisioning
    assert task is not None
    await task
    assert zoom.calls["create_user"] == 1  # one run at a time
    written = kube.statuses[("zoomaccounts", NAMESPACE, "main")]
    assert written["provisioningError"] == "HTTP 429 (daily limit)"
