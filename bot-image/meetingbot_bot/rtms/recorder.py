"""What a stream worker keeps of an RTMS stream, written to the spool as a bot's capture is
(meetingbot_contract/artifacts.py): audio segments of `segment_seconds` as WAV (Zoom's L16,
unencoded), and events files of EventLines: who joined and left, who spoke when (from Zoom's
active-speaker changes: a turn lasts until the next change or the end), the transcript (as
`caption` lines, each with its start and end) and chat.

Everything is stamped with Zoom's timestamps (milliseconds since the epoch), the clock of the
audio. A segment is cut at `segment_seconds` of audio, or early where the audio jumps (a
reconnection lost some): the manifest then shows the gap. A crash loses at most the segment in
progress and the events since the last cut: at most `segment_seconds` (30 s at most).
"""

from __future__ import annotations

import contextlib
import logging
import wave
from collections.abc import Callable
from pathlib import Path

from meetingbot_bot.spool import Spool
from meetingbot_contract import ArtifactKind, EventLine
from meetingbot_contract.rtms import RTMS_SAMPLE_RATE

log = logging.getLogger(__name__)

# Audio that resumes later than this after where the last frame ended starts a new segment.
JUMP_MS = 200


class RtmsCapture:
    def __init__(
        self,
        spool: Spool,
        segment_seconds: int,
        *,
        audio: bool = True,
        events: bool = True,
        sequence_from: int = 0,
    ) -> None:
        self.spool = spool
        self.segment_ms = segment_seconds * 1000
        self.keep_audio = audio
        self.keep_events = events
        self.audio_sequence = sequence_from
        self.events_sequence = sequence_from
        self.on_line: Callable[[EventLine], None] | None = None  # the live stream's
        self.on_audio: Callable[[int, bytes], None] | None = None
        self.files = 0  # written to the spool (the uploader's cue)
        # The segment in progress is written as it comes (a WAV file in the spool, its header
        # completed at the cut): a stream holds no audio in memory (measured: a 30 s segment
        # held in memory was 1 MB a stream).
        self._segment: wave.Wave_write | None = None
        self._segment_path: Path | None = None
        self._segment_bytes = 0
        self._audio_start: int | None = None
        self._audio_end = 0
        self._lines: list[EventLine] = []
        self._window_start: int | None = None
        self._speaker: tuple[str, str, int] | None = None  # user id, name, since

    # --- the Sink (session.py) -----------------------------------------------------------------

    def audio(self, pcm: bytes, timestamp_ms: int, user_id: str, name: str) -> None:
        if self.on_audio is not None:
            self.on_audio(timestamp_ms, pcm)
        if not self.keep_audio:
            return
        if self._audio_start is not None and abs(timestamp_ms - self._audio_end) > JUMP_MS:
            self._cut_audio()
        if self._audio_start is None:
            self._audio_start = self._audio_end = timestamp_ms
        if not self._append(pcm):
            self._audio_start = None
            return
        self._audio_end = timestamp_ms + len(pcm) * 1000 // (2 * RTMS_SAMPLE_RATE)
        if self._audio_end - self._audio_start >= self.segment_ms:
            self._cut_audio()

    def transcript(self, user_id: str, name: str, text: str, start_ms: int, end_ms: int) -> None:
        self._keep(
            EventLine(
                t=end_ms,
                type="caption",
                user_id=user_id,
                name=name,
                text=text,
                start_ms=start_ms,
                end_ms=end_ms,
            )
        )

    def chat(self, user_id: str, name: str, text: str, at_ms: int) -> None:
        self._keep(EventLine(t=at_ms, type="chat", user_id=user_id, name=name, text=text))

    def speaker(self, user_id: str, name: str, at_ms: int) -> None:
        self._close_turn(at_ms)
        self._speaker = (user_id, name, at_ms)
        if self.on_line is not None and self.keep_events:
            self.on_line(EventLine(t=at_ms, type="speaking", user_id=user_id, name=name))

    def roster(self, joined: bool, people: list[tuple[str, str]], at_ms: int) -> None:
        for user_id, name in people:
            if not joined and self._speaker is not None and self._speaker[0] == user_id:
                self._close_turn(at_ms)
            kind = "join" if joined else "leave"
            self._keep(EventLine(t=at_ms, type=kind, user_id=user_id, name=name))

    # --- the worker's clock --------------------------------------------------------------------

    def tick(self, now_ms: int) -> None:
        """Once a second: cut the events file at each segment window."""
        if self._window_start is None:
            self._window_start = now_ms
        if now_ms - self._window_start >= self.segment_ms:
            self._cut_events(now_ms)

    def finish(self, now_ms: int) -> None:
        """The stream ended (or the worker is leaving it): keep everything still held."""
        self._close_turn(now_ms)
        self._cut_audio()
        self._cut_events(now_ms)

    # --- writing -------------------------------------------------------------------------------

    def _keep(self, line: EventLine) -> None:
        if not self.keep_events:
            return
        if self._window_start is None:
            self._window_start = line.t
        self._lines.append(line)
        if self.on_line is not None:
            self.on_line(line)

    def _close_turn(self, at_ms: int) -> None:
        if self._speaker is None:
            return
        user_id, name, since = self._speaker
        self._speaker = None
        self._keep(
            EventLine(
                t=at_ms, type="speech", user_id=user_id, name=name, start_ms=since, end_ms=at_ms
            )
        )

    def _append(self, pcm: bytes) -> bool:
        """Add to the segment in progress (opened on its first frame); False if the disk
        refused it (the frame is lost, the recording goes on)."""
        try:
            if self._segment is None:
                self._segment_path = self.spool.directory / ".audio-wav.part"
                segment = wave.open(str(self._segment_path), "wb")  # noqa: SIM115 - kept open
                segment.setnchannels(1)
                segment.setsampwidth(2)
                segment.setframerate(RTMS_SAMPLE_RATE)
                self._segment, self._segment_bytes = segment, 0
            self._segment.writeframesraw(pcm)
            self._segment_bytes += len(pcm)
        except OSError as error:
            log.warning("audio was not kept", extra={"error": type(error).__name__})
            self._drop_segment()
            return False
        return True

    def _drop_segment(self) -> None:
        if self._segment is not None:
            with contextlib.suppress(OSError, wave.Error):
                self._segment.close()
        if self._segment_path is not None:
            self._segment_path.unlink(missing_ok=True)
        self._segment, self._segment_path, self._segment_bytes = None, None, 0

    def _cut_audio(self) -> None:
        segment, path = self._segment, self._segment_path
        start, self._audio_start = self._audio_start, None
        if segment is None or path is None or start is None or not self._segment_bytes:
            self._drop_segment()
            return
        self._segment = self._segment_path = None
        self._segment_bytes = 0
        self.audio_sequence += 1
        try:
            segment.close()  # writes the header's sizes
            self.spool.adopt(
                path, ArtifactKind.AUDIO_WAV, self.audio_sequence, start, self._audio_end
            )
            self.files += 1
        except (OSError, wave.Error) as error:
            path.unlink(missing_ok=True)
            log.warning("an audio segment was not kept", extra={"error": type(error).__name__})

    def _cut_events(self, now_ms: int) -> None:
        start = self._window_start if self._window_start is not None else now_ms
        self._window_start = now_ms
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        self.events_sequence += 1
        data = "".join(line.line() + "\n" for line in lines).encode()
        try:
            self.spool.write(ArtifactKind.EVENTS, self.events_sequence, data, start, now_ms)
            self.files += 1
        except OSError as error:
            log.warning("an events file was not kept", extra={"error": type(error).__name__})
