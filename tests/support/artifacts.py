"""A test's bucket in the local object store, its opted-in credentials Secret, and reading
back what a bot delivered (the manifest and its objects, each checked against its SHA-256)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import httpx
from kubernetes_asyncio import client
from pydantic import SecretStr

from devenv.cluster import cluster
from devenv.cluster.objectstore import ensure_bucket
from meetingbot_contract import JoinConfig, Manifest, UploadGrant
from meetingbot_operator.artifacts.store import Bucket, ObjectStore
from tests.support.operator_fixtures import Kube

SECRET = "bucket-credentials"


@dataclass
class ScratchBucket:
    name: str
    store: ObjectStore

    def spec(self, prefix: str = "recordings") -> dict[str, Any]:
        """A MeetingBot's spec.artifacts for this bucket."""
        return {
            "bucket": self.name,
            "prefix": prefix,
            "endpoint": self.store.bucket.endpoint,
            "credentialsSecretRef": {"name": SECRET},
        }

    async def manifest(self, key: str) -> Manifest | None:
        body = await self.store.get(key)
        return None if body is None else Manifest.model_validate_json(body)

    async def objects(self, manifest: Manifest) -> dict[str, bytes]:
        """Every object the manifest lists, each checked against its size and SHA-256."""
        found = {}
        for entry in manifest.entries:
            data = await self.store.get(entry.key)
            assert data is not None, f"{entry.key} is listed but not in the bucket"
            assert len(data) == entry.size, entry.key
            assert hashlib.sha256(data).hexdigest() == entry.sha256, entry.key
            found[entry.key] = data
        return found

    async def events(self, manifest: Manifest) -> list[dict[str, Any]]:
        objects = await self.objects(manifest)
        lines = []
        for entry in manifest.entries:
            if entry.kind == "events":
                lines += [json.loads(x) for x in objects[entry.key].decode().splitlines()]
        return sorted(lines, key=lambda line: line["t"])


async def bucket_for(kube: Kube, namespace: str) -> ScratchBucket:
    """A bucket named after the namespace, and the Secret that opts its keys in."""
    local = cluster.object_store()
    name = namespace.replace("_", "-")[:63]
    ensure_bucket(local, name)
    await kube.core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=SECRET, labels={"meetingbot.dev/secret-for": "storage-credentials"}
            ),
            string_data={"accessKeyId": local.access_key, "secretAccessKey": local.secret_key},
        ),
    )
    store = ObjectStore(
        Bucket(
            local.endpoint,
            name,
            local.region,
            SecretStr(local.access_key),
            SecretStr(local.secret_key),
        )
    )
    return ScratchBucket(name, store)


async def deliver_one(config: JoinConfig, uploads_url: str | None = None) -> str:
    """What a bot does for one file: ask for an upload, PUT it, confirm it; the object's key.
    `uploads_url`: another address for the same endpoint (a standby replica's port)."""
    assert config.capture is not None
    url = uploads_url or config.capture.uploads_url
    data = b"a recording" * 10
    body = {
        "attempt": config.bot.attempt,
        "kind": "audio",
        "sequence": 1,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "startMs": 1_000,
        "endMs": 4_000,
    }
    auth = {"Authorization": f"Bearer {config.report.token.get_secret_value()}"}
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(url, json=body, headers=auth)
        assert answer.status_code == 200, answer.text
        grant = UploadGrant.model_validate(answer.json())
        put = await http.put(grant.url, content=data, headers=grant.headers)
        assert put.status_code == 200, put.text
        done = await http.post(url + "/complete", json=body, headers=auth)
        assert done.status_code == 200, done.text
    return grant.key
