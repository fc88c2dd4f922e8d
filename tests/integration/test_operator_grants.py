"""ZoomUserGrants (OBF) through the operator, the real API server, the simulator and a real
browser: a person authorizes on the consent page, bots join on the user's behalf and leave
with them, the refresh token rotates (and survives or says why not across a SIGKILL), a
revoked grant makes bots wait, and auth: auto picks zak or obf from the meeting's owner."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid

import httpx
import pytest

from devenv.operator_process import OperatorProcess
from devenv.zoomsim import SimAdmin, ZoomSim
from tests.support.grants import (
    authorize_in_browser,
    create_grant,
    grant_body,
    grant_secret,
    make_grant,
    ready_of,
    wait_grant,
)
from tests.support.operator_fixtures import (
    MERGE_PATCH,
    SECRET_USE_LABEL,
    Bots,
    Kube,
    account_ready,
    wait_for,
    zoom_account,
)
from tests.support.scripted_bot import Scripted
from tests.support.specs import bot_spec


async def test_authorize_in_the_browser_then_join_on_behalf_and_leave_with_the_user(
    kube: Kube,
    namespace: str,
    bots: Bots,
    sim: SimAdmin,
    zoomsim: ZoomSim,
    operator: OperatorProcess,
    scripted: Scripted,
    handed_secrets: list[str],
) -> None:
    _, host, alice = await make_grant(kube, namespace, sim, zoomsim, operator)
    url = (await grant_body(kube, namespace))["status"]["authorizationUrl"]
    assert await authorize_in_browser(url, alice["email"]) == "Authorized"
    body = await wait_grant(kube, namespace, ready="True", reason="Authorized")
    assert (body["status"]["email"], body["status"]["userId"]) == (alice["email"], alice["id"])
    assert "user:read:token" in body["status"]["scopes"]
    secret = await grant_secret(kube, namespace)
    assert secret["refreshToken"].startswith("simrt_") and "pendingState" not in secret
    handed_secrets.append(secret["refreshToken"])  # must never show in a log or status
    number = sim.create_meeting(host["id"])["number"]
    alice_in = sim.add_participant(number, "Alice", user_id=alice["id"])
    await bots.apply("onbehalf", bot_spec(number, auth="obf", obf={"grantRef": {"name": "alice"}}))
    bot = scripted("onbehalf")
    run = asyncio.create_task(bot.run())
    status = await bots.wait_phase("onbehalf", "InMeeting", "Failed", timeout=60)
    assert status["phase"] == "InMeeting" and status["auth"] == "obf", status
    assert bot.config is not None and bot.config.zak is None and bot.config.obf_token is not None
    sim.remove_participant(number, alice_in["userId"], mode="leave")
    assert await run == "AuthorizingUserLeft"
    done = await bots.wait_phase("onbehalf", "Succeeded", "Failed")
    assert (done["phase"], done["reason"]) == ("Succeeded", "AuthorizingUserLeft")


async def test_refresh_rotates_and_a_revoked_grant_makes_bots_wait(
    kube: Kube,
    namespace: str,
    bots: Bots,
    sim: SimAdmin,
    zoomsim: ZoomSim,
    operator: OperatorProcess,
    scripted: Scripted,
) -> None:
    _, host, alice = await make_grant(kube, namespace, sim, zoomsim, operator)
    url = (await grant_body(kube, namespace))["status"]["authorizationUrl"]
    assert await authorize_in_browser(url, alice["email"]) == "Authorized"
    await wait_grant(kube, namespace, ready="True")
    first = (await grant_secret(kube, namespace))["refreshToken"]
    # Anyone with the link, once the grant is Ready: nothing to authorize, nothing changes.
    assert await authorize_in_browser(url, alice["email"]) == "Cannot authorize"
    # An editor asks for a re-authorization; the person declines it: nothing changes.
    await kube.custom.patch_namespaced_custom_object(
        "meetingbot.dev", "v1alpha1", namespace, "zoomusergrants", "alice",
        {"metadata": {"annotations": {"meetingbot.dev/reauthorize": "1"}}},
        _content_type=MERGE_PATCH,
    )  # fmt: skip

    async def link_leads_to_zoom() -> bool:  # once the operator has seen the annotation
        title = await authorize_in_browser(url, alice["email"], decision="decline")
        return title == "Not authorized"

    await wait_for(link_leads_to_zoom, 30, what="the re-authorization asked for")
    assert (await grant_secret(kube, namespace))["refreshToken"] == first
    assert ready_of(await grant_body(kube, namespace))["status"] == "True"
    # The user removes the app in Zoom: the next use of the grant finds out.
    sim.deauthorize(alice["id"])
    number = sim.create_meeting(host["id"])["number"]
    sim.add_participant(number, "Alice", user_id=alice["id"])
    # A new operator holds no access token: the bot's start refreshes, and Zoom refuses.
    operator.stop()
    operator.start()
    operator.wait_until_watching(f"t-ready-{namespace[-6:]}")
    await bots.apply("waits", bot_spec(number, auth="obf", obf={"grantRef": {"name": "alice"}}))
    body = await wait_grant(kube, namespace, ready="False", reason="GrantRevoked")
    assert "authorize again" in ready_of(body)["message"]
    waiting = await bots.wait_reason("waits", "ZoomUserGrantNotReady", timeout=60)
    assert waiting["phase"] == "Pending" and await bots.pods("waits") == []
    # Authorized again: the waiting bot starts, with a rotated refresh token.
    assert await authorize_in_browser(url, alice["email"]) == "Authorized"
    await wait_grant(kube, namespace, ready="True")
    assert (await grant_secret(kube, namespace))["refreshToken"] != first
    run = asyncio.create_task(scripted("waits").run())
    status = await bots.wait_phase("waits", "InMeeting", "Failed", timeout=60)
    assert status["phase"] == "InMeeting", status
    sim.end_meeting(number)
    await run


async def test_zooms_deauthorization_notice_revokes_the_grant_at_once(
    kube: Kube, namespace: str, sim: SimAdmin, zoomsim: ZoomSim, operator: OperatorProcess
) -> None:
    """The user removes the app in Zoom: Zoom's signed app_deauthorized notice reaches
    /oauth/deauthorize and the grant is revoked at once, its refresh token deleted. A forged
    notice is refused; the endpoint answers Zoom's URL validation."""
    app, _, alice = await make_grant(kube, namespace, sim, zoomsim, operator, webhook=True)
    url = (await grant_body(kube, namespace))["status"]["authorizationUrl"]
    assert await authorize_in_browser(url, alice["email"]) == "Authorized"
    await wait_grant(kube, namespace, ready="True")
    endpoint = f"{operator.oauth_url}/oauth/deauthorize"
    stamp = str(int(time.time()))
    forged = json.dumps(
        {"event": "app_deauthorized", "payload": {"user_id": alice["id"], "client_id": "x"}}
    )
    answer = httpx.post(
        endpoint,
        content=forged,
        headers={"x-zm-request-timestamp": stamp, "x-zm-signature": "v0=" + "0" * 64},
    )
    assert answer.status_code == 401
    assert ready_of(await grant_body(kube, namespace))["status"] == "True"
    # Zoom's URL validation, signed as Zoom signs it.
    token = app["webhook_secret_token"]
    validation = json.dumps({"event": "endpoint.url_validation", "payload": {"plainToken": "p"}})
    signed = hmac.new(token.encode(), f"v0:{stamp}:{validation}".encode(), hashlib.sha256)
    answer = httpx.post(
        endpoint,
        content=validation,
        headers={"x-zm-request-timestamp": stamp, "x-zm-signature": f"v0={signed.hexdigest()}"},
    )
    expected = hmac.new(token.encode(), b"p", hashlib.sha256).hexdigest()
    assert answer.json() == {"plainToken": "p", "encryptedToken": expected}
    assert sim.deauthorize(alice["id"])["notified"] == [200]
    body = await wait_grant(kube, namespace, ready="False", reason="GrantRevoked", timeout=10)
    assert "deauthorization notice" in ready_of(body)["message"]
    assert "refreshToken" not in await grant_secret(kube, namespace)


