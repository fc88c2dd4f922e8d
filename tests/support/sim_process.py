"""The Zoom simulator as a process of its own, for benches whose test process is busy.

The `zoomsim` fixture runs the simulator on a thread of the test process. With a thousand
scripted bots in that process, the simulator's thread and the bots share one interpreter
lock: the simulator's pings went unanswered for its 15 s and it closed bots' websockets (the
shard bench at 1000 bots, 2026-12-05). A process of its own has its own lock and core time.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from types import TracebackType

import httpx

from devenv.zoomsim import SimAdmin
from tests.support.operator_fixtures import wait_for

ROOT = Path(__file__).resolve().parents[2]


class SimulatorProcess:
    """`python -m devenv.zoomsim` on a free loopback port; `url` as ZoomSim's, `admin` its
    admin API. A context manager: the process ends with the block."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin = SimAdmin(self.url)
        self._process: subprocess.Popen[bytes] | None = None

    async def __aenter__(self) -> SimulatorProcess:
        command = [sys.executable, "-m", "devenv.zoomsim", "--port", str(self.port)]
        self._process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
        await wait_for(self._up, 30, 0.1, what="the simulator's process")
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.admin.close()
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:  # aiohttp waits for open websockets on SIGTERM
                self._process.kill()
                self._process.wait(10)

    def _up(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise RuntimeError(f"the simulator exited with {self._process.returncode}")
        try:
            return httpx.get(f"{self.url}/sim/calls", timeout=2).status_code == 200
        except httpx.TransportError:
            return False
