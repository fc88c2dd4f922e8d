"""The custom resources as pydantic models: the single source of the CRDs (crdgen.py builds
the chart's crds/*.yaml from these) and the parsed form the operator works with.

Field names follow the Kubernetes API conventions: camelCase on the wire, `...Seconds` for
durations, `...Time` for timestamps, `...Ref` for references. Rules the API server can check
at apply time are CEL rules (`x-kubernetes-validations`) attached to the models here.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from meetingbot_contract import DAY_SECONDS, MAX_DURATION_SECONDS, AuthMode, LeaveRules
from meetingbot_operator.zoom.credentials import ZAK_MAX_TTL_SECONDS, ZAK_MIN_TTL_SECONDS
from meetingbot_operator.zoom.endpoints import Cloud
from meetingbot_operator.zoom.ratelimit import RatePlan

GROUP = "meetingbot.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


def cel(*rules: tuple[str, str] | tuple[str, str, str]) -> dict[str, Any]:
    """`x-kubernetes-validations` from (rule, message[, fieldPath]) tuples."""
    out = []
    for rule in rules:
        entry = {"rule": rule[0], "message": rule[1]}
        if len(rule) == 3:
            entry["fieldPath"] = rule[2]
        out.append(entry)
    return {"x-kubernetes-validations": out}


class Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


# --- shared pieces ---------------------------------------------------------------------------


# An object's name (a DNS subdomain, as the API server checks it for Secrets and our own
# kinds). A reference is only ever a name: `..`, `/` or `%` could otherwise turn it into
# another object's API path.
OBJECT_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# A key of a Secret's data, as the API server checks it.
SECRET_DATA_KEY = r"^[-._a-zA-Z0-9]+$"  # noqa: S105 - a pattern, not a password


class LocalObjectRef(Model):
    """An object in the same namespace, by name."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=OBJECT_NAME,
        description="The object's name (a DNS subdomain) in this namespace.",
    )


class SecretKeyRef(Model):
    """One key of a Secret in the same namespace."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=OBJECT_NAME,
        description="The Secret's name (a DNS subdomain) in this namespace.",
    )
    key: str = Field(
        min_length=1, max_length=253, pattern=SECRET_DATA_KEY, description="The key in its data."
    )


class Condition(Model):
    """metav1.Condition with its own validation (all but observedGeneration required)."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    )
    status: str = Field(json_schema_extra={"enum": ["True", "False", "Unknown"]})
    observed_generation: int | None = Field(None, alias="observedGeneration", ge=0)
    last_transition_time: datetime = Field(alias="lastTransitionTime")
    reason: str = Field(
        min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
    )
    message: str = Field(max_length=32768)


# An empty object as the default, so the API server fills in the nested fields' defaults.
APPLY_DEFAULTS: dict[str, Any] = {"default": {}}

CONDITIONS_LIST: dict[str, Any] = {
    "maxItems": 16,
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}
# A list of distinct strings, merged as a set by server-side apply.
STRING_SET: dict[str, Any] = {"x-kubernetes-list-type": "set"}

# What the largest legal podTemplate may hold, so that a tenant's biggest specs cost the
# operator (its watch pages, its cache) and the API server little: keys as long as Kubernetes
# allows for labels and annotations (a 253-character prefix, '/', a 63-character name), label
# and node-selector values as long as a label value may be, and at most 32 768 characters of
# annotations and of environment each (CEL counts characters). The largest legal MeetingBot
# spec is 107 KB of JSON (tests/support/specs.py largest_pod_template).
MAX_KEY = 317
MAX_LABEL_VALUE = 63
MAX_TOTAL_CHARS = 32768
KEYS_BOUNDED = (f"self.all(k, size(k) <= {MAX_KEY})", f"keys are at most {MAX_KEY} characters")
LABEL_MAP: dict[str, Any] = {
    "additionalProperties": {"type": "string", "maxLength": MAX_LABEL_VALUE},
}


# --- ZoomAccount ---------------------------------------------------------------------------------


