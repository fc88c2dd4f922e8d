"""examples/notetaker-service: the example backend schedules a bot through the client, and the
operator's signed webhook tells it how the bot did (a forged one is refused)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devenv.cluster import cluster
from devenv.operator_process import OperatorProcess
from devenv.zoomsim import SimAdmin
from tests.support.operator_fixtures import Bots, Kube, wait_for
from tests.support.scripted_bot import Scripted
from tests.support.specs import bot_spec
from tests.support.webhook_receiver import WEBHOOK_SECRET, signing_secret

SERVICE = Path(__file__).resolve().parents[2] / "examples" / "notetaker-service" / "service.py"


@pytest.fixture
def service(namespace: str, example_port: int, tmp_path: Path) -> Iterator[str]:
    url = f"http://127.0.0.1:{example_port}"
    env = {
        "KUBECONFIG": str(cluster.kubeconfig_path()),
        "NAMESPACE": namespace,
        "ACCOUNT": "main",
        "PUBLIC_URL": url,
        "PORT": str(example_port),
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        # The bots' pods on the kwok node, where a scripted bot plays the bot.
        "BOT_DEFAULTS": json.dumps({"podTemplate": bot_spec()["podTemplate"]}),
    }
    log = (tmp_path / "service.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(SERVICE)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        for _ in range(100):
            try:
                httpx.get(f"{url}/meetings/none", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None:
                    raise RuntimeError((tmp_path / "service.log").read_text()) from None
                subprocess.run(["sleep", "0.1"], check=True)
        yield url
    finally:
        process.terminate()
        process.wait(10)


async def test_the_example_service_schedules_a_bot_and_hears_how_it_did(
    operator: OperatorProcess,
    kube: Kube,
    namespace: str,
    bots: Bots,
    zoom: dict[str, Any],
    sim: SimAdmin,
    scripted: Scripted,
    service: str,
) -> None:
    await signing_secret(kube, namespace)
    number = sim.create_meeting(zoom["id"])["number"]
    async with httpx.AsyncClient(base_url=service, timeout=30) as http:
        request = {"joinUrl": f"https://zoom.us/j/{number}"}
        created = await http.post("/meetings", json=request)
        assert created.status_code == 201, created.text
        name = created.json()["name"]
        # The same request again finds the same bot.
        assert (await http.post("/meetings", json=request)).json()["name"] == name
        run = asyncio.create_task(scripted(name).run())
        await bots.wait_phase(name, "InMeeting")
        sim.end_meeting(number)
        await run

        async def finished() -> list[dict[str, Any]] | None:
            answer = await http.get(f"/meetings/{name}")
            told = answer.json() if answer.status_code == 200 else []
            return told if told and told[-1]["type"].endswith(".finished") else None

        told = await wait_for(finished, 60, what="the service heard the bot finish")
        assert told[-1]["data"]["reason"] == "MeetingEnded"
        assert [e["sequence"] for e in told] == list(range(1, len(told) + 1))
        forged = await http.post(
            "/webhook",
            content=json.dumps(told[-1]),
            headers={"webhook-id": "x", "webhook-timestamp": "1", "webhook-signature": "v1,AA=="},
        )
        assert forged.status_code == 401
