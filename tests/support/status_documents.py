"""The status documents the benches' baselines patch: the least that tells the truth about a
starting bot, and the one the operator writes, decided by its own `decide` (to cost the same
writes as the operator; test_burst's large burst, test_status_document)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from meetingbot_api import MeetingBot, Phase
from meetingbot_contract import AuthMode
from meetingbot_operator.meetingbot.decisions import Timing, decide
from meetingbot_operator.meetingbot.observed import AttemptStarted, Meta, Observed
from meetingbot_operator.zoomaccount.state import AccountState
from tests.support.specs import bot_spec

# The least that tells the truth: its phase, its attempt, its pod (each bot's own podName is
# patched over this one).
LEAST: dict[str, Any] = {"phase": "Starting", "attempts": 1, "podName": "x"}


def operator_document() -> dict[str, Any]:
    """The status the operator writes for a bot whose attempt it has just started."""
    now = datetime.now(UTC)
    meta = Meta(name="b0000", namespace="bench", uid="0a1b2c3d-0000", generation=1)
    bot = MeetingBot.model_validate({"spec": bot_spec(displayName="Bench")})
    started = AttemptStarted(1, now, "bench@example.com", now + timedelta(hours=2), AuthMode.ZAK)
    observed = Observed(
        now=now,
        account=AccountState(True, "CredentialsVerified", "ok", ("bench@example.com",)),
        attempt_result=started,
    )
    timing = Timing(
        start_lead=timedelta(seconds=60),
        retry_base=5,
        retry_max=300,
        max_duration_grace=timedelta(seconds=120),
    )
    status = decide(bot, meta, observed, timing).status
    assert status.phase == Phase.STARTING
    return status.model_dump(mode="json", by_alias=True)