class ExplicitEndpoints(Model):
    """Base URLs that replace the cloud's (a proxy, or a simulator in tests)."""

    oauth_url: str = Field(
        alias="oauthUrl",
        pattern=r"^https?://",
        max_length=2048,
        description="Token endpoint URL. Used only when the operator allows it "
        "(MEETINGBOT_ALLOWED_ENDPOINTS); otherwise the account is not Ready.",
    )
    api_url: str = Field(
        alias="apiUrl",
        pattern=r"^https?://",
        max_length=2048,
        description="REST base, ending in /v2",
    )


class ZakSettings(Model):
    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                # has(): the schema's own default ({}) is checked before its fields' defaults.
                "!has(self.minRemainingSeconds) || !has(self.ttlSeconds) || "
                "(has(self.reuse) && !self.reuse) || self.minRemainingSeconds < self.ttlSeconds",
                "minRemainingSeconds must be less than ttlSeconds, or no ZAK is ever reused",
                ".minRemainingSeconds",
            )
        )
    )

    ttl_seconds: int = Field(
        7200,
        alias="ttlSeconds",
        ge=ZAK_MIN_TTL_SECONDS,
        le=ZAK_MAX_TTL_SECONDS,
        description="Lifetime of each minted ZAK. It is checked only at join time.",
    )
    reuse: bool = Field(
        True,
        description="Share one ZAK per service user among the bots that start while it has "
        "more than minRemainingSeconds to live (Zoom checks a ZAK only at join, and several "
        "are valid at once). A join refused for the ZAK drops it; false: one ZAK per attempt.",
    )
    min_remaining_seconds: int = Field(
        600,
        alias="minRemainingSeconds",
        ge=0,
        le=ZAK_MAX_TTL_SECONDS,
        description="A shared ZAK is handed out only while it has at least this long to live.",
    )


class RateLimits(Model):
    """Overrides of the plan's limits, for accounts Zoom has given higher ones."""

    light_per_second: int | None = Field(
        None, alias="lightPerSecond", ge=1, le=10000, description="Light APIs (ZAK, users)."
    )


class Provisioning(Model):
    """Service users the operator creates with POST /v2/users when bots need more."""

    max_users: int = Field(
        alias="maxUsers",
        ge=1,
        le=100,
        description="At most this many users are created (the count is read from Zoom, so "
        "it holds across operator restarts).",
    )
    action: str = Field(
        "autoCreate",
        description="POST /v2/users action: autoCreate (a managed domain), custCreate (ISV "
        "partners) or create (the user must accept an email before a ZAK can be minted).",
        json_schema_extra={"enum": ["autoCreate", "custCreate", "create"]},
    )
    email_template: str = Field(
        alias="emailTemplate",
        min_length=6,
        max_length=128,
        pattern=r"^[^@\s]*\{n\}[^@\s]*@[A-Za-z0-9.-]+$",
        description="Email of the n-th created user; {n} is 1..maxUsers, e.g. "
        "bot-{n}@bots.example.com.",
    )
    user_type: int = Field(
        1,
        alias="userType",
        description="Zoom user type: 1 basic, 2 licensed.",
        json_schema_extra={"enum": [1, 2]},
    )

    def email(self, n: int) -> str:
        return self.email_template.replace("{n}", str(n))

    def index(self, email: str) -> int | None:
        """n when `email` is the template's n-th address (1..maxUsers), else None."""
        head, _, tail = self.email_template.partition("{n}")
        lowered = email.lower()
        if not (lowered.startswith(head.lower()) and lowered.endswith(tail.lower())):
            return None
        middle = email[len(head) : len(email) - len(tail)]
        if not middle.isdigit() or middle != str(int(middle)):
            return None
        n = int(middle)
        return n if 1 <= n <= self.max_users else None


class PoolSettings(Model):
    provisioning: Provisioning | None = Field(
        None,
        description="Create service users with POST /v2/users when every user is busy or "
        "unavailable (opt-in).",
    )
    max_bots_per_user: int | None = Field(
        None,
        alias="maxBotsPerUser",
        ge=1,
        le=1000,
        description="At most this many running bots per service user (unset: no cap; Zoom "
        "sets none for participants). A bot waits in Pending (NoServiceUserAvailable) while "
        "every user is at the cap.",
    )


