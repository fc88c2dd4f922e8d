"""The reference bot in real Chromium, with the simulator's fake Meeting SDK: every way a bot
joins, waits, stays and leaves, seen from the meeting, the reports and the exit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devenv.zoomsim import SimAdmin, ZoomSim
from tests.support.bot_harness import BotProcess, ReportSink, join_config, mint_zak
from tests.support.operator_fixtures import wait_for


@pytest.fixture
def sink() -> Iterator[ReportSink]:
    receiver = ReportSink()
    yield receiver
    receiver.close()


@pytest.fixture
def run_bot(zoomsim: ZoomSim, tmp_path: Path) -> Iterator[Any]:
    started: list[BotProcess] = []

    def start(config: Any) -> BotProcess:
        bot = BotProcess(config, zoomsim.url, tmp_path / f"bot{len(started)}")
        started.append(bot)
        return bot

    yield start
    for bot in started:
        bot.kill()


async def in_meeting(sim: SimAdmin, number: str, count: int = 1) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await wait_for(
        lambda: (
            (p := sim.participants(number, "in_meeting"))
            and len([x for x in p if x["kind"] == "sdk"]) >= count
            and p
        ),
        30,
        what="bot in meeting",
    )
    return found


async def test_joins_with_a_zak_and_leaves_when_the_host_ends(
    zoomsim: ZoomSim, sim: SimAdmin, zoom_account: dict[str, Any], sink: ReportSink, run_bot: Any
) -> None:
    number = sim.create_meeting(zoom_account["id"], passcode="pw", auth_required=True)["number"]
    bot = run_bot(
        join_config(
            zoom_account, number, sink, zak=mint_zak(zoomsim.url, zoom_account), passcode="pw"
        )
    )
    (me,) = await in_meeting(sim, number)
    assert me["displayName"] == "Notetaker"
    assert me["zoomUserId"] == zoom_account["user"]["id"]
    await wait_for(lambda: "InMeeting" in sink.states(), 10, what="InMeeting report")
    sim.end_meeting(number)
    code, result = bot.wait()
    assert (code, result["reason"]) == (0, "MeetingEnded")
    assert result["attempt"] == 1 and result["joinedAt"] and result["leftAt"]
    assert sink.states() == ["Starting", "Joining", "InMeeting", "Ended"]
    assert set(sink.tokens) == {"Bearer report-token-for-tests"}
    log = bot.log_path.read_text()
    assert "report-token-for-tests" not in log
    assert bot.config_path.read_text().count("simzak_") == 1 and "simzak_" not in log


async def test_waiting_room_then_admitted(
    zoomsim: ZoomSim, sim: SimAdmin, zoom_account: dict[str, Any], sink: ReportSink, run_bot: Any
) -> None:
    number = sim.create_meeting(zoom_account["id"], waiting_room=True)["number"]
    bot = run_bot(join_config(zoom_account, number, sink, zak=mint_zak(zoomsim.url, zoom_account)))
    await wait_for(lambda: "WaitingRoom" in sink.states(), 30, what="WaitingRoom report")
    sim.admit(number)
    await wait_for(lambda: "InMeeting" in sink.states(), 10, what="InMeeting after admission")
    sim.end_meeting(number)
    assert bot.wait()[0] == 0
    assert sink.states() == ["Starting", "Joining", "WaitingRoom", "InMeeting", "Ended"]


def test_waiting_room_timeout(
    zoomsim: ZoomSim, sim: SimAdmin, zoom_account: dict[str, Any], sink: ReportSink, run_bot: Any
) -> None:
    number = sim.create_meeting(zoom_account["id"], waiting_room=True)["number"]
    bot = run_bot(
        join_config(
            zoom_account,
            number,
            sink,
            zak=mint_zak(zoomsim.url, zoom_account),
            waitingRoomTimeoutSeconds=2,
        )
    )
    code, result = bot.wait()
    assert (code, result["reason"]) == (4, "WaitingRoomTimeout")
    assert [p["leftReason"] for p in sim.participants(number, "left")] == ["left"]
    assert (Path(bot.result_path).parent / "failure-attempt-1.png").exists()


@pytest.mark.parametrize(
    ("case", "code", "reason"),
    [
        ("wrong passcode", 3, "WrongPasscode"),
        ("no zak on an authenticated-only meeting", 3, "AuthenticationRequired"),
    ],
)
def test_join_failures(
    zoomsim: ZoomSim,
    sim: SimAdmin,
    zoom_account: dict[str, Any],
    sink: ReportSink,
    run_bot: Any,
    case: str,
    code: int,
    reason: str,
) -> None:
    number = sim.create_meeting(zoom_account["id"], passcode="right", auth_required=True)["number"]
    zak = None if case.startswith("no zak") else mint_zak(zoomsim.url, zoom_account)
    bot = run_bot(
        join_config(
            zoom_account,
            number,
            sink,
            zak=zak,
            passcode="wrong" if case == "wrong passcode" else "right",
        )
    )
    exit_code, result = bot.wait()
    assert (exit_code, result["reason"]) == (code, reason)
    assert sink.reports[-1]["state"] == "Ended" and sink.reports[-1]["reason"] == reason


async def test_removed_by_host(
    zoomsim: ZoomSim, sim: SimAdmin, zoom_account: dict[str, Any], sink: ReportSink, run_bot: Any
) -> None:
    number = sim.create_meeting(zoom_account["id"])["number"]
    bot = run_bot(join_config(zoom_account, number, sink, zak=mint_zak(zoomsim.url, zoom_account)))
    (me,) = await in_meeting(sim, number)
    await wait_for(lambda: "InMeeting" in sink.states(), 30, what="InMeeting report")
    sim.remove_participant(number, me["userId"])
    code, result = bot.wait()
    assert (code, result["reason"]) == (4, "RemovedByHost")


async def test_an_obf_bot_leaves_with_its_authorizing_user(
    zoomsim: ZoomSim, sim: SimAdmin, sink: ReportSink, run_bot: Any
) -> None:
    """Zoom removes an OBF bot when the user who authorized it leaves (4019): the bot ends
    AuthorizingUserLeft, a success."""
    host = sim.create_account()
    number = sim.create_meeting(host["id"])["number"]
    app = sim.create_account(app_published=True)
    alice = sim.add_user(app["id"], email="alice@customer.example.com")
    sim.add_participant(number, "Alice", user_id=alice["id"])
    user_token = sim.authorize_user(alice["id"])
    obf = httpx.get(
        f"{zoomsim.url}/v2/users/me/token",
        params={"type": "onbehalf", "meeting_id": number},
        headers={"Authorization": f"Bearer {user_token}"},
    ).json()["token"]
    bot = run_bot(join_config(app, number, sink, zak=None, obf=obf))
    await wait_for(lambda: "InMeeting" in sink.states(), 30, what="InMeeting report")
    person = next(p for p in sim.participants(number, "in_meeting") if p["kind"] == "human")
    sim.remove_participant(number, person["userId"], mode="leave")
    code, result = bot.wait()
    assert (code, result["reason"]) == (0, "AuthorizingUserLeft")


async def test_everyone_left_other_bots_do_not_count(
    zoomsim: ZoomSim, sim: SimAdmin, zoom_account: dict[str, Any], sink: ReportSink, run_bot: Any
) -> None:
    number = sim.create_meeting(zoom_account["id"])["number"]
    sim.add_participant(number, "Notetaker")  # a sibling bot: same display name
    person = sim.add_participant(number, "Dana")
    bot = run_bot(
        join_config(
            zoom_account,
            number,
            sink,
            zak=mint_zak(zoomsim.url, zoom_account),
            everyoneLeftTimeoutSeconds=1,
        )
    )
    await in_meeting(sim, number)
    await wait_for(
        lambda: any(r.get("participants") == 1 for r in sink.reports), 10, what="one person counted"
    )
    await asyncio.sleep(1.5)
    assert bot.process.poll() is None, "left while a person was there"
    sim.remove_participant(number, person["userId"], mode="leave")
    code, result = bot.wait(30)
    assert (code, result["reason"]) == (0, "EveryoneLeft")


def test_no_one_joined(
    zoomsim: ZoomSim, sim: SimAdmin, zoom_account: dict[str, Any], sink: ReportSink, run_bot: Any
) -> None:
    number = sim.create_meeting(zoom_account["id"])["number"]
    bot = run_bot(
        join_config(
            zoom_account,
            number,
            sink,
            zak=mint_zak(zoomsim.url, zoom_account),
            noOneJoinedTimeoutSeconds=2,
        )
    )
    code, result = bot.wait(30)
    assert (code, result["reason"]) == (0, "NoOneJoined")


async def test_sigterm_mid_meeting_leaves_cleanly(
    zoomsim: ZoomSim, sim: SimAdmin, zoom_account: dict[str, Any], sink: ReportSink, run_bot: Any
) -> None:
    number = sim.create_meeting(zoom_account["id"])["number"]
    bot = run_bot(join_config(zoom_account, number, sink, zak=mint_zak(zoomsim.url, zoom_account)))
    await in_meeting(sim, number)
    await wait_for(lambda: "InMeeting" in sink.states(), 30, what="InMeeting report")
    asked = time.monotonic()
    bot.terminate()
    code, result = bot.wait(30)
    took = time.monotonic() - asked
    assert (code, result["reason"]) == (0, "Canceled")
    assert [p["leftReason"] for p in sim.participants(number, "left")] == [
        "left"
    ]  # left, not dropped
    assert took < 30  # the pod's default grace period is 60 s
    assert "Leaving" in sink.states()


async def test_markup_in_the_display_name_stays_text(
    zoomsim: ZoomSim, sim: SimAdmin, zoom_account: dict[str, Any], sink: ReportSink, run_bot: Any
) -> None:
    name = "</script><img src=x onerror=alert(1)>Bot"
    number = sim.create_meeting(zoom_account["id"])["number"]
    bot = run_bot(
        join_config(zoom_account, number, sink, zak=mint_zak(zoomsim.url, zoom_account), name=name)
    )
    (me,) = await in_meeting(sim, number)
    assert me["displayName"] == name
    sim.end_meeting(number)
    assert bot.wait()[0] == 0


async def test_a_zak_expiring_in_the_meeting_does_not_matter(
    zoomsim: ZoomSim, sim: SimAdmin, zoom_account: dict[str, Any], sink: ReportSink, run_bot: Any
) -> None:
    token = httpx.post(
        f"{zoomsim.url}/oauth/token",
        data={"grant_type": "account_credentials", "account_id": zoom_account["id"]},
        auth=(zoom_account["client_id"], zoom_account["client_secret"]),
    ).json()["access_token"]
    # Long enough for the bot to join even on a busy machine; the test then outwaits it.
    minted = time.monotonic()
    zak = httpx.get(
        f"{zoomsim.url}/v2/users/{zoom_account['user']['id']}/token",
        params={"type": "zak", "ttl": 15},
        headers={"Authorization": f"Bearer {token}"},
    ).json()["token"]
    number = sim.create_meeting(zoom_account["id"], auth_required=True)["number"]
    bot = run_bot(join_config(zoom_account, number, sink, zak=zak))
    await in_meeting(sim, number)
    assert time.monotonic() < minted + 15, "the bot joined after its ZAK expired: nothing proven"
    await asyncio.sleep(max(0.0, minted + 16 - time.monotonic()))  # until the ZAK has expired
    assert bot.process.poll() is None
    assert len(sim.participants(number, "in_meeting")) == 1
    sim.end_meeting(number)
    assert bot.wait()[1]["reason"] == "MeetingEnded"


def test_an_unreadable_config_exits_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "join.json").write_text("{not json")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "meetingbot_bot",
            "--config",
            str(tmp_path / "join.json"),
            "--termination-log",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert '"reason":"BotConfigInvalid"' in (tmp_path / "out").read_text()
