"""MeetingBots from a backend: create one (idempotent on a name the caller chooses), wait for
a set of phases (a watch that resumes where it left off, across dropped connections and API
server restarts; never polling), read its outcome, cancel it. On the official `kubernetes`
package, typed with meetingbot-api's models; in a pod it uses its service account, elsewhere
the kubeconfig.

    bots = MeetingBots.from_environment(namespace="notetakers")
    bots.create("standup-2026-12-03", MeetingBotSpec.model_validate({...}))
    bot = bots.wait("standup-2026-12-03", timeout=3 * 3600)
    outcome = bots.outcome("standup-2026-12-03")
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from meetingbot_api import (
    GROUP,
    TERMINAL_PHASES,
    VERSION,
    ArtifactsStatus,
    MeetingBot,
    MeetingBotSpec,
    Phase,
    WebhookStatus,
)
from meetingbot_client.watching import REQUEST_TIMEOUT, Gone, StillWaiting, watch_until
from meetingbot_contract.reasons import is_transient

log = logging.getLogger(__name__)

PLURAL = "meetingbots"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class SpecConflict(Exception):
    """A MeetingBot of that name exists with another spec: the name is someone else's bot."""


class BotDeleted(Exception):
    """The MeetingBot was deleted while it was waited for."""


class WaitTimeout(TimeoutError):
    """The bot did not reach any of the phases in time; `bot` is how it was last seen."""

    def __init__(self, message: str, bot: MeetingBot | None) -> None:
        super().__init__(message)
        self.bot = bot


@dataclass(frozen=True)
class Outcome:
    """Where a bot stands, read from its status: finished or not, and how."""

    name: str
    phase: Phase | None
    reason: str | None
    message: str | None
    finished: bool
    succeeded: bool
    transient: bool | None  # a failure another attempt might not repeat (None: not failed)
    attempts: int
    started_at: datetime | None
    joined_at: datetime | None
    left_at: datetime | None
    completion_time: datetime | None
    artifacts: ArtifactsStatus | None
    webhook: WebhookStatus | None

    @classmethod
    def of(cls, bot: MeetingBot) -> Outcome:
        status = bot.status
        failed = status.phase == Phase.FAILED
        return cls(
            name=bot.metadata.name,
            phase=status.phase,
            reason=status.reason,
            message=status.message,
            finished=status.phase in TERMINAL_PHASES,
            succeeded=status.phase == Phase.SUCCEEDED,
            transient=is_transient(status.reason or "") if failed else None,
            attempts=status.attempts,
            started_at=status.started_at,
            joined_at=status.joined_at,
            left_at=status.left_at,
            completion_time=status.completion_time,
            artifacts=status.artifacts,
            webhook=status.webhook,
        )


class MeetingBots:
    """The MeetingBots of one namespace."""

    def __init__(self, namespace: str, api: client.ApiClient | None = None) -> None:
        self.namespace = namespace
        self.api = api or client.ApiClient()
        self._custom = client.CustomObjectsApi(self.api)

    @classmethod
    def from_environment(
        cls, namespace: str | None = None, context: str | None = None
    ) -> MeetingBots:
        """In a pod: its service account (and its namespace); elsewhere: the kubeconfig
        ($KUBECONFIG or ~/.kube/config), its current context or `context`, and that
        context's namespace."""
        try:
            config.load_incluster_config()
            found = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        except (ConfigException, OSError):
            config.load_kube_config(context=context)
            _, current = config.list_kube_config_contexts()
            if context is not None:
                contexts, _ = config.list_kube_config_contexts()
                current = next(c for c in contexts if c["name"] == context)
            found = current.get("context", {}).get("namespace") or "default"
        return cls(namespace or found)

    # --- verbs -------------------------------------------------------------------------------

    def create(
        self,
        name: str,
        spec: MeetingBotSpec,
        *,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> MeetingBot:
        """Create bot `name`; if it exists already with the same spec, that one (a retry of
        the same request creates nothing twice); with another spec, SpecConflict."""
        metadata: dict[str, Any] = {"name": name}
        if labels:
            metadata["labels"] = labels
        if annotations:
            metadata["annotations"] = annotations
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MeetingBot",
            "metadata": metadata,
            "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        }
        try:
            created = self._custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, body, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as error:
            if error.status != 409:
                raise
            existing = self.get(name)
            if _comparable(existing.spec) != _comparable(spec):
                raise SpecConflict(
                    f"MeetingBot {self.namespace}/{name} exists with another spec"
                ) from None
            return existing
        return MeetingBot.model_validate(created)

    def get(self, name: str) -> MeetingBot:
        body = self._custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, _request_timeout=REQUEST_TIMEOUT
        )
        return MeetingBot.model_validate(body)

    def list(self, label_selector: str | None = None) -> list[MeetingBot]:
        found = self._custom.list_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            label_selector=label_selector or "",
            _request_timeout=REQUEST_TIMEOUT,
        )
        return [MeetingBot.model_validate(item) for item in cast(dict[str, Any], found)["items"]]

    def outcome(self, name: str) -> Outcome:
        return Outcome.of(self.get(name))

    def cancel(self, name: str) -> MeetingBot:
        """Stop the bot (spec.cancel): it leaves, or never starts, and finishes Succeeded
        with reason Canceled; its status, artifacts and webhook notifications stay."""
        patched = self._custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            name,
            {"spec": {"cancel": True}},
            _request_timeout=REQUEST_TIMEOUT,
        )
        return MeetingBot.model_validate(patched)

    def delete(self, name: str) -> None:
        try:
            self._custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as error:
            if error.status != 404:
                raise

    def wait(
        self,
        name: str,
        phases: Iterable[Phase | str] = TERMINAL_PHASES,
        timeout: float = 3600.0,
    ) -> MeetingBot:
        """The bot once its phase is one of `phases` (default: Succeeded or Failed): a watch
        that resumes from the version last seen across dropped connections and API server
        restarts (watching.py). WaitTimeout after `timeout` seconds, BotDeleted if it goes."""
        wanted = {Phase(p) for p in phases}

        def reached(body: dict[str, Any]) -> bool:
            return MeetingBot.model_validate(body).status.phase in wanted

        try:
            body = watch_until(self._custom, self.namespace, PLURAL, name, reached, timeout)
        except Gone:
            raise BotDeleted(f"MeetingBot {self.namespace}/{name} was deleted") from None
        except StillWaiting as waited:
            last = MeetingBot.model_validate(waited.last) if waited.last else None
            raise WaitTimeout(
                f"MeetingBot {self.namespace}/{name} did not reach {sorted(wanted)} in "
                f"{timeout:.0f} s",
                last,
            ) from None
        return MeetingBot.model_validate(body)


def _comparable(spec: MeetingBotSpec) -> dict[str, Any]:
    """The spec with the API server's defaults filled in, as the server stores it."""
    return MeetingBotSpec.model_validate(
        spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    ).model_dump(mode="json", by_alias=True, exclude_none=True)
