"""Run the reference bot (`python -m meetingbot_bot`) against the simulator, as a process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from meetingbot_contract import (
    BotIdentity,
    JoinConfig,
    LeaveRules,
    MeetingInfo,
    ReportTarget,
)
from meetingbot_operator.zoom import SdkCredentials, sdk_signature

ROOT = Path(__file__).resolve().parents[2]


class ReportSink:
    """A stand-in for the operator's report endpoint: records every report it is sent."""

    def __init__(self) -> None:
        self.reports: list[dict[str, Any]] = []
        self.tokens: list[str] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.reports.append(json.loads(body))
                sink.tokens.append(self.headers.get("Authorization", ""))
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/report"

    def states(self) -> list[str]:
        out: list[str] = []
        for report in self.reports:
            if not out or out[-1] != report["state"]:
                out.append(report["state"])
        return out

    def close(self) -> None:
        self.server.shutdown()


def mint_zak(sim_url: str, account: dict[str, Any]) -> str:
    """A ZAK for the account's user, straight from the simulator's REST API (these tests are
    about the bot, not about the operator's Zoom client)."""
    token = httpx.post(
        f"{sim_url}/oauth/token",
        data={"grant_type": "account_credentials", "account_id": account["id"]},
        auth=(account["client_id"], account["client_secret"]),
        timeout=10,
    ).json()["access_token"]
    response = httpx.get(
        f"{sim_url}/v2/users/{account['user']['id']}/token",
        params={"type": "zak"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["token"])


def join_config(
    account: dict[str, Any],
    number: str,
    sink: ReportSink,
    *,
    zak: str | None,
    obf: str | None = None,
    passcode: str = "",
    name: str = "Notetaker",
    **leave: int,
) -> JoinConfig:
    sdk = SdkCredentials(sdk_key=account["sdk_key"], sdk_secret=SecretStr(account["sdk_secret"]))
    rules = {
        "waitingRoomTimeoutSeconds": 60,
        "noOneJoinedTimeoutSeconds": 0,
        "everyoneLeftTimeoutSeconds": 0,
        **leave,
    }
    return JoinConfig(
        bot=BotIdentity(namespace="ns", name="bot", uid="uid", attempt=1),
        meeting=MeetingInfo(number=number, passcode=SecretStr(passcode)),
        display_name=name,
        auth="zak" if zak else "obf" if obf else "none",
        sdk_key=account["sdk_key"],
        signature=sdk_signature(sdk, number),
        zak=SecretStr(zak) if zak else None,
        obf_token=SecretStr(obf) if obf else None,
        leave=LeaveRules.model_validate(rules),
        report=ReportTarget(
            url=sink.url, token=SecretStr("report-token-for-tests"), interval_seconds=5
        ),
    )


class BotProcess:
    def __init__(
        self, config: JoinConfig, sim_url: str, workdir: Path, *, fake_sdk: bool = True
    ) -> None:
        """`fake_sdk=False`: the page loads the real @zoom/meetingsdk it ships with."""
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "join.json"
        self.config_path.write_text(config.to_json())
        self.result_path = workdir / "termination-log"
        self.log_path = workdir / "bot.log"
        env = dict(os.environ)
        if fake_sdk:
            env["MEETINGBOT_SDK_URL"] = f"{sim_url}/sim/sdk/zoom-meeting-embedded.js"
        else:
            env.pop("MEETINGBOT_SDK_URL", None)
        env["MEETINGBOT_SCREENSHOT_DIR"] = str(workdir)
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "meetingbot_bot",
                "--config",
                str(self.config_path),
                "--termination-log",
                str(self.result_path),
            ],
            env=env,
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def wait(self, timeout: float = 60) -> tuple[int, dict[str, Any]]:
        code = self.process.wait(timeout)
        return code, json.loads(self.result_path.read_text())

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