async def test_a_notice_signed_by_one_tenant_never_revokes_anothers_grant(
    kube: Kube, namespace: str, sim: SimAdmin, zoomsim: ZoomSim, operator: OperatorProcess
) -> None:
    """Another namespace's tenant claims the victim's client id (public: the /oauth/start
    redirect carries it) in an app Secret of their own, with a webhook token they chose, and
    signs an app_deauthorized notice for the victim's user with it. The notice verifies only
    against the tenant's own grant: the victim's grant stays Ready with its refresh token."""
    app, _, alice = await make_grant(kube, namespace, sim, zoomsim, operator, webhook=True)
    url = (await grant_body(kube, namespace))["status"]["authorizationUrl"]
    assert await authorize_in_browser(url, alice["email"]) == "Authorized"
    await wait_grant(kube, namespace, ready="True")
    other = f"t-{uuid.uuid4().hex[:10]}"
    await kube.core.create_namespace({"metadata": {"name": other}})
    try:
        await kube.core.create_namespaced_secret(
            other,
            {
                "metadata": {"name": "mine", "labels": {SECRET_USE_LABEL: "zoom-credentials"}},
                "stringData": {
                    "clientId": app["user_client_id"],  # the victim's
                    "clientSecret": "anything",
                    "webhookSecretToken": "the-attackers-own-token",
                },
            },
        )
        await create_grant(kube, other, "decoy", "mine", allowAnyUser=True)

        async def decoy_seen() -> bool:
            return bool((await grant_body(kube, other, "decoy")).get("status"))

        await wait_for(decoy_seen, 30, what="the decoy grant's status")
        notice = json.dumps(
            {
                "event": "app_deauthorized",
                "payload": {"user_id": alice["id"], "client_id": app["user_client_id"]},
            }
        )
        stamp = str(int(time.time()))
        signed = hmac.new(b"the-attackers-own-token", f"v0:{stamp}:{notice}".encode(), "sha256")

        async def notice_verified() -> bool:  # once the operator has seen the decoy grant
            answer = httpx.post(
                f"{operator.oauth_url}/oauth/deauthorize",
                content=notice,
                headers={
                    "x-zm-request-timestamp": stamp,
                    "x-zm-signature": f"v0={signed.hexdigest()}",
                },
            )
            return answer.status_code == 200

        await wait_for(notice_verified, 30, what="the forged notice verified by the decoy")
        await asyncio.sleep(2)  # a revocation would be written by now
        assert ready_of(await grant_body(kube, namespace))["status"] == "True"
        assert (await grant_secret(kube, namespace))["refreshToken"]
    finally:
        await kube.core.delete_namespace(other)


