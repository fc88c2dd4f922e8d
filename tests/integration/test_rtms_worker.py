"""The RTMS stream worker's session against the simulator's RTMS side (both sockets real, over
loopback): the scripted speakers' tones in the WAV segments where the script puts them, the
transcript, chat and speaker turns in order, keep-alives, a refused signature, a reconnection
after the network breaks, and the stream's end when the meeting ends."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import time
import wave
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from devenv.zoomsim import SimAdmin
from meetingbot_bot.rtms.protocol import STOP_BC_MEETING_ENDED
from meetingbot_bot.rtms.recorder import RtmsCapture
from meetingbot_bot.rtms.session import Outcome, RtmsRefused, RtmsSession
from meetingbot_bot.spool import Spool
from meetingbot_contract import ArtifactKind
from meetingbot_contract.rtms import RTMS_SAMPLE_RATE, RtmsAudio, RtmsJoin
from tests.support.audio import pcm_timeline, rms, tone_share
from tests.support.meeting_script import MARGIN_MS, SPEECH, meeting_with_speakers, play_the_script

pytestmark = pytest.mark.integration


def handshake_signature(app: dict[str, Any], meeting_uuid: str, stream_id: str) -> str:
    message = f"{app['user_client_id']},{meeting_uuid},{stream_id}"
    return hmac.new(
        app["user_client_secret"].encode(), message.encode(), hashlib.sha256
    ).hexdigest()


def join_for(
    app: dict[str, Any], stream: dict[str, Any], url: str, signature: str | None = None
) -> RtmsJoin:
    return RtmsJoin(
        server_urls=f"{url.replace('http', 'ws', 1)}/rtms/signaling/{stream['id']}",
        meeting_uuid=stream["meetingUuid"],
        stream_id=stream["id"],
        signature=signature or handshake_signature(app, stream["meetingUuid"], stream["id"]),
    )


def read_spool(directory: Path) -> tuple[list[tuple[int, bytes]], list[dict[str, Any]]]:
    spool = Spool(directory)
    audio, lines = [], []
    for item in spool.pending():
        data = item.path.read_bytes()
        if item.kind == ArtifactKind.AUDIO_WAV:
            with wave.open(io.BytesIO(data)) as file:
                assert (file.getframerate(), file.getnchannels()) == (RTMS_SAMPLE_RATE, 1)
                audio.append((item.start_ms, file.readframes(file.getnframes())))
        elif item.kind == ArtifactKind.EVENTS:
            lines += [json.loads(line) for line in data.decode().splitlines()]
    return audio, lines


async def running(
    join: RtmsJoin, capture: RtmsCapture, http: aiohttp.ClientSession
) -> tuple[asyncio.Queue[None], asyncio.Task[Outcome]]:
    """A session receiving the stream, once connected: a queue that gets an item at each
    (re)connection, and the session's task."""
    connected: asyncio.Queue[None] = asyncio.Queue()
    session = RtmsSession(join, capture, http, on_connected=connected.put_nowait)
    runner = asyncio.create_task(session.run())
    await asyncio.wait_for(connected.get(), 15)
    return connected, runner


async def ticking(capture: RtmsCapture) -> None:
    while True:
        capture.tick(_now_ms())
        await asyncio.sleep(1)


def _now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def app(sim: SimAdmin) -> dict[str, Any]:
    """An account whose General app receives the streams (no webhook endpoint: the tests
    start and read streams through the admin API)."""
    return sim.create_account(plan="pro")