class ZoomAccountSpec(Model):
    sdk_credentials_secret_ref: LocalObjectRef = Field(
        alias="sdkCredentialsSecretRef",
        description="Secret with keys sdkKey and sdkSecret (the Meeting SDK app).",
    )
    api_credentials_secret_ref: LocalObjectRef = Field(
        alias="apiCredentialsSecretRef",
        description="Secret with keys accountId, clientId, clientSecret (Server-to-Server OAuth).",
    )
    cloud: Cloud = Field(
        Cloud.COMMERCIAL, description="commercial or government (Zoom for Government)."
    )
    endpoints: ExplicitEndpoints | None = Field(
        None, description="Overrides the cloud's base URLs."
    )
    plan: RatePlan = Field(
        RatePlan.PRO, description="The account's plan: sets the client-side rate limits."
    )
    rate_limits: RateLimits | None = Field(None, alias="rateLimits")
    users: list[str] = Field(
        min_length=1,
        max_length=100,
        description="Service users (ids or emails) a ZAK may be minted for.",
        json_schema_extra={
            "items": {"type": "string", "minLength": 1, "maxLength": 128},
            **STRING_SET,
        },
    )
    zak: ZakSettings = Field(default_factory=ZakSettings, json_schema_extra=APPLY_DEFAULTS)
    pool: PoolSettings = Field(default_factory=PoolSettings, json_schema_extra=APPLY_DEFAULTS)
    bot_images: list[str] | None = Field(
        None,
        alias="botImages",
        max_length=32,
        description="Images allowed to receive this account's ZAKs and OBF tokens: exact "
        "references or shell-style patterns (registry.example.com/team/*). Unset: only the "
        "operator's default bot image.",
        json_schema_extra={
            "items": {"type": "string", "minLength": 1, "maxLength": 512},
            **STRING_SET,
        },
    )


class ServiceUserStatus(Model):
    user: str = Field(max_length=128)
    state: str = Field(json_schema_extra={"enum": ["Active", "Unavailable"]})
    active_bots: int = Field(0, alias="activeBots", ge=0)
    reason: str | None = Field(None, max_length=64)
    message: str | None = Field(None, max_length=1024)
    since: datetime | None = None


class ZoomAccountStatus(Model):
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=CONDITIONS_LIST)
    observed_generation: int | None = Field(None, alias="observedGeneration")
    scopes: list[str] = Field(
        default_factory=list,
        max_length=200,
        json_schema_extra={"items": {"type": "string", "maxLength": 200}, **STRING_SET},
    )
    last_verified_time: datetime | None = Field(None, alias="lastVerifiedTime")
    users: list[ServiceUserStatus] = Field(
        default_factory=list,
        max_length=100,
        description="One entry per service user: Active or Unavailable (with Zoom's reason), "
        "and the running bots it serves.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["user"]},
    )
    active_users: int | None = Field(None, alias="activeUsers", ge=0)
    provisioning_error: str | None = Field(
        None,
        alias="provisioningError",
        max_length=1024,
        description="Why the last attempt to create a service user failed (empty once one "
        "succeeds).",
    )
    active_bots: int | None = Field(None, alias="activeBots", ge=0)


class ZoomAccount(Model):
    spec: ZoomAccountSpec
    status: ZoomAccountStatus = Field(default_factory=ZoomAccountStatus)


# --- ZoomUserGrant -----------------------------------------------------------------------------


class LabelSelector(Model):
    """Labels an object must carry, all of them (a metav1.LabelSelector's matchLabels)."""

    match_labels: dict[str, str] = Field(
        alias="matchLabels",
        min_length=1,
        max_length=16,
        json_schema_extra={**LABEL_MAP, **cel(KEYS_BOUNDED)},
    )


