"""The bot image (built by `make image`) joins a simulator meeting from inside a podman
container on the host network, and exits 0 when the host ends the meeting."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devenv.zoomsim import SimAdmin, ZoomSim, fake_sdk_url
from tests.support.bot_harness import ReportSink, join_config, mint_zak
from tests.support.operator_fixtures import wait_for

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("IMAGE", "localhost/meetingbot-bot:dev")
# What podman needs on this kind of machine (docs/local-node.md).
PODMAN_RUN = [
    "--runtime",
    "runc",
    "--network=host",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
]


@pytest.fixture
def sink() -> Iterator[ReportSink]:
    receiver = ReportSink()
    yield receiver
    receiver.close()


async def test_the_image_joins_and_exits_0_when_the_host_ends(
    image: str,
    zoomsim: ZoomSim,
    sim: SimAdmin,
    zoom_account: dict[str, Any],
    sink: ReportSink,
    tmp_path: Path,
) -> None:
    number = sim.create_meeting(zoom_account["id"], passcode="pw", auth_required=True)["number"]
    config = join_config(
        zoom_account, number, sink, zak=mint_zak(zoomsim.url, zoom_account), passcode="pw"
    )
    config_dir, out = tmp_path / "config", tmp_path / "out"
    config_dir.mkdir()
    out.mkdir()
    (config_dir / "join.json").write_text(config.to_json())
    os.chmod(config_dir / "join.json", 0o444)
    os.chmod(out, 0o777)
    name = f"meetingbot-test-{os.getpid()}"
    started = time.monotonic()
    container = subprocess.Popen(
        [
            "podman",
            "run",
            "--rm",
            "--name",
            name,
            *PODMAN_RUN,
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--tmpfs",
            "/home/bot",
            "--cap-drop",
            "ALL",
            "-v",
            f"{config_dir}:/var/run/meetingbot:ro",
            "-v",
            f"{out}:/out",
            "-e",
            "MEETINGBOT_CONFIG=/var/run/meetingbot/join.json",
            "-e",
            "MEETINGBOT_TERMINATION_LOG=/out/result.json",
            "-e",
            f"MEETINGBOT_SDK_URL={fake_sdk_url(zoomsim.url)}",
            image,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        await wait_for(
            lambda: sim.participants(number, "in_meeting"),
            90,
            what="the containerized bot in the meeting",
        )
        print(f"\ncontainer start to InMeeting: {time.monotonic() - started:.1f}s")
        (me,) = sim.participants(number, "in_meeting")
        assert me["zoomUserId"] == zoom_account["user"]["id"]
        sim.end_meeting(number)
        output, _ = container.communicate(timeout=60)
    finally:
        if container.poll() is None:
            subprocess.run(["podman", "rm", "-f", name], capture_output=True, check=False)
    assert container.returncode == 0, output[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["reason"] == "MeetingEnded"
    assert sink.states()[-1] == "Ended"
    assert "simzak_" not in output  # the bot's log carries no token
