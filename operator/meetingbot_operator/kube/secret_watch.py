"""Watches the opted-in Secrets (label `meetingbot.dev/secret-for`) and tells the accounts.

A watch of its own (kube/watch.py) rather than a kopf handler: kopf's watches carry no label
selector, so it would see every Secret in the watched namespaces, every bot's join Secret
included (a burst of 1000 bots is 1000 events and 1000 kopf workers for nothing). A Secret that
loses its label arrives as DELETED, so a withdrawn opt-in is noticed as surely as a deleted one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from meetingbot_operator.kube.secrets import USE_LABEL
from meetingbot_operator.kube.verbs import Kube
from meetingbot_operator.kube.watch import ObjectWatch, core
from meetingbot_operator.settings import Settings

Changed = Callable[[str, str], Awaitable[None]]


def secret_watch(
    kube: Kube, settings: Settings, on_change: Changed, owns: Callable[[str], bool]
) -> ObjectWatch:
    """At start the accounts verify on their own events (nothing has changed yet), so the first
    list is not sent; after that, whatever a relist shows counts as changed. `owns`: the
    namespaces of this replica's shards (kube/watch.py)."""

    async def seen(_: str | None, secret: dict[str, Any]) -> None:
        await on_change(secret["metadata"]["namespace"], secret["metadata"]["name"])

    return ObjectWatch(
        kube, settings, "secrets", core("secrets"), seen,
        selector=USE_LABEL, first_list=False, owns=owns,
    )  # fmt: skip
