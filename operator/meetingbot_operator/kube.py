"""The Kubernetes calls the operator makes, on one shared async API client.

Kept small on purpose: the verbs here are exactly the ones the chart's RBAC grants. Bodies
are plain dicts, which the client serializes as they are.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from meetingbot_operator.models import GROUP, VERSION
from meetingbot_operator.secret_refs import SecretView

MERGE_PATCH = "application/merge-patch+json"


class NameTaken(Exception):
    """An object with the child's name exists and is not controlled by this MeetingBot: it is
    never overwritten, adopted or deleted."""

    def __init__(self, kind: str, namespace: str, name: str, owner: str = "MeetingBot") -> None:
        super().__init__(
            f"a {kind} named {name!r} already exists in {namespace} and is not this "
            f"{owner}'s; the operator will not touch it"
        )


def controlled_by(metadata: Any, owner_uid: str) -> bool:
    """Whether an object (a client model's metadata) has `owner_uid` as its controller."""
    return any(o.uid == owner_uid and o.controller for o in (metadata.owner_references or []))


def api_message(error: ApiException) -> str:
    """The API server's own message from an error response (a Status object), else its reason."""
    try:
        body = json.loads(error.body or b"{}")
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or error.reason or f"HTTP {error.status}")[:1024]


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

    async def _read_secret(self, namespace: str, name: str) -> Any | None:
        """The Secret (a client model), or None if it does not exist."""
        try:
            return await self.core.read_namespaced_secret(name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def read_secret(self, namespace: str, name: str) -> SecretView | None:
        """A Secret's labels and decoded data, or None if it does not exist."""
        secret = await self._read_secret(namespace, name)
        if secret is None:
            return None
        return SecretView(labels=dict(secret.metadata.labels or {}), data=_decoded(secret))

    async def read_owned_secret(
        self, namespace: str, name: str, owner_uid: str
    ) -> dict[str, str] | None:
        """A Secret's decoded data if `owner_uid` controls it; None if it does not exist;
        NameTaken if it belongs to anyone else (never read, never trusted)."""
        secret = await self._read_secret(namespace, name)
        if secret is None:
            return None
        if not controlled_by(secret.metadata, owner_uid):
            raise NameTaken("Secret", namespace, name, owner="object")
        return _decoded(secret)

    async def upsert_secret(self, body: dict[str, Any]) -> None:
        """Create the Secret, or replace it if it exists and is ours (a new attempt has a new
        ZAK); NameTaken if a Secret of that name belongs to anyone else."""
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        owner_uid = body["metadata"]["ownerReferences"][0]["uid"]
        try:
            await self._raw(
                self.core.create_namespaced_secret(namespace, body, _preload_content=False)
            )
            return
        except ApiException as error:
            if error.status != 409:
                raise
        existing = await self.core.read_namespaced_secret(name, namespace)
        if not controlled_by(existing.metadata, owner_uid):
            raise NameTaken("Secret", namespace, name)
        # Replace exactly the version just checked: a concurrent swap fails with 409 instead.
        replacement = {
            **body,
            "metadata": {**body["metadata"], "resourceVersion": existing.metadata.resource_version},
        }
        await self._raw(
            self.core.replace_namespaced_secret(
                name, namespace, replacement, _preload_content=False
            )
        )

    async def ensure_secret_value(
        self, namespace: str, name: str, key: str, make: Callable[[], str]
    ) -> str:
        """The value under `key` of a Secret, which is created with `make()` if it does not
        exist yet (when two operators race, the first write wins and both read it)."""
        for _ in range(2):
            try:
                secret = await self.core.read_namespaced_secret(name, namespace)
                return base64.b64decode(secret.data[key]).decode()
            except ApiException as error:
                if error.status != 404:
                    raise
            body = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": {"app.kubernetes.io/managed-by": "meetingbot-operator"},
                },
                "stringData": {key: make()},
            }
            try:
                await self._raw(
                    self.core.create_namespaced_secret(namespace, body, _preload_content=False)
                )
            except ApiException as error:
                if error.status != 409:
                    raise
        raise RuntimeError(f"Secret {namespace}/{name} could not be created nor read")

    async def secret_taken(self, namespace: str, name: str, owner_uid: str) -> bool:
        """Whether a Secret of that name exists and is not controlled by `owner_uid`."""
        try:
            existing = await self.core.read_namespaced_secret(name, namespace)
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return not controlled_by(existing.metadata, owner_uid)

    async def delete_owned_secret(self, namespace: str, name: str, owner_uid: str) -> None:
        """Delete the Secret if `owner_uid` controls it."""
        await self._delete_owned(
            self.core.read_namespaced_secret,
            self.core.delete_namespaced_secret,
            namespace,
            name,
            owner_uid,
        )

    async def create_pod(self, body: dict[str, Any], *, dry_run: bool = False) -> bool:
        """Create the Pod (or only check that the API server would admit it, with `dry_run`).

        True when created (or admissible); False when a pod of that name exists already and is
        controlled by the same MeetingBot; NameTaken when it belongs to anyone else. Any other
        refusal (422 invalid, 403 quota or policy) is raised as the ApiException."""
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        owner_uid = body["metadata"]["ownerReferences"][0]["uid"]
        extra = {"dry_run": "All"} if dry_run else {}
        try:
            await self._raw(
                self.core.create_namespaced_pod(namespace, body, _preload_content=False, **extra)
            )
        except ApiException as error:
            if error.status != 409:
                raise
            existing = await self.core.read_namespaced_pod(name, namespace)
            if not controlled_by(existing.metadata, owner_uid):
                raise NameTaken("Pod", namespace, name) from None
            return False
        return True

    async def delete_pod(self, namespace: str, name: str, owner_uid: str) -> None:
        """Delete the pod if `owner_uid` controls it, with the pod's own grace period (the bot
        gets SIGTERM and time to leave)."""
        await self._delete_owned(
            self.core.read_namespaced_pod,
            self.core.delete_namespaced_pod,
            namespace,
            name,
            owner_uid,
        )

    @staticmethod
    async def _delete_owned(
        read: Any, delete: Any, namespace: str, name: str, owner_uid: str
    ) -> None:
        """Delete an object only if `owner_uid` is its controller, preconditioned on the uid
        just read: one re-created by someone else in between is left alone."""
        try:
            existing = await read(name, namespace)
            if not controlled_by(existing.metadata, owner_uid):
                return
            await delete(
                name,
                namespace,
                body=client.V1DeleteOptions(
                    preconditions=client.V1Preconditions(uid=existing.metadata.uid)
                ),
            )
        except ApiException as error:
            if error.status not in (404, 409):
                raise

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch the status subresource; None if the object is gone."""
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
        await self._raw(
            self.core.create_namespaced_event(
                body["metadata"]["namespace"], body, _preload_content=False
            )
        )

    async def meetingbot_keys(self, namespaces: list[str]) -> set[tuple[str, str]]:
        """(namespace, name) of every MeetingBot in the namespaces (all of them when empty),
        listed in pages so that a large cluster is never held in memory at once."""
        keys: set[tuple[str, str]] = set()
        scopes: list[str | None] = [*namespaces] if namespaces else [None]
        for namespace in scopes:
            token = ""
            while True:
                options: dict[str, Any] = {"limit": 500, "_preload_content": False}
                if token:
                    options["_continue"] = token
                if namespace is None:
                    call = self.custom.list_cluster_custom_object(
                        GROUP, VERSION, "meetingbots", **options
                    )
                else:
                    call = self.custom.list_namespaced_custom_object(
                        GROUP, VERSION, namespace, "meetingbots", **options
                    )
                page = json.loads(await self._raw(call))
                keys.update(
                    (item["metadata"]["namespace"], item["metadata"]["name"])
                    for item in page.get("items", [])
                )
                token = page.get("metadata", {}).get("continue") or ""
                if not token:
                    break
        return keys

    async def delete_custom(self, plural: str, namespace: str, name: str) -> None:
        try:
            await self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name, propagation_policy="Background"
            )
        except ApiException as error:
            if error.status != 404:
                raise


def _decoded(secret: Any) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
