"""ZoomUserGrants in tests: the accounts, the app's Secret, the grant, and a person who
authorizes it in a real browser (Chromium driving the simulator's consent page)."""

from __future__ import annotations

import base64
from typing import Any

from playwright.async_api import async_playwright

from devenv.operator_process import OperatorProcess
from devenv.zoomsim import SimAdmin, ZoomSim
from meetingbot_bot.browser import FLAGS, chromium_path
from tests.support.operator_fixtures import (
    SECRET_USE_LABEL,
    Kube,
    account_ready,
    wait_for,
    zoom_account,
)

GROUP, VERSION = "meetingbot.dev", "v1alpha1"


async def grant_body(kube: Kube, namespace: str, name: str = "alice") -> dict[str, Any]:
    body: dict[str, Any] = await kube.custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, "zoomusergrants", name
    )
    return body


def ready_of(body: dict[str, Any]) -> dict[str, Any]:
    conditions = (body.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), {})


async def wait_grant(
    kube: Kube, namespace: str, *, ready: str, reason: str | None = None, timeout: float = 30
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        body = await grant_body(kube, namespace)
        cond = ready_of(body)
        if cond.get("status") == ready and (reason is None or cond.get("reason") == reason):
            return body
        return None

    body: dict[str, Any] = await wait_for(check, timeout, what=f"grant Ready={ready} {reason}")
    return body


async def make_grant(
    kube: Kube,
    namespace: str,
    sim: SimAdmin,
    zoomsim: ZoomSim,
    operator: OperatorProcess,
    extra_spec: dict[str, Any] | None = None,
    grant_spec: dict[str, Any] | None = None,
    webhook: bool = False,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The app's account (its user-managed app redirects to this operator), an external host
    account with the user who authorizes, the app's Secret and a ZoomUserGrant."""
    return await grant_setup(
        kube, namespace, sim, zoomsim.url, operator.oauth_url, extra_spec, grant_spec, webhook
    )


async def grant_setup(
    kube: Kube,
    namespace: str,
    sim: SimAdmin,
    sim_url: str,
    oauth_url: str,
    extra_spec: dict[str, Any] | None = None,
    grant_spec: dict[str, Any] | None = None,
    webhook: bool = False,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """make_grant for an operator whose OAuth pages browsers reach at `oauth_url`, with Zoom
    at `sim_url` as the operator reaches it."""
    app = await zoom_account(
        kube,
        namespace,
        sim,
        sim_url,
        app_published=True,
        redirect_urls=[f"{oauth_url}/oauth/callback"],
        extra_spec=extra_spec,
        deauthorization_url=f"{oauth_url}/oauth/deauthorize" if webhook else "",
    )
    await account_ready(kube, namespace)
    host = sim.create_account()
    alice = sim.add_user(host["id"], email=f"alice-{namespace}@customer.example.com")
    if grant_spec and grant_spec.get("email") == "alice":
        grant_spec = {**grant_spec, "email": alice["email"]}
    await kube.core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": "user-app", "labels": {SECRET_USE_LABEL: "zoom-credentials"}},
            "stringData": {
                "clientId": app["user_client_id"],
                "clientSecret": app["user_client_secret"],
                **({"webhookSecretToken": app["webhook_secret_token"]} if webhook else {}),
            },
        },
    )
    await create_grant(
        kube, namespace, "alice", "user-app", **(grant_spec or {"allowAnyUser": True})
    )
    body = await wait_grant(kube, namespace, ready="False", reason="AwaitingAuthorization")
    assert body["status"]["authorizationUrl"].startswith(oauth_url)
    return app, host, alice


async def create_grant(
    kube: Kube, namespace: str, name: str, app_secret: str, **spec: Any
) -> dict[str, Any]:
    """A ZoomUserGrant of the account "main" with the app's Secret named `app_secret`."""
    body: dict[str, Any] = await kube.custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "zoomusergrants",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ZoomUserGrant",
            "metadata": {"name": name},
            "spec": {
                "accountRef": {"name": "main"},
                "appCredentialsSecretRef": {"name": app_secret},
                **spec,
            },
        },
    )
    return body


async def authorize_in_browser(
    url: str, email: str, *, decision: str = "allow", hosts: dict[str, str] | None = None
) -> str:
    """What the person does: open the link, sign in on Zoom's page, press Allow. `hosts` maps
    host names the browser cannot resolve (a cluster's Service names) to addresses."""
    rules = ",".join(f"MAP {name} {address}" for name, address in (hosts or {}).items())
    args = [*FLAGS, f"--host-resolver-rules={rules}"] if rules else FLAGS
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), args=args)
        try:
            page = await browser.new_page()
            await page.goto(url)
            if not await page.locator("#email").count():
                return await page.inner_text("#title")  # the operator's page: it said no
            await page.fill("#email", email)
            await page.click(f"#{decision}")
            await page.wait_for_load_state()
            return await page.inner_text("#title")
        finally:
            await browser.close()


async def grant_secret(kube: Kube, namespace: str) -> dict[str, str]:
    """The grant's Secret's data ({} before anything was stored: a consent stores nothing
    until it completes)."""
    if not await kube.exists(kube.core.read_namespaced_secret, "alice-zoom-grant", namespace):
        return {}
    secret = await kube.core.read_namespaced_secret("alice-zoom-grant", namespace)
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
