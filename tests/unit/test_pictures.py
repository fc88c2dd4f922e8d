"""The service users' picture (pure parts): only images Zoom takes, named by their digest."""

from __future__ import annotations

import hashlib

import pytest

from meetingbot_operator.zoomaccount.pictures import MAX_BYTES, PictureProblem, checked

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32


@pytest.mark.parametrize(("data", "kind"), [(PNG, "image/png"), (JPEG, "image/jpeg"),
                                            (b"GIF89a" + b"\x00" * 8, "image/gif")])  # fmt: skip
def test_an_image_zoom_takes_is_named_by_its_digest(data: bytes, kind: str) -> None:
    picture = checked(data, "Secret 'face'")
    assert picture.content_type == kind
    assert picture.digest == "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"clientSecret=hunter2", "not a JPEG, PNG or GIF"),  # a Secret that is not a picture
        (PNG + b"\x00" * MAX_BYTES, "at most"),
    ],
)
def test_anything_else_is_refused_without_showing_it(data: bytes, words: str) -> None:
    with pytest.raises(PictureProblem) as refused:
        checked(data, "Secret 'face' key 'p'")
    assert words in str(refused.value) and "hunter2" not in str(refused.value)
