"""MeetingStreams received by the stream workers on the real node: Zoom's webhook (the
simulator's, signed as Zoom signs) reaches the operator, the operator gives the stream to a
worker pod, the worker receives it and delivers WAV segments and events through the
operator's presigned uploads to the object store; the manifest holds the scripted speakers'
tones where the script puts them. A worker killed mid-stream is replaced within Zoom's window
and the recording's gap stays under 30 s; the operator's leader changing mid-stream costs the
stream nothing; 50 streams at once each reach their own manifest."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
import wave
from pathlib import Path
from typing import Any

from devenv.operator_process import OperatorProcess, install_crds
from devenv.zoomsim import SimAdmin, ZoomSim
from meetingbot_contract import Manifest
from meetingbot_contract.rtms import RTMS_SAMPLE_RATE
from tests.support.artifacts import ScratchBucket, bucket_for
from tests.support.audio import pcm_timeline, rms, tone_share
from tests.support.meeting_script import MARGIN_MS, SPEECH, meeting_with_speakers, play_the_script
from tests.support.operator_fixtures import Kube, wait_for
from tests.support.replicas import leads, replica_pair
from tests.support.stream_receiver import StreamReceiver, stream_spec
from tests.support.stream_workers import IDENTITY, Workers, deploy
from tests.support.streams import meetingstream, phase_is, status_of
from tests.support.webhook_receiver import Receiver, signing_secret, webhook


def app_for(sim: SimAdmin, operator: OperatorProcess) -> dict[str, Any]:
    """An account whose General app posts its RTMS webhooks to the operator."""
    app = sim.create_account(plan="pro")
    sim.update_account(app["id"], event_notification_url=f"{operator.oauth_url}/zoom/rtms")
    return app


async def streaming(kube: Kube, namespace: str, name: str, timeout: float = 60) -> dict[str, Any]:
    async def up() -> dict[str, Any] | None:
        status = await status_of(kube, namespace, name)
        return status if status.get("phase") == "Streaming" else None

    return dict(await wait_for(up, timeout, what=f"{name} Streaming"))


async def delivered(
    kube: Kube, namespace: str, name: str, bucket: ScratchBucket, until_ms: int
) -> Manifest:
    """The stream's manifest once its audio reaches `until_ms` (the worker delivers the last
    segment after Zoom's end), and the status counts it."""

    async def complete() -> Manifest | None:
        status = await status_of(kube, namespace, name)
        summary = (status.get("streams") or [{}])[-1].get("artifacts") or {}
        if not summary.get("manifestKey"):
            return None
        manifest = await bucket.manifest(summary["manifestKey"])
        if manifest is None:
            return None
        audio = [e for e in manifest.entries if e.kind == "audio-wav"]
        if not audio or max(e.end_ms for e in audio) < until_ms:
            return None
        return manifest if summary.get("objects") == len(manifest.entries) else None

    return Manifest.model_validate(await wait_for(complete, 60, 1, what=f"{name} delivered"))


async def recording(bucket: ScratchBucket, manifest: Manifest) -> Any:
    objects = await bucket.objects(manifest)
    frames = []
    for entry in manifest.entries:
        if entry.kind == "audio-wav":
            with wave.open(io.BytesIO(objects[entry.key])) as file:
                assert (file.getframerate(), file.getnchannels()) == (RTMS_SAMPLE_RATE, 1)
                frames.append((entry.start_ms, file.readframes(file.getnframes())))
    return pcm_timeline(frames, RTMS_SAMPLE_RATE)


