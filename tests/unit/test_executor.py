"""The attempt executor without a cluster (fakes of the Kubernetes verbs and the Zoom client):
what a start spends with ZAK reuse on and off, and what it reports when Zoom refuses the
service user rather than the bot."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic import SecretStr

from meetingbot_api import ZoomAccountSpec
from meetingbot_contract import AuthMode
from meetingbot_contract.reasons import Reason
from meetingbot_operator.identities.claims import ZOOM_USER_ANNOTATION
from meetingbot_operator.identities.service import Identities
from meetingbot_operator.keys import ReportTokens
from meetingbot_operator.meetingbot.decisions import Action, ActionKind
from meetingbot_operator.meetingbot.executor import AttemptExecutor
from meetingbot_operator.meetingbot.observed import AttemptRefused, AttemptStarted, Meta, PodFound
from meetingbot_operator.settings import Settings
from meetingbot_operator.zoom import SdkCredentials, ZoomError
from meetingbot_operator.zoomaccount.state import ReadyAccount
from tests.support.fakes import FakeKube, FakeZoom
from tests.support.specs import meeting_bot

NAMESPACE = "team-a"
ACCOUNT = (NAMESPACE, "main")


class Accounts:
    """What the executor asks of the ZoomAccount service."""

    def __init__(self, zoom: FakeZoom, reuse: bool) -> None:
        spec = ZoomAccountSpec.model_validate(
            {
                "sdkCredentialsSecretRef": {"name": "sdk"},
                "apiCredentialsSecretRef": {"name": "api"},
                "users": ["u1", "u2"],
                "zak": {"reuse": reuse},
            }
        )
        sdk = SdkCredentials(
            sdk_key="key", sdk_secret=SecretStr("sdk-secret-of-thirty-two-characters")
        )
        self.account = ReadyAccount(ACCOUNT, spec, zoom, sdk)  # type: ignore[arg-type]
        self.wanted = 0

    def ready(self, namespace: str, name: str) -> ReadyAccount | None:
        return self.account

    def want_more_users(self, namespace: str, name: str) -> None:
        self.wanted += 1


def _executor(kube: FakeKube, accounts: Accounts, identities: Identities) -> AttemptExecutor:
    """No grant service: these bots join with ZAKs."""
    return AttemptExecutor(
        kube,  # type: ignore[arg-type]
        accounts,  # type: ignore[arg-type]
        identities,
        None,  # type: ignore[arg-type]
        Settings(),
        ReportTokens(SecretStr("report-key")),
        None,  # type: ignore[arg-type]
    )


async def _start_many(executor: AttemptExecutor, count: int, user: str) -> list[Any]:
    bot = meeting_bot()
    action = Action(ActionKind.START_ATTEMPT, attempt=1, user=user, auth=AuthMode.ZAK)
    return await asyncio.gather(
        *(
            executor.start(bot, Meta(f"bot{i}", NAMESPACE, f"uid-{i}", 1), action)
            for i in range(count)
        )
    )


async def test_with_reuse_a_burst_on_one_user_mints_once_and_skips_the_dry_runs() -> None:
    kube, zoom = FakeKube(), FakeZoom()
    executor = _executor(kube, Accounts(zoom, reuse=True), Identities())
    first = await _start_many(executor, 1, "u1")  # mints: its pod is admitted first
    rest = await _start_many(executor, 19, "u1")
    results = [result for result, _ in first + rest]
    assert all(isinstance(r, AttemptStarted) and r.user == "u1" for r in results)
    assert zoom.calls["mint_zak"] == 1
    assert kube.calls["create_pod_dry_run"] == 1  # a reused ZAK spends nothing to guard
    assert kube.calls["create_pod"] == 20 and kube.calls["upsert_secret"] == 20


async def test_without_reuse_each_start_mints_its_own() -> None:
    kube, zoom = FakeKube(), FakeZoom()
    executor = _executor(kube, Accounts(zoom, reuse=False), Identities())
    await _start_many(executor, 5, "u1")
    assert zoom.calls["mint_zak"] == 5 and kube.calls["create_pod_dry_run"] == 5


async def test_a_user_zoom_refuses_is_reported_for_the_decisions_to_act_on() -> None:
    """The executor does not mark the user or pick another: it says whom Zoom refused, and
    the next pass decides (MarkUserUnavailable, then another user)."""
    kube, zoom = FakeKube(), FakeZoom()
    zoom.refused_users["u1"] = ZoomError(Reason.ZOOM_USER_INACTIVE, "HTTP 400, Zoom code 1120")
    identities = Identities()
    identities.pool(ACCOUNT).set_users(("u1", "u2"))
    executor = _executor(kube, Accounts(zoom, reuse=True), identities)
    ((result, created),) = await _start_many(executor, 1, "u1")
    assert isinstance(result, AttemptRefused) and not created
    assert (result.reason, result.another_user, result.user) == (
        Reason.ZOOM_USER_INACTIVE,
        True,
        "u1",
    )
    assert identities.pool(ACCOUNT).active() == ("u1", "u2")  # untouched until decided
    assert kube.calls["create_pod"] == 0 and kube.calls["upsert_secret"] == 0


async def test_identity_actions_reach_their_owners() -> None:
    zoom = FakeZoom()
    accounts = Accounts(zoom, reuse=True)
    identities = Identities()
    identities.pool(ACCOUNT).set_users(("u1", "u2"))
    executor = _executor(FakeKube(), accounts, identities)
    meta, bot = Meta("bot", NAMESPACE, "uid", 1), meeting_bot()
    await _start_many(executor, 1, "u1")
    zak = identities.zaks.reusable(ACCOUNT, "u1", margin=timedelta(0))
    assert zak is not None
    forget = Action(ActionKind.FORGET_ZAK, user="u1", expires_at=zak.expires_at)
    executor.identity_action(meta, bot, forget)
    assert identities.zaks.reusable(ACCOUNT, "u1", margin=timedelta(0)) is None
    mark = Action(
        ActionKind.MARK_USER_UNAVAILABLE,
        user="u2",
        reason=Reason.ZOOM_USER_NOT_FOUND,
        message="1001",
    )
    executor.identity_action(meta, bot, mark)
    assert identities.pool(ACCOUNT).active() == ("u1",)
    executor.identity_action(meta, bot, Action(ActionKind.PROVISION_USER))
    assert accounts.wanted == 1


async def test_a_start_given_another_user_than_its_attempts_pod_keeps_the_secret() -> None:
    """A leader made attempt 1's Secret and pod for u1 and stopped before any status said so;
    the next leader, its pod watch not listed yet, starts attempt 1 with u2. The Secret the
    pod joins with stays u1's and the pod is reported for the next pass (which adopts it); an
    adopted start, and a start of the next attempt, write as usual."""
    kube, zoom = FakeKube(), FakeZoom()
    meta, bot = Meta("bot", NAMESPACE, "uid", 1), meeting_bot()
    secret = (NAMESPACE, "bot-join")

    def start(user: str, attempt: int = 1, adopted: bool = False) -> Action:
        return Action(
            ActionKind.START_ATTEMPT, attempt=attempt, user=user, auth=AuthMode.ZAK, adopted=adopted
        )

    first = _executor(kube, Accounts(zoom, reuse=True), Identities())
    (result, created) = await first.start(bot, meta, start("u1"))
    assert isinstance(result, AttemptStarted) and created
    written = dict(kube.owned[secret])
    assert "u1" in str(written)

    second = _executor(kube, Accounts(zoom, reuse=True), Identities())
    (found, created) = await second.start(bot, meta, start("u2"))
    assert isinstance(found, PodFound) and not created
    assert found.attempt == 1 and found.body["metadata"]["name"] == "bot-1"
    assert found.body["metadata"]["annotations"][ZOOM_USER_ANNOTATION] == "u1"
    assert kube.owned[secret] == written  # the pod's user's Secret, untouched
    assert kube.calls["create_pod"] == 1

    (adopted, created) = await second.start(bot, meta, start("u1", adopted=True))
    assert isinstance(adopted, AttemptStarted) and adopted.user == "u1" and not created
    (next_attempt, created) = await second.start(bot, meta, start("u2", attempt=2))
    assert isinstance(next_attempt, AttemptStarted) and next_attempt.user == "u2" and created
    assert "u2" in str(kube.owned[secret])
