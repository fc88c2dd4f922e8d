"""A ZoomUserGrant's state: what the rest of the operator may know of it (`GrantState`), what
the grant wing keeps per grant (`GrantEntry`), its reasons, and its Secret."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from meetingbot_api import API_VERSION, GROUP, ZoomUserGrant
from meetingbot_operator.conditions import Progress
from meetingbot_operator.kube.secrets import manifest
from meetingbot_operator.zoom.credentials import AccessToken

Key = tuple[str, str]
SECRET_SUFFIX = "-zoom-grant"  # noqa: S105 - a name suffix
# Asked for by an editor of a Ready grant: authorize it once more (a new value each time).
REAUTHORIZE = f"{GROUP}/reauthorize"
UNKNOWN_LINK = "this authorization link is unknown; open the grant's authorizationUrl"
APP_SECRET_SECONDS = 60.0
# Secret keys.
REFRESH_TOKEN = "refreshToken"  # noqa: S105 - a key name
REFRESHING = "refreshing"
PENDING_STATE = "pendingState"
PENDING_VERIFIER = "pendingVerifier"
PENDING_AT = "pendingAt"

# The Ready condition's reasons.
AWAITING = "AwaitingAuthorization"
AUTHORIZED = "Authorized"
REVOKED = "GrantRevoked"
INTERRUPTED = "RefreshInterrupted"
NOT_USABLE = "GrantNotUsable"  # the app's Secret, the ZoomAccount or Zoom itself


@dataclass(frozen=True)
class GrantState:
    """A ZoomUserGrant as decisions see it: can it mint OBF tokens now, and if not, why."""

    ready: bool
    reason: str
    message: str


class GrantProblem(Exception):
    """Why a grant cannot give a token now (safe to show: no token in it)."""

    def __init__(self, reason: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


@dataclass
class GrantEntry:
    body: dict[str, Any]
    grant: ZoomUserGrant
    access: AccessToken | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    app_data: tuple[float, dict[str, str]] | None = None  # (until, the app Secret's data)
    state: GrantState = field(
        default_factory=lambda: GrantState(False, AWAITING, "not authorized yet")
    )

    @property
    def uid(self) -> str:
        return str(self.body["metadata"]["uid"])


def secret_name(grant: str) -> str:
    return f"{grant}{SECRET_SUFFIX}"


def grant_secret(namespace: str, grant: str, uid: str, data: dict[str, str]) -> dict[str, Any]:
    """The grant's Secret, controlled by the grant. blockOwnerDeletion: under the admission
    plugin OwnerReferencesPermissionEnforcement, writing it needs update on
    zoomusergrants/finalizers, which the chart's RBAC grants."""
    owner = {
        "apiVersion": API_VERSION,
        "kind": "ZoomUserGrant",
        "name": grant,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return manifest(namespace, secret_name(grant), data, owner=owner)


def grant_progress(state: GrantState) -> Progress:
    """Ready is Current. A grant waiting for its user's consent, or for its account, is on its
    way (Reconciling: a person is expected to act on the link in its status); one Zoom revoked,
    or whose refresh was interrupted, needs its user to authorize again (Stalled)."""
    if state.ready:
        return Progress.CURRENT
    return Progress.STALLED if state.reason in (REVOKED, INTERRUPTED) else Progress.RECONCILING
