"""The second adversarial pass, without a cluster: references that are not names never reach
a request path, a large podTemplate stays out of the cache, a Zoom notice signed by one
tenant touches only that tenant's grants, one broken account never stops the others'
checks, and metric series leave with their objects.

The Kubernetes verbs and the Zoom client are our own seams, faked here; the request paths
are checked against a real HTTP server."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any, ClassVar

import httpx
import kopf
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from devenv.zoomsim.server import free_port
from meetingbot_api import MeetingBot, ZoomUserGrant
from meetingbot_contract.reasons import Reason
from meetingbot_operator import metrics
from meetingbot_operator.ha.lease import Holder
from meetingbot_operator.ha.routing import Router, signed_endpoints
from meetingbot_operator.ha.shards import ShardSet
from meetingbot_operator.ha.standby import Standby
from meetingbot_operator.identities.pool import UserView
from meetingbot_operator.identities.service import Identities
from meetingbot_operator.kube.client import (
    THROTTLED_RETRIES,
    ApiError,
    InvalidName,
    KubeClient,
    core_path,
    custom_path,
)
from meetingbot_operator.kube.secrets import USE_LABEL, SecretView
from meetingbot_operator.kube.verbs import Kube
from meetingbot_operator.meetingbot.cache import POD_TEMPLATE_ELIDED, POD_TEMPLATE_KEPT_BYTES, slim
from meetingbot_operator.servers import Servers
from meetingbot_operator.settings import Settings
from meetingbot_operator.zoomaccount.service import AccountService
from meetingbot_operator.zoomusergrant.links import GrantLinks, StateRefused
from meetingbot_operator.zoomusergrant.service import GrantService
from meetingbot_operator.zoomusergrant.state import (
    REFRESH_TOKEN,
    GrantEntry,
    GrantProblem,
    secret_name,
)
from tests.support.fakes import FakeKube

# Each would reach another object if it became part of a path; and encoded forms of them.
NOT_NAMES = [
    "x/../other",
    "../../victims/secrets/zoom",
    "..",
    ".",
    "a%2Fb",
    "%2e%2e",
    "a/b",
    "A",
    "a b",
    "",
    "-a",
    "a" * 254,
]


# --- every reference is a name ------------------------------------------------------------


@pytest.mark.parametrize("value", NOT_NAMES)
def test_a_value_that_is_not_a_name_never_becomes_part_of_a_path(value: str) -> None:
    builds: list[Callable[[], str]] = [
        lambda: core_path("secrets", "team-a", value),
        lambda: core_path("secrets", value),
        lambda: custom_path("meetingbots", value),
        lambda: custom_path("meetingbots", "team-a", value),
    ]
    for build in builds:
        with pytest.raises(InvalidName) as refused:
            build()
        assert "is not a Kubernetes object name" in str(refused.value)


def test_names_pass_as_they_are() -> None:
    assert core_path("secrets", "team-a", "app.v1") == "/api/v1/namespaces/team-a/secrets/app.v1"
    assert custom_path("meetingbots", "team-a") == (
        "/apis/meetingbot.dev/v1alpha1/namespaces/team-a/meetingbots"
    )


async def test_the_client_sends_nothing_for_a_reference_that_is_not_a_name() -> None:
    """Against a real HTTP server: a tricked name sends no request at all; a name reaches
    exactly its own path."""
    seen: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.json_response({"metadata": {}, "data": {}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    async with TestServer(app) as server:
        kube = Kube(KubeClient(kopf.ConnectionInfo(server=str(server.make_url("")))))
        try:
            for value in NOT_NAMES:
                with pytest.raises(InvalidName):
                    await kube.read_secret("team-a", value)
            assert seen == []
            await kube.read_secret("team-a", "app")
            assert seen == ["/api/v1/namespaces/team-a/secrets/app"]
        finally:
            await kube.close()


async def test_the_client_waits_out_429s_as_the_api_server_asks_then_gives_up() -> None:
    """Priority and fairness answers 429 with Retry-After: the request is sent again after the
    wait, a bounded number of times; a server that keeps refusing gets an ApiError."""
    answers: list[int] = []

    async def throttling(request: web.Request) -> web.Response:
        if request.match_info["tail"] == "always" or len(answers) < 2:
            answers.append(429)
            return web.json_response({}, status=429, headers={"Retry-After": "0"})
        answers.append(200)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", throttling)
    async with TestServer(app) as server:
        api = KubeClient(kopf.ConnectionInfo(server=str(server.make_url(""))))
        try:
            assert await api.request("POST", "/once", body={"a": 1}) == {"ok": True}
            assert answers == [429, 429, 200]
            answers.clear()
            with pytest.raises(ApiError) as refused:
                await api.request("GET", "/always")
            assert refused.value.status == 429
            assert len(answers) == 1 + THROTTLED_RETRIES
        finally:
            await api.close()


# --- memory: the cache keeps what decisions read ------------------------------------------


def _bot_body(template: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "meetingbot.dev/v1alpha1",
        "kind": "MeetingBot",
        "metadata": {"name": "b", "namespace": "n", "uid": "u", "resourceVersion": "1"},
        "spec": {
            "accountRef": {"name": "main"},
            "meeting": {"number": "12345678901"},
            "displayName": "Notetaker",
            "podTemplate": template,
        },
    }


def test_a_large_pod_template_is_left_out_of_the_cache() -> None:
    env = [{"name": f"V{i}", "value": "v" * 500} for i in range(64)]
    template = {"image": "registry.example.com/bot:1", "env": env}
    kept = slim(_bot_body(template))
    assert kept[POD_TEMPLATE_ELIDED] is True
    assert len(json.dumps(kept)) < 2 * POD_TEMPLATE_KEPT_BYTES
    bot = MeetingBot.model_validate(kept)  # decisions still read the bot as before
    assert bot.spec.pod_template.image == "registry.example.com/bot:1"
    assert bot.spec.pod_template.env is None


def test_a_small_pod_template_is_kept_whole() -> None:
    template = {"image": "registry.example.com/bot:1", "env": [{"name": "A", "value": "b"}]}
    kept = slim(_bot_body(template))
    assert POD_TEMPLATE_ELIDED not in kept
    assert kept["spec"]["podTemplate"] == template


# --- Zoom's deauthorization notice: bound to the app that verified it ---------------------


def _grant(namespace: str, name: str, app_secret: str, user_id: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": namespace, "name": name, "uid": f"uid-{namespace}-{name}"},
        "spec": {"accountRef": {"name": "main"}, "appCredentialsSecretRef": {"name": app_secret}},
        "status": {
            "userId": user_id,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Authorized",
                    "message": "authorized",
                    "lastTransitionTime": "2026-12-01T00:00:00Z",
                }
            ],
        },
    }


def _app_secret(client_id: str, token: str) -> SecretView:
    return SecretView(
        labels={USE_LABEL: "zoom-credentials"},
        data={"clientId": client_id, "clientSecret": "s", "webhookSecretToken": token},
    )


def _signed(token: str, event: dict[str, Any]) -> tuple[bytes, str, str]:
    body = json.dumps(event).encode()
    stamp = str(int(time.time()))
    digest = hmac.new(token.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256)
    return body, stamp, f"v0={digest.hexdigest()}"


async def _grants(kube: FakeKube) -> GrantService:
    async def changed(namespace: str, name: str) -> None:
        return None

    settings = Settings(oauth_public_url="https://bots.example.com")
    accounts = AccountService(kube, settings, Identities(), on_change=changed)  # type: ignore[arg-type]
    links = GrantLinks(b"a key")
    return GrantService(kube, accounts, settings, links, on_change=changed)  # type: ignore[arg-type]


async def test_a_notice_signed_with_one_tenants_token_revokes_only_that_tenants_grants() -> None:
    """The victim (team-a) and a tenant (team-b) whose app Secret claims the victim's client
    id, with a token of its own. A notice signed with the tenant's token for the victim's
    user and client id verifies, but only against the tenant's own grant."""
    kube = FakeKube()
    kube.secrets[("team-a", "app")] = _app_secret("victim-client", "victims-token")
    kube.secrets[("team-b", "mine")] = _app_secret("victim-client", "tenants-token")
    for namespace in ("team-a", "team-b"):
        kube.owned[(namespace, secret_name("g"))] = {REFRESH_TOKEN: f"rt-{namespace}"}
    grants = await _grants(kube)
    await grants.observe("ADDED", _grant("team-a", "g", "app", "user-1"))
    await grants.observe("ADDED", _grant("team-b", "g", "mine", "user-1"))
    event = {
        "event": "app_deauthorized",
        "payload": {"user_id": "user-1", "client_id": "victim-client"},
    }
    assert await grants.notice(*_signed("tenants-token", event)) == {}
    assert kube.owned[("team-a", secret_name("g"))] == {REFRESH_TOKEN: "rt-team-a"}
    assert grants.state("team-a", "g").ready  # type: ignore[union-attr]
    assert REFRESH_TOKEN not in kube.owned[("team-b", secret_name("g"))]
    assert not grants.state("team-b", "g").ready  # type: ignore[union-attr]
    # Zoom's own notice, signed with the victim's app's token, revokes the victim's grant.
    await grants.notice(*_signed("victims-token", event))
    assert REFRESH_TOKEN not in kube.owned[("team-a", secret_name("g"))]
    assert grants.state("team-a", "g").reason == "GrantRevoked"  # type: ignore[union-attr]


