"""The process pool for CPU work (feed parsing, extraction), so the event loop never stalls.

Why not ``concurrent.futures.ProcessPoolExecutor``: it cannot stop one task. A page built to be
slow for lxml (tens of thousands of attributes on one element, a link-dense maze) keeps its
worker busy inside C code, where no signal reaches Python, for minutes; the executor can only
break the whole pool, and at interpreter exit it waits for the busy worker. This pool owns its
processes instead:

- **A hard deadline per task.** The worker arms ``SIGALRM`` at the limit (a cheap way out of
  Python code, raised as a ``BaseException`` that trafilatura's broad ``except Exception`` does
  not swallow); if the task is still running ``KILL_GRACE`` seconds later, the parent kills the
  process and starts a fresh one. A task never holds a worker much past its limit.
- **Fair shares.** A task may carry keys (the page's host and the feed that asked for it): each
  key holds at most ``per_key`` workers at once, so neither one hostile site nor one feed whose
  items link to slow pages on many hosts can take the whole pool from the other feeds.
- **Bounded lifetime.** A worker is replaced after ``max_tasks`` tasks, so a leak in a parser
  cannot grow a long-running daemon.
- **Stops at once.** ``close`` kills every worker; callers get :class:`PoolClosed`.

Each worker talks to the parent over its own pipe, in ``multiprocessing``'s framing. The worker
blocks on its end; the parent's end is non-blocking and driven by the event loop itself
(:class:`_Pipe`). An earlier version waited on each pipe in a thread: every task then cost
two thread hand-offs, each waiting for the GIL while the loop was busy (up to the 5 ms switch
interval), so the workers sat idle most of a first pass and adding workers made it slower.
A reply past 512 KB (a big sitemap's entries) is still unpickled in a thread: ~170 ms of
work for 50,000 URLs, which must not stall the loop.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import struct
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import Any, TypeVar

from monitor.logs import get_logger

log = get_logger(__name__)
T = TypeVar("T")

PRELOAD_PARSE = ["monitor.workers", "monitor.parse", "feedparser"]
PRELOAD = [*PRELOAD_PARSE, "monitor.extract", "trafilatura"]
PRELOAD_STORIES = ["monitor.storydesk"]
_INLINE_LOADS = 1 << 19  # replies up to 512 KB (~10 ms to unpickle) are read on the loop
KILL_GRACE = 1.0  # seconds past the limit before the parent kills a task's worker
MAX_TASKS = 500  # tasks per worker before it is replaced


class TaskTimeout(Exception):
    """A worker task ran past its time limit (its worker was stopped or replaced)."""


class PoolClosed(Exception):
    """The pool was shut down while (or before) the task ran."""


class WorkerCrashed(Exception):
    """The worker process died while running the task (segfault, OOM kill)."""


class _Deadline(BaseException):
    """Raised inside a worker by SIGALRM. A BaseException, so ``except Exception`` in a
    library does not swallow it and carry on parsing."""


# --------------------------------------------------------------------------- the worker side


def _alarm(signum: int, frame: Any) -> None:
    raise _Deadline()


def _worker_main(conn: Connection) -> None:
    """Run tasks from ``conn`` until it closes: ``(limit, fn, args)`` -> ``(ok, value)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGALRM, _alarm)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        limit, fn, args = msg
        try:
            if limit > 0:
                signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                reply: tuple[bool, Any] = (True, fn(*args))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _Deadline:
            reply = (False, TaskTimeout(f"time limit of {limit:g}s reached"))
        except Exception as exc:
            reply = (False, exc)
        try:
            conn.send(reply)
        except Exception as exc:  # an unpicklable result or exception: say what it was
            conn.send((False, RuntimeError(f"{type(exc).__name__}: {exc}")))


# --------------------------------------------------------------------------- the parent side