async def test_a_stream_from_zooms_webhook_to_the_manifest(
    kube: Kube,
    namespace: str,
    operator: OperatorProcess,
    sim: SimAdmin,
    bucket: ScratchBucket,
    workers: Workers,
    receiver: Receiver,
    stream_receiver: StreamReceiver,
) -> None:
    app = app_for(sim, operator)
    number, people = await meeting_with_speakers(sim, app, "wasm")
    path = f"/streams/{uuid.uuid4().hex[:8]}"
    live_path = f"/live/{uuid.uuid4().hex[:8]}"
    await signing_secret(kube, namespace)
    await meetingstream(
        kube,
        namespace,
        "standup",
        app,
        meeting={"number": number},
        segmentSeconds=3,
        artifacts=bucket.spec(),
        webhook=webhook(receiver, path),
        stream=stream_spec(stream_receiver, live_path),
    )
    await phase_is(kube, namespace, "standup", "Waiting")
    sim.start_rtms(number, app["id"])
    status = await streaming(kube, namespace, "standup")
    [session] = status["streams"]
    assert session["worker"] in {p["metadata"]["name"] for p in await workers.pods()}
    assert (session["index"], session["generation"]) == (1, 1)
    assert status["reason"] == "StreamConnected"

    start = play_the_script(sim, number, people)
    await asyncio.sleep(13)
    sim.end_meeting(number)
    done = await phase_is(kube, namespace, "standup", "Succeeded")
    assert done["reason"] == "MeetingEnded"
    manifest = await delivered(kube, namespace, "standup", bucket, start + 12_000)
    assert all(f"/{namespace}/_streams/standup/1/1/" in e.key for e in manifest.entries)

    audio = await recording(bucket, manifest)
    tones = {who: people[who]["toneHz"] for who in people}
    for who, a, b, _ in SPEECH:
        window = audio.window(start + int(a * 1000) + MARGIN_MS, start + int(b * 1000) - MARGIN_MS)
        assert tone_share(window, tones[who], RTMS_SAMPLE_RATE) > 0.3, (who, a, b)
    assert rms(audio.window(start + 7000 + MARGIN_MS, start + 9000 - MARGIN_MS)) < 0.001

    lines = await bucket.events(manifest)
    captions = [line for line in lines if line["type"] == "caption"]
    assert [c["text"] for c in captions] == [text for *_, text in SPEECH]
    assert [c["name"] for c in captions] == ["Alice", "Bob", "Alice"]
    assert [line["text"] for line in lines if line["type"] == "chat"] == ["see the doc"]
    assert [line["name"] for line in lines if line["type"] == "speech"][:3] == [
        "Alice",
        "Bob",
        "Alice",
    ]

    # Who is told: every phase, the stream's files once all are in, the result; signed and
    # in order, as a MeetingBot's.
    async def told_everything() -> list[dict[str, Any]] | None:
        events = receiver.accepted(path)
        types = [e["type"].rsplit(".", 1)[1] for e in events]
        return events if "artifacts" in types and "finished" in types else None

    events = await wait_for(told_everything, 30, what="the stream's webhook events")
    assert all(d.verified for d in receiver.seen(path))
    told = [(e["type"].rsplit(".", 1)[1], e["data"].get("phase")) for e in events]
    assert [phase for kind, phase in told if kind == "phase"] == [
        "Waiting",
        "Starting",
        "Streaming",
        "Succeeded",
    ]
    [artifacts] = [e for e in events if e["type"] == "dev.meetingbot.stream.artifacts"]
    assert artifacts["data"]["streamIndex"] == 1
    assert artifacts["data"]["artifacts"]["objects"] == len(manifest.entries)
    assert artifacts["source"].endswith(f"/namespaces/{namespace}/meetingstreams/standup")
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    # The live stream: the worker forwards the audio and the events as a bot does, with a
    # token for this stream (its index in the claims and the hello) it did not sign.
    [live] = stream_receiver.connections(live_path)
    assert live.claims is not None and live.claims["sub"] == f"{namespace}/standup"
    assert (live.claims["stream"], live.claims["attempt"]) == (1, 1)
    assert live.hello is not None and live.hello["stream"] == 1
    assert [e["text"] for e in live.events if e["type"] == "caption"] == [
        text for *_, text in SPEECH
    ]
    assert live.end is not None and live.end["reason"] == "StreamEnded"
    heard = pcm_timeline(live.audio, RTMS_SAMPLE_RATE)
    for who, a, b, _ in SPEECH:
        window = heard.window(start + int(a * 1000) + MARGIN_MS, start + int(b * 1000) - MARGIN_MS)
        assert tone_share(window, tones[who], RTMS_SAMPLE_RATE) > 0.3, ("live", who, a, b)
    # What the worker holds is the one stream's handshake: never the app's secret, never a
    # storage key.
    logs = await workers.logs()
    assert app["user_client_secret"] not in logs and "secretAccessKey" not in logs