async def test_a_grant_whose_app_secret_cannot_be_read_does_not_break_the_notice() -> None:
    kube = FakeKube()
    kube.secrets[("team-a", "app")] = _app_secret("client", "token")
    kube.owned[("team-a", secret_name("g"))] = {REFRESH_TOKEN: "rt"}
    kube.refused.add(("team-b", "app"))
    grants = await _grants(kube)
    await grants.observe("ADDED", _grant("team-b", "g", "app", "user-1"))
    await grants.observe("ADDED", _grant("team-a", "g", "app", "user-1"))
    event = {"event": "app_deauthorized", "payload": {"user_id": "user-1", "client_id": "client"}}
    await grants.notice(*_signed("token", event))
    assert grants.state("team-a", "g").reason == "GrantRevoked"  # type: ignore[union-attr]


# --- isolation: one account's failure stays with it ---------------------------------------


def _account(namespace: str, name: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": namespace, "name": name, "uid": "u", "generation": 1},
        "spec": {
            "sdkCredentialsSecretRef": {"name": "sdk"},
            "apiCredentialsSecretRef": {"name": "api"},
            "users": ["bot@example.com"],
        },
    }


class FakeZoom:
    """The Zoom client's seam: a token request that succeeds."""

    verified: ClassVar[list[str]] = []

    def __init__(self, credentials: Any, endpoints: Any, **_: Any) -> None:
        self.account = credentials.account_id
        self.endpoints = endpoints

    async def verify(self) -> frozenset[str]:
        FakeZoom.verified.append(self.account)
        return frozenset({"user:read:token:admin"})

    async def aclose(self) -> None:
        return None


