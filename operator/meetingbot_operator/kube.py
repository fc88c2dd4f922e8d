"""The Kubernetes calls the operator makes, on one shared async API client.

Kept small on purpose: the verbs here are exactly the ones the chart's RBAC grants. Bodies
are plain dicts, which the client serializes as they are.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from meetingbot_operator.models import GROUP, VERSION

MERGE_PATCH = "application/merge-patch+json"


async def api_client() -> client.ApiClient:
    """In-cluster credentials when running in a pod, else the kubeconfig (KUBECONFIG)."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        await config.load_kube_config()
    return client.ApiClient()


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        # Typed as Any: the client's stubs admit only its models as bodies and know nothing of
        # _preload_content/_content_type, which it accepts and which we use.
        self.core: Any = client.CoreV1Api(api)
        self.custom: Any = client.CustomObjectsApi(api)
        self.calls = 0  # API calls made, for benchmarks

    async def close(self) -> None:
        await self.api.close()

    @staticmethod
    async def _raw(call: Awaitable[Any]) -> bytes:
        """Await a call made with _preload_content=False: the client then skips its (slow)
        deserialization into models, and also its status check, which this does instead."""
        response = await call
        body: bytes = await response.read()
        if not 200 <= response.status <= 299:
            error = ApiException(status=response.status, reason=response.reason)
            error.body = body
            raise error
        return body

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's decoded data, or None if it does not exist."""
        self.calls += 1
        try:
            secret = await self.core.read_namespaced_secret(name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    async def upsert_secret(self, body: dict[str, Any]) -> None:
        """Create the Secret, or replace it if it exists (a new attempt has a new ZAK)."""
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        self.calls += 1
        try:
            await self._raw(
                self.core.create_namespaced_secret(namespace, body, _preload_content=False)
            )
        except ApiException as error:
            if error.status != 409:
                raise
            self.calls += 1
            await self._raw(
                self.core.replace_namespaced_secret(name, namespace, body, _preload_content=False)
            )

    async def create_pod(self, body: dict[str, Any]) -> bool:
        """Create the Pod; False if one of that name exists already and is ours."""
        namespace = body["metadata"]["namespace"]
        self.calls += 1
        try:
            await self._raw(
                self.core.create_namespaced_pod(namespace, body, _preload_content=False)
            )
        except ApiException as error:
            if error.status != 409:
                raise
            self.calls += 1
            existing = await self.core.read_namespaced_pod(body["metadata"]["name"], namespace)
            owner_uid = body["metadata"]["ownerReferences"][0]["uid"]
            owners = existing.metadata.owner_references or []
            if not any(o.uid == owner_uid for o in owners):
                raise RuntimeError(
                    f"pod {namespace}/{body['metadata']['name']} exists and is not ours"
                ) from None
            return False
        return True

    async def delete_pod(self, namespace: str, name: str) -> None:
        """Delete with the pod's own grace period: the bot gets SIGTERM and time to leave."""
        self.calls += 1
        try:
            await self.core.delete_namespaced_pod(name, namespace)
        except ApiException as error:
            if error.status != 404:
                raise

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch the status subresource; None if the object is gone."""
        self.calls += 1
        try:
            response = self.custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                {"status": status},
                _content_type=MERGE_PATCH,
                _preload_content=False,
            )
            result: dict[str, Any] = json.loads(await self._raw(response))
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return result

    async def create_event(self, body: dict[str, Any]) -> None:
        self.calls += 1
        await self._raw(
            self.core.create_namespaced_event(
                body["metadata"]["namespace"], body, _preload_content=False
            )
        )

    async def delete_custom(self, plural: str, namespace: str, name: str) -> None:
        self.calls += 1
        try:
            await self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name, propagation_policy="Background"
            )
        except ApiException as error:
            if error.status != 404:
                raise
