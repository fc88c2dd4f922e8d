"""`make release` points the packaged chart's defaults at the images it pushed, by digest, and
keeps values.yaml's comments (the chart's documentation)."""

from __future__ import annotations

import yaml

from devenv.release import CHART, IMAGES, _set_image

OPERATOR = "sha256:" + "1" * 64
SANDBOX = "sha256:" + "2" * 64


def test_the_released_chart_names_its_images_by_digest() -> None:
    text = (CHART / "values.yaml").read_text()
    digests = {"meetingbot-operator": OPERATOR, "meetingbot-zoomsim": SANDBOX}
    for image in IMAGES:
        text = _set_image(text, image, f"registry.example.com/mb/{image.name}", digests[image.name])
    values = yaml.safe_load(text)
    assert values["image"]["repository"] == "registry.example.com/mb/meetingbot-operator"
    assert values["image"]["digest"] == OPERATOR
    assert values["sandbox"]["image"]["repository"] == "registry.example.com/mb/meetingbot-zoomsim"
    assert values["sandbox"]["image"]["digest"] == SANDBOX
    # Nothing else changed: every other value, and every comment line, is as it was.
    original = yaml.safe_load((CHART / "values.yaml").read_text())
    for changed in (values["image"], values["sandbox"]["image"], original["image"],
                    original["sandbox"]["image"]):  # fmt: skip
        changed.pop("repository"), changed.pop("digest")
    assert values == original
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    original_comments = [
        line for line in (CHART / "values.yaml").read_text().splitlines()
        if line.lstrip().startswith("#")
    ]  # fmt: skip
    assert comments == original_comments
