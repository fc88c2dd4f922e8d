"""`helm test`: one MeetingBot against the chart's Zoom sandbox, from inside the cluster
(`python -m meetingbot_operator.selftest`, run by templates/tests/ in the operator's image).

It makes a simulated Zoom account with a service user and a meeting (the sandbox's admin API),
the account's Secrets and a ZoomAccount, and a MeetingBot that joins with the chart's bot image;
it waits for the bot in the meeting, ends the meeting, and waits for Succeeded (MeetingEnded).
Everything it made is deleted after, whatever the outcome. Exit 0 when the bot Succeeded;
otherwise 1, and the last line says where it stopped and the bot's status.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from meetingbot_api import API_VERSION
from meetingbot_operator.kube.client import KubeClient, core_path, custom_path
from meetingbot_operator.kube.secrets import USE_LABEL, SecretUse

STEP_SECONDS = {"account": 90.0, "meeting": 240.0, "finish": 90.0}


class Failed(Exception):
    pass


async def run(namespace: str, sandbox: str) -> dict[str, Any]:
    name = f"helm-test-{secrets.token_hex(3)}"
    api = KubeClient.connect()
    made: list[tuple[str, str]] = []  # (path, what) to delete, newest last
    async with httpx.AsyncClient(base_url=sandbox, timeout=10) as sim:
        try:
            account = await _sim(sim, "POST", "/sim/accounts", {"plan": "pro"})
            user = await _sim(sim, "POST", f"/sim/accounts/{account['id']}/users",
                              {"email": f"{name}@bots.example.com"})  # fmt: skip
            for suffix, data in (
                ("sdk", {"sdkKey": account["sdk_key"], "sdkSecret": account["sdk_secret"]}),
                ("api", {"accountId": account["id"], "clientId": account["client_id"],
                         "clientSecret": account["client_secret"]}),
            ):  # fmt: skip
                body = {"metadata": {"name": f"{name}-{suffix}",
                                     "labels": {USE_LABEL: SecretUse.ZOOM_CREDENTIALS.value}},
                        "stringData": data}  # fmt: skip
                await api.request("POST", core_path("secrets", namespace), body=body)
                made.append((core_path("secrets", namespace, f"{name}-{suffix}"), "Secret"))
            await api.request("POST", custom_path("zoomaccounts", namespace), body={
                "apiVersion": API_VERSION, "kind": "ZoomAccount", "metadata": {"name": name},
                "spec": {"sdkCredentialsSecretRef": {"name": f"{name}-sdk"},
                         "apiCredentialsSecretRef": {"name": f"{name}-api"},
                         "endpoints": {"oauthUrl": f"{sandbox}/oauth/token",
                                       "apiUrl": f"{sandbox}/v2"},
                         "users": [user["email"]]},
            })  # fmt: skip
            made.append((custom_path("zoomaccounts", namespace, name), "ZoomAccount"))
            await _until("account", lambda: _ready(api, namespace, name))
            meeting = await _sim(sim, "POST", "/sim/meetings", {"account_id": account["id"]})
            await api.request("POST", custom_path("meetingbots", namespace), body={
                "apiVersion": API_VERSION, "kind": "MeetingBot", "metadata": {"name": name},
                "spec": {"accountRef": {"name": name}, "meeting": {"number": meeting["number"]},
                         "displayName": "Helm test", "ttlSecondsAfterFinished": 600},
            })  # fmt: skip
            made.append((custom_path("meetingbots", namespace, name), "MeetingBot"))
            await _until("meeting", lambda: _phase(api, namespace, name, "InMeeting"))
            await _sim(sim, "POST", f"/sim/meetings/{meeting['number']}/end", None)
            finished: dict[str, Any] = await _until(
                "finish", lambda: _phase(api, namespace, name, "Succeeded")
            )
            return finished
        except Failed as failure:
            status = await _status(api, namespace, name)
            raise Failed(f"{failure}; the MeetingBot's status: {json.dumps(status)}") from None
        finally:
            for path, _ in reversed(made):
                try:
                    await api.request("DELETE", path)
                except Exception as error:
                    print(f"could not delete {path}: {error}", file=sys.stderr)
            await api.close()


async def _sim(sim: httpx.AsyncClient, method: str, path: str, body: Any) -> dict[str, Any]:
    answer = await sim.request(method, path, json=body)
    if answer.status_code >= 400:
        raise Failed(f"the sandbox answered {answer.status_code} to {method} {path}")
    return dict(answer.json()) if answer.content else {}


async def _until(step: str, check: Callable[[], Awaitable[Any]]) -> Any:
    deadline = time.monotonic() + STEP_SECONDS[step]
    while time.monotonic() < deadline:
        found = await check()
        if found:
            print(f"{step}: done", flush=True)
            return found
        await asyncio.sleep(1)
    raise Failed(f"{step}: not done within {STEP_SECONDS[step]:.0f} s")


async def _ready(api: KubeClient, namespace: str, name: str) -> bool:
    body = await api.request("GET", custom_path("zoomaccounts", namespace, name))
    conditions = (body.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


async def _phase(api: KubeClient, namespace: str, name: str, wanted: str) -> dict[str, Any] | None:
    status = await _status(api, namespace, name)
    if status.get("phase") == "Failed":
        raise Failed(f"the bot failed: {status.get('reason')}: {status.get('message')}")
    return status if status.get("phase") == wanted else None


async def _status(api: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    page = await api.request(
        "GET",
        custom_path("meetingbots", namespace),
        params={"fieldSelector": f"metadata.name={name}"},
    )
    items = page.get("items") or []
    return dict(items[0].get("status") or {}) if items else {}


def main() -> int:
    namespace, sandbox = (
        os.environ["MEETINGBOT_TEST_NAMESPACE"],
        os.environ["MEETINGBOT_SANDBOX_URL"],
    )
    try:
        status = asyncio.run(run(namespace, sandbox))
    except Failed as failure:
        print(f"FAILED: {failure}", flush=True)
        return 1
    print(f"PASSED: the MeetingBot {status['phase']} ({status.get('reason')})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
