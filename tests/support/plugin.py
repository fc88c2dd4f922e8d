"""Running `kubectl meetingbot` as a user does: the installed executable, through kubectl's
plugin lookup (kubectl finds kubectl-meetingbot on PATH), against the local cluster."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from devenv.cluster import cluster


def plugin_env() -> dict[str, str]:
    """PATH with the venv's bin (where pip put kubectl-meetingbot), KUBECONFIG the cluster's."""
    venv_bin = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(cluster.kubeconfig_path()),
    }


def command(*args: str) -> list[str]:
    return [str(cluster.Binaries.in_cache().kubectl), "meetingbot", *args]


def run_plugin(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args), env=plugin_env(), capture_output=True, text=True, timeout=timeout
    )


async def start_plugin(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *command(*args),
        env=plugin_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
