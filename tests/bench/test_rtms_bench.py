"""What an RTMS stream costs a stream worker (`make bench PYTEST_ARGS="-k rtms"`), written to
bench-results/results.json and printed; never asserted.

BENCH_RTMS_STREAMS (default "50,200,1000") streams at a time, each a meeting with one scripted
speaker for the whole run, received by sessions in this process (a worker's) from the
simulator in a process of its own (so that the two are measured apart). Each run: the
worker's RSS before and after the sessions (per stream), its CPU over BENCH_RTMS_SECONDS (per
stream, as a share of one core), the simulator's CPU, and from each stream's start (Zoom's
side: the admin call that starts it) to its first audio byte in the worker. At Zoom's default
20 ms messages up to 200 streams; for 1000 the messages carry 100 ms each (`send_rate`), or
the simulator (one Python process) could not keep time. Also the interpreter's own RSS with
what a worker imports: what one more process (a pod per stream) would cost before its first
stream.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from devenv.zoomsim.server import free_port
from meetingbot_bot.rtms.recorder import RtmsCapture
from meetingbot_bot.rtms.session import RtmsSession
from meetingbot_bot.spool import Spool
from meetingbot_contract.rtms import RtmsJoin
from tests.bench.test_results_bench import _quantiles, _save

pytestmark = pytest.mark.bench
COUNTS = [int(n) for n in os.environ.get("BENCH_RTMS_STREAMS", "50,200,1000").split(",")]
SECONDS = float(os.environ.get("BENCH_RTMS_SECONDS", "30"))
ROOT = Path(__file__).resolve().parents[2]


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare_worker_rss() -> float:
    """A fresh interpreter with what a worker imports, before any stream."""
    code = (
        "import aiohttp, meetingbot_bot.rtms.session, meetingbot_bot.rtms.recorder;"
        "print(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return round(int(out.stdout.strip()) / 1024, 1)


async def run(count: int, send_rate: int, tmp: Path) -> dict[str, Any]:
    port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "devenv.zoomsim", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    admin = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        for _ in range(200):
            try:
                await admin.get("/sim/calls")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
        app = (await admin.post("/sim/accounts", json={"plan": "pro"})).json()
        meetings = []
        for i in range(count):
            made = await admin.post("/sim/meetings", json={"account_id": app["id"]})
            number = made.json()["number"]
            who = await admin.post(f"/sim/meetings/{number}/participants", json={"name": f"P{i}"})
            speech = [{"participant": who.json()["userId"], "from": 0, "to": 86400, "text": ""}]
            await admin.post(
                f"/sim/meetings/{number}/script", json={"start_in_seconds": 0, "speech": speech}
            )
            meetings.append(number)
        before = rss_mb()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            sessions: list[tuple[RtmsSession, float]] = []
            tasks = []
            for i, number in enumerate(meetings):
                began = time.monotonic()
                started_stream = await admin.post(
                    f"/sim/meetings/{number}/rtms", json={"app_account_id": app["id"]}
                )
                stream = started_stream.json()
                message = f"{app['user_client_id']},{stream['meetingUuid']},{stream['id']}"
                signature = hmac.new(
                    app["user_client_secret"].encode(), message.encode(), hashlib.sha256
                ).hexdigest()
                join = RtmsJoin(
                    server_urls=f"ws://127.0.0.1:{port}/rtms/signaling/{stream['id']}",
                    meeting_uuid=stream["meetingUuid"],
                    stream_id=stream["id"],
                    signature=signature,
                    send_rate_ms=send_rate,
                )
                capture = RtmsCapture(Spool(tmp / f"spool-{count}" / str(i)), 10)
                session = RtmsSession(join, capture, http)
                sessions.append((session, began))
                tasks.append(asyncio.create_task(session.run()))
            await asyncio.sleep(5)  # every stream connected and flowing
            worker_cpu, sim_cpu = cpu_seconds(os.getpid()), cpu_seconds(sim.pid)
            started = time.monotonic()
            received = sum(s.audio_bytes for s, _ in sessions)
            await asyncio.sleep(SECONDS)
            wall = time.monotonic() - started
            worker_cpu = cpu_seconds(os.getpid()) - worker_cpu
            sim_cpu = cpu_seconds(sim.pid) - sim_cpu
            received = sum(s.audio_bytes for s, _ in sessions) - received
            after = rss_mb()
            first = [s.first_audio_at - b for s, b in sessions if s.first_audio_at is not None]
            for session, _ in sessions:
                await session.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        sim.terminate()
        sim.wait(10)
        await admin.aclose()
    return {
        "streams": count,
        "sendRateMs": send_rate,
        "connected": sum(s.connections > 0 for s, _ in sessions),
        "workerRssMb": {"before": round(before, 1), "after": round(after, 1)},
        "rssPerStreamKb": round((after - before) * 1024 / count, 1),
        "workerCpuPerStreamPctOfCore": round(100 * worker_cpu / wall / count, 3),
        "simulatorCpuPctOfCore": round(100 * sim_cpu / wall, 1),
        "audioReceivedShare": round(received / (count * wall * 32000), 3),
        "startToFirstAudioSeconds": _quantiles(first) if first else None,
    }


async def test_rtms_stream_costs(tmp_path: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # two sockets a stream
    figures: dict[str, Any] = {"bareWorkerRssMb": bare_worker_rss(), "runs": []}
    for count in COUNTS:
        send_rate = 20 if count <= 200 else 100
        print(
            f"[bench] rtms: {count} streams, {send_rate} ms messages, {SECONDS:.0f} s", flush=True
        )
        figures["runs"].append(await run(count, send_rate, tmp_path))
    figures["medianRssPerStreamKb"] = statistics.median(
        r["rssPerStreamKb"] for r in figures["runs"]
    )
    _save("rtms", figures)
