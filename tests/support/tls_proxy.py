"""A TLS-intercepting HTTPS proxy on loopback, as corporate proxies are: a client sends
`CONNECT host:443`, the proxy answers as that host with a certificate of its own CA (which the
client trusts only if given the CA bundle), reads the client's requests and forwards them to
an upstream of the test's choosing. What it saw is recorded (method, host and path), never a
body.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trustme

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}


@dataclass
class InterceptingProxy:
    """`routes` maps a host name clients ask for to the http:// URL requests go on to."""

    routes: dict[str, str]
    ca_bundle: Path
    url: str = ""
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # method, host, path
    refused_tls: int = 0  # handshakes the client gave up (it did not trust the CA)


@contextlib.asynccontextmanager
async def intercepting_proxy(
    routes: dict[str, str], workdir: Path
) -> AsyncIterator[InterceptingProxy]:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*routes).configure_cert(server_context)
    bundle = workdir / "corporate-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    proxy = InterceptingProxy(routes, bundle)
    upstream = httpx.AsyncClient(timeout=10)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            method, target, _ = request.split("\r\n", 1)[0].split(" ", 2)
            host = target.rsplit(":", 1)[0]
            if method != "CONNECT" or host not in routes:
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await writer.drain()
            try:
                await writer.start_tls(server_context)
            except (ssl.SSLError, ConnectionError):
                proxy.refused_tls += 1
                return
            await _serve(reader, writer, host, routes[host], upstream, proxy)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, ValueError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proxy.url = f"http://127.0.0.1:{port}"
    try:
        yield proxy
    finally:
        server.close()
        await server.wait_closed()
        await upstream.aclose()


async def _serve(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    host: str,
    base: str,
    upstream: httpx.AsyncClient,
    proxy: InterceptingProxy,
) -> None:
    """HTTP/1.1 requests inside the tunnel, one after another (keep-alive), each forwarded."""
    while True:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        except asyncio.IncompleteReadError:
            return
        lines = head.split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        length = int(next((v for k, v in headers.items() if k.lower() == "content-length"), 0))
        body = await reader.readexactly(length) if length else b""
        proxy.seen.append((method, host, path.split("?", 1)[0]))
        forward = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
        answer = await upstream.request(method, base + path, headers=forward, content=body)
        reply = [f"HTTP/1.1 {answer.status_code} {answer.reason_phrase}"]
        reply += [
            f"{k}: {v}"
            for k, v in answer.headers.items()
            if k.lower() not in HOP_BY_HOP | {"content-length", "content-encoding"}
        ]
        reply.append(f"Content-Length: {len(answer.content)}")
        writer.write(("\r\n".join(reply) + "\r\n\r\n").encode("latin-1") + answer.content)
        await writer.drain()
