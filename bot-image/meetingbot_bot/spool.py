"""Files captured and not yet delivered, in the spool directory (an emptyDir): one writer (the
capture), one reader (the uploader). Each file is written whole, then renamed, with a small
JSON sidecar holding what the upload request needs; a file is removed only once the operator
has recorded it in the manifest."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from meetingbot_contract import ArtifactKind
from meetingbot_contract.artifacts import EXTENSIONS


@dataclass(frozen=True)
class SpoolFile:
    path: Path
    kind: ArtifactKind
    sequence: int
    size: int
    sha256: str
    start_ms: int
    end_ms: int
    speaker: str | None = None  # speaker-wav: whose audio

    @property
    def sidecar(self) -> Path:
        return self.path.with_name(self.path.name + ".json")


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def write(
        self, kind: ArtifactKind, sequence: int, data: bytes, start_ms: int, end_ms: int
    ) -> SpoolFile:
        """Write a whole file (events, a bot's segment)."""
        path = self.directory / f"{kind.value}-{sequence:06d}.{EXTENSIONS[kind]}"
        item = SpoolFile(
            path, kind, sequence, len(data), hashlib.sha256(data).hexdigest(), start_ms, end_ms
        )
        _atomic(path, data)
        self._sidecar(item)
        return item

    def _sidecar(self, item: SpoolFile) -> None:
        meta = {
            "kind": item.kind.value,
            "sequence": item.sequence,
            "size": item.size,
            "sha256": item.sha256,
            "startMs": item.start_ms,
            "endMs": item.end_ms,
            **({"speaker": item.speaker} if item.speaker else {}),
        }
        _atomic(item.sidecar, json.dumps(meta).encode())  # last: a file without it is unfinished

    def adopt(
        self,
        source: Path,
        kind: ArtifactKind,
        sequence: int,
        start_ms: int,
        end_ms: int,
        speaker: str | None = None,
    ) -> SpoolFile:
        """A file written in place (a segment appended to as it came): renamed into the spool
        with its sidecar, as `write` would have written it."""
        path = self.directory / f"{kind.value}-{sequence:06d}.{EXTENSIONS[kind]}"
        digest, size = hashlib.sha256(), 0
        with source.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 16), b""):
                digest.update(chunk)
                size += len(chunk)
            os.fsync(handle.fileno())
        source.replace(path)
        item = SpoolFile(path, kind, sequence, size, digest.hexdigest(), start_ms, end_ms, speaker)
        self._sidecar(item)
        return item

    def pending(self) -> list[SpoolFile]:
        """Every complete file, oldest first."""
        found = []
        for sidecar in self.directory.glob("*.json"):
            try:
                meta = json.loads(sidecar.read_text())
                found.append(
                    SpoolFile(
                        sidecar.with_name(sidecar.name.removesuffix(".json")),
                        ArtifactKind(meta["kind"]),
                        int(meta["sequence"]),
                        int(meta["size"]),
                        str(meta["sha256"]),
                        int(meta["startMs"]),
                        int(meta["endMs"]),
                        meta.get("speaker"),
                    )
                )
            except (OSError, ValueError, KeyError):
                continue
        return sorted(found, key=lambda f: (f.start_ms, f.kind.value, f.sequence))

    def remove(self, item: SpoolFile) -> None:
        item.sidecar.unlink(missing_ok=True)
        item.path.unlink(missing_ok=True)


def _atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.part")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
