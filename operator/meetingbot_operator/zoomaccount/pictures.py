"""The service users' profile picture (ZoomAccount spec.picture): read from an opted-in
ConfigMap or Secret, checked to be an image Zoom takes, and uploaded to each service user whose
picture differs (`POST /users/{userId}/picture`). What each user has is remembered by digest:
a change of the picture uploads it again, a user created later gets it too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from dataclasses import dataclass

from meetingbot_api import PictureSource
from meetingbot_operator.kube.client import ApiError, InvalidName
from meetingbot_operator.kube.secrets import USE_LABEL, SecretUse
from meetingbot_operator.kube.verbs import Kube
from meetingbot_operator.zoom import ZoomClient, ZoomError

log = logging.getLogger(__name__)
MAX_BYTES = 2 * 1024 * 1024  # Zoom: a picture of at most 2 MB
KINDS = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png", b"GIF8": "image/gif"}


class PictureProblem(Exception):
    """Why the picture cannot be used (safe to show: the object's name, never its bytes)."""


@dataclass(frozen=True)
class Picture:
    data: bytes
    content_type: str
    digest: str  # sha256:<hex>, what the status shows


async def load(kube: Kube, namespace: str, source: PictureSource) -> Picture:
    kind, ref = ("secrets", source.secret_ref) if source.secret_ref else (
        "configmaps", source.config_map_ref)  # fmt: skip
    assert ref is not None
    what = f"{'Secret' if kind == 'secrets' else 'ConfigMap'} {ref.name!r}"
    try:
        found = await kube.read_object(kind, namespace, ref.name)
    except (ApiError, InvalidName) as error:
        raise PictureProblem(f"the operator could not read {what}: {error}") from None
    if found is None:
        raise PictureProblem(f"{what} not found")
    labels = (found.get("metadata") or {}).get("labels") or {}
    if labels.get(USE_LABEL) != SecretUse.PROFILE_PICTURE.value:
        raise PictureProblem(
            f"{what} is not labelled {USE_LABEL}={SecretUse.PROFILE_PICTURE.value}; whoever "
            "manages it must add that label before the operator will use it"
        )
    # A Secret's data and a ConfigMap's binaryData hold base64 (an image is not text: a
    # ConfigMap's data cannot hold it).
    encoded = (found.get("data" if kind == "secrets" else "binaryData") or {}).get(ref.key)
    if encoded is None:
        where = "" if kind == "secrets" else " in its binaryData"
        raise PictureProblem(f"{what} has no key {ref.key!r}{where}")
    try:
        data = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise PictureProblem(f"{what}: {ref.key!r} is not base64") from None
    return checked(data, f"{what} key {ref.key!r}")


def checked(data: bytes, what: str) -> Picture:
    """An image Zoom takes, or PictureProblem saying why not."""
    if len(data) > MAX_BYTES:
        raise PictureProblem(f"{what} is {len(data)} bytes; Zoom takes at most {MAX_BYTES}")
    content_type = next((t for magic, t in KINDS.items() if data.startswith(magic)), None)
    if content_type is None:
        raise PictureProblem(f"{what} is not a JPEG, PNG or GIF image")
    return Picture(data, content_type, "sha256:" + hashlib.sha256(data).hexdigest())


async def upload_where_needed(
    client: ZoomClient, users: tuple[str, ...], picture: Picture, have: dict[str, str]
) -> list[str]:
    """Upload the picture to each user whose picture (as `have` records it) differs, and record
    it there; the errors, one line per user that failed (tried again at the next check)."""
    errors = []
    for user in users:
        if have.get(user) == picture.digest:
            continue
        try:
            await client.upload_picture(user, picture.data, picture.content_type)
        except ZoomError as error:
            errors.append(f"{user}: {error.message}")
            continue
        have[user] = picture.digest
        log.info("profile picture uploaded", extra={"user": user, "picture": picture.digest})
    return errors
