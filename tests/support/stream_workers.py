"""Stream workers on the real node, for the tests: a Deployment of the bot image running
`python -m meetingbot_bot.rtms`, as the chart's (charts/.../stream-workers.yaml), in one
namespace whose service account the session's operator accepts as its workers'."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from devenv.cluster import cluster
from meetingbot_contract.rtms import WORKER_AUDIENCE
from tests.support.operator_fixtures import Kube, wait_for

NAMESPACE = "t-stream-workers"
SERVICE_ACCOUNT = "stream-worker"
IDENTITY = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"


@dataclass
class Workers:
    kube: Kube
    name: str

    async def pods(self) -> list[dict[str, Any]]:
        found = await self.kube.core.list_namespaced_pod(
            NAMESPACE, label_selector=f"app={self.name}"
        )
        return [p.to_dict() for p in found.items if p.metadata.deletion_timestamp is None]

    async def ready(self, count: int, timeout: float = 120) -> list[str]:
        async def all_ready() -> list[str] | None:
            names = [
                p["metadata"]["name"]
                for p in await self.pods()
                if any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in (p["status"].get("conditions") or [])
                )
            ]
            return names if len(names) >= count else None

        return list(await wait_for(all_ready, timeout, 1, what=f"{count} stream workers Ready"))

    def crash(self, pod: str) -> None:
        """SIGKILL the worker's process: no time to deliver or tell anyone; the container
        restarts in the same pod (its spool, an emptyDir, survives)."""
        result = cluster.kubectl(
            "-n", NAMESPACE, "exec", pod, "--", "sh", "-c", "kill -9 -1", check=False, timeout=60
        )
        assert result.returncode in (0, 137), result.stdout + result.stderr

    async def scale(self, replicas: int) -> None:
        await self.kube.apps.patch_namespaced_deployment_scale(
            self.name, NAMESPACE, {"spec": {"replicas": replicas}}
        )

    async def logs(self) -> str:
        out = []
        for pod in await self.pods():
            name = pod["metadata"]["name"]
            try:
                out.append(await self.kube.core.read_namespaced_pod_log(name, NAMESPACE))
            except ApiException:
                continue
        return "\n".join(out)

    async def remove(self) -> None:
        try:
            await self.kube.apps.delete_namespaced_deployment(
                self.name, NAMESPACE, grace_period_seconds=0, propagation_policy="Background"
            )
        except ApiException as error:
            if error.status != 404:
                raise


async def ensure_namespace(kube: Kube) -> None:
    """The workers' namespace and service account (kept across tests)."""
    for create, body in (
        (kube.core.create_namespace, {"metadata": {"name": NAMESPACE}}),
        (
            lambda b: kube.core.create_namespaced_service_account(NAMESPACE, b),
            {"metadata": {"name": SERVICE_ACCOUNT}, "automountServiceAccountToken": False},
        ),
    ):
        try:
            await create(body)
        except ApiException as error:
            if error.status != 409:
                raise


async def deploy(
    kube: Kube, image: str, operator_url: str, replicas: int = 2, capacity: int = 200
) -> Workers:
    await ensure_namespace(kube)
    name = f"workers-{uuid.uuid4().hex[:6]}"
    container = {
        "name": "worker",
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["/usr/bin/tini", "--", "python3", "-m", "meetingbot_bot.rtms"],
        "env": [
            {
                "name": "MEETINGBOT_WORKER_NAME",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
            },
            {"name": "MEETINGBOT_OPERATOR_URL", "value": operator_url},
            {"name": "MEETINGBOT_WORKER_CAPACITY", "value": str(capacity)},
            {"name": "MEETINGBOT_HEALTH_PORT", "value": "8080"},
        ],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 2},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
        "volumeMounts": [
            {"name": "token", "mountPath": "/var/run/secrets/meetingbot", "readOnly": True},
            {"name": "spool", "mountPath": "/var/spool/meetingbot"},
        ],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    volumes = [
        {
            "name": "token",
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "path": "token",
                            "audience": WORKER_AUDIENCE,
                            "expirationSeconds": 3600,
                        }
                    }
                ]
            },
        },
        {"name": "spool", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    await kube.apps.create_namespaced_deployment(
        NAMESPACE,
        {
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "serviceAccountName": SERVICE_ACCOUNT,
                        "automountServiceAccountToken": False,
                        "terminationGracePeriodSeconds": 30,
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                        "containers": [container],
                        "volumes": volumes,
                    },
                },
            },
        },
    )
    return Workers(kube, name)
