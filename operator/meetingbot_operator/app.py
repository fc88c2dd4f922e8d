"""Everything built once at startup and shared: the API client, the services, the servers for
bot reports and metrics, and the periodic sweep."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp

from meetingbot_api import GROUP, VERSION
from meetingbot_operator import metrics
from meetingbot_operator.artifacts.service import ArtifactService
from meetingbot_operator.ha.routing import Router
from meetingbot_operator.ha.shards import ShardSet
from meetingbot_operator.identities.service import Identities
from meetingbot_operator.keys import LoadedKey, ReportTokens, load_key
from meetingbot_operator.kube.client import ApiError, KubeClient, custom_path, throttle_delay
from meetingbot_operator.kube.events import EventRecorder
from meetingbot_operator.kube.secret_watch import secret_watch
from meetingbot_operator.kube.verbs import Kube
from meetingbot_operator.kube.watch import ObjectWatch, core
from meetingbot_operator.meetingbot import reports
from meetingbot_operator.meetingbot.children import BOT_LABEL
from meetingbot_operator.meetingbot.controller import BotController
from meetingbot_operator.meetingbotschedule.notices import MeetingNotices
from meetingbot_operator.meetingbotschedule.service import ScheduleService
from meetingbot_operator.meetingstream import worker_routes
from meetingbot_operator.meetingstream.service import StreamService
from meetingbot_operator.meetingstream.workers import WorkerDesk
from meetingbot_operator.servers import Servers
from meetingbot_operator.settings import Settings
from meetingbot_operator.webhooks.service import WebhookService
from meetingbot_operator.zoom import webhooks as zoom_webhooks
from meetingbot_operator.zoomaccount.service import AccountService
from meetingbot_operator.zoomusergrant import pages
from meetingbot_operator.zoomusergrant.links import GrantLinks
from meetingbot_operator.zoomusergrant.service import GrantService

log = logging.getLogger(__name__)
ACCOUNT_TICK = 5.0
# A step of Operator.stop that took this long is named in its log line.
SLOW_STOP_STEP = 0.2
# The kinds kopf watches for the operator (handlers.py), in the order a shard taken in place
# lists them: accounts and grants before what uses them.
KOPF_KINDS = ("zoomaccounts", "zoomusergrants", "meetingbotschedules", "meetingstreams")
# Tries at listing a shard taken in place before the operator starts again instead.
GAIN_TRIES = 3


class Operator:
    def __init__(
        self, settings: Settings, kube: Kube, tokens: ReportTokens, shards: ShardSet | None = None
    ) -> None:
        self.settings = settings
        self.kube = kube
        # The shards this process leads (ha/shards.py): every watch event outside them is
        # dropped before any service sees it, so each service knows only its shards' objects.
        self.shards = shards or ShardSet()
        # One owner of who holds which service user and of the shared ZAKs (identities/).
        self.identities = Identities(settings.user_recheck_seconds)
        self.accounts = AccountService(
            kube,
            settings,
            self.identities,
            on_change=self._account_changed,
            observe_zoom_call=metrics.observe_zoom_call,
        )
        self.events = EventRecorder(kube, settings.events_per_second)
        self.grants = GrantService(
            kube,
            self.accounts,
            settings,
            GrantLinks(tokens.derived_key("zoom-user-grants")),
            on_change=self._grant_changed,
        )
        # One owner of the bots' buckets, manifests and delivery summaries (artifacts/).
        self.artifacts = ArtifactService(
            kube,
            settings,
            spec_of=lambda key: self.bots.artifacts_spec(key),
            changed=lambda key: self.bots.queue.trigger(key),
        )
        # One owner of the webhook deliveries in flight (webhooks/; the outboxes are in status).
        self.webhooks = WebhookService(
            kube, settings, changed=lambda key: self.bots.queue.trigger(key)
        )
        self.bots = BotController(
            kube,
            self.accounts,
            self.identities,
            settings,
            self.grants,
            tokens,
            self.events.post,
            self.artifacts,
            self.webhooks,
            shards=self.shards,
        )
        # One owner of the MeetingBotSchedules and of their passes (meetingbotschedule/).
        self.schedules = ScheduleService(kube, self.accounts, self.grants, settings)
        self.meeting_notices = MeetingNotices(
            self.accounts, self.grants, self.schedules.readers, self.schedules.read_again
        )
        # One owner of the MeetingStreams known and the RTMS webhooks received (meetingstream/).
        self.stream_webhooks = WebhookService(
            kube,
            settings,
            changed=lambda key: self.streams.webhook_progressed(key),
            plural="meetingstreams",
        )
        self.streams = StreamService(
            kube,
            self.accounts.client,
            settings.rtms_servers,
            self.stream_webhooks,
            stream_endpoints=settings.webhook_endpoints,
            sharded=self.shards.sharded,
        )
        # One owner of which stream worker receives which stream, and of the streams' files.
        self.stream_workers = WorkerDesk(kube, self.streams, settings)
        self._servers = Servers()
        self._sweeper: asyncio.Task[None] | None = None
        self._gains: set[asyncio.Task[None]] = set()  # shards being taken in place
        self._collector = metrics.PhaseCollector(
            self.bots.cache.phases,
            lambda: self.bots.cache.oldest_starting_seconds(datetime.now(UTC)),
            self.grants.readiness,
        )
        # Credentials Secrets: a change or deletion re-verifies the accounts using them at once.
        self.secret_watch = secret_watch(kube, settings, self.accounts.secret_changed, self.owns)
        # The MeetingBots and their pods, by the thousand: watches of our own, not kopf's
        # (what kopf's per-object machinery cost in a burst: kube/watch.py).
        self.bot_watch = ObjectWatch(
            kube, settings, "meetingbots", lambda ns: custom_path("meetingbots", ns),
            self._bot_seen, owns=self.owns,
        )  # fmt: skip
        self.pod_watch = ObjectWatch(
            kube, settings, "pods", core("pods"), self._pod_seen, selector=BOT_LABEL,
            owns=self.owns,
        )  # fmt: skip

    @classmethod
    async def start(
        cls,
        settings: Settings,
        key: LoadedKey | None = None,
        shards: ShardSet | None = None,
        router: Router | None = None,
    ) -> Operator:
        """Build and start everything; `key` is the report key if the election loaded it,
        `shards` what it leads and `router` where requests for the other shards go."""
        kube = Kube(KubeClient.connect())
        tokens = ReportTokens(key.value if key else await load_key(settings, kube))
        runtime = cls(settings, kube, tokens, shards)
        await runtime._expect_bots(runtime.owns)
        report_app = reports.make_app(
            runtime.bots.tokens,
            runtime.bots.identity,
            runtime.bots.observe_report,
            runtime.bots.warming,
            runtime.artifacts,
        )
        report_app.add_routes(worker_routes.routes(runtime.stream_workers))
        if router is not None and runtime.shards.sharded:
            # What belongs to another shard goes to its leader (ha/routing.py).
            report_app.middlewares.append(router.middleware("report"))
        await runtime._servers.serve(report_app, settings.report_host, settings.report_port)
        await runtime._servers.serve(metrics.app(), settings.report_host, settings.metrics_port)
        if settings.oauth_port:
            app = pages.make_app(runtime.grants)
            # Zoom's webhooks: RTMS (MeetingStreams) and meetings (MeetingBotSchedules).
            app.add_routes([
                zoom_webhooks.endpoint("/zoom/rtms", runtime.streams.notice, "RTMS"),
                zoom_webhooks.endpoint("/zoom/meetings", runtime.meeting_notices.notice, "meeting"),
            ])  # fmt: skip
            if router is not None and runtime.shards.sharded:
                app.middlewares.append(router.middleware("oauth"))
            await runtime._servers.serve(app, settings.report_host, settings.oauth_port)
        metrics.REGISTRY.register(runtime._collector)
        runtime._sweeper = asyncio.create_task(runtime._sweep(), name="sweep")
        runtime.secret_watch.start()
        runtime.pod_watch.start()
        runtime.bot_watch.start()
        log.info(
            "operator started",
            extra={"report_port": settings.report_port, "metrics_port": settings.metrics_port},
        )
        return runtime

    async def stop(self) -> None:
        """Stop acting, then free the ports and connections. A shard's move waits for this,
        so the steps that took long are logged (DEBUG) by name."""
        steps: dict[str, Callable[[], Awaitable[None]]] = {
            "gains": self._stop_gains,  # first: a gain relists the watches
            "bot watch": self.bot_watch.stop,
            "pod watch": self.pod_watch.stop,
            "secret watch": self.secret_watch.stop,
            "sweeper": self._stop_sweeper,
            "schedules": self.schedules.close,
            "bots": self.bots.stop,
            "servers": self._servers.stop,
            "metrics": self._unregister_metrics,
            "accounts": self.accounts.close,
            "artifacts": self.artifacts.close,
            "webhooks": self.webhooks.close,
            "streams": self.streams.close,
            "stream workers": self.stream_workers.close,
            "stream webhooks": self.stream_webhooks.close,
            "events": self.events.close,
            "kube": self.kube.close,
        }
        slow: dict[str, float] = {}
        for name, step in steps.items():
            began = time.monotonic()
            await step()
            if (took := time.monotonic() - began) >= SLOW_STOP_STEP:
                slow[name] = round(took, 2)
        log.debug("operator stopped", extra={"slow_steps": slow})

    async def _stop_gains(self) -> None:
        for task in self._gains:
            task.cancel()
        await asyncio.gather(*self._gains, return_exceptions=True)

    async def _stop_sweeper(self) -> None:
        if self._sweeper:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    async def _unregister_metrics(self) -> None:
        with contextlib.suppress(KeyError):
            metrics.REGISTRY.unregister(self._collector)

    async def _expect_bots(self, wanted: Callable[[str], bool]) -> None:
        """The bots that exist now in the namespaces `wanted`: reports from them get 503
        (retry), not 401, until the watch has shown them. With namespace patterns, every
        namespace's are listed (cluster-wide, as kopf watches then) and kept if the patterns
        match, as kopf matches them."""
        settings = self.settings
        try:
            keys = await self.kube.meetingbot_keys(
                settings.namespaces if settings.exact_namespaces else []
            )
        except ApiError as error:  # e.g. the CRDs not installed yet: kopf says more
            log.warning("cannot list MeetingBots", extra={"error": error.message})
            keys = set()
        self.bots.expect(
            {k for k in keys if wanted(k[0]) and settings.watches(k[0])},
            patience=settings.report_interval_seconds * settings.unresponsive_intervals,
        )

    def gain(self, shards: frozenset[int], incomplete: Callable[[str], None]) -> None:
        """Lead these shards too, without stopping: what this replica leads goes on while the
        taken shards' objects are listed (a replica died, or left), in a task that `stop`
        ends first. Only with cluster-wide watches (ha/election.py decides): every watch
        already sees the taken namespaces and dropped their objects unread, so each lists
        again and keeps them from now on. `incomplete(why)` when they could not be listed:
        the operator then starts again, so that nothing is led half-known."""

        async def gaining() -> None:
            try:
                whole = await self._gain(shards)
            except Exception:
                log.exception("could not take shards in place", extra={"shards": sorted(shards)})
                whole = False
            if not whole:
                incomplete("a shard taken in place could not be listed")

        task = asyncio.create_task(gaining(), name="gain shards")
        self._gains.add(task)
        task.add_done_callback(self._gains.discard)

    async def _gain(self, shards: frozenset[int]) -> bool:
        # From here the taken shards' events are handled (kopf's, and the watches' below),
        # and their reports here: a bot not listed yet is answered 503 (retry), not 401, until
        # the bots there are known by name, which are read while the watches list.
        began = time.monotonic()
        taken = self.shards.take(shards)
        if not taken:
            return True
        self.bots.hold_unknown()
        log.info("leading more shards in place", extra={"shards": sorted(taken)})
        watches = (self.secret_watch, self.pod_watch, self.bot_watch)
        await asyncio.gather(*(watch.relist() for watch in watches))
        await self._expect_bots(lambda namespace: self.shards.shard(namespace) in taken)
        for plural in KOPF_KINDS:
            if not await self._list_taken(plural, taken):
                return False
        log.info(
            "shards taken in place listed",
            extra={"shards": sorted(taken), "seconds": round(time.monotonic() - began, 2)},
        )
        return True

    async def _list_taken(self, plural: str, taken: frozenset[int]) -> bool:
        """Hand the objects of `plural` in the taken shards to their service, as kopf hands
        a list's. kopf's own watch sends their later changes (it dropped the earlier ones,
        handlers.py); one it sent just before this list was read may arrive after it, and a
        service holding an older version meanwhile corrects itself at the object's next
        change."""
        for attempt in range(1, GAIN_TRIES + 1):
            try:
                items = await self.kube.list_custom(plural, None, listing=True)
                break
            except (ApiError, aiohttp.ClientError, TimeoutError) as error:
                log.warning(
                    "cannot list a shard taken in place",
                    extra={"resource": plural, "error": str(error), "attempt": attempt},
                )
                if attempt == GAIN_TRIES:
                    return False
                await asyncio.sleep(throttle_delay(None, attempt))
        # Each at once, as kopf hands each object to a worker of its own (an account's first
        # sight verifies it with Zoom).
        await asyncio.gather(*(
            self.observe(plural, "ADDED", body)
            for body in items
            if self.shards.shard(namespace := body["metadata"].get("namespace", "")) in taken
            and self.settings.watches(namespace)
        ))  # fmt: skip
        return True

    async def observe(self, plural: str, event_type: str, body: dict[str, Any]) -> None:
        """An object of a kind kopf watches for the operator (handlers.py), to its service."""
        if plural == "zoomaccounts":
            await self.accounts.observe(event_type, body)
        elif plural == "zoomusergrants":
            await self.grants.observe(event_type, body)
        elif plural == "meetingstreams":
            self.streams.observe(event_type, body)
        elif plural == "meetingbotschedules":
            self.schedules.observe(event_type, body)

    def owns(self, namespace: str) -> bool:
        """Whether this process leads the shard of `namespace` (always, unsharded)."""
        return self.shards.owns(namespace)

    async def _bot_seen(self, event_type: str | None, body: dict[str, Any]) -> None:
        """A MeetingBot listed (type None) or changed; another shard's are dropped unread."""
        if self.owns(body["metadata"].get("namespace", "")):
            body.setdefault("apiVersion", f"{GROUP}/{VERSION}")  # Events name the object by them
            body.setdefault("kind", "MeetingBot")
            self.bots.observe_bot(event_type, body)
            self.schedules.bot_changed(body)

    async def _pod_seen(self, event_type: str | None, body: dict[str, Any]) -> None:
        """A bot pod listed (type None) or changed; another shard's are dropped unread."""
        if self.owns(body["metadata"].get("namespace", "")):
            self.bots.observe_pod(event_type, body)

    async def _account_changed(self, namespace: str, name: str) -> None:
        for key in self.bots.bots_of_account(namespace, name):
            self.bots.queue.trigger(key)

    async def _grant_changed(self, namespace: str, name: str) -> None:
        for key in self.bots.bots_of_grant(namespace, name):
            self.bots.queue.trigger(key)

    async def _sweep(self) -> None:
        """The periodic jobs, each on its own: one that fails (each also isolates its own
        objects) is logged and tried at its next turn, and never stops the others."""
        elapsed = 0.0
        while True:
            await asyncio.sleep(ACCOUNT_TICK)
            elapsed += ACCOUNT_TICK
            jobs: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
                ("accounts", self.accounts.recheck_due),
                ("streams", self.streams.sweep),
            ]
            if elapsed >= self.settings.sweep_seconds:
                elapsed = 0.0
                jobs += [("bots", self._sweep_bots), ("grants", self.grants.keep_fresh)]
            for name, job in jobs:
                try:
                    await job()
                except Exception:
                    log.exception("periodic job failed; trying again at its next turn",
                                  extra={"job": name})  # fmt: skip

    async def _sweep_bots(self) -> None:
        self.bots.sweep()


def health(runtime: Operator) -> dict[str, Any]:
    return {
        "bots": sum(runtime.bots.cache.phases().values()),
        "accounts": runtime.accounts.count(),
    }
