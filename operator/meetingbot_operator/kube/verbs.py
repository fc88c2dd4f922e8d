"""The Kubernetes calls the operator makes, on one shared client (kube/client.py).

Kept small on purpose: the verbs here are exactly the ones the chart's RBAC grants. Bodies
are plain dicts, sent and read as JSON.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

from meetingbot_operator.kube.client import (
    MERGE_PATCH,
    ApiError,
    KubeClient,
    core_path,
    custom_path,
    segment,
)
from meetingbot_operator.kube.secrets import SecretView, manifest


class NameTaken(Exception):
    """An object with the child's name exists and is not controlled by this MeetingBot: it is
    never overwritten, adopted or deleted."""

    def __init__(self, kind: str, namespace: str, name: str, owner: str = "MeetingBot") -> None:
        super().__init__(
            f"a {kind} named {name!r} already exists in {namespace} and is not this "
            f"{owner}'s; the operator will not touch it"
        )


def controlled_by(obj: dict[str, Any], owner_uid: str) -> bool:
    """Whether an object (as JSON) has `owner_uid` as its controller."""
    owners = obj.get("metadata", {}).get("ownerReferences") or []
    return any(o.get("uid") == owner_uid and o.get("controller") for o in owners)


class Kube:
    def __init__(self, api: KubeClient) -> None:
        self.api = api

    async def close(self) -> None:
        await self.api.close()

    async def _read(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None if it does not exist."""
        try:
            return await self.api.request("GET", core_path(kind, namespace, name))
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    async def read_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The pod as JSON, or None if it does not exist."""
        return await self._read("pods", namespace, name)

    async def read_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A core object ("configmaps", "secrets") as JSON, undecoded; None if it does not
        exist."""
        return await self._read(kind, namespace, name)

    async def read_secret(self, namespace: str, name: str) -> SecretView | None:
        """A Secret's labels and decoded data, or None if it does not exist."""
        secret = await self._read("secrets", namespace, name)
        if secret is None:
            return None
        labels = secret.get("metadata", {}).get("labels") or {}
        return SecretView(labels=dict(labels), data=_decoded(secret))

    async def read_owned_secret(
        self, namespace: str, name: str, owner_uid: str
    ) -> dict[str, str] | None:
        """A Secret's decoded data if `owner_uid` controls it; None if it does not exist;
        NameTaken if it belongs to anyone else (never read, never trusted)."""
        secret = await self._read("secrets", namespace, name)
        if secret is None:
            return None
        if not controlled_by(secret, owner_uid):
            raise NameTaken("Secret", namespace, name, owner="object")
        return _decoded(secret)

    async def upsert_secret(
        self, body: dict[str, Any], keep: Callable[[dict[str, Any]], Awaitable[bool]] | None = None
    ) -> bool:
        """Create the Secret, or replace it if it exists and is ours (a new attempt has a new
        ZAK); NameTaken if a Secret of that name belongs to anyone else. `keep`, asked about
        the existing one before it is replaced, can keep it: False when it was kept."""
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        owner_uid = body["metadata"]["ownerReferences"][0]["uid"]
        try:
            await self.api.request("POST", core_path("secrets", namespace), body=body)
            return True
        except ApiError as error:
            if error.status != 409:
                raise
        existing = await self.api.request("GET", core_path("secrets", namespace, name))
        if not controlled_by(existing, owner_uid):
            raise NameTaken("Secret", namespace, name)
        if keep is not None and await keep(existing):
            return False
        # Replace exactly the version just checked: a concurrent swap fails with 409 instead.
        version = existing["metadata"]["resourceVersion"]
        replacement = {**body, "metadata": {**body["metadata"], "resourceVersion": version}}
        await self.api.request("PUT", core_path("secrets", namespace, name), body=replacement)
        return True

    async def ensure_secret_value(
        self, namespace: str, name: str, key: str, make: Callable[[], str]
    ) -> str:
        """The value under `key` of a Secret, which is created with `make()` if it does not
        exist yet (when two operators race, the first write wins and both read it)."""
        for _ in range(2):
            secret = await self._read("secrets", namespace, name)
            if secret is not None:
                return _decoded(secret)[key]
            body = manifest(namespace, name, {key: make()})
            try:
                await self.api.request("POST", core_path("secrets", namespace), body=body)
            except ApiError as error:
                if error.status != 409:
                    raise
        raise RuntimeError(f"Secret {namespace}/{name} could not be created nor read")

    async def secret_taken(self, namespace: str, name: str, owner_uid: str) -> bool:
        """Whether a Secret of that name exists and is not controlled by `owner_uid`."""
        existing = await self._read("secrets", namespace, name)
        return existing is not None and not controlled_by(existing, owner_uid)

    async def delete_owned_secret(self, namespace: str, name: str, owner_uid: str) -> None:
        """Delete the Secret if `owner_uid` controls it."""
        await self._delete_owned("secrets", namespace, name, owner_uid)

    async def create_pod(self, body: dict[str, Any], *, dry_run: bool = False) -> bool:
        """Create the Pod (or only check that the API server would admit it, with `dry_run`).

        True when created (or admissible); False when a pod of that name exists already and is
        controlled by the same MeetingBot; NameTaken when it belongs to anyone else. Any other
        refusal (422 invalid, 403 quota or policy) is raised as the ApiError."""
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        owner_uid = body["metadata"]["ownerReferences"][0]["uid"]
        params = {"dryRun": "All"} if dry_run else None
        try:
            await self.api.request("POST", core_path("pods", namespace), body=body, params=params)
        except ApiError as error:
            if error.status != 409:
                raise
            existing = await self.api.request("GET", core_path("pods", namespace, name))
            if not controlled_by(existing, owner_uid):
                raise NameTaken("Pod", namespace, name) from None
            return False
        return True

    async def delete_pod(self, namespace: str, name: str, owner_uid: str) -> None:
        """Delete the pod if `owner_uid` controls it, with the pod's own grace period (the bot
        gets SIGTERM and time to leave)."""
        await self._delete_owned("pods", namespace, name, owner_uid)

    async def _delete_owned(self, kind: str, namespace: str, name: str, owner_uid: str) -> None:
        """Delete an object only if `owner_uid` is its controller, preconditioned on the uid
        just read: one re-created by someone else in between is left alone."""
        try:
            existing = await self.api.request("GET", core_path(kind, namespace, name))
            if not controlled_by(existing, owner_uid):
                return
            options = {"preconditions": {"uid": existing["metadata"]["uid"]}}
            await self.api.request("DELETE", core_path(kind, namespace, name), body=options)
        except ApiError as error:
            if error.status not in (404, 409):
                raise

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch the status subresource; None if the object is gone."""
        path = custom_path(plural, namespace, name) + "/status"
        try:
            return await self.api.request(
                "PATCH", path, body={"status": status}, content_type=MERGE_PATCH
            )
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    async def set_finalizers(
        self, plural: str, namespace: str, name: str, uid: str, finalizers: list[str]
    ) -> None:
        """Replace an object's finalizers, only if it is still the one of that uid (a bot
        deleted and re-created under its name keeps its own)."""
        body = {"metadata": {"uid": uid, "finalizers": finalizers}}
        try:
            await self.api.request(
                "PATCH", custom_path(plural, namespace, name), body=body, content_type=MERGE_PATCH
            )
        except ApiError as error:
            if error.status not in (404, 409, 422):
                raise

    async def create_event(self, body: dict[str, Any]) -> None:
        path = core_path("events", body["metadata"]["namespace"])
        await self.api.request("POST", path, body=body)

    async def read_meetingbot(self, namespace: str, name: str) -> dict[str, Any] | None:
        """One MeetingBot, whole; None if it does not exist. Read as a list of one (a field
        selector on its name): the chart grants list and watch on MeetingBots, not get."""
        page = await self.api.request(
            "GET",
            custom_path("meetingbots", namespace),
            params={"fieldSelector": f"metadata.name={segment(name)}"},
        )
        items: list[dict[str, Any]] = page.get("items") or []
        return items[0] if items else None

    async def meetingbot_keys(self, namespaces: list[str]) -> set[tuple[str, str]]:
        """(namespace, name) of every MeetingBot in the namespaces (all of them when empty),
        listed in pages so that a large cluster is never held in memory at once."""
        keys: set[tuple[str, str]] = set()
        scopes: list[str | None] = [*namespaces] if namespaces else [None]
        for namespace in scopes:
            token = ""
            while True:
                params = {"limit": "500", **({"continue": token} if token else {})}
                page = await self.api.request(
                    "GET", custom_path("meetingbots", namespace), params=params, listing=True
                )
                keys.update(
                    (item["metadata"]["namespace"], item["metadata"]["name"])
                    for item in page.get("items", [])
                )
                token = page.get("metadata", {}).get("continue") or ""
                if not token:
                    break
        return keys

    async def review_token(self, token: str, audience: str) -> dict[str, Any]:
        """The API server's TokenReview of a bearer token for `audience`: its status."""
        review = await self.api.request(
            "POST",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            body={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "spec": {"token": token, "audiences": [audience]},
            },
        )
        return dict(review.get("status") or {})

    async def list_custom(
        self, plural: str, namespace: str | None, label_selector: str = "", listing: bool = False
    ) -> list[dict[str, Any]]:
        """Every object of `plural` in the namespace (None: in all) with those labels (none:
        every one), read in pages; `listing`: in place of a watch's list (client.py)."""
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            params = {"limit": "500"}
            if label_selector:
                params["labelSelector"] = label_selector
            if token:
                params["continue"] = token
            page = await self.api.request(
                "GET", custom_path(plural, namespace), params=params, listing=listing
            )
            items += page.get("items") or []
            token = page.get("metadata", {}).get("continue") or ""
            if not token:
                return items

    async def create_custom(self, plural: str, body: dict[str, Any]) -> bool:
        """Create the object: True if created, False if one of that name is already there and
        controlled by the same owner (a pass repeated after a crash); NameTaken otherwise."""
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        try:
            await self.api.request("POST", custom_path(plural, namespace), body=body)
        except ApiError as error:
            if error.status != 409:
                raise
            owner = body["metadata"]["ownerReferences"][0]
            existing = await self.api.request(
                "GET",
                custom_path(plural, namespace),
                params={"fieldSelector": f"metadata.name={segment(name)}"},
            )
            found = existing.get("items") or []
            if not found or not controlled_by(found[0], owner["uid"]):
                raise NameTaken(body["kind"], namespace, name, owner["kind"]) from None
            return False
        return True

    async def patch_custom(
        self, plural: str, namespace: str, name: str, uid: str, patch: dict[str, Any]
    ) -> bool:
        """Merge-patch an object only if it is still the one of that uid: False if it is gone
        (or another object now has its name)."""
        body = {**patch, "metadata": {**patch.get("metadata", {}), "uid": uid}}
        try:
            await self.api.request(
                "PATCH", custom_path(plural, namespace, name), body=body, content_type=MERGE_PATCH
            )
        except ApiError as error:
            if error.status in (404, 409):
                return False
            raise
        return True

    async def delete_custom_of(self, plural: str, namespace: str, name: str, uid: str) -> None:
        """Delete an object only if it is still the one of that uid."""
        options = {"propagationPolicy": "Background", "preconditions": {"uid": uid}}
        try:
            await self.api.request("DELETE", custom_path(plural, namespace, name), body=options)
        except ApiError as error:
            if error.status not in (404, 409):
                raise

    async def delete_custom(self, plural: str, namespace: str, name: str) -> None:
        try:
            await self.api.request(
                "DELETE",
                custom_path(plural, namespace, name),
                body={"propagationPolicy": "Background"},
            )
        except ApiError as error:
            if error.status != 404:
                raise


def _decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
