"""Where the operator's memory goes, for benchmarks: with MEETINGBOT_TRACEMALLOC_FILE set the
operator traces its allocations from the start and writes the largest (by source line) to
that file when it stops. Off by default: tracing costs CPU and memory of its own."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

ENV = "MEETINGBOT_TRACEMALLOC_FILE"
# More than one frame: the report also shows who called the largest allocators (slower).
FRAMES_ENV = "MEETINGBOT_TRACEMALLOC_FRAMES"
TOP = 25


def start() -> None:
    if os.environ.get(ENV):
        tracemalloc.start(int(os.environ.get(FRAMES_ENV, "1")))


def write_report() -> None:
    target = os.environ.get(ENV)
    if not target or not tracemalloc.is_tracing():
        return
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    current, peak = tracemalloc.get_traced_memory()
    lines = [f"traced now {current / 1e6:.1f} MB, peak {peak / 1e6:.1f} MB; largest by line:"]
    for stat in snapshot.statistics("lineno")[:TOP]:
        frame = stat.traceback[0]
        where = frame.filename.split("site-packages/")[-1]
        lines.append(f"{stat.size / 1e6:8.2f} MB {stat.count:8d} blocks  {where}:{frame.lineno}")
    if tracemalloc.get_traceback_limit() > 1:
        for stat in snapshot.statistics("traceback")[:5]:
            lines.append(f"\n{stat.size / 1e6:.2f} MB {stat.count} blocks, allocated from:")
            lines.extend(f"  {line}" for line in stat.traceback.format()[-24:])
    Path(target).write_text("\n".join(lines) + "\n")
