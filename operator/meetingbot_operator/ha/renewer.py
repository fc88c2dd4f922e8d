"""The leader's renewals of its Leases, on a thread of their own.

While a replica leads, its event loop runs the operator: in a burst of a thousand bots it has
thousands of ready tasks, and a renewal that waits its turn behind them came more than a lease
duration late (measured: three replicas on two cores, 1000 bots, a 6 s Lease: a survivor took a
busy leader's shard, which then found out and exited). client-go renews from a goroutine the
work queue cannot starve; this is the same: a thread with its own event loop and its own API
connection looks at the Leases every `retry` seconds (the GIL gives it its turn within
milliseconds), and tells the operator's loop when to stop: a shard lost (or not renewed for
the renew deadline), or the shards to lead changed. It renews what this replica holds until
it is halted, after the operator has stopped acting.

When the change is only more shards to lead (a replica died, or left) and the operator can
take them in place (`gain`: its watches are cluster-wide), this thread takes their Leases and
hands them to the operator, which goes on leading what it led (app.py's Operator.gain).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import threading
from collections.abc import Callable

from meetingbot_operator.ha.lease import LeadershipLost
from meetingbot_operator.ha.shard_election import ShardElector
from meetingbot_operator.kube.client import KubeClient

log = logging.getLogger(__name__)


class Stopped(enum.Enum):
    LOST = "lost"  # a shard lost: stop acting now
    MOVED = "moved"  # a shard to give up, or one to take: stop and start again


class Renewer:
    def __init__(
        self,
        elector: ShardElector,
        tell: Callable[[Stopped, str], None],
        gain: Callable[[frozenset[int]], None] | None = None,
    ) -> None:
        """`tell` is called on the operator's loop, once, when the operator must stop. `gain`,
        if given, is called there with the shards this thread took to lead in place."""
        self._elector = elector
        self._tell = tell
        self._gain = gain
        self._loop = asyncio.get_running_loop()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease renewals", daemon=True)
        self.stopped: Stopped | None = None

    def start(self) -> None:
        self._thread.start()

    async def halt(self) -> None:
        """Stop renewing (the operator has stopped acting); wait for the thread to end."""
        self._halt.set()
        await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        asyncio.run(self._renew())

    async def _renew(self) -> None:
        api = KubeClient.connect()
        elector = self._elector
        try:
            with elector.bound(api):
                while not self._halt.wait(elector.timing.retry):
                    try:
                        wanted = await elector.look()
                    except LeadershipLost as lost:
                        self._stop(Stopped.LOST, str(lost))
                        return
                    if self._halt.is_set():
                        return
                    if self.stopped is not None or not elector.moves(wanted):
                        continue
                    if self._gain is not None and elector.held <= wanted:
                        # Only more to lead: taken here, led on without a stop.
                        before = set(elector.held)
                        await elector.acquire(wanted - elector.held)
                        if taken := frozenset(elector.held - before):
                            self._loop.call_soon_threadsafe(self._gain, taken)
                    else:
                        # Told once, and the shards held are renewed on until the operator
                        # has stopped acting and halts this thread: its shutdown may outlast a
                        # Lease (measured: 33 s with 1000 bots' connections open), and a
                        # shard not renewed meanwhile was taken by another replica while this
                        # one still held it, which then found out and exited.
                        self._stop(Stopped.MOVED, "the shards to lead changed")
        except Exception as error:  # never a silent end: the operator must not lead unrenewed
            log.exception("the Lease renewals failed")
            self._stop(Stopped.LOST, f"the Lease renewals failed: {error!r}")
        finally:
            with contextlib.suppress(Exception):
                await api.close()

    def restart(self, message: str) -> None:
        """On the operator's loop: stop and start again after all (a shard handed over by
        `gain` could not be taken in place)."""
        if self.stopped is None:
            self.stopped = Stopped.MOVED
            self._tell(Stopped.MOVED, message)

    def _stop(self, why: Stopped, message: str) -> None:
        self.stopped = why
        self._loop.call_soon_threadsafe(self._tell, why, message)
