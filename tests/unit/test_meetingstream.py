"""MeetingStreams and Zoom's RTMS webhooks: verification bound to each MeetingStream's own app
Secret, routing of a stream to exactly one MeetingStream, and the status each notice leaves."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest

from meetingbot_api import ArtifactsStatus, MeetingStream, MeetingStreamStatus, StreamPhase
from meetingbot_contract.rtms import HeldStream, WorkerHeartbeat
from meetingbot_operator.kube.client import ApiError
from meetingbot_operator.kube.secrets import SecretView
from meetingbot_operator.meetingstream import service as service_module
from meetingbot_operator.meetingstream import status as statuses
from meetingbot_operator.meetingstream.notices import Receiver, RtmsNotice, parse, recipient
from meetingbot_operator.meetingstream.notifications import notify
from meetingbot_operator.meetingstream.routes import StreamRoutes
from meetingbot_operator.meetingstream.service import StreamService
from meetingbot_operator.meetingstream.workers import WorkerDesk
from meetingbot_operator.settings import Settings, rtms_server_allowed
from meetingbot_operator.zoom.webhooks import NoticeRefused
from tests.support.fakes import FakeKube

pytestmark = pytest.mark.unit
OPT_IN = {"meetingbot.dev/secret-for": "zoom-credentials"}
SERVERS = ["wss://*.zoom.us"]


class Kube(FakeKube):
    def __init__(self) -> None:
        super().__init__()
        self.deleted: list[tuple[str, str, str]] = []

    async def delete_custom(self, plural: str, namespace: str, name: str) -> None:
        self._call("delete_custom")
        self.deleted.append((plural, namespace, name))

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        await super().patch_status(plural, namespace, name, status)
        return {"status": status}


def stream_obj(
    namespace: str, name: str, *, meeting: str | None = None, created: str = "2026-12-01T00:00:00Z"
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "appCredentialsSecretRef": {"name": "app"},
        "artifacts": {"bucket": "recordings", "credentialsSecretRef": {"name": "s3"}},
    }
    if meeting:
        spec["meeting"] = {"number": meeting}
    return {
        "metadata": {
            "namespace": namespace,
            "name": name,
            "uid": name,
            "creationTimestamp": created,
        },
        "spec": spec,
    }


def signed(token: str, event: dict[str, Any], at: float | None = None) -> tuple[bytes, str, str]:
    body = json.dumps(event).encode()
    stamp = str(int(at if at is not None else time.time()))
    digest = hmac.new(token.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return body, stamp, f"v0={digest}"


def started(meeting: int = 123456789, stream_id: str = "s1") -> dict[str, Any]:
    return {
        "event": "meeting.rtms_started",
        "event_ts": 1,
        "payload": {
            "meeting_uuid": "u==",
            "rtms_stream_id": stream_id,
            "server_urls": "wss://rtms.zoom.us/signaling",
            "meeting_id": meeting,
            "operator_id": "host",
        },
    }


def stopped(stream_id: str = "s1", reason: int = 6) -> dict[str, Any]:
    return {
        "event": "meeting.rtms_stopped",
        "event_ts": 2,
        "payload": {"meeting_uuid": "u==", "rtms_stream_id": stream_id, "stop_reason": reason},
    }


@pytest.fixture
def kube() -> Kube:
    k = Kube()
    k.secrets[("a", "app")] = SecretView(OPT_IN, {"clientId": "c", "webhookSecretToken": "tok-a"})
    k.secrets[("b", "app")] = SecretView(OPT_IN, {"clientId": "c", "webhookSecretToken": "tok-b"})
    return k


async def test_a_stream_reaches_only_the_tenant_whose_app_signed_it(kube: Kube) -> None:
    service = StreamService(kube, lambda namespace, name: None, SERVERS)  # type: ignore[arg-type]
    service.observe("ADDED", stream_obj("a", "standup", meeting="123456789"))
    service.observe("ADDED", stream_obj("b", "standup", meeting="123456789"))
    await service.notice(*signed("tok-a", started()))
    written = {key[1]: body for key, body in kube.statuses.items() if body.get("streams")}
    assert list(written) == ["a"]
    status = written["a"]
    assert status["phase"] == "Starting" and status["reason"] == "StreamStarted"
    assert [s["streamId"] for s in status["streams"]] == ["s1"]
    assert status["streams"][0]["serverUrls"] == "wss://rtms.zoom.us/signaling"

    # Zoom sends it again (a late answer): nothing changes, nothing is written.
    writes = kube.calls["patch_status"]
    await service.notice(*signed("tok-a", started()))
    assert kube.calls["patch_status"] == writes

    await service.notice(*signed("tok-a", stopped()))
    final = kube.statuses[("meetingstreams", "a", "standup")]
    assert (final["phase"], final["reason"]) == ("Succeeded", "MeetingEnded")
    assert final["streams"][0]["stopReason"] == 6 and "endedAt" in final["streams"][0]
    assert {c["type"]: c["status"] for c in final["conditions"]}["Complete"] == "True"


class SlowKube(Kube):
    """An API server under a burst: every status write takes `delay` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any] | None:
        await asyncio.sleep(self.delay)
        return await super().patch_status(plural, namespace, name, status)


