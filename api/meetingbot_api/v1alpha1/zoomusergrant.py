"""ZoomUserGrant: one Zoom user's authorization of a user-managed OAuth app, for OBF joins;
the operator runs the authorization and keeps its tokens fresh."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, Field

from meetingbot_api.v1alpha1.common import (
    CONDITIONS_LIST,
    KEYS_BOUNDED,
    LABEL_MAP,
    STRING_SET,
    Condition,
    LocalObjectRef,
    Model,
    ObjectMeta,
    cel,
)


class LabelSelector(Model):
    """Labels an object must carry, all of them (a metav1.LabelSelector's matchLabels)."""

    match_labels: dict[str, str] = Field(
        alias="matchLabels",
        min_length=1,
        description="Label keys and values a MeetingBot must carry, every one of them.",
        max_length=16,
        json_schema_extra={**LABEL_MAP, **cel(KEYS_BOUNDED)},
    )


class ZoomUserGrantSpec(Model):
    """Whose authorization, of which app, and which bots may use it."""

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
        "(labelled meetingbot.dev/secret-for: zoom-credentials). Its redirect URL must be the "
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
    """Whether the grant can mint OBF tokens (Ready), and whose authorization it holds."""

    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready: the user authorized the app and its token was refreshed in time.",
        json_schema_extra=CONDITIONS_LIST,
    )
    observed_generation: int | None = Field(
        None, alias="observedGeneration", description="The generation last acted on."
    )
    authorization_url: str | None = Field(
        None,
        alias="authorizationUrl",
        max_length=2048,
        description="Open this in a browser, signed in as the user who authorizes the app.",
    )
    user_id: str | None = Field(
        None, alias="userId", max_length=128, description="The Zoom user id who authorized."
    )
    email: str | None = Field(None, max_length=256, description="Their email, as Zoom says it.")
    scopes: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="The scopes the user granted.",
        json_schema_extra={"items": {"type": "string", "maxLength": 200}, **STRING_SET},
    )
    authorized_time: datetime | None = Field(
        None, alias="authorizedTime", description="When the user authorized the app."
    )
    last_refresh_time: datetime | None = Field(
        None, alias="lastRefreshTime", description="The last refresh-token rotation."
    )
    access_token_expiry_time: datetime | None = Field(
        None,
        alias="accessTokenExpiryTime",
        description="When the current access token expires (it is refreshed before).",
    )
    reauthorized_for: str | None = Field(
        None,
        alias="reauthorizedFor",
        max_length=256,
        description="The meetingbot.dev/reauthorize annotation's value that the last "
        "re-authorization used: a new value lets the Ready grant be authorized once more.",
    )


class ZoomUserGrant(Model):
    """A Zoom user's authorization of a user-managed OAuth app, for OBF joins."""

    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ZoomUserGrantSpec
    status: ZoomUserGrantStatus = Field(default_factory=ZoomUserGrantStatus)
