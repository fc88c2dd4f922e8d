"""The stream workers' desk: who a worker is (its service account's token, checked with a
TokenReview), the long poll that is both its heartbeat and its orders (the decisions are
pool.py's), the statuses that follow (given, connected, failed), and its uploads (the
MeetingStream's artifacts, through presigned grants as a bot's are: a worker never holds a
storage key or the app's client secret).

The worker's name is its pod's (the TokenReview says which pod the token was issued to), so
one pod cannot speak for another.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from meetingbot_api import Artifacts
from meetingbot_contract import StreamConfig, UploadGrant, UploadRequest
from meetingbot_contract.artifacts import stream_folder
from meetingbot_contract.rtms import (
    INVALID_SIGNATURE,
    WORKER_AUDIENCE,
    HeldStream,
    StreamAssignment,
    StreamRef,
    WorkerHeartbeat,
    WorkerOrders,
)
from meetingbot_operator.artifacts.service import ArtifactService, Caller, UploadRefused
from meetingbot_operator.kube.client import ApiError, InvalidName
from meetingbot_operator.kube.secrets import SecretProblem, SecretUse, read_opted_in
from meetingbot_operator.kube.verbs import Kube
from meetingbot_operator.meetingstream import status as statuses
from meetingbot_operator.meetingstream.pool import Given, Plan, WorkerPool
from meetingbot_operator.meetingstream.service import StreamService
from meetingbot_operator.settings import Settings
from meetingbot_operator.webhooks.envelope import BadSigningSecret, signing_key
from meetingbot_operator.webhooks.stream_token import stream_token

log = logging.getLogger(__name__)
# A token's review is reused this long (a worker polls every few seconds).
REVIEW_SECONDS = 60.0
POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
# A stream's live-stream token lasts this long (plus the token's own margin): longer than any
# meeting; a hand-over issues a new one.
LIVE_TOKEN_LIFETIME = timedelta(hours=24)
# Assignments whose app Secret cannot be read are tried again after this long.
NOT_READY_SECONDS = 10.0
PRUNE_SECONDS = 60.0  # how often what the desk recorded of finished streams is forgotten
# A held poll woken by a change waits this long for the changes that come with it (a burst of
# Zoom's webhooks is a change each) and decides once for all of them.
COALESCE_SECONDS = 0.25


class NotAWorker(Exception):
    """The token is not a stream worker's (the answer is the same 401 whatever the cause)."""


@dataclass(frozen=True)
class _Review:
    until: float
    worker: str | None  # the pod's name; None: not a worker