async def _accounts(
    kube: FakeKube, monkeypatch: pytest.MonkeyPatch, namespaces: tuple[str, ...]
) -> AccountService:
    """An account "main" in each namespace, with credentials Secrets (read unless refused),
    observed by one AccountService whose Zoom client is FakeZoom."""
    monkeypatch.setattr("meetingbot_operator.zoomaccount.credentials.ZoomClient", FakeZoom)
    FakeZoom.verified = []
    labels = {USE_LABEL: "zoom-credentials"}
    for namespace in namespaces:
        kube.secrets[(namespace, "sdk")] = SecretView(labels, {"sdkKey": "k", "sdkSecret": "s"})
        kube.secrets[(namespace, "api")] = SecretView(
            labels, {"accountId": namespace, "clientId": "c", "clientSecret": "s"}
        )

    async def changed(namespace: str, name: str) -> None:
        return None

    accounts = AccountService(kube, Settings(), Identities(), on_change=changed)  # type: ignore[arg-type]
    for namespace in namespaces:
        await accounts.observe("ADDED", _account(namespace, "main"))
    return accounts


async def test_an_account_whose_secret_read_is_refused_gets_its_own_condition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One tenant's credentials Secret cannot be read (403): that account says so in its
    own status, and every other account is still verified, at each periodic check."""
    kube = FakeKube()
    kube.refused |= {("team-b", "sdk"), ("team-b", "api")}
    accounts = await _accounts(kube, monkeypatch, ("team-a", "team-b", "team-c"))
    broken = accounts.state("team-b", "main")
    assert broken is not None and broken.reason == Reason.SECRET_UNREADABLE
    assert "could not read Secret 'sdk'" in broken.message
    assert FakeZoom.verified == ["team-a", "team-c"]
    written = kube.statuses[("zoomaccounts", "team-b", "main")]["conditions"][0]
    assert (written["status"], written["reason"]) == ("False", "SecretUnreadable")
    # The periodic check: every account due, the broken one first in line.
    for entry in accounts.entries.values():
        entry.next_check = 0.0
    await accounts.recheck_due()
    assert FakeZoom.verified == ["team-a", "team-c", "team-a", "team-c"]


async def test_a_periodic_check_that_raises_stays_with_its_account(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever one account's check raises (here its status write), the others' run."""
    kube = FakeKube()
    accounts = await _accounts(kube, monkeypatch, ("team-a", "team-b"))
    written = kube.patch_status

    async def refuse_team_a(plural: str, namespace: str, *args: Any) -> dict[str, Any] | None:
        if namespace == "team-a":
            raise ApiError(500, "Internal Server Error")
        return await written(plural, namespace, *args)

    kube.patch_status = refuse_team_a  # type: ignore[method-assign,assignment]
    for entry in accounts.entries.values():
        entry.next_check = 0.0
    await accounts.recheck_due()
    assert FakeZoom.verified[-2:] == ["team-a", "team-b"]