async def test_zoom_is_answered_in_time_while_a_slow_status_write_goes_on(
    kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "ANSWER_SECONDS", 0.2)
    slow = SlowKube(delay=0.6)
    slow.secrets = kube.secrets
    service = StreamService(slow, lambda namespace, name: None, SERVERS)  # type: ignore[arg-type]
    service.observe("ADDED", stream_obj("a", "standup", meeting="123456789"))
    await asyncio.sleep(0.7)  # its Waiting status
    began = time.monotonic()
    assert await service.notice(*signed("tok-a", started())) == {}
    assert time.monotonic() - began < 0.5
    assert not kube.statuses.get(("meetingstreams", "a", "standup"), {}).get("streams")
    await asyncio.sleep(0.7)
    assert [s["streamId"] for s in slow.statuses[("meetingstreams", "a", "standup")]["streams"]]


async def test_a_write_that_fails_in_time_is_refused_for_zoom_to_send_again(kube: Kube) -> None:
    class Failing(Kube):
        async def patch_status(
            self, plural: str, namespace: str, name: str, status: dict[str, Any]
        ) -> dict[str, Any] | None:
            raise ApiError(500, "etcd is unhappy")

    failing = Failing()
    failing.secrets = kube.secrets
    service = StreamService(failing, lambda namespace, name: None, SERVERS)  # type: ignore[arg-type]
    service.observe("ADDED", stream_obj("a", "standup", meeting="123456789"))
    with pytest.raises(NoticeRefused) as refused:
        await service.notice(*signed("tok-a", started()))
    assert refused.value.status == 503


async def test_the_workers_desk_wakes_for_streams_not_for_their_files(kube: Kube) -> None:
    service = StreamService(kube, lambda namespace, name: None, SERVERS)  # type: ignore[arg-type]
    woken: list[int] = []
    service.on_change = lambda: woken.append(1)
    obj = stream_obj("a", "standup", meeting="123456789")
    service.observe("ADDED", obj)
    assert len(woken) == 1 and service.wanted() == {}
    await service.notice(*signed("tok-a", started()))
    assert len(woken) == 2 and len(service.wanted()) == 1
    [ref] = service.wanted()
    summary = ArtifactsStatus(manifestKey="m.json", objects=3, bytes=10)
    before = len(woken)
    service.record(ref, partial(statuses.artifacts, index=ref.index, summary=summary))
    await asyncio.sleep(0.05)
    assert kube.statuses[("meetingstreams", "a", "standup")]["artifacts"]["objects"] == 3
    assert len(woken) == before  # files counted: nothing for the desk
    service.observe("DELETED", obj)
    assert len(woken) == before + 1 and service.wanted() == {}


