"""MeetingBot: one bot for one meeting: where, as whom, when to leave, how to retry, and its
pod's few settings; its status is the attempt's phase and its facts."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field

from meetingbot_api.v1alpha1.artifacts import Artifacts, ArtifactsStatus, Capture
from meetingbot_api.v1alpha1.common import (
    APPLY_DEFAULTS,
    CONDITIONS_LIST,
    GROUP,
    KEYS_BOUNDED,
    LABEL_MAP,
    MAX_TOTAL_CHARS,
    Condition,
    LocalObjectRef,
    Model,
    ObjectMeta,
    SecretKeyRef,
    cel,
)
from meetingbot_api.v1alpha1.webhooks import Stream, Webhook, WebhookStatus
from meetingbot_contract import DAY_SECONDS, MAX_DURATION_SECONDS, AuthMode, LeaveRules

MEETING_NUMBER = r"^[0-9]{9,12}$"
# Printable text only: no control characters and no bidirectional overrides or isolates
# (which make a name read differently from what it is, in Zoom's roster and in logs).
DISPLAY_NAME = r"^[^\x00-\x1F\x7F-\x9F\x{200E}\x{200F}\x{202A}-\x{202E}\x{2066}-\x{2069}]*$"
# joinAt must lie in a range where every deadline computed from it stays representable.
EARLIEST, LATEST = "2000-01-01T00:00:00Z", "2200-01-01T00:00:00Z"
# The longest MeetingBot name that fits the label value its children carry (63 characters).
MAX_BOT_NAME = 63
# Zoom passcodes are printable text; a newline or NUL would reach the SDK's join call.
PASSCODE = r"^[^\x00-\x1F\x7F-\x9F]*$"
JOIN_URL = r"^https://([a-zA-Z0-9-]+\.)*zoom(gov)?\.(us|com)/(j|w|wc/join|s)/[0-9]{9,12}([/?#].*)?$"


class Meeting(Model):
    """The meeting to join: its number or join link, and its passcode if it has one."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            ("has(self.number) != has(self.joinUrl)", "set exactly one of number or joinUrl"),
            (
                "!(has(self.passcode) && has(self.passcodeSecretRef))",
                "set at most one passcode source: passcode or passcodeSecretRef",
            ),
        )
    )

    number: str | None = Field(
        None, pattern=MEETING_NUMBER, max_length=12, description="Meeting number (digits)."
    )
    join_url: str | None = Field(
        None, alias="joinUrl", pattern=JOIN_URL, max_length=2048, description="A Zoom join link."
    )
    passcode: str | None = Field(
        None,
        max_length=64,
        pattern=PASSCODE,
        description="The meeting's passcode (printable characters, no control characters).",
    )
    passcode_secret_ref: SecretKeyRef | None = Field(
        None,
        alias="passcodeSecretRef",
        description="The passcode from a key of a Secret labelled "
        "meetingbot.dev/secret-for: meeting-passcode.",
    )