class _Pipe:
    """The parent's end of a worker's pipe, read and written by the event loop.

    Speaks ``multiprocessing.Connection``'s framing (a ``!i`` length, or ``-1`` and a ``!Q``
    length past 2 GiB, then the pickle), so the worker keeps a plain blocking ``Connection``.
    One exchange at a time: a request, then its one reply.
    """

    _CHUNK = 1 << 18

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.fd = conn.fileno()
        os.set_blocking(self.fd, False)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._out: list[memoryview] = []
        self._buf = bytearray()
        self._reply: asyncio.Future[Any] | None = None

    async def exchange(self, msg: Any) -> Any:
        """Send ``msg`` and return the worker's reply. EOFError if the worker is gone."""
        data = ForkingPickler.dumps(msg)
        n = len(data)
        head = struct.pack("!i", n) if n <= 0x7FFFFFFF else struct.pack("!iQ", -1, n)
        # small: one write; big (a page, a sitemap): the header first, the body not copied
        self._out = (
            [memoryview(head + data)] if n < 1 << 16 else [memoryview(head), memoryview(data)]
        )
        loop = asyncio.get_running_loop()
        self._loop = loop  # _buf is empty: __init__ or the last exchange's _unregister
        self._reply = reply = loop.create_future()
        self._write()
        if not reply.done():
            if self._out:  # the pipe is full: the worker is reading; go on when it drains
                loop.add_writer(self.fd, self._on_writable)
            loop.add_reader(self.fd, self._on_readable)
        try:
            raw = await reply
        finally:
            self._unregister()
        try:
            if len(raw) <= _INLINE_LOADS:
                return ForkingPickler.loads(raw)
            # A 50,000-URL sitemap's entries take ~170 ms to unpickle: not on the loop.
            return await asyncio.to_thread(ForkingPickler.loads, raw)
        except Exception as exc:  # an unreadable reply: the task failed, not the pool
            return (False, RuntimeError(f"unreadable worker reply: {exc}"))

    def _write(self) -> None:
        try:
            while self._out:
                sent = os.write(self.fd, self._out[0])
                rest = self._out[0][sent:]
                if rest:
                    self._out[0] = rest
                else:
                    self._out.pop(0)
        except BlockingIOError:
            pass
        except OSError as exc:  # the worker died: its end is closed
            self._fail(EOFError(str(exc)))

    def _on_writable(self) -> None:
        self._write()
        if not self._out and self._loop is not None:
            self._loop.remove_writer(self.fd)

    def _on_readable(self) -> None:
        try:
            while True:
                chunk = os.read(self.fd, self._CHUNK)
                if not chunk:
                    self._fail(EOFError("the worker closed its pipe"))
                    return
                self._buf += chunk
                if len(chunk) < self._CHUNK:
                    break
        except BlockingIOError:
            pass
        except OSError as exc:
            self._fail(EOFError(str(exc)))
            return
        buf = self._buf
        if len(buf) < 4:
            return
        (size,) = struct.unpack_from("!i", buf)
        start = 4
        if size == -1:
            if len(buf) < 12:
                return
            (size,) = struct.unpack_from("!Q", buf, 4)
            start = 12
        if len(buf) < start + size:
            return
        reply = self._reply
        if reply is not None and not reply.done():
            reply.set_result(memoryview(buf)[start : start + size])  # _unregister drops buf
        self._unregister()

    def _fail(self, exc: BaseException) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(exc)
        self._unregister()

    def _unregister(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self.fd)
            loop.remove_writer(self.fd)
        self._out = []
        self._buf = bytearray()

    def close(self) -> None:
        """Stop watching the pipe (failing an exchange under way) and close it."""
        self._fail(EOFError("the worker was stopped"))
        _close(self.conn)


@dataclass(eq=False)
class _Worker:
    proc: multiprocessing.process.BaseProcess
    pipe: _Pipe
    tasks: int = 0

    def kill(self) -> None:
        """Kill the process and close its pipe."""
        try:
            if self.proc.is_alive():
                self.proc.kill()
        except (OSError, ValueError):  # already reaped
            pass
        self.pipe.close()


@dataclass(eq=False)
class _Waiter:
    keys: tuple[str, ...]
    future: asyncio.Future[_Worker] = field(repr=False)


