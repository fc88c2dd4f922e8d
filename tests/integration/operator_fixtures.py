"""The operator as a real process (so a test can SIGKILL it), and helpers around it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client

from meetingbot_operator import crdgen
from tests.cluster import cluster
from tests.zoomsim import SimAdmin

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = "meetingbot.dev", "v1alpha1"
SECRET_USE_LABEL = f"{GROUP}/secret-for"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OperatorProcess:
    """`python -m meetingbot_operator` against the local control plane, logging to a file."""

    def __init__(self, kubeconfig: Path, log_path: Path, **settings: str) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.report_port = free_port()
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.report_key = uuid.uuid4().hex
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def report_url(self) -> str:
        return f"http://127.0.0.1:{self.report_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "KUBECONFIG": str(self.kubeconfig),
                "MEETINGBOT_REPORT_URL": self.report_url,
                "MEETINGBOT_REPORT_HOST": "127.0.0.1",
                "MEETINGBOT_REPORT_PORT": str(self.report_port),
                "MEETINGBOT_METRICS_PORT": str(self.metrics_port),
                "MEETINGBOT_HEALTH_PORT": str(self.health_port),
                "MEETINGBOT_REPORT_KEY": self.report_key,
                "MEETINGBOT_LOG_FORMAT": "json",
                "MEETINGBOT_LOG_LEVEL": "DEBUG",
                "MEETINGBOT_BOT_IMAGE": "example.invalid/meetingbot-bot:test",
                **{f"MEETINGBOT_{k.upper()}": v for k, v in self.settings.items()},
            }
        )
        return env

    def start(self) -> OperatorProcess:
        log = self.log_path.open("ab")
        command = [sys.executable, "-m", "meetingbot_operator"]
        profile = os.environ.get("MEETINGBOT_PROFILE")  # a py-spy output file, for benchmarks
        if profile:
            command = ["py-spy", "record", "--format", "raw", "-o", profile, "--", *command]
        self.process = subprocess.Popen(
            command,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,  # its own process group: stop() leaves nothing behind
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"operator exited with {self.process.returncode}; see {self.log_path}"
                )
            try:
                if (
                    httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1).status_code
                    == 200
                ):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"operator not healthy within 60s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL to the whole process group: no cleanup, as when a node dies."""
        if self.process:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            # py-spy writes its profile on SIGINT; the operator stops on either.
            profiling = os.environ.get("MEETINGBOT_PROFILE")
            self.process.send_signal(signal.SIGINT if profiling else signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(20)
            self.kill()

    def cpu_seconds(self) -> float:
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0


def install_crds() -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crdgen.CRD_DIR))
    cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 60,
    interval: float = 0.25,
    what: str = "condition",
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout}s")
        time.sleep(interval)


class Bots:
    """MeetingBot helpers in one namespace."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)

    def apply(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MeetingBot",
            "metadata": {"name": name},
            "spec": spec,
        }
        return dict(
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "meetingbots", body
            )
        )

    def get(self, name: str) -> dict[str, Any]:
        return dict(
            self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "meetingbots", name
            )
        )

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "meetingbots", name
        )

    def wait_phase(self, name: str, *phases: str, timeout: float = 60) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            status = self.status(name)
            return status if status.get("phase") in phases else None

        try:
            return dict(wait_for(reached, timeout, what=f"{name} in {phases}"))
        except TimeoutError:
            raise TimeoutError(
                f"{name} not in {phases} within {timeout}s: {self.status(name)}"
            ) from None

    def children_gone(self, name: str) -> bool:
        """Whether the bot's pods and join Secret have all been removed."""
        pods = self.pods(name)
        secrets = self.core.list_namespaced_secret(
            self.namespace, field_selector=f"metadata.name={name}-join"
        ).items
        return not pods and not secrets

    def pods(self, name: str) -> list[client.V1Pod]:
        return list(
            self.core.list_namespaced_pod(
                self.namespace, label_selector=f"meetingbot.dev/bot={name}"
            ).items
        )


def zoom_account(
    api: client.ApiClient,
    namespace: str,
    sim: SimAdmin,
    sim_url: str,
    *,
    users: int = 1,
    plan: str = "pro",
    name: str = "main",
    extra_spec: dict[str, Any] | None = None,
    **account: Any,
) -> dict[str, Any]:
    """A simulator account, its two Secrets and a ZoomAccount named `name` in the namespace."""
    zoom = sim.create_account(plan=plan, **account)
    zoom["users"] = [
        sim.add_user(zoom["id"], email=f"bot{i}-{uuid.uuid4().hex[:6]}@bots.example.com")
        for i in range(users)
    ]
    core = client.CoreV1Api(api)
    opt_in = {SECRET_USE_LABEL: "zoom-credentials"}
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=f"{name}-sdk", labels=opt_in),
            string_data={"sdkKey": zoom["sdk_key"], "sdkSecret": zoom["sdk_secret"]},
        ),
    )
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=f"{name}-api", labels=opt_in),
            string_data={
                "accountId": zoom["id"],
                "clientId": zoom["client_id"],
                "clientSecret": zoom["client_secret"],
            },
        ),
    )
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "zoomaccounts",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ZoomAccount",
            "metadata": {"name": name},
            "spec": {
                "sdkCredentialsSecretRef": {"name": f"{name}-sdk"},
                "apiCredentialsSecretRef": {"name": f"{name}-api"},
                "endpoints": {"oauthUrl": f"{sim_url}/oauth/token", "apiUrl": f"{sim_url}/v2"},
                "plan": "business" if plan == "business" else "pro",
                "users": [u["email"] for u in zoom["users"]],
                **(extra_spec or {}),
            },
        },
    )
    return zoom


def account_ready(api: client.ApiClient, namespace: str, name: str = "main") -> dict[str, Any]:
    custom = client.CustomObjectsApi(api)

    def ready() -> dict[str, Any] | None:
        body = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "zoomaccounts", name)
        conditions = {c["type"]: c for c in (body.get("status") or {}).get("conditions", [])}
        return conditions.get("Ready")

    return dict(wait_for(ready, 30, what="ZoomAccount Ready condition"))
