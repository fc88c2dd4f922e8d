"""Which Secrets the operator may read on behalf of a MeetingBot or a ZoomAccount.

The operator can read every Secret in the namespaces it watches; the authors of MeetingBots and
ZoomAccounts may not. So that naming a Secret in a spec gains them nothing (its value copied
into a bot pod running an image they chose, or sent to a Zoom endpoint), a Secret is used only
when whoever manages it opted in, with the label `meetingbot.dev/secret-for` naming the use:

- `zoom-credentials`: a ZoomAccount's sdkCredentialsSecretRef and apiCredentialsSecretRef
- `meeting-passcode`: a MeetingBot's meeting.passcodeSecretRef
- `obf-token`: a MeetingBot's obf.userTokenSecretRef

One use per Secret: a credentials Secret cannot be named as a passcode and mounted into a pod.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from meetingbot_operator.models import GROUP

USE_LABEL = f"{GROUP}/secret-for"


class SecretUse(StrEnum):
    ZOOM_CREDENTIALS = "zoom-credentials"
    MEETING_PASSCODE = "meeting-passcode"
    OBF_TOKEN = "obf-token"  # noqa: S105 - a label value, not a token


@dataclass(frozen=True)
class SecretView:
    labels: dict[str, str]
    data: dict[str, str]


class SecretNotAllowed(Exception):
    """A Secret exists but was not labelled for this use."""


def usable(secret: SecretView, name: str, use: SecretUse) -> dict[str, str]:
    """The Secret's data if it was opted in for `use`; else SecretNotAllowed, with the fix."""
    if secret.labels.get(USE_LABEL) != use.value:
        raise SecretNotAllowed(
            f"Secret {name!r} is not labelled {USE_LABEL}={use.value}; whoever manages it must "
            f"add that label before the operator will use it"
        )
    return secret.data
