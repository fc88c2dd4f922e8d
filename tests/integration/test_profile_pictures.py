"""The service users' profile picture (ZoomAccount spec.picture) through the real API server
and the simulator: uploaded to every service user, a created one included; uploaded again to
each when its Secret changes; an object without the opt-in label is not used."""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from typing import Any

import pytest

from devenv.operator_process import OperatorProcess
from devenv.zoomsim import SimAdmin, ZoomSim
from tests.support.operator_fixtures import (
    SECRET_USE_LABEL,
    Bots,
    Kube,
    account_ready,
    patch_account,
    wait_for,
    zoom_account,
)
from tests.support.specs import bot_spec

pytestmark = pytest.mark.integration


def png(rgb: tuple[int, int, int]) -> bytes:
    """A real 8x8 PNG of one colour (each colour a different picture)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes(rgb) * 8 for _ in range(8))
    header = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def test_every_service_user_gets_the_picture_and_a_new_one_when_it_changes(
    kube: Kube, namespace: str, sim: SimAdmin, zoomsim: ZoomSim, operator: OperatorProcess
) -> None:
    blue, green = png((20, 60, 200)), png((20, 180, 60))
    secret = {"metadata": {"name": "face", "labels": {SECRET_USE_LABEL: "profile-picture"}},
              "data": {"picture.png": _b64(blue)}}  # fmt: skip
    await kube.core.create_namespaced_secret(namespace, secret)
    provisioning = {"maxUsers": 1, "action": "autoCreate",
                    "emailTemplate": "face-{n}@bots.example.com"}  # fmt: skip
    zoom = await zoom_account(
        kube, namespace, sim, zoomsim.url, managed_domains=["bots.example.com"],
        extra_spec={
            "picture": {"secretRef": {"name": "face", "key": "picture.png"}},
            "pool": {"maxBotsPerUser": 1, "provisioning": provisioning},
        },
    )  # fmt: skip
    await account_ready(kube, namespace)

    def pictures() -> dict[str, str]:
        return {u["email"]: u["picture_sha256"] for u in sim.account_users(zoom["id"])}

    listed = zoom["users"][0]["email"]
    await wait_for(lambda: pictures().get(listed) == digest(blue), 30, what="the listed user's")
    # Two bots at once, one user each at most: the operator creates a user, who gets it too.
    bots = Bots(kube, namespace)
    for name in ("a", "b"):
        await bots.apply(name, bot_spec(sim.create_meeting(zoom["id"])["number"]))
    created = "face-1@bots.example.com"
    await wait_for(lambda: pictures().get(created) == digest(blue), 60, what="the created user's")

    async def status_says(picture: bytes) -> dict[str, Any] | None:
        status = await _account_status(kube, namespace)
        users = {u["user"]: u.get("picture") for u in status.get("users", [])}
        return status if users == {listed: digest(picture), created: digest(picture)} else None

    await wait_for(lambda: status_says(blue), 30, what="the status")

    # A new picture in the Secret: every user gets it (the Secret's change is seen at once).
    await kube.core.patch_namespaced_secret(
        "face", namespace, {"data": {"picture.png": _b64(green)}}
    )
    await wait_for(lambda: set(pictures().values()) == {digest(green)}, 30, what="the new picture")
    await wait_for(lambda: status_says(green), 30, what="the status")

    # A ConfigMap nobody opted in: not used, and the status says why.
    await kube.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "other"}, "binaryData": {"p.png": _b64(blue)}}
    )
    await patch_account(kube, namespace, {"picture": {"secretRef": None,
                                              "configMapRef": {"name": "other", "key": "p.png"}}})  # fmt: skip

    async def refused() -> str | None:
        error: str | None = (await _account_status(kube, namespace)).get("pictureError")
        return error if error and "not labelled" in error else None

    assert "meetingbot.dev/secret-for=profile-picture" in await wait_for(refused, 30, what="why")
    assert set(pictures().values()) == {digest(green)}  # nothing uploaded


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def _account_status(kube: Kube, namespace: str) -> dict[str, Any]:
    body = await kube.custom.get_namespaced_custom_object(
        "meetingbot.dev", "v1alpha1", namespace, "zoomaccounts", "main"
    )
    return dict(body.get("status") or {})
