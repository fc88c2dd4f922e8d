"""Whether the kernel killed a process of this container for memory.

When the container goes over its memory limit the kernel kills its largest process, which is
Chromium, not the bot. The bot then only sees its browser die, and the runtime's own
`OOMKilled` reason is not reliable either (measured on the real node: the same pod at 100Mi
ended `OOMKilled` in one run and `Error` in another). The kernel's counter of OOM kills in
this container's memory cgroup is a fact the bot can read, so the bot reports it itself.
"""

from __future__ import annotations

from pathlib import Path

# cgroup v2 (memory.events) and cgroup v1 (memory.oom_control, kernels 4.13+): both have an
# `oom_kill N` line; a container sees its own cgroup at these paths.
COUNTERS = (
    Path("/sys/fs/cgroup/memory.events"),
    Path("/sys/fs/cgroup/memory/memory.oom_control"),
)


def oom_kills(paths: tuple[Path, ...] = COUNTERS) -> int | None:
    """The number of OOM kills in this container's memory cgroup, or None when unreadable."""
    for path in paths:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
    return None


class OomWatch:
    """Remembers the counter at the bot's start, so that only kills since then count."""

    def __init__(self, paths: tuple[Path, ...] = COUNTERS) -> None:
        self.paths = paths
        self.start = oom_kills(paths)

    def killed_since_start(self) -> int:
        now = oom_kills(self.paths)
        if now is None:
            return 0
        return now - (self.start or 0)
