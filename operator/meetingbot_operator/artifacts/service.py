"""The artifacts of every MeetingBot: the one owner of their buckets' clients, manifests and
delivery summaries.

- `check` (before an attempt starts): the bucket's endpoint is allowed and its credentials
  Secret is opted in; the bot pod is not created otherwise.
- `grant`: a presigned upload for a key chosen here (`object_key`), bound to the file's size
  and SHA-256; the bot names only a kind and a sequence number.
- `complete`: the object is in the store with that size and checksum: it joins the manifest
  (`<prefix>/<namespace>/<bot>/manifest.json`, rewritten after each object, read back from the
  bucket after an operator restart), and the bot's summary changes (the controller is told,
  and its next pass writes `status.artifacts`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import SecretStr, ValidationError

from meetingbot_api import Artifacts, ArtifactsStatus
from meetingbot_contract import (
    ArtifactKind,
    Manifest,
    ManifestEntry,
    Reason,
    UploadGrant,
    UploadRequest,
)
from meetingbot_contract.artifacts import AUDIO_KINDS, manifest_key, object_key
from meetingbot_contract.logs import redact
from meetingbot_operator.artifacts.store import Bucket, ObjectStore
from meetingbot_operator.kube.client import InvalidName
from meetingbot_operator.kube.secrets import SecretProblem, SecretReader, SecretUse, read_opted_in
from meetingbot_operator.settings import Settings

log = logging.getLogger(__name__)
Key = tuple[str, str]
ACCESS_KEY = "accessKeyId"
SECRET_KEY = "secretAccessKey"  # noqa: S105 - a key name, not a secret
# A bucket's credentials are read again after this long (a rotated Secret takes effect).
CREDENTIALS_TTL_SECONDS = 60.0
CLOSE_LATER_SECONDS = 60.0


@dataclass(frozen=True)
class Caller:
    """A bot whose token the report endpoint checked: this bot, this attempt."""

    namespace: str
    name: str
    uid: str
    attempt: int

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)


class ArtifactProblem(Exception):
    """Why a bot's artifacts cannot go where its spec says (a reason and words for a status)."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class UploadRefused(Exception):
    """A request the operator will not grant or record (the bot is told why, with a 4xx)."""


@dataclass
class _Delivered:
    manifest: Manifest
    last_upload: datetime | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    loaded: bool = False


