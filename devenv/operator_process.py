"""The operator as a real process, for the demo and the tests (so a test can SIGKILL it), and
the CRDs it needs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from devenv.cluster import cluster
from devenv.cluster.node import node_ip
from devenv.zoomsim.server import free_port
from meetingbot_operator import crdgen

ROOT = Path(__file__).resolve().parents[1]
PY_SPY = Path(sys.executable).with_name("py-spy")  # installed beside Python (pyproject)


class OperatorProcess:
    """`python -m meetingbot_operator` against the local control plane, logging to a file.

    Its report endpoint listens on the node's address, where bot pods on the real node reach
    it (the host's loopback they cannot)."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        extra_env: dict[str, str] | None = None,
        **settings: str,
    ) -> None:
        """`settings` become MEETINGBOT_* variables; `extra_env` is set as it is (a proxy)."""
        self.kubeconfig = kubeconfig
        self.extra_env = extra_env or {}
        self.report_host = node_ip()
        self.log_path = log_path
        self.report_port = free_port()
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.oauth_port = free_port()
        self.report_key = uuid.uuid4().hex
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def report_url(self) -> str:
        return f"http://{self.report_host}:{self.report_port}"

    @property
    def oauth_url(self) -> str:
        """Where a browser on this machine opens ZoomUserGrants' pages (the public URL)."""
        return f"http://{self.report_host}:{self.oauth_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.report_host}:{self.metrics_port}/metrics"  # served beside reports

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "KUBECONFIG": str(self.kubeconfig),
                "MEETINGBOT_REPORT_URL": self.report_url,
                "MEETINGBOT_REPORT_HOST": self.report_host,
                "MEETINGBOT_REPORT_PORT": str(self.report_port),
                "MEETINGBOT_METRICS_PORT": str(self.metrics_port),
                "MEETINGBOT_HEALTH_PORT": str(self.health_port),
                "MEETINGBOT_OAUTH_PORT": str(self.oauth_port),
                "MEETINGBOT_OAUTH_PUBLIC_URL": self.oauth_url,
                "MEETINGBOT_REPORT_KEY": self.report_key,
                "MEETINGBOT_LOG_FORMAT": "json",
                "MEETINGBOT_LOG_LEVEL": "DEBUG",
                "MEETINGBOT_BOT_IMAGE": "example.invalid/meetingbot-bot:test",
                **{f"MEETINGBOT_{k.upper()}": v for k, v in self.settings.items()},
                **self.extra_env,
            }
        )
        return env

    def start(self) -> OperatorProcess:
        """Start it and wait until it is healthy. Its ports were free when this object was
        made, maybe minutes ago: if one was taken since (an outgoing connection's ephemeral
        port, from the same range), new ones are picked and it starts again."""
        for _ in range(3):
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            try:
                return self._start_once()
            except RuntimeError:
                if not self._port_taken(offset):
                    raise
            self.report_port, self.metrics_port = free_port(), free_port()
            self.health_port, self.oauth_port = free_port(), free_port()
        return self._start_once()

    def _start_once(self) -> OperatorProcess:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        command = [sys.executable, "-m", "meetingbot_operator"]
        profile = os.environ.get("MEETINGBOT_PROFILE")  # a py-spy output file, for benchmarks
        if profile:
            command = [str(PY_SPY), "record", "--format", "raw", "-o", profile, "--", *command]
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
            if self._port_taken(offset):
                # kopf tries its startup again only after a minute: start() picks other ports.
                self.stop()
                raise RuntimeError(f"a port was taken; see {self.log_path}")
            time.sleep(0.2)
        raise TimeoutError(f"operator not healthy within 60s; see {self.log_path}")

    def _port_taken(self, offset: int) -> bool:
        """Whether this start's log says one of its ports was in use (each watch's connection
        takes an ephemeral port, from the range free_port() picked the ports from)."""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return b"address already in use" in log.read().lower()

    def wait_until_watching(self, namespace: str) -> None:
        """Healthy is not yet watching: on a cluster that has just started, kopf can take half
        a minute to discover namespaces. Wait until the operator writes the status of a probe
        ZoomAccount in a new namespace `namespace` (one it watches), then remove it.

        kopf can miss a namespace created in the instant its namespace observer starts (seen
        in a CI run: watches began in every other matching namespace within 0.2 s of the probe's
        creation, never in the probe's). One missed probe must not stop the operator every
        later test needs, so an unseen probe is tried again in a fresh namespace, then once
        more after a restart, before giving up."""
        attempts = [(namespace, 120, False), (f"{namespace}-b", 30, False)]
        attempts.append((f"{namespace}-c", 120, True))
        try:
            for name, seconds, restart in attempts:
                if restart:
                    self.stop()
                    self.start()
                if self._probe_seen(name, seconds):
                    return
            names = ", ".join(name for name, _, _ in attempts)
            failure = f"it watched none of {names}, the last after a restart"
        except Exception as error:
            failure = f"probing it failed: {error!r}"
        # An operator that never watched must not linger: a second one in the next run would
        # take the bots' reports for missing (two operators, two report servers).
        self.stop()
        tail = self.log_path.read_text(errors="replace").splitlines()[-20:]
        raise RuntimeError(
            f"the operator is not watching: {failure}; its log ends:\n" + "\n".join(tail)
        )

    def _probe_seen(self, namespace: str, seconds: int) -> bool:
        """Whether the operator writes a probe ZoomAccount's status in the new `namespace`
        within `seconds`; the namespace is removed either way."""
        probe = {
            "apiVersion": "meetingbot.dev/v1alpha1",
            "kind": "ZoomAccount",
            "metadata": {"name": "probe", "namespace": namespace},
            "spec": {
                "sdkCredentialsSecretRef": {"name": "none"},
                "apiCredentialsSecretRef": {"name": "none"},
                "users": ["probe@example.com"],
            },
        }
        cluster.kubectl("create", "namespace", namespace)
        try:
            cluster.kubectl("apply", "-f", "-", stdin=json.dumps(probe))
            waited = cluster.kubectl(
                "-n",
                namespace,
                "wait",
                "--for=jsonpath={.status.observedGeneration}=1",
                "zoomaccount/probe",
                f"--timeout={seconds}s",
                timeout=seconds + 10,
                check=False,
            )
            return waited.returncode == 0
        finally:
            cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)

    def running(self) -> bool:
        """Started and not exited (it may not be watching yet: `wait_until_watching`)."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole process group: no cleanup, as when a node dies."""
        if self.process:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.running():
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
        return self.rss_mb("VmHWM")

    def rss_mb(self, field: str = "VmRSS") -> float:
        """Its resident memory now (VmRSS), or at its peak (VmHWM), in MB."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
        return 0.0


def install_crds() -> None:
    # crds/ with its kustomization, as a GitOps user applies it.
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(crdgen.CRD_DIR))
    cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