class ObfSettings(Model):
    """Whose authorization an obf bot joins on behalf of."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.grantRef) != has(self.userTokenSecretRef)",
                "obf needs exactly one of grantRef and userTokenSecretRef",
            )
        )
    )

    grant_ref: LocalObjectRef | None = Field(
        None,
        alias="grantRef",
        description="A ZoomUserGrant in this namespace: the authorizing user's grant, which the "
        "operator keeps fresh. An OBF token for this meeting is minted at each attempt.",
    )
    user_token_secret_ref: SecretKeyRef | None = Field(
        None,
        alias="userTokenSecretRef",
        description="A user access token pasted into a Secret (scope user:read:token). It "
        "expires within an hour and nothing refreshes it: prefer grantRef.",
    )


class RetryPolicy(Model):
    """How often a transient failure (a crash, an eviction, a Zoom outage) is retried."""

    limit: int = Field(2, ge=0, le=10, description="New attempts after a transient failure.")


class Toleration(Model):
    """A taint the bot's pod tolerates, as a pod's tolerations say it."""

    key: str | None = Field(None, max_length=317, description="The taint's key (empty: any).")
    operator: str | None = Field(
        None,
        description="Exists (any value) or Equal (the default).",
        json_schema_extra={"enum": ["Exists", "Equal"]},
    )
    value: str | None = Field(None, max_length=63, description="The taint's value, for Equal.")
    effect: str | None = Field(
        None,
        description="The taint effect matched (empty: all).",
        json_schema_extra={"enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"]},
    )
    toleration_seconds: int | None = Field(
        None,
        alias="tolerationSeconds",
        ge=0,
        le=MAX_DURATION_SECONDS,
        description="For NoExecute: how long the pod stays once tainted.",
    )


# A resource.Quantity, as the API server parses it ("500m", "1.5Gi", 2).
QUANTITY = r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$"
Quantity = int | str
QUANTITY_MAP: dict[str, Any] = {
    "maxProperties": 8,
    "additionalProperties": {"x-kubernetes-int-or-string": True, "pattern": QUANTITY},
}


class Resources(Model):
    """The bot container's requests and limits (unset: the operator's defaults)."""

    requests: dict[str, Quantity] | None = Field(
        None, description="cpu, memory, ... reserved on the node.", json_schema_extra=QUANTITY_MAP
    )
    limits: dict[str, Quantity] | None = Field(
        None,
        description="cpu, memory, ... the container may not exceed (over memory: OOMKilled).",
        json_schema_extra=QUANTITY_MAP,
    )


class FieldRef(Model):
    field_path: str = Field(
        alias="fieldPath",
        max_length=256,
        pattern=r"^(metadata\.(name|namespace|uid|labels\['[^']+'\]|annotations\['[^']+'\])"
        r"|spec\.(nodeName|serviceAccountName)|status\.(hostIP|podIP|podIPs))$",
        description="A field of the bot's pod (metadata.name, status.podIP, ...).",
    )


class EnvSource(Model):
    """Where a variable's value comes from: a key of a Secret labelled
    meetingbot.dev/secret-for: bot-env (the operator checks the label before the pod starts:
    naming a Secret gains nothing without its owner's consent), or a field of the pod."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.secretKeyRef) != has(self.fieldRef)",
                "set exactly one of secretKeyRef or fieldRef",
            )
        )
    )

    secret_key_ref: SecretKeyRef | None = Field(
        None, alias="secretKeyRef", description="A key of an opted-in Secret (bot-env)."
    )
    field_ref: FieldRef | None = Field(None, alias="fieldRef", description="A field of the pod.")


