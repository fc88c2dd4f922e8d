"""Fakes of the operator's own seams, for unit tests of its services: the Kubernetes verbs
(`kube/verbs.py`'s `Kube`) and the Zoom client (`zoom/client.py`'s `ZoomClient`). Both keep
state in dicts, answer as the real ones do for what the services use, and count calls."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr

from meetingbot_api import Cloud
from meetingbot_contract.reasons import Reason
from meetingbot_operator.kube.client import ApiError, core_path
from meetingbot_operator.kube.secrets import SecretView
from meetingbot_operator.zoom import Endpoints, Zak, ZoomError
from meetingbot_operator.zoom.client import ZoomUser


class Crash(BaseException):
    """The process dies here: nothing after it runs (not an Exception, so nothing catches it)."""


class FakeKube:
    """The Kubernetes verbs the services use, on dicts."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], SecretView] = {}
        self.owned: dict[tuple[str, str], dict[str, str]] = {}
        self.written: dict[tuple[str, str], dict[str, Any]] = {}  # the Secrets upsert_secret wrote
        self.refused: set[tuple[str, str]] = set()
        self.statuses: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: Counter[str] = Counter()
        # Called before each verb by name: a test makes one raise (Crash, ApiError) there.
        self.before: Callable[[str], None] = lambda verb: None

    def _call(self, verb: str) -> None:
        self.calls[verb] += 1
        self.before(verb)

    async def read_secret(self, namespace: str, name: str) -> SecretView | None:
        self._call("read_secret")
        core_path("secrets", namespace, name)  # the same guard as the real client
        if (namespace, name) in self.refused:
            raise ApiError(403, "Forbidden", b'{"message": "secrets is forbidden"}')
        return self.secrets.get((namespace, name))

    async def read_owned_secret(
        self, namespace: str, name: str, owner_uid: str
    ) -> dict[str, str] | None:
        self._call("read_owned_secret")
        found = self.owned.get((namespace, name))
        return dict(found) if found is not None else None

    async def upsert_secret(
        self, body: dict[str, Any], keep: Callable[[dict[str, Any]], Awaitable[bool]] | None = None
    ) -> bool:
        self._call("upsert_secret")
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        existing = self.written.get(key)
        if existing is not None and keep is not None and await keep(existing):
            return False
        self.owned[key] = dict(body["stringData"])
        self.written[key] = body
        return True

    async def read_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._call("read_pod")
        return self.pods.get((namespace, name))

    async def secret_taken(self, namespace: str, name: str, owner_uid: str) -> bool:
        self._call("secret_taken")
        return False

    async def create_pod(self, body: dict[str, Any], *, dry_run: bool = False) -> bool:
        self._call("create_pod_dry_run" if dry_run else "create_pod")
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if key in self.pods:
            return False
        if not dry_run:
            self.pods[key] = body
        return True

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        self._call("patch_status")
        self.statuses[(plural, namespace, name)] = status
        return None


class FakeZoom:
    """A Zoom client for one account: ZAKs, users (active or pending), token checks."""

    def __init__(self, scopes: frozenset[str] = frozenset({"user:read:token:admin"})) -> None:
        self.scopes = scopes
        self.users: dict[str, str] = {}  # email -> active | pending
        self.calls: Counter[str] = Counter()
        self.refused_users: dict[str, ZoomError] = {}
        self.fail_next_mints = 0
        self.endpoints = Endpoints.for_cloud(Cloud.COMMERCIAL)

    async def aclose(self) -> None:
        return None

    async def verify(self) -> frozenset[str]:
        self.calls["verify"] += 1
        return self.scopes

    async def mint_zak(self, user_id: str, ttl_seconds: int = 7200) -> Zak:
        self.calls["mint_zak"] += 1
        if user_id in self.refused_users:
            raise self.refused_users[user_id]
        if self.fail_next_mints:
            self.fail_next_mints -= 1
            raise ZoomError(Reason.ZOOM_UNAVAILABLE, "HTTP 503", status=503)
        number = self.calls["mint_zak"]
        return Zak(
            token=SecretStr(f"zak-{user_id}-{number}"),
            user_id=user_id,
            expires_at=datetime.now(UTC) + timedelta(seconds=ttl_seconds),
        )

    async def list_users(self, status: str = "active") -> list[ZoomUser]:
        self.calls["list_users"] += 1
        return [
            ZoomUser(id=email, email=email, status=state)
            for email, state in self.users.items()
            if state == status
        ]

    async def get_user(self, user_id: str) -> ZoomUser:
        self.calls["get_user"] += 1
        if user_id not in self.users:
            raise ZoomError(Reason.ZOOM_USER_NOT_FOUND, "HTTP 404, Zoom code 1001", status=404)
        return ZoomUser(id=user_id, email=user_id, status=self.users[user_id])

    async def create_user(
        self, action: str, email: str, *, user_type: int = 1, **names: str
    ) -> ZoomUser:
        self.calls["create_user"] += 1
        if email in self.users:
            raise ZoomError(Reason.ZOOM_USER_EXISTS, "HTTP 409, Zoom code 1005", code=1005)
        self.users[email] = "pending" if action == "create" else "active"
        return ZoomUser(id=email, email=email, status=self.users[email])