class ZoomUserGrantSpec(Model):
    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.email) || (has(self.allowAnyUser) && self.allowAnyUser)",
                "set email to the Zoom user who will authorize this grant (or allowAnyUser: "
                "true to let whoever opens its authorizationUrl authorize it)",
            )
        )
    )

    account_ref: LocalObjectRef = Field(
        alias="accountRef",
        description="The ZoomAccount whose cloud (or explicit endpoints) the grant uses.",
    )
    app_credentials_secret_ref: LocalObjectRef = Field(
        alias="appCredentialsSecretRef",
        description="A Secret with clientId and clientSecret of the user-managed OAuth app "
        "(labelled meetingbot.dev/secret-use: zoom-credentials). Its redirect URL must be the "
        "operator's /oauth/callback.",
    )
    email: str | None = Field(
        None,
        max_length=256,
        description="The Zoom user who may authorize the grant: anyone else who signs in on "
        "Zoom's consent page is refused and the grant is left as it was. Required unless "
        "allowAnyUser is true.",
    )
    allow_any_user: bool = Field(
        False,
        alias="allowAnyUser",
        description="Let whichever Zoom user opens the authorizationUrl (whoever can read "
        "this grant's status) authorize it, instead of naming the user in email.",
    )
    bot_selector: LabelSelector | None = Field(
        None,
        alias="botSelector",
        description="Only MeetingBots with these labels may join on this grant's behalf. "
        "Unset: every MeetingBot in the namespace that names it.",
    )


class ZoomUserGrantStatus(Model):
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=CONDITIONS_LIST)
    observed_generation: int | None = Field(None, alias="observedGeneration")
    authorization_url: str | None = Field(
        None,
        alias="authorizationUrl",
        max_length=2048,
        description="Open this in a browser, signed in as the user who authorizes the app.",
    )
    user_id: str | None = Field(None, alias="userId", max_length=128)
    email: str | None = Field(None, max_length=256)
    scopes: list[str] = Field(
        default_factory=list,
        max_length=100,
        json_schema_extra={"items": {"type": "string", "maxLength": 200}, **STRING_SET},
    )
    authorized_time: datetime | None = Field(None, alias="authorizedTime")
    last_refresh_time: datetime | None = Field(
        None, alias="lastRefreshTime", description="The last refresh-token rotation."
    )
    access_token_expiry_time: datetime | None = Field(None, alias="accessTokenExpiryTime")
    reauthorized_for: str | None = Field(
        None,
        alias="reauthorizedFor",
        max_length=256,
        description="The meetingbot.dev/reauthorize annotation's value that the last "
        "re-authorization used: a new value lets the Ready grant be authorized once more.",
    )


class ZoomUserGrant(Model):
    spec: ZoomUserGrantSpec
    status: ZoomUserGrantStatus = Field(default_factory=ZoomUserGrantStatus)


# --- MeetingBot ----------------------------------------------------------------------------------

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
    passcode_secret_ref: SecretKeyRef | None = Field(None, alias="passcodeSecretRef")


class ObfSettings(Model):
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
    limit: int = Field(2, ge=0, le=10, description="New attempts after a transient failure.")


class Toleration(Model):
    key: str | None = Field(None, max_length=317)
    operator: str | None = Field(None, json_schema_extra={"enum": ["Exists", "Equal"]})
    value: str | None = Field(None, max_length=63)
    effect: str | None = Field(
        None, json_schema_extra={"enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"]}
    )
    toleration_seconds: int | None = Field(
        None, alias="tolerationSeconds", ge=0, le=MAX_DURATION_SECONDS
    )


# A resource.Quantity, as the API server parses it ("500m", "1.5Gi", 2).
QUANTITY = r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$"
Quantity = int | str
QUANTITY_MAP: dict[str, Any] = {
    "maxProperties": 8,
    "additionalProperties": {"x-kubernetes-int-or-string": True, "pattern": QUANTITY},
}


class Resources(Model):
    requests: dict[str, Quantity] | None = Field(None, json_schema_extra=QUANTITY_MAP)
    limits: dict[str, Quantity] | None = Field(None, json_schema_extra=QUANTITY_MAP)


