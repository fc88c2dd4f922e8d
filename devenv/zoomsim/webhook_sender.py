"""Zoom's webhook deliveries, sent from a thread with an event loop of its own.

Zoom sends webhooks from a service of its own and times the 3 s an endpoint has to answer on
that service's clock, not on a media server busy with a thousand streams. The simulator is one
process: posting webhooks from the loop that also pumps every stream's media made that loop's
lag part of each answer's time (measured with 1000 RTMS streams starting together: answers seen
after 6-8 s, the 3 s timeout firing late, while the operator's handler took at most 1 s). In a
thread of their own the deliveries still share the CPU (the GIL), but a long turn of the media
loop no longer holds their timers and reads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any


class WebhookSender:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._pending: set[concurrent.futures.Future[None]] = set()  # held until done

    def send(self, delivery: Coroutine[Any, Any, None]) -> None:
        """Run the delivery (its tries and what it records) on the sender's loop."""
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(
                    target=self._loop.run_forever, name="zoomsim-webhooks", daemon=True
                ).start()
            loop = self._loop
        future = asyncio.run_coroutine_threadsafe(delivery, loop)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)


SENDER = WebhookSender()
