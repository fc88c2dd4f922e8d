"""A stream worker: one process receiving many RTMS streams (docs/rtms.md#the-stream-workers).

It asks the operator's leader for work with a long poll that is also its heartbeat (what it
holds, whether each stream is up, ended, delivered), and does what the answer says: take
these streams (each with its handshake, from the operator: the worker never holds the app's
client secret), let those go. Each stream is a session (session.py) feeding a recorder
(recorder.py) that writes to the stream's own spool directory, and an uploader that delivers
the files through the operator's presigned uploads (never a storage key here).

A stream's spool directory is `<spool>/rtms/<namespace>/<name>/<index>/<generation>`: a worker
whose container restarts in the same pod finds what it had not delivered and delivers it. On
SIGTERM the worker tells the leader it is leaving (its streams go to other workers at once),
lets its streams go, keeps what it holds and delivers it within the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
from pydantic import ValidationError

from meetingbot_bot.rtms.recorder import RtmsCapture
from meetingbot_bot.rtms.session import RtmsRefused, RtmsSession, StreamLost
from meetingbot_bot.spool import Spool
from meetingbot_bot.stream import LiveStream, hello_for
from meetingbot_bot.uploader import Uploader
from meetingbot_contract.rtms import (
    HeldStream,
    RtmsAudio,
    StreamAssignment,
    StreamRef,
    WorkerHeartbeat,
    WorkerOrders,
    stream_uploads_path,
    worker_path,
)

log = logging.getLogger(__name__)
POLL_SLACK_SECONDS = 10.0  # beyond the operator's hold of a poll
BACKOFF_MAX_SECONDS = 5.0
UPLOADS_AT_ONCE = 8  # across the worker's streams (uploader.py says why)
HANDSHAKES_AT_ONCE = 20  # streams connecting at once (session.py says why)


@dataclass(frozen=True)
class WorkerConfig:
    name: str  # the pod's name (the operator checks it against the token's)
    operator_url: str
    token_file: Path
    spool: Path
    capacity: int = 200
    drain_seconds: float = 20.0  # on SIGTERM, for delivering what is held


class TokenFile:
    """The service account token the kubelet keeps fresh in a file; read again each minute."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._value = ""
        self._read_at = -1e9

    def __call__(self) -> str:
        now = time.monotonic()
        if now - self._read_at > 60.0:
            with contextlib.suppress(OSError):
                self._value = self._path.read_text().strip()
            self._read_at = now
        return self._value


@dataclass
class StreamRun:
    """One stream held: its session (absent for files left by an earlier process), its
    recorder and its uploader."""

    ref: StreamRef
    generation: int
    capture: RtmsCapture | None
    session: RtmsSession | None
    uploader: Uploader
    live: LiveStream | None = None  # the MeetingStream's live stream, if it names one
    ended: bool = False
    drained: bool = False
    error: str | None = None
    over: bool = False  # the stream ended (not let go)
    refused: int | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def held(self) -> HeldStream:
        connected = self.session is not None and self.session.connected and not self.ended
        audio_ms = self.session.audio_bytes * 1000 // 32000 if self.session else 0
        return HeldStream(
            ref=self.ref,
            generation=self.generation,
            connected=connected,
            ended=self.ended,
            drained=self.drained,
            error=self.error,
            over=self.over,
            refused=self.refused,
            audio_ms=audio_ms,
            leftover=self.session is None,
        )


