"""Bot benchmarks (`make bench`): time to InMeeting, median of 5, and the browser's memory.

1. The reference bot as a process (real Chromium, the simulator's fake SDK): from process
   start to its InMeeting report; peak RSS of the bot's process tree while in the meeting.
2. The whole chain on the real node: from `apply` to status.phase InMeeting.
Printed and written to bench-results/bot.json; never asserted.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from devenv.cluster import cluster
from devenv.zoomsim import SimAdmin, ZoomSim
from meetingbot_bot.browser import FLAGS
from tests.support.bot_harness import BotProcess, ReportSink, join_config, mint_zak
from tests.support.operator_fixtures import Bots, wait_for
from tests.support.specs import bot_spec

RUNS = 5
RESULTS = Path(__file__).resolve().parents[2] / "bench-results"


def process_kind(pid: int) -> str:
    """What a process of the bot's tree is: the bot (Python), Playwright's driver (Node), or
    Chromium's browser, renderer, GPU, utility or zygote process."""
    try:
        # Chromium rewrites its children's command lines as one string: split on spaces too.
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()
    except OSError:
        return "gone"
    if not argv:
        return "gone"
    program = Path(argv[0].decode(errors="replace")).name
    kind = next((a.decode() for a in argv if a.startswith(b"--type=")), "")
    service = next((a.decode() for a in argv if a.startswith(b"--utility-sub-type=")), "")
    if kind:
        service = service.removeprefix("--utility-sub-type=").split(".")[0]
        return f"chromium {kind.removeprefix('--type=')} {service}".rstrip()
    if "chrom" in program:
        return "chromium browser"
    return {"node": "playwright driver (node)"}.get(program, f"{program} (the bot)")


def tree_memory_mb(pid: int) -> tuple[float, float, dict[str, float]]:
    """(RSS, PSS, PSS by kind of process and by anonymous or file pages) summed over a
    process and its descendants (Chromium's renderers, GPU, utility processes...). RSS counts
    shared pages once per process; PSS shares them out."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            status = (entry / "status").read_text()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        rss[int(entry.name)] = next(
            (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0
        )
    total_rss = total_pss = 0
    by_kind: dict[str, float] = {}
    stack = [pid]
    while stack:
        current = stack.pop()
        total_rss += rss.get(current, 0)
        try:
            lines = Path(f"/proc/{current}/smaps_rollup").read_text().splitlines()
            rollup = dict(line.split()[:2] for line in lines[1:])
        except OSError:
            rollup = {}
        pss = int(rollup.get("Pss:", 0))
        total_pss += pss
        for kind in (process_kind(current), "(of all: anonymous)", "(of all: files)"):
            part = {"(of all: anonymous)": "Pss_Anon:", "(of all: files)": "Pss_File:"}
            kb = int(rollup.get(part[kind], 0)) if kind in part else pss
            by_kind[kind] = by_kind.get(kind, 0) + kb / 1024
        stack += children.get(current, [])
    return total_rss / 1024, total_pss / 1024, by_kind


def record(name: str, values: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "bot.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = values
    path.write_text(json.dumps(data, indent=2) + "\n")


async def test_bot_process_to_in_meeting(
    zoomsim: ZoomSim, sim: SimAdmin, zoom_account: dict[str, Any], tmp_path: Path
) -> None:
    times: list[float] = []
    peaks: list[float] = []
    pss_peaks: list[float] = []
    breakdown: dict[str, float] = {}
    for run in range(RUNS):
        sink = ReportSink()
        number = sim.create_meeting(zoom_account["id"], auth_required=True)["number"]
        bot = BotProcess(
            join_config(zoom_account, number, sink, zak=mint_zak(zoomsim.url, zoom_account)),
            zoomsim.url,
            tmp_path / f"run{run}",
        )
        try:
            await wait_for(lambda: "InMeeting" in sink.states(), 60, what="InMeeting")  # noqa: B023 - awaited here
            times.append(time.monotonic() - bot.started)
            peak = pss_peak = 0.0
            for _ in range(20):  # 2 s in the meeting
                rss, pss, kinds = tree_memory_mb(bot.process.pid)
                if pss > max(pss_peak, *pss_peaks, 0):
                    breakdown = kinds  # where the largest PSS of all runs went
                peak, pss_peak = max(peak, rss), max(pss_peak, pss)
                await asyncio.sleep(0.1)
            peaks.append(peak)
            pss_peaks.append(pss_peak)
            sim.end_meeting(number)
            bot.wait(30)
        finally:
            bot.kill()
            sink.close()
    values = {
        "start_to_in_meeting_s": [round(t, 2) for t in times],
        "median_s": round(statistics.median(times), 2),
        "peak_tree_rss_mb": [round(p) for p in peaks],
        "max_peak_tree_rss_mb": round(max(peaks)),
        "max_peak_tree_pss_mb": round(max(pss_peaks)),
        "pss_by_process_mb": {k: round(v) for k, v in sorted(breakdown.items())},
        "chromium_flags": FLAGS,
    }
    record("bot_process", values)
    print(
        f"\nbot process start to InMeeting: median {values['median_s']} s of {values['start_to_in_meeting_s']}"
    )
    print(
        f"peak memory of the bot's process tree in a meeting: PSS {values['max_peak_tree_pss_mb']} MB, RSS summed {values['max_peak_tree_rss_mb']} MB"
    )
    print(f"PSS by process at that peak (MB): {values['pss_by_process_mb']}")


async def test_bot_process_with_the_real_sdk_offline(
    zoomsim: ZoomSim, sim: SimAdmin, zoom_account: dict[str, Any], tmp_path: Path
) -> None:
    """The reference bot with the real @zoom/meetingsdk its page ships with, offline: it loads
    and initialises the SDK and tries to join, which cannot reach Zoom from here. The peak
    PSS of its process tree meanwhile, beside the simulated meeting's."""
    sink = ReportSink()
    number = sim.create_meeting(zoom_account["id"], auth_required=True)["number"]
    config = join_config(zoom_account, number, sink, zak=mint_zak(zoomsim.url, zoom_account))
    bot = BotProcess(config, zoomsim.url, tmp_path, fake_sdk=False)
    peak = 0.0
    breakdown: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 90
        while bot.process.poll() is None and time.monotonic() < deadline:
            _, pss, kinds = tree_memory_mb(bot.process.pid)
            if pss > peak:
                peak, breakdown = pss, kinds
            await asyncio.sleep(0.1)
    finally:
        bot.kill()
        sink.close()
    values = {
        "peak_tree_pss_mb": round(peak),
        "pss_by_process_mb": {k: round(v) for k, v in sorted(breakdown.items())},
        "states_reported": sink.states(),
    }
    record("bot_process_real_sdk_offline", values)
    print(f"\nthe bot with the real SDK, offline: peak PSS {values['peak_tree_pss_mb']} MB")
    print(f"PSS by process at that peak (MB): {values['pss_by_process_mb']}")
    print(f"states it reported: {values['states_reported']}")


