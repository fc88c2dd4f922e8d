"""The artifact endpoints with the real operator and the real object store, a scripted bot in
place of the browser: a bot uploads only to the keys the operator chooses for it, only the
bytes it announced, and nothing reaches the manifest unless the store has it as announced."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from devenv.zoomsim import SimAdmin
from meetingbot_contract import JoinConfig, UploadGrant
from tests.support.artifacts import ScratchBucket, bucket_for, deliver_one
from tests.support.operator_fixtures import Bots, Kube, wait_for
from tests.support.scripted_bot import Scripted
from tests.support.specs import bot_spec


@pytest.fixture
async def bucket(kube: Kube, namespace: str) -> AsyncIterator[ScratchBucket]:
    made = await bucket_for(kube, namespace)
    yield made
    await made.store.close()


def request(config: JoinConfig, data: bytes, sequence: int = 1) -> dict[str, Any]:
    return {
        "attempt": config.bot.attempt,
        "kind": "audio",
        "sequence": sequence,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "startMs": 1_000,
        "endMs": 4_000,
    }


async def post(config: JoinConfig, url: str, body: dict[str, Any]) -> httpx.Response:
    token = config.report.token.get_secret_value()
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(url, json=body, headers={"Authorization": f"Bearer {token}"})


async def recording_bot(
    bots: Bots, scripted: Scripted, name: str, bucket: ScratchBucket
) -> JoinConfig:
    await bots.apply(name, bot_spec(capture={"askPermission": False}, artifacts=bucket.spec()))
    config = await scripted(name).read_config(1)
    assert config.capture is not None
    return config


async def test_a_bot_uploads_only_what_it_announced_to_keys_chosen_for_it(
    namespace: str,
    bots: Bots,
    scripted: Scripted,
    zoom: dict[str, Any],
    sim: SimAdmin,
    bucket: ScratchBucket,
) -> None:
    alpha = await recording_bot(bots, scripted, "alpha", bucket)
    beta = await recording_bot(bots, scripted, "beta", bucket)
    assert alpha.capture is not None and beta.capture is not None
    data = b"OggS-not-really" * 100

    # Another bot's endpoint with this bot's token: the same 401 as no token at all.
    assert (await post(alpha, beta.capture.uploads_url, request(alpha, data))).status_code == 401
    async with httpx.AsyncClient(timeout=10) as anonymous:
        assert (await anonymous.post(beta.capture.uploads_url, json={})).status_code == 401

    answer = await post(alpha, alpha.capture.uploads_url, request(alpha, data))
    assert answer.status_code == 200, answer.text
    grant = UploadGrant.model_validate(answer.json())
    assert grant.key == f"recordings/{namespace}/alpha/1/audio-000001.webm"
    # The grant holds no storage key: only a signature that expires.
    assert bucket.store.bucket.secret_key.get_secret_value() not in answer.text

    async with httpx.AsyncClient(timeout=30) as http:
        # The URL is bound to its key: pointed at the other bot's key, the store refuses it.
        stolen = grant.url.replace("/alpha/", "/beta/")
        assert (await http.put(stolen, content=data, headers=grant.headers)).status_code == 403
        # And to its bytes: other content (same length) fails the store's SHA-256 check.
        forged = data[:-1] + b"X"
        assert (await http.put(grant.url, content=forged, headers=grant.headers)).status_code == 400
        # Unconfirmed, nothing is recorded: the object is not there.
        refused = await post(alpha, alpha.capture.uploads_url + "/complete", request(alpha, data))
        assert refused.status_code == 409, refused.text
        assert (await http.put(grant.url, content=data, headers=grant.headers)).status_code == 200

    done = await post(alpha, alpha.capture.uploads_url + "/complete", request(alpha, data))
    assert done.status_code == 200, done.text
    status = await bots.wait_status(
        "alpha", lambda s: (s.get("artifacts") or {}).get("objects") == 1
    )
    manifest = await bucket.manifest(status["artifacts"]["manifestKey"])
    assert manifest is not None
    assert [(e.key, e.size, e.sha256) for e in manifest.entries] == [
        (grant.key, len(data), hashlib.sha256(data).hexdigest())
    ]
    await bucket.objects(manifest)  # the object verifies against the manifest's checksum
    assert await bucket.store.head(f"recordings/{namespace}/beta/1/audio-000001.webm") is None


async def test_an_endpoint_the_operator_does_not_allow_stops_the_bot_before_it_starts(
    namespace: str, bots: Bots, zoom: dict[str, Any], bucket: ScratchBucket
) -> None:
    artifacts = {**bucket.spec(), "endpoint": "https://attacker.example"}
    await bots.apply("elsewhere", bot_spec(capture={}, artifacts=artifacts))
    status = await bots.wait_reason("elsewhere", "StorageEndpointNotAllowed")
    assert "attacker.example" in status["message"]
    assert await bots.pods("elsewhere") == []


async def test_a_credentials_secret_must_be_opted_in(
    namespace: str, kube: Kube, bots: Bots, zoom: dict[str, Any], bucket: ScratchBucket
) -> None:
    await kube.core.patch_namespaced_secret(
        "bucket-credentials",
        namespace,
        {"metadata": {"labels": {"meetingbot.dev/secret-for": None}}},
    )
    await bots.apply("unlabelled", bot_spec(capture={}, artifacts=bucket.spec()))
    status = await bots.wait_reason("unlabelled", "SecretNotAllowed")
    assert "storage-credentials" in status["message"]


@pytest.mark.parametrize("delete_on_delete", [False, True])
async def test_deleting_a_bot_keeps_its_objects_unless_asked(
    delete_on_delete: bool,
    namespace: str,
    bots: Bots,
    scripted: Scripted,
    zoom: dict[str, Any],
    bucket: ScratchBucket,
) -> None:
    artifacts = {**bucket.spec(), "deleteOnDelete": delete_on_delete}
    await bots.apply("kept", bot_spec(capture={"askPermission": False}, artifacts=artifacts))
    config = await scripted("kept").read_config(1)
    key = await deliver_one(config)
    manifest_key = f"recordings/{namespace}/kept/manifest.json"
    assert await bucket.store.head(manifest_key) is not None
    if delete_on_delete:  # the finalizer that holds the deletion until the objects are gone
        await wait_for(
            lambda: _has_finalizer(bots, "kept"), 30, what="the operator's artifacts finalizer"
        )
    await bots.delete("kept")
    await wait_for(lambda: _gone(bots, "kept"), 60, what="the MeetingBot gone")
    remaining = await bucket.store.keys(f"recordings/{namespace}/kept/")
    if delete_on_delete:
        assert remaining == []
    else:
        assert sorted(remaining) == sorted([key, manifest_key])


async def _has_finalizer(bots: Bots, name: str) -> bool:
    body = await bots.get(name)
    return "meetingbot.dev/artifacts" in (body["metadata"].get("finalizers") or [])


async def _gone(bots: Bots, name: str) -> bool:
    return not await bots.exists(name)
