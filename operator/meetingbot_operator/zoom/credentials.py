"""Credentials as the Zoom layer holds them: secrets wrapped so no repr or log can show them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, SecretStr


class ApiCredentials(BaseModel):
    """A Server-to-Server OAuth app: what `POST /oauth/token` needs."""

    model_config = ConfigDict(frozen=True)

    account_id: str
    client_id: str
    client_secret: SecretStr


class SdkCredentials(BaseModel):
    """A Meeting SDK app: the key is public, the secret signs join signatures."""

    model_config = ConfigDict(frozen=True)

    sdk_key: str
    sdk_secret: SecretStr


class AccessToken(BaseModel):
    model_config = ConfigDict(frozen=True)

    value: SecretStr
    expires_at: float  # time.monotonic() deadline
    scopes: frozenset[str]


class Zak(BaseModel):
    """A freshly minted Zoom Access Key for one user."""

    model_config = ConfigDict(frozen=True)

    token: SecretStr
    user_id: str
    expires_at: datetime
