"""The operator's settings: one pydantic settings object, environment variables prefixed
MEETINGBOT_ (e.g. MEETINGBOT_BOT_IMAGE, MEETINGBOT_NAMESPACES=team-a,team-b)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEETINGBOT_", extra="ignore")

    # Scope: empty means every namespace (cluster-wide RBAC needed).
    namespaces: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # The report endpoint: where it listens, and the URL bot pods use to reach it.
    report_host: str = "0.0.0.0"  # noqa: S104 - bots in other pods must reach it
    report_port: int = 8081
    report_url: str = "http://meetingbot-operator.meetingbot-system.svc:8081"
    # Signs per-bot report tokens; must be stable across restarts (the chart keeps it in a
    # Secret). When unset a random key is used and running bots cannot report after a restart.
    report_key: SecretStr | None = None

    metrics_port: int = 9090
    health_port: int = 8080

    # Bot pods.
    bot_image: str = "ghcr.io/meetingbot-dev/meetingbot-bot:0.1.0"
    bot_image_pull_policy: str = "IfNotPresent"
    bot_cpu_request: str = "500m"
    bot_memory_request: str = "768Mi"
    bot_cpu_limit: str = "2"
    bot_memory_limit: str = "1536Mi"
    bot_grace_seconds: int = Field(60, ge=5, description="Time a bot has to leave on SIGTERM.")
    bot_run_as_user: int = 10001

    # Timing.
    start_lead_seconds: int = Field(60, ge=0, description="Start this long before joinAt.")
    retry_base_seconds: float = Field(5.0, gt=0)
    retry_max_seconds: float = Field(300.0, gt=0)
    account_recheck_seconds: float = Field(600.0, gt=0)
    sweep_seconds: float = Field(30.0, gt=0)
    # A bot still running this long past its maxDuration is stopped by the operator.
    max_duration_grace_seconds: int = 120

    zoom_timeout_seconds: float = 10.0
    zoom_max_attempts: int = 6

    log_format: str = Field("json", pattern="^(json|text)$")
    log_level: str = "INFO"

    @field_validator("namespaces", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        # NoDecode above: the variable is a plain comma-separated list, not JSON.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
