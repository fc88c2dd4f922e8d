"""Helpers for the operator's tests: one `wait_for`, the async Kubernetes client the operator
uses, MeetingBots in a namespace, and simulated Zoom accounts with their ZoomAccount."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from devenv.zoomsim import SimAdmin

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = "meetingbot.dev", "v1alpha1"
SECRET_USE_LABEL = f"{GROUP}/secret-for"
# Custom objects take JSON merge patches (the client would pick JSON patch for a dict).
MERGE_PATCH = "application/merge-patch+json"


async def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 60,
    interval: float = 0.25,
    what: str = "condition",
) -> Any:
    """Poll `predicate` (plain or async) until it returns something true; that is the result."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise TimeoutError(f"{what} not met within {timeout}s")
        await asyncio.sleep(interval)


class StrictCustomObjects(client.CustomObjectsApi):
    """Our resources written as `kubectl apply` writes them (fieldValidation=Strict): a field
    the CRD does not know is refused, not pruned in silence. A pruned field once made a test
    pass for the wrong reason (a cap placed outside `spec.pool` was never applied)."""

    def create_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("field_validation", "Strict")
        return super().create_namespaced_custom_object(*args, **kwargs)

    def patch_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("field_validation", "Strict")
        return super().patch_namespaced_custom_object(*args, **kwargs)

    def replace_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("field_validation", "Strict")
        return super().replace_namespaced_custom_object(*args, **kwargs)


class Kube:
    """The tests' Kubernetes client: kubernetes_asyncio, as in the operator. The API objects
    are typed Any, as in the operator's kube/verbs.py: the client's models type every field
    Optional, and a test reads what the API server returned."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core: Any = client.CoreV1Api(api)
        self.custom: Any = StrictCustomObjects(api)
        self.ext: Any = client.ApiextensionsV1Api(api)
        self.policy: Any = client.PolicyV1Api(api)
        self.apps: Any = client.AppsV1Api(api)
        self.rbac: Any = client.RbacAuthorizationV1Api(api)
        self.coordination: Any = client.CoordinationV1Api(api)

    @classmethod
    async def connect(cls, kubeconfig: Path) -> Kube:
        api = await config.new_client_from_config(config_file=str(kubeconfig))
        return cls(api)

    async def close(self) -> None:
        await self.api.close()

    async def as_service_account(self, namespace: str, name: str) -> Kube:
        """A client that authenticates as a new service account `name` (a bound token)."""
        await self.core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
        request = await self.core.create_namespaced_service_account_token(
            name, namespace, {"spec": {"audiences": [], "expirationSeconds": 600}}
        )
        configuration = client.Configuration()
        configuration.host = self.api.configuration.host
        configuration.ssl_ca_cert = self.api.configuration.ssl_ca_cert
        configuration.verify_ssl = self.api.configuration.verify_ssl
        configuration.api_key = {"BearerToken": f"Bearer {request.status.token}"}
        return Kube(client.ApiClient(configuration))

    async def exists(self, call: Any, *args: Any) -> bool:
        try:
            await call(*args)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True


class Bots:
    """MeetingBot helpers in one namespace."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.custom = kube.custom
        self.core = kube.core

    async def apply(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MeetingBot",
            "metadata": {"name": name},
            "spec": spec,
        }
        return dict(
            await self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "meetingbots", body
            )
        )

    async def get(self, name: str) -> dict[str, Any]:
        return dict(
            await self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "meetingbots", name
            )
        )

    async def exists(self, name: str) -> bool:
        return await self.kube.exists(
            self.custom.get_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            "meetingbots",
            name,
        )

    async def status(self, name: str) -> dict[str, Any]:
        return dict((await self.get(name)).get("status") or {})

    async def delete(self, name: str, **options: Any) -> None:
        await self.custom.delete_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "meetingbots", name, **options
        )

    async def patch(self, name: str, body: dict[str, Any]) -> None:
        await self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "meetingbots", name, body, _content_type=MERGE_PATCH
        )

    async def all(self) -> list[dict[str, Any]]:
        listed = await self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "meetingbots"
        )
        return list(listed["items"])

    async def all_in_phase(self, names: list[str], phase: str) -> bool:
        wanted = set(names)
        listed = await self.all()
        phases = {b["metadata"]["name"]: (b.get("status") or {}).get("phase") for b in listed}
        return all(phases.get(name) == phase for name in wanted)

    async def wait_phase(self, name: str, *phases: str, timeout: float = 60) -> dict[str, Any]:
        return await self.wait_status(
            name, lambda s: s.get("phase") in phases, timeout, f"a phase in {phases}"
        )

    async def wait_status(
        self,
        name: str,
        predicate: Callable[[dict[str, Any]], Any],
        timeout: float = 60,
        what: str = "status",
    ) -> dict[str, Any]:
        """The bot's status, once `predicate` holds for it."""

        async def reached() -> dict[str, Any] | None:
            status = await self.status(name)
            return status if predicate(status) else None

        try:
            return dict(await wait_for(reached, timeout, what=f"{name}: {what}"))
        except TimeoutError:
            raise TimeoutError(
                f"{name}: {what} not met within {timeout}s: {await self.status(name)}"
            ) from None

    async def wait_pods(
        self, name: str, predicate: Callable[[list[Any]], Any] = bool, timeout: float = 60
    ) -> list[Any]:
        """The bot's pods, once `predicate` holds for them (by default: once there are some)."""

        async def reached() -> list[Any] | None:
            pods = await self.pods(name)
            return pods if predicate(pods) else None

        result = await wait_for(reached, timeout, what=f"{name}'s pods")
        return list(result)

    async def container_status(self, pod_name: str) -> Any:
        """The pod's (only) container status, once the pod has one."""
        pods = await self.pods(pod_name.rsplit("-", 1)[0])
        pod = next((p for p in pods if p.metadata.name == pod_name), None)
        statuses = (pod.status.container_statuses or []) if pod else []
        return statuses[0] if statuses else None

    async def wait_running_container(self, pod_name: str, timeout: float = 30) -> str:
        """The id of the pod's running container. The kubelet posts it in its own time: a bot
        can report that it is in the meeting before its pod's status says which container
        it runs in."""

        async def container_id() -> str | None:
            status = await self.container_status(pod_name)
            return status.container_id if status and status.state.running else None

        return str(await wait_for(container_id, timeout, what=f"{pod_name}'s container id"))

    async def wait_event(self, name: str, reason: str, timeout: float = 30) -> None:
        async def posted() -> bool:
            return reason in await self.event_reasons(name)

        await wait_for(posted, timeout, what=f"a {reason} event about {name}")

    async def wait_reason(self, name: str, reason: str, timeout: float = 30) -> dict[str, Any]:
        return await self.wait_status(
            name, lambda s: s.get("reason") == reason, timeout, f"reason {reason}"
        )

    async def children_gone(self, name: str) -> bool:
        """Whether the bot's pods and join Secret have all been removed."""
        return not await self.pods(name) and not await self.secrets(f"{name}-join")

    async def pods(self, name: str) -> list[Any]:
        listed = await self.core.list_namespaced_pod(
            self.namespace, label_selector=f"meetingbot.dev/bot={name}"
        )
        return list(listed.items)

    async def secrets(self, name: str) -> list[Any]:
        listed = await self.core.list_namespaced_secret(
            self.namespace, field_selector=f"metadata.name={name}"
        )
        return list(listed.items)

    async def event_reasons(self, name: str) -> set[str]:
        listed = await self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}"
        )
        return {e.reason for e in listed.items}


