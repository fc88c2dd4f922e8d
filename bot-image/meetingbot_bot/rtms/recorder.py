"""What a stream worker keeps of an RTMS stream, written to the spool as a bot's capture is
(meetingbot_contract/artifacts.py): audio segments of `segment_seconds` as WAV (Zoom's L16,
unencoded; with `per_speaker`, one track per speaker as `speaker-wav` files instead, each cut
at `segment_seconds` or where its speaker pauses), and events files of EventLines: who joined
and left, who spoke when (from Zoom's active-speaker changes: a turn lasts until the next
change or the end), the transcript (as `caption` lines, each with its start and end) and chat.

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
        per_speaker: bool = False,
        sequence_from: int = 0,
    ) -> None:
        self.spool = spool
        self.segment_ms = segment_seconds * 1000
        self.keep_audio = audio
        self.keep_events = events
        self.per_speaker = per_speaker  # one track per speaker (speaker-wav), not the mix
        self.audio_sequence = sequence_from
        self.speaker_sequence = sequence_from
        self.events_sequence = sequence_from
        self.on_line: Callable[[EventLine], None] | None = None  # the live stream's
        self.on_audio: Callable[[int, bytes], None] | None = None
        self.files = 0  # written to the spool (the uploader's cue)
        # The segments in progress, written as they come (a WAV file in the spool, its header
        # completed at the cut): a stream holds no audio in memory (measured: a 30 s segment
        # held in memory was 1 MB a stream). The mix under "", each speaker under its id.
        self._tracks: dict[str, _Track] = {}
        self._parts = 0
        self._lines: list[EventLine] = []
        self._window_start: int | None = None
        self._speaker: tuple[str, str, int] | None = None  # user id, name, since

    # --- the Sink (session.py) -----------------------------------------------------------------

    def audio(self, pcm: bytes, timestamp_ms: int, user_id: str, name: str) -> None:
        if self.on_audio is not None and not self.per_speaker:
            self.on_audio(timestamp_ms, pcm)
        if not self.keep_audio:
            return
        key = user_id if self.per_speaker else ""
        track = self._tracks.get(key)
        if track is not None and abs(timestamp_ms - track.end_ms) > JUMP_MS:
            self._cut(key)  # a jump (a reconnection; a speaker's pause): a new segment
            track = None
        if track is None:
            track = self._open(key, timestamp_ms)
            if track is None:
                return
        if not track.append(pcm, timestamp_ms):
            self._tracks.pop(key, None)
            track.discard()
            return
        if track.end_ms - track.start_ms >= self.segment_ms:
            self._cut(key)

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
        for key in list(self._tracks):
            self._cut(key)
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

    def _open(self, key: str, start_ms: int) -> _Track | None:
        self._parts += 1
        path = self.spool.directory / f".audio-{self._parts}.part"
        try:
            track = _Track(path, start_ms)
        except OSError as error:
            log.warning("audio was not kept", extra={"error": type(error).__name__})
            return None
        self._tracks[key] = track
        return track

    def _cut(self, key: str) -> None:
        track = self._tracks.pop(key, None)
        if track is None:
            return
        if not track.bytes:
            track.discard()
            return
        if key:
            self.speaker_sequence += 1
            kind, sequence, speaker = ArtifactKind.SPEAKER_WAV, self.speaker_sequence, key
        else:
            self.audio_sequence += 1
            kind, sequence, speaker = ArtifactKind.AUDIO_WAV, self.audio_sequence, None
        try:
            track.close()  # writes the header's sizes
            self.spool.adopt(track.path, kind, sequence, track.start_ms, track.end_ms, speaker)
            self.files += 1
        except (OSError, wave.Error) as error:
            track.path.unlink(missing_ok=True)
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


class _Track:
    """One WAV segment being written as its audio comes."""

    def __init__(self, path: Path, start_ms: int) -> None:
        self.path = path
        self.start_ms = self.end_ms = start_ms
        self.bytes = 0
        self._wav = wave.open(str(path), "wb")  # noqa: SIM115 - open until the cut
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(RTMS_SAMPLE_RATE)

    def append(self, pcm: bytes, timestamp_ms: int) -> bool:
        """False if the disk refused it (the segment is dropped, the recording goes on)."""
        try:
            self._wav.writeframesraw(pcm)
        except OSError as error:
            log.warning("audio was not kept", extra={"error": type(error).__name__})
            return False
        self.bytes += len(pcm)
        self.end_ms = timestamp_ms + len(pcm) * 1000 // (2 * RTMS_SAMPLE_RATE)
        return True

    def close(self) -> None:
        self._wav.close()

    def discard(self) -> None:
        with contextlib.suppress(OSError, wave.Error):
            self._wav.close()
        self.path.unlink(missing_ok=True)
