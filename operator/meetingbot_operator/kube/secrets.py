"""Which Secrets the operator may read on behalf of a MeetingBot or a ZoomAccount.

The operator can read every Secret in the namespaces it watches; the authors of MeetingBots and
ZoomAccounts may not. So that naming a Secret in a spec gains them nothing (its value copied
into a bot pod running an image they chose, or sent to a Zoom endpoint), a Secret is used only
when whoever manages it opted in, with the label `meetingbot.dev/secret-for` naming the use:

- `zoom-credentials`: a ZoomAccount's sdkCredentialsSecretRef and apiCredentialsSecretRef
- `meeting-passcode`: a MeetingBot's meeting.passcodeSecretRef
- `obf-token`: a MeetingBot's obf.userTokenSecretRef
- `storage-credentials`: a MeetingBot's artifacts.credentialsSecretRef (read by the operator
  only, to presign uploads: never handed to a bot)
- `webhook-signing`: a MeetingBot's webhook.signingSecretRef (read by the operator only, to
  sign what it sends)
- `bot-env`: a key a MeetingBot's podTemplate.env[].valueFrom.secretKeyRef names (the kubelet
  hands it to the bot container; the operator only checks the label before the pod starts)
- `profile-picture`: a ZoomAccount's picture (a Secret, or a ConfigMap with the same label):
  uploaded to Zoom as the service users' picture, which meeting participants see

One use per Secret: a credentials Secret cannot be named as a passcode and mounted into a pod.
Every read of such a Secret goes through `read_opted_in`, and every Secret the operator writes
is built by `manifest`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from meetingbot_api import GROUP
from meetingbot_contract.reasons import Reason
from meetingbot_operator.kube.client import ApiError

MANAGED_BY = {"app.kubernetes.io/managed-by": "meetingbot-operator"}

USE_LABEL = f"{GROUP}/secret-for"


class SecretUse(StrEnum):
    ZOOM_CREDENTIALS = "zoom-credentials"
    MEETING_PASSCODE = "meeting-passcode"
    OBF_TOKEN = "obf-token"  # noqa: S105 - a label value, not a token
    STORAGE_CREDENTIALS = "storage-credentials"
    WEBHOOK_SIGNING = "webhook-signing"
    PROFILE_PICTURE = "profile-picture"  # a ZoomAccount's picture: a Secret or a ConfigMap
    BOT_ENV = "bot-env"  # a MeetingBot's podTemplate.env[].valueFrom.secretKeyRef


@dataclass(frozen=True)
class SecretView:
    labels: dict[str, str]
    data: dict[str, str]


class SecretProblem(Exception):
    """Why a referenced Secret cannot be used; `reason` is the one a status says it with."""

    reason: Reason


class SecretNotAllowed(SecretProblem):
    """A Secret exists but was not labelled for this use."""

    reason = Reason.SECRET_NOT_ALLOWED


def usable(secret: SecretView, name: str, use: SecretUse) -> dict[str, str]:
    """The Secret's data if it was opted in for `use`; else SecretNotAllowed, with the fix."""
    if secret.labels.get(USE_LABEL) != use.value:
        raise SecretNotAllowed(
            f"Secret {name!r} is not labelled {USE_LABEL}={use.value}; whoever manages it must "
            f"add that label before the operator will use it"
        )
    return secret.data


class SecretMissing(SecretProblem):
    """No Secret of that name."""

    reason = Reason.SECRET_NOT_FOUND


class SecretUnreadable(SecretProblem):
    """The API server refused the operator's read (its RBAC, a policy)."""

    reason = Reason.SECRET_UNREADABLE


class SecretReader(Protocol):
    async def read_secret(self, namespace: str, name: str) -> SecretView | None: ...


async def read_opted_in(
    kube: SecretReader, namespace: str, name: str, use: SecretUse
) -> dict[str, str]:
    """The data of Secret `name`, opted in for `use`: SecretMissing, SecretUnreadable or
    SecretNotAllowed otherwise, each with words a status can show. A reference that is not a
    name raises InvalidName (kube/client.py) before anything is sent."""
    try:
        secret = await kube.read_secret(namespace, name)
    except ApiError as error:
        raise SecretUnreadable(
            f"the operator could not read Secret {name!r}: {error.message}"
        ) from None
    if secret is None:
        raise SecretMissing(f"Secret {name!r} not found")
    return usable(secret, name, use)


def manifest(
    namespace: str,
    name: str,
    data: dict[str, str],
    *,
    owner: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Secret the operator writes: labelled as the operator's, with its owner (the object
    whose deletion takes it along) when it has one."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {**MANAGED_BY, **(labels or {})},
    }
    if annotations:
        metadata["annotations"] = annotations
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata,
        "stringData": data,
    }