def _in_daemon_thread(fn: Callable[[], T]) -> asyncio.Future[T]:
    """``fn()`` in a daemon thread. A worker start takes the fork server's imports (half a
    second) the first time; a process that is done (``run --once``) must not wait for it at
    exit, as it would for an executor's thread. The fork server and a half-started worker end
    when their parent does."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if fut.done():  # the caller was cancelled: a worker nobody will use
            if isinstance(result, _Worker):
                result.kill()
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)

    def run() -> None:
        try:
            result, error = fn(), None
        except BaseException as exc:  # handed to the awaiting task
            result, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the loop is closed: nobody waits any more
            if isinstance(result, _Worker):
                result.kill()

    threading.Thread(target=run, name="cpu-pool-start", daemon=True).start()
    return fut


def _keys(key: str | Sequence[str | None] | None) -> tuple[str, ...]:
    if key is None:
        return ()
    if isinstance(key, str):
        return (key,)
    return tuple(dict.fromkeys(k for k in key if k is not None))


def _close(conn: Connection) -> None:
    try:
        conn.close()
    except OSError:
        pass


def default_workers() -> int:
    return max(
        1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )


class CpuPool:
    """Worker processes shared by parse and extract; started lazily, killed on overrun."""

    def __init__(
        self,
        workers: int = 0,
        *,
        per_key: int | None = None,
        max_tasks: int = MAX_TASKS,
        kill_grace: float = KILL_GRACE,
        on_kill: Callable[[], None] | None = None,
        preload: list[str] | None = None,
    ) -> None:
        self.workers = workers or default_workers()
        # One key (a host) may hold at most this many workers: half the pool, at least one.
        self.per_key = per_key or max(1, self.workers // 2)
        self.max_tasks = max_tasks
        self.kill_grace = kill_grace
        self.on_kill = on_kill
        self._ctx = multiprocessing.get_context("forkserver")
        # The fork server imports the heavy modules once; each worker is then a cheap fork of
        # it, so replacing a killed worker costs milliseconds, not a second of imports.
        # Frozen last (monitor.forkfreeze), so the workers keep sharing those pages.
        modules = PRELOAD if preload is None else preload
        self._ctx.set_forkserver_preload([*modules, "monitor.forkfreeze"])
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._starting = 0  # workers being spawned (already promised to a caller)
        self._waiters: deque[_Waiter] = deque()
        self._by_key: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.kills = 0  # workers killed for running past their deadline
        self.crashes = 0  # workers that died on their own

    # ------------------------------------------------------------------ public
    async def run(
        self,
        limit: float,
        fn: Callable[..., T],
        *args: Any,
        key: str | Sequence[str | None] | None = None,
    ) -> T:
        """Run ``fn(*args)`` in a worker within ``limit`` seconds of work (0: no limit).

        The clock starts when a worker takes the task, not while it waits for one. Raises
        :class:`TaskTimeout` past the limit, :class:`WorkerCrashed` if the worker died,
        :class:`PoolClosed` after ``close``, or whatever ``fn`` raised. ``key`` (one or several,
        None ignored) are the shares the task counts against while it holds a worker.
        """
        if self._closed:
            raise PoolClosed("the worker pool is shut down")
        keys = _keys(key)
        worker = await self._acquire(keys)
        healthy = False
        try:
            try:
                async with asyncio.timeout(limit + self.kill_grace if limit > 0 else None):
                    ok, value = await worker.pipe.exchange((limit, fn, args))
            except TimeoutError:
                self.kills += 1
                if self.on_kill is not None:
                    self.on_kill()
                log.warning(
                    "worker killed: task past its deadline",
                    task=getattr(fn, "__name__", "task"), limit=limit, pid=worker.proc.pid, key=",".join(keys),
                )  # fmt: skip
                raise TaskTimeout(f"time limit of {limit:g}s reached") from None
            except (EOFError, OSError):
                if self._closed:
                    raise PoolClosed("the worker pool is shut down") from None
                self.crashes += 1
                worker.proc.join(timeout=0.1)
                code = worker.proc.exitcode
                log.error("worker died", pid=worker.proc.pid, exitcode=code)
                raise WorkerCrashed(f"the worker process died (exit code {code})") from None
            healthy = True
            worker.tasks += 1
        finally:
            self._release(worker, keys, healthy)
        if ok:
            return value
        raise value

    def close(self) -> None:
        """Stop every worker now: tasks under way are abandoned (callers get PoolClosed).

        Shutdown must fit in the 10 s a service manager allows, whatever the workers are doing;
        whatever was abandoned is redone by the next process.
        """
        self._closed = True
        while self._waiters:
            w = self._waiters.popleft()
            if not w.future.done():
                w.future.set_exception(PoolClosed("the worker pool is shut down"))
        workers = [*self._idle, *self._busy]
        self._idle.clear()
        for worker in workers:
            worker.kill()
        for worker in workers:
            worker.proc.join(timeout=2)

    def warm(self) -> None:
        """Start one worker now, in the background, so the first task does not wait for it
        (the fork server's imports run while the daemon opens storage and builds its matcher)."""
        if self._closed or self.alive:
            return
        self._starting += 1

        async def start() -> None:
            try:
                worker = await _in_daemon_thread(self._spawn)
            except Exception as exc:
                log.warning("worker start failed", error=str(exc))
                return
            finally:
                self._starting -= 1
            if self._closed:
                worker.kill()
                return
            self._idle.append(worker)
            self._hand_over()

        task = asyncio.ensure_future(start())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def alive(self) -> int:
        """Worker processes running or being started (idle or busy)."""
        return len(self._idle) + len(self._busy) + self._starting

    # ------------------------------------------------------------------ workers
    async def _acquire(self, keys: tuple[str, ...]) -> _Worker:
        waiter = _Waiter(keys, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        self._hand_over()
        try:
            return await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self._release(waiter.future.result(), keys, healthy=True)
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def _hand_over(self) -> None:
        """Give free capacity to waiters in order, skipping those with a key at its share."""
        if self._closed:
            return
        for waiter in list(self._waiters):
            if waiter.future.done():
                self._waiters.remove(waiter)
                continue
            if any(self._by_key.get(k, 0) >= self.per_key for k in waiter.keys):
                continue
            if self._idle:
                worker = self._idle.pop()
            elif self.alive < self.workers:
                worker = None
            else:
                return
            self._waiters.remove(waiter)
            for k in waiter.keys:
                self._by_key[k] = self._by_key.get(k, 0) + 1
            if worker is not None:
                self._busy.add(worker)
                waiter.future.set_result(worker)
            else:
                self._starting += 1
                task = asyncio.ensure_future(self._start_for(waiter))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _start_for(self, waiter: _Waiter) -> None:
        """Start a worker process (off the loop) and hand it to ``waiter``."""
        try:
            worker = await _in_daemon_thread(self._spawn)
        except BaseException as exc:
            self._starting -= 1
            self._unkey(waiter.keys)
            if not waiter.future.done():
                waiter.future.set_exception(
                    PoolClosed("the worker pool is shut down")
                    if self._closed
                    else RuntimeError(f"cannot start a worker process: {exc}")
                )
            self._hand_over()
            return
        self._starting -= 1
        self._busy.add(worker)
        if self._closed:
            self._release(worker, waiter.keys, healthy=False)
            if not waiter.future.done():
                waiter.future.set_exception(PoolClosed("the worker pool is shut down"))
        elif waiter.future.done():  # the caller gave up meanwhile
            self._release(worker, waiter.keys, healthy=True)
        else:
            waiter.future.set_result(worker)

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_worker_main, args=(child,), daemon=True, name="feedwatch-worker"
        )
        proc.start()
        child.close()
        return _Worker(proc, _Pipe(parent))

    def _unkey(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            left = self._by_key.get(key, 1) - 1
            if left > 0:
                self._by_key[key] = left
            else:
                self._by_key.pop(key, None)

    def _release(self, worker: _Worker, keys: tuple[str, ...], healthy: bool) -> None:
        self._busy.discard(worker)
        self._unkey(keys)
        if not self._closed and healthy and worker.tasks < self.max_tasks:
            self._idle.append(worker)
        else:
            worker.kill()  # overran, crashed or worn out: a fresh one is started when needed
        self._hand_over()
