"""Helpers around the operator process: waiting, MeetingBots in a namespace, Zoom accounts."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client

from devenv.zoomsim import SimAdmin

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = "meetingbot.dev", "v1alpha1"
SECRET_USE_LABEL = f"{GROUP}/secret-for"


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 60,
    interval: float = 0.25,
    what: str = "condition",
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout}s")
        time.sleep(interval)


class Bots:
    """MeetingBot helpers in one namespace."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)

    def apply(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MeetingBot",
            "metadata": {"name": name},
            "spec": spec,
        }
        return dict(
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "meetingbots", body
            )
        )

    def get(self, name: str) -> dict[str, Any]:
        return dict(
            self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "meetingbots", name
            )
        )

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "meetingbots", name
        )

    def wait_phase(self, name: str, *phases: str, timeout: float = 60) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            status = self.status(name)
            return status if status.get("phase") in phases else None

        try:
            return dict(wait_for(reached, timeout, what=f"{name} in {phases}"))
        except TimeoutError:
            raise TimeoutError(
                f"{name} not in {phases} within {timeout}s: {self.status(name)}"
            ) from None

    def children_gone(self, name: str) -> bool:
        """Whether the bot's pods and join Secret have all been removed."""
        pods = self.pods(name)
        secrets = self.core.list_namespaced_secret(
            self.namespace, field_selector=f"metadata.name={name}-join"
        ).items
        return not pods and not secrets

    def pods(self, name: str) -> list[client.V1Pod]:
        return list(
            self.core.list_namespaced_pod(
                self.namespace, label_selector=f"meetingbot.dev/bot={name}"
            ).items
        )


def zoom_account(
    api: client.ApiClient,
    namespace: str,
    sim: SimAdmin,
    sim_url: str,
    *,
    users: int = 1,
    plan: str = "pro",
    name: str = "main",
    extra_spec: dict[str, Any] | None = None,
    **account: Any,
) -> dict[str, Any]:
    """A simulator account, its two Secrets and a ZoomAccount named `name` in the namespace."""
    zoom = sim.create_account(plan=plan, **account)
    zoom["users"] = [
        sim.add_user(zoom["id"], email=f"bot{i}-{uuid.uuid4().hex[:6]}@bots.example.com")
        for i in range(users)
    ]
    core = client.CoreV1Api(api)
    opt_in = {SECRET_USE_LABEL: "zoom-credentials"}
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=f"{name}-sdk", labels=opt_in),
            string_data={"sdkKey": zoom["sdk_key"], "sdkSecret": zoom["sdk_secret"]},
        ),
    )
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=f"{name}-api", labels=opt_in),
            string_data={
                "accountId": zoom["id"],
                "clientId": zoom["client_id"],
                "clientSecret": zoom["client_secret"],
            },
        ),
    )
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "zoomaccounts",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ZoomAccount",
            "metadata": {"name": name},
            "spec": {
                "sdkCredentialsSecretRef": {"name": f"{name}-sdk"},
                "apiCredentialsSecretRef": {"name": f"{name}-api"},
                "endpoints": {"oauthUrl": f"{sim_url}/oauth/token", "apiUrl": f"{sim_url}/v2"},
                "plan": "business" if plan == "business" else "pro",
                "users": [u["email"] for u in zoom["users"]],
                **(extra_spec or {}),
            },
        },
    )
    return zoom


def account_ready(api: client.ApiClient, namespace: str, name: str = "main") -> dict[str, Any]:
    custom = client.CustomObjectsApi(api)

    def ready() -> dict[str, Any] | None:
        body = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "zoomaccounts", name)
        conditions = {c["type"]: c for c in (body.get("status") or {}).get("conditions", [])}
        return conditions.get("Ready")

    return dict(wait_for(ready, 30, what="ZoomAccount Ready condition"))
