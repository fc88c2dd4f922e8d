"""The one MeetingBot spec builder of the tests."""

from __future__ import annotations

from typing import Any

DEFAULT_NUMBER = "12345678901"


def bot_spec(number: str = DEFAULT_NUMBER, **fields: Any) -> dict[str, Any]:
    """A valid spec for the ZoomAccount "main": the meeting `number`, overridden by `fields`."""
    return {
        "accountRef": {"name": "main"},
        "meeting": {"number": number},
        "displayName": "Notetaker",
        **fields,
    }