async def zoom_account(
    kube: Kube,
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
    opt_in = {SECRET_USE_LABEL: "zoom-credentials"}
    for suffix, data in (
        ("sdk", {"sdkKey": zoom["sdk_key"], "sdkSecret": zoom["sdk_secret"]}),
        (
            "api",
            {
                "accountId": zoom["id"],
                "clientId": zoom["client_id"],
                "clientSecret": zoom["client_secret"],
            },
        ),
    ):
        await kube.core.create_namespaced_secret(
            namespace,
            {"metadata": {"name": f"{name}-{suffix}", "labels": opt_in}, "stringData": data},
        )
    await kube.custom.create_namespaced_custom_object(
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


async def account_ready(
    kube: Kube,
    namespace: str,
    name: str = "main",
    predicate: Callable[[dict[str, Any]], Any] = bool,
    timeout: float = 30,
) -> dict[str, Any]:
    """The ZoomAccount's Ready condition, once it has one (that `predicate` accepts)."""

    async def ready() -> dict[str, Any] | None:
        body = await kube.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "zoomaccounts", name
        )
        conditions = {c["type"]: c for c in (body.get("status") or {}).get("conditions", [])}
        condition = conditions.get("Ready")
        return condition if condition and predicate(condition) else None

    return dict(await wait_for(ready, timeout, what="ZoomAccount Ready condition"))


async def patch_account(
    kube: Kube, namespace: str, spec: dict[str, Any], name: str = "main"
) -> None:
    """Merge-patch a ZoomAccount's spec (e.g. {"zak": {"reuse": False}})."""
    await kube.custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "zoomaccounts", name, {"spec": spec},
        _content_type=MERGE_PATCH,
    )  # fmt: skip
