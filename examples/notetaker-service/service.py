"""An example backend: it schedules notetaker bots and learns how they did from their webhook.

    POST /meetings {"joinUrl": "https://zoom.us/j/...", "joinAt": "2026-12-04T09:00:00Z"}
        -> 201 {"name": "..."}: a MeetingBot whose spec.webhook points back here
    POST /webhook  what the operator sends: verified (Standard Webhooks), each id acted on once
    GET /meetings/NAME -> the events received for that bot, oldest first

Run it beside the operator (`pip install meetingbot-client standardwebhooks`):

    NAMESPACE=notetakers ACCOUNT=main PUBLIC_URL=https://hooks.example.com \\
    WEBHOOK_SECRET=whsec_... WEBHOOK_SECRET_NAME=hook-signing python service.py

PUBLIC_URL must lie under one of the operator's webhookEndpoints; the Secret WEBHOOK_SECRET_NAME
(labelled meetingbot.dev/secret-for=webhook-signing, key `secret`) holds the same secret.
Kept in memory for the example; a real service keeps the ids it acted on in its database.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

from meetingbot_api import MeetingBotSpec
from meetingbot_client.client import MeetingBots, SpecConflict

NAMESPACE = os.environ["NAMESPACE"]
ACCOUNT = os.environ.get("ACCOUNT", "main")
PUBLIC_URL = os.environ["PUBLIC_URL"].rstrip("/")
VERIFIER = Webhook(os.environ["WEBHOOK_SECRET"])
SECRET_NAME = os.environ.get("WEBHOOK_SECRET_NAME", "hook-signing")
# Extra spec fields for every bot (a JSON object: capture, artifacts, pod placement...).
DEFAULTS: dict[str, Any] = json.loads(os.environ.get("BOT_DEFAULTS", "{}"))

bots = MeetingBots.from_environment(NAMESPACE)
lock = threading.Lock()
seen_ids: set[str] = set()
events: dict[str, list[dict[str, Any]]] = {}


def schedule(request: dict[str, Any]) -> str:
    """A bot for the meeting; its name is derived from the request, so a retried request
    finds the bot it created the first time instead of sending a second one."""
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:10]
    name = request.get("name") or f"notetaker-{digest}"
    spec = {
        **DEFAULTS,
        "accountRef": {"name": ACCOUNT},
        "meeting": {"joinUrl": request["joinUrl"]},
        "displayName": request.get("displayName", "Notetaker"),
        "webhook": {
            "url": f"{PUBLIC_URL}/webhook",
            "signingSecretRef": {"name": SECRET_NAME, "key": "secret"},
        },
    }
    if request.get("joinAt"):
        spec["joinAt"] = request["joinAt"]
    bots.create(name, MeetingBotSpec.model_validate(spec))
    return str(name)


def receive(body: bytes, headers: dict[str, str]) -> bool:
    """One notification: False if its signature is wrong. A retry of an event already acted
    on (same webhook-id) is acknowledged and ignored."""
    try:
        event = VERIFIER.verify(body, headers)
    except WebhookVerificationError:
        return False
    with lock:
        if event["id"] in seen_ids:
            return True
        seen_ids.add(event["id"])
        events.setdefault(event["data"]["name"], []).append(event)
    if event["type"] == "dev.meetingbot.bot.finished":
        data = event["data"]
        print(f"{data['name']}: {data['phase']} ({data.get('reason')})", flush=True)
    return True


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path == "/webhook":
            ok = receive(body, {k.lower(): v for k, v in self.headers.items()})
            self._answer(HTTPStatus.NO_CONTENT if ok else HTTPStatus.UNAUTHORIZED)
        elif self.path == "/meetings":
            try:
                self._answer(HTTPStatus.CREATED, {"name": schedule(json.loads(body))})
            except SpecConflict as conflict:
                self._answer(HTTPStatus.CONFLICT, {"error": str(conflict)})
        else:
            self._answer(HTTPStatus.NOT_FOUND)

    def do_GET(self) -> None:
        name = self.path.removeprefix("/meetings/")
        with lock:
            found = events.get(name)
        if found is None:
            self._answer(HTTPStatus.NOT_FOUND)
        else:
            self._answer(HTTPStatus.OK, found)

    def _answer(self, status: HTTPStatus, document: Any = None) -> None:
        payload = json.dumps(document).encode() if document is not None else b""
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    print(f"listening on :{port}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()  # noqa: S104 - a service
