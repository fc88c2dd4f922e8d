"""Chromium driven over the DevTools protocol (CDP), on a pipe, from the bot's own process.

Why not Playwright: its Python package drives the browser through a Node.js process that relays
every message. In a simulated meeting that relay was 124 MB of the bot's 555 MB PSS, and the
bot needs only a handful of commands (a page, a binding, navigation, evaluation, a screenshot).
`--remote-debugging-pipe` makes Chromium read commands from fd 3 and write replies and events to
fd 4, as NUL-terminated JSON; no port is opened, and nothing else in the pod can drive it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 30.0
CLOSE_TIMEOUT = 5.0
POLL_SECONDS = 0.1
# The last poll of a wait_for still gets this long to answer (the wait ends by then).
LAST_POLL_SECONDS = 1.0
# Page errors are cut to this length: a stack trace is enough to find the line.
ERROR_CHARS = 500

Handler = Callable[[dict[str, Any]], None]


class CdpError(Exception):
    """A command the browser refused, a page script that threw, or a browser that went away."""


class BrowserClosed(CdpError):
    pass


class BrowserUnresponsive(CdpError):
    """A command got no reply within its deadline: the browser (or its page) stopped answering."""


class _Pipe(asyncio.Protocol):
    """Splits fd 4's stream into messages and hands each to the browser."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\0")) >= 0:
            message = bytes(self.buffer[:end])
            del self.buffer[: end + 1]
            self.browser._dispatch(json.loads(message))

    def connection_lost(self, exc: Exception | None) -> None:
        self.browser._lost()


