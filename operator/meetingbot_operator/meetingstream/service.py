"""The MeetingStreams the operator knows (from its watch), and Zoom's RTMS webhooks turned
into their statuses: verified, routed to one MeetingStream, recorded before Zoom is answered.

Verification and routing are bound together, as for deauthorization notices: a webhook is
checked against each MeetingStream's own app Secret (its webhookSecretToken), and only the
MeetingStreams whose Secret verified it may receive the stream. Whoever creates a
MeetingStream chooses its app Secret, so a webhook signed with one tenant's token never
reaches another tenant's MeetingStream, whatever meeting it names.

The status is written before the answer when the API server is quick (a status write takes
milliseconds): an answered webhook is then never lost, and one Zoom sends again (a slow answer,
a retry) finds the stream already listed and changes nothing. Zoom asks for the answer at once
and counts one after 3 s as failed. Under a burst (1000 streams starting within seconds,
measured: writes took more than 3 s and Zoom counted most answers failed) the answer waits at
most ANSWER_SECONDS and the write goes on: Zoom retries a late answer only after five minutes,
by when its buffer (60 s of audio) is gone, so answering in time loses less than waiting; only
a crash in that window loses the event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr, ValidationError

from meetingbot_api import (
    STREAM_TERMINAL_PHASES,
    MeetingStream,
    MeetingStreamStatus,
    StreamPhase,
    StreamSession,
    StreamStart,
)
from meetingbot_contract import Reason
from meetingbot_contract.rtms import RtmsAudio, RtmsJoin, StreamAssignment, StreamRef
from meetingbot_operator.kube.client import ApiError, InvalidName
from meetingbot_operator.kube.objects import older
from meetingbot_operator.kube.secrets import (
    SecretMissing,
    SecretNotAllowed,
    SecretUnreadable,
    SecretUse,
    read_opted_in,
)
from meetingbot_operator.kube.verbs import Kube
from meetingbot_operator.meetingstream import status as statuses
from meetingbot_operator.meetingstream.notices import (
    BadNotice,
    Key,
    Receiver,
    RtmsNotice,
    parse,
    recipient,
)
from meetingbot_operator.meetingstream.notifications import notify
from meetingbot_operator.meetingstream.routes import AppRef, StreamRoutes
from meetingbot_operator.settings import rtms_server_allowed
from meetingbot_operator.webhooks.service import WebhookService
from meetingbot_operator.webhooks.stream_token import stream_allowed
from meetingbot_operator.zoom.client import ZoomClient
from meetingbot_operator.zoom.errors import ZoomError
from meetingbot_operator.zoom.signature import rtms_handshake_signature
from meetingbot_operator.zoom.webhooks import (
    URL_VALIDATION,
    NoticeRefused,
    Unverifiable,
    check_form,
    signed_by,
    url_validation_answer,
)

log = logging.getLogger(__name__)
PLURAL = "meetingstreams"
# An app Secret is read at most once a minute: webhooks from anyone on the network must not
# each cost API reads.
APP_SECRET_SECONDS = 60.0
# start: Api: after Zoom accepted the start, this long for its webhook before asking again;
# after a refusal (the meeting not live yet, say), backoff from 5 s to 5 min, jittered.
START_PATIENCE_SECONDS = 60.0
START_BACKOFF_BASE, START_BACKOFF_MAX = 5.0, 300.0
# How long a webhook's answer waits for its status write: Zoom's deadline is 3 s, from its
# connection to our answer, and the connection and the request's own wait on a busy operator
# count too. In a burst of 1000 streams nearly every write took longer than the wait, so the
# wait was all cost: with 2 s, 96 of 1000 answers came after 3 s; with 1 s, 10-224 of 1000
# (the operator's own handler 1-2.5 s); 0.25 s still covers a write to a quick API server.
ANSWER_SECONDS = 0.25


class StreamService:
    def __init__(
        self,
        kube: Kube,
        zoom_of: Callable[[str, str], ZoomClient | None],
        rtms_servers: list[str],
        webhooks: WebhookService | None = None,
        stream_endpoints: list[str] | None = None,
        sharded: bool = False,
    ) -> None:
        self.kube = kube
        # A sharded operator serves no MeetingStream: the stream workers are one pool, polling
        # one desk (docs/operations.md, "Shards"); each stream is told so in its status.
        self._sharded = sharded
        # Where a live stream may go (the operator's webhook endpoints, ws for http).
        self._stream_endpoints = stream_endpoints or []
        # The deliverer of the MeetingStreams' notifications (its outboxes are in status).
        self._webhooks = webhooks
        self._rtms_servers = rtms_servers  # where a stream's signaling server may be
        self._zoom_of = zoom_of  # a ZoomAccount's client while it is verified
        self._starts: dict[Key, tuple[float, int]] = {}  # start: Api: next try, failures
        self._canceling: set[Key] = set()
        self.streams: dict[Key, MeetingStream] = {}
        self._routes = StreamRoutes()  # what a webhook may be for, kept with self.streams
        self._apps: dict[tuple[str, str], tuple[float, dict[str, str]]] = {}
        self._locks: dict[Key, asyncio.Lock] = {}
        self._writes: set[asyncio.Task[None]] = set()
        # Told whenever what the streams want changed (the workers' desk wakes); not for the
        # status writes that only count artifacts or deliveries (at 1000 streams every
        # upload woke every worker's poll, and the polls took 40 % of the operator's CPU).
        self.on_change: Callable[[], None] = lambda: None
        self._wanted: dict[StreamRef, int] | None = None  # wanted(), until a change
        self._wants: dict[Key, tuple[object, list[tuple[datetime, StreamRef, int]]]] = {}
        # The resourceVersion of what self.streams holds: a watch event older than our own
        # last write is skipped (under load the watch trails the writes; taking a late event
        # for the truth, a later write turned a Streaming stream back to Starting).
        self._versions: dict[Key, dict[str, Any]] = {}

    # --- the watch -------------------------------------------------------------------------

    def observe(self, event: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        if event == "DELETED":
            if self._webhooks is not None:
                self._webhooks.forget(key)
            self._changed(self.streams.pop(key, None), None)
            self._routes.hold(key, None)
            self._wants.pop(key, None)
            self._versions.pop(key, None)
            self._locks.pop(key, None)
            self._starts.pop(key, None)
            return
        if older(obj, self._versions.get(key)):
            return
        try:
            stream = MeetingStream.model_validate(obj)
        except ValidationError as error:
            # The CRD's schema is the same model: only an object written before it changed.
            log.warning(
                "a MeetingStream does not read",
                extra={"stream": f"{key[0]}/{key[1]}", "error": str(error)[:200]},
            )
            return
        if self._sharded:
            if stream.status.phase not in STREAM_TERMINAL_PHASES:
                self._spawn(self._write(key, lambda s, now: statuses.needs_one_shard(s, now)))
            return
        self._changed(self.streams.get(key), stream)
        self.streams[key] = stream
        self._routes.hold(key, stream)
        self._versions[key] = {"metadata": {"resourceVersion": meta.get("resourceVersion", "")}}
        self._offer(key, stream)  # a new leader sends what the last one left pending
        if stream.spec.cancel and stream.status.phase not in STREAM_TERMINAL_PHASES:
            if key not in self._canceling:
                self._canceling.add(key)
                self._spawn(self._cancel(key, stream))
        elif stream.spec.stream is not None and not stream_allowed(
            stream.spec.stream.url, self._stream_endpoints
        ):
            self._spawn(self._write(key, lambda s, now: statuses.stream_not_allowed(s, now)))
        elif stream.status.phase is None:
            self._spawn(self._write(key, lambda s, now: statuses.waiting(s, now)))

    # --- the periodic sweep: start: Api, ttlSecondsAfterFinished ------------------------------

    async def sweep(self) -> None:
        """Start what start: Api asks for, delete what ttlSecondsAfterFinished says is done;
        one MeetingStream's failure is its own, never the others'."""
        await self._start_due()
        await self._expire()

    async def _expire(self) -> None:
        now = datetime.now(UTC)
        for key, stream in list(self.streams.items()):
            ttl, done = stream.spec.ttl_seconds_after_finished, stream.status.completion_time
            if ttl is None or done is None or (now - done).total_seconds() < ttl:
                continue
            try:
                await self.kube.delete_custom(PLURAL, key[0], key[1])
            except ApiError as error:
                log.warning(
                    "a finished MeetingStream was not deleted", extra={"error": error.message}
                )
                continue
            log.info("finished MeetingStream deleted (ttlSecondsAfterFinished)",
                     extra={"stream": f"{key[0]}/{key[1]}"})  # fmt: skip

    async def _cancel(self, key: Key, stream: MeetingStream) -> None:
        """spec.cancel: finish it; with start: Api and a stream live, ask Zoom to stop it."""
        live = any(s.ended_at is None for s in stream.status.streams)
        spec = stream.spec
        if live and spec.start == StreamStart.API and spec.meeting and spec.account_ref:
            zoom = self._zoom_of(key[0], spec.account_ref.name)
            app = await self._app_secret(key[0], spec.app_credentials_secret_ref.name)
            if zoom is not None and app.get("clientId"):
                try:
                    await zoom.rtms_app_status(spec.meeting.number, app["clientId"], "stop")
                except ZoomError as error:
                    log.info("zoom did not stop the stream", extra={"reason": error.reason})
        try:
            await self._write(key, lambda s, now: statuses.canceled(s, now))
        finally:
            self._canceling.discard(key)

    async def _start_due(self) -> None:
        now = time.monotonic()
        for key, stream in list(self.streams.items()):
            spec = stream.spec
            if (
                spec.start != StreamStart.API
                or spec.cancel
                or spec.meeting is None
                or spec.account_ref is None
                or stream.status.phase not in (None, StreamPhase.WAITING)
                or self._starts.get(key, (0.0, 0))[0] > now
            ):
                continue
            note = await self._ask_zoom(key, stream, now)
            await self._write(key, lambda s, at, note=note: statuses.waiting(s, at, note))

    async def _ask_zoom(self, key: Key, stream: MeetingStream, now: float) -> str:
        assert stream.spec.meeting is not None and stream.spec.account_ref is not None
        failures = self._starts.get(key, (0.0, 0))[1]
        account = stream.spec.account_ref.name
        zoom = self._zoom_of(key[0], account)
        app = await self._app_secret(key[0], stream.spec.app_credentials_secret_ref.name)
        try:
            if zoom is None:
                raise ZoomError(
                    Reason.ZOOM_ACCOUNT_NOT_READY, f"ZoomAccount {account} is not ready"
                )
            if not app.get("clientId"):
                raise ZoomError(
                    Reason.SECRET_NOT_ALLOWED,
                    f"Secret {stream.spec.app_credentials_secret_ref.name} has no usable clientId",
                )
            await zoom.rtms_app_status(stream.spec.meeting.number, app["clientId"], "start")
        except ZoomError as error:
            delay = min(START_BACKOFF_BASE * 2**failures, START_BACKOFF_MAX)
            delay *= random.uniform(0.5, 1.0)  # noqa: S311 - jitter
            self._starts[key] = (now + delay, failures + 1)
            log.info("zoom did not start the stream", extra={"stream": f"{key[0]}/{key[1]}"})
            return f"Zoom did not start it ({error.reason}: {error.message}); asking again"
        self._starts[key] = (now + START_PATIENCE_SECONDS, 0)
        number = stream.spec.meeting.number
        return (
            f"the operator asked Zoom to start it (PATCH /live_meetings/{number}/rtms_app/status)"
        )

    # --- Zoom's webhooks -----------------------------------------------------------------------

    async def notice(self, body: bytes, timestamp: str, signature: str) -> dict[str, Any]:
        """A webhook from Zoom on /zoom/rtms: the endpoint's URL validation, or an RTMS event.
        NoticeRefused if no MeetingStream's app signed it, or it is stale."""
        try:
            check_form(timestamp, signature)
        except Unverifiable as error:
            raise NoticeRefused(str(error)) from None
        tokens = await self._verifying_tokens(timestamp, body, signature)
        if not tokens:
            raise NoticeRefused("the signature matches no MeetingStream's app")
        try:
            event = json.loads(body)
        except ValueError:
            raise NoticeRefused("not JSON", 400) from None
        if not isinstance(event, dict):
            raise NoticeRefused("not a JSON object", 400)
        if event.get("event") == URL_VALIDATION:
            plain = str((event.get("payload") or {}).get("plainToken", ""))
            return url_validation_answer(next(iter(tokens.values())), plain)
        try:
            notice = parse(event)
        except BadNotice as error:
            raise NoticeRefused(f"not an RTMS event we can read: {error}", 400) from None
        if notice is None:
            return {}
        if notice.event == "started" and not rtms_server_allowed(
            notice.server_urls, self._rtms_servers
        ):
            # The app's owner signs its webhooks: a server_urls elsewhere would have a stream
            # worker connect to any host from inside the cluster.
            raise NoticeRefused(
                "server_urls is not among the operator's RTMS servers (MEETINGBOT_RTMS_SERVERS)",
                400,
            )
        candidates = self._routes.candidates(notice.meeting_number, notice.stream_id, tokens)
        receivers = [self._receiver(key) for key in candidates]
        key = recipient(notice, receivers)
        if key is None:
            log.info(
                "no MeetingStream takes this stream",
                extra={"stream_id": notice.stream_id, "event": notice.event},
            )
            return {}
        recording = asyncio.ensure_future(self._record(key, notice))
        self._writes.add(recording)
        recording.add_done_callback(self._writes.discard)
        recording.add_done_callback(_log_failure)
        await asyncio.wait({recording}, timeout=ANSWER_SECONDS)  # never cancels it
        if recording.done() and recording.exception() is not None:
            raise NoticeRefused("the status could not be written; send it again", 503)
        return {}

    async def _verifying_tokens(
        self, timestamp: str, body: bytes, signature: str
    ) -> dict[AppRef, str]:
        """The app Secrets (of the MeetingStreams) that signed the webhook, with their token."""
        found: dict[AppRef, str] = {}
        for secret in self._routes.apps():
            mine = (await self._app_secret(*secret)).get("webhookSecretToken", "")
            if signed_by(mine, timestamp, body, signature):
                found[secret] = mine
        return found

    async def _app_secret(self, namespace: str, name: str) -> dict[str, str]:
        cached = self._apps.get((namespace, name))
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            data = await read_opted_in(self.kube, namespace, name, SecretUse.ZOOM_CREDENTIALS)
        except (SecretMissing, SecretUnreadable, SecretNotAllowed, InvalidName):
            data = {}  # this app cannot verify anything; the others still can
        self._apps[(namespace, name)] = (time.monotonic() + APP_SECRET_SECONDS, data)
        return data

    def _receiver(self, key: Key) -> Receiver:
        stream = self.streams[key]
        phase = stream.status.phase
        live = any(s.ended_at is None for s in stream.status.streams)
        return Receiver(
            key=key,
            created=created.isoformat() if (created := stream.metadata.creation_timestamp) else "",
            meeting_number=stream.spec.meeting.number if stream.spec.meeting else None,
            open=not stream.spec.cancel and phase not in STREAM_TERMINAL_PHASES and not live,
            streams=frozenset(s.stream_id for s in stream.status.streams),
        )

    async def _record(self, key: Key, notice: RtmsNotice) -> None:
        if notice.event == "started":
            await self._write(key, lambda s, now: statuses.started(s, notice, now))
        else:
            await self._write(key, lambda s, now: statuses.stopped(s, notice, now))
        log.info(
            "rtms stream %s",
            notice.event,
            extra={"stream": f"{key[0]}/{key[1]}", "stream_id": notice.stream_id},
        )

    # --- writing -----------------------------------------------------------------------------

    async def _write(self, key: Key, change: Any) -> None:
        """Apply `change(stream, now) -> status` to the latest status known, and write it."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            stream = self.streams.get(key)
            if stream is None:
                return
            now = datetime.now(UTC)
            progress = (
                self._webhooks.progress(key, stream.metadata.uid or "")
                if self._webhooks is not None
                else None
            )
            new = notify(stream, change(stream, now), progress, now)
            if new == stream.status:
                return
            body = new.model_dump(mode="json", by_alias=True, exclude_none=True)
            written = await self.kube.patch_status(PLURAL, key[0], key[1], body)
            if written is None:
                return
            if "spec" in written and "metadata" in written:
                # The object as it is now (a spec changed since our last event included): what
                # a watch event would say; the late events before it are then skipped.
                self.observe("MODIFIED", written)
                return
            before, stream = stream, stream.model_copy(update={"status": new})
            self.streams[key] = stream
            self._routes.hold(key, stream)
            self._changed(before, stream)
            self._offer(key, stream)

    def _offer(self, key: Key, stream: MeetingStream) -> None:
        """Hand the outbox to the deliverer (it sends what is not acknowledged yet)."""
        hook, spec = stream.status.webhook, stream.spec.webhook
        if self._webhooks is not None and spec is not None and hook is not None and hook.pending:
            self._webhooks.offer(key, stream.metadata.uid or "", spec, hook.pending)

    def webhook_progressed(self, key: Key) -> None:
        """The deliverer got further: the status's outbox is trimmed (and says why, if not)."""
        self._spawn(self._write(key, lambda s, _now: s.status))

    # --- what the stream workers' desk reads and writes (workers.py) ---------------------------

    def _changed(self, before: MeetingStream | None, after: MeetingStream | None) -> None:
        if _desk_view(before) != _desk_view(after):
            self._wanted = None
            self.on_change()

    def wanted(self) -> dict[StreamRef, int]:
        """Streams that want a worker (Zoom started them, has not stopped them, their
        MeetingStream is not canceled), oldest first, with the generation their status last
        recorded (0: never given)."""
        if self._wanted is None:
            self._wanted = self._find_wanted()
        return self._wanted

    def _find_wanted(self) -> dict[StreamRef, int]:
        found = [w for key, stream in self.streams.items() for w in self._wants_of(key, stream)]
        return {ref: generation for _, ref, generation in sorted(found, key=lambda f: f[0])}

    def _wants_of(self, key: Key, stream: MeetingStream) -> list[tuple[datetime, StreamRef, int]]:
        """One MeetingStream's streams that want a worker, kept until its desk view changes
        (the refs are models: made once, not at every poll)."""
        view = _desk_view(stream)
        cached = self._wants.get(key)
        if cached is not None and cached[0] == view:
            return cached[1]
        wants = []
        if not stream.spec.cancel and stream.status.phase not in STREAM_TERMINAL_PHASES:
            wants = [
                (s.started_at, StreamRef(namespace=key[0], name=key[1], index=s.index),
                 s.generation or 0)
                for s in stream.status.streams
                if s.ended_at is None
            ]  # fmt: skip
        self._wants[key] = (view, wants)
        return wants

    def known(self, ref: StreamRef) -> bool:
        """Whether the stream's MeetingStream still wants it received or finished."""
        stream = self.streams.get((ref.namespace, ref.name))
        return (
            stream is not None
            and not stream.spec.cancel
            and any(s.index == ref.index for s in stream.status.streams)
        )

    def session_of(self, ref: StreamRef) -> tuple[MeetingStream, StreamSession] | None:
        stream = self.streams.get((ref.namespace, ref.name))
        if stream is None:
            return None
        session = next((s for s in stream.status.streams if s.index == ref.index), None)
        return None if session is None else (stream, session)

    async def assignment(self, ref: StreamRef, generation: int) -> StreamAssignment | None:
        """What a worker needs to receive the stream: the handshake signature is made here,
        from the app's client secret, which stays with the operator. None if the app Secret
        cannot be used (the stream is left for a later try)."""
        found = self.session_of(ref)
        if found is None:
            return None
        stream, session = found
        app = await self._app_secret(ref.namespace, stream.spec.app_credentials_secret_ref.name)
        client_id, client_secret = app.get("clientId"), app.get("clientSecret")
        if not client_id or not client_secret:
            return None
        media = stream.spec.media
        return StreamAssignment(
            ref=ref,
            uid=stream.metadata.uid or "",
            generation=generation,
            join=RtmsJoin(
                server_urls=session.server_urls,
                meeting_uuid=session.meeting_uuid,
                stream_id=session.stream_id,
                signature=SecretStr(
                    rtms_handshake_signature(
                        client_id, client_secret, session.meeting_uuid, session.stream_id
                    )
                ),
                audio=RtmsAudio(media.audio.value),
                transcript=media.transcript,
                chat=media.chat,
                send_rate_ms=media.send_rate_ms,
            ),
            segment_seconds=stream.spec.segment_seconds,
        )

    def record(
        self, ref: StreamRef, change: Callable[[MeetingStream, datetime], MeetingStreamStatus]
    ) -> None:
        """Write a change to the stream's MeetingStream status, in the background."""
        self._spawn(self._write((ref.namespace, ref.name), change))

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(self._logged(work))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _logged(self, work: Any) -> None:
        try:
            await work
        except ApiError as error:
            log.warning("a MeetingStream status was not written", extra={"error": error.message})

    async def close(self) -> None:
        for task in list(self._writes):
            task.cancel()


def _log_failure(task: asyncio.Future[None]) -> None:
    """A webhook's status write that failed after Zoom was answered is still told."""
    if task.cancelled() or (error := task.exception()) is None:
        return
    if isinstance(error, ApiError):
        log.warning("a MeetingStream status was not written", extra={"error": error.message})
    else:
        log.error("a MeetingStream status was not written", exc_info=error)


def _desk_view(stream: MeetingStream | None) -> object:
    """What the workers' desk reads of a MeetingStream (wanted, known, assignment): a change
    of it is a change for the desk; its artifacts and deliveries are not."""
    if stream is None:
        return None
    return (
        stream.spec.cancel,
        stream.status.phase in STREAM_TERMINAL_PHASES,
        tuple((s.index, s.ended_at is None, s.generation) for s in stream.status.streams),
    )