@pytest.mark.parametrize(
    ("token", "age", "why"),
    [
        ("forged", 0, "matches no MeetingStream"),
        ("tok-a", 600, "stale"),
        ("tok-a", -600, "stale"),
    ],
)
async def test_forged_or_replayed_webhooks_are_refused(
    kube: Kube, token: str, age: int, why: str
) -> None:
    service = StreamService(kube, lambda namespace, name: None, SERVERS)  # type: ignore[arg-type]
    service.observe("ADDED", stream_obj("a", "standup", meeting="123456789"))
    with pytest.raises(NoticeRefused, match=why) as refused:
        await service.notice(*signed(token, started(), at=time.time() - age))
    assert refused.value.status == 401
    assert not [b for b in kube.statuses.values() if b.get("streams")]


async def test_an_app_secret_without_the_opt_in_label_verifies_nothing(kube: Kube) -> None:
    kube.secrets[("a", "app")] = SecretView({}, {"webhookSecretToken": "tok-a"})
    service = StreamService(kube, lambda namespace, name: None, SERVERS)  # type: ignore[arg-type]
    service.observe("ADDED", stream_obj("a", "standup", meeting="123456789"))
    with pytest.raises(NoticeRefused):
        await service.notice(*signed("tok-a", started()))


async def test_the_endpoint_is_validated_with_the_apps_token(kube: Kube) -> None:
    service = StreamService(kube, lambda namespace, name: None, SERVERS)  # type: ignore[arg-type]
    service.observe("ADDED", stream_obj("b", "any"))
    event = {"event": "endpoint.url_validation", "payload": {"plainToken": "plain"}}
    answer = await service.notice(*signed("tok-b", event))
    expected = hmac.new(b"tok-b", b"plain", hashlib.sha256).hexdigest()
    assert answer == {"plainToken": "plain", "encryptedToken": expected}


async def test_a_new_meetingstream_waits_for_its_stream(kube: Kube) -> None:
    service = StreamService(kube, lambda namespace, name: None, SERVERS)  # type: ignore[arg-type]
    service.observe("ADDED", stream_obj("a", "standup", meeting="123456789"))
    for task in list(service._writes):
        await task
    status = kube.statuses[("meetingstreams", "a", "standup")]
    assert (status["phase"], status["reason"]) == ("Waiting", "WaitingForStream")
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Ready"] == "True" and "Reconciling" not in conditions  # absent until True


def receiver(name: str, **fields: Any) -> Receiver:
    values: dict[str, Any] = {
        "key": ("n", name),
        "created": "2026-12-01T00:00:00Z",
        "meeting_number": None,
        "open": True,
        "streams": frozenset(),
    }
    values.update(fields)
    return Receiver(**values)


def notice(event: str = "started", meeting: str | None = "123456789") -> RtmsNotice:
    return RtmsNotice(event, "s1", "u==", meeting, "wss://x", None)  # type: ignore[arg-type]


def test_a_stream_goes_to_one_meetingstream_only() -> None:
    named_old = receiver("named-old", meeting_number="123456789", created="2026-11-01T00:00:00Z")
    named_new = receiver("named-new", meeting_number="123456789")
    catch_all = receiver("any")
    # The oldest one naming the meeting, before any catch-all.
    assert recipient(notice(), [named_new, catch_all, named_old]) == ("n", "named-old")
    # The one that holds the stream keeps it (Zoom's retry), whatever else is open.
    holder = receiver("holder", open=False, streams=frozenset({"s1"}))
    assert recipient(notice(), [named_old, holder]) == ("n", "holder")
    # A meeting whose own MeetingStream is busy or done is not a catch-all's.
    busy = receiver("busy", meeting_number="123456789", open=False)
    assert recipient(notice(), [busy, catch_all]) is None
    # Other meetings go to the catch-all; a stop of a stream nobody took goes nowhere.
    assert recipient(notice(meeting="999999999"), [busy, catch_all]) == ("n", "any")
    assert recipient(notice("stopped"), [catch_all]) is None