class Browser:
    """One Chromium process, its temporary profile and the pipe to it."""

    def __init__(self, pid: int, profile: Path) -> None:
        self.pid = pid
        self.profile = profile
        self._writer: asyncio.WriteTransport | None = None
        self._reader: asyncio.ReadTransport | None = None
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._handlers: dict[tuple[str | None, str], list[Handler]] = {}
        self._on_lost: list[Callable[[], None]] = []
        self.closed = False
        self._closing = False

    # --- the connection ---------------------------------------------------------------------

    async def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = COMMAND_TIMEOUT,
    ) -> dict[str, Any]:
        if self.closed or self._writer is None:
            raise BrowserClosed(f"{method}: the browser has gone")
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        reply = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = reply
        self._writer.write(json.dumps(message).encode() + b"\0")
        try:
            # asyncio.wait, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # that arrives as the reply does, and a caller's own deadline (asyncio.timeout)
            # then never fires: a poll loop ran until pytest's 600 s timeout so.
            done, _ = await asyncio.wait({reply}, timeout=max(timeout, 0.0))
            if not done:
                raise BrowserUnresponsive(f"{method}: no reply in {timeout:.3g} s")
            result: dict[str, Any] = reply.result()
            return result
        finally:
            self._pending.pop(message["id"], None)

    def on(self, method: str, handler: Handler, session: str | None = None) -> None:
        self._handlers.setdefault((session, method), []).append(handler)

    def on_lost(self, callback: Callable[[], None]) -> None:
        self._on_lost.append(callback)

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "id" in message:
            reply = self._pending.get(message["id"])
            if reply is None or reply.done():
                return
            if "error" in message:
                error = message["error"]
                reply.set_exception(CdpError(str(error.get("message", error))[:ERROR_CHARS]))
            else:
                reply.set_result(message.get("result", {}))
            return
        key = (message.get("sessionId"), message.get("method", ""))
        for handler in self._handlers.get(key, []):
            try:
                handler(message.get("params", {}))
            except Exception:  # a handler's bug must not stop the pipe
                log.exception("CDP event handler failed", extra={"event": key[1]})

    def _lost(self) -> None:
        if self.closed:
            return
        self.closed = True
        for reply in self._pending.values():
            if not reply.done():
                reply.set_exception(BrowserClosed("the browser has gone"))
        if not self._closing:
            for callback in self._on_lost:
                callback()

    # --- pages --------------------------------------------------------------------------------

    async def new_page(self, timeout: float = COMMAND_TIMEOUT) -> Page:
        target = await self.send("Target.createTarget", {"url": "about:blank"}, timeout=timeout)
        attached = await self.send(
            "Target.attachToTarget",
            {"targetId": target["targetId"], "flatten": True},
            timeout=timeout,
        )
        page = Page(self, attached["sessionId"])
        await page._enable(timeout)
        return page

    # --- the process --------------------------------------------------------------------------

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Ask the browser to close, then make sure its whole process group is gone."""
        self._closing = True
        if not self.closed:
            with contextlib.suppress(CdpError):
                await self.send("Browser.close", timeout=timeout)
        self.closed = True
        if not await _exited(self.pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            await _exited(self.pid, timeout)
        with contextlib.suppress(ProcessLookupError):
            # Renderers and zygotes left behind by a crashed browser process.
            os.killpg(self.pid, signal.SIGKILL)
        for transport in (self._writer, self._reader):
            if transport is not None:
                transport.close()
        await asyncio.to_thread(shutil.rmtree, self.profile, True)


class Page:
    """One tab, attached as a flat session."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    async def send(
        self, method: str, params: dict[str, Any] | None = None, timeout: float = COMMAND_TIMEOUT
    ) -> dict[str, Any]:
        return await self.browser.send(method, params, self.session, timeout)

    async def _enable(self, timeout: float = COMMAND_TIMEOUT) -> None:
        for domain in ("Page", "Runtime", "Inspector"):
            await self.send(f"{domain}.enable", timeout=timeout)

    def on_crash(self, callback: Callable[[str], None]) -> None:
        """The renderer crashed, or the browser itself went away."""
        self.browser.on(
            "Inspector.targetCrashed", lambda _: callback("the page crashed"), self.session
        )
        self.browser.on_lost(lambda: callback("the browser exited"))

    async def expose_function(self, name: str, callback: Callable[..., None]) -> None:
        """window.<name>(...args) calls callback(*args) here; JSON values only, no reply."""
        binding = f"__cdp_{name}"
        await self.send("Runtime.addBinding", {"name": binding})
        source = (
            f"window[{json.dumps(name)}] = (...args) => "
            f"window[{json.dumps(binding)}](JSON.stringify(args));"
        )
        await self.send("Page.addScriptToEvaluateOnNewDocument", {"source": source})

        def called(params: dict[str, Any]) -> None:
            if params.get("name") == binding:
                callback(*json.loads(params.get("payload") or "[]"))

        self.browser.on("Runtime.bindingCalled", called, self.session)

    async def goto(self, url: str, timeout: float = COMMAND_TIMEOUT) -> None:
        """Navigate and wait for the load event."""
        loaded: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def load(_: dict[str, Any]) -> None:
            if not loaded.done():
                loaded.set_result(None)

        self.browser.on("Page.loadEventFired", load, self.session)
        deadline = _Deadline(timeout)
        navigated = await self.send("Page.navigate", {"url": url}, deadline.left())
        if navigated.get("errorText"):
            raise CdpError(f"navigation failed: {navigated['errorText']}")
        done, _ = await asyncio.wait({loaded}, timeout=deadline.left())
        if not done:
            loaded.cancel()
            raise BrowserUnresponsive(f"Page.navigate: no load event in {timeout:.3g} s")

    async def evaluate(self, expression: str, timeout: float = COMMAND_TIMEOUT) -> Any:
        """The expression's value (awaited if a promise), as JSON."""
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            thrown = details.get("exception", {}).get("description") or details.get("text")
            # The message never echoes the expression: it may hold a ZAK or a signature.
            raise CdpError(f"the page threw: {str(thrown)[:ERROR_CHARS]}")
        return result.get("result", {}).get("value")

    async def call(self, function: str, argument: Any, timeout: float = COMMAND_TIMEOUT) -> Any:
        """function(argument) in the page, the argument passed as JSON."""
        return await self.evaluate(f"({function})({json.dumps(argument)})", timeout)

    async def wait_for(self, expression: str, timeout: float = COMMAND_TIMEOUT) -> Any:
        """Poll until the expression is truthy; its value. TimeoutError when it stays falsy
        past `timeout`; BrowserUnresponsive when the page stops answering. The deadline is
        checked by the loop itself, never left to a cancellation (see Browser.send)."""
        deadline = _Deadline(timeout)
        # The page has nobody to tell us: poll, as Playwright's wait_for_function does.
        while True:
            value = await self.evaluate(expression, max(deadline.left(), LAST_POLL_SECONDS))
            if value:
                return value
            if deadline.left() <= 0:
                raise TimeoutError(f"the page's condition was not met in {timeout:g} s")
            await asyncio.sleep(min(POLL_SECONDS, deadline.left()))

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", {"format": "png"})
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))


