"""The local object store: versitygw (Apache-2.0, an S3 gateway over a POSIX directory), built
from the Go module proxy at the version pinned in versions.env, run on the host and reached by
the operator and by bot pods at the node's address (docs/capture.md, "The local object store").

Its root credentials are made once per machine and kept beside its data (mode 0600); tests and
the demo create their buckets and opted-in Secrets from them. Not the product: a real S3 server
for tests, never a mock."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from devenv.cluster.node import node_ip

PORT = 7480
REGION = "us-east-1"


@dataclass(frozen=True)
class ObjectStore:
    endpoint: str  # http://<node address>:7480, reachable from the host and from pods
    access_key: str
    secret_key: str
    region: str = REGION


def _root(cache: Path) -> Path:
    return cache / "objectstore"


def credentials(cache: Path) -> tuple[str, str]:
    path = _root(cache) / "credentials.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        made = {"accessKey": "mb" + secrets.token_hex(8), "secretKey": secrets.token_urlsafe(30)}
        path.touch(mode=0o600)
        path.write_text(json.dumps(made))
    data = json.loads(path.read_text())
    return str(data["accessKey"]), str(data["secretKey"])


def describe(cache: Path) -> ObjectStore:
    access, secret = credentials(cache)
    return ObjectStore(f"http://{node_ip()}:{PORT}", access, secret)


def running(store: ObjectStore) -> bool:
    try:
        # Any HTTP answer (an unsigned request is refused with 403) means it serves.
        httpx.get(store.endpoint, timeout=2.0)
    except httpx.HTTPError:
        return False
    return True


def start(binary: Path, cache: Path) -> ObjectStore:
    """Start versitygw unless it already serves; return how to reach it."""
    store = describe(cache)
    if running(store):
        return store
    data = _root(cache) / "data"
    data.mkdir(parents=True, exist_ok=True)
    log = (_root(cache) / "versitygw.log").open("ab")
    env = {
        **os.environ,
        "ROOT_ACCESS_KEY": store.access_key,
        "ROOT_SECRET_KEY": store.secret_key,
    }
    subprocess.Popen(  # our own binary, fixed arguments
        [str(binary), "--port", f":{PORT}", "--region", REGION, "posix", str(data)],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # outlives `make cluster-up`, like the rest of the cluster
    )
    deadline = time.monotonic() + 30
    while not running(store):
        if time.monotonic() > deadline:
            raise RuntimeError(f"versitygw did not start; see {_root(cache) / 'versitygw.log'}")
        time.sleep(0.2)
    return store


def ensure_bucket(store: ObjectStore, bucket: str) -> None:
    """Create `bucket` (an existing one of ours is fine)."""
    from datetime import UTC, datetime

    from meetingbot_contract import sigv4

    url = f"{store.endpoint}/{bucket}"
    headers = sigv4.authorization(
        "PUT",
        url,
        access_key=store.access_key,
        secret_key=store.secret_key,
        region=store.region,
        when=datetime.now(UTC),
    )
    response = httpx.put(url, headers=headers, timeout=10.0)
    if response.status_code not in (200, 409) or (
        response.status_code == 409 and "BucketAlreadyOwnedByYou" not in response.text
    ):
        raise RuntimeError(f"create bucket {bucket}: HTTP {response.status_code} {response.text}")


def remove_bucket(cache: Path, bucket: str) -> None:
    """Delete a bucket and everything in it: the posix backend keeps a bucket as a directory
    and reads the directory at each request, so removing it is removing the bucket (a
    1000-stream benchmark leaves gigabytes, which put the node under disk pressure)."""
    shutil.rmtree(_root(cache) / "data" / bucket, ignore_errors=True)