# --- metric series leave with their objects -----------------------------------------------


def _series(account: str) -> set[str]:
    return {
        sample.labels["user"]
        for metric in metrics.REGISTRY.collect()
        if metric.name == "meetingbot_service_user_bots"
        for sample in metric.samples
        if sample.labels.get("account") == account
    }


def test_service_user_series_are_removed_with_their_users_and_accounts() -> None:
    def view(user: str) -> UserView:
        return UserView(user=user, state="Active", active_bots=1, reason=None, message=None)

    metrics.observe_pool("team-a", "series", [view(f"u{i}@x.com") for i in range(100)])
    assert len(_series("series")) == 100
    metrics.observe_pool("team-a", "series", [view("u1@x.com")])
    assert _series("series") == {"u1@x.com"}
    metrics.forget_pool("team-a", "series")
    assert _series("series") == set()


# --- the standby forwards only to its release's leader ------------------------------------


@pytest.mark.parametrize(
    ("signed_with", "forwarded"),
    [("the-release-key", True), (None, False), ("another-key", False)],
    ids=["signed", "unsigned", "signed-by-another"],
)
async def test_a_standby_forwards_only_to_endpoints_its_release_signed(
    signed_with: str | None, forwarded: bool
) -> None:
    """A bot's report (its token in the Authorization header) reaches the address in the
    Lease only when a replica holding the release's key published it."""
    received: list[str] = []

    async def leader(request: web.Request) -> web.Response:
        received.append(request.headers.get("Authorization", ""))
        return web.json_response({"result": "accepted"}, status=202)

    target = web.Application()
    target.router.add_post("/{tail:.*}", leader)
    async with TestServer(target) as leader_server:
        base = str(leader_server.make_url("")).rstrip("/")
        published = {"report": base}
        if signed_with is not None:
            published = signed_endpoints(SecretStr(signed_with), published)
        # The Lease as a standby last read it: held by "leader", with what it published.
        router = Router(
            ShardSet(1, frozenset()),
            lambda _: Holder("leader", published),
            "standby",
            SecretStr("the-release-key"),
        )
        standby = Standby(Settings(), router)
        front = web.Application()
        front.router.add_post("/{tail:.*}", standby._report)
        try:
            async with TestServer(front) as front_server, httpx.AsyncClient() as http:
                answer = await http.post(
                    str(front_server.make_url("/v1/namespaces/n/meetingbots/b/report")),
                    json={"attempt": 1, "state": "InMeeting"},
                    headers={"Authorization": "Bearer the-bots-token"},
                )
        finally:
            await standby.stop()
            await router.close()
    assert answer.status_code == (202 if forwarded else 503)
    assert received == (["Bearer the-bots-token"] if forwarded else [])


