"""The Python client and the kubectl plugin against the local cluster and the operator:
creating is idempotent on the name, waiting is a watch that survives an API server restart,
the outcome says how the bot finished, cancel stops it; the plugin's join, status, cancel and
authorize. (Its logs and artifacts: tests/e2e/test_capture.py, with a real bot.)"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import config

from devenv.cluster import cluster
from devenv.operator_process import OperatorProcess
from devenv.zoomsim import SimAdmin, ZoomSim
from meetingbot_api import MeetingBotSpec, Phase
from meetingbot_client.client import MeetingBots, SpecConflict, WaitTimeout
from tests.support.grants import authorize_in_browser, make_grant
from tests.support.operator_fixtures import Bots, Kube, wait_for
from tests.support.plugin import run_plugin, start_plugin
from tests.support.scripted_bot import Scripted
from tests.support.specs import bot_spec


@pytest.fixture
def client_for(kubeconfig: Path, namespace: str) -> Iterator[MeetingBots]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    yield MeetingBots(namespace, api)
    api.close()


def spec(number: str, **fields: Any) -> MeetingBotSpec:
    return MeetingBotSpec.model_validate(bot_spec(number, **fields))


@pytest.mark.restarts_control_plane
async def test_create_is_idempotent_and_a_wait_survives_an_api_server_restart(
    operator: OperatorProcess,
    client_for: MeetingBots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    scripted: Scripted,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bots = client_for
    number = sim.create_meeting(zoom["id"])["number"]
    created = await asyncio.to_thread(bots.create, "standup", spec(number))
    # The same request again (a retry after a lost answer) returns the same bot.
    again = await asyncio.to_thread(bots.create, "standup", spec(number))
    assert again.metadata.uid == created.metadata.uid
    # Another spec under that name is someone else's bot.
    with pytest.raises(SpecConflict):
        await asyncio.to_thread(bots.create, "standup", spec(number, displayName="Other"))

    run = asyncio.create_task(scripted("standup").run())
    joined = await asyncio.to_thread(bots.wait, "standup", {Phase.IN_MEETING}, 60)
    assert joined.status.phase == Phase.IN_MEETING

    # Waiting for the end while the API server and etcd are stopped and started again.
    caplog.set_level(logging.INFO, logger="meetingbot_client.watching")
    waiting = asyncio.create_task(asyncio.to_thread(bots.wait, "standup", timeout=240))
    await asyncio.sleep(1)
    restart = await asyncio.to_thread(cluster.restart_control_plane)
    print(f"\nAPI server back after {restart:.1f} s")
    assert not waiting.done()
    sim.end_meeting(number)
    assert await run == "MeetingEnded"
    finished = await waiting
    assert finished.status.phase == Phase.SUCCEEDED
    assert any("watch interrupted" in r.message for r in caplog.records), "no restart was seen"

    outcome = await asyncio.to_thread(bots.outcome, "standup")
    assert (outcome.finished, outcome.succeeded, outcome.reason) == (True, True, "MeetingEnded")
    assert outcome.transient is None and outcome.attempts == 1
    assert outcome.joined_at and outcome.left_at and outcome.completion_time


async def test_cancel_and_a_wait_that_times_out(
    operator: OperatorProcess, client_for: MeetingBots, zoom: dict[str, Any]
) -> None:
    bots = client_for
    later = datetime.now(UTC) + timedelta(days=1)
    await asyncio.to_thread(bots.create, "tomorrow", spec("123456789", joinAt=later.isoformat()))
    await asyncio.to_thread(bots.wait, "tomorrow", {Phase.SCHEDULED}, 30)
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as timed_out:
        await asyncio.to_thread(bots.wait, "tomorrow", timeout=2)
    assert time.monotonic() - started < 15
    assert timed_out.value.bot is not None and timed_out.value.bot.status.phase == Phase.SCHEDULED
    await asyncio.to_thread(bots.cancel, "tomorrow")
    done = await asyncio.to_thread(bots.wait, "tomorrow", timeout=30)
    assert (done.status.phase, done.status.reason) == (Phase.SUCCEEDED, "Canceled")
    assert done.status.attempts == 0


async def test_the_plugin_joins_follows_and_cancels(
    operator: OperatorProcess,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    scripted: Scripted,
    tmp_path: Path,
) -> None:
    number = sim.create_meeting(zoom["id"])["number"]
    url = f"https://us05web.zoom.us/j/{number}"
    # A team's defaults (here: the pod on the kwok node, where a scripted bot plays the bot).
    defaults = tmp_path / "defaults.yaml"
    defaults.write_text(yaml.safe_dump({"podTemplate": bot_spec(number)["podTemplate"]}))
    # --wait: the plugin exits when the bot finishes, 0 for Succeeded.
    joining = await start_plugin(
        "-n", namespace, "join", url, "--name", "weekly", "-f", str(defaults), "--wait"
    )
    await wait_for(lambda: bots.exists("weekly"), 30, what="the plugin created weekly")
    run = asyncio.create_task(scripted("weekly").run())
    await bots.wait_phase("weekly", "InMeeting")
    status = run_plugin("-n", namespace, "status", "weekly")
    assert status.returncode == 0 and "weekly: InMeeting" in status.stdout, status
    table = run_plugin("-n", namespace, "status")
    assert re.search(r"^weekly\s+InMeeting", table.stdout, re.M), table.stdout
    sim.end_meeting(number)
    await run
    out, err = await asyncio.wait_for(joining.communicate(), 60)
    assert joining.returncode == 0, err.decode()
    assert "weekly: Succeeded (MeetingEnded)" in out.decode()

    scheduled = run_plugin(
        "-n", namespace, "join", url, "--name", "later", "--at", "+2d", "-f", str(defaults)
    )
    assert scheduled.returncode == 0, scheduled.stderr
    assert "meetingbot.meetingbot.dev/later created" in scheduled.stdout
    await bots.wait_phase("later", "Scheduled")
    canceled = run_plugin("-n", namespace, "cancel", "later")
    assert canceled.returncode == 0, canceled.stderr
    finished = await bots.wait_phase("later", "Succeeded")
    assert finished["reason"] == "Canceled"
    # A mistake says what to do.
    bad = run_plugin("-n", namespace, "join", "https://example.com/j/1")
    assert bad.returncode == 1 and "not a Zoom join link" in bad.stderr


async def test_the_plugin_prints_the_link_and_waits_for_consent(
    kube: Kube,
    namespace: str,
    sim: SimAdmin,
    zoomsim: ZoomSim,
    operator: OperatorProcess,
) -> None:
    await make_grant(kube, namespace, sim, zoomsim, operator)
    plugin = await start_plugin("-n", namespace, "authorize", "alice", "--timeout", "60")
    assert plugin.stdout is not None
    link = ""
    while not link.startswith("http"):
        link = (await asyncio.wait_for(plugin.stdout.readline(), 30)).decode().strip()
    email = f"alice-{namespace}@customer.example.com"
    await authorize_in_browser(link, email)
    out, err = await asyncio.wait_for(plugin.communicate(), 60)
    assert plugin.returncode == 0, err.decode()
    assert f"alice: authorized by {email}" in out.decode()
