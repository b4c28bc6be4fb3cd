"""Delivery workers: one per channel, each claiming its own rows from the durable outbox.

A row is claimed (``in_flight``, with a lease) right before it is sent; a 2xx marks it delivered
and it is never claimed again; a retryable failure puts it back as pending at
``now + RetryPolicy.next_delay(...)``; a permanent failure keeps it, visible and replayable, as
``failed``. If the process dies, the row stays ``in_flight``: another daemon (or the next one)
claims it again once its owner is known dead or the lease expires, and sends it again with the
same ``webhook-id``, so a receiver that saw the first request can drop the repeat.

How much is claimed at once: a claimed row's lease runs from the claim, so every row's lease
must cover all the time it may spend in memory before and during its send. An immediate channel
without a rate claims, in one transaction, the rows for its free send slots plus at most one
round more (``2 * concurrency`` claimed and unanswered at most); a row claimed ahead waits for at
most one round of sends, each bounded by ``send_limit``, so ``lease_ahead`` (two sends plus a
margin) covers it. Rows still waiting when the worker halts are handed back unsent
(``release_deliveries``). A rate-limited channel claims one row at a time, only once the rate
lets it go. A digest channel claims every due row (up to ``DIGEST_BATCH``) and sends them as one
message; its lease is sized for that whole batch.

Outcomes: a send slot is free again as soon as the answer is in, but the row is done only once
its outcome is committed. Outcomes of sends that end together are written in one transaction
(``GroupCommit`` over ``Storage.record_outcomes``); each sender still waits for its own commit.
So a 2xx is never re-sent once recorded, and SIGKILL at any moment leaves at worst rows in
flight, which the next process sends again with the same ``webhook-id``.

Channels never wait for each other: every worker is its own task, with its own concurrency and
rate; they share only the database and the HTTP connection pool.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from monitor.clock import SYSTEM, Clock, wait_any
from monitor.deliver.base import Sender, SendResult
from monitor.deliver.retry import RetryPolicy
from monitor.groupcommit import GroupCommit
from monitor.logs import get_logger
from storage.base import Delivery, DeliveryOutcome, Storage

if TYPE_CHECKING:
    from monitor.metrics import Metrics

log = get_logger(__name__)

IDLE_POLL = 30.0
ERROR_BACKOFF_MAX = 60.0  # the longest a worker waits before asking failing storage again  # a worker with nothing due still looks again this often
DIGEST_BATCH = 500  # rows in one digest message at most
LEASE_MARGIN = 30.0  # seconds a lease outlives the longest a send may take
RECORD_TRIES = 3  # attempts to write an outcome before leaving the row to its lease
SEND_GRACE = 5.0  # the outbox's own deadline on a send, beyond the channel's timeout


class ChannelWorker:
    """Delivers one channel's outbox rows: bounded concurrency, optional rate, optional digests."""

    def __init__(
        self,
        name: str,
        sender: Sender,
        storage: Storage,
        policy: RetryPolicy,
        *,
        concurrency: int = 4,
        rate: float | None = None,
        digest: bool = False,
        digest_watchlists: frozenset[str] = frozenset(),
        timeout: float = 30.0,
        clock: Clock = SYSTEM,
        metrics: Metrics | None = None,
    ) -> None:
        self.name = name
        self.sender = sender
        self.storage = storage
        self.policy = policy
        self.concurrency = max(1, concurrency)
        self.min_gap = 1.0 / rate if rate else 0.0
        self.digest = digest  # every row of this channel waits for a digest period
        self.digest_watchlists = digest_watchlists  # rows of these watchlists do
        self.timeout = timeout
        self.clock = clock
        self.metrics = metrics
        self.wake = asyncio.Event()
        self.deadline: float | None = None  # monotonic; set by Outbox.drain
        self._last_send = -math.inf
        self.sent = 0
        self.failed = 0
        self.retried = 0
        # Outcomes of sends that end together share one transaction (see monitor.groupcommit).
        self.outcome_writer: GroupCommit[DeliveryOutcome, bool] = GroupCommit(
            f"outcomes:{name}", storage.record_outcomes
        )

    # ------------------------------------------------------------------ leases
    @property
    def batches(self) -> bool:
        """Whether this channel ever sends digests (then it claims whole batches)."""
        return self.digest or bool(self.digest_watchlists)

    def send_limit(self) -> float:
        """The longest one send may take: the channel timeout plus the outbox's grace."""
        return self.timeout + SEND_GRACE

    def lease_for(self, rows: int) -> float:
        """A lease long enough for ``rows`` claimed together to be sent and recorded."""
        rounds = 1 if not self.batches else 1 + math.ceil(rows / self.concurrency)
        return rounds * (self.send_limit() + self.min_gap) + LEASE_MARGIN

    def lease_ahead(self) -> float:
        """The lease of rows claimed ahead: a wait behind one round of sends, then their own."""
        return 2 * self.send_limit() + LEASE_MARGIN

    # ------------------------------------------------------------------ loop
    def _halted(self, stop: asyncio.Event | None) -> bool:
        if stop is not None and stop.is_set():
            return True
        return self.deadline is not None and self.clock.monotonic() >= self.deadline

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set, or, once a drain deadline is set, until nothing is due
        before it. Sleeps until the next row is due or the pipeline wakes it with new alerts."""
        errors = 0  # consecutive failures (storage down): back off, log once per change
        rechecked = False  # the last round found a row due now and looked again at once
        while not stop.is_set():
            try:
                await self.process_due(stop)
                nxt = await self.storage.next_delivery_time([self.name])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                errors += 1
                backoff = min(ERROR_BACKOFF_MAX, 2.0 ** (errors - 1))
                if errors == 1:
                    log.error(
                        "outbox paused: cannot reach storage",
                        channel=self.name, error=repr(exc), retry_in=backoff,
                    )  # fmt: skip
                nxt = self.clock.now() + timedelta(seconds=backoff)
            else:
                if errors:
                    log.info("outbox resumed", channel=self.name, after_errors=errors)
                errors = 0
            wait = IDLE_POLL if nxt is None else max(0.0, (nxt - self.clock.now()).total_seconds())
            if self.deadline is not None:
                left = self.deadline - self.clock.monotonic()
                if nxt is None or wait > left or left <= 0:
                    return  # drained: the rest is due after the deadline (or nothing is left)
            if wait <= 0 and not errors and not rechecked:
                # Due already: time moved on while the claim ran (its `now` was taken before).
                # Look again at once; a second miss sleeps the short floor, so a row that is
                # due but cannot be claimed never spins the loop.
                rechecked = True
                continue
            rechecked = False
            delay = min(IDLE_POLL, max(0.02, wait))
            await wait_any([self.wake, stop], delay, self.clock)
            self.wake.clear()

    async def process_due(self, stop: asyncio.Event | None = None) -> int:
        """Send every row due now (until ``stop`` or the drain deadline); return rows claimed.

        Returns once nothing is due and every send it started has been recorded.
        """
        if self.batches:
            return await self._process_batches(stop)
        if self.min_gap:
            return await self._process_rated(stop)
        return await self._process_ahead(stop)

    async def _process_ahead(self, stop: asyncio.Event | None) -> int:
        """Immediate channel without a rate: keep every send slot busy from rows claimed ahead.

        Rows are claimed in one transaction for the free slots plus one round more (at most
        ``2 * concurrency`` claimed and unanswered), so a slot never waits for a claim and claims
        come in batches. A row claimed ahead waits at most one round of sends (each bounded by
        ``send_limit``) for its slot: its lease (``lease_ahead``) covers that wait and its own
        send. A send slot is free again once the answer is in; the row is done only once its
        outcome is committed. Rows still waiting when it halts are handed back unsent.
        """
        handled = 0
        sending = 0  # rows from the start of their send to the answer: at most `concurrency`
        changed = asyncio.Event()  # an answer came in or the claim finished
        tasks: set[asyncio.Task[None]] = set()  # rows being sent or having their outcome written
        ready: deque[Delivery] = deque()  # claimed ahead, waiting for a slot
        claim: asyncio.Future[list[Delivery]] | None = None
        exhausted = False  # a claim found nothing due: send what is claimed, then return

        def answered() -> None:
            nonlocal sending
            sending -= 1
            changed.set()

        try:
            while not self._halted(stop):
                while ready and sending < self.concurrency:
                    sending += 1
                    self._last_send = self.clock.monotonic()
                    task = asyncio.create_task(self._deliver([ready.popleft()], answered))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                room = 2 * self.concurrency - sending - len(ready)
                if claim is None and not exhausted and len(ready) < self.concurrency and room:
                    claim = asyncio.ensure_future(
                        self.storage.claim_deliveries(
                            self.name, self.clock.now(), room, self.lease_ahead()
                        )
                    )
                    claim.add_done_callback(lambda _: changed.set())
                if claim is None and not ready:
                    break
                # Wait for an answer (a slot is free) or the claim (rows to send), whichever
                # comes first: both set `changed`.
                if not (claim is not None and claim.done()):
                    changed.clear()
                    await changed.wait()
                if claim is not None and claim.done():
                    rows = claim.result()
                    claim = None
                    handled += len(rows)
                    ready.extend(rows)
                    exhausted = not rows
            if claim is not None:  # halted while a claim was being written
                rows = await claim
                claim = None
                handled += len(rows)
                ready.extend(rows)
            if ready:
                await self._release(list(ready))
                ready.clear()
            if tasks:
                await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            # Cancelled (shutdown timeout): whatever is claimed stays in flight and the next
            # process takes it back, exactly as for a process that dies.
            for task in tasks:
                task.cancel()
            if claim is not None:
                claim.cancel()
            raise
        except Exception:
            # A claim failed (run() logs it and comes back): hand back what waits, let the
            # sends under way finish and record.
            if ready:
                await self._release(list(ready))
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return handled

    async def _release(self, rows: list[Delivery]) -> None:
        """Hand back rows claimed ahead and never sent; if that fails, their lease expires."""
        try:
            released = await self.storage.release_deliveries(rows)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("outbox release failed", channel=self.name, rows=len(rows), error=repr(exc))
            return
        log.info("outbox released unsent rows", channel=self.name, count=released)

    async def _process_rated(self, stop: asyncio.Event | None) -> int:
        """Rate-limited immediate channel: claim one row only once the rate lets it go, so no
        lease runs while a row waits for the rate."""
        handled = 0
        sending = 0
        slot_free = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()

        def answered() -> None:
            nonlocal sending
            sending -= 1
            slot_free.set()

        try:
            while not self._halted(stop):
                if sending >= self.concurrency:
                    slot_free.clear()
                    await slot_free.wait()
                    continue
                await self._wait_rate()
                if self._halted(stop):
                    break
                rows = await self.storage.claim_deliveries(
                    self.name, self.clock.now(), 1, self.lease_for(1)
                )
                if not rows:
                    break
                handled += len(rows)
                for row in rows:
                    sending += 1
                    self._last_send = self.clock.monotonic()
                    task = asyncio.create_task(self._deliver([row], answered))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            raise
        return handled

    async def _process_batches(self, stop: asyncio.Event | None) -> int:
        """Digest-capable channel: claim due rows in batches; digest rows go as one message."""
        handled = 0
        sem = asyncio.Semaphore(self.concurrency)
        while not self._halted(stop):
            rows = await self.storage.claim_deliveries(
                self.name, self.clock.now(), DIGEST_BATCH, self.lease_for(DIGEST_BATCH)
            )
            if not rows:
                break
            handled += len(rows)
            grouped = [r for r in rows if self.digest or r.watchlist in self.digest_watchlists]
            single = [r for r in rows if not (self.digest or r.watchlist in self.digest_watchlists)]

            async def one(batch: list[Delivery]) -> None:
                async with sem:
                    if self._halted(stop):
                        return  # left in flight: the next process takes it back
                    await self._wait_rate()
                    self._last_send = self.clock.monotonic()
                    await self._deliver(batch)

            jobs = [one([r]) for r in single]
            if grouped:
                jobs.append(one(grouped))
            await asyncio.gather(*jobs)
        return handled

    async def _wait_rate(self) -> None:
        if self.min_gap:
            wait = self._last_send + self.min_gap - self.clock.monotonic()
            if wait > 0:
                await self.clock.sleep(wait)

    # ------------------------------------------------------------------ one send
    async def _send(self, payloads: list[dict[str, Any]]) -> SendResult:
        try:
            async with asyncio.timeout(self.send_limit()):  # no extra task per send (wait_for)
                return await self.sender.send(payloads)
        except TimeoutError:
            return SendResult(ok=False, retryable=True, error=f"no answer within {self.timeout:g}s")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a sender bug must not kill the worker; the row is retried
            return SendResult(ok=False, retryable=True, error=f"{type(exc).__name__}: {exc}")

    async def _deliver(
        self, rows: list[Delivery], answered: Callable[[], None] | None = None
    ) -> None:
        """Send ``rows`` as one message and record the outcome of each.

        ``answered`` is called as soon as the send is over (answer, error or timeout), before the
        outcome is written: the send slot is free then, while the row is done only once its
        outcome is committed (the caller awaits this coroutine for that).
        """
        payloads = [r.payload for r in rows if r.payload is not None]
        try:
            if not payloads:
                return
            result = await self._send(payloads)
        finally:
            if answered is not None:
                answered()
        # One decision and one clock reading for the whole batch: a retried digest's rows get
        # the same next attempt, so they are claimed again together and keep their webhook-id.
        now = self.clock.now()
        delay = None
        if not result.ok and result.retryable:
            attempts = max(r.attempts for r in rows)
            delay = self.policy.next_delay(attempts, result.retry_after)
        if len(rows) == 1:
            await self._record(rows[0], result, now, delay, 1)
            return
        # A digest's rows are submitted together, so they are written in one transaction.
        await asyncio.gather(*(self._record(row, result, now, delay, len(rows)) for row in rows))

    async def _record(
        self, row: Delivery, result: SendResult, now: datetime, delay: float | None, batch: int
    ) -> None:
        for attempt in range(1, RECORD_TRIES + 1):
            try:
                await self._record_once(row, result, now, delay, batch)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error(
                    "outbox record failed",
                    channel=self.name, alert=row.alert_id, attempt=attempt, error=repr(exc),
                )  # fmt: skip
                if attempt < RECORD_TRIES:
                    await self.clock.sleep(0.2 * attempt)

    async def _record_once(
        self, row: Delivery, result: SendResult, now: datetime, delay: float | None, batch: int
    ) -> None:
        error = result.error or (f"HTTP {result.status}" if result.status else "failed")
        first = row.first_attempt or now
        if result.ok:
            await self._commit(
                DeliveryOutcome(row.alert_id, self.name, "delivered", now, result.status)
            )
            self.sent += 1
            self._count("delivered")
            log.info(
                "alert delivered",
                channel=self.name, alert=row.alert_id, attempt=row.attempts, status=result.status,
                batch=batch,
            )  # fmt: skip
            return
        if not result.retryable:
            await self._commit(
                DeliveryOutcome(row.alert_id, self.name, "failed", now, result.status, error)
            )
            self.failed += 1
            self._count("failed")
            log.error(
                "alert failed permanently",
                channel=self.name, alert=row.alert_id, attempts=row.attempts, status=result.status,
                error=error,
            )  # fmt: skip
            return
        if self.policy.gives_up(first, now):
            hours = self.policy.retry_for / 3600
            msg = f"gave up after {row.attempts} attempts over {hours:g}h; last error: {error}"
            await self._commit(
                DeliveryOutcome(row.alert_id, self.name, "failed", now, result.status, msg)
            )
            self.failed += 1
            self._count("failed")
            log.error(
                "alert failed", channel=self.name, alert=row.alert_id, attempts=row.attempts, error=msg
            )  # fmt: skip
            return
        assert delay is not None
        nxt = now + timedelta(seconds=delay)
        await self._commit(
            DeliveryOutcome(row.alert_id, self.name, "pending", now, result.status, error, nxt)
        )
        self.retried += 1
        self._count("retry")
        log.warning(
            "alert retry scheduled",
            channel=self.name, alert=row.alert_id, attempt=row.attempts, in_seconds=round(delay, 1),
            status=result.status, error=error,
        )  # fmt: skip

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.deliveries.labels(self.name, outcome).inc()

    async def _commit(self, outcome: DeliveryOutcome) -> None:
        """Write one outcome together with the concurrent sends' (one transaction for all);
        returns once it is committed."""
        await self.outcome_writer.submit(outcome)


class Outbox:
    """All channel workers; the daemon starts them, the pipeline wakes them, ``drain`` ends them."""

    def __init__(
        self, workers: dict[str, ChannelWorker], storage: Storage, clock: Clock = SYSTEM
    ) -> None:
        self.workers = workers
        self.storage = storage
        self.clock = clock
        self._tasks: list[asyncio.Task[None]] = []
        self._stop: asyncio.Event | None = None

    def wake(self) -> None:
        for w in self.workers.values():
            w.wake.set()

    def start(self, stop: asyncio.Event) -> None:
        self._stop = stop
        for w in self.workers.values():
            self._tasks.append(asyncio.create_task(w.run(stop), name=f"deliver:{w.name}"))

    async def join(self, timeout: float) -> None:
        """Wait for the workers to end (after ``stop``); cancel what is still running then."""
        if not self._tasks:
            return
        sleeper = self.clock.timer(timeout)
        try:
            pending: set[asyncio.Future[None]] = set(self._tasks)
            while pending and not sleeper.done():
                _, pending = await asyncio.wait(
                    [*pending, sleeper], return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(sleeper)
        finally:
            sleeper.cancel()
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._tasks = []

    async def drain(self, deadline: float) -> int:
        """Deliver until nothing is due before ``deadline`` (monotonic); return rows still queued.

        Every worker keeps going until its next row is due after the deadline (or none is left),
        then ends; rows past the deadline stay queued for a later run. No new send starts after
        the deadline; a send already under way may finish (bounded by its channel's timeout).
        Starts the workers first if ``start`` was not called.
        """
        if not self._tasks:
            self.start(asyncio.Event())
        for w in self.workers.values():
            w.deadline = deadline
        self.wake()
        longest = max((w.lease_for(1) for w in self.workers.values()), default=0.0)
        await self.join(timeout=max(0.0, deadline - self.clock.monotonic()) + longest)
        return await self.storage.pending_count(list(self.workers))
