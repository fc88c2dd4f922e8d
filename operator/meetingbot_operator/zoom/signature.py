"""The Meeting SDK join signature: a JWT signed (HS256) with the SDK app's secret."""

from __future__ import annotations

import hashlib
import hmac
import time

import jwt
from pydantic import SecretStr

from meetingbot_operator.zoom.credentials import SdkCredentials

MIN_LIFETIME_SECONDS = 1800
MAX_LIFETIME_SECONDS = 48 * 3600
# Issued slightly in the past so a bot host whose clock runs behind still accepts it.
CLOCK_SKEW_SECONDS = 30


def sdk_signature(
    credentials: SdkCredentials,
    meeting_number: str,
    *,
    role: int = 0,
    lifetime_seconds: int = 2 * 3600,
    now: float | None = None,
) -> SecretStr:
    """Sign a join (role 0) or start (role 1) signature for one meeting."""
    if not MIN_LIFETIME_SECONDS <= lifetime_seconds <= MAX_LIFETIME_SECONDS:
        raise ValueError(
            f"signature lifetime must be {MIN_LIFETIME_SECONDS}..{MAX_LIFETIME_SECONDS} s, "
            f"got {lifetime_seconds}"
        )
    if role not in (0, 1):
        raise ValueError(f"role must be 0 (join) or 1 (start), got {role}")
    if not meeting_number.isdigit():
        raise ValueError("meeting number must be digits only")
    iat = int(now if now is not None else time.time()) - CLOCK_SKEW_SECONDS
    exp = iat + lifetime_seconds
    claims = {
        "appKey": credentials.sdk_key,
        "sdkKey": credentials.sdk_key,
        "mn": meeting_number,
        "role": role,
        "iat": iat,
        "exp": exp,
        "tokenExp": exp,
    }
    token = jwt.encode(claims, credentials.sdk_secret.get_secret_value(), algorithm="HS256")
    return SecretStr(token)


def rtms_handshake_signature(
    client_id: str, client_secret: str, meeting_uuid: str, stream_id: str
) -> str:
    """RTMS's handshake signature (both sockets): hex HMAC-SHA256 over
    `client_id,meeting_uuid,rtms_stream_id` with the app's client secret (docs/rtms.md)."""
    message = f"{client_id},{meeting_uuid},{stream_id}".encode()
    return hmac.new(client_secret.encode(), message, hashlib.sha256).hexdigest()
