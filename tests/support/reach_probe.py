"""Run inside a pod (`python3 - < reach_probe.py '<targets as JSON>'`): for each target, either
a name to resolve or a host and port to open a TCP connection to, whether it was reached.
Standard library only: it runs in whatever image the pod has. Prints one JSON object."""

import json
import socket
import sys

TIMEOUT = 4.0


def reach(target: dict[str, object]) -> str:
    try:
        if "resolve" in target:
            return "reached " + socket.gethostbyname(str(target["resolve"]))
        with socket.create_connection(
            (str(target["host"]), int(str(target["port"]))), timeout=TIMEOUT
        ):
            return "reached"
    except OSError as error:  # refused (a REJECT), timed out (a DROP), or no answer to DNS
        return f"not reached: {type(error).__name__}: {error}"


targets = json.loads(sys.argv[1])
print(json.dumps({name: reach(target) for name, target in targets.items()}))