async def test_a_worker_killed_mid_stream_resumes_within_zooms_window(
    kube: Kube,
    namespace: str,
    operator: OperatorProcess,
    sim: SimAdmin,
    bucket: ScratchBucket,
    workers: Workers,
) -> None:
    app = app_for(sim, operator)
    number, people = await meeting_with_speakers(sim, app, "wasm")
    await meetingstream(
        kube,
        namespace,
        "long",
        app,
        meeting={"number": number},
        segmentSeconds=5,
        artifacts=bucket.spec(),
    )
    await phase_is(kube, namespace, "long", "Waiting")
    sim.start_rtms(number, app["id"])
    first = (await streaming(kube, namespace, "long"))["streams"][0]["worker"]
    script = sim.script_media(
        number,
        start_in_seconds=1,
        speech=[{"participant": people["alice"]["userId"], "from": 0, "to": 60, "text": "long"}],
    )
    start = int(script["startsAtMs"])
    await asyncio.sleep(12)
    workers.crash(first)

    async def taken_over() -> dict[str, Any] | None:
        [session] = (await status_of(kube, namespace, "long"))["streams"]
        return session if session.get("generation") == 2 else None

    await wait_for(taken_over, 40, what="a worker takes the stream over")
    await asyncio.sleep(15)
    ended_ms = int(time.time() * 1000)
    sim.end_meeting(number)
    await phase_is(kube, namespace, "long", "Succeeded")
    manifest = await delivered(kube, namespace, "long", bucket, ended_ms - 2000)
    generations = {e.attempt for e in manifest.entries}
    assert generations == {1, 2}
    # The killed worker's segment in progress is lost with its pod, and what Zoom sent
    # until the hand-over, unless Zoom kept it for the stream (buffer_data): under 30 s.
    audio_entries = sorted(
        (e for e in manifest.entries if e.kind == "audio-wav"), key=lambda e: e.start_ms
    )
    lost_ms = sum(g["endMs"] - g["startMs"] for g in manifest.gaps if g["endMs"] > start)
    assert lost_ms < 30_000, manifest.gaps
    print(f"\nstream worker SIGKILLed: {lost_ms / 1000:.1f} s of audio missing")
    second = [e for e in audio_entries if e.attempt == 2]
    audio = await recording(bucket, manifest)
    after = audio.window(second[0].start_ms + MARGIN_MS, second[0].end_ms - MARGIN_MS)
    assert tone_share(after, people["alice"]["toneHz"], RTMS_SAMPLE_RATE) > 0.3


