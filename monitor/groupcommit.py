"""Group commit: concurrent writers share one storage call (one transaction) instead of one each.

With 10,000 feeds polled by a hundred concurrent tasks, one transaction per feed outcome makes
the single SQLite connection the bottleneck: every statement is a hop to its thread and back.
Here the first caller starts a flush; everyone who arrives while a flush is being written waits
for the next one, so batches grow with load and stay at one item when idle (no added latency).
Each caller still gets its own result and only returns once its write is committed.

If a batch fails, its items are retried one by one, so one bad item fails only its own caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from monitor.logs import get_logger

log = get_logger(__name__)
In = TypeVar("In")
Out = TypeVar("Out")


class GroupCommit(Generic[In, Out]):
    """Coalesces concurrent ``submit`` calls into calls of ``write(items) -> results``."""

    def __init__(
        self, name: str, write: Callable[[list[In]], Awaitable[list[Out]]], max_batch: int = 1000
    ) -> None:
        self.name = name
        self._write = write
        self.max_batch = max(1, max_batch)
        self._pending: list[tuple[In, asyncio.Future[Out]]] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.items = 0

    async def submit(self, item: In) -> Out:
        """Write ``item`` with whatever else is waiting; return its result once committed."""
        fut: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._pending.append((item, fut))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name=f"group-commit:{self.name}")
        return await fut

    async def flush(self) -> None:
        """Wait until everything submitted so far is written (or failed)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let callers that are ready in this loop turn join the batch
        batch: list[tuple[In, asyncio.Future[Out]]] = []
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                await self._write_batch(batch)
                batch = []
        except BaseException:
            for _, fut in batch + self._pending:
                if not fut.done():
                    fut.cancel()
            self._pending.clear()
            raise

    async def _write_batch(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        live = [(item, fut) for item, fut in batch if not fut.cancelled()]
        if not live:
            return
        self.batches += 1
        self.items += len(live)
        try:
            results = await self._write([item for item, _ in live])
        except Exception as exc:
            if len(live) == 1:
                _settle(live[0][1], exc=exc)
                return
            log.warning(
                "batched write failed; retrying one by one",
                writer=self.name, items=len(live), error=repr(exc),
            )  # fmt: skip
            for item, fut in live:
                try:
                    (result,) = await self._write([item])
                except Exception as one_exc:
                    _settle(fut, exc=one_exc)
                else:
                    _settle(fut, result=result)
            return
        for (_, fut), result in zip(live, results, strict=True):
            _settle(fut, result=result)


def _settle(
    fut: asyncio.Future[Out], *, result: Out | None = None, exc: BaseException | None = None
) -> None:
    if fut.done():  # the caller was cancelled meanwhile; its write happened (or not) anyway
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)  # type: ignore[arg-type]
