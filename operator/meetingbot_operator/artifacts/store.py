"""One S3-compatible bucket, as the operator reaches it: read and write the manifest, check an
uploaded object, and presign a bot's upload. Path-style URLs (`{endpoint}/{bucket}/{key}`),
which AWS and every S3-compatible server accept.

Every call has a timeout and bounded retries with jittered backoff on network failures, 429,
500 and 503 (S3's SlowDown), honouring Retry-After. Keys never appear in logs or errors; object
keys do (they are chosen by the operator and hold no secret).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote
from xml.etree import ElementTree

import httpx
from pydantic import SecretStr
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from meetingbot_contract import sigv4
from meetingbot_operator import outbound

log = logging.getLogger(__name__)
RETRYABLE = {429, 500, 502, 503, 504}
S3_XML = "{http://s3.amazonaws.com/doc/2006-03-01/}"
CHECKSUM_HEADER = "x-amz-checksum-sha256"
# Requests in flight to one bucket; the rest wait their turn here. httpx's pool finds a
# connection for a queued request by scanning every queued request (measured at 1000 streams
# starting together: 70 % of the operator's CPU in that scan, webhooks answered late).
CONCURRENCY = 16


class StoreError(Exception):
    """A call the store refused or that could not reach it (the message names the call)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Bucket:
    endpoint: str  # https://s3.<region>.amazonaws.com or an allowed custom endpoint
    name: str
    region: str
    access_key: SecretStr
    secret_key: SecretStr


@dataclass(frozen=True)
class StoredObject:
    size: int
    sha256: str | None  # hex, when the store keeps the upload's checksum


def checksum_header(sha256_hex: str) -> str:
    """The value S3 wants in x-amz-checksum-sha256: the digest in base64."""
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode()


class ObjectStore:
    def __init__(self, bucket: Bucket, *, timeout: float = 10.0, attempts: int = 4) -> None:
        self.bucket = bucket
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        self._http = outbound.client(timeout=timeout, limits=limits)
        self._turns = asyncio.Semaphore(CONCURRENCY)
        self._attempts = attempts

    async def close(self) -> None:
        await self._http.aclose()

    def url(self, key: str) -> str:
        return f"{self.bucket.endpoint.rstrip('/')}/{self.bucket.name}/{quote(key, safe='/-_.~')}"

    def presign_put(
        self, key: str, sha256_hex: str, size: int, expires_seconds: int
    ) -> tuple[str, dict[str, str]]:
        """A URL that uploads exactly this content to `key`: the checksum and the length are
        signed, so the store refuses any other bytes (and any other key or method)."""
        headers = {CHECKSUM_HEADER: checksum_header(sha256_hex), "content-length": str(size)}
        url = sigv4.presign(
            "PUT",
            self.url(key),
            access_key=self.bucket.access_key.get_secret_value(),
            secret_key=self.bucket.secret_key.get_secret_value(),
            region=self.bucket.region,
            expires_seconds=expires_seconds,
            when=datetime.now(UTC),
            headers=headers,
        )
        return url, headers

    async def put(self, key: str, body: bytes, content_type: str) -> None:
        digest = hashlib.sha256(body).hexdigest()
        headers = {"content-type": content_type, CHECKSUM_HEADER: checksum_header(digest)}
        await self._call("PUT", key, body=body, headers=headers, payload_sha256=digest)

    async def get(self, key: str) -> bytes | None:
        response = await self._call("GET", key, missing_ok=True)
        return None if response is None else response.content

    async def head(self, key: str) -> StoredObject | None:
        response = await self._call(
            "HEAD", key, headers={"x-amz-checksum-mode": "ENABLED"}, missing_ok=True
        )
        if response is None:
            return None
        checksum = response.headers.get(CHECKSUM_HEADER)
        return StoredObject(
            size=int(response.headers.get("content-length", "0")),
            sha256=base64.b64decode(checksum).hex() if checksum else None,
        )

    async def delete(self, key: str) -> None:
        await self._call("DELETE", key, missing_ok=True)

    async def keys(self, prefix: str) -> list[str]:
        """Every key under `prefix` (ListObjectsV2, page by page)."""
        found: list[str] = []
        token = ""
        while True:
            query = f"list-type=2&prefix={quote(prefix, safe='')}"
            if token:
                query += f"&continuation-token={quote(token, safe='')}"
            response = await self._call("GET", "", query=query)
            assert response is not None
            # The answer of the bucket's endpoint, one the operator allows (not a tenant's).
            page = ElementTree.fromstring(response.content)  # noqa: S314
            found += [e.text or "" for e in page.iter(f"{S3_XML}Key")]
            more = page.findtext(f"{S3_XML}IsTruncated") == "true"
            token = page.findtext(f"{S3_XML}NextContinuationToken") or ""
            if not more or not token:
                return found

    async def _call(
        self,
        method: str,
        key: str,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        payload_sha256: str = sigv4.EMPTY_SHA256,
        missing_ok: bool = False,
        query: str = "",
    ) -> httpx.Response | None:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_random_exponential(multiplier=0.5, max=8),
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._once(
                    method, key, body, headers or {}, payload_sha256, missing_ok, query
                )
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(
        self,
        method: str,
        key: str,
        body: bytes,
        headers: dict[str, str],
        payload_sha256: str,
        missing_ok: bool,
        query: str = "",
    ) -> httpx.Response | None:
        url = self.url(key) + (f"?{query}" if query else "")
        signed = sigv4.authorization(
            method,
            url,
            access_key=self.bucket.access_key.get_secret_value(),
            secret_key=self.bucket.secret_key.get_secret_value(),
            region=self.bucket.region,
            when=datetime.now(UTC),
            payload_sha256=payload_sha256,
            headers=headers,
        )
        what = f"{method} {self.bucket.name}/{key}"
        try:
            async with self._turns:
                response = await self._http.request(
                    method, url, content=body or None, headers=signed
                )
        except httpx.HTTPError as error:
            raise StoreError(f"{what}: {type(error).__name__}") from None
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 300:
            raise StoreError(
                f"{what}: HTTP {response.status_code} {_code(response)}", response.status_code
            )
        return response


def _retryable(error: BaseException) -> bool:
    return isinstance(error, StoreError) and (error.status is None or error.status in RETRYABLE)


def _code(response: httpx.Response) -> str:
    """S3's error code (e.g. AccessDenied, NoSuchBucket), never the body's other details."""
    text = response.text
    start = text.find("<Code>")
    end = text.find("</Code>")
    return text[start + 6 : end][:64] if 0 <= start < end else ""
