"""`python -m meetingbot_bot.rtms`: a stream worker (worker.py), until SIGTERM.

Configured from its pod: MEETINGBOT_WORKER_NAME (the pod's name, from the downward API),
MEETINGBOT_OPERATOR_URL (the operator's report endpoint), MEETINGBOT_WORKER_TOKEN_FILE (the
projected service-account token for the operator's audience), MEETINGBOT_SPOOL,
MEETINGBOT_WORKER_CAPACITY (streams at once) and MEETINGBOT_WORKER_DRAIN_SECONDS."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from meetingbot_bot.health import health_server
from meetingbot_bot.rtms.worker import StreamWorker, WorkerConfig
from meetingbot_contract import logs
from meetingbot_contract.artifacts import SPOOL_ENV, SPOOL_PATH

log = logging.getLogger("meetingbot_bot.rtms")
TOKEN_PATH = "/var/run/secrets/meetingbot/token"  # noqa: S105 - a path, not a secret


def config_from(env: dict[str, str]) -> WorkerConfig:
    missing = [k for k in ("MEETINGBOT_WORKER_NAME", "MEETINGBOT_OPERATOR_URL") if not env.get(k)]
    if missing:
        raise ValueError(f"set {', '.join(missing)}")
    return WorkerConfig(
        name=env["MEETINGBOT_WORKER_NAME"],
        operator_url=env["MEETINGBOT_OPERATOR_URL"].rstrip("/"),
        token_file=Path(env.get("MEETINGBOT_WORKER_TOKEN_FILE", TOKEN_PATH)),
        spool=Path(env.get(SPOOL_ENV, SPOOL_PATH)),
        capacity=int(env.get("MEETINGBOT_WORKER_CAPACITY", "200")),
        drain_seconds=float(env.get("MEETINGBOT_WORKER_DRAIN_SECONDS", "20")),
    )


async def main_async(config: WorkerConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with health_server():
        await StreamWorker(config, stop).run()


def main() -> int:
    logs.configure("INFO", os.environ.get("MEETINGBOT_LOG_FORMAT", "json"))
    try:
        config = config_from(dict(os.environ))
    except ValueError as error:
        log.error("cannot start the stream worker", extra={"error": str(error)})
        return 2
    log.info("stream worker started", extra={"worker": config.name, "capacity": config.capacity})
    asyncio.run(main_async(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