class WorkerDesk:
    def __init__(self, kube: Kube, streams: StreamService, settings: Settings) -> None:
        self._kube = kube
        self._streams = streams
        self._identities = frozenset(settings.stream_workers)
        self._poll = settings.stream_worker_poll_seconds
        self.pool = WorkerPool(
            settings.stream_worker_timeout_seconds,
            # After a change of leader, workers report what they hold within one poll.
            grace=settings.stream_worker_poll_seconds + 1.0,
            now=time.monotonic(),
        )
        self._reviews: dict[str, _Review] = {}
        self._changed = asyncio.Event()
        self._not_ready: dict[StreamRef, float] = {}
        self._connected: set[tuple[StreamRef, int]] = set()
        self._failed: set[StreamRef] = set()
        self._pruned = time.monotonic()
        streams.on_change = self.wake
        self.artifacts = ArtifactService(
            kube, settings, spec_of=self._artifacts_spec, changed=self._artifacts_changed
        )

    async def close(self) -> None:
        await self.artifacts.close()

    def wake(self) -> None:
        """What the streams want changed: every poll held open answers again."""
        self._changed.set()
        self._changed = asyncio.Event()

    # --- who is asking ------------------------------------------------------------------------

    async def worker_of(self, authorization: str) -> str:
        """The pod name of the stream worker this bearer token was issued to."""
        token = authorization[7:] if authorization.startswith("Bearer ") else ""
        if not token or not self._identities:
            raise NotAWorker
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        review = self._reviews.get(digest)
        if review is None or review.until < now:
            review = _Review(now + REVIEW_SECONDS, await self._review(token))
            if len(self._reviews) > 1000:
                self._reviews = {k: v for k, v in self._reviews.items() if v.until >= now}
            self._reviews[digest] = review
        if review.worker is None:
            raise NotAWorker
        return review.worker

    async def _review(self, token: str) -> str | None:
        try:
            status = await self._kube.review_token(token, WORKER_AUDIENCE)
        except ApiError as error:
            log.warning("cannot review a stream worker's token", extra={"error": error.message})
            raise NotAWorker from None
        user = status.get("user") or {}
        if not status.get("authenticated") or user.get("username") not in self._identities:
            return None
        if WORKER_AUDIENCE not in (status.get("audiences") or []):
            return None
        pods = (user.get("extra") or {}).get(POD_NAME_EXTRA) or []
        return str(pods[0]) if pods else None

    # --- the poll -----------------------------------------------------------------------------

    async def poll(
        self, worker: str, beat: WorkerHeartbeat, gone: Callable[[], bool] = lambda: False
    ) -> WorkerOrders:
        """Answer at once if there is something to take or let go; else hold the poll open
        (the worker counts as heard from) until there is, or `poll` seconds have passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (0.0 if beat.leaving else self._poll)
        while True:
            changed = self._changed
            plan = self.pool.heartbeat(
                worker, beat, self._streams.wanted(), self._streams.known, time.monotonic()
            )
            self._follow(worker, beat.held, plan)
            self._prune(time.monotonic())
            take = await self._assignments(plan)
            if take or plan.release or loop.time() >= deadline:
                break
            if gone():
                break
            wait = min(1.0, deadline - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), wait)
                await asyncio.sleep(min(COALESCE_SECONDS, max(0.0, deadline - loop.time())))
        return WorkerOrders(take=take, release=plan.release, interval_seconds=self._poll)

    def _prune(self, now: float) -> None:
        """Forget, once a minute, what was recorded of streams that left the books (ended and
        delivered, or their MeetingStream gone): an operator up for months receives millions
        of streams."""
        if now - self._pruned < PRUNE_SECONDS:
            return
        self._pruned = now
        kept = self.pool.given
        self._connected = {(ref, g) for ref, g in self._connected if kept(ref)}
        self._failed = {ref for ref in self._failed if kept(ref)}
        self._not_ready = {ref: t for ref, t in self._not_ready.items() if t > now}

    async def _assignments(self, plan: Plan) -> list[StreamAssignment]:
        now = time.monotonic()
        found = []
        for ref, generation in plan.take:
            if self._not_ready.get(ref, 0.0) > now:
                continue
            assignment = await self._streams.assignment(ref, generation)
            if assignment is not None:
                assignment = await self._with_live_stream(assignment)
            if assignment is None:
                self._not_ready[ref] = now + NOT_READY_SECONDS
                log.warning("a stream's app Secret has no usable clientId/clientSecret",
                            extra={"stream": str(ref)})  # fmt: skip
                continue
            found.append(assignment)
        return found

    async def _with_live_stream(self, assignment: StreamAssignment) -> StreamAssignment | None:
        """The live stream's endpoint and a token for this stream and generation, signed with
        the MeetingStream's signing secret (the worker never holds it). None: the Secret cannot
        be used now (the stream is left for a later try)."""
        found = self._streams.session_of(assignment.ref)
        spec = found[0].spec.stream if found else None
        if spec is None:
            return assignment
        ref = assignment.ref
        try:
            data = await read_opted_in(
                self._kube, ref.namespace, spec.signing_secret_ref.name, SecretUse.WEBHOOK_SIGNING
            )
            key = signing_key(data.get(spec.signing_secret_ref.key, ""))
        except (SecretProblem, BadSigningSecret, InvalidName) as problem:
            log.warning("a MeetingStream's live stream cannot be signed",
                        extra={"stream": str(ref), "error": str(problem)})  # fmt: skip
            return None
        token = stream_token(
            key,
            url=spec.url,
            namespace=ref.namespace,
            name=ref.name,
            uid=assignment.uid,
            attempt=assignment.generation,
            now=datetime.now(UTC),
            lifetime=LIVE_TOKEN_LIFETIME,
            stream=ref.index,
        )
        live = StreamConfig(url=spec.url, token=token, audio=spec.audio, events=spec.events)
        return assignment.model_copy(update={"live": live})

    def _follow(self, worker: str, held: list[HeldStream], plan: Plan) -> None:
        """The statuses that follow from a heartbeat: who has each stream, whether it is up,
        whether it failed."""
        for ref, given in plan.given:
            self._streams.record(
                ref,
                partial(
                    statuses.given,
                    index=ref.index,
                    worker=given.worker,
                    generation=given.generation,
                ),
            )
            log.info("stream given", extra={"stream": str(ref), "worker": given.worker,
                                            "generation": given.generation})  # fmt: skip
        for h in held:
            if h.over and h.drained and not h.leftover:
                key = (h.ref.namespace, stream_folder(h.ref.name, h.ref.index))
                summary = self.artifacts.summary(key, self._artifacts_spec(key))
                self._streams.record(
                    h.ref, partial(statuses.delivered, index=h.ref.index, summary=summary)
                )
            current = self.pool.given(h.ref)
            if current != Given(worker, h.generation):
                continue
            if h.connected and (h.ref, h.generation) not in self._connected:
                self._connected.add((h.ref, h.generation))
                self._streams.record(
                    h.ref, partial(statuses.connected, index=h.ref.index, worker=worker)
                )
            if h.ended and h.error and h.ref not in self._failed:
                self._failed.add(h.ref)
                bad_signature = h.refused == INVALID_SIGNATURE
                self._streams.record(
                    h.ref,
                    partial(
                        statuses.failed,
                        index=h.ref.index,
                        error=h.error,
                        bad_signature=bad_signature,
                    ),
                )

    # --- uploads ------------------------------------------------------------------------------

    def caller(self, ref: StreamRef, generation: int) -> Caller:
        found = self._streams.session_of(ref)
        if found is None:
            raise UploadRefused(f"no stream {ref}")
        stream, _ = found
        uid = stream.metadata.uid or ""
        return Caller(ref.namespace, stream_folder(ref.name, ref.index), uid, generation)

    async def grant(self, ref: StreamRef, request: UploadRequest) -> UploadGrant:
        return await self.artifacts.grant(self.caller(ref, request.attempt), request)

    async def complete(self, ref: StreamRef, request: UploadRequest) -> None:
        await self.artifacts.complete(self.caller(ref, request.attempt), request)

    def _artifacts_spec(self, key: tuple[str, str]) -> Artifacts | None:
        ref = _ref_of(key)
        found = self._streams.session_of(ref) if ref else None
        return found[0].spec.artifacts if found else None

    def _artifacts_changed(self, key: tuple[str, str]) -> None:
        ref = _ref_of(key)
        spec = self._artifacts_spec(key)
        summary = self.artifacts.summary(key, spec)
        if ref is None or summary is None:
            return
        self._streams.record(ref, partial(statuses.artifacts, index=ref.index, summary=summary))


def _ref_of(key: tuple[str, str]) -> StreamRef | None:
    """The stream an artifacts key (namespace, `_streams/<name>/<index>`) stands for."""
    parts = key[1].split("/")
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return StreamRef(namespace=key[0], name=parts[1], index=int(parts[2]))
