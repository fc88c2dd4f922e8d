"""What the benches read of a process from /proc."""

from __future__ import annotations

from pathlib import Path


def rss_mb(pid: int) -> float:
    """Resident memory now (0 once the process is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
