"""`kubectl meetingbot`: send a bot, follow it, read its logs and artifacts, authorize a grant.

Installed with the client package as the executable `kubectl-meetingbot`, which kubectl runs
for `kubectl meetingbot ...` (any executable named kubectl-* on PATH is a plugin). It acts with
the caller's own kubeconfig and rights: what it reads (a bot, its pod's logs, the Secret with
the bucket's keys) is what `kubectl` would let the caller read.

    kubectl meetingbot join https://zoom.us/j/123456789 --display-name Notetaker --wait
    kubectl meetingbot status [NAME]
    kubectl meetingbot logs NAME [-f]
    kubectl meetingbot artifacts NAME [--fetch DIR]
    kubectl meetingbot authorize GRANT
    kubectl meetingbot cancel NAME
"""

from __future__ import annotations

import argparse
import base64
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from meetingbot_api import (
    GROUP,
    JOIN_URL,
    VERSION,
    MeetingBotSpec,
    Phase,
    first_error,
)
from meetingbot_client.artifacts import fetch_manifest, fetch_object
from meetingbot_client.client import BotDeleted, MeetingBots, Outcome, SpecConflict, WaitTimeout
from meetingbot_client.watching import REQUEST_TIMEOUT, Gone, StillWaiting, watch_until

RELATIVE = re.compile(r"^\+(\d+)([smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Refused(Exception):
    """What the user asked cannot be done; the message says why and what to do."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        bots = MeetingBots.from_environment(args.namespace, args.context)
        return int(args.run(bots, args))
    except (Refused, SpecConflict) as refused:
        print(f"error: {refused}", file=sys.stderr)
        return 1
    except ApiException as error:
        print(f"error: the API server answered {error.status}: {error.reason}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubectl meetingbot", description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--namespace", help="the namespace (default: the context's)")
    parser.add_argument("--context", help="the kubeconfig context (default: the current one)")
    verbs = parser.add_subparsers(required=True, metavar="COMMAND")

    join = verbs.add_parser("join", help="send a bot to a meeting")
    join.add_argument("url", help="the meeting's join link (https://zoom.us/j/...)")
    join.add_argument("--name", help="the MeetingBot's name (default: join-<meeting>-<time>)")
    join.add_argument("--account", help="the ZoomAccount (default: the namespace's only one)")
    join.add_argument(
        "--display-name", help="the bot's name in the meeting (default: the file's, or Notetaker)"
    )
    join.add_argument("--passcode", help="the meeting's passcode")
    join.add_argument("--at", help="when to join: an ISO 8601 time, or +10m, +2h (default: now)")
    join.add_argument(
        "-f",
        "--defaults",
        metavar="FILE",
        help="a YAML file with spec fields to start from (a team's capture, artifacts, webhook, "
        "pod placement); the flags win",
    )
    join.add_argument("--wait", action="store_true", help="wait until the bot finishes")
    join.add_argument("--timeout", type=float, default=6 * 3600, help="seconds --wait waits")
    join.set_defaults(run=_join)

    status = verbs.add_parser("status", help="one bot's status, or a table of all")
    status.add_argument("name", nargs="?")
    status.set_defaults(run=_status)

    logs = verbs.add_parser("logs", help="the logs of the bot's current attempt")
    logs.add_argument("name")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.set_defaults(run=_logs)

    artifacts = verbs.add_parser("artifacts", help="what the bot delivered (its manifest)")
    artifacts.add_argument("name")
    artifacts.add_argument("--fetch", metavar="DIR", help="download every object into DIR")
    artifacts.set_defaults(run=_artifacts)

    authorize = verbs.add_parser("authorize", help="print a grant's link and wait for consent")
    authorize.add_argument("grant")
    authorize.add_argument("--timeout", type=float, default=3600)
    authorize.set_defaults(run=_authorize)

    cancel = verbs.add_parser("cancel", help="stop a bot (it finishes Succeeded, Canceled)")
    cancel.add_argument("name")
    cancel.set_defaults(run=_cancel)
    return parser


# --- join ----------------------------------------------------------------------------------


def _join(bots: MeetingBots, args: argparse.Namespace) -> int:
    if not re.match(JOIN_URL, args.url):
        raise Refused(f"{args.url!r} is not a Zoom join link (https://zoom.us/j/<number>...)")
    number = re.findall(r"/(\d{9,12})", args.url)[0]
    when = _when(args.at)
    spec: dict[str, Any] = _defaults(args.defaults)
    account = args.account or spec.get("accountRef", {}).get("name") or _only_account(bots)
    spec.update(
        accountRef={"name": account},
        meeting={"joinUrl": args.url},
        displayName=args.display_name or spec.get("displayName") or "Notetaker",
    )
    if args.passcode:
        spec["meeting"]["passcode"] = args.passcode
    if when is not None:
        spec["joinAt"] = when.isoformat().replace("+00:00", "Z")
    name = args.name or f"join-{number}-{(when or datetime.now(UTC)):%m%d%H%M%S}"
    try:
        model = MeetingBotSpec.model_validate(spec)
    except ValidationError as error:
        raise Refused(f"the bot's spec: {first_error(error)}") from None
    bot = bots.create(name, model)
    print(f"meetingbot.meetingbot.dev/{name} created in {bots.namespace}")
    if not args.wait:
        return 0
    try:
        bot = bots.wait(name, timeout=args.timeout)
    except WaitTimeout:
        raise Refused(f"{name} did not finish within {args.timeout:.0f} s") from None
    except BotDeleted:
        raise Refused(f"{name} was deleted while waiting") from None
    print(_line(Outcome.of(bot)))
    return 0 if bot.status.phase == Phase.SUCCEEDED else 1


def _defaults(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise Refused(f"--defaults {path}: {error}") from None
    if not isinstance(loaded, dict):
        raise Refused(f"--defaults {path}: not a mapping of spec fields")
    return dict(loaded.get("spec", loaded))


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    relative = RELATIVE.match(text)
    if relative:
        amount, unit = relative.groups()
        return (datetime.now(UTC) + timedelta(seconds=int(amount) * UNITS[unit])).replace(
            microsecond=0
        )
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Refused(f"--at {text!r}: give an ISO 8601 time or +10m, +2h, +1d") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _only_account(bots: MeetingBots) -> str:
    found = cast(
        dict[str, Any],
        client.CustomObjectsApi(bots.api).list_namespaced_custom_object(
            GROUP, VERSION, bots.namespace, "zoomaccounts", _request_timeout=REQUEST_TIMEOUT
        ),
    )
    names = [item["metadata"]["name"] for item in found["items"]]
    if len(names) != 1:
        listed = ", ".join(names) or "none"
        raise Refused(f"pass --account: the namespace has {len(names)} ZoomAccounts ({listed})")
    return str(names[0])


# --- status, logs, cancel --------------------------------------------------------------------


def _status(bots: MeetingBots, args: argparse.Namespace) -> int:
    if args.name:
        outcome = bots.outcome(args.name)
        print(_line(outcome))
        for label, value in (
            ("attempts", outcome.attempts),
            ("started", outcome.started_at),
            ("joined", outcome.joined_at),
            ("left", outcome.left_at),
            ("finished", outcome.completion_time),
        ):
            if value:
                print(f"  {label}: {value}")
        if outcome.message:
            print(f"  message: {outcome.message}")
        if outcome.artifacts:
            a = outcome.artifacts
            print(f"  artifacts: {a.objects} objects, {a.bytes} bytes, {a.pending} pending")
        if outcome.webhook:
            w = outcome.webhook
            print(
                f"  webhook: {w.delivered} delivered, {len(w.pending)} pending, {w.dropped} dropped"
            )
        return 0
    rows = [("NAME", "PHASE", "REASON", "ATTEMPTS")]
    for bot in sorted(bots.list(), key=lambda b: b.metadata.name):
        s = bot.status
        rows.append((bot.metadata.name, s.phase or "", s.reason or "", str(s.attempts)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def _line(outcome: Outcome) -> str:
    phase = outcome.phase.value if outcome.phase else "Unknown"
    reason = f" ({outcome.reason})" if outcome.reason else ""
    transient = " - transient: another attempt may succeed" if outcome.transient else ""
    return f"{outcome.name}: {phase}{reason}{transient}"


def _logs(bots: MeetingBots, args: argparse.Namespace) -> int:
    bot = bots.get(args.name)
    pod = bot.status.pod_name
    if not pod:
        raise Refused(f"{args.name} has no pod yet (phase {bot.status.phase})")
    core = client.CoreV1Api(bots.api)
    response: Any = core.read_namespaced_pod_log(
        pod, bots.namespace, container="bot", follow=args.follow, _preload_content=False
    )
    for chunk in response.stream(4096):
        sys.stdout.write(chunk.decode(errors="replace"))
        sys.stdout.flush()
    return 0


def _cancel(bots: MeetingBots, args: argparse.Namespace) -> int:
    bots.cancel(args.name)
    print(f"{args.name}: canceled; it leaves the meeting (or never starts)")
    return 0


# --- artifacts ---------------------------------------------------------------------------------


def _artifacts(bots: MeetingBots, args: argparse.Namespace) -> int:
    bot = bots.get(args.name)
    spec, delivered = bot.spec.artifacts, bot.status.artifacts
    if spec is None:
        raise Refused(f"{args.name} has no spec.artifacts")
    if delivered is None or not delivered.manifest_key:
        raise Refused(f"{args.name} has delivered nothing yet")
    keys = _storage_keys(bots, spec.credentials_secret_ref.name)
    manifest = fetch_manifest(spec, keys, delivered.manifest_key)
    print(f"{len(manifest.entries)} objects in s3://{spec.bucket}/{delivered.manifest_key}")
    for entry in manifest.entries:
        span = f"{_clock(entry.start_ms)}-{_clock(entry.end_ms)}"
        print(f"  {entry.key}  {entry.kind.value}  attempt {entry.attempt}  {entry.size} B  {span}")
    for gap in manifest.gaps:
        print(f"  gap: {gap}")
    if args.fetch:
        target = Path(args.fetch)
        target.mkdir(parents=True, exist_ok=True)
        for entry in manifest.entries:
            path = target / entry.key.rsplit("/", 2)[-2] / entry.key.rsplit("/", 1)[-1]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(fetch_object(spec, keys, entry.key, entry.sha256))
        print(f"fetched {len(manifest.entries)} objects into {target}")
    return 0


def _storage_keys(bots: MeetingBots, secret: str) -> tuple[str, str]:
    """The bucket's keys, from the Secret the bot names, read with the caller's own rights."""
    data = (
        client.CoreV1Api(bots.api)
        .read_namespaced_secret(secret, bots.namespace, _request_timeout=REQUEST_TIMEOUT)
        .data
        or {}
    )
    try:
        return (
            base64.b64decode(data["accessKeyId"]).decode(),
            base64.b64decode(data["secretAccessKey"]).decode(),
        )
    except KeyError:
        raise Refused(f"Secret {secret!r} lacks accessKeyId or secretAccessKey") from None


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S")


# --- authorize ----------------------------------------------------------------------------------


def _authorize(bots: MeetingBots, args: argparse.Namespace) -> int:
    custom = client.CustomObjectsApi(bots.api)

    def link_or_ready(body: dict[str, Any]) -> bool:
        status = body.get("status") or {}
        return bool(status.get("authorizationUrl")) or _ready(body)

    try:
        body = watch_until(custom, bots.namespace, "zoomusergrants", args.grant, link_or_ready, 60)
        if not _ready(body):
            print("Open this link and sign in to Zoom as the user who authorizes:")
            print(f"  {body['status']['authorizationUrl']}")
            print("waiting for the consent...", flush=True)
            body = watch_until(
                custom, bots.namespace, "zoomusergrants", args.grant, _ready, args.timeout
            )
    except Gone:
        raise Refused(f"ZoomUserGrant {args.grant!r} not found") from None
    except StillWaiting:
        raise Refused(f"{args.grant} was not authorized within {args.timeout:.0f} s") from None
    status = body.get("status") or {}
    print(f"{args.grant}: authorized by {status.get('email') or status.get('userId')}")
    return 0


def _ready(body: dict[str, Any]) -> bool:
    conditions = (body.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
