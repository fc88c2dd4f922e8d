"""Zoom's RTMS wire protocol: the numbers of its messages, media bits, events, status codes and
stop reasons (Zoom's "Data type definitions" page; docs/rtms.md lists what we rely on), and
the messages the worker sends. JSON text frames both ways."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from meetingbot_contract.rtms import RtmsAudio, RtmsJoin


class Msg(IntEnum):
    """RTMS_MESSAGE_TYPE."""

    SIGNALING_HAND_SHAKE_REQ = 1
    SIGNALING_HAND_SHAKE_RESP = 2
    DATA_HAND_SHAKE_REQ = 3
    DATA_HAND_SHAKE_RESP = 4
    EVENT_SUBSCRIPTION = 5
    EVENT_UPDATE = 6
    CLIENT_READY_ACK = 7
    STREAM_STATE_UPDATE = 8
    SESSION_STATE_UPDATE = 9
    KEEP_ALIVE_REQ = 12
    KEEP_ALIVE_RESP = 13
    MEDIA_DATA_AUDIO = 14
    MEDIA_DATA_VIDEO = 15
    MEDIA_DATA_SHARE = 16
    MEDIA_DATA_TRANSCRIPT = 17
    MEDIA_DATA_CHAT = 18
    STREAM_CLOSE_REQ = 21
    STREAM_CLOSE_RESP = 22


class Media(IntEnum):
    """MEDIA_DATA_TYPE: bits of the media handshake's media_type."""

    AUDIO = 1
    VIDEO = 2
    DESKSHARE = 4
    TRANSCRIPT = 8
    CHAT = 16


class Event(IntEnum):
    """RTMS_EVENT_TYPE (EVENT_UPDATE's event.event_type)."""

    FIRST_PACKET_TIMESTAMP = 1
    ACTIVE_SPEAKER_CHANGE = 2
    PARTICIPANT_JOIN = 3
    PARTICIPANT_LEAVE = 4


class Status(IntEnum):
    """RTMS_STATUS_CODE, the ones the worker tells apart."""

    OK = 0
    CONNECTION_TIMEOUT = 1
    SESSION_NOT_FOUND = 13
    INVALID_SIGNATURE = 15
    DUPLICATE_SIGNAL_REQUEST = 17


STREAM_TERMINATED = 4  # RTMS_STREAM_STATE
STOP_BC_MEETING_ENDED = 6  # RTMS_STOP_REASON (others are passed on as numbers)
AUDIO_MIXED_STREAM = 1  # MEDIA_DATA_OPTION
AUDIO_MULTI_STREAMS = 2  # one track per speaker
SR_16K = 1  # AUDIO_SAMPLE_RATE
PROTOCOL_VERSION = 1


def _signed(kind: Msg, join: RtmsJoin, sequence: int) -> dict[str, Any]:
    """What both handshakes carry: the stream's ids and the signature that opens it."""
    return {
        "msg_type": kind,
        "protocol_version": PROTOCOL_VERSION,
        "sequence": sequence,
        "meeting_uuid": join.meeting_uuid,
        "rtms_stream_id": join.stream_id,
        "signature": join.signature.get_secret_value(),
    }


def signaling_handshake(join: RtmsJoin, sequence: int) -> dict[str, Any]:
    # Zoom keeps up to 60 s of audio from the webhook until the worker is ready.
    return {**_signed(Msg.SIGNALING_HAND_SHAKE_REQ, join, sequence), "buffer_data": True}


def media_types(join: RtmsJoin) -> int:
    bits = 0 if join.audio == RtmsAudio.NONE else Media.AUDIO
    if join.transcript:
        bits |= Media.TRANSCRIPT
    if join.chat:
        bits |= Media.CHAT
    return bits


def media_handshake(join: RtmsJoin, sequence: int) -> dict[str, Any]:
    return {
        **_signed(Msg.DATA_HAND_SHAKE_REQ, join, sequence),
        "media_type": media_types(join),
        "payload_encryption": False,
        "media_params": {
            "audio": {
                "content_type": 2,  # RAW_AUDIO
                "sample_rate": SR_16K,
                "channel": 1,  # mono
                "codec": 1,  # L16
                "data_opt": (
                    AUDIO_MULTI_STREAMS
                    if join.audio == RtmsAudio.PER_SPEAKER
                    else AUDIO_MIXED_STREAM
                ),
                "send_rate": join.send_rate_ms,
            }
        },
    }


def subscription() -> dict[str, Any]:
    events = (Event.ACTIVE_SPEAKER_CHANGE, Event.PARTICIPANT_JOIN, Event.PARTICIPANT_LEAVE)
    return {
        "msg_type": Msg.EVENT_SUBSCRIPTION,
        "events": [{"event_type": int(e), "subscribe": True} for e in events],
    }


def ready(join: RtmsJoin) -> dict[str, Any]:
    return {"msg_type": Msg.CLIENT_READY_ACK, "rtms_stream_id": join.stream_id}


def keep_alive_answer(request: dict[str, Any]) -> dict[str, Any]:
    return {"msg_type": Msg.KEEP_ALIVE_RESP, "timestamp": request.get("timestamp")}


def close_request(join: RtmsJoin) -> dict[str, Any]:
    return {"msg_type": Msg.STREAM_CLOSE_REQ, "rtms_stream_id": join.stream_id}
