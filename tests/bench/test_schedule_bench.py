"""What MeetingBotSchedules cost and how fast they react (`make bench PYTEST_ARGS="-k
schedule"`), written to bench-results/results.json (key `schedules`) and printed; never
asserted.

An operator of its own for one namespace, reading Zoom only once an hour (so only Zoom's
meeting webhooks can make it react sooner):
- 200 cron schedules applied at once, each with its bot made a day ahead: seconds from the first
  apply until every schedule is Ready with its bot, and the operator's CPU and peak RSS;
- a recurring meeting's occurrence moved 20 times by its host in the simulator: seconds from
  the move to the bot's joinAt following it (the meeting webhook, the operator's read of Zoom,
  the patch), median and max.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from devenv.cluster import cluster
from devenv.operator_process import OperatorProcess
from devenv.zoomsim import SimAdmin, ZoomSim
from meetingbot_api import GROUP, VERSION
from tests.bench.test_burst import progress
from tests.bench.test_results_bench import _save
from tests.support.operator_fixtures import Kube, account_ready, wait_for, zoom_account
from tests.support.specs import bot_spec

SCHEDULES = 200
MOVES = 20


def _schedule(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MeetingBotSchedule",
            "metadata": {"name": name}, "spec": spec}  # fmt: skip


async def _ready_count(kube: Kube, namespace: str) -> int:
    """Schedules that are Ready and have made their bot."""
    listed = await kube.custom.list_namespaced_custom_object(
        GROUP, VERSION, namespace, "meetingbotschedules"
    )
    count = 0
    for schedule in listed["items"]:
        status = schedule.get("status") or {}
        ready = [c for c in status.get("conditions", []) if c["type"] == "Ready"]
        count += bool(ready and ready[0]["status"] == "True" and status.get("active"))
    return count


async def test_schedules_at_scale_and_webhook_reaction(
    kube: Kube, ha_namespace: str, sim: SimAdmin, zoomsim: ZoomSim, tmp_path: Path
) -> None:
    namespace = ha_namespace
    own = OperatorProcess(
        cluster.kubeconfig_path(), tmp_path / "operator.log", namespaces=namespace,
        allowed_endpoints=zoomsim.url, schedule_poll_seconds="3600", log_level="INFO",
    )  # fmt: skip
    own.start()
    try:
        scopes = ["user:read:admin", "user:write:admin", "meeting:read:admin"]
        zoom = await zoom_account(kube, namespace, sim, zoomsim.url, scopes=scopes)
        await account_ready(kube, namespace)
        template = {"spec": bot_spec()}
        cpu_before, began = own.cpu_seconds(), time.monotonic()
        await asyncio.gather(*(
            kube.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "meetingbotschedules",
                _schedule(f"daily-{i}", {"cron": {"schedule": f"{i % 60} 9 * * *"},
                                         "leadSeconds": 86400, "template": template}),
            )
            for i in range(SCHEDULES)
        ))  # fmt: skip

        async def all_ready() -> bool:
            ready = await _ready_count(kube, namespace)
            progress(f"schedules Ready with their bot: {ready}/{SCHEDULES}")
            return ready == SCHEDULES

        await wait_for(all_ready, timeout=600, interval=2, what="every schedule Ready")
        made_seconds = time.monotonic() - began
        cpu = own.cpu_seconds() - cpu_before

        # The host moves an occurrence; only the meeting webhook makes the operator look.
        secret = {"stringData": {"webhookSecretToken": zoom["webhook_secret_token"]}}
        await kube.core.patch_namespaced_secret("main-api", namespace, secret)
        sim.update_account(zoom["id"], meeting_events_url=f"{own.oauth_url}/zoom/meetings")
        first = (datetime.now(UTC) + timedelta(hours=2)).replace(second=0, microsecond=0)
        meeting = sim.create_meeting(
            zoom["id"], topic="Standup", host_id=zoom["users"][0]["id"],
            occurrences_at=[first.strftime("%Y-%m-%dT%H:%M:%SZ")],
        )  # fmt: skip
        spec: dict[str, Any] = {"zoomMeeting": {"number": meeting["number"]},
                                "leadSeconds": 86400, "template": {"spec": bot_spec()}}  # fmt: skip
        del spec["template"]["spec"]["meeting"]
        await kube.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "meetingbotschedules", _schedule("standup", spec)
        )
        name = f"standup-{int(first.timestamp() // 60):08d}"

        async def join_at() -> str | None:
            page = await kube.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, "meetingbots", field_selector=f"metadata.name={name}"
            )
            items = page["items"]
            return str(items[0]["spec"]["joinAt"]) if items else None

        await wait_for(join_at, timeout=60, what="the standup's bot")
        occurrence = sim.meeting(meeting["number"])["occurrences"][0]["occurrence_id"]
        reactions = []
        for move in range(1, MOVES + 1):
            await asyncio.sleep(2.5)  # past the 2 s a schedule waits between webhook reads
            to = (first + timedelta(minutes=move)).strftime("%Y-%m-%dT%H:%M:%SZ")
            moved_at = time.monotonic()
            sim.move_occurrence(meeting["number"], occurrence, to)

            async def followed(to: str = to) -> bool:
                return await join_at() == to

            await wait_for(followed, timeout=30, interval=0.05, what="the bot moved")
            reactions.append(time.monotonic() - moved_at)
        figures = {
            "schedules": SCHEDULES,
            "allReadyWithTheirBotSeconds": round(made_seconds, 1),
            "operatorCpuSeconds": round(cpu, 1),
            "operatorCpuSecondsPerSchedule": round(cpu / SCHEDULES, 3),
            "operatorPeakRssMb": round(own.peak_rss_mb(), 1),
            "occurrenceMovedToBotMovedSeconds": {
                "moves": MOVES,
                "median": round(statistics.median(reactions), 2),
                "max": round(max(reactions), 2),
            },
        }
        _save("schedules", figures)
    finally:
        own.stop()
