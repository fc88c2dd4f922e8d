"""The operator's HTTP client for the Kubernetes API: aiohttp, JSON in and out, nothing more.

Why not kubernetes_asyncio: importing it costs 35 MB of RSS (its thousand generated model
modules; measured: kopf plus our dependencies 54 MB without it, 89 MB with it) and the
operator used none of it but a handful of verbs, all with plain dict bodies. The login is
the one kopf also uses (`connection()`), so both talk to the API server the same way.

Every request has a timeout; a 401 logs in again once (a service account's token rotates on
disk) and repeats the request once; a watch refused with a 401 logs in again and is repeated
by its caller. Failures are ApiError, which carries the API server's Status but never prints
the request's body.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import json
import os
import random
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import orjson

from meetingbot_api import GROUP, VERSION
from meetingbot_operator.metrics import KUBE_REQUESTS

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MERGE_PATCH = "application/merge-patch+json"
# Requests in flight to the API server at once.
CONNECTIONS = 32
# asyncio gives each TLS connection a read buffer of 256 KiB (sslproto.SSLProtocol.max_size),
# zero-filled, so resident: 100 connections were 26 MB of a 1000-bot burst's peak, and an
# operator given 100 namespaces by name (seven watches in each) held 317 MB with no bot at
# all. A TLS record carries at most 16 KiB, and reading a list of 8 MB took the same CPU with
# 16 KiB as with 256 KiB (tls_read_buffers).
TLS_READ_BUFFER = 16 * 1024
# Watches have a pool of their own, without a limit: HTTP/1.1 gives each open watch a
# connection for its whole life (client-go's watches share one HTTP/2 connection), and with
# exact namespaces the operator holds three in each namespace it leads (kube/watch.py). In the
# requests' pool, 11 namespaces' watches took every connection and no request was ever sent.
# How many are open is the operator's configuration, never its load.
WATCH_CONNECTIONS = 0
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)
# 429 Too Many Requests: sent again at most this many times, waiting what Retry-After says (at
# most THROTTLED_MAX_SECONDS), jittered, then the ApiError is the caller's.
THROTTLED_RETRIES = 5
THROTTLED_MAX_SECONDS = 10.0


def tls_read_buffers() -> None:
    """Make asyncio's TLS read buffer TLS_READ_BUFFER bytes, for every connection this
    process opens from now on (ours, kopf's). Measured with the operator given 100 namespaces
    by name, idle: 317 MB of RSS with asyncio's 256 KiB, 176 MB with 64 KiB, 141 MB with
    16 KiB; 30 reads of an 8 MB list of ConfigMaps took 1.20-1.28 s of CPU with any of the
    three (docs/benchmarks.md, "What tenants cost an idle operator"). The attribute is
    asyncio's, not a documented setting: where a Python has none of that name, its default
    stays (a unit test says so)."""
    protocol = getattr(asyncio.sslproto, "SSLProtocol", None)
    if protocol is not None and isinstance(getattr(protocol, "max_size", None), int):
        protocol.max_size = TLS_READ_BUFFER


def resource_of(path: str) -> str:
    """The resource a request path names ("pods", "meetingbots/status"...), without
    the group, version, namespace or object name (a metric's label must stay few)."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    rest = parts[2:] if parts[0] == "api" else parts[3:]  # after api/v1 or apis/group/version
    if len(rest) > 2 and rest[0] == "namespaces":
        rest = rest[2:]
    return rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "") if rest else "(root)"


class ApiError(Exception):
    """A refusal by the API server (or an error status from it)."""

    def __init__(self, status: int, reason: str, body: bytes = b"") -> None:
        super().__init__(f"HTTP {status} {reason}")
        self.status = status
        self.reason = reason
        self.body = body

    @property
    def message(self) -> str:
        """The API server's own message (its Status object's), else the reason."""
        try:
            status = json.loads(self.body or b"{}")
        except (TypeError, ValueError):
            status = {}
        message = status.get("message") if isinstance(status, dict) else None
        return str(message or self.reason or f"HTTP {self.status}")[:1024]


def connection() -> kopf.ConnectionInfo:
    """How to reach the API server: the pod's service account in a cluster (the address from
    KUBERNETES_SERVICE_HOST/PORT, as client-go does, so no DNS is needed), else the
    kubeconfig (KUBECONFIG or ~/.kube/config; a token or a client certificate, no exec
    plugins)."""
    host, port = (
        os.environ.get("KUBERNETES_SERVICE_HOST"),
        os.environ.get("KUBERNETES_SERVICE_PORT"),
    )
    token = SERVICE_ACCOUNT / "token"
    if host and port and token.exists():
        namespace = SERVICE_ACCOUNT / "namespace"
        return kopf.ConnectionInfo(
            server=f"https://{f'[{host}]' if ':' in host else host}:{port}",
            ca_path=str(SERVICE_ACCOUNT / "ca.crt"),
            token=token.read_text().strip(),
            default_namespace=namespace.read_text().strip() if namespace.exists() else None,
        )
    info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    if info is None:
        raise kopf.LoginError("no service account and no kubeconfig: cannot reach Kubernetes")
    return info


# An object or namespace name as the API server accepts it (a DNS subdomain: lower-case
# alphanumerics, '-' and '.', at most 253). Nothing else is ever put into a request path.
OBJECT_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


class InvalidName(ValueError):
    """A value that is not an object name was about to become part of a request path."""

    def __init__(self, value: str) -> None:
        super().__init__(
            f"{value[:64]!r} is not a Kubernetes object name (lower-case letters, digits, '-' "
            "and '.'; at most 253 characters)"
        )


def segment(value: str) -> str:
    """`value` as one path segment, if it is an object name. Names come from specs written by
    tenants: `x/../other`, `../../ns/secrets/name` or `%2F` must never change which object a
    request reaches (aiohttp's URL parser would resolve the dot segments), so anything that
    is not a name is refused rather than quoted. `..` is refused too: a name has no empty
    label, and a path that is only dots would be resolved away."""
    if not OBJECT_NAME.fullmatch(value) or ".." in value:
        raise InvalidName(value)
    return value


def core_path(kind: str, namespace: str, name: str | None = None) -> str:
    """The path of a namespaced core object (of its collection when `name` is None; an
    empty name is refused, or a read of one object would list them all)."""
    path = f"/api/v1/namespaces/{segment(namespace)}/{kind}"
    return path if name is None else f"{path}/{segment(name)}"


def custom_path(plural: str, namespace: str | None = None, name: str | None = None) -> str:
    """The path of our custom resources (all namespaces when `namespace` is None; the
    collection when `name` is None)."""
    scope = f"/namespaces/{segment(namespace)}" if namespace is not None else ""
    path = f"/apis/{GROUP}/{VERSION}{scope}/{plural}"
    return path if name is None else f"{path}/{segment(name)}"


class KubeClient:
    """One connection pool to the API server, shared by everything the operator writes, and
    one for its watches."""

    def __init__(self, info: kopf.ConnectionInfo) -> None:
        self.server = info.server.rstrip("/")
        self._session = self._open(info, CONNECTIONS)
        self._watches = self._open(info, WATCH_CONNECTIONS)
        # Requests take a connection in the order they asked (asyncio's Semaphore is FIFO and
        # lets no newcomer past a waiter). aiohttp's pool is not: a connection given back goes
        # to whoever asks next, and a reconcile worker whose answer just came asks at once for
        # its next bot. At 4000 bots' reports, 32 workers kept the 32 connections while the
        # other 68 passes waited 15-21 s, and at 10 000, 138 status writes timed out waiting
        # (REQUEST_TIMEOUT counted the wait; now it starts with the connection).
        self._turns = asyncio.Semaphore(CONNECTIONS)
        self._relogin = asyncio.Lock()

    @classmethod
    def connect(cls) -> KubeClient:
        return cls(connection())

    @staticmethod
    def _open(info: kopf.ConnectionInfo, limit: int) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit, ssl=info.as_ssl_context()),
            headers={**info.as_http_headers(), "User-Agent": "meetingbot-operator"},
            timeout=REQUEST_TIMEOUT,
        )

    async def close(self) -> None:
        await self._session.close()
        await self._watches.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
        listing: bool = False,
    ) -> dict[str, Any]:
        """The decoded answer to one request; ApiError for any status outside 2xx. `timeout`
        (seconds) replaces the default of REQUEST_TIMEOUT. `listing`: a list a watch starts
        from (or that tells which objects there are), sent on the watches' pool without
        waiting its turn: in the requests' pool it waited behind the writes of the shards
        already led (7.4 s in a 1000-bot burst, for a shard taken in place)."""
        data = orjson.dumps(body) if body is not None else None
        logged_in_again, throttled = False, 0
        turns: contextlib.AbstractAsyncContextManager[Any] = (
            contextlib.nullcontext() if listing else self._turns
        )
        session = self._watches if listing else self._session
        while True:
            async with (
                turns,
                session.request(
                    method,
                    self.server + path,
                    data=data,
                    params=params,
                    headers={"Content-Type": content_type} if data is not None else None,
                    timeout=aiohttp.ClientTimeout(total=timeout) if timeout else REQUEST_TIMEOUT,
                ) as response,
            ):
                raw = await response.read()
                KUBE_REQUESTS.labels(
                    method.lower() + ("-dry-run" if params and "dryRun" in params else ""),
                    resource_of(path),
                    str(response.status),
                ).inc()
                if response.status == 401 and not logged_in_again:
                    logged_in_again = True
                    await self._login_again()
                    continue
                if response.status == 429 and throttled < THROTTLED_RETRIES:
                    throttled += 1
                    delay = throttle_delay(response.headers.get("Retry-After"), throttled)
                elif not 200 <= response.status <= 299:
                    raise ApiError(response.status, response.reason or "", raw)
                else:
                    answer: dict[str, Any] = orjson.loads(raw) if raw else {}
                    return answer
            # The API server's priority and fairness shed the request before running it, so
            # any verb may be sent again (as client-go does), after the wait it asks for.
            await asyncio.sleep(delay)

    async def watch(
        self, path: str, params: Mapping[str, str], timeout_seconds: int
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of one watch request, decoded, until the API server ends it (after
        `timeout_seconds`). ApiError when it refuses (410: the version is too old; 401: the
        credentials are read again first, so the caller's next watch goes through)."""
        timeout = aiohttp.ClientTimeout(total=timeout_seconds + 30, sock_connect=10)
        query = {**params, "watch": "true", "timeoutSeconds": str(timeout_seconds)}
        async with self._watches.get(self.server + path, params=query, timeout=timeout) as response:
            if response.status != 200:
                if response.status == 401:
                    await self._login_again()
                raise ApiError(response.status, response.reason or "", await response.read())
            async for line in _lines(response.content):
                event: dict[str, Any] = orjson.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise ApiError(
                        int(status.get("code") or 500),
                        str(status.get("reason") or "watch error"),
                        orjson.dumps(status),
                    )
                yield event

    async def _login_again(self) -> None:
        """Read the credentials again: a service account's token is rotated on disk. Only
        the headers change; the connection pool and its TLS settings stay."""
        async with self._relogin:
            info = await asyncio.to_thread(connection)
            for session in (self._session, self._watches):
                session.headers.pop("Authorization", None)
                session.headers.update(info.as_http_headers())


async def _lines(stream: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """A watch's events, one JSON document a line, however long a line is: aiohttp's own line
    reading refuses lines over 128 KiB, and a pod or bot may be larger than that."""
    pending = b""
    async for chunk in stream.iter_any():
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield line
    if pending.strip():
        yield pending


def throttle_delay(retry_after: str | None, attempt: int) -> float:
    """How long to wait before sending a throttled request again: Retry-After's seconds when
    the API server gives them (it does, for priority and fairness), else an exponential
    backoff; capped, and jittered so that throttled callers do not come back together."""
    if retry_after is not None and retry_after.isdigit():
        base = float(retry_after)
    else:
        base = 0.5 * 2.0 ** (attempt - 1)
    return min(base, THROTTLED_MAX_SECONDS) * random.uniform(0.8, 1.2)  # noqa: S311
