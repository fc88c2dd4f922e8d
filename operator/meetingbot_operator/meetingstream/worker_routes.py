"""The stream workers' endpoints, on the report port (standbys forward them to the leader):
`POST /v1/rtms/workers/{worker}` (the long poll: heartbeat in, orders out) and
`POST /v1/rtms/streams/{namespace}/{name}/{index}/uploads[/complete]` (a stream's files, as a
bot's uploads are). Every request carries the worker pod's service-account token; anything
else gets 401, whatever the cause."""

from __future__ import annotations

import logging
from functools import partial

from aiohttp import web
from pydantic import ValidationError

from meetingbot_api import first_error
from meetingbot_contract import UploadRequest
from meetingbot_contract.rtms import STREAMS_PATH, WORKERS_PATH, StreamRef, WorkerHeartbeat
from meetingbot_operator.artifacts.answers import upload_answer
from meetingbot_operator.meetingstream.workers import NotAWorker, WorkerDesk

log = logging.getLogger(__name__)


# The worker hung up before its request's body arrived (it was stopped, or gave up waiting):
# nobody reads this answer, and it is not the operator's error to log.
def hung_up() -> web.Response:
    return web.Response(status=400, text="the request's body did not arrive")


def routes(desk: WorkerDesk) -> list[web.RouteDef]:
    async def poll(request: web.Request) -> web.StreamResponse:
        try:
            worker = await desk.worker_of(request.headers.get("Authorization", ""))
        except NotAWorker:
            return web.json_response({"error": "unauthorized"}, status=401)
        if worker != request.match_info["worker"]:
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            beat = WorkerHeartbeat.model_validate_json(await request.read())
        except ConnectionResetError:
            return hung_up()
        except ValidationError as error:
            return web.json_response({"error": first_error(error)}, status=400)

        def gone() -> bool:  # the worker hung up (it died, or gave up waiting)
            transport = request.transport
            return transport is None or transport.is_closing()

        orders = await desk.poll(worker, beat, gone)
        return web.Response(text=orders.to_json(), content_type="application/json")

    async def upload(request: web.Request) -> web.StreamResponse:
        try:
            await desk.worker_of(request.headers.get("Authorization", ""))
        except NotAWorker:
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            ref = StreamRef(
                namespace=request.match_info["namespace"],
                name=request.match_info["name"],
                index=int(request.match_info["index"]),
            )
            body = UploadRequest.model_validate_json(await request.read())
        except ConnectionResetError:
            return hung_up()
        except ValidationError as error:
            return web.json_response({"error": first_error(error)}, status=400)
        except ValueError:
            return web.json_response({"error": "index is a number"}, status=400)
        return await upload_answer(
            request.match_info.get("step") == "complete",
            partial(desk.grant, ref, body),
            partial(desk.complete, ref, body),
        )

    uploads = STREAMS_PATH + "/{namespace}/{name}/{index}/uploads"
    return [
        web.post(WORKERS_PATH + "/{worker}", poll),
        web.post(uploads, upload),
        web.post(uploads + "/{step:complete}", upload),
    ]
