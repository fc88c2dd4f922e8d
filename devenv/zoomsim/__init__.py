"""A Zoom simulator for tests: REST API, meeting side and a fake Meeting SDK (docs/zoom.md)."""

from devenv.zoomsim.admin_client import SimAdmin
from devenv.zoomsim.server import ZoomSim


def fake_sdk_url(sim_url: str) -> str:
    """The simulator's fake Meeting SDK script, for the operator's `bot_sdk_url` setting."""
    return f"{sim_url}/sim/sdk/zoom-meeting-embedded.js"


__all__ = ["SimAdmin", "ZoomSim", "fake_sdk_url"]
