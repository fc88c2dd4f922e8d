"""The whole chain: control plane, operator, simulator, and bot pods really running (podman)
on the test node agent's node."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.cluster.node_agent import LABEL, TAINT_KEY

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("IMAGE", "localhost/meetingbot-bot:dev")
NODE = "bots-node"


@pytest.fixture(scope="session")
def image() -> str:
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed (.ci/run installs it)")
    print(
        "\nbuilding the bot image (cached layers make this quick after the first time)", flush=True
    )
    subprocess.run(
        ["bash", str(ROOT / "bot-image" / "build.sh")],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "IMAGE": IMAGE},
    )
    return IMAGE


@pytest.fixture(scope="session")
def node_agent(
    kubeconfig: Path,
    api_client: client.ApiClient,
    image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    log = tmp_path_factory.mktemp("node-agent") / "agent.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.cluster.node_agent", "--node", NODE],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    core = client.CoreV1Api(api_client)
    deadline = time.monotonic() + 30
    while "ready" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"the node agent did not start; see {log}:\n{log.read_text()[-2000:]}"
            )
        time.sleep(0.3)
    yield NODE
    process.terminate()
    process.wait(10)
    subprocess.run(["podman", "rm", "-f", "--all"], capture_output=True, check=False)
    core.delete_node(NODE)


def on_the_bot_node(sim_url: str, image: str) -> dict[str, Any]:
    """The podTemplate that steers a bot pod to the podman node: test configuration only."""
    return {
        "image": image,
        "nodeSelector": {LABEL: "true"},
        "tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
        "env": [
            {"name": "MEETINGBOT_SDK_URL", "value": f"{sim_url}/sim/sdk/zoom-meeting-embedded.js"}
        ],
    }
