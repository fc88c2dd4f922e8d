"""`python -m meetingbot_operator`: run the operator with settings from MEETINGBOT_* variables."""

from __future__ import annotations

import sys

# kopf imports kubernetes_asyncio and kubernetes whenever they are importable (to recognise
# their models and to log in with them): 35 MB of RSS for kubernetes_asyncio, 10 MB for
# kubernetes, clients the operator does not use (kube/client.py is ours). The image installs
# neither; a development environment does (the tests, the Python client), so hide both: the
# operator the tests and benchmarks run imports what the image's does.
sys.modules.setdefault("kubernetes_asyncio", None)  # type: ignore[arg-type]
sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]

import asyncio
import logging
import os
import socket
from typing import Any

import kopf
from kopf._core.engines.peering import Identity  # the NewType kopf.run expects; not re-exported

from meetingbot_contract import logs
from meetingbot_operator import allocations, metrics
from meetingbot_operator.ha import election
from meetingbot_operator.kube import client
from meetingbot_operator.settings import Settings


def main() -> None:
    allocations.start()  # only with MEETINGBOT_TRACEMALLOC_FILE (benchmarks)
    client.tls_read_buffers()  # before any connection (kube/client.py)
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    # kopf logs every liveness probe at INFO: noise in `kubectl logs`.
    logging.getLogger("kopf.activities.probe").setLevel(logging.WARNING)
    import meetingbot_operator.handlers  # noqa: F401 - registers the handlers

    # asyncio's own event loop, not uvloop: uvloop's sock_connect is not cancellation-safe
    # (MagicStack/uvloop#653, open): when the API server restarted under the operator, a
    # reconnecting watch met "RuntimeError: File descriptor 12 is used by transport", which
    # kopf treats as fatal, and the operator stopped (the bench's relist run).

    identity = settings.pod_name or f"{socket.gethostname()}-{os.getpid()}"
    options: dict[str, Any] = {
        # One active replica per shard: alone, or the leader (ha/election.py); never kopf's
        # peering.
        "standalone": True,
        "clusterwide": not settings.namespaces,
        "namespaces": settings.namespaces,
        "liveness_endpoint": f"http://0.0.0.0:{settings.health_port}/healthz",
        # Our own identity: kopf's default asks the passwd database for the user's name, which
        # fails for a UID without an entry (the chart's 10001, OpenShift's arbitrary UIDs).
        "identity": Identity(identity),
    }
    if not settings.leader_election:
        metrics.LEADER.set(1)
        metrics.SHARD_LEADER.labels("0").set(1)
        kopf.run(**options)
        return
    sys.exit(asyncio.run(election.run(settings, identity, options)))


if __name__ == "__main__":
    main()
