"""Waiting for one object to reach a state: a watch from the version last seen, opened again
where it left off when the server ends it, when a connection drops or when the API server
restarts (with backoff and jitter), and from a fresh read when that version has expired (410).
Never a polling loop: a change is seen when it happens."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from meetingbot_api import GROUP, VERSION

log = logging.getLogger(__name__)

# Each request's own limits (connect, read).
REQUEST_TIMEOUT = (10.0, 60.0)
WATCH_SECONDS = 50  # the server ends each watch after this; it is opened again from its place
BACKOFF_MAX_SECONDS = 10.0
# What a dropped connection or an API server restart raises from the kubernetes package.
CONNECTION_ERRORS = (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


class Gone(Exception):
    """The object was deleted (or never existed)."""


class StillWaiting(TimeoutError):
    """Time ran out; `last` is the object as last seen (None: never read)."""

    def __init__(self, last: dict[str, Any] | None) -> None:
        super().__init__("timed out")
        self.last = last


def watch_until(
    custom: client.CustomObjectsApi,
    namespace: str,
    plural: str,
    name: str,
    done: Callable[[dict[str, Any]], bool],
    timeout: float,
) -> dict[str, Any]:
    """The object once `done` accepts it."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    version: str | None = None
    failures = 0
    while time.monotonic() < deadline:
        try:
            if version is None:
                last = cast(
                    dict[str, Any],
                    custom.get_namespaced_custom_object(
                        GROUP, VERSION, namespace, plural, name, _request_timeout=REQUEST_TIMEOUT
                    ),
                )
                version = str(last["metadata"]["resourceVersion"])
                if done(last):
                    return last
            for kind, body in _changes(custom, namespace, plural, name, version, deadline):
                failures, version = 0, str(body["metadata"]["resourceVersion"])
                if kind == "BOOKMARK":  # only a newer version to resume from
                    continue
                last = body
                if done(body):
                    return body
        except ApiException as error:
            if error.status == 404:
                raise Gone(f"{plural}/{name} not found") from None
            if error.status == 410:  # the version expired: read afresh
                version = None
                continue
            failures += 1
            _pause(failures, deadline, f"API error {error.status}")
        except CONNECTION_ERRORS as error:
            failures += 1
            _pause(failures, deadline, type(error).__name__)
    raise StillWaiting(last)


def _changes(
    custom: client.CustomObjectsApi,
    namespace: str,
    plural: str,
    name: str,
    version: str,
    deadline: float,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event type, object) for each change after `version`, until the server ends the
    watch; bookmarks carry only a newer version."""
    seconds = max(1, min(WATCH_SECONDS, int(deadline - time.monotonic())))
    stream = watch.Watch().stream(
        custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        plural,
        field_selector=f"metadata.name={name}",
        resource_version=version,
        allow_watch_bookmarks=True,
        timeout_seconds=seconds,
        _request_timeout=(REQUEST_TIMEOUT[0], seconds + 10),
    )
    for event in stream:
        kind, body = event["type"], event["object"]
        if kind == "ERROR":
            code = body.get("code") if isinstance(body, dict) else None
            raise ApiException(status=code or 500, reason="watch error")
        if kind == "DELETED":
            raise Gone(f"{plural}/{name} was deleted")
        yield kind, body


def _pause(failures: int, deadline: float, why: str) -> None:
    ceiling = min(BACKOFF_MAX_SECONDS, 0.5 * 2 ** min(failures, 10))
    jittered = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret
    delay = min(jittered, max(deadline - time.monotonic(), 0.0))
    log.info("watch interrupted; resuming", extra={"error": why, "retry_seconds": delay})
    time.sleep(delay)
