"""AWS Signature Version 4 for S3: signed headers for the operator's own calls and for the
kubectl plugin's reads (with the user's own keys), and presigned URLs for the bots' uploads.
Here, stdlib only, so that the operator and the client share one implementation.

Written here, not taken from botocore: the operator needs two functions of it, and botocore
costs the operator more memory than the rest of its dependencies together (docs/benchmarks.md,
"Why SigV4 by hand"). It follows AWS's specification ("Authenticating Requests: Using Query
Parameters", "Signature Calculations for the Authorization Header"); a unit test checks it
against the example in that specification, and the integration tests against a real S3 server,
which refuses any request whose signature differs by a bit.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import parse_qsl, quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _signing_key(secret: str, day: str, region: str) -> bytes:
    key = _hmac(("AWS4" + secret).encode(), day)
    key = _hmac(key, region)
    key = _hmac(key, "s3")
    return _hmac(key, "aws4_request")


def _canonical_query(pairs: Mapping[str, str]) -> str:
    return "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(pairs.items())
    )


def _host(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    # The path is sent as it is in the URL (already encoded by object_url); S3 does not
    # normalise it.
    return parts.netloc, parts.path or "/"


def _signature(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    payload: str,
    secret: str,
    region: str,
    when: datetime,
) -> tuple[str, str]:
    """The signature and the signed header names, for a request whose headers (lower-cased
    names, including host) are all signed."""
    names = sorted(headers)
    canonical = "\n".join(
        [
            method,
            path,
            query,
            "".join(f"{n}:{' '.join(headers[n].split())}\n" for n in names),
            ";".join(names),
            payload,
        ]
    )
    day = when.strftime("%Y%m%d")
    scope = f"{day}/{region}/s3/aws4_request"
    text = "\n".join(
        [
            ALGORITHM,
            when.strftime("%Y%m%dT%H%M%SZ"),
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = _signing_key(secret, day, region)
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest(), ";".join(names)


def presign(
    method: str,
    url: str,
    *,
    access_key: str,
    secret_key: str,
    region: str,
    expires_seconds: int,
    when: datetime,
    headers: Mapping[str, str] | None = None,
) -> str:
    """A URL that performs `method` on `url` until it expires. Every header given is signed:
    the holder must send each with exactly this value (that is how an upload is bound to its
    checksum)."""
    host, path = _host(url)
    signed = {"host": host, **{k.lower(): v for k, v in (headers or {}).items()}}
    day = when.strftime("%Y%m%d")
    query = {
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{access_key}/{day}/{region}/s3/aws4_request",
        "X-Amz-Date": when.strftime("%Y%m%dT%H%M%SZ"),
        "X-Amz-Expires": str(expires_seconds),
        "X-Amz-SignedHeaders": ";".join(sorted(signed)),
    }
    signature, _ = _signature(
        method, path, _canonical_query(query), signed, UNSIGNED, secret_key, region, when
    )
    return f"{url.split('?', 1)[0]}?{_canonical_query(query)}&X-Amz-Signature={signature}"


def authorization(
    method: str,
    url: str,
    *,
    access_key: str,
    secret_key: str,
    region: str,
    when: datetime,
    payload_sha256: str = EMPTY_SHA256,
    headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers that sign a request (to send with `headers`); its query string is signed."""
    parts = urlsplit(url)
    host, path = _host(url)
    amz = {
        "host": host,
        "x-amz-content-sha256": payload_sha256,
        "x-amz-date": when.strftime("%Y%m%dT%H%M%SZ"),
        **{k.lower(): v for k, v in (headers or {}).items()},
    }
    canonical_query = _canonical_query(dict(parse_qsl(parts.query, keep_blank_values=True)))
    signature, names = _signature(
        method, path, canonical_query, amz, payload_sha256, secret_key, region, when
    )
    credential = f"{access_key}/{when.strftime('%Y%m%d')}/{region}/s3/aws4_request"
    result = {k: v for k, v in amz.items() if k != "host"}
    result["authorization"] = (
        f"{ALGORITHM} Credential={credential}, SignedHeaders={names}, Signature={signature}"
    )
    return result