def test_webhooks_are_routed_by_meeting_stream_and_app_without_walking_every_stream() -> None:
    routes = StreamRoutes()

    def hold(namespace: str, name: str, meeting: str | None, *streams: str) -> None:
        obj = stream_obj(namespace, name, meeting=meeting)
        obj["status"] = {
            "streams": [
                {
                    "index": i,
                    "streamId": s,
                    "meetingUuid": "u==",
                    "serverUrls": "wss://rtms.zoom.us/signaling",
                    "startedAt": "2026-12-01T00:00:00Z",
                }
                for i, s in enumerate(streams, start=1)
            ]
        }
        routes.hold((namespace, name), MeetingStream.model_validate(obj))

    hold("a", "standup", "123456789")
    hold("a", "any", None)
    hold("a", "other", "999999999", "s7")
    hold("b", "standup", "123456789")
    app_a, app_b = ("a", "app"), ("b", "app")
    assert sorted(routes.apps()) == [app_a, app_b]
    # Its meeting's, the catch-all, the one that lists the stream: of the apps that signed.
    assert routes.candidates("123456789", "s1", [app_a]) == {("a", "standup"), ("a", "any")}
    assert routes.candidates("555", "s7", [app_a]) == {("a", "any"), ("a", "other")}
    assert routes.candidates(None, "s1", [app_b]) == set()
    assert routes.candidates("123456789", "s1", [app_a, app_b]) == {
        ("a", "standup"), ("a", "any"), ("b", "standup")
    }  # fmt: skip
    # A changed MeetingStream is found by what it says now; a deleted one is not found.
    hold("a", "standup", "222222222", "s1")
    assert routes.candidates("123456789", "x", [app_a]) == {("a", "any")}
    assert routes.candidates("333", "s1", [app_a]) == {("a", "any"), ("a", "standup")}
    routes.hold(("b", "standup"), None)
    assert routes.apps() == [app_a]
    assert routes.candidates("123456789", "s1", [app_b]) == set()


def test_only_rtms_events_with_what_a_worker_needs_are_read() -> None:
    assert parse({"event": "meeting.started", "payload": {}}) is None
    read = parse(started())
    assert read is not None and read.meeting_number == "123456789"
    for broken in (
        {"event": "meeting.rtms_started", "payload": {"rtms_stream_id": "s"}},
        {**started(), "payload": {**started()["payload"], "server_urls": "https://evil"}},
    ):
        with pytest.raises(ValueError, match=r"rtms_stream_id|server_urls"):
            parse(broken)


def test_the_meetingstream_model_reads_a_minimal_object() -> None:
    stream = MeetingStream.model_validate(stream_obj("a", "x"))
    assert stream.spec.start == "Webhook" and stream.spec.media.transcript
    assert stream.status.phase is None and StreamPhase.WAITING.value == "Waiting"


async def test_a_canceled_meetingstream_finishes_and_takes_no_more_streams(kube: Kube) -> None:
    service = StreamService(kube, lambda namespace, name: None, SERVERS)  # type: ignore[arg-type]
    body = stream_obj("a", "standup", meeting="123456789")
    body["spec"]["cancel"] = True
    body["status"] = {"phase": "Waiting"}
    service.observe("MODIFIED", body)
    for task in list(service._writes):
        await task
    status = kube.statuses[("meetingstreams", "a", "standup")]
    assert (status["phase"], status["reason"]) == ("Succeeded", "Canceled")
    await service.notice(*signed("tok-a", started()))
    assert not kube.statuses[("meetingstreams", "a", "standup")].get("streams")


async def test_a_finished_meetingstream_is_deleted_after_its_ttl(kube: Kube) -> None:
    service = StreamService(kube, lambda namespace, name: None, SERVERS)  # type: ignore[arg-type]
    for name, finished in (("old", "2026-12-01T00:00:00Z"), ("fresh", None)):
        body = stream_obj("a", name, meeting="123456789")
        body["spec"]["ttlSecondsAfterFinished"] = 60
        body["status"] = {"phase": "Succeeded", "completionTime": finished} if finished else {}
        service.observe("ADDED", body)
    await service.sweep()
    assert kube.deleted == [("meetingstreams", "a", "old")]