async def test_fifty_streams_at_once_each_reach_their_own_manifest(
    kube: Kube,
    namespace: str,
    operator: OperatorProcess,
    sim: SimAdmin,
    bucket: ScratchBucket,
    workers: Workers,
) -> None:
    app = app_for(sim, operator)
    count = 50
    meetings = []
    for i in range(count):
        meeting = sim.create_meeting(app["id"])
        speaker = sim.add_participant(meeting["number"], f"Speaker {i}", is_host=True)
        meetings.append((meeting["number"], speaker))
        await meetingstream(
            kube,
            namespace,
            f"s{i}",
            app,
            meeting={"number": meeting["number"]},
            segmentSeconds=5,
            artifacts=bucket.spec(),
        )
    for i in range(count):
        await phase_is(kube, namespace, f"s{i}", "Waiting")
    for number, speaker in meetings:
        sim.script_media(
            number,
            start_in_seconds=0,
            speech=[{"participant": speaker["userId"], "from": 0, "to": 30, "text": "hi"}],
        )
        sim.start_rtms(number, app["id"])
    held = []
    for i in range(count):
        held.append((await streaming(kube, namespace, f"s{i}", timeout=90))["streams"][0])
    assert {s["worker"] for s in held} == {p["metadata"]["name"] for p in await workers.pods()}
    await asyncio.sleep(8)
    ended_ms = int(time.time() * 1000)
    for number, _ in meetings:
        sim.end_meeting(number)
    for i, (_, speaker) in enumerate(meetings):
        manifest = await delivered(kube, namespace, f"s{i}", bucket, ended_ms - 2000)
        audio = await recording(bucket, manifest)
        mine = audio.window(ended_ms - 6000, ended_ms - 1000)
        assert tone_share(mine, speaker["toneHz"], RTMS_SAMPLE_RATE) > 0.3, i
        assert manifest.gaps == []


async def test_the_operators_leader_changes_mid_stream(
    kube: Kube,
    kubeconfig: Path,
    tmp_path: Path,
    ha_namespace: str,
    sim: SimAdmin,
    zoomsim: ZoomSim,
    image: str,
) -> None:
    """Two operator replicas; the stream worker polls the standby (as through the chart's
    Service) and Zoom posts there too. The leader is SIGKILLed mid-stream: the worker keeps
    its stream (no hand-over, no gap), the new leader adopts it from the worker's next poll,
    takes its uploads and finishes the MeetingStream when Zoom ends the meeting."""
    namespace = ha_namespace
    bucket = await bucket_for(kube, namespace)
    install_crds()
    a, b = replica_pair(
        kubeconfig, tmp_path, zoomsim, namespace, namespace, stream_workers=IDENTITY
    )
    a.start()
    workers: Workers | None = None
    try:
        await wait_for(lambda: leads(kube, namespace, "a"), 30, what="a leads")
        b.start()
        workers = await deploy(kube, image, b.report_url, replicas=1)
        await workers.ready(1)
        app = sim.create_account(plan="pro")
        sim.update_account(app["id"], event_notification_url=f"{b.oauth_url}/zoom/rtms")
        number, people = await meeting_with_speakers(sim, app, "wasm")
        await meetingstream(
            kube,
            namespace,
            "standup",
            app,
            meeting={"number": number},
            segmentSeconds=3,
            artifacts=bucket.spec(),
        )
        await phase_is(kube, namespace, "standup", "Waiting")
        sim.start_rtms(number, app["id"])
        await streaming(kube, namespace, "standup")
        script = sim.script_media(
            number,
            start_in_seconds=1,
            speech=[{"participant": people["alice"]["userId"], "from": 0, "to": 40, "text": "x"}],
        )
        start = int(script["startsAtMs"])
        await asyncio.sleep(6)
        a.kill()
        await wait_for(lambda: leads(kube, namespace, "b"), 30, what="b leads")
        await asyncio.sleep(8)
        ended_ms = int(time.time() * 1000)
        sim.end_meeting(number)
        done = await phase_is(kube, namespace, "standup", "Succeeded")
        assert done["reason"] == "MeetingEnded"
        [session] = done["streams"]
        assert session["generation"] == 1  # the worker kept it: no hand-over
        manifest = await delivered(kube, namespace, "standup", bucket, ended_ms - 2000)
        assert {e.attempt for e in manifest.entries} == {1}
        assert [g for g in manifest.gaps if g["endMs"] > start] == []
        audio = await recording(bucket, manifest)
        kept = audio.window(start + 1000, ended_ms - 2000)
        assert tone_share(kept, people["alice"]["toneHz"], RTMS_SAMPLE_RATE) > 0.3
    finally:
        if workers is not None:
            await workers.remove()
        for process in (a, b):
            process.stop()
