"""Whether the kernel killed a process of this container for memory, and that it is Chromium
the kernel kills, not the bot.

When the container goes over its memory limit the kernel kills one of its processes: Chromium,
given the scores below, not the bot. The bot then only sees its browser die, and the runtime's
own `OOMKilled` reason is not reliable either (measured on the real node: the same pod at 100Mi
ended `OOMKilled` in one run and `Error` in another). The kernel's counter of OOM kills in
this container's memory cgroup is a fact the bot can read, so the bot reports it itself.

For the bot to live to report it, the kernel must choose Chromium. It takes the process with
the highest `oom_score_adj` (then the largest), and Chromium sets its own: 0 for the browser
and its zygotes, 200 to 300 for its helpers (measured). The kubelet's value for the bot can be
higher (up to 999 in a Burstable pod), and where the runtime may not lower scores (this
project's real node, `restrict_oom_score_adj`) Chromium's stick. So the bot raises the
browser's whole process tree to the maximum, again on every tick for the processes Chromium
starts later: raising a score needs no privilege.
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


OOM_SCORE_ADJ_MAX = 1000


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants, from /proc/PID/task/TID/children."""
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
    return found


def prefer_for_oom_kill(pid: int) -> int:
    """Raise `pid` and every process below it to the kernel's first choice for an OOM kill;
    how many it raised (processes that went away meanwhile are skipped)."""
    raised = 0
    for process in process_tree(pid):
        score = Path(f"/proc/{process}/oom_score_adj")
        try:
            if int(score.read_text()) < OOM_SCORE_ADJ_MAX:
                score.write_text(str(OOM_SCORE_ADJ_MAX))
                raised += 1
        except (OSError, ValueError):
            continue
    return raised