async def test_a_signed_stream_elsewhere_than_zooms_servers_is_refused(kube: Kube) -> None:
    """A tenant signs its own app's webhooks: a server_urls pointing inside the cluster would
    have a stream worker connect there. Only the operator's RTMS servers are taken."""
    service = StreamService(kube, lambda namespace, name: None, SERVERS)  # type: ignore[arg-type]
    service.observe("ADDED", stream_obj("a", "standup", meeting="123456789"))
    for url in ("ws://10.0.0.5:8080/x", "wss://zoom.us.evil.example/x", "wss://evilzoom.us/x"):
        event = started()
        event["payload"]["server_urls"] = url
        with pytest.raises(NoticeRefused, match="RTMS servers") as refused:
            await service.notice(*signed("tok-a", event))
        assert refused.value.status == 400
    assert not [b for b in kube.statuses.values() if b.get("streams")]


def test_rtms_servers_are_domains_or_base_urls() -> None:
    allowed = ["wss://*.zoom.us", "ws://10.1.2.3:8765"]
    assert rtms_server_allowed("wss://rtms-sjc1.zoom.us/signaling", allowed)
    assert rtms_server_allowed("ws://10.1.2.3:8765/rtms/signaling/s1", allowed)
    for refused in ("ws://rtms.zoom.us/x", "wss://zoom.us.evil.example/", "ws://10.1.2.3:9/x"):
        assert not rtms_server_allowed(refused, allowed)
    with pytest.raises(ValueError, match="rtms server"):
        Settings(rtms_servers="ws://rtms.example.com")


def _started_stream(meeting: str | None = "123456789") -> MeetingStream:
    stream = MeetingStream.model_validate(stream_obj("t", "s", meeting=meeting))
    now = datetime.now(UTC)
    first = statuses.started(stream, notice(meeting=meeting), now)
    return stream.model_copy(update={"status": first})


def test_a_stream_is_streaming_once_its_worker_connects() -> None:
    stream = _started_stream()
    [session] = stream.status.streams
    assert (session.index, stream.status.phase) == (1, StreamPhase.STARTING)
    given = statuses.given(stream, datetime.now(UTC), index=1, worker="w-1", generation=1)
    stream = stream.model_copy(update={"status": given})
    up = statuses.connected(stream, datetime.now(UTC), index=1, worker="w-1")
    assert (up.phase, up.reason) == (StreamPhase.STREAMING, "StreamConnected")
    assert (up.streams[0].worker, up.streams[0].generation) == ("w-1", 1)


def test_a_refused_signature_fails_the_meetingstream_and_a_lost_stream_waits_for_the_next() -> None:
    bad = statuses.failed(
        _started_stream(), datetime.now(UTC), index=1, error="refused", bad_signature=True
    )
    assert (bad.phase, bad.reason) == (StreamPhase.FAILED, "SignatureInvalid")
    assert bad.streams[0].ended_at is not None
    # A catch-all that lost one stream goes on waiting for the app's next one.
    lost = statuses.failed(
        _started_stream(meeting=None), datetime.now(UTC), index=1, error="lost", bad_signature=False
    )
    assert (lost.phase, lost.reason) == (StreamPhase.WAITING, "StreamLost")


