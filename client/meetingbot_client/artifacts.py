"""Reading a bot's artifacts from its bucket with the caller's own keys: the manifest, then
each object, checked against the manifest's checksum. SigV4 from meetingbot_contract (the
same signing the operator uses); urllib3, which the kubernetes package brings."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from urllib.parse import quote

import urllib3

from meetingbot_api import Artifacts
from meetingbot_contract import Manifest, sigv4

TIMEOUT = urllib3.Timeout(connect=10, read=60)
RETRIES = urllib3.Retry(total=4, backoff_factor=0.5, status_forcelist=(500, 502, 503, 504))


class ArtifactReadError(Exception):
    """The bucket refused or failed a read (the status and key, never the keys)."""


def fetch_manifest(spec: Artifacts, keys: tuple[str, str], manifest_key: str) -> Manifest:
    return Manifest.model_validate_json(_get(spec, keys, manifest_key))


def fetch_object(spec: Artifacts, keys: tuple[str, str], key: str, sha256: str) -> bytes:
    body = _get(spec, keys, key)
    if hashlib.sha256(body).hexdigest() != sha256:
        raise ArtifactReadError(f"{key}: its content does not match the manifest's checksum")
    return body


def _get(spec: Artifacts, keys: tuple[str, str], key: str) -> bytes:
    url = f"{spec.endpoint_url()}/{spec.bucket}/{quote(key, safe='/-_.~')}"
    headers = sigv4.authorization(
        "GET",
        url,
        access_key=keys[0],
        secret_key=keys[1],
        region=spec.region,
        when=datetime.now(UTC),
    )
    response = urllib3.request("GET", url, headers=headers, timeout=TIMEOUT, retries=RETRIES)
    if response.status != 200:
        raise ArtifactReadError(f"GET {key}: the bucket answered {response.status}")
    return bytes(response.data)
