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
from meetingbot_api import MeetingBotSpec
from meetingbot_bot.browser import FLAGS
from meetingbot_operator.meetingbot.children import bot_pod, join_secret
from meetingbot_operator.meetingbot.observed import Meta
from meetingbot_operator.settings import Settings
from tests.support.bot_harness import BotProcess, ReportSink, join_config, mint_zak
from tests.support.operator_fixtures import Bots, wait_for
from tests.support.processes import descendants
from tests.support.specs import bot_spec

RUNS = 5
RESULTS = Path(__file__).resolve().parents[2] / "bench-results"


def process_kind(pid: int) -> str:
    """What a process of the bot's tree is: the bot (Python), or Chromium's browser, renderer,
    GPU, utility or zygote process."""
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
    return {"pause": "pause (the pod's sandbox)"}.get(program, f"{program} (the bot)")


def tree_memory_mb(pid: int) -> tuple[float, float, dict[str, float]]:
    """(RSS, PSS, PSS by kind of process and by anonymous or file pages) summed over a
    process and its descendants (Chromium's renderers, GPU, utility processes...). RSS counts
    shared pages once per process; PSS shares them out."""
    return memory_mb(descendants(pid))


def pod_memory_mb(pod_uid: str) -> tuple[float, float, dict[str, float]]:
    """tree_memory_mb's figures for every process of a pod on the real node, which runs on
    this machine's kernel: the processes whose cgroup path names the pod's UID."""
    marks = (f"pod{pod_uid}", f"pod{pod_uid.replace('-', '_')}")
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cgroup = (entry / "cgroup").read_text()
        except OSError:
            continue
        if any(mark in cgroup for mark in marks):
            pids.append(int(entry.name))
    return memory_mb(pids)


def memory_mb(pids: list[int]) -> tuple[float, float, dict[str, float]]:
    total_rss = total_pss = 0
    by_kind: dict[str, float] = {}
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
            rollup = dict(line.split()[:2] for line in lines[1:])
        except OSError:
            continue
        total_rss += int(rollup.get("Rss:", 0))
        pss = int(rollup.get("Pss:", 0))
        total_pss += pss
        for kind in (process_kind(pid), "(of all: anonymous)", "(of all: files)"):
            part = {"(of all: anonymous)": "Pss_Anon:", "(of all: files)": "Pss_File:"}
            kb = int(rollup.get(part[kind], 0)) if kind in part else pss
            by_kind[kind] = by_kind.get(kind, 0) + kb / 1024
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


def pod_uid(namespace: str, pod: str) -> str:
    return cluster.kubectl(
        "-n", namespace, "get", "pod", pod, "-o", "jsonpath={.metadata.uid}"
    ).stdout.strip()  # fmt: skip


async def sample_pod_pss(uid: str, seconds: float) -> tuple[float, dict[str, float]]:
    """The highest PSS of the pod's processes over `seconds`, and its breakdown."""
    peak, breakdown = 0.0, {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        _, pss, kinds = pod_memory_mb(uid)
        if pss > peak:
            peak, breakdown = pss, kinds
        await asyncio.sleep(0.2)
    return peak, {k: round(v) for k, v in sorted(breakdown.items())}


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
    pss: list[float] = []
    breakdown: dict[str, float] = {}
    for run in range(RUNS):
        number = sim.create_meeting(zoom["id"])["number"]
        name = f"lat{run}"
        started = time.monotonic()
        await bots.apply(name, bot_spec(number, on_kwok=False, podTemplate={"image": image}))
        await bots.wait_phase(name, "InMeeting", timeout=120)
        times.append(time.monotonic() - started)
        # A few seconds in the meeting: the PSS of the pod's processes (seen from the host,
        # whose kernel the real node uses), then what the pod's cgroup holds.
        peak, kinds = await sample_pod_pss(pod_uid(namespace, f"{name}-1"), 5)
        if peak > max(pss, default=0):
            breakdown = kinds
        pss.append(round(peak))
        memory.append(pod_memory(namespace, f"{name}-1"))
        sim.end_meeting(number)
        await bots.wait_phase(name, "Succeeded", timeout=60)
    values = {
        "apply_to_in_meeting_s": [round(t, 2) for t in times],
        "median_s": round(statistics.median(times), 2),
        "pod_memory_in_meeting_mb": memory,
        "pod_pss_in_meeting_mb": pss,
        "pod_pss_by_process_mb": breakdown,
    }
    record("whole_chain", values)
    print(f"\nthe bot pod in a meeting (cgroup figures, MB): {memory}")
    print(f"the bot pod's PSS in a meeting on the real node (MB): {pss}; largest: {breakdown}")
    print(
        f"\napply to InMeeting through the whole chain: median {values['median_s']} s of {values['apply_to_in_meeting_s']}"
    )


async def test_the_real_sdk_offline_on_the_real_node(
    namespace: str, zoomsim: ZoomSim, sim: SimAdmin, zoom_account: dict[str, Any], image: str
) -> None:
    """The bot image's own @zoom/meetingsdk on the real node: it loads and initialises the SDK,
    then cannot reach Zoom. The pod's peak PSS until its bot gives up. The pod and its Secret
    come from the operator's own builders, written directly: the operator's pods here load
    the simulator's fake SDK, a setting no MeetingBot may override."""
    sink = ReportSink()  # unreachable from the pod: the bot's reports fail, which is fine here
    number = sim.create_meeting(zoom_account["id"], auth_required=True)["number"]
    config = join_config(zoom_account, number, sink, zak=mint_zak(zoomsim.url, zoom_account))
    meta = Meta(name="realsdk", namespace=namespace, uid="none", generation=1)
    spec = MeetingBotSpec.model_validate(bot_spec(number, on_kwok=False))
    items = [
        join_secret(meta, 1, config),
        bot_pod(meta, 1, spec, Settings(bot_image=image, bot_sdk_url="")),
    ]
    for item, kind in zip(items, ("Secret", "Pod"), strict=True):
        item.update(apiVersion="v1", kind=kind)
        del item["metadata"]["ownerReferences"]  # no owner: the collector would delete them
    cluster.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    )
    try:
        uid = pod_uid(namespace, "realsdk-1")
        await wait_for(lambda: pod_memory_mb(uid)[1] > 0, 120, what="the pod's processes")
        peak, breakdown = 0.0, {}
        for _ in range(9):  # up to 90 s: the join's failure ends the pod sooner
            sampled, kinds = await sample_pod_pss(uid, 10)
            if sampled > peak:
                peak, breakdown = sampled, kinds
            if not pod_memory_mb(uid)[1]:
                break  # the pod's processes are gone
        state = cluster.kubectl(
            "-n", namespace, "get", "pod", "realsdk-1", "-o",
            "jsonpath={.status.phase} {.status.containerStatuses[0].state}",
        ).stdout  # fmt: skip
    finally:
        sink.close()
    values = {"peak_pod_pss_mb": round(peak), "pss_by_process_mb": breakdown, "pod_then": state}
    record("real_node_real_sdk_offline", values)
    print(f"\nthe real SDK offline on the real node: {values}")