def test_a_meetingstreams_webhook_is_told_each_phase_each_streams_files_and_the_result() -> None:
    obj = stream_obj("t", "s", meeting="123456789")
    obj["spec"]["webhook"] = {
        "url": "https://hooks.example.com/x",
        "signingSecretRef": {"name": "hook", "key": "secret"},
    }
    stream = MeetingStream.model_validate(obj)
    now = datetime.now(UTC)
    steps: list[Callable[[MeetingStream], MeetingStreamStatus]] = [
        lambda s: statuses.waiting(s, now),
        lambda s: statuses.started(s, notice(), now),
        lambda s: statuses.connected(s, now, index=1, worker="w"),
        lambda s: statuses.stopped(s, RtmsNotice("stopped", "s1", "u==", None, "", 6), now),
        lambda s: statuses.delivered(s, now, index=1, summary=None),
        lambda s: statuses.delivered(s, now, index=1, summary=None),  # told once
    ]
    for step in steps:
        new = notify(stream, step(stream), None, now)
        stream = stream.model_copy(update={"status": new})
    assert stream.status.webhook is not None
    told = [
        (e.seq, e.type.value.rsplit(".", 1)[1], e.data.phase) for e in stream.status.webhook.pending
    ]
    assert told == [
        (1, "phase", "Waiting"),
        (2, "phase", "Starting"),
        (3, "phase", "Streaming"),
        (4, "phase", "Succeeded"),
        (5, "finished", "Succeeded"),
        (6, "artifacts", "Succeeded"),
    ]
    assert stream.status.webhook.pending[-1].data.stream_index == 1


async def test_a_late_watch_event_does_not_turn_a_written_status_back(kube: Kube) -> None:
    """Under load the watch trails the writes: an event older than the operator's own last
    write (by resourceVersion) is skipped, so a later write does not start from it."""

    class Versioned(Kube):
        version = 10

        async def patch_status(
            self, plural: str, namespace: str, name: str, status: dict[str, Any]
        ) -> dict[str, Any] | None:
            await super().patch_status(plural, namespace, name, status)
            self.version += 1
            obj = stream_obj(namespace, name, meeting="123456789")
            obj["metadata"]["resourceVersion"] = str(self.version)
            return {**obj, "status": status}

    versioned = Versioned()
    versioned.secrets = kube.secrets
    service = StreamService(versioned, lambda namespace, name: None, SERVERS)  # type: ignore[arg-type]
    first = stream_obj("a", "standup", meeting="123456789")
    first["metadata"]["resourceVersion"] = "5"
    service.observe("ADDED", first)
    await asyncio.sleep(0.05)  # Waiting, written as version 11
    await service.notice(*signed("tok-a", started()))  # Starting, version 12
    assert service.streams[("a", "standup")].status.phase == StreamPhase.STARTING
    late = stream_obj("a", "standup", meeting="123456789")
    late["metadata"]["resourceVersion"] = "11"
    late["status"] = {"phase": "Waiting"}
    service.observe("MODIFIED", late)
    assert service.streams[("a", "standup")].status.phase == StreamPhase.STARTING
    assert len(service.wanted()) == 1


async def test_the_desk_forgets_a_stream_once_it_left_the_books(kube: Kube) -> None:
    """What the workers' desk recorded of a stream (connected, failed) is pruned once the
    stream ended and was delivered: a long-running operator does not grow with every stream."""
    kube.secrets[("a", "app")] = SecretView(
        OPT_IN, {"clientId": "c", "clientSecret": "s", "webhookSecretToken": "tok-a"}
    )
    service = StreamService(kube, lambda namespace, name: None, SERVERS)  # type: ignore[arg-type]
    desk = WorkerDesk(kube, service, Settings(stream_worker_poll_seconds=0.5))  # type: ignore[arg-type]
    desk.pool._ready_at = 0.0  # no change of leader to wait out
    service.observe("ADDED", stream_obj("a", "standup", meeting="123456789"))
    await service.notice(*signed("tok-a", started()))
    orders = await desk.poll("w1", WorkerHeartbeat(held=[], capacity=10))
    assert len(orders.take) == 1
    ref = orders.take[0].ref
    up = HeldStream(ref=ref, generation=1, connected=True)
    await desk.poll("w1", WorkerHeartbeat(held=[up], capacity=10))
    assert (ref, 1) in desk._connected
    done = HeldStream(ref=ref, generation=1, connected=True, ended=True, drained=True, over=True)
    await desk.poll("w1", WorkerHeartbeat(held=[done], capacity=10))
    assert desk.pool.given(ref) is None
    desk._prune(time.monotonic() + 3600)
    assert not desk._connected
