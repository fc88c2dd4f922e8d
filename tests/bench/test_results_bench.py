"""How fast results reach a team's systems (`make bench`), written to bench-results/results.json
and printed; never asserted.

1. Webhooks at BENCH_WEBHOOK_BOTS (1000) bots: each is applied with joinAt a day away and a
   webhook (its phase change to Scheduled is one notification), then canceled (Succeeded and
   finished: two more). Latency: from the status write that made each event (its `time`) to
   its receipt by a real receiver, with the session operator's settings.
2. The live stream's audio latency in a simulated meeting: a real bot on the real node streams
   to a real receiver; from each frame's first sample (its capture time) to its receipt.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from devenv.zoomsim import SimAdmin
from meetingbot_contract.stream import SAMPLE_RATE
from tests.bench.test_bot_latency import RESULTS
from tests.bench.test_burst import bounded, progress
from tests.support.artifacts import ScratchBucket
from tests.support.meeting_script import capture_spec, meeting_with_speakers
from tests.support.operator_fixtures import Bots, Kube, wait_for
from tests.support.specs import bot_spec
from tests.support.stream_receiver import StreamReceiver, stream_spec
from tests.support.webhook_receiver import Receiver, signing_secret, webhook

BOTS = int(os.environ.get("BENCH_WEBHOOK_BOTS", "1000"))
STREAM_SECONDS = int(os.environ.get("BENCH_STREAM_SECONDS", "60"))


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    cut = statistics.quantiles(ordered, n=100) if len(ordered) > 1 else ordered * 99
    return {
        "count": len(ordered),
        "median": round(statistics.median(ordered), 3),
        "p95": round(cut[94], 3),
        "p99": round(cut[98], 3),
        "max": round(ordered[-1], 3),
    }


def _save(name: str, figures: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "results.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    saved[name] = figures
    path.write_text(json.dumps(saved, indent=2))
    print(json.dumps({name: figures}, indent=2))


async def test_webhook_latency_at_a_thousand_bots(
    kube: Kube, namespace: str, bots: Bots, zoom: dict[str, Any], receiver: Receiver
) -> None:
    await signing_secret(kube, namespace)
    path = f"/bench/{uuid.uuid4().hex[:8]}"
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    names = [f"b{i:05d}" for i in range(BOTS)]
    spec = {**bot_spec(joinAt=later), "webhook": webhook(receiver, path)}
    started = time.monotonic()
    progress(f"applying {BOTS} bots with a webhook")
    await bounded([partial(bots.apply, n, spec) for n in names], 32)

    def received(kind: str, count: int) -> bool:
        return sum(1 for e in receiver.accepted(path) if e["type"].endswith(kind)) >= count

    await wait_for(lambda: received("phase", BOTS), 600, 1, what="every Scheduled notification")
    applied = time.monotonic() - started
    progress(f"{BOTS} Scheduled notifications received in {applied:.1f} s; canceling")
    started = time.monotonic()
    patch = {"spec": {"cancel": True}}
    await bounded([partial(bots.patch, n, patch) for n in names], 32)
    await wait_for(lambda: received("finished", BOTS), 600, 1, what="every finished notification")
    canceled = time.monotonic() - started
    latencies = [
        (d.arrived_ms - _ms(d.body["time"])) / 1000
        for d in receiver.seen(path)
        if 200 <= d.answer < 300
    ]
    figures = {
        "bots": BOTS,
        "notifications": len(receiver.accepted(path)),
        "apply_to_all_scheduled_received_seconds": round(applied, 1),
        "cancel_to_all_finished_received_seconds": round(canceled, 1),
        "latency_seconds": _quantiles(latencies),
    }
    _save("webhooks", figures)


async def test_live_stream_audio_latency(
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    image: str,
    bucket: ScratchBucket,
    stream_receiver: StreamReceiver,
) -> None:
    await signing_secret(kube, namespace)
    path = f"/bench/{namespace}"
    number, people = await meeting_with_speakers(sim, zoom, "wasm")
    spec = capture_spec(image, number, bucket, askPermission=False)
    spec["stream"] = stream_spec(stream_receiver, path)
    await bots.apply("live", spec)
    await wait_for(lambda: any(c.audio for c in stream_receiver.connections(path)), 120)
    sim.script_media(
        number,
        start_in_seconds=1,
        speech=[
            {"participant": people["alice"]["userId"], "from": t, "to": t + 2, "text": "hi"}
            for t in range(0, STREAM_SECONDS, 4)
        ],
    )
    progress(f"streaming for {STREAM_SECONDS} s")
    await asyncio.sleep(STREAM_SECONDS)
    sim.end_meeting(number)
    await bots.wait_phase("live", "Succeeded", timeout=90)
    (connection,) = stream_receiver.connections(path)
    # A frame's last sample was captured at its first sample's time plus its length.
    latencies = [
        (arrived - (t + len(pcm) / 2 / SAMPLE_RATE * 1000)) / 1000
        for (t, pcm), arrived in zip(connection.audio, connection.arrivals, strict=True)
    ]
    seconds = sum(len(pcm) for _, pcm in connection.audio) / 2 / SAMPLE_RATE
    figures = {
        "frames": len(connection.audio),
        "audio_seconds": round(seconds, 1),
        "frame_ms_median": round(
            statistics.median(len(pcm) / 2 / SAMPLE_RATE * 1000 for _, pcm in connection.audio), 1
        ),
        "latency_seconds": _quantiles(latencies),
    }
    _save("stream", figures)


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
