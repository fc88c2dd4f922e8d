"""MeetingStreams in the tests: one with its app Secret, and waiting on its status."""

from __future__ import annotations

from typing import Any

from devenv.zoomsim import SimAdmin
from meetingbot_api import GROUP, VERSION
from tests.support.operator_fixtures import SECRET_USE_LABEL, Kube, wait_for


async def app_secret(kube: Kube, namespace: str, name: str, app: dict[str, Any]) -> None:
    """The opted-in Secret of a simulated account's General app (what a MeetingStream names)."""
    await kube.core.create_namespaced_secret(
        namespace,
        {
            "metadata": {"name": name, "labels": {SECRET_USE_LABEL: "zoom-credentials"}},
            "stringData": {
                "clientId": app["user_client_id"],
                "clientSecret": app["user_client_secret"],
                "webhookSecretToken": app["webhook_secret_token"],
            },
        },
    )


async def meetingstream(
    kube: Kube, namespace: str, name: str, app: dict[str, Any], **spec: Any
) -> None:
    await app_secret(kube, namespace, f"{name}-app", app)
    await kube.custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "meetingstreams",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MeetingStream",
            "metadata": {"name": name},
            "spec": {
                "appCredentialsSecretRef": {"name": f"{name}-app"},
                "artifacts": {"bucket": "recordings", "credentialsSecretRef": {"name": "s3"}},
                **spec,
            },
        },
    )


async def status_of(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    body = await kube.custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, "meetingstreams", name
    )
    return dict(body.get("status") or {})


async def phase_is(kube: Kube, namespace: str, name: str, phase: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        status = await status_of(kube, namespace, name)
        return status if status.get("phase") == phase else None

    return dict(await wait_for(reached, 30, what=f"MeetingStream {phase}"))


async def zooms_delivery(sim: SimAdmin, stream_id: str) -> dict[str, Any]:
    """How Zoom's rtms_started delivery went (the simulator notes it once the answer is in,
    which may be after the operator wrote the status)."""

    def noted() -> list[dict[str, Any]]:
        return list(sim.rtms_stream(stream_id)["deliveries"])

    [delivery] = await wait_for(noted, 10, what="the simulator's note of its delivery")
    return dict(delivery)
