"""Where a ZoomAccount's credentials come from and where they may go: its two Secrets (opted
in with `meetingbot.dev/secret-for: zoom-credentials`), its endpoints (Zoom's own, or those
the operator's settings allow), and the Zoom client built from them.

Every refusal is an `AccountProblem` with the reason the account's status shows; nothing a
remote endpoint answers is copied into it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from meetingbot_api import ZoomAccountSpec
from meetingbot_contract.reasons import Reason
from meetingbot_operator import outbound
from meetingbot_operator.kube.client import InvalidName
from meetingbot_operator.kube.secrets import SecretProblem, SecretUse, read_opted_in
from meetingbot_operator.kube.verbs import Kube
from meetingbot_operator.settings import Settings, endpoint_allowed
from meetingbot_operator.zoom import ApiCredentials, Category, Endpoints, SdkCredentials, ZoomClient

SDK_KEYS = ("sdkKey", "sdkSecret")
API_KEYS = ("accountId", "clientId", "clientSecret")
# Optional beside them: the app's secret token, which Zoom signs its webhooks to the app with
# (a MeetingBotSchedule's meeting webhooks are verified with it).
WEBHOOK_TOKEN_KEY = "webhookSecretToken"  # noqa: S105 - the key's name, not a token
# A ZoomClient's observer: (category, seconds, HTTP status) of each call, for the metrics.
CallObserver = Callable[[str, float, int], None]


class AccountProblem(Exception):
    """Why the account is not Ready, said as its reason and the operator's own words."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Credentials:
    sdk: SdkCredentials
    api: ApiCredentials
    endpoints: Endpoints
    webhook_secret_token: SecretStr | None
    # What the client was built from (no secret in it): an unchanged fingerprint keeps the
    # client, with its cached token and rate-limit state.
    fingerprint: str


def endpoints(spec: ZoomAccountSpec, settings: Settings) -> Endpoints:
    """The account's base URLs; checked before any credential is even read."""
    if spec.endpoints is None:
        return Endpoints.for_cloud(spec.cloud)
    for url in (spec.endpoints.oauth_url, spec.endpoints.api_url):
        if not endpoint_allowed(url, settings.allowed_endpoints):
            raise AccountProblem(
                Reason.ZOOM_ENDPOINT_NOT_ALLOWED,
                f"endpoint {url!r} is not one this operator allows (its "
                "MEETINGBOT_ALLOWED_ENDPOINTS setting); no credentials were sent",
            )
    return Endpoints(oauth_url=spec.endpoints.oauth_url, api_url=spec.endpoints.api_url)


async def load(
    kube: Kube, settings: Settings, namespace: str, spec: ZoomAccountSpec
) -> Credentials:
    where = endpoints(spec, settings)
    sdk = await _secret(kube, namespace, spec.sdk_credentials_secret_ref.name, SDK_KEYS)
    api = await _secret(kube, namespace, spec.api_credentials_secret_ref.name, API_KEYS)
    token = api.pop(WEBHOOK_TOKEN_KEY, "")
    limits = spec.rate_limits.model_dump_json() if spec.rate_limits else ""
    material = "\0".join(
        [*sdk.values(), *api.values(), where.oauth_url, where.api_url, spec.plan, limits]
    )
    return Credentials(
        sdk=SdkCredentials(sdk_key=sdk["sdkKey"], sdk_secret=SecretStr(sdk["sdkSecret"])),
        api=ApiCredentials(
            account_id=api["accountId"],
            client_id=api["clientId"],
            client_secret=SecretStr(api["clientSecret"]),
        ),
        endpoints=where,
        webhook_secret_token=SecretStr(token) if token else None,
        fingerprint=hashlib.sha256(material.encode()).hexdigest(),
    )


def client(
    credentials: Credentials,
    spec: ZoomAccountSpec,
    settings: Settings,
    observer: CallObserver | None,
) -> ZoomClient:
    """The account's one Zoom client: its token cache, pacing and outage breaker are shared by
    every bot of the account."""
    return ZoomClient(
        credentials.api,
        credentials.endpoints,
        plan=spec.plan,
        http=outbound.client(timeout=httpx.Timeout(settings.zoom_timeout_seconds, connect=5.0)),
        max_attempts=settings.zoom_max_attempts,
        observer=observer,
        rate_limits=(
            {Category.LIGHT: spec.rate_limits.light_per_second}
            if spec.rate_limits and spec.rate_limits.light_per_second
            else None
        ),
    )


async def _secret(kube: Kube, namespace: str, name: str, keys: tuple[str, ...]) -> dict[str, str]:
    try:
        data = await read_opted_in(kube, namespace, name, SecretUse.ZOOM_CREDENTIALS)
    except InvalidName as error:
        raise AccountProblem(Reason.SECRET_NOT_FOUND, f"Secret reference: {error}") from None
    except SecretProblem as problem:
        raise AccountProblem(problem.reason, str(problem)) from None
    missing = [k for k in keys if not data.get(k)]
    if missing:
        raise AccountProblem(
            Reason.SECRET_NOT_FOUND, f"Secret {name!r} lacks keys: {', '.join(missing)}"
        )
    return {k: data[k] for k in (*keys, WEBHOOK_TOKEN_KEY) if k in data}