async def test_a_grant_for_one_user_refuses_anyone_else(
    kube: Kube, namespace: str, sim: SimAdmin, zoomsim: ZoomSim, operator: OperatorProcess
) -> None:
    """spec.email: someone else who opens the link is refused, and nothing is stored."""
    _, host, alice = await make_grant(
        kube, namespace, sim, zoomsim, operator, grant_spec={"email": "alice"}
    )
    mallory = sim.add_user(host["id"], email=f"mallory-{namespace}@customer.example.com")
    url = (await grant_body(kube, namespace))["status"]["authorizationUrl"]
    assert await authorize_in_browser(url, mallory["email"]) == "Cannot authorize"
    assert "refreshToken" not in await grant_secret(kube, namespace)
    assert ready_of(await grant_body(kube, namespace))["reason"] == "AwaitingAuthorization"
    assert await authorize_in_browser(url, alice["email"]) == "Authorized"
    body = await wait_grant(kube, namespace, ready="True")
    assert body["status"]["email"] == alice["email"]


@pytest.mark.parametrize("when", ["before", "after"])
async def test_a_sigkill_in_the_middle_of_a_refresh_never_loses_the_grant_silently(
    when: str,
    kube: Kube,
    namespace: str,
    bots: Bots,
    sim: SimAdmin,
    zoomsim: ZoomSim,
    operator: OperatorProcess,
    scripted: Scripted,
) -> None:
    """The operator is SIGKILLed while a refresh is in flight: `before` Zoom rotated the
    token (the grant survives: the next run refreshes with the stored token), or `after` Zoom
    rotated it and before the answer arrived (the stored token is spent: the grant says
    RefreshInterrupted, not a revocation, and how to recover). Never silently dead."""
    app, host, alice = await make_grant(kube, namespace, sim, zoomsim, operator)
    url = (await grant_body(kube, namespace))["status"]["authorizationUrl"]
    assert await authorize_in_browser(url, alice["email"]) == "Authorized"
    await wait_grant(kube, namespace, ready="True")
    stored = (await grant_secret(kube, namespace))["refreshToken"]
    number = sim.create_meeting(host["id"])["number"]
    sim.add_participant(number, "Alice", user_id=alice["id"])
    # A new process holds no access token: the bot's start makes it refresh, slowly.
    operator.stop()
    sim.set_faults(**{f"refresh_delay_{when}_ms": 20000})
    operator.start()
    operator.wait_until_watching(f"t-ready-{namespace[-6:]}")
    rotations = f"{app['id']}:user_oauth"
    rotated_before = sim.calls().get(rotations, 0)
    await bots.apply("cut", bot_spec(number, auth="obf", obf={"grantRef": {"name": "alice"}}))

    async def in_flight() -> bool:
        marked = "refreshing" in await grant_secret(kube, namespace)
        if when == "after":  # Zoom has rotated the token and not answered yet
            return marked and sim.calls().get(rotations, 0) > rotated_before
        return marked

    await wait_for(in_flight, 30, what="a refresh in flight")
    await asyncio.sleep(1)  # well inside the 20 s pause
    operator.kill()
    sim.set_faults()
    operator.start()
    operator.wait_until_watching(f"t-ready-{namespace[-6:]}x")
    if when == "before":
        # Zoom never rotated: the stored token still works, the grant lives on.
        run = asyncio.create_task(scripted("cut").run())
        status = await bots.wait_phase("cut", "InMeeting", "Failed", timeout=60)
        assert status["phase"] == "InMeeting", status
        assert (await grant_secret(kube, namespace))["refreshToken"] != stored
        assert ready_of(await grant_body(kube, namespace))["status"] == "True"
        sim.end_meeting(number)
        await run
    else:
        body = await wait_grant(kube, namespace, ready="False", reason="RefreshInterrupted")
        assert "authorize again" in ready_of(body)["message"]
        await bots.wait_reason("cut", "ZoomUserGrantNotReady", timeout=60)
        assert await bots.pods("cut") == []