async def test_a_stream_is_kept_as_a_bots_capture_is(
    sim: SimAdmin, zoomsim: Any, app: dict[str, Any], tmp_path: Path
) -> None:
    number, people = await meeting_with_speakers(sim, app, "wasm")
    stream = sim.start_rtms(number, app["id"])
    capture = RtmsCapture(Spool(tmp_path), segment_seconds=3)
    async with aiohttp.ClientSession() as http:
        _, runner = await running(join_for(app, stream, zoomsim.url), capture, http)
        clock = asyncio.create_task(ticking(capture))
        start = play_the_script(sim, number, people)
        await asyncio.sleep(12.5)
        sim.end_meeting(number)
        outcome = await asyncio.wait_for(runner, 10)
        clock.cancel()
    capture.finish(_now_ms())
    assert outcome.reason == STOP_BC_MEETING_ENDED

    audio, lines = read_spool(tmp_path)
    assert len(audio) >= 4  # 3 s segments over ~13 s
    recording = pcm_timeline(audio, RTMS_SAMPLE_RATE)
    tones = {who: people[who]["toneHz"] for who in people}
    for who, a, b, _ in SPEECH:
        window = recording.window(
            start + int(a * 1000) + MARGIN_MS, start + int(b * 1000) - MARGIN_MS
        )
        assert tone_share(window, tones[who], RTMS_SAMPLE_RATE) > 0.3, (who, a, b)
    silence = recording.window(start + 7000 + MARGIN_MS, start + 9000 - MARGIN_MS)
    assert rms(silence) < 0.001

    captions = [line for line in lines if line["type"] == "caption"]
    assert [c["text"] for c in captions] == [text for *_, text in SPEECH]
    assert [c["name"] for c in captions] == ["Alice", "Bob", "Alice"]
    assert [line["text"] for line in lines if line["type"] == "chat"] == ["see the doc"]
    turns = [line["name"] for line in lines if line["type"] == "speech"]
    assert turns[:3] == ["Alice", "Bob", "Alice"]
    joined = {line["name"] for line in lines if line["type"] == "join"}
    assert joined == {"Alice", "Bob"}
    times = [line["t"] for line in lines]
    assert times == sorted(times)


async def test_per_speaker_audio_keeps_each_speaker_apart(
    sim: SimAdmin, zoomsim: Any, app: dict[str, Any], tmp_path: Path
) -> None:
    """audio PerSpeaker: Zoom sends who speaks, each on its own; each speaker-wav file holds
    its speaker's tone and not the other's, where the script has that speaker talking."""
    number, people = await meeting_with_speakers(sim, app, "wasm")
    stream = sim.start_rtms(number, app["id"])
    join = join_for(app, stream, zoomsim.url).model_copy(update={"audio": RtmsAudio.PER_SPEAKER})
    capture = RtmsCapture(Spool(tmp_path), segment_seconds=3, per_speaker=True)
    async with aiohttp.ClientSession() as http:
        _, runner = await running(join, capture, http)
        start = play_the_script(sim, number, people)
        await asyncio.sleep(12.5)
        sim.end_meeting(number)
        await asyncio.wait_for(runner, 10)
    capture.finish(_now_ms())
    assert sim.rtms_stream(stream["id"])["mediaParams"]["audio"]["data_opt"] == 2

    _, lines = read_spool(tmp_path)
    ids = {line["name"]: line["userId"] for line in lines if line["type"] == "join"}
    tracks: dict[str, list[tuple[int, bytes]]] = {}
    for item in Spool(tmp_path).pending():
        # Audio Zoom names no one for (what it kept before the handshake asked for speakers)
        # is kept as the mix; the script's audio comes as speakers.
        if item.kind == ArtifactKind.AUDIO_WAV:
            assert item.end_ms <= start + int(SPEECH[0][1] * 1000), item
        if item.kind == ArtifactKind.SPEAKER_WAV:
            assert item.speaker is not None
            with wave.open(io.BytesIO(item.path.read_bytes())) as file:
                tracks.setdefault(item.speaker, []).append(
                    (item.start_ms, file.readframes(file.getnframes()))
                )
    assert set(tracks) == {ids["Alice"], ids["Bob"]}  # whose audio, as Zoom names them
    for who, a, b, _ in SPEECH:
        other = "bob" if who == "alice" else "alice"
        mine = pcm_timeline(tracks[ids[who.capitalize()]], RTMS_SAMPLE_RATE)
        window = mine.window(start + int(a * 1000) + MARGIN_MS, start + int(b * 1000) - MARGIN_MS)
        assert tone_share(window, people[who]["toneHz"], RTMS_SAMPLE_RATE) > 0.5, (who, a, b)
        assert tone_share(window, people[other]["toneHz"], RTMS_SAMPLE_RATE) < 0.05, (who, a)


