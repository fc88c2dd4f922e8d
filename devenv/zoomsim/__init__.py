"""A Zoom simulator for tests: REST API, meeting side and a fake Meeting SDK (ZOOM.md)."""

from devenv.zoomsim.admin_client import SimAdmin
from devenv.zoomsim.server import ZoomSim

__all__ = ["SimAdmin", "ZoomSim"]
