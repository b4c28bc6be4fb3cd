"""Delivery workers: one per channel, each claiming its own rows from the durable outbox.

A row is claimed with a lease before it is sent; a 2xx marks it delivered (and it is never sent
again); a retryable failure schedules the next attempt per the RetryPolicy; anything else fails it
permanently but keeps it visible and replayable. Channels never wait for each other.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.deliver.base import Sender, SendResult
from monitor.deliver.retry import RetryPolicy
from storage.base import Delivery, Storage

log = logging.getLogger(__name__)

IDLE_POLL = 30.0  # a worker with nothing due still looks again this often
DIGEST_BATCH = 500


def _now() -> datetime:
    return datetime.now(UTC)


class ChannelWorker:
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
        timeout: float = 30.0,
    ) -> None:
        self.name = name
        self.sender = sender
        self.storage = storage
        self.policy = policy
        self.concurrency = concurrency
        self.min_gap = 1.0 / rate if rate else 0.0
        self.digest = digest
        self.lease = timeout + 30.0  # a send can never outlive its lease
        self.timeout = timeout
        self.wake = asyncio.Event()
        self._last_send = 0.0
        self._rate_lock = asyncio.Lock()
        self._sem = asyncio.Semaphore(concurrency)
        self.sent = 0
        self.failed = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; sleep until the next row is due or new alerts arrive."""
        while not stop.is_set():
            try:
                await self.process_due()
                nxt = await self.storage.next_delivery_time([self.name])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("outbox error channel=%s error=%r", self.name, exc)
                nxt = None
            delay = (
                IDLE_POLL
                if nxt is None
                else min(IDLE_POLL, max(0.05, (nxt - _now()).total_seconds()))
            )
            self.wake.clear()
            waiters = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(stop.wait())]
            try:
                await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()

    async def process_due(self) -> int:
        """Send every row that is due now; return how many rows were handled."""
        handled = 0
        while True:
            limit = DIGEST_BATCH if self.digest else self.concurrency * 4
            rows = await self.storage.claim_deliveries(self.name, _now(), limit, self.lease)
            if not rows:
                return handled
            if self.digest:
                await self._send_digest(rows)
            else:
                await asyncio.gather(*(self._send_one(r) for r in rows))
            handled += len(rows)

    async def _throttle(self) -> None:
        if not self.min_gap:
            return
        async with self._rate_lock:
            wait = self._last_send + self.min_gap - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_send = time.monotonic()

    async def _send(self, payloads: list[dict[str, Any]]) -> SendResult:
        await self._throttle()
        try:
            return await asyncio.wait_for(self.sender.send(payloads), self.timeout + 5)
        except TimeoutError:
            return SendResult(ok=False, retryable=True, error=f"no answer within {self.timeout:g}s")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return SendResult(ok=False, retryable=True, error=f"{type(exc).__name__}: {exc}")

    async def _send_one(self, row: Delivery) -> None:
        assert row.payload is not None
        async with self._sem:
            result = await self._send([row.payload])
        await self._record(row, result)

    async def _send_digest(self, rows: list[Delivery]) -> None:
        payloads = [r.payload for r in rows if r.payload is not None]
        result = await self._send(payloads)
        for row in rows:
            await self._record(row, result)

    async def _record(self, row: Delivery, result: SendResult) -> None:
        now = _now()
        if result.ok:
            self.sent += 1
            await self.storage.mark_delivered(row.alert_id, self.name, result.status, now)
            log.info(
                "alert delivered channel=%s alert=%s attempt=%d status=%s",
                self.name,
                row.alert_id,
                row.attempts,
                result.status,
            )
            return
        error = result.error or (f"HTTP {result.status}" if result.status else "failed")
        first = row.first_attempt or now
        if not result.retryable:
            self.failed += 1
            await self.storage.mark_failed(row.alert_id, self.name, result.status, error, now)
            log.error(
                "alert failed permanently channel=%s alert=%s status=%s error=%r",
                self.name,
                row.alert_id,
                result.status,
                error,
            )
            return
        if self.policy.gives_up(first, now):
            self.failed += 1
            msg = f"gave up after {self.policy.retry_for / 3600:g}h of retries; last error: {error}"
            await self.storage.mark_failed(row.alert_id, self.name, result.status, msg, now)
            log.error(
                "alert failed channel=%s alert=%s attempts=%d error=%r",
                self.name,
                row.alert_id,
                row.attempts,
                msg,
            )
            return
        delay = self.policy.next_delay(row.attempts, result.retry_after)
        nxt = now + timedelta(seconds=delay)
        await self.storage.mark_retry(row.alert_id, self.name, nxt, result.status, error, now)
        log.warning(
            "alert retry scheduled channel=%s alert=%s attempt=%d in=%.1fs status=%s error=%r",
            self.name, row.alert_id, row.attempts, delay, result.status, error,
        )  # fmt: skip


class Outbox:
    """All channel workers; the daemon starts them, the pipeline wakes them."""

    def __init__(self, workers: dict[str, ChannelWorker], storage: Storage) -> None:
        self.workers = workers
        self.storage = storage
        self._tasks: list[asyncio.Task[None]] = []

    def wake(self) -> None:
        for w in self.workers.values():
            w.wake.set()

    def start(self, stop: asyncio.Event) -> None:
        for w in self.workers.values():
            self._tasks.append(asyncio.create_task(w.run(stop), name=f"deliver:{w.name}"))

    async def join(self, timeout: float) -> None:
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=timeout)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def drain(self, deadline: float, clock: Callable[[], float] = time.monotonic) -> int:
        """Deliver until nothing is due before ``deadline`` (a monotonic time); return rows still queued.

        Rows whose next attempt lies past the deadline stay queued for a later run.
        """
        names = list(self.workers)
        while True:
            await asyncio.gather(*(w.process_due() for w in self.workers.values()))
            remaining = await self.storage.pending_count(names)
            if remaining == 0:
                return 0
            nxt = await self.storage.next_delivery_time(names)
            if nxt is None:
                return remaining
            wait = (nxt - _now()).total_seconds()
            if clock() + max(wait, 0) > deadline:
                return remaining
            await asyncio.sleep(min(max(wait, 0.02), max(deadline - clock(), 0.02)))