class _Deadline:
    """Seconds left until a deadline set now (never below zero)."""

    def __init__(self, seconds: float) -> None:
        self._at = time.monotonic() + seconds

    def left(self) -> float:
        return max(self._at - time.monotonic(), 0.0)


@contextlib.asynccontextmanager
async def launch(executable: str, args: list[str]) -> AsyncIterator[Browser]:
    """Start Chromium on a pipe with a throwaway profile; closed (process group and all) after."""
    profile = Path(tempfile.mkdtemp(prefix="meetingbot-chromium-"))
    to_browser = os.pipe()
    from_browser = os.pipe()
    # Chromium reads fd 3 and writes fd 4. Every end is first moved above 9, so that the
    # child's dup2 onto 3 and 4 cannot overwrite an end it has yet to move.
    child_read, child_write, our_write, our_read = (
        fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        for fd in (to_browser[0], from_browser[1], to_browser[1], from_browser[0])
    )
    for fd in (*to_browser, *from_browser):
        os.close(fd)
    argv = [executable, *args, f"--user-data-dir={profile}", "--remote-debugging-pipe"]
    try:
        pid = os.posix_spawn(  # noqa: ASYNC221 - spawns and returns; nothing waits here
            executable,
            argv,
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                # Chromium's own chatter (D-Bus, GPU probing) is not the bot's log.
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, child_read, 3),
                (os.POSIX_SPAWN_DUP2, child_write, 4),
            ],
            # Its own process group, so that close() can end renderers and zygotes too.
            setsid=True,
        )
    except OSError:
        for fd in (child_read, child_write, our_write, our_read):
            os.close(fd)
        shutil.rmtree(profile, ignore_errors=True)
        raise
    finally:
        # Only the child holds these now: our end of the pipe sees EOF when it exits.
        with contextlib.suppress(OSError):
            os.close(child_read)
            os.close(child_write)
    browser = Browser(pid, profile)
    loop = asyncio.get_running_loop()
    try:
        browser._writer, _ = await loop.connect_write_pipe(
            asyncio.Protocol, os.fdopen(our_write, "wb", buffering=0)
        )
        browser._reader, _ = await loop.connect_read_pipe(
            lambda: _Pipe(browser), os.fdopen(our_read, "rb", buffering=0)
        )
        # The first reply proves the browser is up and speaking the protocol.
        await browser.send("Browser.getVersion")
        yield browser
    finally:
        await browser.close()


async def _exited(pid: int, timeout: float) -> bool:
    """Reap the browser process; whether it exited within the timeout."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(pidfd, readable.set)
    waiting = asyncio.ensure_future(readable.wait())
    try:
        await asyncio.wait({waiting}, timeout=timeout)
        if readable.is_set():
            with contextlib.suppress(ChildProcessError):
                # Already exited (its pidfd is readable): this reaps without blocking.
                os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222
            return True
        return False
    finally:
        waiting.cancel()
        loop.remove_reader(pidfd)
        os.close(pidfd)
