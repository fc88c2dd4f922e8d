"""The scripted meeting the capture and stream tests share: Alice and Bob speak on a script
(each a tone of their own), Bob chats; and a recording bot's spec for it."""

from __future__ import annotations

from typing import Any

from devenv.zoomsim import SimAdmin
from tests.support.artifacts import ScratchBucket
from tests.support.specs import bot_spec

# The script, in seconds from its start: Alice, then Bob over her end, silence, Alice again.
SPEECH = [
    ("alice", 1.0, 4.0, "hello everyone this is alice"),
    ("bob", 3.0, 7.0, "bob here"),
    ("alice", 9.0, 11.0, "one more thing"),
]
CHAT_AT = 5.0
# Margins around each scripted edge: the page's clock and the audio's start agree to within
# tens of milliseconds; windows stay clear of the edges by this much.
MARGIN_MS = 300


def capture_spec(image: str, number: str, bucket: ScratchBucket, **capture: Any) -> dict[str, Any]:
    return bot_spec(
        number,
        on_kwok=False,
        podTemplate={"image": image},
        capture={"segmentSeconds": 3, "announcement": "Notetaker is recording", **capture},
        artifacts=bucket.spec(),
    )


async def meeting_with_speakers(
    sim: SimAdmin, account: dict[str, Any], path: str
) -> tuple[str, dict[str, Any]]:
    meeting = sim.create_meeting(account["id"], audio_path=path)
    number = meeting["number"]
    people = {
        "alice": sim.add_participant(number, "Alice", is_host=True),
        "bob": sim.add_participant(number, "Bob"),
    }
    return number, people


def play_the_script(sim: SimAdmin, number: str, people: dict[str, Any]) -> int:
    """SPEECH and Bob's chat, from one second on; the script's start (host ms)."""
    script = sim.script_media(
        number,
        start_in_seconds=1,
        speech=[
            {"participant": people[who]["userId"], "from": a, "to": b, "text": text}
            for who, a, b, text in SPEECH
        ],
        chat=[{"participant": people["bob"]["userId"], "at": CHAT_AT, "message": "see the doc"}],
    )
    return int(script["startsAtMs"])