class EnvVar(Model):
    """One environment variable of the bot container."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "!has(self.valueFrom) || !has(self.value) || self.value == ''",
                "set value or valueFrom, not both",
            )
        )
    )

    name: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128, description="The variable's name."
    )
    value: str = Field("", max_length=4096, description="Its value.")
    value_from: EnvSource | None = Field(
        None, alias="valueFrom", description="Its value from a Secret or a field of the pod."
    )


# Annotation keys in Kubernetes' own domains configure the runtime (AppArmor, seccomp, ...):
# a bot's security settings are the operator's, so podTemplate may not set them.
RESERVED_KEY = r"^([^/]*[.])?(kubernetes[.]io|k8s[.]io)/"
# Environment a bot image must be able to trust: the runtime contract's variables (a bot's
# configuration and options, e.g. which Meeting SDK to load) and the loaders' own.
RESERVED_ENV = r"^(MEETINGBOT_.*|HOME|LD_.*|PYTHON.*|NODE_OPTIONS)$"
STRING_MAP: dict[str, Any] = {"additionalProperties": {"type": "string", "maxLength": 4096}}


class PodTemplate(Model):
    """The few pod settings a bot may choose; everything else (security, volumes, the
    contract's environment) is the operator's."""

    image: str | None = Field(
        None,
        max_length=512,
        pattern=r"^[^\s]+$",
        description="The bot image; the operator's default if unset. The ZoomAccount's "
        "botImages must allow it.",
    )
    resources: Resources | None = Field(
        None, description="The bot container's requests and limits."
    )
    node_selector: dict[str, str] | None = Field(
        None,
        alias="nodeSelector",
        max_length=32,
        description="Node labels the bot's pod must match (values at most 63 characters, as "
        "label values are).",
        json_schema_extra={**LABEL_MAP, **cel(KEYS_BOUNDED)},
    )
    tolerations: list[Toleration] | None = Field(
        None, max_length=32, description="Taints the bot's pod tolerates."
    )
    annotations: dict[str, str] | None = Field(
        None,
        max_length=64,
        description="Annotations of the bot's pod: at most 32 768 characters in all, none in the "
        "kubernetes.io and k8s.io domains.",
        json_schema_extra={
            **STRING_MAP,
            **cel(
                (
                    f"self.all(k, !k.matches('{RESERVED_KEY}'))",
                    "annotations in the kubernetes.io and k8s.io domains (AppArmor, seccomp, "
                    "...) are set by the operator, not by podTemplate",
                ),
                KEYS_BOUNDED,
                (
                    f"self.map(k, size(k) + size(self[k])).sum() <= {MAX_TOTAL_CHARS}",
                    f"annotations hold at most {MAX_TOTAL_CHARS} characters in all (keys and "
                    "values)",
                ),
            ),
        },
    )
    labels: dict[str, str] | None = Field(
        None,
        max_length=32,
        description="Labels of the bot's pod (none under meetingbot.dev/).",
        json_schema_extra={
            **LABEL_MAP,
            **cel(
                (
                    f"self.all(k, !k.startsWith('{GROUP}/'))",
                    f"labels under {GROUP}/ are the operator's",
                ),
                KEYS_BOUNDED,
            ),
        },
    )
    image_pull_secrets: list[LocalObjectRef] | None = Field(
        None,
        alias="imagePullSecrets",
        max_length=8,
        description="Secrets of this namespace to pull the bot image with, besides the "
        "operator's bot-wide ones.",
    )
    priority_class_name: str | None = Field(
        None,
        alias="priorityClassName",
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="The bot pod's PriorityClass (it must exist).",
    )
    env: list[EnvVar] | None = Field(
        None,
        max_length=64,
        description="Extra environment for the bot container. Not MEETINGBOT_* or HOME (the "
        "runtime contract's), nor variables that change what code runs (LD_*, PYTHON*, "
        "NODE_OPTIONS); at most 32 768 characters in all.",
        json_schema_extra={
            # One value per name (server-side apply merges by name, as for a container's env).
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            **cel(
                (
                    f"self.all(e, !e.name.matches('{RESERVED_ENV}'))",
                    "MEETINGBOT_*, HOME, LD_*, PYTHON* and NODE_OPTIONS are set by the operator "
                    "or the image, not by podTemplate",
                ),
                (
                    f"self.map(e, size(e.name) + (has(e.value) ? size(e.value) : 0)).sum() <= "
                    f"{MAX_TOTAL_CHARS}",
                    f"env holds at most {MAX_TOTAL_CHARS} characters in all (names and values)",
                ),
            ),
        },
    )


class BotAuth(StrEnum):
    """How a bot joins. `auto` looks the meeting up first: the account's own meeting → zak,
    another account's → obf (with a grant), as Zoom's 2026 policy asks (docs/zoom.md, Policy)."""

    ZAK = "zak"
    NONE = "none"
    OBF = "obf"
    AUTO = "auto"


class MeetingBotSpec(Model):
    """The meeting, the identity the bot joins as, when it joins and leaves, and its pod."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.auth != 'obf' || has(self.obf)",
                "auth obf needs obf.grantRef (or obf.userTokenSecretRef)",
                ".auth",
            ),
            (
                "self.auth in ['zak', 'auto'] || !has(self.user)",
                "user applies only to auth zak or auto",
                ".user",
            ),
            (
                "self.meeting == oldSelf.meeting",
                "meeting is immutable; create a new MeetingBot",
                ".meeting",
            ),
            ("self.accountRef == oldSelf.accountRef", "accountRef is immutable", ".accountRef"),
            (
                "!has(self.stream) || has(self.capture)",
                "stream needs capture: it streams what the capture may keep",
                ".stream",
            ),
            (
                "!has(self.capture) || has(self.artifacts)",
                "capture needs artifacts: the bucket the bot's files go to",
                ".capture",
            ),
            (
                "has(self.artifacts) == has(oldSelf.artifacts) && "
                "(!has(self.artifacts) || self.artifacts == oldSelf.artifacts)",
                "artifacts is immutable (every attempt's objects belong in one place)",
                ".artifacts",
            ),
            ("self.auth == oldSelf.auth", "auth is immutable", ".auth"),
            (
                "!has(oldSelf.cancel) || !oldSelf.cancel || (has(self.cancel) && self.cancel)",
                "cancel cannot be undone; create a new MeetingBot",
                ".cancel",
            ),
            ("self.displayName == oldSelf.displayName", "displayName is immutable", ".displayName"),
            (
                f"!has(self.joinAt) || (self.joinAt >= timestamp('{EARLIEST}') && "
                f"self.joinAt < timestamp('{LATEST}'))",
                f"joinAt must be between {EARLIEST} and {LATEST}",
                ".joinAt",
            ),
        )
    )

    account_ref: LocalObjectRef = Field(alias="accountRef", description="The ZoomAccount to use.")
    meeting: Meeting = Field(description="The meeting to join (immutable).")
    display_name: str = Field(
        alias="displayName",
        min_length=1,
        max_length=64,
        pattern=DISPLAY_NAME,
        description="The name others see in the meeting (printable text; immutable).",
    )
    auth: BotAuth = Field(
        BotAuth.ZAK,
        description="zak (a service user's ZAK), obf (on behalf of a user who authorized the "
        "app and is in the meeting), auto (look the meeting up: own account → zak, another "
        "account's → obf) or none (own-account meetings, no sign-in).",
    )
    user: str | None = Field(
        None, max_length=128, description="Zoom user to join as; one of the account's users."
    )
    obf: ObfSettings | None = Field(
        None, description="For auth obf (or auto, for external meetings): whose behalf."
    )
    join_at: datetime | None = Field(
        None, alias="joinAt", description="When to join (RFC 3339); now if unset."
    )
    leave: LeaveRules = Field(
        default_factory=LeaveRules,
        description="When the bot leaves on its own (0 disables a rule).",
        json_schema_extra=APPLY_DEFAULTS,
    )
    retry: RetryPolicy = Field(
        default_factory=RetryPolicy,
        description="Retries of transient failures.",
        json_schema_extra=APPLY_DEFAULTS,
    )
    ttl_seconds_after_finished: int | None = Field(
        None,
        alias="ttlSecondsAfterFinished",
        ge=0,
        le=365 * DAY_SECONDS,
        description="Delete this long after finishing.",
    )
    start_timeout_seconds: int = Field(
        300,
        alias="startTimeoutSeconds",
        ge=10,
        le=DAY_SECONDS,
        description="How long an attempt may take from its start to the bot's first report "
        "(scheduling, image pull, browser start). Past it the pod is stopped and the attempt "
        "counts as failed (StartTimeout, retried).",
    )
    pod_template: PodTemplate = Field(
        default_factory=PodTemplate,
        alias="podTemplate",
        description="The bot pod's image, resources, placement, labels and extra environment.",
    )
    capture: Capture | None = Field(
        None,
        description="What the bot captures (audio, speakers, captions, chat); absent: nothing.",
    )
    artifacts: Artifacts | None = Field(
        None, description="Where the captured files go (immutable); needed by capture."
    )
    cancel: bool = Field(
        False,
        description="Stop the bot: it leaves the meeting (or never starts) and finishes "
        "Succeeded with reason Canceled, its status, artifacts and webhook kept (deleting the "
        "MeetingBot stops it too, and takes those along). Cannot be undone.",
    )
    stream: Stream | None = Field(
        None,
        description="Where the bot streams the meeting live (audio and events) over a "
        "WebSocket; needs capture (the same consent rules apply).",
    )
    webhook: Webhook | None = Field(
        None,
        description="Where the operator POSTs the bot's phase changes, artifacts delivered and "
        "final result (signed CloudEvents, retried for a day, in order).",
    )


