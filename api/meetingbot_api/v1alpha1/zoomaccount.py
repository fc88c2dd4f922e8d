"""ZoomAccount: a Zoom account's credentials (two Secrets), its cloud and plan, and the
service users bots join as; its status is readiness and the pool."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import ConfigDict, Field

from meetingbot_api.v1alpha1.common import (
    APPLY_DEFAULTS,
    CONDITIONS_LIST,
    STRING_SET,
    Condition,
    LocalObjectRef,
    Model,
    ObjectMeta,
    SecretKeyRef,
    cel,
)

# A ZAK's lifetime as `GET /users/{id}/token?type=zak&ttl=` accepts it (the CRD's bounds too).
ZAK_MIN_TTL_SECONDS = 60
ZAK_MAX_TTL_SECONDS = 365 * 24 * 3600


class Cloud(StrEnum):
    """Where Zoom lives: commercial, or Zoom for Government."""

    COMMERCIAL = "commercial"
    GOVERNMENT = "government"


class RatePlan(StrEnum):
    """The account's plan, as far as rate limits go (the ZoomAccount's spec.plan)."""

    PRO = "pro"
    BUSINESS_PLUS = "business"


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
    """How ZAKs are minted for the service users: their lifetime and whether bots share them."""

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
    """How bots spread over the service users, and whether the operator may create more."""

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


class PictureSource(Model):
    """Where the service users' profile picture is: a key of a ConfigMap (binaryData) or of a
    Secret, either labelled meetingbot.dev/secret-for: profile-picture (whoever manages it opts
    in: naming an object gains nothing without its label). A JPEG, PNG or GIF of at most 2 MB,
    as Zoom takes it."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.configMapRef) != has(self.secretRef)",
                "set exactly one of configMapRef or secretRef",
            )
        )
    )

    config_map_ref: SecretKeyRef | None = Field(
        None, alias="configMapRef", description="A ConfigMap's key (binaryData or data)."
    )
    secret_ref: SecretKeyRef | None = Field(None, alias="secretRef", description="A Secret's key.")


class ZoomAccountSpec(Model):
    """Where the account's credentials are, which Zoom it talks to, and its service users."""

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
    rate_limits: RateLimits | None = Field(
        None,
        alias="rateLimits",
        description="Higher per-second limits than the plan's, for accounts Zoom has raised.",
    )
    users: list[str] = Field(
        min_length=1,
        max_length=100,
        description="Service users (ids or emails) a ZAK may be minted for.",
        json_schema_extra={
            "items": {"type": "string", "minLength": 1, "maxLength": 128},
            **STRING_SET,
        },
    )
    zak: ZakSettings = Field(
        default_factory=ZakSettings,
        description="ZAK lifetime and reuse.",
        json_schema_extra=APPLY_DEFAULTS,
    )
    pool: PoolSettings = Field(
        default_factory=PoolSettings,
        description="Bots per service user, and provisioning of new users.",
        json_schema_extra=APPLY_DEFAULTS,
    )
    picture: PictureSource | None = Field(
        None,
        description="The service users' profile picture (what others see beside the bot's "
        "name): uploaded to every service user, created ones included "
        "(POST /users/{userId}/picture), again when it changes. Unset: left as it is.",
    )
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
    """One service user: whether ZAKs can be minted for it, and how many bots it serves."""

    user: str = Field(max_length=128, description="The user, as spec.users names it.")
    state: str = Field(
        description="Active, or Unavailable (Zoom refused the user; checked again with backoff).",
        json_schema_extra={"enum": ["Active", "Unavailable"]},
    )
    active_bots: int = Field(
        0, alias="activeBots", ge=0, description="Running bots joined as this user."
    )
    reason: str | None = Field(
        None, max_length=64, description="Why the user is Unavailable (e.g. ZoomUserNotFound)."
    )
    message: str | None = Field(None, max_length=1024, description="The same, in words.")
    since: datetime | None = Field(None, description="Unavailable since.")
    picture: str | None = Field(
        None,
        max_length=80,
        description="The picture the user has from spec.picture (sha256:<hex> of its bytes); "
        "unset until it is uploaded.",
    )


class ZoomAccountStatus(Model):
    """Whether the credentials work (Ready), the scopes Zoom granted, and the pool."""

    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready: the credentials were verified with a real token request.",
        json_schema_extra=CONDITIONS_LIST,
    )
    observed_generation: int | None = Field(
        None, alias="observedGeneration", description="The generation last verified."
    )
    scopes: list[str] = Field(
        default_factory=list,
        max_length=200,
        description="The scopes of the app's token.",
        json_schema_extra={"items": {"type": "string", "maxLength": 200}, **STRING_SET},
    )
    last_verified_time: datetime | None = Field(
        None, alias="lastVerifiedTime", description="The last token request that verified them."
    )
    users: list[ServiceUserStatus] = Field(
        default_factory=list,
        max_length=100,
        description="One entry per service user: Active or Unavailable (with Zoom's reason), "
        "and the running bots it serves.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["user"]},
    )
    active_users: int | None = Field(
        None, alias="activeUsers", ge=0, description="Service users that are Active."
    )
    picture_error: str | None = Field(
        None,
        alias="pictureError",
        max_length=1024,
        description="Why spec.picture could not be read or uploaded (retried at each check).",
    )
    provisioning_error: str | None = Field(
        None,
        alias="provisioningError",
        max_length=1024,
        description="Why the last attempt to create a service user failed (empty once one "
        "succeeds).",
    )
    active_bots: int | None = Field(
        None, alias="activeBots", ge=0, description="Running bots, all users together."
    )


class ZoomAccount(Model):
    """A Zoom account's credentials and the service users bots join as."""

    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ZoomAccountSpec
    status: ZoomAccountStatus = Field(default_factory=ZoomAccountStatus)