# --- idle connections are closed ---------------------------------------------------------


@pytest.mark.parametrize("sent", [b"", b"POST /v1/namespaces/n/meetingbots/b/report HTTP/1.1\r\n"])
async def test_a_connection_that_sends_nothing_more_is_closed(sent: bytes) -> None:
    servers = Servers(idle_seconds=0.5)
    app = web.Application()
    port = free_port()
    await servers.serve(app, "127.0.0.1", port)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(sent)
        await writer.drain()
        # The server closes it (EOF); a server that never did would fail this wait.
        assert await asyncio.wait_for(reader.read(), timeout=30) == b""
        writer.close()
    finally:
        await servers.stop()


async def test_a_stop_does_not_wait_for_a_request_whose_body_never_comes() -> None:
    """A shard's move stops the servers; a request still reading its body (a bot gone
    mid-upload) is cut after the shutdown time (servers.SHUTDOWN_SECONDS), not aiohttp's 60 s."""
    servers = Servers(shutdown_seconds=0.5)
    app = web.Application()

    async def read_all(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app.router.add_post("/upload", read_all)
    port = free_port()
    await servers.serve(app, "127.0.0.1", port)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nsome")
    await writer.drain()
    await asyncio.sleep(0.2)  # the handler is reading the body
    await asyncio.wait_for(servers.stop(), timeout=30)
    await asyncio.wait_for(reader.read(), timeout=10)  # and its connection closed
    writer.close()


async def test_a_stop_closes_every_listener_while_the_first_still_waits_for_its_requests() -> None:
    """The servers stop together: the report server's wait for a request in flight does not
    keep the metrics and OAuth ports open after it (a shard's move waits for the slowest)."""
    servers = Servers(shutdown_seconds=3)
    hung = web.Application()
    reading = asyncio.Event()

    async def read_all(request: web.Request) -> web.Response:
        reading.set()
        return web.Response(body=await request.read())

    hung.router.add_post("/upload", read_all)
    ports = []
    for app in (hung, web.Application()):
        ports.append(free_port())
        await servers.serve(app, "127.0.0.1", ports[-1])
    _, writer = await asyncio.open_connection("127.0.0.1", ports[0])
    writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nsome")
    await writer.drain()
    await asyncio.wait_for(reading.wait(), timeout=10)
    # The first server now waits its 3 s for that request (whose body cannot come: aiohttp
    # reads nothing more once a stop began, aio-libs/aiohttp#2298).
    stopping = asyncio.create_task(servers.stop())
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            try:
                _, probe_writer = await asyncio.open_connection("127.0.0.1", ports[1])
            except OSError:
                break
            probe_writer.close()
        assert not stopping.done(), "the second server kept listening while the first waited"
    finally:
        await asyncio.wait_for(stopping, timeout=30)
        writer.close()


# --- grants: links strangers cannot use, consents nobody can cancel, no re-binding --------


def test_each_visit_gets_its_own_state_and_none_cancels_another() -> None:
    links = GrantLinks(b"the release key")
    now = time.time()
    first, _ = links.new_state("team-a", "g", "uid-1", now)
    second, _ = links.new_state("team-a", "g", "uid-1", now)
    assert first != second
    assert links.redeem(first, "uid-1", now + 5).verifier  # the first visit still completes
    assert links.redeem(second, "uid-1", now + 5).verifier
    for state, uid, at in (
        (first, "uid-2", now),  # the same name, another grant (deleted and re-created)
        (first.replace("team-a/g", "team-b/g"), "uid-1", now),
        (first[:-1] + ("0" if first[-1] != "0" else "1"), "uid-1", now),  # tampered
        (first, "uid-1", now + 601),  # too late
        ("team-a/g/", "uid-1", now),
    ):
        with pytest.raises(StateRefused):
            links.redeem(state, uid, at)
    other = GrantLinks(b"another release")
    with pytest.raises(StateRefused):
        other.redeem(first, "uid-1", now)


async def test_unknown_grants_and_wrong_links_answer_alike() -> None:
    kube = FakeKube()
    grants = await _grants(kube)
    body = _grant("team-a", "g", "app", "")
    body["status"] = {}
    await grants.observe("ADDED", body)
    answers = []
    for namespace, name, token in (
        ("team-a", "g", "wrong"),
        ("team-a", "nope", "wrong"),
        ("team-a", "g", ""),
    ):
        with pytest.raises(GrantProblem) as refused:
            await grants.start(namespace, name, token)
        answers.append((refused.value.status, refused.value.message))
    assert len(set(answers)) == 1 and answers[0][0] == 404
    url = grants.store.authorization_url("team-a", "g", "uid-team-a-g")
    assert "?t=" in url
    assert grants.store.links.link_ok("uid-team-a-g", url.rsplit("=", 1)[1])


async def test_a_ready_grant_is_authorized_again_only_when_an_editor_asks() -> None:
    kube = FakeKube()
    kube.owned[("team-a", secret_name("g"))] = {REFRESH_TOKEN: "rt"}
    grants = await _grants(kube)
    body = _grant("team-a", "g", "app", "user-1")
    await grants.observe("ADDED", body)
    token = grants.store.links.link_token("uid-team-a-g")
    with pytest.raises(GrantProblem) as refused:
        await grants.start("team-a", "g", token)
    assert refused.value.status == 409 and "meetingbot.dev/reauthorize" in refused.value.message
    # An editor sets the annotation: the link leads on (here to the account check: no
    # ZoomAccount in this test) ...
    body["metadata"]["annotations"] = {"meetingbot.dev/reauthorize": "2026-12-03"}
    body["metadata"]["resourceVersion"] = "2"
    await grants.observe("MODIFIED", body)
    with pytest.raises(GrantProblem) as onward:
        await grants.start("team-a", "g", token)
    assert onward.value.reason == "GrantNotUsable"
    # ... and once that request was used, the same value allows nothing more.
    body["status"]["reauthorizedFor"] = "2026-12-03"
    used = await _grants(kube)
    await used.observe("ADDED", body)
    with pytest.raises(GrantProblem) as again:
        await used.start("team-a", "g", token)
    assert again.value.status == 409


def test_a_grant_can_name_the_bots_that_may_use_it() -> None:
    kube = FakeKube()
    grants = GrantService(kube, None, Settings(), GrantLinks(b"k"), on_change=None)  # type: ignore[arg-type]
    body = _grant("team-a", "g", "app", "user-1")
    body["spec"]["botSelector"] = {"matchLabels": {"team": "sales"}}
    grants.store.entries[("team-a", "g")] = GrantEntry(body, ZoomUserGrant.model_validate(body))
    assert grants.allows("team-a", "g", {"team": "sales", "x": "y"})
    assert not grants.allows("team-a", "g", {"team": "support"})
    assert not grants.allows("team-a", "g", {})
    del body["spec"]["botSelector"]
    grants.store.entries[("team-a", "g")] = GrantEntry(body, ZoomUserGrant.model_validate(body))
    assert grants.allows("team-a", "g", {})  # unset: every bot in the namespace