class ArtifactService:
    def __init__(
        self,
        kube: SecretReader,
        settings: Settings,
        spec_of: Callable[[Key], Artifacts | None],
        changed: Callable[[Key], None],
    ) -> None:
        self._kube = kube
        self._settings = settings
        self._spec_of = spec_of  # a bot's spec.artifacts, as the controller last saw it
        self._changed = changed  # the bot's summary changed: its next pass writes the status
        self._stores: dict[tuple[str, str, str, str, str], tuple[float, ObjectStore]] = {}
        self._delivered: dict[Key, _Delivered] = {}
        self._tell_seconds = float(settings.report_interval_seconds)
        self._told: dict[Key, float] = {}
        self._pending_tells: dict[Key, asyncio.TimerHandle] = {}

    async def close(self) -> None:
        for handle in self._pending_tells.values():
            handle.cancel()
        self._pending_tells.clear()
        for _, store in self._stores.values():
            await store.close()
        self._stores.clear()

    # --- before an attempt -------------------------------------------------------------------

    async def check(self, namespace: str, spec: Artifacts) -> None:
        await self._store(namespace, spec)

    # --- the bot's requests ------------------------------------------------------------------

    def _spec(self, caller: Caller) -> Artifacts:
        spec = self._spec_of(caller.key)
        if spec is None:
            raise UploadRefused("this MeetingBot has no spec.artifacts: nothing to upload")
        return spec

    async def grant(self, caller: Caller, request: UploadRequest) -> UploadGrant:
        namespace, name = caller.key
        spec = self._spec(caller)
        _sane(request)
        store = await self._store(namespace, spec)
        target = object_key(
            spec.prefix, namespace, name, request.attempt, request.kind, request.sequence
        )
        url, headers = store.presign_put(
            target, request.sha256, request.size, self._settings.upload_url_seconds
        )
        return UploadGrant(
            key=target,
            url=url,
            headers=headers,
            expires_in_seconds=self._settings.upload_url_seconds,
        )

    async def complete(self, caller: Caller, request: UploadRequest) -> None:
        """Record an uploaded object once the store has it with the size and checksum the bot
        announced; UploadRefused when it does not (the bot uploads again)."""
        key, uid = caller.key, caller.uid
        namespace, name = key
        spec = self._spec(caller)
        _sane(request)
        store = await self._store(namespace, spec)
        target = object_key(
            spec.prefix, namespace, name, request.attempt, request.kind, request.sequence
        )
        stored = await store.head(target)  # StoreError: the bot is told to try again
        if stored is None:
            raise UploadRefused(f"{target} is not in the bucket")
        if stored.size != request.size or stored.sha256 not in (None, request.sha256):
            raise UploadRefused(f"{target} differs from what was announced (size or SHA-256)")
        entry = ManifestEntry(
            key=target,
            attempt=request.attempt,
            kind=request.kind,
            sequence=request.sequence,
            size=request.size,
            sha256=request.sha256,
            start_ms=request.start_ms,
            end_ms=request.end_ms,
            speaker=request.speaker,
        )
        delivered = self._delivered.setdefault(
            key, _Delivered(Manifest(namespace=namespace, name=name, uid=uid))
        )
        async with delivered.lock:
            if not delivered.loaded:
                delivered.manifest = await self._load(store, spec, key, uid)
                delivered.loaded = True
            delivered.manifest = delivered.manifest.with_entry(entry)
            await store.put(
                manifest_key(spec.prefix, namespace, name),
                delivered.manifest.model_dump_json(
                    by_alias=True, indent=1, exclude_none=True
                ).encode(),
                "application/json",
            )
            delivered.last_upload = datetime.now(UTC)
        self._tell(key)

    def _tell(self, key: Key) -> None:
        """The controller's next pass for this bot writes its status.artifacts: at once for the
        first object, then at most once per TELL_SECONDS (a bot delivers a file every few
        seconds; its status need not change as often). The last change always gets a pass."""
        now = time.monotonic()
        due = self._told.get(key, 0.0) + self._tell_seconds
        if now >= due:
            self._told[key] = now
            self._changed(key)
        elif key not in self._pending_tells:
            loop = asyncio.get_running_loop()
            self._pending_tells[key] = loop.call_later(due - now, self._tell_later, key)

    def _tell_later(self, key: Key) -> None:
        self._pending_tells.pop(key, None)
        self._told[key] = time.monotonic()
        self._changed(key)

    # --- what the controller reads -----------------------------------------------------------

    def summary(self, key: Key, spec: Artifacts | None) -> ArtifactsStatus | None:
        """What was delivered for this bot (None: nothing known to this process)."""
        delivered = self._delivered.get(key)
        if delivered is None or spec is None:
            return None
        entries = delivered.manifest.entries
        return ArtifactsStatus(
            manifest_key=manifest_key(spec.prefix, *key),
            objects=len(entries),
            bytes=sum(e.size for e in entries),
            audio_segments=sum(e.kind in AUDIO_KINDS for e in entries),
            event_files=sum(e.kind == "events" for e in entries),
            last_upload_time=delivered.last_upload,
        )

    async def delete_all(self, key: Key, spec: Artifacts) -> int:
        """Delete every object of this MeetingBot (all attempts, the manifest); how many.
        StoreError or ArtifactProblem when the bucket cannot be reached or used."""
        namespace, name = key
        store = await self._store(namespace, spec)
        head = spec.prefix.strip("/")
        prefix = f"{head}/{namespace}/{name}/" if head else f"{namespace}/{name}/"
        keys = await store.keys(prefix)
        for target in keys:
            await store.delete(target)
        return len(keys)

    def forget(self, key: Key) -> None:
        """A MeetingBot gone: nothing of it is kept."""
        self._delivered.pop(key, None)
        self._told.pop(key, None)
        pending = self._pending_tells.pop(key, None)
        if pending is not None:
            pending.cancel()

    # --- internals ---------------------------------------------------------------------------

    async def _load(self, store: ObjectStore, spec: Artifacts, key: Key, uid: str) -> Manifest:
        """The manifest in the bucket (an earlier operator's), if it is this bot's."""
        fresh = Manifest(namespace=key[0], name=key[1], uid=uid)
        body = await store.get(manifest_key(spec.prefix, *key))
        if body is None:
            return fresh
        try:
            found = Manifest.model_validate_json(body)
        except ValidationError:
            log.warning("unreadable manifest replaced", extra={"bot": "/".join(key)})
            return fresh
        # A MeetingBot of the same name that was deleted and created again starts afresh (its
        # objects of other attempts stay in the bucket, listed in no manifest of the new one).
        return found if found.uid == uid else fresh

    def _endpoint(self, spec: Artifacts) -> str:
        endpoint = spec.endpoint_url()
        if spec.endpoint is None:
            return endpoint
        if endpoint in self._settings.storage_endpoints:
            return endpoint
        raise ArtifactProblem(
            Reason.STORAGE_ENDPOINT_NOT_ALLOWED,
            f"artifacts.endpoint {endpoint!r} is not one the operator allows (its setting "
            "storageEndpoints); leave it out to use AWS S3",
        )

    async def _store(self, namespace: str, spec: Artifacts) -> ObjectStore:
        endpoint = self._endpoint(spec)
        cache_key = (
            namespace,
            spec.credentials_secret_ref.name,
            endpoint,
            spec.bucket,
            spec.region,
        )
        cached = self._stores.get(cache_key)
        if cached is not None and time.monotonic() - cached[0] < CREDENTIALS_TTL_SECONDS:
            return cached[1]
        name = spec.credentials_secret_ref.name
        try:
            data = await read_opted_in(self._kube, namespace, name, SecretUse.STORAGE_CREDENTIALS)
        except InvalidName as error:
            raise ArtifactProblem(Reason.SPEC_INVALID, f"credentialsSecretRef: {error}") from None
        except SecretProblem as problem:
            raise ArtifactProblem(problem.reason, str(problem)) from None
        if not data.get(ACCESS_KEY) or not data.get(SECRET_KEY):
            raise ArtifactProblem(
                Reason.SECRET_NOT_FOUND,
                f"Secret {name!r} needs the keys {ACCESS_KEY} and {SECRET_KEY}",
            )
        redact(data[ACCESS_KEY], data[SECRET_KEY])
        if cached is not None and (
            cached[1].bucket.access_key.get_secret_value(),
            cached[1].bucket.secret_key.get_secret_value(),
        ) == (data[ACCESS_KEY], data[SECRET_KEY]):
            self._stores[cache_key] = (time.monotonic(), cached[1])  # unchanged: keep it
            return cached[1]
        store = ObjectStore(
            Bucket(
                endpoint=endpoint,
                name=spec.bucket,
                region=spec.region,
                access_key=SecretStr(data[ACCESS_KEY]),
                secret_key=SecretStr(data[SECRET_KEY]),
            ),
            timeout=self._settings.storage_timeout_seconds,
        )
        if cached is not None:
            # Rotated keys: the old client may be in a call right now; it closes a little later.
            old = cached[1]
            asyncio.get_running_loop().call_later(
                CLOSE_LATER_SECONDS, lambda: asyncio.ensure_future(old.close())
            )
        self._stores[cache_key] = (time.monotonic(), store)
        return store


def _sane(request: UploadRequest) -> None:
    if request.end_ms < request.start_ms:
        raise UploadRefused("endMs is before startMs")
    if (request.kind == ArtifactKind.SPEAKER_WAV) != (request.speaker is not None):
        raise UploadRefused("speaker is given with speaker-wav files, and only with them")