async def test_auth_auto_joins_own_meetings_with_zak_and_refuses_external_ones_without_a_grant(
    kube: Kube,
    namespace: str,
    bots: Bots,
    sim: SimAdmin,
    zoomsim: ZoomSim,
    scripted: Scripted,
) -> None:
    zoom = await zoom_account(
        kube,
        namespace,
        sim,
        zoomsim.url,
        scopes=["user:read:admin", "user:read:token:admin", "meeting:read:meeting:admin"],
    )
    await account_ready(kube, namespace)
    own = sim.create_meeting(zoom["id"])["number"]
    await bots.apply("own", bot_spec(own, auth="auto"))
    run = asyncio.create_task(scripted("own").run())
    status = await bots.wait_phase("own", "InMeeting", "Failed", timeout=60)
    assert (status["phase"], status["auth"]) == ("InMeeting", "zak"), status
    sim.end_meeting(own)
    await run
    external = sim.create_meeting(sim.create_account()["id"])["number"]
    before = sim.calls().get(f"{zoom['id']}:zak", 0)
    await bots.apply("external", bot_spec(external, auth="auto"))
    failed = await bots.wait_phase("external", "Failed", timeout=30)
    assert failed["reason"] == "ObfRequiredForExternalMeeting"
    assert "March 2026" in failed["message"] and "grantRef" in failed["message"]
    assert await bots.pods("external") == [] and sim.calls().get(f"{zoom['id']}:zak", 0) == before


async def test_auth_auto_without_the_lookup_scope_says_so_and_uses_the_spec(
    kube: Kube, namespace: str, bots: Bots, sim: SimAdmin, zoomsim: ZoomSim, scripted: Scripted
) -> None:
    zoom = await zoom_account(kube, namespace, sim, zoomsim.url)  # no meeting:read scope
    await account_ready(kube, namespace)
    number = sim.create_meeting(zoom["id"])["number"]
    await bots.apply("fallback", bot_spec(number, auth="auto"))
    run = asyncio.create_task(scripted("fallback").run())
    status = await bots.wait_phase("fallback", "InMeeting", "Failed", timeout=60)
    assert (status["phase"], status["auth"]) == ("InMeeting", "zak"), status
    lookup = next(c for c in status["conditions"] if c["type"] == "MeetingLookedUp")
    assert lookup["reason"] == "MeetingLookupUnavailable" and "scope" in lookup["message"]
    sim.end_meeting(number)
    await run