class Phase(StrEnum):
    PENDING = "Pending"
    SCHEDULED = "Scheduled"
    STARTING = "Starting"
    JOINING = "Joining"
    WAITING_ROOM = "WaitingRoom"
    IN_MEETING = "InMeeting"
    LEAVING = "Leaving"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


TERMINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED})
# An attempt is running (its pod exists or is meant to): it holds its service user.
RUNNING_PHASES = frozenset(
    {Phase.STARTING, Phase.JOINING, Phase.WAITING_ROOM, Phase.IN_MEETING, Phase.LEAVING}
)


class StopRequest(Model):
    """Why the operator stopped an attempt's pod (written before it deletes the pod): only such a stop ends an attempt on the bot's SIGTERM; a pod stopped by anyone else is a disruption and is retried."""  # noqa: E501

    attempt: int = Field(ge=1, description="The attempt whose pod was stopped.")
    reason: str = Field(max_length=64, description="The reason the attempt ends with.")
    message: str = Field("", max_length=1024, description="The same, in words.")


class MeetingBotStatus(Model):
    """Where the bot is (its phase and why), its attempts, and the facts of the current one.
    Written by the operator only."""

    phase: Phase | None = Field(
        None,
        description="Pending, Scheduled, Starting, Joining, WaitingRoom, InMeeting, Leaving, "
        "then Succeeded or Failed.",
    )
    reason: str | None = Field(
        None,
        max_length=64,
        description="Why the bot is in its phase: an open set of CamelCase reasons "
        "(docs/reasons.md), not a closed enum.",
    )
    message: str | None = Field(None, max_length=32768, description="The same, in words.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready (where it should be: Scheduled, InMeeting or Succeeded), InMeeting, "
        "and kstatus' Reconciling; Complete (Succeeded), Failed and Stalled only once True "
        "(absent before, as a Job's).",
        json_schema_extra=CONDITIONS_LIST,
    )
    observed_generation: int | None = Field(
        None, alias="observedGeneration", description="The generation last acted on."
    )
    attempts: int = Field(0, description="Attempts started so far (the first is 1).")
    auth: AuthMode | None = Field(
        None, description="The mode the bot joins with (what auth: auto resolved to)."
    )
    zoom_user: str | None = Field(
        None, alias="zoomUser", max_length=128, description="The service user the bot joins as."
    )
    zak_expires_at: datetime | None = Field(
        None,
        alias="zakExpiresAt",
        description="When its ZAK expires (checked only at join: a bot stays in after).",
    )
    pod_name: str | None = Field(
        None, alias="podName", max_length=253, description="The current attempt's pod."
    )
    started_at: datetime | None = Field(
        None, alias="startedAt", description="This attempt's start."
    )
    joined_at: datetime | None = Field(
        None, alias="joinedAt", description="When the bot entered the meeting."
    )
    left_at: datetime | None = Field(None, alias="leftAt", description="When it left.")
    next_attempt_at: datetime | None = Field(
        None, alias="nextAttemptAt", description="When the next attempt starts (a retry's backoff)."
    )
    start_failures: int = Field(
        0,
        alias="startFailures",
        description="Consecutive attempts that could not start (sets the backoff; kept here so "
        "a restart does not reset it).",
    )
    stop: StopRequest | None = Field(
        None, description="Set when the operator stops the attempt's pod, before it does."
    )
    completion_time: datetime | None = Field(
        None,
        alias="completionTime",
        description="When the bot finished (ttlSecondsAfterFinished counts from it).",
    )
    artifacts: ArtifactsStatus | None = Field(
        None, description="What was delivered to the bucket, across attempts."
    )
    webhook: WebhookStatus | None = Field(
        None, description="Delivery to spec.webhook: what is delivered and what is pending."
    )


class MeetingBot(Model):
    """A bot that joins one Zoom meeting."""

    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: MeetingBotSpec
    status: MeetingBotStatus = Field(default_factory=MeetingBotStatus)


def meeting_number(meeting: Meeting) -> str:
    """The meeting number, from `number` or from the join link's path."""
    if meeting.number:
        return meeting.number
    match = re.search(r"/(?:j|w|wc/join|s)/([0-9]{9,12})", meeting.join_url or "")
    if match is None:
        raise ValueError("the meeting has neither a number nor a join link with one")
    return match.group(1)
