"""A notification as sent: a CloudEvents 1.0 envelope in structured JSON mode, signed the
Standard Webhooks way (https://www.standardwebhooks.com/): the headers webhook-id,
webhook-timestamp and webhook-signature = "v1," + base64(HMAC-SHA256(key, id.timestamp.body)).
The key is the bytes of the Secret's value after its `whsec_` prefix, base64-decoded, which is
what Standard Webhooks' own libraries verify with."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

from meetingbot_api import API_VERSION, PendingEvent, event_id

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
MIN_KEY_BYTES = 24


class BadSigningSecret(ValueError):
    """The signing Secret's value is not a Standard Webhooks secret (never says the value)."""


def signing_key(value: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret (the prefix optional)."""
    text = value.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadSigningSecret(
            "the signing secret is not whsec_ followed by base64 (e.g. the output of "
            "`echo whsec_$(openssl rand -base64 32)`)"
        ) from None
    if len(key) < MIN_KEY_BYTES:
        raise BadSigningSecret(f"the signing secret is shorter than {MIN_KEY_BYTES} bytes")
    return key


def envelope(
    namespace: str, name: str, uid: str, event: PendingEvent, plural: str = "meetingbots"
) -> bytes:
    """The request body: the CloudEvent for `event` of the object namespace/name (uid `uid`;
    a MeetingBot, or with `plural` a MeetingStream)."""
    document = {
        "specversion": "1.0",
        "id": event_id(uid, event.seq),
        "source": f"/apis/{API_VERSION}/namespaces/{namespace}/{plural}/{name}",
        "type": event.type.value,
        "subject": f"{namespace}/{name}",
        "time": event.time.isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "sequence": event.seq,
        "data": {
            "namespace": namespace,
            "name": name,
            "uid": uid,
            **event.data.model_dump(mode="json", by_alias=True, exclude_none=True),
        },
    }
    return json.dumps(document, separators=(",", ":")).encode()


def signed_headers(key: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers for `body`, sent at `timestamp` (seconds since the epoch)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }
