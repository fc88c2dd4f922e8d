"""The simulated RTMS stream's media and Zoom's numbers for it: the protocol's constants
(Zoom's RTMS data type definitions), and what one stream sends, tick by tick, of its meeting's
script: L16 audio (mixed, or one message per speaker), the transcript at the end of each
scripted line, chat on time, and the speaker and participant events the app subscribed to.
Each scripted speaker is its own tone, as on the browser bot's audio paths."""

from __future__ import annotations

import array
import base64
import math
import time
from collections import deque
from functools import cache
from typing import Any

from devenv.zoomsim.state import Meeting, RtmsStream

# RTMS_MESSAGE_TYPE (Zoom's data type definitions).
SIGNALING_HAND_SHAKE_REQ = 1
SIGNALING_HAND_SHAKE_RESP = 2
DATA_HAND_SHAKE_REQ = 3
DATA_HAND_SHAKE_RESP = 4
EVENT_SUBSCRIPTION = 5
EVENT_UPDATE = 6
CLIENT_READY_ACK = 7
STREAM_STATE_UPDATE = 8
KEEP_ALIVE_REQ = 12
KEEP_ALIVE_RESP = 13
MEDIA_DATA_AUDIO = 14
MEDIA_DATA_TRANSCRIPT = 17
MEDIA_DATA_CHAT = 18
STREAM_CLOSE_REQ = 21
STREAM_CLOSE_RESP = 22
# MEDIA_DATA_TYPE bits (the handshake's media_type).
AUDIO, VIDEO, DESKSHARE, TRANSCRIPT, CHAT, ALL = 1, 2, 4, 8, 16, 32
# RTMS_EVENT_TYPE.
FIRST_PACKET_TIMESTAMP, ACTIVE_SPEAKER_CHANGE, PARTICIPANT_JOIN, PARTICIPANT_LEAVE = 1, 2, 3, 4
# RTMS_STATUS_CODE (the ones the simulator answers with).
STATUS_OK = 0
STATUS_CONNECTION_TIMEOUT = 1
STATUS_INVALID_MESSAGE_TYPE = 4
STATUS_SESSION_NOT_FOUND = 13
STATUS_INVALID_SIGNATURE = 15
# RTMS_STREAM_STATE and RTMS_STOP_REASON.
STREAM_TERMINATED = 4
STOP_BC_HOST_TRIGGERED = 1
STOP_BC_MEETING_ENDED = 6
STOP_BC_STREAM_CANCELED = 7
STOP_BC_CONNECTION_TIMEOUT = 11
# AUDIO_SAMPLE_RATE: the enum's value -> Hz; AUDIO_DATA_OPTION: mixed, or one per speaker.
SAMPLE_RATES = {0: 8000, 1: 16000, 2: 32000, 3: 48000}
AUDIO_MIXED_STREAM, AUDIO_MULTI_STREAMS = 1, 2
DEFAULT_AUDIO = {
    "content_type": 2,  # RAW_AUDIO
    "sample_rate": 1,  # 16 kHz
    "channel": 1,  # mono
    "codec": 1,  # L16
    "data_opt": AUDIO_MIXED_STREAM,
    "send_rate": 20,  # milliseconds of audio per message
}
BUFFER_LIMIT_MS = 60_000  # audio kept for an app that is still connecting (buffer_data)
HANDSHAKE_DEADLINE = 10.0  # seconds a new socket has to send its handshake
TONE_AMPLITUDE = 8000  # per speaker, of 32767: two at once do not clip


# --- the stream's clock ---------------------------------------------------------------------


@cache
def _tone(hz: int, rate: int) -> bytes:
    """One second of a tone, twice (a frame may wrap around); whole-Hz tones repeat every
    second exactly, so the table is seamless."""
    samples = array.array(
        "h", (round(TONE_AMPLITUDE * math.sin(2 * math.pi * hz * n / rate)) for n in range(rate))
    )
    return samples.tobytes() * 2


def _mix(parts: list[bytes]) -> bytes:
    if len(parts) == 1:
        return parts[0]
    mixed = array.array("h", parts[0])
    for part in parts[1:]:
        other = array.array("h", part)
        for i, value in enumerate(other):
            mixed[i] = max(-32768, min(32767, mixed[i] + value))
    return mixed.tobytes()


def _speaking(meeting: Meeting, at_ms: int) -> list[dict[str, Any]]:
    script = meeting.script
    if not script:
        return []
    start = int(script["startsAtMs"])
    return [
        line
        for line in script["speech"]
        if start + line["from"] * 1000 <= at_ms < start + line["to"] * 1000
    ]


def _user_id(pid: str) -> int:
    """RTMS names participants by a number (the simulator's ids are hex)."""
    return int(pid, 16) if pid else 0


class Clock:
    """What one stream has sent so far of the script, and its audio clock."""

    def __init__(self, stream: RtmsStream) -> None:
        self.stream = stream
        self.samples = 0  # samples since the stream started, at the current rate
        self.buffer: deque[dict[str, Any]] = deque()
        self.said: set[tuple[str, int]] = set()  # transcript and chat lines already sent
        self.speaker: str | None = None
        self.present: dict[str, str] = {}
        self.first_packet = False
        self.last_keepalive = time.monotonic()

    def audio(self, now_ms: int, frame_ms: int) -> list[dict[str, Any]]:
        """One frame, stamped by the stream's media clock (its start plus the samples sent),
        as Zoom's are: a late tick of a busy simulator sends its frame late, not with a jump
        in its timestamps (wall-clock stamps made a loaded run cut a segment every few
        seconds)."""
        del now_ms
        params = self.stream.media_params.get("audio") or DEFAULT_AUDIO
        rate = SAMPLE_RATES[int(params["sample_rate"])]
        count = rate * frame_ms // 1000
        offset = (self.samples % rate) * 2
        at_ms = int(self.stream.started_at * 1000) + self.samples * 1000 // rate
        self.samples += count
        speakers = _speaking(self.stream.meeting, at_ms)
        parts = {
            line["userId"]: (
                line["displayName"],
                _tone(int(line["toneHz"]), rate)[offset : offset + 2 * count],
            )
            for line in speakers
        }
        if int(params["data_opt"]) == AUDIO_MULTI_STREAMS:
            # Only who speaks is sent, up to 3 per frame (Zoom's limit).
            return [
                _audio_message(_user_id(uid), name, data, at_ms)
                for uid, (name, data) in list(parts.items())[:3]
            ]
        data = _mix([d for _, d in parts.values()]) if parts else bytes(2 * count)
        return [_audio_message(0, "", data, at_ms)]

    def texts(self, now_ms: int) -> list[dict[str, Any]]:
        script = self.stream.meeting.script
        if not script:
            return []
        start = int(script["startsAtMs"])
        out: list[dict[str, Any]] = []
        for i, line in enumerate(script["speech"]):
            end = start + int(line["to"] * 1000)
            if end <= now_ms and ("t", i) not in self.said and line.get("text"):
                self.said.add(("t", i))
                out.append(
                    {
                        "msg_type": MEDIA_DATA_TRANSCRIPT,
                        "content": {
                            "user_id": _user_id(line["userId"]),
                            "user_name": line["displayName"],
                            "data": line["text"],
                            "timestamp": end,
                            "start_time": start + int(line["from"] * 1000),
                            "end_time": end,
                        },
                    }
                )
        for i, line in enumerate(script["chat"]):
            at = start + int(line["at"] * 1000)
            if at <= now_ms and ("c", i) not in self.said:
                self.said.add(("c", i))
                out.append(
                    {
                        "msg_type": MEDIA_DATA_CHAT,
                        "content": {
                            "user_id": _user_id(line["userId"]),
                            "user_name": line["displayName"],
                            "data": line["message"],
                            "timestamp": at,
                        },
                    }
                )
        return out

    def events(self, now_ms: int) -> list[dict[str, Any]]:
        out = []
        wanted = self.stream.subscribed_events
        if not self.first_packet and FIRST_PACKET_TIMESTAMP in wanted:
            self.first_packet = True
            out.append(_event(FIRST_PACKET_TIMESTAMP, now_ms))
        # Who is here is followed from the app's subscription on: those present when it
        # subscribes are told as joining (the simulator's choice). Followed before it, a tick
        # between the app's handshake and its subscription lost the joins (a flaky test).
        if PARTICIPANT_JOIN in wanted or PARTICIPANT_LEAVE in wanted:
            present = {
                p.id: p.name for p in self.stream.meeting.present() if p.state == "in_meeting"
            }
            joined = [pid for pid in present if pid not in self.present]
            left = [pid for pid in self.present if pid not in present]
            if joined and PARTICIPANT_JOIN in wanted:
                people = [{"user_id": _user_id(p), "user_name": present[p]} for p in joined]
                out.append(_event(PARTICIPANT_JOIN, now_ms, participants=people))
            if left and PARTICIPANT_LEAVE in wanted:
                people = [{"user_id": _user_id(p), "user_name": self.present[p]} for p in left]
                out.append(_event(PARTICIPANT_LEAVE, now_ms, participants=people))
            self.present = present
        speakers = _speaking(self.stream.meeting, now_ms)
        current = speakers[0]["userId"] if speakers else None
        if current is not None and current != self.speaker and ACTIVE_SPEAKER_CHANGE in wanted:
            out.append(
                _event(
                    ACTIVE_SPEAKER_CHANGE,
                    now_ms,
                    current_id=_user_id(current),
                    name=speakers[0]["displayName"],
                )
            )
        if current is not None and ACTIVE_SPEAKER_CHANGE in wanted:
            self.speaker = current  # as for joins: followed from the subscription on
        return out


def _audio_message(user_id: int, name: str, data: bytes, now_ms: int) -> dict[str, Any]:
    return {
        "msg_type": MEDIA_DATA_AUDIO,
        "content": {
            "user_id": user_id,
            "user_name": name,
            "data": base64.b64encode(data).decode(),
            "timestamp": now_ms,
        },
    }


def _event(event_type: int, now_ms: int, **fields: Any) -> dict[str, Any]:
    return {
        "msg_type": EVENT_UPDATE,
        "event": {"event_type": event_type, "timestamp": now_ms, **fields},
    }


def epoch_ms() -> int:
    return int(time.time() * 1000)
