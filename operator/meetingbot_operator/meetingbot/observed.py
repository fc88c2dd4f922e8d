"""What was seen: the vocabulary decisions read, shared by the builders and the services.

Nothing here decides anything. The cache fills these in from watch events and reports, the
attempt executor reports what it did as an `AttemptResult`, and `decide` reads them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from meetingbot_api import ArtifactsStatus
from meetingbot_contract import AuthMode, BotReport
from meetingbot_operator.zoomaccount.state import AccountState, MeetingOwner
from meetingbot_operator.zoomusergrant.state import GrantState


def pod_name(bot: str, attempt: int) -> str:
    return f"{bot}-{attempt}"


@dataclass(frozen=True)
class Meta:
    name: str
    namespace: str
    uid: str
    generation: int
    # Kept only where a rule reads them: a grant's botSelector (cache.slim).
    labels: tuple[tuple[str, str], ...] = ()
    finalizers: tuple[str, ...] = ()


@dataclass(frozen=True)
class PodObservation:
    name: str
    attempt: int
    phase: str = "Pending"
    deleted: bool = False  # gone from the API server
    deleting: bool = False  # has a deletionTimestamp: its containers got (or will get) SIGTERM
    # The DisruptionTarget condition ("EvictionByEvictionAPI: ..."), set by the API server, the
    # scheduler or the kubelet when they stop a pod.
    disruption: str | None = None
    unschedulable: str | None = None  # the scheduler's message while it cannot place the pod
    exit_code: int | None = None
    terminated_reason: str | None = None
    termination_message: str | None = None
    waiting_reason: str | None = None
    waiting_message: str | None = None
    status_reason: str | None = None
    status_message: str | None = None
    # The service user it joins as and its ZoomAccount (identities/claims.py), for ZAK starts.
    zoom_user: str | None = None
    zoom_account: str | None = None

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed") or self.exit_code is not None

    @property
    def live(self) -> bool:
        """Neither finished, nor gone, nor going."""
        return not (self.finished or self.deleted or self.deleting)


@dataclass(frozen=True)
class AttemptStarted:
    """The executor wrote the attempt's Secret and Pod (or found both there, ours)."""

    attempt: int
    at: datetime
    user: str | None = None
    zak_expires_at: datetime | None = None
    auth: AuthMode | None = None  # the mode the attempt joins with


@dataclass(frozen=True)
class AttemptRefused:
    """The attempt could not start: nothing ran, and no ZAK was handed out."""

    attempt: int
    at: datetime
    reason: str
    message: str
    # About the service user, not the bot (identities/pool.py): the next pass picks another
    # user, and `user`, when Zoom refused it, is Unavailable from then on.
    another_user: bool = False
    user: str | None = None


AttemptResult = AttemptStarted | AttemptRefused


@dataclass(frozen=True)
class PodFound:
    """Not a result: a start found its attempt's pod made already, by an earlier pass whose
    status was never written, for another user than the one it was given (executor.py's
    `_started_before`). An observation, which the next pass decides with (`started_pod`)."""

    attempt: int
    body: dict[str, Any]


@dataclass(frozen=True)
class WebhookProgress:
    """How far this process's deliverer got with a bot's outbox (in memory: after a restart,
    None, and the outbox in status is sent again from its first event, with the same ids)."""

    acked: int  # the last sequence number delivered or dropped
    dropped: frozenset[int] = frozenset()  # those of them given up on
    last_delivery_time: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class Observed:
    now: datetime
    account: AccountState | None
    pod: PodObservation | None = None  # the current attempt's pod, as last seen
    # The next attempt's pod, there already: a start whose status no pass wrote (the operator,
    # or the shard's leader, stopped in between). Its start is decided again with its user.
    started_pod: PodObservation | None = None
    report: BotReport | None = None  # the current attempt's latest report
    # When the current attempt's bot last reported (heartbeats included); kept in memory only.
    last_report_at: datetime | None = None
    # When this process began leading the bot's shard (its start, or a shard taken in place).
    operator_started: datetime | None = None
    # When this process first saw the MeetingBot (cache.BotRecord.known_since): a new leader
    # of a loaded shard can take longer than the bots' silence allowance to list them all.
    known_since: datetime | None = None
    # When the last object of a watch's list (MeetingBots, bot pods) new to this process came
    # in the bot's shard: the claims of running bots are whole some time after the lists
    # end (decisions.py's POOL_SETTLE).
    listed_at: datetime | None = None
    # Whether the join Secret is known to be gone (in memory: unknown after a restart).
    secret_cleaned: bool = False
    # What the executor did with the attempt the previous pass asked for, not yet in status.
    attempt_result: AttemptResult | None = None
    # The ZoomUserGrant spec.obf.grantRef names (None: not found, or none named).
    grant: GrantState | None = None
    # auth: auto: the meeting looked up (None: not yet).
    meeting_owner: MeetingOwner | None = None
    # What this process saw delivered to the bot's bucket (None: nothing yet, or a restart;
    # the status keeps what an earlier pass wrote).
    artifacts: ArtifactsStatus | None = None
    # spec.webhook: what the deliverer got through since the status last said (None: nothing).
    webhook: WebhookProgress | None = None
