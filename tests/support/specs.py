"""The one MeetingBot spec builder of the tests."""

from __future__ import annotations

from typing import Any

from meetingbot_operator.models import MeetingBot

DEFAULT_NUMBER = "12345678901"


def bot_spec(number: str = DEFAULT_NUMBER, **fields: Any) -> dict[str, Any]:
    """A valid spec for the ZoomAccount "main": the meeting `number`, overridden by `fields`."""
    return {
        "accountRef": {"name": "main"},
        "meeting": {"number": number},
        "displayName": "Notetaker",
        **fields,
    }


def meeting_bot(status: dict[str, Any] | None = None, **fields: Any) -> MeetingBot:
    """A parsed MeetingBot for the decisions' unit tests: `bot_spec()` and a status."""
    return MeetingBot.model_validate({"spec": bot_spec(**fields), "status": status or {}})