class StreamWorker:
    def __init__(self, config: WorkerConfig, stop: asyncio.Event) -> None:
        self.config = config
        self.stop = stop
        self.token = TokenFile(config.token_file)
        self.runs: dict[StreamRef, StreamRun] = {}
        self._ws: aiohttp.ClientSession | None = None
        self._http: httpx.AsyncClient | None = None
        self._uploads = asyncio.Semaphore(UPLOADS_AT_ONCE)
        self._handshakes = asyncio.Semaphore(HANDSHAKES_AT_ONCE)

    async def run(self) -> None:
        # No connection limit: every stream holds two websockets (aiohttp's default of 100
        # held the 51st stream back, measured).
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as ws,
            httpx.AsyncClient(timeout=30.0) as http,
        ):
            self._ws, self._http = ws, http
            self._recover()
            clock = asyncio.create_task(self._tick(), name="rtms-clock")
            try:
                await self._serve()
            finally:
                clock.cancel()
                await self._leave()

    # --- talking to the operator --------------------------------------------------------------

    async def _serve(self) -> None:
        failures = 0
        while not self.stop.is_set():
            # What this poll tells the leader is delivered may be forgotten once it is told.
            told_done = {ref for ref, run in self.runs.items() if run.ended and run.drained}
            orders = await self._poll(leaving=False)
            if orders is None:
                failures += 1
                delay = min(0.25 * 2**failures, BACKOFF_MAX_SECONDS) * random.uniform(0.5, 1)  # noqa: S311
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), delay)
                continue
            failures = 0
            self._forget(told_done)
            for assignment in orders.take:
                self._take(assignment)
            for ref in orders.release:
                await self._release(ref)

    async def _poll(self, *, leaving: bool) -> WorkerOrders | None:
        assert self._http is not None
        beat = WorkerHeartbeat(
            held=[run.held() for run in self.runs.values()],
            capacity=0 if leaving else self.config.capacity,
            leaving=leaving,
        )
        poll = asyncio.create_task(
            self._http.post(
                self.config.operator_url + worker_path(self.config.name),
                content=beat.model_dump_json(by_alias=True),
                headers={
                    "Authorization": f"Bearer {self.token()}",
                    "Content-Type": "application/json",
                },
                timeout=POLL_SLACK_SECONDS + 20.0,
            )
        )
        stopping = asyncio.create_task(self.stop.wait())
        try:
            waited = {poll} if leaving else {poll, stopping}
            await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not poll.done():
            poll.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await poll
            return None
        try:
            response = poll.result()
        except httpx.HTTPError as error:
            log.warning("the operator cannot be reached", extra={"error": type(error).__name__})
            return None
        if response.status_code != 200:
            status = response.status_code
            log.warning("the operator did not answer the poll", extra={"status": status})
            return None
        try:
            return WorkerOrders.model_validate_json(response.content)
        except ValidationError:
            log.warning("the operator's answer does not read")
            return None

    # --- streams ------------------------------------------------------------------------------

    def _directory(self, ref: StreamRef, generation: int) -> Path:
        stream = self.config.spool / "rtms" / ref.namespace / ref.name / str(ref.index)
        return stream / str(generation)

    def _uploader(self, ref: StreamRef, generation: int, spool: Spool) -> Uploader:
        path = stream_uploads_path(ref.namespace, ref.name, ref.index)
        uploader = Uploader(
            self.config.operator_url + path,
            self.token,
            generation,
            spool,
            http=self._http,
            limit=self._uploads,
        )
        uploader.start()
        return uploader

    def _take(self, assignment: StreamAssignment) -> None:
        ref, generation = assignment.ref, assignment.generation
        running = self.runs.get(ref)
        if running is not None and running.generation == generation and not running.ended:
            return
        assert self._ws is not None
        spool = Spool(self._directory(ref, generation))
        join = assignment.join
        capture = RtmsCapture(
            spool,
            assignment.segment_seconds,
            audio=join.audio != RtmsAudio.NONE,
            events=assignment.keep_events,
            per_speaker=join.audio == RtmsAudio.PER_SPEAKER,
            sequence_from=max((f.sequence for f in spool.pending()), default=0),
        )
        run = StreamRun(
            ref,
            generation,
            capture,
            RtmsSession(join, capture, self._ws, handshakes=self._handshakes),
            self._uploader(ref, generation, spool),
        )
        if assignment.live is not None:
            hello = hello_for(ref.namespace, ref.name, assignment.uid, generation)
            run.live = LiveStream(assignment.live, hello.model_copy(update={"stream": ref.index}))
            capture.on_line, capture.on_audio = run.live.event, run.live.audio
            run.live.start()
        if running is not None:
            self._retire(running)
        self.runs[ref] = run
        run.task = asyncio.create_task(self._receive(run), name=f"rtms {ref}")
        log.info("stream taken", extra={"stream": str(ref), "generation": generation})

    async def _receive(self, run: StreamRun) -> None:
        assert run.session is not None and run.capture is not None
        try:
            outcome = await run.session.run()
            run.over = not outcome.stopped_by_us
            log.info("stream ended", extra={"stream": str(run.ref), "reason": outcome.reason})
        except RtmsRefused as refused:
            run.error, run.refused, run.over = str(refused), refused.status, True
        except StreamLost as lost:
            run.error, run.over = str(lost), True
        except Exception as error:  # one stream's fault is never the others'
            log.exception("a stream's session failed")
            run.error, run.over = f"the worker's session failed: {type(error).__name__}", True
        finally:
            run.capture.finish(_now_ms())
            run.ended = True
            if run.live is not None:
                await run.live.close("StreamEnded" if run.over else "StreamReleased")
        await self._deliver(run)

    async def _deliver(self, run: StreamRun) -> None:
        """Until everything of the stream is delivered (or the operator refuses it for good)."""
        run.uploader.wake()
        # The uploader's own loop delivers (with its backoff); this only waits for it.
        await run.uploader.delivered_all()
        await run.uploader.close()
        run.drained = True

    async def _release(self, ref: StreamRef) -> None:
        run = self.runs.get(ref)
        if run is not None and run.session is not None and not run.ended:
            log.info("stream let go", extra={"stream": str(ref)})
            await run.session.stop()

    def _retire(self, run: StreamRun) -> None:
        """An older generation of a stream taken again: its session stops, its files go on."""
        if run.session is not None and not run.ended:
            asyncio.create_task(run.session.stop())  # noqa: RUF006 - its task ends the run

    def _forget(self, told_done: set[StreamRef]) -> None:
        """Streams over and delivered leave once the leader was told so (by the poll just
        answered; one that finished meanwhile is told at the next)."""
        for ref in told_done:
            run = self.runs.get(ref)
            if run is not None and run.ended and run.drained:
                del self.runs[ref]

    def _recover(self) -> None:
        """Files an earlier process of this pod captured and did not deliver."""
        root = self.config.spool / "rtms"
        for sidecar_dir in sorted({p.parent for p in root.glob("*/*/*/*/*.json")}):
            try:
                namespace, name, index, generation = sidecar_dir.parts[-4:]
                ref = StreamRef(namespace=namespace, name=name, index=int(index))
                number = int(generation)
            except (ValueError, ValidationError):
                continue
            if ref in self.runs:
                continue  # one run per stream; the next recovery (a restart) finds the rest
            spool = Spool(sidecar_dir)
            run = StreamRun(ref, number, None, None, self._uploader(ref, number, spool), ended=True)
            self.runs[ref] = run
            run.task = asyncio.create_task(self._deliver(run), name=f"rtms {ref} leftovers")
            log.info("delivering what an earlier process left", extra={"stream": str(ref)})

    async def _tick(self) -> None:
        while True:
            now = _now_ms()
            for run in list(self.runs.values()):
                if run.capture is not None and not run.ended:
                    run.capture.tick(now)
                    if run.capture.files:
                        run.capture.files = 0
                        run.uploader.wake()
            await asyncio.sleep(1.0)

    # --- leaving ------------------------------------------------------------------------------

    async def _leave(self) -> None:
        """SIGTERM: the leader moves the streams at once; keep what is held, deliver it."""
        if self.runs:
            await self._poll(leaving=True)
        for run in list(self.runs.values()):
            if run.session is not None and not run.ended:
                await run.session.stop()
        tasks = [run.task for run in self.runs.values() if run.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=self.config.drain_seconds)
        for run in self.runs.values():
            if run.task is not None and not run.task.done():
                run.task.cancel()
        left = sum(run.uploader.pending()[0] for run in self.runs.values())
        log.info("stream worker leaving", extra={"undelivered_files": left})


def _now_ms() -> int:
    return int(time.time() * 1000)
