"""Per-speaker RTMS audio (recorder.py): each speaker's frames go to their own speaker-wav
files, cut where the speaker pauses, named in the spool's sidecar and so in the upload; the
operator takes a speaker only with speaker-wav files."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import pytest

from meetingbot_bot.rtms.recorder import RtmsCapture
from meetingbot_bot.spool import Spool
from meetingbot_contract import ArtifactKind, UploadRequest
from meetingbot_operator.artifacts.service import UploadRefused, _sane

FRAME = b"\x01\x00" * 320  # 20 ms at 16 kHz


def test_each_speaker_has_files_of_their_own(tmp_path: Path) -> None:
    capture = RtmsCapture(Spool(tmp_path), segment_seconds=10, per_speaker=True)
    t = 1_000_000
    for i in range(50):  # 1 s of speaker 1, then 1 s of both, then a pause, then 1 s of 1
        capture.audio(FRAME, t + 20 * i, "1", "Ana")
    for i in range(50, 100):
        capture.audio(FRAME, t + 20 * i, "1", "Ana")
        capture.audio(FRAME, t + 20 * i, "2", "Ben")
    for i in range(150, 200):
        capture.audio(FRAME, t + 20 * i, "1", "Ana")
    capture.finish(t + 5000)
    files = [f for f in Spool(tmp_path).pending() if f.kind != ArtifactKind.EVENTS]
    assert {f.kind for f in files} == {ArtifactKind.SPEAKER_WAV}
    spans = sorted((f.speaker, f.start_ms - t, f.end_ms - t) for f in files)
    # Ana's pause of a second cuts her track in two; Ben spoke once.
    assert spans == [("1", 0, 2000), ("1", 3000, 4000), ("2", 1000, 2000)]
    first = next(f for f in files if f.speaker == "2")
    with wave.open(io.BytesIO(first.path.read_bytes())) as audio:
        assert audio.getnframes() == 50 * 320
    assert not list(tmp_path.glob(".*.part"))  # nothing left half-written


def test_a_speaker_goes_with_speaker_wav_files_only() -> None:
    def request(kind: ArtifactKind, speaker: str | None) -> UploadRequest:
        return UploadRequest(
            attempt=1, kind=kind, sequence=1, size=1, sha256="0" * 64,
            start_ms=0, end_ms=1, speaker=speaker,
        )  # fmt: skip

    _sane(request(ArtifactKind.SPEAKER_WAV, "16777"))
    _sane(request(ArtifactKind.AUDIO_WAV, None))
    for kind, speaker in ((ArtifactKind.SPEAKER_WAV, None), (ArtifactKind.AUDIO_WAV, "1")):
        with pytest.raises(UploadRefused):
            _sane(request(kind, speaker))
