"""The token a bot presents to its live stream's endpoint: a JWT (HS256) the operator issues
for one attempt, signed with the stream's signing secret, which the receiver verifies it with
(meetingbot_contract/stream.py lists the claims). The bot holds the token, never the secret."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import jwt
from pydantic import SecretStr

from meetingbot_contract.stream import TOKEN_ISSUER
from meetingbot_operator.settings import endpoint_allowed

# Beyond the attempt's longest possible stay: its start and the SDK's join.
TOKEN_MARGIN = timedelta(hours=1)
# The HTTP scheme whose allow-list entries cover a WebSocket scheme.
HTTP_OF = {"ws": "http", "wss": "https"}


def stream_allowed(url: str, allowed: list[str]) -> bool:
    """Whether a ws(s):// URL lies under an allowed http(s):// base URL (the same list as
    webhooks: the endpoints of the team's own backends)."""
    parts = urlsplit(url)
    scheme = HTTP_OF.get(parts.scheme)
    return scheme is not None and endpoint_allowed(
        urlunsplit(parts._replace(scheme=scheme)), allowed
    )


def stream_token(
    key: bytes,
    *,
    url: str,
    namespace: str,
    name: str,
    uid: str,
    attempt: int,
    now: datetime,
    lifetime: timedelta,
    stream: int | None = None,
) -> SecretStr:
    """`stream`: a MeetingStream's stream index (the claim `stream`; `attempt` is then the
    stream's generation)."""
    claims: dict[str, object] = {
        "iss": TOKEN_ISSUER,
        "aud": url,
        "sub": f"{namespace}/{name}",
        "uid": uid,
        "attempt": attempt,
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime + TOKEN_MARGIN).timestamp()),
    }
    if stream is not None:
        claims["stream"] = stream
    return SecretStr(jwt.encode(claims, key, algorithm="HS256"))
