"""`python -m meetingbot_bot [--config FILE]`: join one meeting, then exit with a code that
names the outcome and a one-line JSON result in the termination message."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from pydantic import ValidationError

from meetingbot_bot.health import health_server
from meetingbot_bot.runner import Bot, Options
from meetingbot_contract import CONFIG_ENV, BotResult, ExitCode, JoinConfig, logs
from meetingbot_contract.reasons import Reason

log = logging.getLogger("meetingbot_bot")
TERMINATION_LOG_ENV = "MEETINGBOT_TERMINATION_LOG"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="meetingbot_bot", description=__doc__)
    parser.add_argument(
        "--config",
        type=Path,
        default=os.environ.get(CONFIG_ENV),
        help=f"join configuration (default: ${CONFIG_ENV})",
    )
    parser.add_argument(
        "--termination-log",
        type=Path,
        default=Path(os.environ.get(TERMINATION_LOG_ENV, "/dev/termination-log")),
        help="where the one-line JSON result goes",
    )
    parser.add_argument(
        "--log-format",
        default=os.environ.get("MEETINGBOT_LOG_FORMAT", "json"),
        choices=["json", "text"],
    )
    return parser.parse_args(argv)


def write_result(path: Path, result: BotResult) -> None:
    try:
        path.write_text(result.model_dump_json(by_alias=True, exclude_none=True) + "\n")
    except OSError as error:  # running locally without /dev/termination-log
        log.warning(
            "could not write the termination message",
            extra={"path": str(path), "error": str(error)},
        )


def load(path: Path | None) -> JoinConfig:
    if path is None:
        raise ValueError(f"no configuration: pass --config or set {CONFIG_ENV}")
    config = JoinConfig.model_validate_json(path.read_text())
    logs.redact(
        *(
            s.get_secret_value()
            for s in (config.signature, config.zak, config.obf_token, config.report.token)
            if s is not None
        )
    )
    return config


async def main_async(config: JoinConfig) -> tuple[int, BotResult]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bot = Bot(config, Options(), stop)
    async with health_server():
        machine = await bot.run()
    log.info("done", extra={"reason": machine.reason, "exit_code": int(machine.exit_code)})
    return int(machine.exit_code), bot.result()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logs.configure("INFO", args.log_format)
    try:
        config = load(args.config)
    except (OSError, ValueError, ValidationError) as error:
        message = f"cannot read the join configuration: {type(error).__name__}"
        log.error(message)
        write_result(
            args.termination_log,
            BotResult(attempt=0, reason=Reason.BOT_CONFIG_INVALID, message=message),
        )
        return int(ExitCode.CONFIG_INVALID)
    code, result = asyncio.run(main_async(config))
    write_result(args.termination_log, result)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
