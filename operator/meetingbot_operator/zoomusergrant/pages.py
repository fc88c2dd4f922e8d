"""The two pages a person sees when authorizing a ZoomUserGrant: `/oauth/start/{ns}/{name}`
(redirects to Zoom's consent page) and `/oauth/callback` (where Zoom sends them back), and
`/oauth/deauthorize`, where Zoom tells the app a user removed it.

Served on a port of its own (settings.oauth_port) so that an Ingress can expose exactly this
and nothing of the bots' report endpoint. Pages hold our own words only: never a token, never
what Zoom's redirect carried besides whether it worked.
"""

from __future__ import annotations

import html
import logging

from aiohttp import web

from meetingbot_operator.kube.client import ApiError
from meetingbot_operator.zoomusergrant.service import GrantService
from meetingbot_operator.zoomusergrant.state import GrantProblem

log = logging.getLogger(__name__)


def _page(title: str, text: str, status: int = 200) -> web.Response:
    body = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1 id='title'>{html.escape(title)}</h1><p id='message'>{html.escape(text)}</p>"
        "</body></html>"
    )
    return web.Response(text=body, content_type="text/html", status=status)


def _failure(error: Exception) -> str:
    """What a person is told when the operator itself failed (never the exception's text,
    which may quote a request)."""
    what = (
        f"the Kubernetes API refused the operator's request (HTTP {error.status})"
        if isinstance(error, ApiError)
        else f"an internal error ({type(error).__name__})"
    )
    return (
        f"the operator could not complete this step: {what}. Nothing was changed; try again "
        "later, and tell whoever runs the operator if it persists (its log says more)"
    )


def make_app(grants: GrantService) -> web.Application:
    async def start(request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        try:
            target = await grants.start(namespace, name, request.query.get("t", ""))
        except GrantProblem as problem:
            return _page("Cannot authorize", problem.message, problem.status)
        except Exception as error:  # never a bare 500: say what failed, keep its details out
            log.exception("authorization could not start", extra={"grant": f"{namespace}/{name}"})
            return _page("Cannot authorize", _failure(error), 503)
        raise web.HTTPFound(target)

    async def callback(request: web.Request) -> web.Response:
        state = request.query.get("state", "")
        if request.query.get("error"):
            # Declined on Zoom's page: nothing changes (a Ready grant stays Ready).
            return _page("Not authorized", "the authorization was declined; nothing changed")
        code = request.query.get("code", "")
        if not code or not state:
            return _page("Cannot authorize", "the link lacks its code or state", 400)
        try:
            namespace, name = await grants.callback(code, state)
        except GrantProblem as problem:
            log.warning("grant authorization refused", extra={"reason": problem.reason})
            return _page("Cannot authorize", problem.message, problem.status)
        except Exception as error:
            log.exception("authorization could not finish")
            return _page("Cannot authorize", _failure(error), 503)
        return _page(
            "Authorized",
            f"ZoomUserGrant {namespace}/{name} is ready; you can close this window",
        )

    async def deauthorize(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            answer = await grants.notice(
                body,
                request.headers.get("x-zm-request-timestamp", ""),
                request.headers.get("x-zm-signature", ""),
            )
        except GrantProblem as problem:
            log.warning("Zoom notice refused", extra={"reason": problem.message})
            return web.json_response({"error": problem.message}, status=problem.status)
        return web.json_response(answer)

    app = web.Application(client_max_size=64 * 1024)
    app.router.add_get("/oauth/start/{namespace}/{name}", start)
    app.router.add_get("/oauth/callback", callback)
    # Zoom's Deauthorization Notification Endpoint URL for the app (and its URL validation).
    app.router.add_post("/oauth/deauthorize", deauthorize)
    return app
