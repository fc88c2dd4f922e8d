"""A test's bucket in the local object store, its opted-in credentials Secret, and reading
back what a bot delivered (the manifest and its objects, each checked against its SHA-256)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client
from pydantic import SecretStr

from devenv.cluster import cluster
from devenv.cluster.objectstore import ensure_bucket
from meetingbot_contract import Manifest
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
