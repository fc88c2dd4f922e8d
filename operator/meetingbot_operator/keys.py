"""The release's shared key (the report key) and what is derived from it: each bot attempt's
report token, and keys of their own for other uses (the grant links' signatures, the Lease's
signed endpoints). Replicas of one release share it, so a token one signs another accepts.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

from pydantic import SecretStr

from meetingbot_operator.kube.verbs import Kube
from meetingbot_operator.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedKey:
    """The report key as one process loaded it (value None: a random key for this process);
    the election hands it to the operator it starts, so the key's Secret is read once."""

    value: SecretStr | None


async def load_key(settings: Settings, kube: Kube) -> SecretStr | None:
    """The report key: given outright, or kept in a Secret of the operator's namespace (made
    on the first start), or None (a random key for this process only)."""
    if settings.report_key is not None and settings.report_key.get_secret_value():
        return settings.report_key
    if settings.report_key_secret and settings.pod_namespace:
        value = await kube.ensure_secret_value(
            settings.pod_namespace,
            settings.report_key_secret,
            "reportKey",
            lambda: secrets.token_urlsafe(36),
        )
        return SecretStr(value)
    return None


class ReportTokens:
    def __init__(self, key: SecretStr | None) -> None:
        if key is None:
            log.warning(
                "no report key (MEETINGBOT_REPORT_KEY or MEETINGBOT_REPORT_KEY_SECRET): using a "
                "random key; bots started before a restart will not be able to report (their "
                "pods' exit results still count)"
            )
            key = SecretStr(secrets.token_urlsafe(32))
        self._key = key.get_secret_value().encode()

    def derived_key(self, purpose: str) -> bytes:
        """A key of its own for another use of the release's key (never a report token)."""
        return hmac.new(self._key, f"meetingbot derived key:{purpose}".encode(), "sha256").digest()

    def token(self, namespace: str, name: str, uid: str, attempt: int) -> SecretStr:
        message = f"{namespace}/{name}/{uid}/{attempt}".encode()
        return SecretStr(hmac.new(self._key, message, hashlib.sha256).hexdigest())

    def attempt_of(
        self, presented: str, namespace: str, name: str, uid: str, last: int
    ) -> int | None:
        """Which attempt (1..last) the presented token belongs to, or None. Every candidate
        is compared, so the time taken does not say which one matched."""
        found = None
        for attempt in range(1, max(last, 1) + 1):
            expected = self.token(namespace, name, uid, attempt).get_secret_value()
            if hmac.compare_digest(presented.encode(), expected.encode()):
                found = attempt
        return found