async def test_a_forged_signature_is_refused(
    sim: SimAdmin, zoomsim: Any, app: dict[str, Any], tmp_path: Path
) -> None:
    number, _ = await meeting_with_speakers(sim, app, "wasm")
    stream = sim.start_rtms(number, app["id"])
    join = join_for(app, stream, zoomsim.url, signature="0" * 64)
    async with aiohttp.ClientSession() as http:
        session = RtmsSession(join, RtmsCapture(Spool(tmp_path), 3), http)
        with pytest.raises(RtmsRefused) as refused:
            await asyncio.wait_for(session.run(), 10)
    assert refused.value.status == 15  # STATUS_INVALID_SIGNATURE
    assert sim.rtms_stream(stream["id"])["handshakes"] == 0
    sim.end_meeting(number)


async def test_keepalives_are_answered_and_a_silent_app_is_dropped(
    sim: SimAdmin, zoomsim: Any, app: dict[str, Any], tmp_path: Path
) -> None:
    sim.set_faults(rtms_keepalive_seconds=0.2, rtms_keepalive_misses=2)
    number, _ = await meeting_with_speakers(sim, app, "wasm")
    stream = sim.start_rtms(number, app["id"])
    join = join_for(app, stream, zoomsim.url)
    async with aiohttp.ClientSession() as http:
        session = RtmsSession(join, RtmsCapture(Spool(tmp_path), 3), http)
        runner = asyncio.create_task(session.run())
        await asyncio.sleep(2.0)
        view = sim.rtms_stream(stream["id"])
        assert view["signaling"] and view["media"] and view["ready"]
        assert view["handshakes"] == 2  # never dropped: every keep-alive was answered
        assert session.keepalives_answered >= 10
        await session.stop()
        await runner

        # An app that never answers: Zoom closes its socket after two unanswered requests.
        async with http.ws_connect(join.server_urls) as raw:
            await raw.send_json(
                {
                    "msg_type": 1,
                    "protocol_version": 1,
                    "meeting_uuid": join.meeting_uuid,
                    "rtms_stream_id": join.stream_id,
                    "signature": join.signature.get_secret_value(),
                }
            )
            kinds = []
            async for message in raw:
                if message.type == aiohttp.WSMsgType.TEXT:
                    kinds.append(json.loads(message.data)["msg_type"])
            assert kinds[0] == 2 and kinds.count(12) == 2
    sim.end_meeting(number)


async def test_the_worker_comes_back_after_the_network_breaks(
    sim: SimAdmin, zoomsim: Any, app: dict[str, Any], tmp_path: Path
) -> None:
    number, people = await meeting_with_speakers(sim, app, "wasm")
    stream = sim.start_rtms(number, app["id"])
    capture = RtmsCapture(Spool(tmp_path), segment_seconds=2)
    async with aiohttp.ClientSession() as http:
        connected, runner = await running(join_for(app, stream, zoomsim.url), capture, http)
        play_the_script(sim, number, people)
        await asyncio.sleep(3)
        sim.drop_rtms(stream["id"])
        dropped_at = _now_ms()
        await asyncio.wait_for(connected.get(), 35)
        back_at = _now_ms()
        await asyncio.sleep(3)
        sim.end_meeting(number)
        outcome = await asyncio.wait_for(runner, 10)
    capture.finish(_now_ms())
    assert outcome.reason == STOP_BC_MEETING_ENDED
    assert sim.rtms_stream(stream["id"])["handshakes"] == 4
    audio, _ = read_spool(tmp_path)
    # The audio resumes: a segment starts after the reconnection, and what is missing is
    # no longer than the time the worker was away (plus a frame or two).
    starts = sorted(s for s, _ in audio)
    assert any(s >= dropped_at for s in starts)
    covered = sum(len(pcm) // 2 for _, pcm in audio) * 1000 // RTMS_SAMPLE_RATE
    span = max(s + len(pcm) // 2 * 1000 // RTMS_SAMPLE_RATE for s, pcm in audio) - starts[0]
    assert span - covered <= (back_at - dropped_at) + 1500
    assert np.count_nonzero(pcm_timeline(audio, RTMS_SAMPLE_RATE).samples) > 0