class EnvVar(Model):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)
    value: str = Field("", max_length=4096)


# Annotation keys in Kubernetes' own domains configure the runtime (AppArmor, seccomp, ...):
# a bot's security settings are the operator's, so podTemplate may not set them.
RESERVED_KEY = r"^([^/]*[.])?(kubernetes[.]io|k8s[.]io)/"
# Environment a bot image must be able to trust: the runtime contract's variables (a bot's
# configuration and options, e.g. which Meeting SDK to load) and the loaders' own.
RESERVED_ENV = r"^(MEETINGBOT_.*|HOME|LD_.*|PYTHON.*|NODE_OPTIONS)$"
STRING_MAP: dict[str, Any] = {"additionalProperties": {"type": "string", "maxLength": 4096}}


class PodTemplate(Model):
    image: str | None = Field(
        None,
        max_length=512,
        pattern=r"^[^\s]+$",
        description="The bot image; the operator's default if unset. The ZoomAccount's "
        "botImages must allow it.",
    )
    resources: Resources | None = None
    node_selector: dict[str, str] | None = Field(
        None,
        alias="nodeSelector",
        max_length=32,
        description="Node labels the bot's pod must match (values at most 63 characters, as "
        "label values are).",
        json_schema_extra={**LABEL_MAP, **cel(KEYS_BOUNDED)},
    )
    tolerations: list[Toleration] | None = Field(None, max_length=32)
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
    priority_class_name: str | None = Field(
        None,
        alias="priorityClassName",
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
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
    another account's → obf (with a grant), as Zoom's 2026 policy asks (ZOOM.md §1)."""

    ZAK = "zak"
    NONE = "none"
    OBF = "obf"
    AUTO = "auto"


class MeetingBotSpec(Model):
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
            ("self.auth == oldSelf.auth", "auth is immutable", ".auth"),
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
    meeting: Meeting
    display_name: str = Field(
        alias="displayName", min_length=1, max_length=64, pattern=DISPLAY_NAME
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
    obf: ObfSettings | None = None
    join_at: datetime | None = Field(
        None, alias="joinAt", description="When to join (RFC 3339); now if unset."
    )
    leave: LeaveRules = Field(default_factory=LeaveRules, json_schema_extra=APPLY_DEFAULTS)
    retry: RetryPolicy = Field(default_factory=RetryPolicy, json_schema_extra=APPLY_DEFAULTS)
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
    pod_template: PodTemplate = Field(default_factory=PodTemplate, alias="podTemplate")


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

    attempt: int = Field(ge=1)
    reason: str = Field(max_length=64)
    message: str = Field("", max_length=1024)


class MeetingBotStatus(Model):
    phase: Phase | None = None
    reason: str | None = Field(None, max_length=64)
    message: str | None = Field(None, max_length=32768)
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=CONDITIONS_LIST)
    observed_generation: int | None = Field(None, alias="observedGeneration")
    attempts: int = 0
    auth: AuthMode | None = Field(
        None, description="The mode the bot joins with (what auth: auto resolved to)."
    )
    zoom_user: str | None = Field(None, alias="zoomUser", max_length=128)
    zak_expires_at: datetime | None = Field(None, alias="zakExpiresAt")
    pod_name: str | None = Field(None, alias="podName", max_length=253)
    started_at: datetime | None = Field(
        None, alias="startedAt", description="This attempt's start."
    )
    joined_at: datetime | None = Field(None, alias="joinedAt")
    left_at: datetime | None = Field(None, alias="leftAt")
    next_attempt_at: datetime | None = Field(None, alias="nextAttemptAt")
    start_failures: int = Field(
        0,
        alias="startFailures",
        description="Consecutive attempts that could not start (sets the backoff; kept here so "
        "a restart does not reset it).",
    )
    stop: StopRequest | None = None
    completion_time: datetime | None = Field(None, alias="completionTime")


class MeetingBot(Model):
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


def first_error(error: ValidationError) -> str:
    """The first problem of a validation error, as `field.path: message` (for status, answers)."""
    first = error.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