def pod_memory(namespace: str, pod: str) -> dict[str, float]:
    """The container's memory as its cgroup (v1) counts it against the limit: all of it, the
    anonymous part, the shared memory (/dev/shm is memory-backed) and what /dev/shm holds."""
    stat = cluster.kubectl(
        "-n", namespace, "exec", pod, "--", "cat", "/sys/fs/cgroup/memory/memory.stat"
    ).stdout  # fmt: skip
    fields = dict(line.split() for line in stat.splitlines() if line.count(" ") == 1)
    shm = cluster.kubectl("-n", namespace, "exec", pod, "--", "du", "-sk", "/dev/shm").stdout
    tmp = cluster.kubectl("-n", namespace, "exec", pod, "--", "du", "-sk", "/tmp").stdout
    usage = cluster.kubectl(
        "-n", namespace, "exec", pod, "--", "cat", "/sys/fs/cgroup/memory/memory.usage_in_bytes"
    ).stdout  # fmt: skip
    mb = 1024 * 1024
    return {
        "usage": round(int(usage) / mb),
        "rss": round(int(fields.get("total_rss", 0)) / mb),
        "shmem": round(int(fields.get("total_shmem", 0)) / mb),
        "cache": round(int(fields.get("total_cache", 0)) / mb),
        "dev_shm": round(int(shm.split()[0]) / 1024),
        "tmp": round(int(tmp.split()[0]) / 1024),
    }


async def test_apply_to_in_meeting_through_the_chain(
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    zoomsim: ZoomSim,
    image: str,
) -> None:
    times: list[float] = []
    memory: list[dict[str, float]] = []
    for run in range(RUNS):
        number = sim.create_meeting(zoom["id"])["number"]
        name = f"lat{run}"
        started = time.monotonic()
        await bots.apply(name, bot_spec(number, on_kwok=False, podTemplate={"image": image}))
        await bots.wait_phase(name, "InMeeting", timeout=120)
        times.append(time.monotonic() - started)
        await asyncio.sleep(5)  # a few seconds in the meeting, then what the pod holds
        memory.append(pod_memory(namespace, f"{name}-1"))
        sim.end_meeting(number)
        await bots.wait_phase(name, "Succeeded", timeout=60)
    values = {
        "apply_to_in_meeting_s": [round(t, 2) for t in times],
        "median_s": round(statistics.median(times), 2),
        "pod_memory_in_meeting_mb": memory,
    }
    record("whole_chain", values)
    print(f"\nthe bot pod in a meeting (cgroup figures, MB): {memory}")
    print(
        f"\napply to InMeeting through the whole chain: median {values['median_s']} s of {values['apply_to_in_meeting_s']}"
    )
